"""Tokenization with spaCy's rule-based tokenizer (no model download), the optional preprocessing steps, and
a compact representation of many tokenized texts that can be cached on disk."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from llmcls.config import TokenizerConfig
from llmcls.data import token_cache
from llmcls.errors import ConfigError

if TYPE_CHECKING:
    from spacy.language import Language

# A text that is cut at N tokens is tokenized only as far as its first N * HEAD_CHARS_PER_TOKEN characters, which
# surely hold N tokens (a token and its space rarely take 64 characters), so that a 5 MB text costs no more than a
# short one: spaCy and the tokenizers library would otherwise build the whole text's tokens before the cut.
HEAD_CHARS_PER_TOKEN = 64


@dataclass
class TokenizedTexts:
    """Tokens of many texts without a Python object per token: text i is
    `[table[j] for j in ids[offsets[i]:offsets[i + 1]]]`."""

    table: list[str]  # each distinct token once
    ids: np.ndarray  # [total_tokens] int32, indices into `table`
    offsets: np.ndarray  # [n_texts + 1] int64

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def tokens(self, i: int) -> list[str]:
        return [self.table[j] for j in self.ids[self.offsets[i] : self.offsets[i + 1]]]

    @classmethod
    def from_lists(cls, token_lists: Iterable[list[str]]) -> TokenizedTexts:
        """The compact form of texts given as token lists."""
        index: dict[str, int] = {}
        ids: list[int] = []
        offsets = [0]
        for tokens in token_lists:
            for token in tokens:
                ids.append(index.setdefault(token, len(index)))
            offsets.append(len(ids))
        return cls(list(index), np.asarray(ids, dtype=np.int32), np.asarray(offsets, dtype=np.int64))


class Tokenizer:
    """Turns texts into tokens, as the config says.

    Steps, in order: spaCy tokenization, optional lemmatization (spaCy's lookup tables), optional stop-word
    removal (spaCy's list), optional lowercasing, optional truncation to `max_tokens`.
    spaCy is loaded on first use, so a run whose tokens are all cached never imports it.
    """

    def __init__(self, config: TokenizerConfig, cache_dir: Path | None = None):
        """`cache_dir`: where `tokenize_many` keeps its results; None for no cache."""
        self.config = config
        self.cache_dir = cache_dir
        self._nlp: Language | None = None

    def __getstate__(self) -> dict:
        # a tokenizer handed to another process carries its settings; that process loads spaCy when it needs it
        return {**self.__dict__, "_nlp": None}

    def cut_at(self, max_tokens: int | None) -> Tokenizer:
        """This tokenizer, cutting texts at `max_tokens` (None: not at all); spaCy, if loaded, is shared."""
        other = Tokenizer(self.config.model_copy(update={"max_tokens": max_tokens}), self.cache_dir)
        other._nlp = self._nlp
        return other

    @property
    def spacy_loaded(self) -> bool:
        return self._nlp is not None

    @property
    def nlp(self) -> Language:
        if self._nlp is None:
            import spacy

            config = self.config
            try:
                nlp = spacy.blank(config.lang)
            except (ImportError, KeyError, ValueError) as exc:
                raise ConfigError(f"tokenizer.lang: spaCy has no language '{config.lang}' ({exc})") from None
            if config.lemmatize:
                nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
                try:
                    nlp.initialize()
                except (ValueError, OSError) as exc:
                    raise ConfigError(
                        f"tokenizer.lemmatize: no lookup lemma tables for '{config.lang}' "
                        f"(pip install spacy-lookups-data): {exc}"
                    ) from None
            self._nlp = nlp
        return self._nlp

    def _docs(self, texts: Iterable[str], batch_size: int, cut: int | None):
        if cut is not None:
            head = cut * HEAD_CHARS_PER_TOKEN
            texts = (text[:head] for text in texts)
        if self.config.lemmatize:
            return self.nlp.pipe(texts, batch_size=batch_size)
        # a blank pipeline's tokenizer is spaCy's Tokenizer, which has pipe; Language declares any callable
        return self.nlp.tokenizer.pipe(texts, batch_size=batch_size)  # type: ignore[union-attr]

    def __call__(self, texts: Iterable[str], batch_size: int = 1000) -> Iterable[list[str]]:
        """Yield the tokens of each text, in order."""
        cfg, cut = self.config, resolved_max_tokens(self.config)
        for doc in self._docs(texts, batch_size, cut):
            tokens = []
            for token in doc:
                if token.is_space or (cfg.remove_stopwords and token.is_stop):
                    continue
                text = token.lemma_ if cfg.lemmatize and token.lemma_ else token.text
                tokens.append(text.lower() if cfg.lower else text)
                if cut is not None and len(tokens) >= cut:
                    break
            yield tokens

    def tokenize_many(self, texts: list[str]) -> TokenizedTexts:
        """Tokenize a corpus into the compact form, from the cache when these texts were tokenized before with
        the same settings."""
        if self.cache_dir is None:
            return TokenizedTexts.from_lists(self(texts))
        settings = self.config.model_dump(mode="json", exclude={"cache", "cache_dir", "predict_max_tokens"})
        key = token_cache.cache_key(texts, settings)
        cached = token_cache.load(self.cache_dir, key)
        if cached is not None:
            return TokenizedTexts(*cached)
        result = TokenizedTexts.from_lists(self(texts))
        token_cache.save(self.cache_dir, key, table=result.table, ids=result.ids, offsets=result.offsets)
        return result


def resolved_max_tokens(config: TokenizerConfig) -> int | None:
    """`tokenizer.max_tokens` where texts are cut (None: not at all).

    Raises:
        ConfigError: it is still `auto`, which is chosen when training starts, before any text is cut.
    """
    if config.max_tokens == "auto":
        raise ConfigError("tokenizer.max_tokens: auto is chosen when training starts; it cannot cut texts before")
    return config.max_tokens
