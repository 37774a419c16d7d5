"""evaluate() end to end on a short real clip: self-check, a shaken copy, the report, CLI and store."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceswap.errors import InvalidArgument, NotFound
from faceswap.evaluate.core import EvalResult, evaluate
from faceswap.evaluate.job import evaluate_job
from faceswap.evaluate.report import SECTIONS, render_html, write_json, write_report
from services.cli import main as faceswap_main

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_A = ROOT / "samples" / "liveportrait_s18.mp4"
SIZE = (640, 360)
SECONDS = 2


def _ffmpeg() -> str:
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _encode(frames: list[np.ndarray], path: Path, fps: int = 30) -> None:
    height, width = frames[0].shape[:2]
    cmd = [_ffmpeg(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}",
           "-r", str(fps), "-i", "-", "-c:v", "libx264", "-crf", "18", "-preset", "veryfast",
           "-pix_fmt", "yuv420p", str(path)]  # fmt: skip
    subprocess.run(cmd, input=b"".join(f.tobytes() for f in frames), check=True, timeout=60)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The first 2 s of person A's clip at 640x360, and a copy shaken by a random shift per frame."""
    folder = tmp_path_factory.mktemp("clips")
    cap = cv2.VideoCapture(str(SAMPLE_A))
    frames = []
    while len(frames) < 30 * SECONDS:
        ok, frame = cap.read()
        assert ok
        frames.append(cv2.resize(frame, SIZE, interpolation=cv2.INTER_AREA))
    cap.release()
    rng = np.random.default_rng(7)
    shaken = []
    for frame in frames:
        dx, dy = rng.uniform(-6, 6, size=2)  # the face is ~130 px wide here: a visible shake
        matrix = np.float32([[1, 0, dx], [0, 1, dy]])
        shaken.append(cv2.warpAffine(frame, matrix, SIZE, borderMode=cv2.BORDER_REFLECT))
    paths = {"clip": folder / "clip.mp4", "shaken": folder / "shaken.mp4"}
    _encode(frames, paths["clip"])
    _encode(shaken, paths["shaken"])
    faces = folder / "faces_b"
    faces.mkdir()
    for i in (0, 20, 40, 59):
        cv2.imwrite(str(faces / f"{i:08d}.png"), frames[i])
    paths["faces"] = faces
    return paths


@pytest.fixture(scope="module")
def self_result(clips: dict[str, Path]) -> EvalResult:
    return evaluate(clips["clip"], clips["clip"], clips["clip"], sample_every=3, b_max_faces=8)


def test_clip_against_itself_reads_as_b_with_no_error_but_is_unswapped(self_result: EvalResult) -> None:
    s = self_result.summary
    assert s["frames_sampled"] == 20 and s["frames_with_face"] >= 19
    assert s["read_as_b_share"] >= 0.95
    assert s["landmark_error_pct"] == pytest.approx(0, abs=0.01)
    assert s["jitter_ratio"] == pytest.approx(1.0)
    assert s["gradient_jump_ratio"] == pytest.approx(1.0)
    assert s["colour_shift_de"] == pytest.approx(0, abs=1e-6)
    assert s["sharpness_ratio"] == pytest.approx(1.0) and s["light_delta_l"] == pytest.approx(0, abs=1e-9)
    assert s["clipped_excess_pct"] == pytest.approx(0, abs=1e-9) and s["face_difference"] == 0
    # Nothing was swapped: every frame counts as unswapped, so the report fails on that alone.
    assert s["unswapped_frames"] == s["frames_with_face"]
    failed = [c["metric"] for c in self_result.checks if c["required"] and not c["passed"]]
    assert failed == ["unswapped_frames"], failed
    assert not self_result.passed
    assert self_result.b_set["faces"] == 8 and self_result.b_set["spread"] < 0.6
    assert any("already read as B" in n for n in self_result.notes)


def test_shaken_copy_has_more_jitter(clips: dict[str, Path], self_result: EvalResult) -> None:
    shaken = evaluate(clips["clip"], clips["shaken"], clips["faces"], sample_every=3)
    calm, shook = self_result.summary, shaken.summary
    assert shook["swapped_detected_share"] > 0.9  # the moved face is still found and matched by IoU
    assert shook["jitter_swapped_pct"] > 2 * calm["jitter_swapped_pct"], (shook, calm)
    assert shook["jitter_ratio"] > 2
    assert shook["jitter_source_pct"] == pytest.approx(calm["jitter_source_pct"], rel=0.05)
    assert shook["landmark_error_pct"] > calm["landmark_error_pct"]
    assert shook["read_as_b_share"] >= 0.9  # same person, only moved


def test_report_renders_every_section(self_result: EvalResult, tmp_path: Path) -> None:
    log = tmp_path / "loss.csv"
    log.write_text("step,loss_a,loss_b\n" + "\n".join(f"{s},{1 / s:.4f},{1.5 / s:.4f}" for s in range(1, 50)))
    from faceswap.evaluate.loss_log import load_loss_log

    self_result.loss = load_loss_log(log)
    write_report(self_result, tmp_path / "report.html")
    write_json(self_result, tmp_path / "report.json")
    html = (tmp_path / "report.html").read_text()
    for section in SECTIONS:
        assert f'<section id="{section}">' in html, section
    # realism 2, expression 3, identity, landmarks, jitter, 2 x blending, loss
    assert html.count("<svg") >= 11
    assert "no data" not in html
    assert html.count('src="data:image/png;base64,') == 1 and len(self_result.thumbnails) == 10  # the sheet
    assert (tmp_path / "report_sheet.png").is_file()
    # Self-contained: nothing is fetched from elsewhere.
    assert not re.search(r'(src|href)="(?!data:)', html)
    assert "PASS" in html and "loss_b" in html
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["passed"] is False  # every frame unswapped
    assert {c["metric"] for c in data["checks"]} >= {
        "read_as_b_share",
        "sharpness_ratio",
        "light_delta_l",
        "clipped_excess_pct",
        "unswapped_frames",
        "landmark_error_pct",
        "gradient_jump_ratio",
    }
    assert not next(c for c in data["checks"] if c["metric"] == "landmark_error_pct")["required"]
    assert len(data["frames"]) == 20 and data["loss"]["loss_a"][0] == [1.0, 1.0]
    assert data["summary"]["read_as_b_share"] == self_result.summary["read_as_b_share"]
    self_result.loss = {}
    assert "No loss log was given" in render_html(self_result)


def test_cli_writes_report_and_json(
    clips: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    report, data = tmp_path / "out" / "r.html", tmp_path / "out" / "r.json"
    args = ["evaluate", "--source", str(clips["clip"]), "--output", str(clips["clip"]), "--faces-b",
            str(clips["faces"]), "--report", str(report), "--json", str(data), "--max-frames", "4", "--check"]  # fmt: skip
    assert faceswap_main(args) == 1  # --check: the output is the source itself, nothing swapped
    out = capsys.readouterr().out
    assert "PASS  frames whose face reads as B" in out and ": 100.0% (>= 90.0%)" in out
    assert "FAIL  frames with a face left unswapped" in out and "issue" not in out
    assert (report.parent / "r_sheet.png").is_file()
    args.remove("--check")
    assert faceswap_main(args) == 0
    capsys.readouterr()
    assert report.is_file() and json.loads(data.read_text())["summary"]["frames_sampled"] == 4
    # A missing input is a clear error, not a traceback.
    args[2] = str(tmp_path / "missing.mp4")
    assert faceswap_main(args) == 2
    assert "missing.mp4" in capsys.readouterr().err


def test_bad_inputs(clips: dict[str, Path], tmp_path: Path, shared_data: Path) -> None:
    with pytest.raises(NotFound):
        evaluate(tmp_path / "nope.mp4", clips["clip"], clips["faces"])
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    with pytest.raises(InvalidArgument) as err:
        evaluate(clips["clip"], fake, clips["faces"])
    assert err.value.field == "output"
    with pytest.raises(InvalidArgument) as err:
        evaluate(shared_data / "hard_cases" / "broken_truncated_no_moov.mp4", clips["clip"], clips["faces"])
    assert err.value.field == "source"
    with pytest.raises(InvalidArgument) as err:
        evaluate(clips["clip"], clips["clip"], clips["faces"], sample_every=0)
    assert err.value.field == "sample_every"


def test_evaluate_job_reads_and_writes_the_store(any_store, clips: dict[str, Path]) -> None:
    any_store.put_file("jobs/j1/input.mp4", clips["clip"])
    any_store.put_file("jobs/j1/output.mp4", clips["shaken"])
    for image in sorted(clips["faces"].iterdir()):
        any_store.put_file(f"jobs/j1/faces_b/{image.name}", image)
    any_store.put_bytes("jobs/j1/faces_b/notes.txt", b"ignored: not an image")
    any_store.put_json("jobs/j1/loss.json", [{"step": i, "loss": 1 / (i + 1)} for i in range(10)])
    result = evaluate_job(any_store, "jobs/j1/input.mp4", "jobs/j1/output.mp4", "jobs/j1/faces_b",
                          "jobs/j1/report.html", "jobs/j1/report.json", loss_log_key="jobs/j1/loss.json",
                          max_frames=3, b_max_faces=4)  # fmt: skip
    assert result.source_video == "jobs/j1/input.mp4" and result.b_set["faces"] == 4
    data = any_store.get_json("jobs/j1/report.json")
    assert data["summary"]["frames_sampled"] == 3 and data["loss"]["loss"][-1] == [9.0, 0.1]
    assert b'<section id="contact-sheet">' in any_store.get_bytes("jobs/j1/report.html")
    assert any_store.get_bytes("jobs/j1/report_sheet.png").startswith(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(NotFound):
        evaluate_job(any_store, "jobs/j1/input.mp4", "jobs/j1/output.mp4", "jobs/nothing",
                     "jobs/j1/r2.html", "jobs/j1/r2.json")  # fmt: skip
