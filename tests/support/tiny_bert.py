"""A tiny randomly initialised BERT folder, written by the tests: config.json, model.safetensors (Hugging Face
BertModel names) and tokenizer.json (a WordPiece tokenizer over the fixtures' most frequent words), a few hundred
KB, so that fine-tuning, export, serving and distillation run end to end without the 83 MB MiniLM weights."""

from __future__ import annotations

import csv
import json
import string
from collections import Counter
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def fixture_words(limit: int = 600) -> list[str]:
    """The most frequent lower-cased words of the SST-2 and TREC fixtures."""
    counts: Counter[str] = Counter()
    for name in ("sst2_train.csv", "trec_train.csv"):
        with open(FIXTURES / name, encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                counts.update(word.strip(string.punctuation) for word in row["text"].lower().split())
    return [word for word, _ in counts.most_common(limit) if word and word.isalpha()]


def _vocab(words: list[str]) -> list[str]:
    chars = list(string.ascii_lowercase + string.digits)
    return list(dict.fromkeys(SPECIALS + list(string.punctuation) + chars + [f"##{c}" for c in chars] + words))


def write_tokenizer(path: Path, vocab: list[str]) -> None:
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    tokenizer = Tokenizer(WordPiece({token: i for i, token in enumerate(vocab)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.add_special_tokens(SPECIALS)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab.index("[CLS]")), ("[SEP]", vocab.index("[SEP]"))]
    )
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.save(str(path))


def _weights(config: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    h, f = config["hidden_size"], config["intermediate_size"]

    def normal(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    def norm(prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}.weight": np.ones(h, np.float32), f"{prefix}.bias": np.zeros(h, np.float32)}

    def dense(prefix: str, n_out: int, n_in: int) -> dict[str, np.ndarray]:
        return {f"{prefix}.weight": normal(n_out, n_in), f"{prefix}.bias": np.zeros(n_out, np.float32)}

    out = {
        "embeddings.word_embeddings.weight": normal(config["vocab_size"], h),
        "embeddings.position_embeddings.weight": normal(config["max_position_embeddings"], h),
        "embeddings.token_type_embeddings.weight": normal(config["type_vocab_size"], h),
        **norm("embeddings.LayerNorm"),
        **dense("pooler.dense", h, h),
    }
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        for name in ("query", "key", "value"):
            out.update(dense(f"{p}.attention.self.{name}", h, h))
        out.update(
            {
                **dense(f"{p}.attention.output.dense", h, h),
                **norm(f"{p}.attention.output.LayerNorm"),
                **dense(f"{p}.intermediate.dense", f, h),
                **dense(f"{p}.output.dense", h, f),
                **norm(f"{p}.output.LayerNorm"),
            }
        )
    return out


def write_tiny_bert(
    folder: Path,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    intermediate: int = 64,
    max_positions: int = 130,
    seed: int = 0,
    dropout: float = 0.1,
) -> Path:
    """Write a tiny random BERT into `folder` (created) and return it (`dropout`: its hidden and attention
    dropout, as pretrained models declare theirs)."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    vocab = _vocab(fixture_words())
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": len(vocab),
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": intermediate,
        "max_position_embeddings": max_positions,
        "type_vocab_size": 2,
        "hidden_act": "gelu",
        "hidden_dropout_prob": dropout,
        "attention_probs_dropout_prob": dropout,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    write_tokenizer(folder / "tokenizer.json", vocab)
    save_file(_weights(config, np.random.default_rng(seed)), str(folder / "model.safetensors"))
    return folder
