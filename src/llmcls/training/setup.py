"""What a training run starts from before its loop: seeds, process-wide torch settings, the data and the network
(new, with its pretrained embedding, or resumed from a run directory), and the loss weights of the classes."""

from __future__ import annotations

import os
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from llmcls.config import Config, TrainConfig
from llmcls.data.prepare import PreparedData, prepare_data
from llmcls.data.vocab import LabelMap, num_outputs
from llmcls.data.wordpiece import WordPieceEncoding
from llmcls.embeddings import build_embedding_matrix
from llmcls.errors import ConfigError
from llmcls.events import EventHandler, Info, ignore
from llmcls.model import Classifier, LstmClassifier, ModelArgs, build_network
from llmcls.run.artifacts import clear_weight_outputs
from llmcls.run.claim import clear_for_new_run
from llmcls.run.config_file import save_run_config
from llmcls.run.files import RunInfo, load_run_info, write_run_header
from llmcls.training.distill import load_teacher, teacher_record, transfer_split
from llmcls.training.distributed import threads_per_process
from llmcls.training.world import SINGLE, World

if TYPE_CHECKING:
    from llmcls.encoder.bert import EncoderClassifier


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def class_weights(cfg: TrainConfig, labels: LabelMap, targets: np.ndarray) -> torch.Tensor | None:
    """Loss weight per class id: none, `auto` (n / (classes * count), as scikit-learn's "balanced"), or given.

    Multi-label (`targets` [n, classes] 0/1): the weight of each class's positive examples, `auto` being
    negatives / positives of the class.

    Raises:
        ConfigError: the mapping names labels the training data does not have.
    """
    spec = cfg.class_weights
    if spec == "none":
        return None
    if spec == "auto" and targets.ndim == 2:
        positives = targets.sum(0)
        return torch.tensor((len(targets) - positives) / np.maximum(positives, 1), dtype=torch.float32)
    if spec == "auto":
        counts = np.bincount(targets, minlength=len(labels))
        return torch.tensor(len(targets) / (len(labels) * np.maximum(counts, 1)), dtype=torch.float32)
    unknown = labels.unknown(spec)
    if unknown:
        raise ConfigError(
            f"train.class_weights: labels not in the training data: {', '.join(unknown)} "
            f"(labels: {', '.join(labels.labels)})"
        )
    return torch.tensor([spec.get(label, 1.0) for label in labels.labels], dtype=torch.float32)


def configure_torch(cfg: TrainConfig, world: World = SINGLE) -> None:
    """Process-wide torch settings: CPU threads (the config's, or with several processes on a machine their
    share of its cores) and deterministic algorithms."""
    threads = cfg.threads or (threads_per_process(world) if world.local_size > 1 else None)
    if threads:
        torch.set_num_threads(threads)
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # required by deterministic cuBLAS
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def build_model(config: Config, data: PreparedData, on_event: EventHandler = ignore) -> Classifier:
    """The network of a new run: the BiLSTM with its embedding initialised from the prepared vectors, or the
    pretrained encoder (model.encoder) with a new head."""
    if data.encoder is not None:
        return build_encoder(config, data, on_event)
    return build_lstm(config, data, on_event)


def build_encoder(config: Config, data: PreparedData, on_event: EventHandler = ignore) -> EncoderClassifier:
    """The pretrained encoder of `model.encoder` with its weights, and a new classification head."""
    from llmcls.encoder.bert import EncoderArgs, EncoderClassifier, load_pretrained

    folder, encoding = data.encoder, data.encoding
    assert folder is not None and isinstance(encoding, WordPieceEncoding)  # an encoder run's data has both
    ids = encoding.ids
    outputs = num_outputs(len(data.labels), config.data.multi_label)
    args = EncoderArgs.from_pretrained(
        folder.config,
        num_outputs=outputs,
        pad_index=ids["pad"],
        cls_index=ids["cls"],
        sep_index=ids["sep"],
        pooling=config.model.encoder_pooling,
        dropout=config.model.dropout,
    )
    model = EncoderClassifier(args)
    load_pretrained(model, folder.weights)
    on_event(
        Info(
            f"encoder: {folder.path} ({sum(p.numel() for p in model.parameters()):,} parameters, "
            f"vocabulary {args.vocab_size:,} WordPiece tokens)"
        )
    )
    return model


def build_lstm(config: Config, data: PreparedData, on_event: EventHandler = ignore) -> LstmClassifier:
    """The BiLSTM with its embedding initialised from the prepared vectors."""
    emb = config.embeddings
    vocab = data.vocab
    assert vocab is not None  # prepare_data builds one for a BiLSTM run
    dim = data.vectors.dim if data.vectors is not None else emb.dim
    assert dim is not None  # embeddings.dim is required when embeddings.source is none (llmcls.config)
    matrix, found = build_embedding_matrix(
        vocab.itos,
        data.vectors,
        dim=dim,
        oov_std=emb.oov_std,
        generator=np.random.default_rng(config.seed),
        pad_index=vocab.pad_index,
    )
    fixed = len(vocab) - vocab.trainable
    on_event(
        Info(
            f"vocabulary: {vocab.trainable} training tokens"
            f"{f' + {fixed} fixed pretrained words' if fixed else ''}, {found} with pretrained vectors"
        )
    )
    m = config.model
    args = ModelArgs(
        vocab_size=vocab.trainable,
        embedding_dim=dim,
        num_outputs=num_outputs(len(data.labels), config.data.multi_label),
        hidden_size=m.hidden_size,
        num_layers=m.num_layers,
        bidirectional=m.bidirectional,
        dropout=m.dropout,
        embedding_dropout=m.embedding_dropout,
        lstm_dropout=m.lstm_dropout,
        pooling=m.pooling,
        pad_index=vocab.pad_index,
        fixed_vocab_size=fixed,
        wide_buckets=m.wide_buckets if m.wide else 0,
        wide_dropout=m.wide_dropout,
    )
    model = LstmClassifier(args)
    with torch.no_grad():
        model.embedding.weight.copy_(torch.from_numpy(matrix[: vocab.trainable]))
        if model.fixed_embedding is not None:
            model.fixed_embedding.weight.copy_(torch.from_numpy(matrix[vocab.trainable :]))
    model.embedding.weight.requires_grad_(not emb.freeze)
    return model


def _start_new(
    config: Config, run_dir: Path, on_event: EventHandler
) -> tuple[PreparedData, Classifier, RunInfo | None]:
    """A new run's data, model and teacher (distillation), once the data is read: the old run (--overwrite,
    checked by claim; the directory is locked) is cleared and the run's header written."""
    data = prepare_data(config, on_event)
    assert data.encoding is not None  # prepare_data sets it
    model = build_model(config, data, on_event)
    teacher = load_teacher(config, data.labels.labels) if config.distill.teacher else None
    clear_for_new_run(run_dir)
    write_run_header(
        run_dir,
        config,
        encoding=data.encoding,
        labels=data.labels,
        model=model,
        extra=teacher_record(teacher) if teacher else None,
    )
    return data, model, teacher


def _start_resumed(
    config: Config, run_dir: Path, checkpoint: dict, on_event: EventHandler
) -> tuple[PreparedData, Classifier]:
    """A resumed run's data (encoded with its tables) and model (its checkpoint's weights)."""
    run = load_run_info(run_dir, trained=False)
    encoding = None if run.vocab is not None else run.encoding()
    assert encoding is None or isinstance(encoding, WordPieceEncoding)  # an encoder run's
    data = prepare_data(config, on_event, vocab=run.vocab, labels=run.labels, encoding=encoding)
    model = build_network(run.family, run.model_args)
    model.load_state_dict(checkpoint["model"])
    clear_weight_outputs(run_dir)  # results, thresholds, export: stale once training goes on
    save_run_config(run_dir, config)  # keys safe to change on resume may have changed
    return data, model


def setup_run(
    config: Config,
    run_dir: Path,
    *,
    checkpoint: dict | None,
    on_event: EventHandler = ignore,
    device: torch.device | None = None,
) -> tuple[PreparedData, Classifier]:
    """The encoded data and the starting model of a new or resumed run; writes the run's header files.

    A resumed run is read through the same validated loader as every other use of a run directory
    (`llmcls.run.files.load_run_info`: complete, and of this format version). Only once the data is read is
    anything of an old run deleted: a start that fails leaves the directory as it was. A distilled run
    (`distill.teacher`) trains on its transfer set (llmcls.training.distill), computed here once.

    Args:
        device: where the teacher of a distilled run computes its logits (default: the CPU).
    """
    t0 = time.perf_counter()
    teacher = None
    if checkpoint is None:
        data, model, teacher = _start_new(config, run_dir, on_event)
    else:
        data, model = _start_resumed(config, run_dir, checkpoint, on_event)
    on_event(
        Info(
            f"data: train {len(data.train)}, valid {len(data.valid)}"
            f"{' (split from train)' if data.valid_from_train else ''}"
            f"{f', test {len(data.test)}' if data.test else ''}; classes: {', '.join(data.labels.labels)}; "
            f"prepared in {time.perf_counter() - t0:.1f}s"
        )
    )
    if config.distill.teacher:
        assert isinstance(model, LstmClassifier)
        data = replace(
            data,
            train=transfer_split(
                config,
                data,
                model=model,
                teacher=teacher,
                run_dir=run_dir,
                device=device or torch.device("cpu"),
                on_event=on_event,
            ),
        )
    return replace(data, vectors=None, train_texts=None), model  # the vectors are in the model now
