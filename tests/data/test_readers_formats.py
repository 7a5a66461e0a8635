"""The formats beyond CSV/TSV/JSONL: fastText lines, Parquet, class folders and Hugging Face datasets saved to disk;
each read back to the same examples as CSV, detected from its path, streamed in bounded blocks, and each kind of
bad input refused in one line that names the file (and the line or row)."""

import gzip
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmcls.config import validate_config
from llmcls.data.inputs import drop_empty_texts, input_blocks, read_labelled
from llmcls.data.readers import detect_format, iter_texts, read_examples, read_texts
from llmcls.errors import ConfigError, DataError
from llmcls.events import Info
from support.formats import (
    FORMATS,
    SUFFIX,
    in_folder_order,
    write_class_folders,
    write_fasttext,
    write_format,
    write_hf_dataset,
    write_hf_dataset_dict,
    write_parquet,
)

ROWS = in_folder_order(
    [
        ('a gripping, "taut" film', "pos"),
        ("dull  and slow", "neg"),
        ("naïve — but fun", "pos"),
        ("I walked out", "neg"),
        ("unmissable", "pos"),
    ]
)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_reads_back_the_rows_and_is_detected_from_its_path(tmp_path, fmt):
    path = write_format(fmt, tmp_path / f"d{SUFFIX[fmt]}", ROWS)
    assert detect_format(path) == fmt
    ex = read_examples(path)
    assert list(zip(ex.texts, ex.labels)) == ROWS
    assert read_texts(path) == [text for text, _ in ROWS]  # texts only: what predict --input reads


def test_fasttext_lines_labels_and_multi_label(tmp_path):
    path = tmp_path / "cooking.train"  # fastText's tutorial names its files so: detected from the first line
    path.write_text(
        "__label__baking __label__bread how long to proof  dough?\n\n"
        "__label__equipment   which knife for __label__tomatoes\n"
    )
    assert detect_format(path) == "fasttext"
    ex = read_examples(path)
    assert ex.texts == ["how long to proof  dough?", "which knife for __label__tomatoes"]  # a later mark is text
    assert ex.labels == [["baking", "bread"], "equipment"]
    (tmp_path / "p.txt").write_text("#pos great\n#neg bad\n")
    assert read_examples(tmp_path / "p.txt", label_prefix="#").labels == ["pos", "neg"]
    with gzip.open(tmp_path / "g.txt.gz", "wt") as fh:
        fh.write("__label__x some text\n")
    assert read_examples(tmp_path / "g.txt.gz").texts == ["some text"]
    assert read_texts(path) == ["how long to proof  dough?", "which knife for __label__tomatoes"]


def test_a_plain_text_file_stays_plain_text_for_prediction(tmp_path):
    (tmp_path / "t.txt").write_text("a film __label__x\n\nanother\n")
    assert read_texts(tmp_path / "t.txt") == ["a film __label__x", "", "another"]


@pytest.mark.parametrize(
    "content,message",
    [
        ("__label__pos\n", r"f.txt, line 1: __label__pos without text"),
        ("__label__pos fine\n__label__a __label__b   \n", r"f.txt, line 2: __label__a __label__b without text"),
        ("__label__pos fine\nno label here\n", r"f.txt, line 2: no label: a line starts with its labels"),
        ("__label__pos fine\n__label__ odd\n", r"f.txt, line 2: an empty label"),
    ],
)
def test_bad_fasttext_lines(tmp_path, content, message):
    (tmp_path / "f.txt").write_text(content)
    with pytest.raises(DataError, match=message):
        read_examples(tmp_path / "f.txt", fmt="fasttext")


def test_parquet_columns_types_and_class_names(tmp_path):
    path = write_parquet(tmp_path / "d.parquet", ROWS, topics=[["a", "b"], [], ["c"], ["a"], ["b"]])
    ex = read_examples(path, text_column="text", label_column="topics")
    assert ex.labels == [["a", "b"], [], ["c"], ["a"], ["b"]]
    assert read_examples(path, text_column=1, label_column=2).texts == [t for t, _ in ROWS]  # columns by index
    # a Hugging Face dataset's Parquet files keep class ids, and the names in the schema's metadata
    table = pa.table({"text": ["x", "y"], "label": [1, 0]}).replace_schema_metadata(
        {"huggingface": json.dumps({"info": {"features": {"label": {"names": ["neg", "pos"], "_type": "ClassLabel"}}}})}
    )
    pq.write_table(table, tmp_path / "hf.parquet")
    assert read_examples(tmp_path / "hf.parquet").labels == ["pos", "neg"]
    pq.write_table(pa.table({"text": ["x"], "label": [3]}), tmp_path / "ints.parquet")
    assert read_examples(tmp_path / "ints.parquet").labels == ["3"]  # plain integers stay their digits


@pytest.mark.parametrize(
    "table,kwargs,message",
    [
        ({"body": ["x"], "label": ["a"]}, {}, r"b.parquet: no text column 'text'; columns found: 'body', 'label'"),
        ({"text": ["x"], "y": ["a"]}, {}, r"b.parquet: no label column 'label'; columns found: 'text', 'y'"),
        ({"text": [1, 2], "label": ["a", "b"]}, {}, r"b.parquet: the text column 'text' holds int64, not strings"),
        ({"text": ["x", None], "label": ["a", "b"]}, {}, r"b.parquet, row 2: no text \(null in column 'text'\)"),
        ({"text": ["x", "y"], "label": ["a", None]}, {}, r"b.parquet, row 2: no label \(null\)"),
        (
            {"text": pa.array([], pa.string()), "label": pa.array([], pa.string())},
            {},
            r"b.parquet: the file has no rows",
        ),
    ],
)
def test_bad_parquet_files(tmp_path, table, kwargs, message):
    pq.write_table(pa.table(table), tmp_path / "b.parquet")
    with pytest.raises(DataError, match=message):
        read_examples(tmp_path / "b.parquet", **kwargs)


def test_a_file_that_is_not_parquet(tmp_path):
    (tmp_path / "x.parquet").write_text("text,label\n")
    with pytest.raises(DataError, match=r"x.parquet: not a readable Parquet file"):
        read_examples(tmp_path / "x.parquet")
    with pytest.raises(DataError, match=r"nope.parquet: file not found"):
        read_examples(tmp_path / "nope.parquet")


def aclimdb(root):
    """aclImdb/train as it ships: neg/ and pos/ with a review per file, unsup/, and files beside them."""
    write_class_folders(root, [("bad", "neg"), ("awful", "neg"), ("great", "pos"), ("superb\n", "pos")])
    (root / "unsup").mkdir()
    (root / "unsup" / "9_0.txt").write_text("no label")
    (root / "urls_pos.txt").write_text("http://www.imdb.com/title/tt0453418/usercomments\n")
    (root / "labeledBow.feat").write_bytes(b"0:9 1:1\x00")
    (root / "pos" / ".DS_Store").write_bytes(b"\x00\x01")
    return root


def test_class_folders_read_class_by_class_with_their_files(tmp_path):
    root = aclimdb(tmp_path / "aclImdb" / "train")
    ex = read_examples(root, classes=["neg", "pos"])
    assert ex.texts == ["bad", "awful", "great", "superb"]  # a final line break is the editor's, not the text's
    assert ex.labels == ["neg", "neg", "pos", "pos"]
    assert ex.sources == [
        str(root / "neg" / "00000.txt"),
        str(root / "neg" / "00001.txt"),
        str(root / "pos" / "00002.txt"),
        str(root / "pos" / "00003.txt"),
    ]
    assert read_examples(root).labels.count("unsup") == 1  # every sub-folder is a class unless data.classes says
    assert read_texts(root / "pos") == ["great", "superb"]  # a plain folder of documents to classify
    assert read_texts(root / "pos", classes=["neg", "pos"]) == ["great", "superb"]  # as a run with data.classes
    assert read_texts(root, classes=["neg"]) == ["bad", "awful"]


@pytest.mark.parametrize(
    "build,kwargs,message",
    [
        (
            lambda r: (r / "pos").mkdir(parents=True),
            {},
            r"d: one class folder \('pos'\); a classifier needs at least two",
        ),
        (lambda r: r.mkdir(), {}, r"d: no sub-folders; a classifier needs at least two classes"),
        (lambda r: aclimdb(r), {"classes": ["neg", "positive"]}, r"d: no class folder 'positive' \(data.classes\)"),
        (lambda r: [(r / c).mkdir(parents=True) for c in ("a", "b")], {}, r"d/a: no files"),
    ],
)
def test_bad_class_folder_layouts(tmp_path, build, kwargs, message):
    build(tmp_path / "d")
    with pytest.raises(DataError, match=message):
        read_examples(tmp_path / "d", **kwargs)


def test_bad_files_in_class_folders_are_named(tmp_path):
    root = write_class_folders(tmp_path / "d", [("fine", "a"), ("good", "b")])
    (root / "b" / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00")
    with pytest.raises(DataError, match=r"d/b/photo.jpg: a binary file \(NUL bytes\), not text"):
        read_examples(root)
    (root / "b" / "photo.jpg").unlink()
    (root / "b" / "latin.txt").write_bytes("line one\ncafé".encode("latin-1"))
    with pytest.raises(DataError, match=r"d/b/latin.txt, line 2: bytes that are not utf-8 at byte offset 12"):
        read_examples(root)
    assert read_examples(root, encoding="latin-1").texts[-1] == "line one\ncafé"


def test_an_empty_text_file_is_named_when_skipped_or_refused(tmp_path):
    root = write_class_folders(tmp_path / "d", [("fine", "a"), ("", "b"), ("good", "b")])
    config = validate_config({"data": {"train": str(root)}}, "test")
    events = []
    examples, _ = read_labelled(config, str(root), events.append)
    assert examples.texts == ["fine", "good"]
    assert [e.message for e in events if isinstance(e, Info)] == [
        f"{root}: skipped 1 empty or whitespace-only texts (the first is {root / 'b' / '00001.txt'})"
    ]
    with pytest.raises(DataError, match=r"1 empty or whitespace-only texts \(the first is .*d/b/00001.txt\)"):
        drop_empty_texts(read_examples(root), root, policy="error")


def test_hf_datasets_on_disk_map_class_ids_to_names(tmp_path):
    names = ["World", "Sports", "Business"]
    texts, labels = ["a", "b", "c"], ["Sports", "World", "Business"]
    stream = write_hf_dataset(tmp_path / "stream", texts, labels, names)
    as_file = write_hf_dataset(tmp_path / "file", texts, labels, names, stream=False)  # the IPC file format
    for folder in (stream, as_file, stream / "data-00000-of-00001.arrow"):
        ex = read_examples(folder)
        assert (ex.texts, ex.labels) == (texts, labels), folder
    multi = write_hf_dataset(tmp_path / "multi", ["x", "y"], [["World", "Sports"], []], names, multi_label=True)
    assert read_examples(multi).labels == [["World", "Sports"], []]
    assert detect_format(multi) == "hf_disk" and detect_format(tmp_path / "stream" / "x.arrow") == "hf_disk"


def test_hf_dataset_dicts_take_a_split(tmp_path):
    root = write_hf_dataset_dict(tmp_path / "imdb", {"train": ROWS, "test": ROWS[:2]}, names=["neg", "pos"])
    assert detect_format(root) == "hf_disk"
    assert read_examples(root, split="test").texts == [t for t, _ in ROWS[:2]]
    assert read_examples(root / "train").labels == [lab for _, lab in ROWS]  # or the split's own folder
    with pytest.raises(
        DataError,
        match=r"imdb: a dataset of several splits \(train, test\); give one split's "
        r"folder \(.*imdb/train\) or set data.split",
    ):
        read_examples(root)
    with pytest.raises(DataError, match=r"imdb: no split 'valid' \(data.split\); its splits: train, test"):
        read_examples(root, split="valid")


def test_bad_hf_datasets(tmp_path):
    folder = write_hf_dataset(tmp_path / "glue", ["x", "y"], [0, -1], ["neg", "pos"])
    with pytest.raises(
        DataError,
        match=r"data-00000-of-00001.arrow, row 2: label -1 is not a class .* \(-1: an "
        "unlabelled split",
    ):
        read_examples(folder)
    (folder / "state.json").write_text('{"_data_files": [{"filename": "../../etc/passwd"}]}')
    with pytest.raises(DataError, match=r"state.json: expected \"_data_files\""):
        read_examples(folder)
    (folder / "state.json").write_text('{"_data_files": [{"filename": "gone.arrow"}]}')
    with pytest.raises(DataError, match=r"glue: data file gone.arrow is missing"):
        read_examples(folder)


def test_texts_come_in_bounded_blocks(tmp_path):
    rows = [(f"text number {i}", "a" if i % 2 else "b") for i in range(2500)]
    for fmt in FORMATS:
        path = write_format(fmt, tmp_path / f"d{SUFFIX[fmt]}", in_folder_order(rows))
        blocks = list(iter_texts(path, block_texts=1000))
        assert [len(b) for b in blocks] == [1000, 1000, 500], fmt
    (tmp_path / "big.txt").write_text(("x" * 1000 + "\n") * 50)
    blocks = list(iter_texts(tmp_path / "big.txt", block_texts=100))
    assert len(blocks) == 1 and len(blocks[0]) == 50


def test_an_unknown_format_is_named(tmp_path):
    with pytest.raises(DataError, match=r"d.csv: unknown format 'excel'; formats: csv, tsv, jsonl, fasttext"):
        read_examples(tmp_path / "d.csv", fmt="excel")
    with pytest.raises(DataError, match=r"unknown format 'txt'"):  # plain text has no labels
        read_examples(tmp_path / "d.csv", fmt="txt")


def test_prediction_input_takes_the_runs_settings(tmp_path):
    path = write_fasttext(tmp_path / "f.txt", [("great", "pos"), ("bad", "neg")], prefix="#")
    data = validate_config({"data": {"train": "x", "label_prefix": "#"}}, "test").data
    assert [t for b in input_blocks(str(path), data, fmt="fasttext") for t in b] == ["great", "bad"]
    with pytest.raises(DataError, match="parquet cannot be read from a stream; give a path"):
        read_texts(io.StringIO("x"), fmt="parquet")


@pytest.mark.parametrize(
    "data,message",
    [
        ({"format": "excel"}, "data.format"),
        ({"classes": ["pos"]}, "data.classes"),
        ({"classes": ["pos", "pos"]}, "data.classes: a class is named twice"),
        ({"label_prefix": ""}, "data.label_prefix"),
        ({"label_prefix": "__label__ "}, "data.label_prefix"),
    ],
)
def test_format_keys_are_checked_at_load(data, message):
    with pytest.raises(ConfigError, match=message):
        validate_config({"data": {"train": "x", **data}}, "test")


def test_reading_parquet_holds_a_few_pages_not_the_file(tmp_path):
    import os

    texts = [os.urandom(500).hex() for _ in range(20_000)]  # 20 MB of text that does not compress
    pq.write_table(
        pa.table({"text": texts, "label": ["a"] * len(texts)}), tmp_path / "big.parquet", row_group_size=2000
    )
    peak, read = 0, 0
    for block in iter_texts(tmp_path / "big.parquet", block_texts=1000):
        peak, read = max(peak, pa.total_allocated_bytes()), read + len(block)
    assert read == 20_000 and peak < 10 << 20  # 6 MB here; pyarrow's default pre-buffering kept all: 25 MB
