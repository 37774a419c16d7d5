"""The realism and expression figures, the contact sheet and --compare on real frames with real dlib.

Known-good output: B's real video (samples/liveportrait_d10.mp4) moved onto A's face position by one
similarity transform per frame. Known-bad output: A's video with the face region blurred through 64 px
and brightened by 10 L* (what the old 64-px autoencoder paste looked like). Plus an unchanged
(re-encoded) copy of the source, and B's talking clip against itself for the expression correlation.
Clips are 16 frames at 10 fps, every 2nd scored: 8 frames per evaluation.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceswap.evaluate import metrics as m
from faceswap.evaluate.core import BSet, Comparison, build_b_set, evaluate, evaluate_many
from faceswap.evaluate.faces import FaceAnalyzer, shape_to_array
from faceswap.evaluate.report import COMPARE_SECTIONS, SECTIONS, render_compare_html, write_report
from faceswap.evaluate.sheet import contact_sheet
from services.cli import main as faceswap_main

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_A = ROOT / "samples" / "liveportrait_s18.mp4"
SAMPLE_B = ROOT / "samples" / "liveportrait_d10.mp4"
FRAMES, STEP, FPS, SAMPLE_EVERY = 16, 3, 10, 2
STABLE = [36, 39, 42, 45, 27, 30, 31, 35]  # eye corners and nose: a similarity fit that keeps B's shape


def _ffmpeg() -> str:
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _encode(frames: list[np.ndarray], path: Path, crf: int = 18) -> Path:
    height, width = frames[0].shape[:2]
    cmd = [_ffmpeg(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}",
           "-r", str(FPS), "-i", "-", "-c:v", "libx264", "-crf", str(crf), "-preset", "veryfast",
           "-pix_fmt", "yuv420p", str(path)]  # fmt: skip
    subprocess.run(cmd, input=b"".join(f.tobytes() for f in frames), check=True, timeout=60)
    return path


def _read(path: Path, count: int, step: int, start: int = 0) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames, index = [], 0
    while len(frames) < count:
        ok, frame = cap.read()
        assert ok, path
        if index >= start and (index - start) % step == 0:
            frames.append(frame)
        index += 1
    cap.release()
    return frames


def _landmarks(analyzer: FaceAnalyzer, frame: np.ndarray) -> np.ndarray:
    faces = analyzer.detect(frame)
    assert faces
    return shape_to_array(analyzer.landmarks(frame, faces[0].box))


def _blur_and_brighten(analyzer: FaceAnalyzer, frame: np.ndarray) -> np.ndarray:
    """The face region through 64 px and back up, and +10 L*."""
    left, top, right, bottom = analyzer.detect(frame)[0].box
    cx, cy, half = (left + right) // 2, (top + bottom) // 2, int((right - left) * 0.8)
    x0, y0 = max(0, cx - half), max(0, cy - half)
    x1, y1 = min(frame.shape[1], cx + half), min(frame.shape[0], cy + half)
    region = cv2.resize(frame[y0:y1, x0:x1], (64, 64), interpolation=cv2.INTER_AREA)
    region = cv2.resize(region, (x1 - x0, y1 - y0), interpolation=cv2.INTER_CUBIC)
    lab = cv2.cvtColor(region.astype(np.float32) / 255.0, cv2.COLOR_BGR2LAB)
    lab[..., 0] = np.clip(lab[..., 0] + 10.0, 0, 100)
    out = frame.copy()
    out[y0:y1, x0:x1] = np.clip(cv2.cvtColor(lab, cv2.COLOR_LAB2BGR) * 255 + 0.5, 0, 255).astype(np.uint8)
    return out


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer.shared()


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory, analyzer: FaceAnalyzer) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("realism")
    a_frames = _read(SAMPLE_A, FRAMES, STEP)
    b_frames = _read(SAMPLE_B, FRAMES, STEP)
    size = (a_frames[0].shape[1], a_frames[0].shape[0])
    real_b = []
    for a, b in zip(a_frames, b_frames, strict=True):
        matrix, _ = cv2.estimateAffinePartial2D(
            _landmarks(analyzer, b)[STABLE], _landmarks(analyzer, a)[STABLE]
        )
        real_b.append(cv2.warpAffine(b, matrix, size, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE))
    faces_b = folder / "faces_b"  # B's photos: frames of B's video from later on, not in the outputs
    faces_b.mkdir()
    for i, frame in enumerate(_read(SAMPLE_B, 6, 40, start=150)):
        cv2.imwrite(str(faces_b / f"b{i}.png"), frame)
    return {
        "source": _encode(a_frames, folder / "source.mp4"),
        "real_b": _encode(real_b, folder / "real_b.mp4"),
        "blurred": _encode([_blur_and_brighten(analyzer, f) for f in a_frames], folder / "blurred.mp4"),
        "copy": _encode(a_frames, folder / "copy.mp4", crf=26),  # re-encoded: pixels differ a little
        "talking": _encode(b_frames, folder / "talking.mp4"),
        "talking_copy": _encode(b_frames, folder / "talking_copy.mp4", crf=26),
        "faces_b": faces_b,
    }


@pytest.fixture(scope="module")
def b_set(analyzer: FaceAnalyzer, clips: dict[str, Path]) -> BSet:
    return build_b_set(analyzer, clips["faces_b"], max_faces=6)


@pytest.fixture(scope="module")
def comparison(clips: dict[str, Path], b_set: BSet) -> Comparison:
    outputs = {name: clips[name] for name in ("real_b", "blurred", "copy")}
    return evaluate_many(clips["source"], outputs, b_set, sample_every=SAMPLE_EVERY)


def _check(result, metric: str) -> dict:
    return next(c for c in result.checks if c["metric"] == metric)


def test_real_video_of_b_scores_as_b_and_sharp(comparison: Comparison) -> None:
    result = comparison.results["real_b"]
    s = result.summary
    assert s["frames_with_face"] == FRAMES // SAMPLE_EVERY
    assert s["read_as_b_share"] >= 0.9 and _check(result, "read_as_b_share")["passed"], s
    assert s["sharpness_ratio"] >= 1.0 and _check(result, "sharpness_ratio")["passed"], s
    assert s["unswapped_frames"] == 0 and s["face_difference"] > 10
    assert s["clipped_excess_pct"] <= 0.5
    # B talks while A's mouth stays closed: the still-mouth check catches B's open mouth.
    assert s["mouth_source_still"] and s["mouth_open_diff"] > 0.05
    assert not _check(result, "mouth_open_diff")["passed"]


def test_blurred_bright_output_scores_as_blurred_too_bright_and_fails(comparison: Comparison) -> None:
    result = comparison.results["blurred"]
    s = result.summary
    assert s["sharpness_ratio"] < 0.5, s["sharpness_ratio"]
    assert 7 < s["light_delta_l"] < 12, s["light_delta_l"]
    assert s["read_as_b_share"] == 0  # a blurred A is not B
    assert s["unswapped_frames"] == s["frames_with_face"]  # it still reads as A
    assert s["reads_as_source_frames"] == s["frames_with_face"]
    failed = {c["metric"] for c in result.checks if c["required"] and not c["passed"]}
    assert {"read_as_b_share", "sharpness_ratio", "light_delta_l", "unswapped_frames"} <= failed
    assert not result.passed


def test_unchanged_copy_counts_every_frame_unswapped(comparison: Comparison) -> None:
    s = comparison.results["copy"].summary
    assert s["frames_with_face"] == FRAMES // SAMPLE_EVERY
    assert s["unswapped_frames"] == s["frames_with_face"]
    assert s["face_difference"] < 2  # re-encoding alone: the pixel test catches it
    assert abs(s["light_delta_l"]) < 0.5 and s["sharpness_ratio"] == pytest.approx(1, abs=0.15)
    assert not comparison.results["copy"].passed


def test_expression_correlation_of_a_video_with_itself_is_one(clips: dict[str, Path], b_set: BSet) -> None:
    same = evaluate(clips["talking"], clips["talking"], b_set, sample_every=SAMPLE_EVERY)
    s = same.summary
    assert not s["mouth_source_still"] and s["mouth_open_source_std"] > 0.03  # B talks here
    for name in ("mouth_open", "eye_open", "brow_height"):
        assert s[f"{name}_corr"] == pytest.approx(1.0), name
    copy = evaluate(clips["talking"], clips["talking_copy"], b_set, sample_every=SAMPLE_EVERY).summary
    assert copy["mouth_open_corr"] > 0.95 and copy["eye_open_corr"] > 0.8, copy
    assert copy["unswapped_frames"] == copy["frames_with_face"]  # A is B here: the pixels decide


def test_expression_figures_are_in_the_faces_own_size() -> None:
    rng = np.random.default_rng(3)
    face = rng.uniform(0, 100, size=(68, 2))
    face[36:42] = [[0, 0]] * 6  # right eye centre (0, 0), left eye centre (50, 0)
    face[42:48] = [[50, 0]] * 6
    face[17:27, 1] = -20  # brows 20 px above the eye line
    for i, j in m.MOUTH_PAIRS:
        face[i], face[j] = [25, 60], [25, 70]  # a 10-px inner-lip gap
    expr = m.expression(face)
    assert expr.mouth_open == pytest.approx(0.2) and expr.brow_height == pytest.approx(0.4)
    # Twice the size, rotated 30 degrees, moved: the same expression.
    theta = np.radians(30)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    other = m.expression(face @ rot.T * 2 + [300, 40])
    assert other.mouth_open == pytest.approx(expr.mouth_open)
    assert other.eye_open == pytest.approx(expr.eye_open)
    assert other.brow_height == pytest.approx(expr.brow_height)
    assert m.pearson([1, 2, 3, 4], [2, 4, 6, 8.5]) > 0.99
    assert math.isnan(m.pearson([1, 1, 1], [1, 2, 3]))


def test_contact_sheet_function_and_report_open_with_it(comparison: Comparison, tmp_path: Path) -> None:
    result = comparison.results["real_b"]
    pairs = [(src, out) for _, src, out in result.thumbnails]
    assert 8 <= len(pairs) <= 12 or len(pairs) == result.summary["frames_with_face"]
    sheet = contact_sheet(pairs, [f"#{i}" for i, _, _ in result.thumbnails], thumb=100, per_row=4)
    rows = -(-len(pairs) // 4)
    assert sheet.dtype == np.uint8 and sheet.shape[2] == 3
    assert sheet.shape[1] >= 4 * 200 and sheet.shape[0] >= rows * 100
    assert contact_sheet([]).shape[0] > 0  # no face: still an image
    sheet_path = write_report(result, tmp_path / "report.html")
    assert sheet_path == tmp_path / "report_sheet.png"
    png = cv2.imread(str(sheet_path))
    assert png is not None and png.shape == result.contact_sheet().shape
    html = (tmp_path / "report.html").read_text()
    positions = [html.index(f'<section id="{section}">') for section in SECTIONS]
    assert positions == sorted(positions) and SECTIONS[0] == "contact-sheet"
    first_section = html[positions[0] : positions[1]]
    assert first_section.count('src="data:image/png;base64,') == 1
    assert "issue 1" not in html.lower()


def test_compare_report_has_a_row_per_method(comparison: Comparison, tmp_path: Path) -> None:
    names = list(comparison.results)
    sheet = comparison.contact_sheet()
    assert sheet.shape[0] >= (1 + len(names)) * 128  # the source row and one row per method
    html = render_compare_html(comparison, sheet=sheet)
    for section in COMPARE_SECTIONS:
        assert f'<section id="{section}">' in html
    for name in names:
        assert f"<th>{name}</th>" in html
    table = {row["metric"]: row for row in comparison.table()}
    assert table["sharpness_ratio"]["values"]["blurred"] < table["sharpness_ratio"]["values"]["real_b"]
    assert table["unswapped_frames"]["passed"] == {"real_b": True, "blurred": False, "copy": False}
    data = comparison.to_dict()
    assert data["methods"] == names and set(data["results"]) == set(names)
    json.dumps(data, allow_nan=False)
    assert not re.search(r'(src|href)="(?!data:)', html)


def test_cli_compare(clips: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    report = tmp_path / "cmp.html"
    args = ["evaluate", "--source", str(clips["source"]), "--faces-b", str(clips["faces_b"]), "--compare",
            f"real_b={clips['real_b']}", f"copy={clips['copy']}", "--report", str(report), "--json",
            str(tmp_path / "cmp.json"), "--max-frames", "3", "--b-faces", "3", "--check"]  # fmt: skip
    assert faceswap_main(args) == 1  # the copy fails
    out = capsys.readouterr().out
    assert "real_b: " in out and "copy: FAIL" in out and "contact sheet:" in out
    assert (tmp_path / "cmp_sheet.png").is_file()
    data = json.loads((tmp_path / "cmp.json").read_text())
    assert data["methods"] == ["real_b", "copy"] and data["passed"]["copy"] is False
    assert faceswap_main(["evaluate", "--source", "a.mp4", "--faces-b", "b", "--compare", "noequals"]) == 2
