"""How a run's texts become token ids: the one interface both model families' tokenizers offer.

The BiLSTM reads words (spaCy's tokenizer, then its vocabulary: `WordEncoding`); a pretrained encoder reads its
own WordPiece tokens (`llmcls.data.wordpiece.WordPieceEncoding`). Everything downstream (batching, chunking,
augmentation, the networks' `(token_ids, lengths)` call) sees only `EncodedTexts` and a padding id.
"""

from __future__ import annotations

from typing import Protocol

from llmcls.data.batching import EncodedTexts
from llmcls.data.tokenize import Tokenizer
from llmcls.data.vocab import Vocab


class TextEncoding(Protocol):
    """Texts -> token ids of one model."""

    pad_index: int

    @property
    def limit(self) -> int | None:
        """The most tokens the model reads in one text (a window's longest); None: no limit."""

    def encode(self, texts: list[str]) -> EncodedTexts:
        """Token ids of `texts`, in order; an empty text becomes one unknown token, so that it keeps its place."""


class WordEncoding:
    """The BiLSTM's encoding: spaCy tokens (cut as the tokenizer's config says), then vocabulary ids."""

    limit = None

    def __init__(self, tokenizer: Tokenizer, vocab: Vocab):
        self.tokenizer = tokenizer
        self.vocab = vocab
        self.pad_index = vocab.pad_index

    def encode(self, texts: list[str]) -> EncodedTexts:
        return EncodedTexts(*self.vocab.encode_tokenized(self.tokenizer.tokenize_many(texts)))
