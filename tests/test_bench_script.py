"""scripts/bench.py's pure parts: the plan of measurements, resuming, the datasets' files and issue 13's verdicts."""

import argparse
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
AG_NEWS = ROOT.parent / "shared" / "data" / "ag_news" / "partial"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench", ROOT / "scripts" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def runs(dataset, system, accuracies, split="test"):
    return [
        {"dataset": dataset, "system": system, "seed": seed, f"{split}_acc": acc}
        for seed, acc in enumerate(accuracies, start=1)
    ]


MEASUREMENTS = [
    *runs("cr", "fasttext-tuned", [0.80, 0.81]),  # mean 80.5
    *runs("cr", "tfidf-lr", [0.8276]),  # the best peer: 82.76
    *runs("cr", "reference", [0.7719]),
    {"dataset": "cr", "system": "reference", "seed": 2, "error": "stopped after 21600 s"},
    *runs("cr", "llmcls", [0.83, 0.82, 0.84]),  # 83.00: +0.24
    *runs("cr", "llmcls-generic", [0.82, 0.81, 0.83]),  # 82.00: -0.76, within 1
    *runs("cr", "llmcls-default", [0.815, 0.81, 0.82]),  # 81.50: -1.26
    *runs("trec", "tfidf-lr", [0.874]),
    *runs("trec", "llmcls", [0.92]),  # one seed: +4.6
    {"dataset": "trec", "system": "llmcls-generic", "seed": 1, "skipped": "llmcls init not available"},
    *runs("sst2", "llmcls", [0.855, 0.857], split="valid"),
]


def test_verdicts_compare_each_llmcls_system_with_the_best_peer(bench):
    rows = {(r["dataset"], r["system"]): r for r in bench.verdicts(MEASUREMENTS)}
    shipped = rows["cr", "llmcls"]
    assert (shipped["peer"], round(shipped["peer_acc"], 2)) == ("tfidf-lr", 82.76)
    assert (round(shipped["mean"], 2), shipped["seeds"], shipped["diff"], shipped["verdict"]) == (83.0, 3, 0.24, "met")
    assert (rows["cr", "llmcls-generic"]["diff"], rows["cr", "llmcls-generic"]["verdict"]) == (-0.76, "met")
    assert (rows["cr", "llmcls-default"]["diff"], rows["cr", "llmcls-default"]["verdict"]) == (-1.26, "not met")
    assert rows["trec", "llmcls"]["verdict"] == "met (1 seed, not 3)"
    assert rows["trec", "llmcls-generic"]["verdict"] == "skipped: llmcls init not available"
    assert ("trec", "llmcls-default") not in rows  # not asked for
    assert rows["sst2", "llmcls"]["verdict"] == "no test accuracy"  # only validation figures: nothing to compare


def test_the_verdict_table_and_the_stretch_table_show_the_numbers(bench):
    table = bench.verdict_table(bench.verdicts(MEASUREMENTS)).splitlines()
    assert "| cr | tfidf-lr 82.76 | llmcls | ≥ best peer | 3 | 83.00 ± 1.00 | +0.24 | met |" in table
    assert "| cr | tfidf-lr 82.76 | llmcls-default | ≥ best peer − 1 | 3 | 81.50 ± 0.50 | -1.26 | not met |" in table
    assert "| trec | tfidf-lr 87.40 | llmcls | ≥ best peer | 1 | 92.00 | +4.60 | met (1 seed, not 3) |" in table
    stretch = bench.stretch_table(MEASUREMENTS).splitlines()
    assert stretch[0] == "| dataset | stretch | llmcls | llmcls-generic | llmcls-default |"
    assert "| sst2 | 87.5 valid | 85.60 (-1.90) | — | — |" in stretch  # SST-2's stretch number is on dev
    assert "| cr | 84.3 test | 83.00 (-1.30) | 82.00 (-2.30) | 81.50 (-2.80) |" in stretch


def test_the_plan_gives_every_seeded_system_its_seeds(bench):
    todo = bench.plan(["cr"], ["llmcls", "llmcls-generic", "fasttext-tuned", "tfidf-lr"], seeds=3, slow_seeds=1)
    count = {
        system: sum(s == system for _, s, _ in todo)
        for system in ("llmcls", "llmcls-generic", "fasttext-tuned", "tfidf-lr")
    }
    assert count == {"llmcls": 3, "llmcls-generic": 3, "fasttext-tuned": 1, "tfidf-lr": 1}
    assert todo[:4] == [
        ("cr", "llmcls", 1),
        ("cr", "llmcls-generic", 1),
        ("cr", "fasttext-tuned", 1),
        ("cr", "tfidf-lr", 1),
    ]  # a round of every system before the next seed
    assert len(bench.plan(["cr"], ["fasttext-tuned"], seeds=3, slow_seeds=None)) == 3


def test_resume_keeps_measurements_and_runs_failures_again(bench, tmp_path):
    out = tmp_path / "bench.json"
    settings = {
        "epochs": None,
        "reference_epochs": 6,
        "autotune_seconds": 60,
        "limit_train": None,
        "data_root": "/data",
    }
    out.write_text(json.dumps({"env": {"args": settings}, "results": MEASUREMENTS}))
    todo = bench.plan(["cr", "trec"], ["llmcls-generic", "reference"], seeds=2, slow_seeds=None)
    with pytest.raises(SystemExit, match="autotune_seconds 60 -> 120"):
        bench.previous_report(argparse.Namespace(resume=True, out=out, **settings | {"autotune_seconds": 120}), todo)
    report = bench.previous_report(argparse.Namespace(resume=True, out=out, **settings), todo)
    kept = {(r["dataset"], r["system"], r["seed"]) for r in report["results"]}
    assert ("cr", "reference", 2) not in kept and ("trec", "llmcls-generic", 1) not in kept  # measured again
    assert ("cr", "reference", 1) in kept and len(kept) == len(MEASUREMENTS) - 2
    assert report["earlier_envs"] == [{"args": settings}]
    assert set(todo) - bench.finished(report["results"]) == {
        ("cr", "reference", 2),
        ("trec", "llmcls-generic", 1),
        ("trec", "llmcls-generic", 2),
        ("trec", "reference", 1),
        ("trec", "reference", 2),
    }


def test_llmcls_systems_change_only_the_data_paths(bench, tmp_path):
    config, overrides = bench.llmcls_config("trec", "llmcls", tmp_path)
    assert config == ROOT / "configs" / "trec.yaml"
    assert overrides == [
        f"data.train={tmp_path / 'train.csv'}",
        f"data.valid={tmp_path / 'valid.csv'}",
        "data.test=null",
    ]
    config, overrides = bench.llmcls_config("mr", "llmcls-default", tmp_path)
    assert config == ROOT / "configs" / "sst2.yaml" and len(overrides) == 3


@pytest.mark.skipif(not AG_NEWS.is_dir(), reason="needs the shared AG News data beside the project")
def test_ag_news_is_the_partial_split_with_a_tenth_held_out(bench, tmp_path):
    data = bench.materialize("ag_news", AG_NEWS.parents[1], tmp_path, None)
    counts = {split: len(bench.read_rows(data / f"{split}.csv")) for split in ("train", "valid", "test")}
    assert counts == {"train": 9001, "valid": 1000, "test": 7600}
    assert {label for _, label in bench.read_rows(data / "valid.csv")} == {"World", "Sports", "Business", "Sci/Tech"}


def test_a_system_with_the_same_config_and_seed_is_copied_not_trained_again(bench, tmp_path):
    work = tmp_path
    data = work / "sst2"
    shipped = bench.llmcls_spec("sst2", "llmcls", 1, data, work, None)
    default = bench.llmcls_spec("sst2", "llmcls-default", 1, data, work, None)
    assert (
        shipped["portable"]
        == default["portable"]
        == {
            "config": "configs/sst2.yaml",
            "overrides": [
                "data.train=$WORK/sst2/train.csv",
                "data.valid=$WORK/sst2/valid.csv",
                "data.test=null",
                "seed=1",
            ],
        }
    )
    results = [{"dataset": "sst2", "system": "llmcls", "seed": 1, "test_acc": 0.86, **shipped["portable"]}]
    assert bench.same_run(results, "sst2", 1, default)["same_run_as"] == "llmcls"
    assert bench.same_run(results, "sst2", 2, bench.llmcls_spec("sst2", "llmcls-default", 2, data, work, None)) is None


def test_reports_made_in_parts_merge_with_the_last_measurement_kept(bench, tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps({"results": MEASUREMENTS}))
    second.write_text(
        json.dumps(
            {
                "results": [
                    *runs("cr", "llmcls", [0.85]),  # seed 1 measured again (another config): this one counts
                    {
                        "dataset": "cr",
                        "system": "llmcls",
                        "seed": 2,
                        "error": "killed",
                    },  # a failure never replaces a result
                    {
                        "dataset": "cr",
                        "system": "reference",
                        "seed": 2,
                        "test_acc": 0.78,
                    },  # the earlier file's failure, done
                ]
            }
        )
    )
    merged = {(r["dataset"], r["system"], r["seed"]): r for r in bench.merged_results([first, second])}
    assert merged["cr", "llmcls", 1]["test_acc"] == 0.85 and merged["cr", "llmcls", 2]["test_acc"] == 0.82
    assert merged["cr", "reference", 2]["test_acc"] == 0.78
    assert len(merged) == len({(r["dataset"], r["system"], r["seed"]) for r in MEASUREMENTS})
    row = next(r for r in bench.verdicts(list(merged.values())) if (r["dataset"], r["system"]) == ("cr", "llmcls"))
    assert round(row["mean"], 2) == 83.67 and row["peer"] == "tfidf-lr"


def test_a_dataset_in_any_format_llmcls_reads_is_benchmarked_from_the_same_csv(bench, tmp_path):
    from support.formats import write_class_folders, write_hf_dataset_dict, write_parquet

    rows = [(f"text {i}", "neg" if i % 3 else "pos") for i in range(30)]
    root = tmp_path / "data"
    (root / "pq").mkdir(parents=True)
    write_parquet(root / "pq" / "train.parquet", rows)
    write_class_folders(root / "folders" / "train", sorted(rows, key=lambda row: row[1]))
    write_hf_dataset_dict(root / "hf", {"train": rows, "validation": rows[:5]}, names=["neg", "pos"])
    assert bench.dataset_files("hf", root)["valid"] == root / "hf" / "validation"  # Hugging Face's split name
    for name in ("pq", "folders", "hf"):
        data = bench.materialize(name, root, tmp_path / "work", None)
        read = {split: bench.read_rows(data / f"{split}.csv") for split in ("train", "valid")}
        assert sorted(read["train"] + (read["valid"] if name != "hf" else [])) == sorted(rows), name


@pytest.mark.parametrize("program", ["tfidf", "fasttext"])
def test_a_peer_program_measures_in_its_own_process(bench, tmp_path, program):
    """scripts/bench_programs.py run as bench.py runs it: a fresh process, figures as one JSON line. Trained on the
    SST-2 fixture's 600 sentences, the peers score its 200 validation sentences well above chance."""
    pytest.importorskip("sklearn" if program == "tfidf" else "fasttext")
    fixtures = ROOT / "tests" / "fixtures"
    (tmp_path / "train.csv").write_bytes((fixtures / "sst2_train.csv").read_bytes())
    (tmp_path / "valid.csv").write_bytes((fixtures / "sst2_valid.csv").read_bytes())
    options = {"tuned": False, "seconds": 0, "seed": 1} if program == "fasttext" else {}
    result = bench.run_program(program, data=str(tmp_path), **options)
    assert "error" not in result, result
    assert 0.55 < result["valid_acc"] <= 1.0 and result["test_acc"] is None  # no test split: valid is timed
    assert result["train_s"] > 0 and result["predict_texts_per_s"] > 0
    assert result["wall_s"] >= result["train_s"] and result["peak_rss_mb"] > 10


def test_an_unknown_keyword_is_an_error_not_a_measurement(bench, tmp_path):
    assert "unexpected keyword" in bench.run_program("tfidf", data=str(tmp_path), epochs=3)["error"]


def test_the_default_systems_leave_out_bf16_only_where_the_cpu_cannot_run_it(bench, capsys):
    assert bench.default_systems(None) == list(bench.SYSTEMS)
    without = bench.default_systems("this CPU (AVX2) cannot run the LSTM in bfloat16")
    assert "llmcls-seed-model-bf16" not in without and "llmcls-seed-model" in without
    assert len(without) == len(bench.SYSTEMS) - 1
    assert "leaving out the bf16 systems: this CPU (AVX2)" in capsys.readouterr().err
