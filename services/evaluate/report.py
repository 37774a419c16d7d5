"""The evaluation report: one self-contained HTML file (inline SVG plots, base64 PNG frames) and JSON.

Sections (element ids, stable for tests and links): summary, identity, landmarks, jitter, blending,
contact-sheet, loss, details.
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

from services.evaluate import metrics as m
from services.evaluate import svg
from services.evaluate.core import EvalResult
from services.evaluate.faces import SAME_PERSON_DISTANCE

SECTIONS = ("summary", "identity", "landmarks", "jitter", "blending", "contact-sheet", "loss", "details")

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
.plot{max-width:100%;height:auto}
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


def _summary_section(result: EvalResult) -> str:
    s = result.summary
    verdict = "pass" if result.passed else "fail"
    rows = []
    for check in result.checks:
        value, metric = check["value"], check["metric"]
        share = metric.endswith("_share")
        unit = "%" if share or metric.endswith("_pct") else "x" if metric.endswith("_ratio") else ""
        shown = f"{value * 100:.1f}%" if share and _ok(value) else _num(value) + (unit if _ok(value) else "")
        limit = check["threshold"] * 100 if share else check["threshold"]
        if check["required"]:
            status = f'<span class="{"pass" if check["passed"] else "fail"}">' + (
                "PASS" if check["passed"] else "FAIL"
            )
        else:
            status = '<span class="info">' + ("ok" if check["passed"] else "above target") + " (advisory)"
        rows.append(
            f"<tr><td>{escape(check['label'])}</td><td><code>{check['metric']}</code></td><td>{shown}</td>"
            f"<td>{check['op']} {_num(float(limit))}{unit}</td><td>{status}</span></td></tr>"
        )
    notes = "".join(f'<div class="note">{escape(n)}</div>' for n in result.notes)
    return f"""
<section id="summary"><h2>Summary</h2>
<div class="verdict {verdict}">{"PASS" if result.passed else "FAIL"}: issue 11 thresholds</div>
<p>{s["frames_with_face"]} of {s["frames_sampled"]} scored frames have a face (one frame in
{s["sample_every"]} of {s["frames_total"]}, {_num(s["fps"])} fps, {s["width"]}x{s["height"]});
B set: {result.b_set["faces"]} faces. Evaluated in {_num(s["seconds"])} s.</p>
<table><tr><th>figure</th><th>metric</th><th>value</th><th>threshold</th><th>result</th></tr>
{"".join(rows)}</table>{notes}</section>"""


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
        "Landmark error over time (expression and pose kept)",
        "time (s)",
        "% of inter-ocular distance",
        [svg.Line("mean 68-point distance, source vs swapped", xs, err)],
        hlines=[(5.0, "threshold 5%")],
        y_min=0.0,
    )
    return f"""
<section id="landmarks"><h2>Expression and pose</h2>
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
        hlines=[(1.2, "threshold 1.2x"), (1.0, "source")],
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


def _contact_sheet_section(result: EvalResult) -> str:
    by_index = {f.index: f for f in result.frames}
    cells = []
    for index, source, swapped in result.thumbnails:
        frame = by_index.get(index)
        caption = f"frame {index}"
        if frame is not None:
            caption += (
                f" · to B {_num(frame.distance_to_b, 2)} · "
                f"{'reads as B' if frame.reads_as_b else 'not B'} · LM {_num(frame.landmark_error_pct, 2)}%"
            )
        cells.append(
            f'<div class="pair"><img alt="source frame {index}" src="{_png_data_uri(source)}">'
            f'<img alt="swapped frame {index}" src="{_png_data_uri(swapped)}"><br>{escape(caption)}</div>'
        )
    body = "".join(cells) or "<p>No frame with a face.</p>"
    return f"""
<section id="contact-sheet"><h2>Contact sheet (source | swapped)</h2>
<div class="sheet">{body}</div></section>"""


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


def render_html(result: EvalResult) -> str:
    title = f"Swap quality: {Path(result.swapped_video).name}"
    sections = [
        _summary_section(result),
        _identity_section(result),
        _landmarks_section(result),
        _jitter_section(result),
        _blending_section(result),
        _contact_sheet_section(result),
        _loss_section(result),
        _details_section(result),
    ]
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{CSS}</style></head><body><h1>{escape(title)}</h1>{''.join(sections)}</body></html>\n"
    )


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


def write_report(result: EvalResult, path: str | Path) -> None:
    _atomic_write(path, render_html(result))


def write_json(result: EvalResult, path: str | Path) -> None:
    _atomic_write(path, render_json(result))
