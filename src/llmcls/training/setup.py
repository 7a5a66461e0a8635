"""What a training run is built from before its loop starts: seeds, process-wide torch settings, the network
with its pretrained embedding, and the loss weights of the classes."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from llmcls.config import Config, TrainConfig
from llmcls.data.prepare import PreparedData
from llmcls.data.vocab import LabelMap
from llmcls.training.distributed import SINGLE, World, threads_per_process
from llmcls.embeddings import build_embedding_matrix
from llmcls.errors import ConfigError
from llmcls.events import EventHandler, Info, ignore
from llmcls.model import LstmClassifier, ModelArgs, num_outputs


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
        raise ConfigError(f"train.class_weights: labels not in the training data: {', '.join(unknown)} "
                          f"(labels: {', '.join(labels.labels)})")
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


def build_model(config: Config, data: PreparedData, on_event: EventHandler = ignore) -> LstmClassifier:
    """The network with its embedding initialised from the prepared vectors."""
    emb = config.embeddings
    vocab = data.vocab
    dim = data.vectors.dim if data.vectors is not None else emb.dim
    matrix, found = build_embedding_matrix(vocab.itos, data.vectors, dim, emb.oov_std,
                                           np.random.default_rng(config.seed), vocab.pad_index)
    fixed = len(vocab) - vocab.trainable
    on_event(Info(f"vocabulary: {vocab.trainable} training tokens"
                  f"{f' + {fixed} fixed pretrained words' if fixed else ''}, {found} with pretrained vectors"))
    m = config.model
    args = ModelArgs(vocab_size=vocab.trainable, embedding_dim=dim,
                     num_outputs=num_outputs(len(data.labels), config.data.multi_label),
                     hidden_size=m.hidden_size, num_layers=m.num_layers, bidirectional=m.bidirectional,
                     dropout=m.dropout, embedding_dropout=m.embedding_dropout, lstm_dropout=m.lstm_dropout,
                     pooling=m.pooling, pad_index=vocab.pad_index, fixed_vocab_size=fixed)
    model = LstmClassifier(args)
    with torch.no_grad():
        model.embedding.weight.copy_(torch.from_numpy(matrix[:vocab.trainable]))
        if model.fixed_embedding is not None:
            model.fixed_embedding.weight.copy_(torch.from_numpy(matrix[vocab.trainable:]))
    model.embedding.weight.requires_grad_(not emb.freeze)
    return model
