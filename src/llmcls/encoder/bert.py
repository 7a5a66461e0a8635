"""A pretrained BERT-family encoder with a classification head: the second model family beside the BiLSTM.

The network takes what the BiLSTM takes (content token ids padded at the end, and lengths), adds [CLS] and [SEP]
itself, runs the Transformer encoder (post-LayerNorm BERT: embeddings, then per layer self-attention and a GELU
feed-forward block, each followed by a residual LayerNorm), pools the final states (`mean` over the real tokens,
as sentence-transformers trained all-MiniLM-L6-v2, or the [CLS] state), and applies dropout and a linear head.
The weights are read from a Hugging Face folder's safetensors (names mapped in `hf_name`), never unpickled.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from llmcls.errors import ConfigError

FAMILY = "encoder"


@dataclass(kw_only=True)
class EncoderArgs:
    """Everything needed to rebuild the network; saved with the weights (meta.json's model_args)."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_positions: int
    type_vocab_size: int
    num_outputs: int  # 1 for two classes (one logit), else the number of classes
    pad_index: int
    cls_index: int
    sep_index: int
    layer_norm_eps: float = 1e-12
    pooling: str = "mean"  # mean | cls
    dropout: float = 0.1  # before the head
    hidden_dropout: float = 0.1  # inside the encoder, as the model was pretrained
    attention_dropout: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_pretrained(cls, config: dict[str, Any], **head: Any) -> EncoderArgs:
        """The args of a Hugging Face BERT config.json, with the head's settings (num_outputs, the special
        token ids, pooling, dropout) given by keyword."""
        return cls(
            vocab_size=config["vocab_size"],
            hidden_size=config["hidden_size"],
            num_layers=config["num_hidden_layers"],
            num_heads=config["num_attention_heads"],
            intermediate_size=config["intermediate_size"],
            max_positions=config["max_position_embeddings"],
            type_vocab_size=config.get("type_vocab_size", 2),
            layer_norm_eps=config.get("layer_norm_eps", 1e-12),
            hidden_dropout=config.get("hidden_dropout_prob", 0.1),
            attention_dropout=config.get("attention_probs_dropout_prob", 0.1),
            **head,
        )


class EncoderLayer(nn.Module):
    """One post-LayerNorm Transformer block: x = LN(x + Attention(x)); x = LN(x + FFN(x))."""

    def __init__(self, args: EncoderArgs):
        super().__init__()
        h = args.hidden_size
        self.heads = args.num_heads
        self.query, self.key, self.value = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)
        self.attention_out = nn.Linear(h, h)
        self.attention_norm = nn.LayerNorm(h, eps=args.layer_norm_eps)
        self.ffn_in = nn.Linear(h, args.intermediate_size)
        self.ffn_out = nn.Linear(args.intermediate_size, h)
        self.ffn_norm = nn.LayerNorm(h, eps=args.layer_norm_eps)
        self.dropout = nn.Dropout(args.hidden_dropout)
        self.attention_dropout = args.attention_dropout

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """x [batch, seq, hidden], keep [batch, 1, 1, seq] bool (True: a real token) -> [batch, seq, hidden]."""
        batch, seq, hidden = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:  # [batch, seq, hidden] -> [batch, heads, seq, head_dim]
            return t.view(batch, seq, self.heads, hidden // self.heads).transpose(1, 2)

        context = F.scaled_dot_product_attention(
            heads(self.query(x)),
            heads(self.key(x)),
            heads(self.value(x)),
            attn_mask=keep,
            dropout_p=self.attention_dropout if self.training else 0.0,
        )
        context = context.transpose(1, 2).reshape(batch, seq, hidden)
        x = self.attention_norm(x + self.dropout(self.attention_out(context)))
        return self.ffn_norm(x + self.dropout(self.ffn_out(F.gelu(self.ffn_in(x)))))


class EncoderClassifier(nn.Module):
    """A BERT-family encoder over a text's content tokens, pooled, with a linear head."""

    family = FAMILY

    def __init__(self, args: EncoderArgs):
        super().__init__()
        self.args = args
        h = args.hidden_size
        self.word_embeddings = nn.Embedding(args.vocab_size, h, padding_idx=args.pad_index)
        self.position_embeddings = nn.Embedding(args.max_positions, h)
        self.type_embeddings = nn.Embedding(args.type_vocab_size, h)
        self.embedding_norm = nn.LayerNorm(h, eps=args.layer_norm_eps)
        self.embedding_dropout = nn.Dropout(args.hidden_dropout)
        self.layers = nn.ModuleList(EncoderLayer(args) for _ in range(args.num_layers))
        self.dropout = nn.Dropout(args.dropout)
        self.head = nn.Linear(h, args.num_outputs)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def describe(self) -> str:
        """The network in a few words, for the line that says what is trained."""
        a = self.args
        return f"encoder {a.num_layers}x{a.hidden_size} ({a.num_heads} heads), pooling {a.pooling}"

    def with_specials(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[CLS] text [SEP] padding: ids [batch, seq + 2] and the mask of real positions [batch, seq + 2]."""
        a = self.args
        steps = torch.arange(token_ids.size(1) + 2, device=token_ids.device)[None, :]  # [1, seq + 2]
        ends = lengths.to(token_ids.device)[:, None] + 1  # [batch, 1]: where [SEP] goes
        shifted = F.pad(token_ids, (1, 1), value=a.pad_index)  # content at positions 1..seq
        ids = torch.where(
            steps == 0,
            a.cls_index,
            torch.where(steps == ends, a.sep_index, torch.where(steps < ends, shifted, a.pad_index)),
        )
        return ids, steps <= ends

    def forward(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits of a batch.

        Args:
            token_ids: [batch, seq] int64 content token ids, padded at the end (seq <= max_positions - 2).
            lengths: [batch] int64, each >= 1.

        Returns:
            [batch, num_outputs] float logits.
        """
        ids, real = self.with_specials(token_ids, lengths)  # [batch, seq + 2] each
        positions = torch.arange(ids.size(1), device=ids.device)
        x = self.word_embeddings(ids) + self.position_embeddings(positions)[None] + self.type_embeddings.weight[0]
        x = self.embedding_dropout(self.embedding_norm(x))
        keep = real[:, None, None, :]
        for layer in self.layers:
            x = layer(x, keep)
        if self.args.pooling == "cls":
            pooled = x[:, 0]
        else:
            weights = real.unsqueeze(-1).to(x.dtype)  # [batch, seq + 2, 1]
            pooled = (x * weights).sum(1) / weights.sum(1)
        return self.head(self.dropout(pooled))


_LAYER_NAMES = {  # ours -> the Hugging Face BertModel's, inside encoder.layer.N.
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attention_out": "attention.output.dense",
    "attention_norm": "attention.output.LayerNorm",
    "ffn_in": "intermediate.dense",
    "ffn_out": "output.dense",
    "ffn_norm": "output.LayerNorm",
}
_TOP_NAMES = {
    "word_embeddings": "embeddings.word_embeddings",
    "position_embeddings": "embeddings.position_embeddings",
    "type_embeddings": "embeddings.token_type_embeddings",
    "embedding_norm": "embeddings.LayerNorm",
}


def hf_name(name: str) -> str | None:
    """The Hugging Face BertModel name of one of our encoder's parameters (None for the head, which is new)."""
    module, _, leaf = name.rpartition(".")
    if module.startswith("layers."):
        _, index, part = module.split(".", 2)
        return f"encoder.layer.{index}.{_LAYER_NAMES[part]}.{leaf}"
    if module in _TOP_NAMES:
        return f"{_TOP_NAMES[module]}.{leaf}"
    return None


def load_pretrained(model: EncoderClassifier, weights_file: Path) -> None:
    """Copy a Hugging Face BERT checkpoint's encoder weights (safetensors) into `model`; the head stays new.

    Raises:
        ConfigError: the file lacks a weight the encoder needs or has one of another shape (naming it).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        saved = load_file(str(weights_file))
    except (SafetensorError, OSError) as exc:
        raise ConfigError(f"model.encoder: {weights_file}: unreadable safetensors ({exc})") from None
    prefix = "bert." if any(key.startswith("bert.") for key in saved) else ""  # BertFor* checkpoints
    state = {}
    for name, param in model.state_dict().items():
        source = hf_name(name)
        if source is None:
            continue
        tensor = saved.get(prefix + source)
        if tensor is None:
            raise ConfigError(f"model.encoder: {weights_file}: no weight {prefix + source}; not a BERT checkpoint")
        if tensor.shape != param.shape:
            raise ConfigError(
                f"model.encoder: {weights_file}: {prefix + source} has shape {tuple(tensor.shape)}, "
                f"config.json implies {tuple(param.shape)}"
            )
        state[name] = tensor.float()
    model.load_state_dict(state, strict=False)


def encoder_flops_per_token(args: EncoderArgs, seq_len: int) -> float:
    """Multiply-adds x 2 of the encoder per token of a text of `seq_len` positions (projections, attention,
    feed-forward); the embedding lookups and the head are negligible."""
    h, f = args.hidden_size, args.intermediate_size
    per_layer = 2 * (4 * h * h + 2 * h * f) + 2 * 2 * seq_len * h
    return float(args.num_layers * per_layer)


def attention_scale(args: EncoderArgs) -> float:
    """1 / sqrt(head dimension): the scale of the attention scores."""
    return 1.0 / math.sqrt(args.hidden_size // args.num_heads)
