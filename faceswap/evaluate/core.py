"""Evaluate a swap: identity (does the face read as B?), realism (sharpness, light, clipped highlights,
frames left unswapped, inside the source face's landmark hull), expression kept (mouth, eyes, brows
over time, each in the face's own size), temporal stability and blending, per sampled frame, plus the
summary checked against the thresholds in ``THRESHOLDS``.

Public API (what the orchestrator and the CLI call):
- ``evaluate(source_video, swapped_video, faces_b, *, sample_every=3, max_frames=100, ...) -> EvalResult``
- ``evaluate_many(source_video, {name: swapped_video}, faces_b, ...) -> Comparison`` (several outputs
  of one source: B set and source analysis computed once)
- ``evaluate_job(store, source_key, output_key, faces_b, report_key, json_key, loss_log_key=None, ...)``
- ``EvalResult.to_dict()`` (the JSON report); ``faceswap.evaluate.report`` renders the HTML.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceswap.errors import InvalidArgument
from faceswap.evaluate import events
from faceswap.evaluate import metrics as m
from faceswap.evaluate.faces import SAME_PERSON_DISTANCE, FaceAnalyzer
from faceswap.evaluate.inputs import (
    evenly_spaced,
    expand_face_set,
    open_video,
    paired_frames,
    read_image,
    sample_video_frames,
)
from faceswap.evaluate.loss_log import Series, load_loss_log
from faceswap.evaluate.sheet import THUMB, comparison_sheet, contact_sheet, face_crop
from faceswap.jsonsafe import json_safe

log = logging.getLogger(__name__)

# Thresholds for ``passed`` ("required") and advisory targets. ``unit`` says how a value is shown:
# share (0..1 shown as %), x (ratio), L* (CIELAB lightness), pp (percentage points), frames, r (Pearson).
THRESHOLDS: list[dict[str, Any]] = [
    {"metric": "read_as_b_share", "op": ">=", "threshold": 0.90, "required": True, "unit": "share",
     "label": "frames whose face reads as B (dlib distance to B < 0.6 and below the distance to the source face)"},
    {"metric": "sharpness_ratio", "op": ">=", "threshold": 0.8, "required": True, "unit": "x",
     "label": "sharpness in the face (Laplacian variance) vs the source's"},
    {"metric": "light_delta_l", "op": "abs<=", "threshold": 3.0, "required": True, "unit": "L*",
     "label": "mean lightness of the face minus the source's"},
    {"metric": "clipped_excess_pct", "op": "<=", "threshold": 0.5, "required": True, "unit": "pp",
     "label": "clipped highlights in the face beyond the source's"},
    {"metric": "unswapped_frames", "op": "==", "threshold": 0, "required": True, "unit": "frames",
     "label": "frames with a face left unswapped (face unchanged, or still reads as the source person)"},
    {"metric": "mouth_open_corr", "op": ">=", "threshold": 0.8, "required": True, "unit": "r",
     "label": "mouth opening follows the source's (correlation over time)"},
    {"metric": "gradient_jump_ratio", "op": "<=", "threshold": 1.5, "required": True, "unit": "x",
     "label": "gradient jump along the face border vs the source's (a hard paste scores 2.2-2.5x)"},
    {"metric": "eye_open_corr", "op": ">=", "threshold": 0.6, "required": False, "unit": "r",
     "label": "eye opening follows the source's (blinks)"},
    {"metric": "brow_height_corr", "op": ">=", "threshold": 0.5, "required": False, "unit": "r",
     "label": "brow height follows the source's"},
    {"metric": "landmark_error_pct", "op": "<", "threshold": 5.0, "required": False, "unit": "%",
     "label": "landmark distance to the source face, % of inter-ocular distance (B's own face shape counts too)"},
    {"metric": "jitter_ratio", "op": "<=", "threshold": 1.5, "required": False, "unit": "x",
     "label": "landmark jitter vs the source's"},
    {"metric": "delta_e_ratio", "op": "<=", "threshold": 1.5, "required": False, "unit": "x",
     "label": "colour step across the face border vs the source's"},
]  # fmt: skip

# When the source's mouth barely moves (std of the opening under this, in inter-ocular distances), a
# correlation measures landmark noise: the mouth check then asks that the output's mouth stays as
# closed as the source's (mean absolute difference of the openings <= MOUTH_STILL_MAX_DIFF).
MOUTH_STILL_STD = 0.02
MOUTH_STILL_MAX_DIFF = 0.05
# A face is left unswapped when its pixels inside the hull differ from the source's by less than this
# (mean absolute grey levels; re-encoding alone costs about 1).
UNSWAPPED_MAX_DIFF = 2.0
EXPRESSION_FIGURES = ("mouth_open", "eye_open", "brow_height")


@dataclass
class FrameMetrics:
    index: int
    time_s: float
    face: bool = False  # a face was found in the source frame
    swapped_detected: bool = False  # the detector found the swapped face too (else the source box)
    distance_to_b: float = math.nan
    distance_to_source: float = math.nan
    source_distance_to_b: float = math.nan
    reads_as_b: bool = False
    landmark_error_pct: float = math.nan
    jitter_source_pct: float = math.nan
    jitter_swapped_pct: float = math.nan
    gradient_source: list[float] = field(default_factory=list)
    gradient_swapped: list[float] = field(default_factory=list)
    delta_e_source: float = math.nan
    delta_e_swapped: float = math.nan
    colour_shift_de: float = math.nan
    # realism, on the source hull's interior (the same pixels of both frames)
    sharpness_source: float = math.nan
    sharpness_swapped: float = math.nan
    light_source: float = math.nan  # mean L*
    light_swapped: float = math.nan
    clipped_source: float = math.nan  # share of pixels
    clipped_swapped: float = math.nan
    face_difference: float = math.nan  # mean absolute grey-level difference, swapped vs source
    reads_as_source: bool = False
    unswapped: bool = False
    # expression, each / that face's own inter-ocular distance
    mouth_open_source: float = math.nan
    mouth_open_swapped: float = math.nan
    eye_open_source: float = math.nan
    eye_open_swapped: float = math.nan
    brow_height_source: float = math.nan
    brow_height_swapped: float = math.nan

    @property
    def gradient_ratio(self) -> float:
        """Worst ring's swapped/source gradient ratio in this frame."""
        ratios = [
            m.safe_ratio(s, o) for s, o in zip(self.gradient_swapped, self.gradient_source, strict=False)
        ]
        ratios = [r for r in ratios if not math.isnan(r)]
        return max(ratios) if ratios else math.nan


@dataclass
class BSet:
    embeddings: np.ndarray  # (n, 128)
    sources: list[str]  # where each embedding came from
    skipped: list[str]  # inputs without a usable face

    @property
    def spread(self) -> float:
        """Mean pairwise distance inside the B set (same person: ~0.3-0.5)."""
        n = len(self.embeddings)
        if n < 2:
            return math.nan
        d = [m.mean_distance(self.embeddings[i], np.delete(self.embeddings, i, 0)) for i in range(n)]
        return float(np.mean(d))


@dataclass
class EvalResult:
    source_video: str
    swapped_video: str
    summary: dict[str, Any]
    checks: list[dict[str, Any]]
    frames: list[FrameMetrics]
    b_set: dict[str, Any]
    loss: Series = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # Contact sheet: (frame index, source crop, swapped crop), BGR uint8; not part of the JSON.
    thumbnails: list[tuple[int, np.ndarray, np.ndarray]] = field(default_factory=list, repr=False)
    # Every scored frame's crops (thumbnails is an evenly spaced subset), for comparison sheets.
    all_crops: list[tuple[int, np.ndarray, np.ndarray]] = field(default_factory=list, repr=False)

    @property
    def passed(self) -> bool:
        return all(c["passed"] for c in self.checks if c["required"])

    def sheet_captions(self) -> list[str]:
        """One short caption per thumbnail: frame index, verdict, distance to B."""
        by_index = {f.index: f for f in self.frames}
        captions = []
        for index, _, _ in self.thumbnails:
            frame = by_index.get(index)
            if frame is None:
                captions.append(f"#{index}")
                continue
            if frame.face_difference < UNSWAPPED_MAX_DIFF:
                verdict = "UNCHANGED"
            elif frame.reads_as_source:
                verdict = "reads as A"
            else:
                verdict = "B" if frame.reads_as_b else "not B"
            captions.append(f"#{index} {verdict} d={frame.distance_to_b:.2f}")
        return captions

    def contact_sheet(self, per_row: int = 5) -> np.ndarray:
        """The contact sheet of this evaluation (source | output crops), BGR uint8."""
        pairs = [(src, out) for _, src, out in self.thumbnails]
        title = f"source | output: {Path(self.swapped_video).name}"
        return contact_sheet(pairs, self.sheet_captions(), per_row=per_row, title=title)

    def to_dict(self) -> dict[str, Any]:
        frames = []
        for frame in self.frames:
            row = asdict(frame)
            row["gradient_ratio"] = frame.gradient_ratio
            frames.append(row)
        return json_safe(
            {
                "version": 1,
                "source_video": self.source_video,
                "swapped_video": self.swapped_video,
                "passed": self.passed,
                "summary": self.summary,
                "checks": self.checks,
                "b_set": self.b_set,
                "frames": frames,
                "loss": {name: [list(p) for p in points] for name, points in self.loss.items()},
                "notes": self.notes,
            }
        )


@dataclass
class Comparison:
    """Several outputs of one source scored against the same B set (``evaluate_many``)."""

    source_video: str
    results: dict[str, EvalResult]  # method name -> its evaluation, in the order given

    def table(self) -> list[dict[str, Any]]:
        """One row per figure: {metric, label, unit, op, threshold, required, values: {name: value},
        passed: {name: bool}}; the checked figures first, then the other headline figures."""
        names = list(self.results)
        rows = []
        checks = {name: {c["metric"]: c for c in r.checks} for name, r in self.results.items()}
        metrics = list(dict.fromkeys(c["metric"] for r in self.results.values() for c in r.checks))
        for metric in metrics:
            first = next(checks[n][metric] for n in names if metric in checks[n])
            rows.append(
                {
                    **{k: first[k] for k in ("metric", "label", "unit", "op", "threshold", "required")},
                    "values": {n: checks[n][metric]["value"] if metric in checks[n] else None for n in names},
                    "passed": {
                        n: checks[n][metric]["passed"] if metric in checks[n] else None for n in names
                    },
                }
            )
        for metric, unit, label in COMPARED_FIGURES:
            if metric in metrics:
                continue
            rows.append(
                {
                    "metric": metric, "label": label, "unit": unit, "op": "", "threshold": None,
                    "required": False, "values": {n: r.summary.get(metric) for n, r in self.results.items()},
                    "passed": {},
                }
            )  # fmt: skip
        return rows

    @property
    def passed(self) -> dict[str, bool]:
        return {name: r.passed for name, r in self.results.items()}

    def to_dict(self) -> dict[str, Any]:
        return json_safe(
            {
                "version": 1,
                "source_video": self.source_video,
                "methods": list(self.results),
                "passed": self.passed,
                "table": self.table(),
                "results": {name: r.to_dict() for name, r in self.results.items()},
            }
        )

    def contact_sheet(self, columns: int = 10) -> np.ndarray:
        """One row of source crops, then one row per method, the same frames in every row."""
        crops: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] = {
            name: {i: (src, out) for i, src, out in r.all_crops} for name, r in self.results.items()
        }
        common = sorted(set.intersection(*[set(c) for c in crops.values()])) if crops else []
        indices = [common[i] for i in evenly_spaced(len(common), columns)]
        first = next(iter(crops.values()), {})
        source = [first[i][0] for i in indices]
        rows = [(name, [c[i][1] for i in indices]) for name, c in crops.items()]
        return comparison_sheet(source, rows, [f"#{i}" for i in indices])


# Figures shown in a comparison besides the checked ones: (summary key, unit, label).
COMPARED_FIGURES = (
    ("mean_distance_to_b", "", "mean dlib distance to B"),
    ("mean_distance_to_source", "", "mean dlib distance to the source face"),
    ("sharpness_swapped", "", "Laplacian variance in the face"),
    ("light_swapped_l", "", "mean L* of the face"),
    ("clipped_swapped_pct", "%", "clipped highlights in the face"),
    ("mouth_open_diff", "", "mean |mouth opening - source's| / inter-ocular distance"),
    ("swapped_detected_share", "share", "swapped face found by the detector"),
    ("seconds", "s", "evaluation time"),
)


# --- the B set --------------------------------------------------------------------------------------


def build_b_set(
    analyzer: FaceAnalyzer, faces_b: str | Path | Sequence[str | Path], max_faces: int = 20
) -> BSet:
    """Embeddings of up to ``max_faces`` faces of B, spread over the given photos/crops/videos.

    Photos: the largest HOG face. Small aligned crops (the detector's ``faces/*.png``, 64-256 px)
    where HOG finds nothing: the crop's centre is taken as the face box, since the aligner centred it.
    """
    images, videos = expand_face_set(faces_b)
    embeddings: list[np.ndarray] = []
    sources: list[str] = []
    skipped: list[str] = []

    def add(name: str, image: np.ndarray | None, allow_crop_box: bool) -> None:
        if image is None:
            skipped.append(f"{name}: unreadable")
            return
        faces = analyzer.detect(image)
        if faces:
            box = faces[0].box
        elif allow_crop_box and max(image.shape[:2]) <= 256:
            h, w = image.shape[:2]
            box = (round(w * 0.1), round(h * 0.1), round(w * 0.9), round(h * 0.9))
        else:
            skipped.append(f"{name}: no face")
            return
        _, embedding = analyzer.analyse(image, box)
        embeddings.append(embedding)
        sources.append(name)

    # Candidates spread over everything given; a second, denser pass only for faces HOG missed.
    first = evenly_spaced(len(images), max_faces)
    extra = [i for i in evenly_spaced(len(images), max_faces * 2) if i not in set(first)]
    for index in first + extra:
        if len(embeddings) >= max_faces:
            break
        add(images[index].name, read_image(images[index]), allow_crop_box=True)
    per_video = max(1, (max_faces - len(embeddings)) // max(1, len(videos)))
    for video in videos:
        for name, frame in sample_video_frames(video, per_video):
            add(name, frame, allow_crop_box=False)
    if not embeddings:
        raise InvalidArgument(f"no face found in the B set ({len(skipped)} inputs tried)", field="faces_b")
    return BSet(np.stack(embeddings), sources, skipped)


# --- per-frame scoring ------------------------------------------------------------------------------


@dataclass
class _Track:
    """Landmark sequences over the sampled frames, for the jitter measure at the end."""

    source: list[np.ndarray | None] = field(default_factory=list)
    swapped: list[np.ndarray | None] = field(default_factory=list)
    scales: list[float] = field(default_factory=list)


# Source analysis of one frame index: (box, landmarks, embedding), or None when it has no face. Shared
# between evaluations of several outputs of the same source (``evaluate_many``).
SourceCache = dict[int, tuple[tuple[int, int, int, int], np.ndarray, np.ndarray] | None]


def _score_frame(
    analyzer: FaceAnalyzer,
    b_set: BSet,
    frame: FrameMetrics,
    source: np.ndarray,
    swapped: np.ndarray,
    track: _Track,
    source_cache: SourceCache | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Fills ``frame``; returns the contact-sheet crops (source, swapped) when a face was found."""
    if source_cache is not None and frame.index in source_cache:
        analysed = source_cache[frame.index]
    else:
        source_faces = analyzer.detect(source)
        analysed = None
        if source_faces:
            box = source_faces[0].box  # the largest face is the one being swapped
            analysed = (box, *analyzer.analyse(source, box))
        if source_cache is not None:
            source_cache[frame.index] = analysed
    if analysed is None:
        track.source.append(None)
        track.swapped.append(None)
        track.scales.append(math.nan)
        return None
    box, src_points, src_embedding = analysed
    # The same face in the output: the output detection overlapping the source box most. If the
    # detector misses the swapped face (blur, seams), score it in the source box rather than drop it.
    frame.face = True
    if np.array_equal(source, swapped):
        # Untouched frame (a swap that skipped it, or a self-check): same face, no second pass.
        frame.swapped_detected = True
        out_points, out_embedding = src_points, src_embedding
    else:
        swapped_faces = analyzer.detect(swapped, retry=False)
        match = m.best_match(box, [f.box for f in swapped_faces])
        frame.swapped_detected = match >= 0
        swapped_box = swapped_faces[match].box if match >= 0 else box
        out_points, out_embedding = analyzer.analyse(swapped, swapped_box)

    frame.distance_to_b = m.mean_distance(out_embedding, b_set.embeddings)
    frame.distance_to_source = float(np.linalg.norm(out_embedding - src_embedding))
    frame.source_distance_to_b = m.mean_distance(src_embedding, b_set.embeddings)
    frame.reads_as_b = m.reads_as_b(frame.distance_to_b, frame.distance_to_source, frame.source_distance_to_b)
    frame.landmark_error_pct = m.landmark_error(src_points, out_points)
    src_expr, out_expr = m.expression(src_points), m.expression(out_points)
    for name in EXPRESSION_FIGURES:
        setattr(frame, f"{name}_source", getattr(src_expr, name))
        setattr(frame, f"{name}_swapped", getattr(out_expr, name))

    # Blending and realism: both frames measured on the same pixels, the rings around and the interior
    # of the source's landmark hull, which is where the converter pasted the new face.
    geometry = m.border_geometry(src_points, source.shape)
    if geometry is not None:
        src_border = m.measure_border(source, geometry)
        out_border = m.measure_border(swapped, geometry)
        frame.gradient_source = src_border.gradient
        frame.gradient_swapped = out_border.gradient
        frame.delta_e_source = src_border.delta_e
        frame.delta_e_swapped = out_border.delta_e
        frame.colour_shift_de = m.delta_e(src_border.interior_lab, out_border.interior_lab)
        src_inside, out_inside = m.measure_interior(source, geometry), m.measure_interior(swapped, geometry)
        frame.sharpness_source, frame.sharpness_swapped = src_inside.sharpness, out_inside.sharpness
        frame.light_source, frame.light_swapped = src_inside.light, out_inside.light
        frame.clipped_source, frame.clipped_swapped = src_inside.clipped, out_inside.clipped
        frame.face_difference = m.interior_difference(source, swapped, geometry)
    # Left unswapped: the face's pixels are (nearly) the source's, or the face still reads as the
    # source person (closer to it than to B, within dlib's threshold). When A and B are one person to
    # dlib the identity says nothing, so only the pixels count.
    source_is_b = frame.source_distance_to_b < SAME_PERSON_DISTANCE
    frame.reads_as_source = (
        not source_is_b
        and frame.distance_to_source < SAME_PERSON_DISTANCE
        and frame.distance_to_source <= frame.distance_to_b
    )
    frame.unswapped = frame.face_difference < UNSWAPPED_MAX_DIFF or frame.reads_as_source

    track.source.append(src_points)
    track.swapped.append(out_points)
    track.scales.append(m.inter_ocular(src_points))
    return face_crop(source, box, THUMB), face_crop(swapped, box, THUMB)


# --- summary ----------------------------------------------------------------------------------------


def _summarise(frames: list[FrameMetrics], track: _Track) -> dict[str, Any]:
    faced = [f for f in frames if f.face]
    n = len(faced)

    def share(flags: list[bool]) -> float:
        return float(sum(flags) / len(flags)) if flags else math.nan

    jitter_src = m.second_difference_energy(track.source, track.scales)
    jitter_out = m.second_difference_energy(track.swapped, track.scales)
    for frame, e_src, e_out in zip(frames, jitter_src, jitter_out, strict=True):
        frame.jitter_source_pct = math.sqrt(e_src) * 100 if not math.isnan(e_src) else math.nan
        frame.jitter_swapped_pct = math.sqrt(e_out) * 100 if not math.isnan(e_out) else math.nan
    jitter_source, jitter_swapped = m.rms_percent(jitter_src), m.rms_percent(jitter_out)

    # Gradient per ring, averaged over frames first (a per-frame max of noisy ratios is biased up),
    # then the worst ring.
    ring_ratios = []
    for ring in range(len(m.RING_OFFSETS)):
        src = m.nanmean([f.gradient_source[ring] for f in faced if f.gradient_source])
        out = m.nanmean([f.gradient_swapped[ring] for f in faced if f.gradient_swapped])
        ring_ratios.append(m.safe_ratio(out, src))
    valid_rings = [r for r in ring_ratios if not math.isnan(r)]
    delta_e_source = m.nanmean([f.delta_e_source for f in faced])
    delta_e_swapped = m.nanmean([f.delta_e_swapped for f in faced])
    errors = [f.landmark_error_pct for f in faced if not math.isnan(f.landmark_error_pct)]
    sharp_src = m.nanmean([f.sharpness_source for f in faced])
    sharp_out = m.nanmean([f.sharpness_swapped for f in faced])
    light_src = m.nanmean([f.light_source for f in faced])
    light_out = m.nanmean([f.light_swapped for f in faced])
    clip_src = m.nanmean([f.clipped_source for f in faced]) * 100
    clip_out = m.nanmean([f.clipped_swapped for f in faced]) * 100
    expression: dict[str, Any] = {}
    for name in EXPRESSION_FIGURES:
        src = [getattr(f, f"{name}_source") for f in faced]
        out = [getattr(f, f"{name}_swapped") for f in faced]
        kept = [(a, b) for a, b in zip(src, out, strict=True) if math.isfinite(a) and math.isfinite(b)]
        expression[f"{name}_corr"] = m.pearson(src, out)
        expression[f"{name}_diff"] = float(np.mean([abs(a - b) for a, b in kept])) if kept else math.nan
        expression[f"{name}_source_std"] = float(np.std([a for a, _ in kept])) if kept else math.nan
        expression[f"{name}_swapped_std"] = float(np.std([b for _, b in kept])) if kept else math.nan
    expression["mouth_source_still"] = bool(expression["mouth_open_source_std"] < MOUTH_STILL_STD)
    return {
        "frames_sampled": len(frames),
        "frames_with_face": n,
        "read_as_b_share": share([f.reads_as_b for f in faced]),
        "read_as_b_frames": sum(f.reads_as_b for f in faced),
        "mean_distance_to_b": m.nanmean([f.distance_to_b for f in faced]),
        "mean_distance_to_source": m.nanmean([f.distance_to_source for f in faced]),
        "source_distance_to_b": m.nanmean([f.source_distance_to_b for f in faced]),
        "source_reads_as_b_share": share([f.source_distance_to_b < SAME_PERSON_DISTANCE for f in faced]),
        "swapped_detected_share": share([f.swapped_detected for f in faced]),
        "landmark_error_pct": m.nanmean(errors),
        "landmark_error_p95_pct": float(np.percentile(errors, 95)) if errors else math.nan,
        "jitter_source_pct": jitter_source,
        "jitter_swapped_pct": jitter_swapped,
        "jitter_ratio": m.safe_ratio(jitter_swapped, jitter_source),
        "gradient_source": m.nanmean([g for f in faced for g in f.gradient_source]),
        "gradient_swapped": m.nanmean([g for f in faced for g in f.gradient_swapped]),
        "gradient_ratio_by_ring": dict(zip([str(o) for o in m.RING_OFFSETS], ring_ratios, strict=True)),
        "gradient_jump_ratio": max(valid_rings) if valid_rings else math.nan,
        "delta_e_source": delta_e_source,
        "delta_e_swapped": delta_e_swapped,
        "delta_e_ratio": m.safe_ratio(delta_e_swapped, delta_e_source),
        "colour_shift_de": m.nanmean([f.colour_shift_de for f in faced]),
        "sharpness_source": sharp_src,
        "sharpness_swapped": sharp_out,
        "sharpness_ratio": m.safe_ratio(sharp_out, sharp_src),
        "light_source_l": light_src,
        "light_swapped_l": light_out,
        "light_delta_l": light_out - light_src,
        "clipped_source_pct": clip_src,
        "clipped_swapped_pct": clip_out,
        "clipped_excess_pct": clip_out - clip_src,
        "face_difference": m.nanmean([f.face_difference for f in faced]),
        "unswapped_frames": sum(f.unswapped for f in faced),
        "unswapped_share": share([f.unswapped for f in faced]),
        "reads_as_source_frames": sum(f.reads_as_source for f in faced),
        **expression,
    }


def _passes(op: str, value: float, threshold: float) -> bool:
    if value is None or not math.isfinite(value):
        return False
    if op == ">=":
        return value >= threshold
    if op == "<":
        return value < threshold
    if op == "abs<=":
        return abs(value) <= threshold
    if op == "==":
        return value == threshold
    return value <= threshold


def _checks(summary: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for rule in THRESHOLDS:
        if rule["metric"] == "mouth_open_corr" and summary.get("mouth_source_still"):
            # A still mouth in the source: its correlation is landmark noise; ask for a still output.
            rule = {**rule, "metric": "mouth_open_diff", "op": "<=", "threshold": MOUTH_STILL_MAX_DIFF,
                    "unit": "", "label": "the source's mouth barely moves: the output's opening stays "
                    "within 0.05 inter-ocular distances of it"}  # fmt: skip
        value = summary.get(rule["metric"], math.nan)
        out.append({**rule, "value": value, "passed": bool(_passes(rule["op"], value, rule["threshold"]))})
    return out


def format_value(value: Any, unit: str, signed: bool = True) -> str:
    """A figure as the CLI and the report show it, in its unit (differences in L* and pp signed)."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return "n/a" if value is None else str(value)
    if not math.isfinite(value):
        return "n/a"
    if unit == "share":
        return f"{value * 100:.1f}%"
    if unit == "frames":
        return f"{value:g}"
    if unit in ("x", "%", "L*", "pp", "s"):
        sign = "+" if signed and unit in ("L*", "pp") and value > 0 else ""
        return f"{sign}{value:.3g}{'' if unit == 'x' else ' '}{unit}".replace(" %", "%")
    return f"{value:.3g}"


def format_threshold(check: dict[str, Any]) -> str:
    op = {"abs<=": "|x| <=", "==": "="}.get(check["op"], check["op"])
    return f"{op} {format_value(check['threshold'], check.get('unit', ''), signed=False)}"


# --- entry points -----------------------------------------------------------------------------------


def evaluate(
    source_video: str | Path,
    swapped_video: str | Path,
    faces_b: str | Path | Sequence[str | Path] | BSet,
    *,
    sample_every: int = 3,
    max_frames: int = 100,
    end: int | None = None,
    b_max_faces: int = 20,
    loss_log: str | Path | None = None,
    contact_frames: int = 10,
    analyzer: FaceAnalyzer | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    source_cache: SourceCache | None = None,
) -> EvalResult:
    """Scores ``swapped_video`` (the swap output) against ``source_video`` (the original A video) and
    B's faces (a folder of photos or face crops, a video of B, or a list of such paths; or a ``BSet``
    from ``build_b_set`` to score several outputs against the same B).

    Every ``sample_every``-th frame is scored; on long videos the stride grows so that at most
    ``max_frames`` frames are scored, spread over the whole video; ``end`` stops before that frame
    index (a prefix of the video, e.g. for quick checks). ``on_progress(done, total)`` is
    called after each scored frame. ``contact_frames`` evenly spaced frames with a face make the contact
    sheet. ``source_cache`` (a dict, filled here) reuses the source's face analysis between calls on
    the same source video with the same sampling. Raises NotFound / InvalidArgument for missing or
    unreadable input.
    """
    if sample_every < 1:
        raise InvalidArgument("must be >= 1", field="sample_every")
    if max_frames < 1:
        raise InvalidArgument("must be >= 1", field="max_frames")
    if end is not None and end < 1:
        raise InvalidArgument("must be >= 1", field="end")
    started = time.perf_counter()
    analyzer = analyzer or FaceAnalyzer.shared()
    loss = load_loss_log(loss_log) if loss_log else {}
    src_meta = open_video(source_video, "source")
    out_meta = open_video(swapped_video, "output")
    notes: list[str] = []
    pairs = None
    try:
        b_started = time.perf_counter()
        b_set = faces_b if isinstance(faces_b, BSet) else build_b_set(analyzer, faces_b, b_max_faces)
        b_seconds = time.perf_counter() - b_started
        frame_count = min(src_meta.frame_count, out_meta.frame_count) or max(
            src_meta.frame_count, out_meta.frame_count
        )
        if src_meta.frame_count and out_meta.frame_count and src_meta.frame_count != out_meta.frame_count:
            notes.append(
                f"frame counts differ (source {src_meta.frame_count}, output {out_meta.frame_count}); "
                "frames are paired by position"
            )
        if end is not None:
            frame_count = min(frame_count, end) if frame_count else end
        if (out_meta.width, out_meta.height) != (src_meta.width, src_meta.height):
            notes.append(
                f"output is {out_meta.width}x{out_meta.height}, source {src_meta.width}x{src_meta.height}; "
                "output frames are resized to the source's size"
            )
        stride = max(sample_every, math.ceil(frame_count / max_frames) if frame_count else sample_every)
        total = math.ceil(frame_count / stride) if frame_count else 0
        frames: list[FrameMetrics] = []
        crops: list[tuple[int, np.ndarray, np.ndarray]] = []
        track = _Track()
        size = (src_meta.width, src_meta.height)
        pairs = paired_frames(src_meta, out_meta, stride, size)
        for index, source, swapped in pairs:
            if len(frames) >= max_frames or (end is not None and index >= end):
                break
            frame = FrameMetrics(index=index, time_s=index / src_meta.fps)
            crop = _score_frame(analyzer, b_set, frame, source, swapped, track, source_cache)
            if crop is not None:
                crops.append((index, *crop))
            frames.append(frame)
            events.frame()
            if on_progress:
                on_progress(len(frames), max(total, len(frames)))
    except Exception:
        events.run("error")
        raise
    finally:
        if pairs is not None:
            pairs.close()
    if not frames:
        events.run("error")
        raise InvalidArgument("no frames could be read from the videos", field="output")

    summary = _summarise(frames, track)
    summary.update(
        {
            "sample_every": stride,
            "frames_total": frame_count,
            "fps": src_meta.fps,
            "width": src_meta.width,
            "height": src_meta.height,
            "seconds": round(time.perf_counter() - started, 2),
            "b_set_seconds": round(b_seconds, 2),
        }
    )
    if summary["frames_with_face"] == 0:
        notes.append("no face found in any sampled source frame: nothing to score")
    elif summary["source_reads_as_b_share"] > 0.5:
        notes.append(
            "the source faces already read as B to dlib (same person, or look-alikes): the identity "
            "share cannot tell a swap from the original here"
        )
    if summary["frames_with_face"] and summary["mouth_source_still"]:
        notes.append(
            "the source's mouth barely moves (opening std "
            f"{summary['mouth_open_source_std']:.3f} inter-ocular distances): its correlation is landmark "
            "noise, so the mouth check asks that the output's mouth stays as closed instead"
        )
    if summary["unswapped_frames"]:
        notes.append(
            f"{summary['unswapped_frames']} of {summary['frames_with_face']} frames with a face were left "
            "unswapped (face unchanged or still reading as the source person)"
        )
    b_info = {
        "faces": len(b_set.sources),
        "sources": b_set.sources,
        "skipped": b_set.skipped,
        "spread": b_set.spread,
    }
    result = EvalResult(
        source_video=str(source_video),
        swapped_video=str(swapped_video),
        summary=summary,
        checks=_checks(summary),
        frames=frames,
        b_set=b_info,
        loss=loss,
        notes=notes,
        thumbnails=[crops[i] for i in evenly_spaced(len(crops), contact_frames)] if contact_frames else [],
        all_crops=crops,
    )
    share = summary["read_as_b_share"]
    events.run(
        "passed" if result.passed else "failed",
        time.perf_counter() - started,
        None if math.isnan(share) else share,
    )
    return result


def evaluate_many(
    source_video: str | Path,
    outputs: dict[str, str | Path] | Sequence[tuple[str, str | Path]],
    faces_b: str | Path | Sequence[str | Path] | BSet,
    *,
    b_max_faces: int = 20,
    analyzer: FaceAnalyzer | None = None,
    **options: Any,
) -> Comparison:
    """Scores several outputs of the same source (e.g. one per converter method) against one B set:
    B's faces are embedded once and the source's faces analysed once. ``outputs`` maps a method name
    to its video (order kept); ``options`` go to ``evaluate`` (sample_every, max_frames, end, ...)."""
    items = list(outputs.items()) if isinstance(outputs, dict) else list(outputs)
    if not items:
        raise InvalidArgument("no outputs to compare", field="compare")
    names = [name for name, _ in items]
    if len(set(names)) != len(names) or not all(names):
        raise InvalidArgument(f"method names must be unique and non-empty: {names}", field="compare")
    analyzer = analyzer or FaceAnalyzer.shared()
    b_set = faces_b if isinstance(faces_b, BSet) else build_b_set(analyzer, faces_b, b_max_faces)
    cache: SourceCache = {}
    results = {
        name: evaluate(source_video, video, b_set, analyzer=analyzer, source_cache=cache, **options)
        for name, video in items
    }
    return Comparison(str(source_video), results)


def sheet_key_for(report_key: str) -> str:
    """Where the standalone contact sheet goes next to a report: report.html -> report_sheet.png."""
    stem = report_key[: -len(Path(report_key).suffix)] if Path(report_key).suffix else report_key
    return f"{stem}_sheet.png"
