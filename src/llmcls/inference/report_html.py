"""An evaluation report as one self-contained HTML file: the scores, the confusion matrix, per-class scores, the
reliability diagram (inline SVG) with the ECE, and the most confident mistakes.

It lives beside `evaluate.py` rather than under `cli/` because it is a file made from a report, as the run's plots
are, not terminal output: any layer above inference (the server's pages too) may write one. Nothing is fetched
when the page is shown: the CSS is inline, the diagram is SVG in the page, there is no script.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from llmcls.fileio import atomic_write_text
from llmcls.records import CalibrationReport, Report

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 980px; color: #222; padding: 0 1em; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { padding: 3px 9px; border: 1px solid #ddd; }
th { background: #f4f4f4; text-align: left; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #666; } .summary td:first-child { font-weight: 600; }
"""


def _table(header: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    """An HTML table of already escaped cells; columns from `numeric_from` on are right-aligned."""
    head = "".join(f"<th>{cell}</th>" for cell in header)
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=n' if j >= numeric_from else ''}>{cell}</td>" for j, cell in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _summary(report: Report, run: str) -> str:
    """The run, the data and the headline scores."""
    rows = [["run", escape(run)], ["data", escape(str(report.get("path", "")))], ["texts", str(report["n"])]]
    if report.get("multi_label"):
        rows += [["micro-F1", f"{report['micro_f1']:.4f}"], ["subset accuracy", f"{report['accuracy']:.4f}"]]
    else:
        rows += [["accuracy", f"{report['accuracy']:.4f}"]]
    rows += [["macro-F1", f"{report['macro_f1']:.4f}"]]
    if "loss" in report:
        rows.append(["loss", f"{report['loss']:.4f}"])
    if "calibration" in report:
        rows.append(["ECE", f"{report['calibration']['ece']:.4f}"])
    return f"<table class=summary>{''.join(f'<tr><td>{a}</td><td>{b}</td></tr>' for a, b in rows)}</table>"


def _confusion(report: Report) -> str:
    """The confusion matrix, each cell shaded by its share of the true class; multi-label: why there is none."""
    if "confusion_matrix" not in report:
        return (
            "<p class=note>Does not apply to a multi-label run: a text may have several labels, so no single "
            "true or predicted class. See the per-class precision and recall.</p>"
        )
    labels = report["labels"]
    rows = []
    for label, row in zip(labels, report["confusion_matrix"]):
        total = sum(row) or 1
        cells = [f"<td class=n style='background: rgba(40, 90, 180, {0.75 * v / total:.2f})'>{v}</td>" for v in row]
        rows.append(f"<tr><th>{escape(label)}</th>{''.join(cells)}</tr>")
    head = "".join(f"<th>{escape(label)}</th>" for label in labels)
    return (
        f"<p class=note>rows: true class, columns: predicted class</p>"
        f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>"
    )


def _per_class(report: Report) -> str:
    """Per class: precision, recall, F1 and support (multi-label: and how often predicted)."""
    multi = bool(report.get("multi_label"))
    header = ["class", "precision", "recall", "F1", "support"] + (["predicted"] if multi else [])
    rows = []
    for label in report["labels"]:
        c = report["per_class"][label]
        rows.append(
            [escape(label), f"{c['precision']:.4f}", f"{c['recall']:.4f}", f"{c['f1']:.4f}", str(c["support"])]
            + ([str(c["predicted"])] if multi else [])
        )
    return _table(header, rows)


def reliability_svg(calibration: CalibrationReport, size: int = 360) -> str:
    """The reliability diagram as inline SVG: per non-empty bin, a bar as high as its accuracy over the bin's
    confidence range, the gap to its mean confidence in red, and the diagonal of perfect calibration."""
    pad, inner = 44, size - 58  # room for the axes' labels on the left and below

    def x(v: float) -> float:  # a confidence or probability as a horizontal position
        return pad + v * inner

    def y(v: float) -> float:  # an accuracy as a vertical position (SVG's y grows downwards)
        return size - pad + 14 - v * inner

    parts = [
        f"<svg width={size} height={size} viewBox='0 0 {size} {size}' role=img aria-label='reliability diagram'>",
        f"<rect x={x(0)} y={y(1)} width={inner} height={inner} fill='#fafafa' stroke='#999'/>",
    ]
    for b in calibration["bins"]:
        if not b["count"]:
            continue
        left, width = x(b["lower"]), x(b["upper"]) - x(b["lower"])
        top, mean = y(b["accuracy"]), y(b["confidence"])
        parts.append(
            f"<rect x={left:.1f} y={top:.1f} width={width:.1f} height={y(0) - top:.1f} fill='#3568b8' "
            f"stroke='#fff'><title>{b['count']} forecasts, confidence {b['confidence']:.3f}, accuracy "
            f"{b['accuracy']:.3f}</title></rect>"
        )
        parts.append(
            f"<rect x={left:.1f} y={min(top, mean):.1f} width={width:.1f} height={abs(top - mean):.1f} "
            f"fill='rgba(220, 50, 50, 0.45)'/>"
        )
    parts.append(f"<line x1={x(0)} y1={y(0)} x2={x(1)} y2={y(1)} stroke='#555' stroke-dasharray='4 3'/>")
    for v in (0, 0.25, 0.5, 0.75, 1):
        parts.append(f"<text x={x(v):.1f} y={y(0) + 16:.1f} font-size=11 text-anchor=middle>{v:g}</text>")
        parts.append(f"<text x={x(0) - 6:.1f} y={y(v) + 4:.1f} font-size=11 text-anchor=end>{v:g}</text>")
    parts.append(f"<text x={x(0.5):.1f} y={size - 4} font-size=12 text-anchor=middle>confidence</text>")
    parts.append(
        f"<text x=12 y={y(0.5):.1f} font-size=12 text-anchor=middle "
        f"transform='rotate(-90 12 {y(0.5):.1f})'>accuracy</text>"
    )
    return "".join(parts) + "</svg>"


def _calibration(report: Report) -> str:
    """The reliability diagram, the ECE and the bins as a table."""
    c = report.get("calibration")
    if c is None:
        return "<p class=note>Not measured.</p>"
    what = (
        "each text's top-class probability against whether that class is right"
        if c["over"] == "top-class confidence"
        else "every class probability of every text against whether the label is present"
    )
    rows = [
        [
            f"{b['lower']:.3f}&ndash;{b['upper']:.3f}",
            str(b["count"]),
            "" if b["confidence"] is None else f"{b['confidence']:.3f}",
            "" if b["accuracy"] is None else f"{b['accuracy']:.3f}",
        ]
        for b in c["bins"]
        if b["count"]
    ]
    return (
        f"<p>ECE <b>{c['ece']:.4f}</b> over {c['n_bins']} equal-width bins: {what}. Blue: accuracy per bin; "
        f"red tint: the gap to the bin's mean confidence; dashed: perfect calibration.</p>{reliability_svg(c)}"
        + _table(["confidence", "count", "mean confidence", "accuracy"], rows)
    )


def _names(answer: str | list[str]) -> str:
    return escape(answer if isinstance(answer, str) else ", ".join(answer) or "(none)")


def _mistakes(report: Report) -> str:
    """The most confident mistakes, and the largest confusions."""
    mistakes = report.get("mistakes")
    if mistakes is None:
        return "<p class=note>Not measured.</p>"
    what = "label sets" if report.get("multi_label") else "answers"
    out = f"<p>{len(mistakes)} of {report['n_mistakes']} wrong {what}, the most confident first.</p>"
    out += _table(
        ["#", "text", "true", "predicted", "confidence"],
        [
            [str(m["index"]), escape(m["text"]), _names(m["true"]), _names(m["predicted"]), f"{m['confidence']:.3f}"]
            for m in mistakes
        ],
        numeric_from=4,
    )
    confusions = report.get("confusions")
    if confusions is None:
        return out + "<h3>Confusions</h3><p class=note>Do not apply to a multi-label run.</p>"
    rows = [[escape(c["true"]), escape(c["predicted"]), str(c["count"]), f"{c['share']:.1%}"] for c in confusions]
    return out + "<h3>Confusions</h3>" + _table(["true", "predicted", "count", "share of the true class"], rows, 2)


def report_html(report: Report, run: str) -> str:
    """The page of an evaluation report (llmcls.inference.evaluate.evaluate_file's) of the run named `run`."""
    title = f"llmcls eval: {run} on {report.get('path', 'data')}"
    sections = [
        ("Scores", _summary(report, run)),
        ("Confusion matrix", _confusion(report)),
        ("Per class", _per_class(report)),
        ("Calibration", _calibration(report)),
        ("Most confident mistakes", _mistakes(report)),
    ]
    body = "".join(f"<h2>{name}</h2>{html}" for name, html in sections)
    return (
        f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>\n"
    )


def write_report_html(report: Report, run: str, path: str | Path) -> Path:
    """Write `report_html` to `path` atomically (llmcls.fileio).

    Raises:
        WriteError: the file cannot be written.
    """
    path = Path(path)
    atomic_write_text(path, report_html(report, run))
    return path
