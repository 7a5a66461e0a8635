import gzip
import json

import pytest

from llmcls.data.readers import detect_format, read_examples, read_texts, split_off
from llmcls.errors import DataError
from support.paths import FIXTURES


def test_reads_the_shipped_csv_fixture():
    ex = read_examples(FIXTURES / "sst2_train.csv")
    assert len(ex) == 600 and len(ex.labels) == 600
    assert set(ex.labels) == {"negative", "positive"}
    assert all(isinstance(t, str) and t for t in ex.texts)


def test_csv_tsv_jsonl_and_gzip_give_the_same_examples(tmp_path):
    rows = [('a fine, "quoted" film', "positive"), ("dull", "negative")]
    import csv

    with open(tmp_path / "d.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "text", "label"])
        w.writerows([(i, text, label) for i, (text, label) in enumerate(rows)])
    (tmp_path / "d.tsv").write_text("text\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in rows))
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows))
    with gzip.open(tmp_path / "d.jsonl.gz", "wt") as fh:
        fh.write((tmp_path / "d.jsonl").read_text())
    for name in ("d.csv", "d.tsv", "d.jsonl", "d.jsonl.gz"):
        ex = read_examples(tmp_path / name)
        assert list(zip(ex.texts, ex.labels)) == rows, name


def test_headerless_csv_by_index(tmp_path):
    (tmp_path / "h.csv").write_text("positive,great movie\nnegative,bad movie\n")
    ex = read_examples(tmp_path / "h.csv", text_column=1, label_column=0, header=False)
    assert ex.texts == ["great movie", "bad movie"] and ex.labels == ["positive", "negative"]


def test_jsonl_labels_may_be_numbers(tmp_path):
    (tmp_path / "n.jsonl").write_text('{"review": "ok", "stars": 4}\n\n{"review": "meh", "stars": 2}\n')
    ex = read_examples(tmp_path / "n.jsonl", text_column="review", label_column="stars")
    assert ex.labels == ["4", "2"]


def test_texts_only(tmp_path):
    ex = read_examples(FIXTURES / "sst2_valid.csv", label_column=None)
    assert ex.labels is None and len(ex.texts) == 200


@pytest.mark.parametrize(
    "content,kwargs,match",
    [
        ("text,label\n", {}, "no rows after the header"),
        ("", {}, "file is empty"),
        ("sentence,label\nhi,pos\n", {}, r"no text column 'text'; columns found: 'sentence', 'label'"),
        ("text,label\nok,pos\nbroken\n", {}, r"line 3: expected at least 2 fields"),
    ],
)
def test_bad_csv_files(tmp_path, content, kwargs, match):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=match):
        read_examples(path, **kwargs)


def test_broken_jsonl_line_is_reported(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": \n')
    with pytest.raises(DataError, match="line 2: not valid JSON"):
        read_examples(path)


def test_missing_and_directory_and_encoding(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_examples(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="is a directory"):
        read_examples(tmp_path, fmt="csv")
    (tmp_path / "l.csv").write_bytes("text,label\ncaf\xe9,x\n".encode("latin-1"))
    with pytest.raises(DataError, match="not utf-8"):
        read_examples(tmp_path / "l.csv")
    assert read_examples(tmp_path / "l.csv", encoding="latin-1").texts == ["café"]


def test_format_detection():
    from pathlib import Path

    assert detect_format(Path("a.CSV")) == "csv"
    assert detect_format(Path("a.tsv.gz")) == "tsv"
    assert detect_format(Path("a.ndjson")) == "jsonl"
    assert detect_format(Path("a.txt"), "tsv") == "tsv"
    with pytest.raises(DataError, match="set data.format"):
        detect_format(Path("a.txt"))


def test_split_off_is_seeded_disjoint_and_complete():
    ex = read_examples(FIXTURES / "trec_train.csv")
    rest, held = split_off(ex, 0.1, seed=13)
    assert len(held) == 50 and len(rest) == 450
    assert sorted(rest.texts + held.texts) == sorted(ex.texts)
    _, again_held = split_off(ex, 0.1, seed=13)
    assert again_held.texts == held.texts
    assert split_off(ex, 0.1, seed=14)[1].texts != held.texts


def test_plain_text_keeps_every_line(tmp_path):
    lines = ["first text", "", "  spaced  ", 'naïve “quotes”, commas, "double"', "last"]
    for name, data in (
        ("lf.txt", "\n".join(lines) + "\n"),
        ("crlf.txt", "\r\n".join(lines) + "\r\n"),
        ("cr.txt", "\r".join(lines)),
        ("none.txt", "\n".join(lines)),
    ):
        (tmp_path / name).write_bytes(data.encode("utf-8"))
        assert read_texts(tmp_path / name) == lines, name
    with gzip.open(tmp_path / "g.txt.gz", "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    assert read_texts(tmp_path / "g.txt.gz") == lines
    (tmp_path / "empty.txt").write_text("")
    assert read_texts(tmp_path / "empty.txt") == []
    (tmp_path / "latin.txt").write_bytes("café\n".encode("latin-1"))
    with pytest.raises(DataError, match="latin.txt, line 1: bytes that are not utf-8"):
        read_texts(tmp_path / "latin.txt")
    assert read_texts(tmp_path / "latin.txt", encoding="latin-1") == ["café"]


def test_texts_from_columns_and_streams(tmp_path):
    import io

    (tmp_path / "d.csv").write_text('id,body\n1,"a, b"\n2,\n3,c\n')
    assert read_texts(tmp_path / "d.csv", column="body") == ["a, b", "", "c"]  # an empty cell stays a text
    assert read_texts(tmp_path / "d.csv", column=1) == ["a, b", "", "c"]
    assert read_texts(io.StringIO("x\n\ny\n"), fmt="txt") == ["x", "", "y"]
    assert read_texts(io.StringIO('{"t": "x"}\n{"t": "y"}\n'), column="t", fmt="jsonl") == ["x", "y"]
    with pytest.raises(DataError, match="give the format of the input stream"):
        read_texts(io.StringIO("x\n"))
    with pytest.raises(DataError, match="d.docx: cannot tell the format from the name; give it"):
        read_texts(tmp_path / "d.docx")
    with pytest.raises(DataError, match="<stream>: no text column 'text'"):
        read_texts(io.StringIO("a,b\n1,2\n"), fmt="csv")


def test_jsonl_list_labels_are_kept_as_lists(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"text": "a", "labels": ["X", " Y"]}\n{"text": "b", "labels": "Z"}\n')
    assert read_examples(tmp_path / "m.jsonl", label_column="labels").labels == [["X", "Y"], "Z"]
