"""The classifier: embedding -> dropout -> (bi)LSTM over variable-length texts -> pooled states -> dropout -> linear,
plus (by default) a wide linear model over the words and hashed word bigrams whose logits are added."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

if TYPE_CHECKING:
    from typing import TypeAlias

    from llmcls.encoder.bert import EncoderClassifier

# The network of either model family, as `build_network` makes it: training, evaluation, prediction and export
# use what both have (`args.num_outputs`, `args.pad_index`, `args.to_dict()`, `family`, `describe()`, and the
# forward pass: ids [batch, seq_len] padded at the end, lengths [batch] -> logits [batch, num_outputs]).
Classifier: TypeAlias = "LstmClassifier | EncoderClassifier"


def autocast(precision: str, device: torch.device):
    """The context a forward pass runs in: bfloat16 autocast for `bf16` (weights stay float32), none for `fp32`."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


@dataclass(kw_only=True)
class ModelArgs:
    """Everything needed to rebuild the network; saved with the weights."""

    vocab_size: int  # rows learned in training
    embedding_dim: int
    num_outputs: int  # 1 for two classes (one logit), else the number of classes (always so for multi-label)
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.5
    embedding_dropout: float = 0.5
    lstm_dropout: float = 0.0
    pooling: str = "last"
    pad_index: int = 0
    fixed_vocab_size: int = 0  # rows after vocab_size holding fixed pretrained vectors (ids >= vocab_size)
    wide_buckets: int = 0  # hashed word-bigram buckets of the wide branch; 0: no wide branch
    wide_dropout: float = 0.0  # share of a text's n-grams the wide branch drops in training

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LstmClassifier(nn.Module):
    """A (bi)LSTM text classifier.

    `pooling` chooses the text representation: `last` (the final forward and backward states of the top layer,
    as in the classic tutorial), `max` or `mean` over time of the top layer's outputs, or `last_max` (both).
    """

    family = "lstm"  # meta.json's model_family (llmcls.run.layout)

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.embedding = nn.Embedding(args.vocab_size, args.embedding_dim, padding_idx=args.pad_index)
        self.fixed_embedding = None
        if args.fixed_vocab_size:
            self.fixed_embedding = nn.Embedding(args.fixed_vocab_size, args.embedding_dim).requires_grad_(False)
        self.embedding_dropout = nn.Dropout(args.embedding_dropout)
        self.lstm = nn.LSTM(
            args.embedding_dim,
            args.hidden_size,
            num_layers=args.num_layers,
            bidirectional=args.bidirectional,
            batch_first=True,
            dropout=args.lstm_dropout if args.num_layers > 1 else 0.0,
        )
        state_size = args.hidden_size * (2 if args.bidirectional else 1)
        features = state_size * (2 if args.pooling == "last_max" else 1)
        self.dropout = nn.Dropout(args.dropout)
        self.head = nn.Linear(features, args.num_outputs)
        self.wide = None
        if args.wide_buckets:
            self.wide = WideNgrams(
                args.vocab_size + args.fixed_vocab_size,
                args.wide_buckets,
                num_outputs=args.num_outputs,
                dropout=args.wide_dropout,
            )

    def describe(self) -> str:
        """The network in a few words, for the line that says what is trained."""
        a = self.args
        return (
            f"{'Bi' if a.bidirectional else ''}LSTM {a.num_layers}x{a.hidden_size}, {a.embedding_dim}d embeddings, "
            f"pooling {a.pooling}{', wide n-gram branch' if a.wide_buckets else ''}"
        )

    def embed(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Vectors of token ids [batch, seq_len]: learned rows, then fixed pretrained rows.

        Returns [batch, seq_len, emb]."""
        if self.fixed_embedding is None:
            return self.embedding(token_ids)
        n = self.args.vocab_size
        fixed = token_ids >= n
        learned = self.embedding(token_ids.masked_fill(fixed, self.args.pad_index))
        return torch.where(fixed.unsqueeze(-1), self.fixed_embedding((token_ids - n).clamp(min=0)), learned)

    def forward(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits of a batch.

        Args:
            token_ids: [batch, seq_len] int64, padded with `pad_index` at the end.
            lengths: [batch] int64 on the CPU, each >= 1.

        Returns:
            [batch, num_outputs] float logits.
        """
        embedded = self.embedding_dropout(self.embed(token_ids))  # [batch, seq_len, emb]
        if embedded.device.type == "cpu":
            outputs, final = self._lstm_by_direction(embedded, lengths.to(embedded.device))
        else:
            outputs, final = self._lstm_packed(embedded, lengths)
        pieces = []
        if self.args.pooling in ("last", "last_max"):
            pieces.append(final)  # [batch, dirs * hidden]
        if self.args.pooling in ("max", "mean", "last_max"):
            steps = torch.arange(outputs.size(1), device=outputs.device)
            mask = (steps[None, :] < lengths.to(outputs.device)[:, None]).unsqueeze(-1)  # [batch, max_len, 1]
            if self.args.pooling == "mean":
                pieces.append((outputs * mask).sum(1) / mask.sum(1))
            else:
                pieces.append(outputs.masked_fill(~mask, float("-inf")).amax(1))
        logits = self.head(self.dropout(torch.cat(pieces, dim=1)))
        return logits if self.wide is None else logits + self.wide(token_ids, lengths.to(token_ids.device))

    def _lstm_packed(self, embedded: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The LSTM over a packed batch (cuDNN's fast path on CUDA).

        Returns:
            outputs [batch, max_len, dirs * hidden] (zeros after each text's end), final states of the top layer
            [batch, dirs * hidden] (forward: at the text's last token; backward: at its first).
        """
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, (hidden, _) = self.lstm(packed)  # hidden: [layers * dirs, batch, hidden], in input order
        outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=embedded.size(1))
        top = hidden[-2:] if self.args.bidirectional else hidden[-1:]
        return outputs, torch.cat(list(top), dim=1)

    def _lstm_by_direction(self, embedded: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The same LSTM as `_lstm_packed`, computed one layer and direction at a time over the padded batch.

        Why: on the CPU a packed batch takes PyTorch's slow per-step path, while an unpacked one takes oneDNN's
        fused LSTM (which also runs in bfloat16 under autocast, on AMX where the CPU has it). Padding sits after
        each text's end, so the forward direction never sees it before a real token; the backward direction runs
        forward over each text reversed within its own length, which keeps the padding at the end there too.
        The outputs at real positions equal the packed LSTM's (tested); those at padding are ignored.

        Returns:
            as `_lstm_packed` (outputs at padded positions are not zero here; callers mask them).
        """
        lstm, hidden_size = self.lstm, self.args.hidden_size
        batch, max_len = embedded.shape[:2]
        steps = torch.arange(max_len, device=embedded.device)
        # [batch, max_len]: position t of the reversed text holds token (length - 1 - t); padding stays in place.
        reverse = torch.where(steps[None, :] < lengths[:, None], lengths[:, None] - 1 - steps[None, :], steps[None, :])

        def flip(x: torch.Tensor) -> torch.Tensor:  # [batch, max_len, features], its own inverse
            return x.gather(1, reverse.unsqueeze(-1).expand(-1, -1, x.size(2)))

        zeros = embedded.new_zeros(1, batch, hidden_size)
        x = embedded
        for layer in range(self.args.num_layers):
            if layer > 0 and lstm.dropout and self.training:
                x = nn.functional.dropout(x, lstm.dropout, training=True)
            directions = []
            for suffix in ("", "_reverse") if self.args.bidirectional else ("",):
                weights = [
                    getattr(lstm, f"{name}_l{layer}{suffix}")
                    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                ]
                inputs = flip(x) if suffix else x
                out, _, _ = torch.lstm(inputs, (zeros, zeros), weights, True, 1, 0.0, self.training, False, True)
                directions.append(flip(out) if suffix else out)
            x = torch.cat(directions, dim=2)  # [batch, max_len, dirs * hidden]
        last = x[torch.arange(batch, device=x.device), lengths - 1, :hidden_size]
        final = torch.cat([last, x[:, 0, hidden_size:]], dim=1) if self.args.bidirectional else last
        return x, final


BIGRAM_PRIME = 1_000_003  # the hash of a word pair (a, b) is (a * BIGRAM_PRIME + b) mod buckets


def bigram_buckets(token_ids: torch.Tensor, buckets: int) -> torch.Tensor:
    """The hashed bucket of each pair of neighbouring token ids: [batch, seq] -> [batch, seq - 1] in [0, buckets)."""
    return (token_ids[:, :-1] * BIGRAM_PRIME + token_ids[:, 1:]) % buckets


class WideNgrams(nn.Module):
    """The "wide" branch: a linear model over the bag of a text's words and hashed word bigrams, whose logits are
    added to the network's (Wide & Deep); the features of fastText and NBSVM, which read a whole document at once.

    Each word id (learned and fixed vocabulary) has its own row of logits, each bigram a row of `buckets` hashed
    ones; a text's wide logits are the sum of the rows of its n-grams (padding excluded) over the square root of
    their number, as an L2-normalised bag of n-grams would give (TF-IDF's normalisation: a long text's evidence is
    not diluted as by the mean); zero at the start.
    In training, `dropout` drops that share of each text's n-grams (the kept ones are rescaled).
    """

    def __init__(self, num_ids: int, buckets: int, *, num_outputs: int, dropout: float = 0.0):
        super().__init__()
        self.num_ids = num_ids
        self.buckets = buckets
        self.dropout = dropout
        self.table = nn.Embedding(num_ids + buckets, num_outputs)
        nn.init.zeros_(self.table.weight)

    def forward(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """token_ids [batch, seq] (padded at the end), lengths [batch] on the same device -> [batch, num_outputs]."""
        steps = torch.arange(token_ids.size(1), device=token_ids.device)
        real = steps[None, :] < lengths[:, None]  # [batch, seq]
        ids = torch.cat([token_ids, self.num_ids + bigram_buckets(token_ids, self.buckets)], dim=1)
        mask = torch.cat([real, real[:, 1:]], dim=1).unsqueeze(-1).float()  # a bigram ends on a real token
        count = mask.sum(1)  # [batch, 1]: 2 * length - 1
        if self.training and self.dropout:
            mask = nn.functional.dropout(mask, self.dropout)
        return (self.table(ids) * mask).sum(1) / count.sqrt()


class WeightedBCEWithLogitsLoss(nn.Module):
    """BCE with logits, each example weighted by the weight of its class; the weighted mean, as
    `CrossEntropyLoss(weight=...)` computes it: sum(w[y_i] * loss_i) / sum(w[y_i])."""

    class_weights: torch.Tensor  # a buffer (`register_buffer`): moves with the module

    def __init__(self, class_weights: torch.Tensor):
        super().__init__()
        self.register_buffer("class_weights", class_weights)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:  # [batch], [batch] float
        per_example = nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        weights = self.class_weights[targets.long()]
        return (per_example * weights).sum() / weights.sum()


def loss_function(num_classes: int, class_weights: torch.Tensor | None = None, multi_label: bool = False) -> nn.Module:
    """BCE with logits for two classes (one logit), cross-entropy for more; optionally weighted per class.

    Multi-label: BCE with logits on each class's own logit; `class_weights` then weigh each class's positive
    examples (`pos_weight`), which is how class imbalance is usually handled there.
    """
    if multi_label:
        return nn.BCEWithLogitsLoss(pos_weight=class_weights)
    if num_classes == 2:
        return nn.BCEWithLogitsLoss() if class_weights is None else WeightedBCEWithLogitsLoss(class_weights)
    return nn.CrossEntropyLoss(weight=class_weights)


def compute_loss(criterion: nn.Module, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Loss of logits [batch, num_outputs] against class ids [batch] (multi-label: 0/1 rows [batch, classes])."""
    if logits.size(1) == 1:
        return criterion(logits.squeeze(1), targets.float())
    return criterion(logits, targets)


def build_network(family: str, args: dict[str, Any]) -> Classifier:
    """The untrained network of a model family (meta.json's model_family) from its saved arguments: the one place
    where a family name becomes a class.

    Raises:
        ValueError: an unknown family.
    """
    if family == LstmClassifier.family:
        return LstmClassifier(ModelArgs(**args))
    from llmcls.encoder.bert import EncoderArgs, EncoderClassifier

    if family == EncoderClassifier.family:
        return EncoderClassifier(EncoderArgs(**args))
    raise ValueError(f"unknown model family {family!r}")
