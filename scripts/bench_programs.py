"""The measurements that scripts/bench.py runs, each in a fresh Python process of its own (so that one system's
memory, threads and imports cannot colour another's figures): llmcls (train, then time prediction), fastText, and
TF-IDF + logistic regression. Each is a function returning a dict of figures; run as

    python scripts/bench_programs.py PROGRAM '{"keyword": "arguments", ...}'

it calls PROGRAM with those keyword arguments and prints the figures as one JSON line, with the process's wall
time (`wall_s`) and peak RSS (`peak_rss_mb`) added."""

from __future__ import annotations

import csv
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Rows = list[tuple[str, str]]


def measure_llmcls(
    *, config: str, overrides: list[str], run_dir: str, test_file: str, backend: str, teacher: str | None = None
) -> dict[str, Any]:
    """Train one llmcls config (the distilled student of `teacher`, a run directory, if given), then time its
    prediction from raw text and of the network alone over tokenized texts (what the reference's figure measures).
    Data preparation is timed twice beforehand: with an empty token cache, then a warm one."""
    from llmcls.adapt.choices import resolve_auto
    from llmcls.config import load_config
    from llmcls.data.prepare import prepare_data
    from llmcls.data.readers import read_examples
    from llmcls.inference.forward import batched_logits
    from llmcls.inference.predict import Predictor
    from llmcls.training.distill import distilled_config
    from llmcls.training.loop import train

    cfg = load_config(config, overrides + [f"tokenizer.cache_dir={run_dir}-tokens"])
    if teacher is not None:
        cfg = distilled_config(cfg, teacher=teacher)
    cfg = resolve_auto(cfg)  # as training does first: `auto` values chosen from the data (not timed below)
    t = time.perf_counter()
    prepare_data(cfg)
    prepare_cold_s = time.perf_counter() - t  # an empty token cache
    t = time.perf_counter()
    prepare_data(cfg)
    prepare_warm_s = time.perf_counter() - t
    res = train(cfg, device="cpu", run_dir=run_dir, overwrite=True)
    texts = read_examples(test_file).texts
    predictor = Predictor.load(run_dir, "cpu", backend=backend)
    predictor.predict_proba(texts[:256])  # warm-up
    t = time.perf_counter()
    predictor.predict_proba(texts)
    predict_s = time.perf_counter() - t
    encoded = predictor.encode(texts)
    t = time.perf_counter()
    batched_logits(predictor.forward, encoded, batch_size=predictor.batch_size, pad_index=predictor.encoding.pad_index)
    predict_model_s = time.perf_counter() - t
    return {
        "valid_acc": res.valid["accuracy"],
        "test_acc": res.test["accuracy"] if res.test else None,
        "train_s": sum(h["seconds"] for h in res.history),
        "train_tok_per_s": statistics.mean(h["train_tokens_per_s"] for h in res.history),
        "predict_texts_per_s": len(texts) / predict_s,
        "predict_model_texts_per_s": len(texts) / predict_model_s,
        "predict_backend": predictor.backend,
        "epochs": len(res.history),
        "best_epoch": res.best_epoch,
        "prepare_cold_s": prepare_cold_s,
        "prepare_warm_s": prepare_warm_s,
    }


def _rows(path: Path) -> Rows:
    with open(path, newline="", encoding="utf-8") as fh:
        return [(r["text"], r["label"]) for r in csv.DictReader(fh)]


def _splits(data: Path) -> tuple[Rows, Rows, Rows | None]:
    """The bench's train, valid and (where there is one) test CSVs of a dataset's work folder."""
    test = data / "test.csv"
    return _rows(data / "train.csv"), _rows(data / "valid.csv"), _rows(test) if test.exists() else None


def _fasttext_file(rows: Rows) -> str:
    """The rows as a fastText training file (a temporary file): `__label__L text`, whitespace collapsed."""
    fd, path = tempfile.mkstemp(suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        for text, label in rows:
            fh.write(f"__label__{label.replace(' ', '_')} {' '.join(text.split())}\n")
    return path


def measure_fasttext(*, data: str, tuned: bool, seconds: int, seed: int) -> dict[str, Any]:
    """fastText with its defaults, or (`tuned`) tuned by its own autotune on the validation split for `seconds`."""
    import fasttext

    train, valid, test = _splits(Path(data))
    random.Random(seed).shuffle(train)  # fastText reads in order: a file sorted by label (IMDB) teaches nothing
    train_file, valid_file = _fasttext_file(train), _fasttext_file(valid)
    t = time.perf_counter()
    if tuned:
        model = fasttext.train_supervised(
            train_file, autotuneValidationFile=valid_file, autotuneDuration=seconds, verbose=0, thread=2, seed=seed
        )
    else:
        model = fasttext.train_supervised(train_file, verbose=0, thread=2, seed=seed)
    train_s = time.perf_counter() - t

    def accuracy(rows: Rows) -> float:
        labels, _ = model.predict([" ".join(x.split()) for x, _ in rows])
        return sum(p[0] == f"__label__{y.replace(' ', '_')}" for p, (_, y) in zip(labels, rows)) / len(rows)

    texts = [" ".join(x.split()) for x, _ in (test or valid)]
    t = time.perf_counter()
    model.predict(texts)
    predict_s = time.perf_counter() - t
    return {
        "valid_acc": accuracy(valid),
        "test_acc": accuracy(test) if test else None,
        "train_s": train_s,
        "predict_texts_per_s": len(texts) / predict_s,
    }


def measure_tfidf(*, data: str) -> dict[str, Any]:
    """TF-IDF of words and word pairs + logistic regression, its C (1, 4, 16) chosen on the validation split."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    train, valid, test = _splits(Path(data))
    t = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    x_train, y_train = vectorizer.fit_transform([x for x, _ in train]), [y for _, y in train]
    x_valid, y_valid = vectorizer.transform([x for x, _ in valid]), [y for _, y in valid]
    best = None
    for c in (1.0, 4.0, 16.0):
        model = LogisticRegression(C=c, max_iter=2000).fit(x_train, y_train)
        score = model.score(x_valid, y_valid)
        if best is None or score > best[0]:
            best = (score, c, model)
    assert best is not None
    train_s = time.perf_counter() - t
    score, c, model = best
    predicted = test or valid
    t = time.perf_counter()
    model.predict(vectorizer.transform([x for x, _ in predicted]))
    predict_s = time.perf_counter() - t
    test_acc = model.score(vectorizer.transform([x for x, _ in test]), [y for _, y in test]) if test else None
    return {
        "valid_acc": score,
        "test_acc": test_acc,
        "train_s": train_s,
        "predict_texts_per_s": len(predicted) / predict_s,
        "C": c,
    }


PROGRAMS: dict[str, Callable[..., dict[str, Any]]] = {
    "llmcls": measure_llmcls,
    "fasttext": measure_fasttext,
    "tfidf": measure_tfidf,
}


def main(argv: list[str]) -> None:
    t0 = time.perf_counter()
    program, kwargs = argv[0], json.loads(argv[1])
    result = PROGRAMS[program](**kwargs)
    result["wall_s"] = time.perf_counter() - t0
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
