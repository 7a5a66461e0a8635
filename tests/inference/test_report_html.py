"""llmcls.inference.report_html: the evaluation report as one self-contained page. Reports are made as
`evaluate_file` makes them (scoring, calibration and error analysis of known probabilities), so every number on
the page can be checked: the confusion cells and their shading, the per-class scores, the bars of the reliability
diagram; hostile labels, texts and names are escaped, nothing is fetched, and the file is written atomically."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pytest

from llmcls.errors import WriteError
from llmcls.inference.calibration import calibration
from llmcls.inference.error_analysis import error_report
from llmcls.inference.report_html import reliability_svg, report_html, write_report_html
from llmcls.inference.scoring import report as score

HOSTILE_LABEL = "<b>a&b</b>"
HOSTILE_TEXT = "<img src=x onerror=alert(1)> & more"
LABELS = [HOSTILE_LABEL, "plain", "z\"q'", "unseen"]
# the true classes, and the class each text's probabilities favour: confusion rows
# [2 1 0 0], [0 1 1 0], [0 0 1 0], [0 0 0 0]
TARGETS = np.array([0, 0, 0, 1, 1, 2])
PROBS = np.array(
    [
        [0.9, 0.05, 0.03, 0.02],
        [0.6, 0.2, 0.1, 0.1],
        [0.3, 0.5, 0.1, 0.1],
        [0.1, 0.8, 0.05, 0.05],
        [0.1, 0.2, 0.65, 0.05],
        [0.05, 0.05, 0.85, 0.05],
    ]
)
TEXTS = ["fine", "good", HOSTILE_TEXT, "ok", "meh", "bad"]


def evaluation(probs=PROBS, targets=TARGETS, labels=LABELS, texts=TEXTS, path="valid<1>.csv") -> dict:
    """A report as llmcls.inference.evaluate.evaluate_file builds one."""
    report = score(probs, targets, labels=labels)
    report["calibration"] = calibration(probs, targets)
    report.update(error_report(probs, targets, texts=texts, report=report))
    report["path"] = path
    return report


class Structure(HTMLParser):
    """Tags opened and closed, the text, and every attribute value of a page."""

    def __init__(self):
        super().__init__()
        self.opened, self.closed, self.text, self.attributes = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.opened.append(tag)
        self.attributes += [value or "" for _, value in attrs]

    def handle_endtag(self, tag):
        self.closed.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def parsed(page: str) -> Structure:
    structure = Structure()
    structure.feed(page)
    structure.close()
    return structure


def test_the_confusion_matrix_cells_are_the_counts_shaded_by_their_share_of_the_true_class():
    report = evaluation()
    assert report["confusion_matrix"] == [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    page = report_html(report, "run-1")
    cells = re.findall(r"<td class=n style='background: rgba\(40, 90, 180, ([0-9.]+)\)'>(\d+)</td>", page)
    assert cells == [
        ("0.50", "2"),
        ("0.25", "1"),
        ("0.00", "0"),
        ("0.00", "0"),
        ("0.00", "0"),
        ("0.38", "1"),
        ("0.38", "1"),
        ("0.00", "0"),
        ("0.00", "0"),
        ("0.00", "0"),
        ("0.75", "1"),
        ("0.00", "0"),
        ("0.00", "0"),
        ("0.00", "0"),
        ("0.00", "0"),
        ("0.00", "0"),
    ]  # a class never true: no division


def test_the_scores_on_the_page_are_the_reports():
    report = evaluation()
    page = report_html(report, "run-1")
    text = " ".join(parsed(page).text)
    summary = re.findall(r"<tr><td>([^<]+)</td><td>([^<]*)</td></tr>", page)
    assert summary == [
        ("run", "run-1"),
        ("data", "valid&lt;1&gt;.csv"),
        ("texts", "6"),
        ("accuracy", f"{4 / 6:.4f}"),
        ("macro-F1", f"{report['macro_f1']:.4f}"),
        ("loss", f"{report['loss']:.4f}"),
        ("ECE", f"{report['calibration']['ece']:.4f}"),
    ]
    for label in LABELS:
        c = report["per_class"][label]
        assert f"{c['precision']:.4f}" in text and f"{c['recall']:.4f}" in text and f"{c['f1']:.4f}" in text
    assert report["per_class"]["plain"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert f"2 of {report['n_mistakes']} wrong answers, the most confident first" in text
    mistakes = re.findall(r"<tr><td>(\d+)</td><td>([^<]*)</td>", page)
    assert [int(i) for i, _ in mistakes] == [m["index"] for m in report["mistakes"]] == [4, 2]  # 0.65, then 0.5
    assert mistakes[1][1] == "&lt;img src=x onerror=alert(1)&gt; &amp; more"


def test_hostile_labels_texts_and_names_are_escaped():
    page = report_html(evaluation(), "<script>alert('run')</script>")
    assert "<script" not in page and "<img" not in page and "<b>a" not in page
    assert "&lt;script&gt;alert(&#x27;run&#x27;)&lt;/script&gt;" in page
    assert "&lt;b&gt;a&amp;b&lt;/b&gt;" in page and "z&quot;q&#x27;" in page
    structure = parsed(page)
    assert HOSTILE_LABEL in " ".join(structure.text)  # shown as text, not as markup
    assert set(structure.opened) <= {
        "html",
        "head",
        "meta",
        "title",
        "style",
        "body",
        "h1",
        "h2",
        "h3",
        "p",
        "b",
        "table",
        "tr",
        "th",
        "td",
        "svg",
        "rect",
        "line",
        "text",
    }
    assert structure.opened.count("b") == 1  # the ECE's own <b>, not the label's
    assert structure.opened.count("table") == structure.closed.count("table")


def test_nothing_is_fetched_when_the_page_is_shown(tmp_path):
    page = report_html(evaluation(), "run")
    structure = parsed(page)
    assert "script" not in structure.opened and "link" not in structure.opened and "img" not in structure.opened
    assert not [v for v in structure.attributes if "//" in v or v.startswith("data:")]
    assert "url(" not in page and "@import" not in page and "http" not in page


def test_the_reliability_diagram_draws_one_bar_a_non_empty_bin_as_high_as_its_accuracy():
    c = calibration(PROBS, TARGETS)
    svg = reliability_svg(c, size=360)
    inner = 360 - 58
    bars = re.findall(
        r"<rect x=([0-9.]+) y=([0-9.]+) width=([0-9.]+) height=([0-9.]+) fill='#3568b8' "
        r"stroke='#fff'><title>(\d+) forecasts",
        svg,
    )
    full = [b for b in c["bins"] if b["count"]]
    assert len(bars) == len(full) == 6 and sum(b["count"] for b in full) == 6 and len(c["bins"]) == 15
    for (x, _, width, height, count), b in zip(bars, full):
        assert float(height) == pytest.approx(b["accuracy"] * inner, abs=0.06)
        assert float(x) == pytest.approx(44 + b["lower"] * inner, abs=0.06)
        assert float(width) == pytest.approx((b["upper"] - b["lower"]) * inner, abs=0.1)
        assert int(count) == b["count"]
    gaps = re.findall(r"height=([0-9.]+) fill='rgba\(220, 50, 50, 0.45\)'", svg)
    assert [float(g) for g in gaps] == pytest.approx(
        [abs(b["accuracy"] - b["confidence"]) * inner for b in full], abs=0.1
    )
    assert f"<line x1=44 y1={360 - 44 + 14} x2={44 + inner} y2={360 - 44 + 14 - inner}" in svg  # the diagonal


def test_what_was_not_measured_is_said_and_a_multi_label_report_has_no_confusion_matrix():
    report = evaluation()
    for key in ("calibration", "mistakes"):
        report.pop(key)
    page = report_html(report, "run")
    assert page.count("<p class=note>Not measured.</p>") == 2 and "ECE" not in page

    targets = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    probs = np.array([[0.9, 0.2, 0.7], [0.3, 0.6, 0.1], [0.8, 0.4, 0.2], [0.1, 0.1, 0.6]])
    multi = evaluation(probs, targets, ["LOC", "NUM", "HUM"], ["a", "b", "c", "d"], "m.jsonl")
    page = report_html(multi, "multi")
    assert "Does not apply to a multi-label run" in page and "rgba(40, 90, 180" not in page
    summary = dict(re.findall(r"<tr><td>([^<]+)</td><td>([^<]*)</td></tr>", page))
    assert summary["micro-F1"] == f"{multi['micro_f1']:.4f}" and summary["subset accuracy"] == "0.5000"
    assert "accuracy" not in summary and "<th>predicted</th>" in page
    assert "every class probability of every text" in page and "wrong label sets" in page
    assert "<h3>Confusions</h3><p class=note>Do not apply to a multi-label run.</p>" in page
    assert re.search(r"<td>c</td><td>LOC, NUM</td><td>LOC</td>", page)  # true and predicted label sets, named
    assert "<td>d</td><td>(none)</td><td>HUM</td>" in page


def test_the_file_is_the_page_written_atomically(tmp_path):
    report = evaluation()
    path = write_report_html(report, "run", tmp_path / "report.html")
    assert path == tmp_path / "report.html"
    assert path.read_text(encoding="utf-8") == report_html(report, "run")
    assert path.read_bytes().startswith(b"<!DOCTYPE html>") and path.read_bytes().endswith(b"</html>\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]  # no temporary file left
    with pytest.raises(WriteError, match="report.html: cannot write"):
        write_report_html(report, "run", tmp_path / "missing" / "report.html")
