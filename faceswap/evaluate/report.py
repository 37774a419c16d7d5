"""The evaluation report: one self-contained HTML file (inline SVG plots, base64 PNG frames) and JSON,
plus the contact sheet as a standalone PNG next to the HTML (``report.html`` -> ``report_sheet.png``).

Sections (element ids, stable for tests and links): contact-sheet (first: what the face looks like),
summary, realism, expression, identity, landmarks, jitter, blending, loss, details. A comparison of
several outputs (``render_compare_html``): contact-sheet, comparison, then each method's checks.
"""

from __future__ import annotations

import base64
import json
import math
import os
import tempfile
from html import escape
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceswap.evaluate import metrics as m
from faceswap.evaluate import svg
from faceswap.evaluate.core import (
    MOUTH_STILL_STD,
    UNSWAPPED_MAX_DIFF,
    Comparison,
    EvalResult,
    format_threshold,
    format_value,
    sheet_key_for,
)
from faceswap.evaluate.faces import SAME_PERSON_DISTANCE
from faceswap.evaluate.sheet import encode_png

SECTIONS = (
    "contact-sheet",
    "summary",
    "realism",
    "expression",
    "identity",
    "landmarks",
    "jitter",
    "blending",
    "loss",
    "details",
)
COMPARE_SECTIONS = ("contact-sheet", "comparison", "checks")

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:980px;
color:#222;padding:0 12px}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;
font-size:13px}th{background:#f5f5f5}.pass{color:#0a7a2f;font-weight:bold}.fail{color:#b00020;
font-weight:bold}.info{color:#666}.verdict{font-size:18px;padding:8px 12px;display:inline-block;
border-radius:4px}.verdict.pass{background:#e6f4ea}.verdict.fail{background:#fdecea}
.sheet{display:flex;flex-wrap:wrap;gap:10px}.pair{border:1px solid #ddd;padding:4px;font-size:12px}
.pair img{display:inline-block;margin:0 1px}.note{background:#fff8e1;padding:6px 10px;margin:6px 0}
.plot{max-width:100%;height:auto}.sheet-img{max-width:100%;height:auto;border:1px solid #ddd}
"""


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:.0f}"
    return escape(str(value))


def _png_data_uri(image: np.ndarray) -> str:
    ok, data = cv2.imencode(".png", image)
    if not ok:
        return ""
    return "data:image/png;base64," + base64.b64encode(data.tobytes()).decode()


def _series(result: EvalResult, attr: str) -> tuple[list[float], list[float]]:
    xs = [f.time_s for f in result.frames]
    ys = [getattr(f, attr) for f in result.frames]
    return xs, [float(y) if y is not None else math.nan for y in ys]


def _check_rows(checks: list[dict[str, Any]]) -> str:
    rows = []
    for check in checks:
        shown = format_value(check["value"], check.get("unit", ""))
        if check["required"]:
            cls, text = ("pass", "PASS") if check["passed"] else ("fail", "FAIL")
        else:
            cls, text = "info", ("ok" if check["passed"] else "off target") + " (advisory)"
        rows.append(
            f"<tr><td>{escape(check['label'])}</td><td><code>{check['metric']}</code></td><td>{shown}</td>"
            f'<td>{escape(format_threshold(check))}</td><td><span class="{cls}">{text}</span></td></tr>'
        )
    return (
        "<table><tr><th>figure</th><th>metric</th><th>value</th><th>threshold</th><th>result</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _verdict(result: EvalResult) -> str:
    required = [c for c in result.checks if c["required"]]
    failed = [c for c in required if not c["passed"]]
    if not failed:
        return f"PASS: all {len(required)} required checks pass"
    return (
        f"FAIL: {len(failed)} of {len(required)} required checks fail ("
        + ", ".join(c["metric"] for c in failed)
        + ")"
    )


def _summary_section(result: EvalResult) -> str:
    s = result.summary
    verdict = "pass" if result.passed else "fail"
    notes = "".join(f'<div class="note">{escape(n)}</div>' for n in result.notes)
    return f"""
<section id="summary"><h2>Summary</h2>
<div class="verdict {verdict}">{escape(_verdict(result))}</div>
<p>{s["frames_with_face"]} of {s["frames_sampled"]} scored frames have a face (one frame in
{s["sample_every"]} of {s["frames_total"]}, {_num(s["fps"])} fps, {s["width"]}x{s["height"]});
B set: {result.b_set["faces"]} faces. Evaluated in {_num(s["seconds"])} s.</p>
{_check_rows(result.checks)}{notes}</section>"""


def _realism_section(result: EvalResult) -> str:
    s = result.summary
    xs = [f.time_s for f in result.frames]
    sharp = [m.safe_ratio(f.sharpness_swapped, f.sharpness_source) for f in result.frames]
    light = [f.light_swapped - f.light_source for f in result.frames]
    sharp_plot = svg.Plot(
        "Sharpness in the face (Laplacian variance, output / source)",
        "time (s)",
        "ratio",
        [svg.Line("sharpness ratio", xs, sharp)],
        hlines=[(0.8, "threshold 0.8x"), (1.0, "source")],
        y_min=0.0,
    )
    light_plot = svg.Plot(
        "Light in the face (mean L*, output minus source)",
        "time (s)",
        "L* difference",
        [svg.Line("light difference", xs, light)],
        hlines=[(3.0, "+3"), (-3.0, "-3"), (0.0, "source")],
    )
    return f"""
<section id="realism"><h2>Realism</h2>
<p>Measured inside the convex hull of the source face's 68 dlib landmarks (eroded by one border band),
on the same pixels of the source and the output frame. A face is left unswapped when its pixels there
differ from the source's by less than {UNSWAPPED_MAX_DIFF:g} grey levels on average, or when it still
reads as the source person (dlib distance to the source face under {SAME_PERSON_DISTANCE} and not
above the distance to B). Clipped highlights: L* &gt;= {m.CLIPPED_L:g} or a channel &gt;=
{m.CLIPPED_CHANNEL}.</p>
{svg.render(sharp_plot)}
{svg.render(light_plot)}
{
        _table(
            [
                ("Laplacian variance, source", s["sharpness_source"]),
                ("Laplacian variance, output", s["sharpness_swapped"]),
                ("sharpness ratio", s["sharpness_ratio"]),
                ("mean L*, source", s["light_source_l"]),
                ("mean L*, output", s["light_swapped_l"]),
                ("L* difference", s["light_delta_l"]),
                ("clipped highlights %, source", s["clipped_source_pct"]),
                ("clipped highlights %, output", s["clipped_swapped_pct"]),
                ("mean grey-level difference to the source face", s["face_difference"]),
                ("frames left unswapped", f"{s['unswapped_frames']} of {s['frames_with_face']}"),
            ]
        )
    }</section>"""


def _expression_section(result: EvalResult) -> str:
    s = result.summary
    xs = [f.time_s for f in result.frames]
    plots = []
    for name, title in (
        ("mouth_open", "Mouth opening (inner lips)"),
        ("eye_open", "Eye opening (eyelids)"),
        ("brow_height", "Brow height above the eye line"),
    ):
        _, src = _series(result, f"{name}_source")
        _, out = _series(result, f"{name}_swapped")
        plot = svg.Plot(
            f"{title}, / the face's inter-ocular distance",
            "time (s)",
            "inter-ocular distances",
            [svg.Line("source", xs, src, colour="#888"), svg.Line("output", xs, out, colour="#d62728")],
            y_min=0.0 if name != "brow_height" else None,
        )
        plots.append(svg.render(plot))
    rows = []
    for name in ("mouth_open", "eye_open", "brow_height"):
        rows += [
            (f"{name} correlation", s[f"{name}_corr"]),
            (f"{name} mean |difference|", s[f"{name}_diff"]),
            (
                f"{name} std source / output",
                f"{_num(s[name + '_source_std'])} / {_num(s[name + '_swapped_std'])}",
            ),
        ]
    return f"""
<section id="expression"><h2>Expression</h2>
<p>Per frame, on each face's own landmarks: inner-lip gap (points 61-67, 62-66, 63-65), eyelid gap
(37-41, 38-40, 43-47, 44-46) and brow height (17-26 above the line through the eye centres), each
divided by that face's inter-ocular distance, so B's own face shape does not count. The figures are
the Pearson correlations of the source's and the output's series over the scored frames. When the
source's mouth opening varies by less than {MOUTH_STILL_STD} (std), the mouth check compares the mean
difference instead.</p>
{"".join(plots)}
{_table(rows)}</section>"""


def _pct(share: Any) -> str:
    return f"{share * 100:.1f}%" if _ok(share) else "n/a"


def _ok(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _table(pairs: list[tuple[str, Any]]) -> str:
    return (
        "<table>" + "".join(f"<tr><th>{escape(k)}</th><td>{_num(v)}</td></tr>" for k, v in pairs) + "</table>"
    )


def _identity_section(result: EvalResult) -> str:
    s = result.summary
    xs, to_b = _series(result, "distance_to_b")
    _, to_src = _series(result, "distance_to_source")
    _, src_to_b = _series(result, "source_distance_to_b")
    plot = svg.Plot(
        "Identity over time (dlib 128-D distance)",
        "time (s)",
        "distance",
        [
            svg.Line("swapped to B set (mean)", xs, to_b),
            svg.Line("swapped to source face", xs, to_src),
            svg.Line("source face to B set", xs, src_to_b, colour="#aaa"),
        ],
        hlines=[(SAME_PERSON_DISTANCE, "same-person threshold 0.6")],
        y_min=0.0,
    )
    return f"""
<section id="identity"><h2>Identity</h2>
<p>A frame reads as B when the swapped face's mean distance to the B set is under
{SAME_PERSON_DISTANCE} and below its distance to the source face it replaced.</p>
{svg.render(plot)}
{
        _table(
            [
                ("read as B", f"{s['read_as_b_frames']} frames ({_pct(s['read_as_b_share'])})"),
                ("mean distance to B", s["mean_distance_to_b"]),
                ("mean distance to source face", s["mean_distance_to_source"]),
                ("source face to B (reference)", s["source_distance_to_b"]),
                ("swapped face found by the detector", _pct(s["swapped_detected_share"])),
                ("B set spread (mean pairwise distance)", result.b_set["spread"]),
            ]
        )
    }</section>"""


def _landmarks_section(result: EvalResult) -> str:
    s = result.summary
    xs, err = _series(result, "landmark_error_pct")
    plot = svg.Plot(
        "Landmark distance to the source face over time (advisory: B's own face shape counts too)",
        "time (s)",
        "% of inter-ocular distance",
        [svg.Line("mean 68-point distance, source vs swapped", xs, err)],
        hlines=[(5.0, "advisory 5%")],
        y_min=0.0,
    )
    return f"""
<section id="landmarks"><h2>Landmarks and pose (advisory)</h2>
{svg.render(plot)}
{_table([("mean landmark error %", s["landmark_error_pct"]), ("95th percentile %", s["landmark_error_p95_pct"])])}
</section>"""


def _jitter_section(result: EvalResult) -> str:
    s = result.summary
    xs, src = _series(result, "jitter_source_pct")
    _, out = _series(result, "jitter_swapped_pct")
    plot = svg.Plot(
        "Landmark jitter (second difference between sampled frames)",
        "time (s)",
        "% of inter-ocular distance",
        [svg.Line("source", xs, src, colour="#888"), svg.Line("swapped", xs, out, colour="#d62728")],
        y_min=0.0,
    )
    return f"""
<section id="jitter"><h2>Temporal stability</h2>
{svg.render(plot)}
{
        _table(
            [
                ("source jitter RMS %", s["jitter_source_pct"]),
                ("swapped jitter RMS %", s["jitter_swapped_pct"]),
                ("ratio swapped / source", s["jitter_ratio"]),
            ]
        )
    }</section>"""


def _blending_section(result: EvalResult) -> str:
    s = result.summary
    xs = [f.time_s for f in result.frames]
    ratio = [f.gradient_ratio for f in result.frames]
    _, de_src = _series(result, "delta_e_source")
    _, de_out = _series(result, "delta_e_swapped")
    _, shift = _series(result, "colour_shift_de")
    grad_plot = svg.Plot(
        "Gradient jump along the mask border (swapped / source, worst ring)",
        "time (s)",
        "ratio",
        [svg.Line("gradient ratio", xs, ratio)],
        hlines=[(1.5, "threshold 1.5x"), (1.0, "source")],
    )
    colour_plot = svg.Plot(
        "Colour step across the border (CIE76 delta E, inner vs outer band)",
        "time (s)",
        "delta E",
        [
            svg.Line("source", xs, de_src, colour="#888"),
            svg.Line("swapped", xs, de_out, colour="#d62728"),
            svg.Line("face colour shift (swapped vs source)", xs, shift, colour="#2ca02c"),
        ],
        y_min=0.0,
    )
    rings = ", ".join(f"{k}: {_num(v)}" for k, v in s["gradient_ratio_by_ring"].items())
    band_pct = f"{m.RING_WIDTH * 100:.0f}"
    return f"""
<section id="blending"><h2>Blending</h2>
<p>Measured on two thin bands along the convex hull of the source's 68 landmarks (where the new face
was pasted): ring 0 just inside the edge, ring 1 just outside (each {band_pct}% of the inter-ocular
distance wide). The same pixels of the source frame are the reference; the worse ring counts.</p>
{svg.render(grad_plot)}
{svg.render(colour_plot)}
{
        _table(
            [
                ("gradient on the border, source", s["gradient_source"]),
                ("gradient on the border, swapped", s["gradient_swapped"]),
                ("gradient jump ratio (worst ring)", s["gradient_jump_ratio"]),
                ("ratio per ring", rings),
                ("delta E across border, source", s["delta_e_source"]),
                ("delta E across border, swapped", s["delta_e_swapped"]),
                ("delta E ratio", s["delta_e_ratio"]),
                ("face colour shift (delta E)", s["colour_shift_de"]),
            ]
        )
    }</section>"""


def _contact_sheet_section(sheet: np.ndarray, caption: str) -> str:
    return f"""
<section id="contact-sheet"><h2>Contact sheet (source | output)</h2>
<p>{escape(caption)}</p>
<img class="sheet-img" alt="contact sheet: source and output face crops" src="{_png_data_uri(sheet)}">
</section>"""


def _loss_section(result: EvalResult) -> str:
    if not result.loss:
        return '<section id="loss"><h2>Training loss</h2><p>No loss log was given.</p></section>'
    lines = [
        svg.Line(name, [p[0] for p in points], [p[1] for p in points]) for name, points in result.loss.items()
    ]
    positive = all(p[1] > 0 for points in result.loss.values() for p in points)
    plot = svg.Plot("Training loss", "step", "loss" + (" (log)" if positive else ""), lines, log_y=positive)
    last = [(f"last {name}", points[-1][1]) for name, points in result.loss.items() if points]
    return f"""
<section id="loss"><h2>Training loss</h2>{svg.render(plot)}{_table(last)}</section>"""


def _details_section(result: EvalResult) -> str:
    b = result.b_set
    skipped = ", ".join(b["skipped"][:20]) or "none"
    return f"""
<section id="details"><h2>Inputs</h2>
{
        _table(
            [
                ("source video", result.source_video),
                ("swapped video", result.swapped_video),
                ("B faces used", ", ".join(b["sources"][:30])),
                ("B inputs skipped", skipped),
            ]
        )
    }
<p>Raw figures: the JSON report (same numbers, per frame).</p></section>"""


def render_html(result: EvalResult, sheet: np.ndarray | None = None) -> str:
    """The HTML report; ``sheet``: the contact sheet if already rendered (else it is rendered here)."""
    sheet = result.contact_sheet() if sheet is None else sheet
    title = f"Swap quality: {Path(result.swapped_video).name}"
    caption = (
        f"{len(result.thumbnails)} evenly spaced scored frames with a face; left the source, right the "
        "output, both cropped around the source's face box. Caption: frame, verdict, dlib distance to B."
    )
    sections = [
        _contact_sheet_section(sheet, caption),
        _summary_section(result),
        _realism_section(result),
        _expression_section(result),
        _identity_section(result),
        _landmarks_section(result),
        _jitter_section(result),
        _blending_section(result),
        _loss_section(result),
        _details_section(result),
    ]
    return _page(title, sections)


def _page(title: str, sections: list[str]) -> str:
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{CSS}</style></head><body><h1>{escape(title)}</h1>{''.join(sections)}</body></html>\n"
    )


def render_compare_html(comparison: Comparison, sheet: np.ndarray | None = None) -> str:
    """One report for several outputs of the same source: a sheet row per method, one table of every
    figure per method, then each method's checks."""
    sheet = comparison.contact_sheet() if sheet is None else sheet
    names = list(comparison.results)
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    rows = []
    for row in comparison.table():
        cells = []
        for name in names:
            shown = format_value(row["values"].get(name), row["unit"])
            passed = row["passed"].get(name)
            cls = "" if passed is None or not row["required"] else ("pass" if passed else "fail")
            cells.append(f'<td class="{cls}">{shown}</td>' if cls else f"<td>{shown}</td>")
        limit = escape(format_threshold(row)) if row["op"] else ""
        kind = "required" if row["required"] else ("advisory" if row["op"] else "")
        rows.append(
            f"<tr><td>{escape(row['label'])}<br><code>{row['metric']}</code></td><td>{limit}</td>"
            f"<td>{kind}</td>{''.join(cells)}</tr>"
        )
    verdicts = "".join(
        f'<td class="{"pass" if r.passed else "fail"}">{"PASS" if r.passed else "FAIL"}</td>'
        for r in comparison.results.values()
    )
    per_method = "".join(
        f"<h3>{escape(name)}: {escape(_verdict(r))}</h3><p>{escape(r.swapped_video)}</p>{_check_rows(r.checks)}"
        + "".join(f'<div class="note">{escape(n)}</div>' for n in r.notes)
        for name, r in comparison.results.items()
    )
    first = next(iter(comparison.results.values()))
    s = first.summary
    sections = [
        _contact_sheet_section(
            sheet,
            "Top row: the source's face; one row per method below, the same frames in every column, "
            "cropped around the source's face box.",
        ),
        f"""
<section id="comparison"><h2>Figures per method</h2>
<p>Source {escape(comparison.source_video)}: {s["frames_with_face"]} of {s["frames_sampled"]} scored
frames have a face (one frame in {s["sample_every"]}); B set: {first.b_set["faces"]} faces.</p>
<table><tr><th>figure</th><th>threshold</th><th></th>{head}</tr>
<tr><th>passed</th><td></td><td></td>{verdicts}</tr>{"".join(rows)}</table></section>""",
        f'<section id="checks"><h2>Checks per method</h2>{per_method}</section>',
    ]
    return _page(f"Swap quality: {len(names)} methods compared", sections)


def render_json(result: EvalResult) -> str:
    return json.dumps(result.to_dict(), indent=1, allow_nan=False)


def _atomic_write(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a report is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sheet_path_for(report: str | Path) -> Path:
    """``report.html`` -> ``report_sheet.png`` in the same folder."""
    report = Path(report)
    return report.with_name(Path(sheet_key_for(report.name)).name)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(result: EvalResult, path: str | Path, sheet_path: str | Path | None = None) -> Path:
    """Writes the HTML report and the contact sheet PNG (default: ``<report>_sheet.png`` beside it);
    returns the sheet's path."""
    sheet = result.contact_sheet()
    sheet_path = Path(sheet_path) if sheet_path else sheet_path_for(path)
    _atomic_write_bytes(sheet_path, encode_png(sheet))
    _atomic_write(path, render_html(result, sheet=sheet))
    return sheet_path


def write_json(result: EvalResult, path: str | Path) -> None:
    _atomic_write(path, render_json(result))


def write_compare_report(
    comparison: Comparison, path: str | Path, sheet_path: str | Path | None = None
) -> Path:
    sheet = comparison.contact_sheet()
    sheet_path = Path(sheet_path) if sheet_path else sheet_path_for(path)
    _atomic_write_bytes(sheet_path, encode_png(sheet))
    _atomic_write(path, render_compare_html(comparison, sheet=sheet))
    return sheet_path


def write_compare_json(comparison: Comparison, path: str | Path) -> None:
    _atomic_write(path, json.dumps(comparison.to_dict(), indent=1, allow_nan=False))
