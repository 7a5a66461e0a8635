"""scripts/make_unlabelled_sentences.py: documents cut into sentences for `llmcls distill --unlabelled`."""

import csv
import gzip
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "make_unlabelled_sentences.py"

REVIEWS = [
    ("A fine film. I liked the cast a great deal!<br /><br />Would I watch it again? Yes, twice over.", "pos"),
    ("Dull. The plot goes nowhere at all and the ending drags on for ever.", "neg"),
]


def write_reviews(path: Path) -> None:
    with gzip.open(path, "wt", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(REVIEWS)


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False)


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_documents_become_sentences_of_the_kept_lengths_without_their_labels(tmp_path):
    source, out = tmp_path / "reviews.csv.gz", tmp_path / "sentences.csv"
    write_reviews(source)
    done = run(str(source), "--out", str(out), "--min-words", "4", "--max-words", "12", "--count", "10")
    assert done.returncode == 0, done.stderr
    assert "2 of 2 sentences" in done.stdout
    rows = read_rows(out)
    assert [list(row) for row in rows] == [["text"]] * 2  # one column: the labels never reach the file
    # "A fine film." (3 words), "Yes, twice over." and "Dull." are too short, the 13-word sentence too long; the
    # HTML line break ends "I liked the cast a great deal!" as white space would
    assert sorted(row["text"] for row in rows) == ["I liked the cast a great deal!", "Would I watch it again?"]


def test_the_sample_is_seeded_and_bounded_by_count(tmp_path):
    source = tmp_path / "reviews.csv.gz"
    write_reviews(source)
    outs = []
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        out = tmp_path / f"{name}.csv"
        assert run(str(source), "--out", str(out), "--min-words", "1", "--count", "3", "--seed", seed).returncode == 0
        outs.append(out.read_bytes())
        assert len(read_rows(out)) == 3
    assert outs[0] == outs[1]
    assert outs[0] != outs[2]


def test_a_missing_text_column_is_one_clear_line(tmp_path):
    source = tmp_path / "reviews.csv.gz"
    write_reviews(source)
    done = run(str(source), "--out", str(tmp_path / "x.csv"), "--text-column", "review")
    assert done.returncode != 0
    assert "no column 'review'" in done.stderr
