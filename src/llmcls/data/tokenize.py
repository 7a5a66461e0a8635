"""Tokenization with spaCy's rule-based tokenizer (no model download), and the optional preprocessing steps."""

from __future__ import annotations

from typing import Iterable

from llmcls.config import TokenizerConfig
from llmcls.errors import ConfigError


class Tokenizer:
    """Turns texts into lists of token strings, as the config says.

    Steps, in order: spaCy tokenization, optional lemmatization (spaCy's lookup tables), optional stop-word
    removal (spaCy's list), optional lowercasing, optional truncation to `max_tokens`.
    """

    def __init__(self, config: TokenizerConfig):
        import spacy

        self.config = config
        try:
            self._nlp = spacy.blank(config.lang)
        except (ImportError, KeyError, ValueError) as exc:
            raise ConfigError(f"tokenizer.lang: spaCy has no language '{config.lang}' ({exc})") from None
        if config.lemmatize:
            self._nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
            try:
                self._nlp.initialize()
            except (ValueError, OSError) as exc:
                raise ConfigError(f"tokenizer.lemmatize: no lookup lemma tables for '{config.lang}' "
                                  f"(pip install spacy-lookups-data): {exc}") from None

    def _docs(self, texts: Iterable[str], batch_size: int):
        if self.config.max_tokens is not None:
            # Tokenize only a head of each text that surely holds max_tokens tokens (a token and its space
            # rarely take 64 characters), so a 1 MB text costs no more than a short one.
            limit = self.config.max_tokens * 64
            texts = (text[:limit] for text in texts)
        if self.config.lemmatize:
            return self._nlp.pipe(texts, batch_size=batch_size)
        return self._nlp.tokenizer.pipe(texts, batch_size=batch_size)

    def __call__(self, texts: Iterable[str], batch_size: int = 1000) -> Iterable[list[str]]:
        """Yield the tokens of each text, in order."""
        cfg = self.config
        for doc in self._docs(texts, batch_size):
            tokens = []
            for token in doc:
                if token.is_space or (cfg.remove_stopwords and token.is_stop):
                    continue
                text = token.lemma_ if cfg.lemmatize and token.lemma_ else token.text
                tokens.append(text.lower() if cfg.lower else text)
                if cfg.max_tokens is not None and len(tokens) >= cfg.max_tokens:
                    break
            yield tokens

    def tokenize(self, texts: Iterable[str]) -> list[list[str]]:
        return list(self(texts))
