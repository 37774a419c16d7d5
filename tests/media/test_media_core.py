"""extract_frames / encode_video / read_frames / VideoWriter on real clips, local and S3 storage."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from prometheus_client import REGISTRY

import services.media.metrics  # noqa: F401  (the Prometheus sink the counts below go to)
from faceswap.errors import Aborted, InvalidArgument, NotFound
from faceswap.media.store import (
    VideoWriter,
    encode_video,
    extract_frames,
    list_frame_keys,
    probe,
    read_frames,
)
from faceswap.storage import LocalStore, ObjectStore


def _metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def _assert_round_trip(source: Path, output: Path) -> None:
    a, b = probe(source), probe(output)
    frame = 1 / float(a.fps)
    assert b.frame_count == a.frame_count
    assert b.fps == a.fps
    assert abs(b.video_duration - a.video_duration) <= frame
    assert abs(b.duration - a.duration) <= frame
    assert b.has_audio and b.audio_codec == a.audio_codec  # stream copy, not re-encoded
    assert abs(b.audio_duration - a.audio_duration) <= frame


def test_read_frames_range_and_step(short_clip: Path) -> None:
    all_frames = dict(read_frames(short_clip))
    assert len(all_frames) == 30 and all_frames[0].shape == (180, 320, 3)
    picked = list(read_frames(short_clip, start=4, end=20, step=5))
    assert [n for n, _ in picked] == [4, 9, 14, 19]
    for n, frame in picked:
        assert np.array_equal(frame, all_frames[n])
    assert [n for n, _ in read_frames(short_clip, start=27, step=2)] == [27, 29]


def test_read_frames_stops_ffmpeg_when_closed_early(short_clip: Path) -> None:
    frames = read_frames(short_clip)
    next(frames)
    frames.close()  # must not hang or leave a zombie; a second pass works
    assert next(read_frames(short_clip))[0] == 0


def test_round_trip_with_audio(short_clip: Path, local_store: LocalStore) -> None:
    local_store.put_file("in/clip.mp4", short_clip)
    decoded, encoded = (
        _metric("faceswap_media_frames_decoded_total"),
        _metric("faceswap_media_frames_encoded_total"),
    )
    extracted = extract_frames(local_store, "in/clip.mp4", "job/frames")
    assert extracted.frame_count == 30 and extracted.index_key == "job/frames/index.json"
    index = local_store.get_json("job/frames/index.json")
    assert index["fps"] == "30/1" and index["frames"][3] == {
        "index": 3,
        "key": "job/frames/00000003.png",
        "time": pytest.approx(0.1),
    }
    assert [n for n, _ in list_frame_keys(local_store, "job/frames")] == list(range(30))
    result = encode_video(
        local_store, "job/frames", "job/out.mp4", audio_from_key="in/clip.mp4", preset="ultrafast"
    )
    assert result.frame_count == 30 and result.output_key == "job/out.mp4"
    _assert_round_trip(short_clip, local_store.local_path("job/out.mp4"))
    assert _metric("faceswap_media_frames_decoded_total") - decoded >= 30
    assert _metric("faceswap_media_frames_encoded_total") - encoded == 30


def test_lossless_round_trip_equals_originals(
    short_clip: Path, local_store: LocalStore, tmp_path: Path
) -> None:
    local_store.put_file("in/clip.mp4", short_clip)
    extract_frames(local_store, "in/clip.mp4", "f", end=8)
    encode_video(local_store, "f", "out.mkv", codec="libx264rgb", crf=0, pix_fmt="bgr24", preset="ultrafast")
    originals = [cv2.imread(str(local_store.local_path(k))) for _, k in list_frame_keys(local_store, "f")]
    assert probe(local_store.local_path("out.mkv")).fps == 30  # rate taken from the frames' index.json
    again = [frame for _, frame in read_frames(local_store.local_path("out.mkv"))]
    assert len(again) == len(originals) == 8
    for a, b in zip(originals, again, strict=True):
        assert np.array_equal(a, b)


def test_2997_fps_preserved_exactly(hamilton: Path, local_store: LocalStore) -> None:
    local_store.put_file("h.mp4", hamilton)
    extract_frames(local_store, "h.mp4", "frames", image_format="jpg", quality=90)
    encode_video(local_store, "frames", "out.mp4", audio_from_key="h.mp4", preset="ultrafast", crf=28)
    out = probe(local_store.local_path("out.mp4"))
    assert out.fps == Fraction(2997, 100)
    _assert_round_trip(hamilton, local_store.local_path("out.mp4"))


def test_round_trip_through_s3(short_clip: Path, s3_store: ObjectStore) -> None:
    s3_store.put_file("videos/clip.mp4", short_clip)
    extracted = extract_frames(s3_store, "videos/clip.mp4", "jobs/1/frames", image_format="webp", step=3)
    assert extracted.frame_count == 10
    assert [n for n, _ in list_frame_keys(s3_store, "jobs/1/frames")] == list(range(0, 30, 3))
    result = encode_video(
        s3_store, "jobs/1/frames", "jobs/1/out.mp4", "videos/clip.mp4", fps=Fraction(10), preset="ultrafast"
    )
    assert result.frame_count == 10 and result.info.fps == 10 and result.info.has_audio
    assert s3_store.stat("jobs/1/out.mp4").size > 0


@pytest.mark.parametrize("case", ["truncated", "zero_bytes", "image", "audio_only"])
def test_failed_extract_publishes_nothing(
    bad_inputs: dict[str, Path], local_store: LocalStore, case: str
) -> None:
    local_store.put_file("bad/input.mp4", bad_inputs[case])
    with pytest.raises(InvalidArgument, match=r"bad/input\.mp4"):
        extract_frames(local_store, "bad/input.mp4", "out")
    assert list(local_store.list("out")) == []


def test_cut_off_video_fails_midway_and_removes_its_frames(cut_clip: Path, local_store: LocalStore) -> None:
    local_store.put_file("cut.mp4", cut_clip)
    with pytest.raises(InvalidArgument, match="decoding failed after"):
        extract_frames(local_store, "cut.mp4", "out")
    assert list(local_store.list("out")) == []


def test_missing_video_is_not_found(local_store: LocalStore) -> None:
    with pytest.raises(NotFound, match=r"nope\.mp4"):
        extract_frames(local_store, "nope.mp4", "out")


def test_bad_options_are_invalid_argument(short_clip: Path, local_store: LocalStore) -> None:
    local_store.put_file("c.mp4", short_clip)
    for kwargs, field in [
        ({"image_format": "gif"}, "image_format"),
        ({"step": 0}, "range.step"),
        ({"start": 10, "end": 5}, "range.end"),
        ({"start": 500}, "range.start"),
    ]:
        with pytest.raises(InvalidArgument) as err:
            extract_frames(local_store, "c.mp4", "out", **kwargs)
        assert err.value.field == field
    assert list(local_store.list("out")) == []


def test_encode_errors(short_clip: Path, local_store: LocalStore) -> None:
    local_store.put_file("c.mp4", short_clip)
    extract_frames(local_store, "c.mp4", "f", end=3)
    with pytest.raises(InvalidArgument, match=r"no \.png"):
        encode_video(local_store, "empty", "out.mp4")
    with pytest.raises(InvalidArgument) as err:
        encode_video(local_store, "f", "out.mp4", codec="nosuchcodec")
    assert err.value.field == "codec"
    with pytest.raises(NotFound, match=r"missing\.mp4"):
        encode_video(local_store, "f", "out.mp4", audio_from_key="missing.mp4")
    # One frame of another size: a clear error naming it, and no output.
    cv2.imwrite(str(local_store.root / "f" / "00000002.png"), np.zeros((50, 60, 3), np.uint8))
    with pytest.raises(InvalidArgument, match=r"00000002\.png"):
        encode_video(local_store, "f", "out.mp4")
    assert not local_store.exists("out.mp4")


def test_video_writer_publishes_only_on_success(tmp_path: Path) -> None:
    out = tmp_path / "v.mp4"
    with (
        pytest.raises(RuntimeError),
        VideoWriter(out, Fraction(30000, 1001), 64, 48, preset="ultrafast") as w,
    ):
        w.write(np.zeros((48, 64, 3), np.uint8))
        raise RuntimeError("caller failed midway")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InvalidArgument, match="expected"):
        VideoWriter(out, 25, 64, 48).write(np.zeros((10, 10, 3), np.uint8))
    with VideoWriter(out, Fraction(30000, 1001), 65, 47, preset="ultrafast") as w:  # odd size gets padded
        for i in range(5):
            w.write(np.full((47, 65, 3), i * 40, np.uint8))
    info = probe(out)
    assert info.frame_count == 5 and info.fps == Fraction(30000, 1001) and not info.has_audio
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_video_writer_keeps_colours(tmp_path: Path) -> None:
    """Lossless H.264 (crf 0), so only the BGR -> 4:2:0 conversion is measured: the writer's own
    conversion (an even size) is at least as faithful as ffmpeg's (an odd size), in error and in
    colour cast (some cast is the 4:2:0 round trip's own, on a noisy picture)."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 128, dtype=np.float64)
    frame = np.stack([np.tile(ramp, (96, 1)), np.tile(ramp[::-1], (96, 1)), np.full((96, 128), 90.0)], -1)
    frame = np.clip(cv2.GaussianBlur(frame + rng.normal(0, 20, frame.shape), (0, 0), 2), 0, 255).astype(
        np.uint8
    )
    errors, casts = {}, {}
    for w, h in ((128, 96), (127, 95)):
        out = tmp_path / f"v{w}.mp4"
        with VideoWriter(out, 25, w, h, crf=0, preset="ultrafast") as writer:
            for _ in range(3):
                writer.write(np.ascontiguousarray(frame[:h, :w]))
        back = np.array(next(iter(read_frames(out)))[1]).astype(np.float64)[:h, :w]
        diff = back - frame[:h, :w]
        errors[w], casts[w] = float(np.abs(diff).mean()), float(np.abs(diff.mean(axis=(0, 1))).max())
    assert errors[128] < 2.0 and errors[128] <= errors[127] + 0.1, errors
    assert casts[128] < 3.0 and casts[128] <= casts[127] + 0.1, casts


def test_audio_only_source_is_fine_for_audio_from(audio_only: Path, tmp_path: Path) -> None:
    out = tmp_path / "v.mp4"
    with VideoWriter(out, 25, 64, 48, preset="ultrafast", audio_from=audio_only) as w:
        for _ in range(25):
            w.write(np.zeros((48, 64, 3), np.uint8))
    info = probe(out)
    assert info.has_audio and info.audio_duration == pytest.approx(1.0, abs=0.05)


def test_memory_is_bounded_by_a_few_frames(media_dir: Path, run_ffmpeg: Callable[..., None]) -> None:
    clip = media_dir / "long.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=30", "-frames:v", "300", "-c:v", "libx264",
               "-preset", "ultrafast", str(clip))  # fmt: skip
    frame_bytes = 320 * 240 * 3
    tracemalloc.start()
    try:
        count = sum(1 for _ in read_frames(clip))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 300
    assert peak < 4 * frame_bytes  # 300 frames streamed, never more than a few held


def test_audio_the_container_cannot_take_is_reencoded(
    media_dir: Path, run_ffmpeg: Callable[..., None], tmp_path: Path
) -> None:
    wav = media_dir / "tone.wav"
    run_ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:duration=1", str(wav))
    out = tmp_path / "v.mp4"
    with VideoWriter(out, 25, 64, 48, preset="ultrafast", audio_from=wav) as w:
        for _ in range(25):
            w.write(np.zeros((48, 64, 3), np.uint8))
    info = probe(out)
    assert info.audio_codec == "aac" and info.audio_duration == pytest.approx(1.0, abs=0.05)


@pytest.mark.slow
def test_long_1080p_transcode_streams_in_constant_memory(
    media_dir: Path, run_ffmpeg: Callable[..., None], tmp_path: Path
) -> None:
    """30 s of 1080p through read_frames -> VideoWriter: memory stays a few frames, not 900."""
    clip = media_dir / "long1080.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30", "-f", "lavfi", "-i", "sine=duration=30",
               "-t", "30", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(clip))  # fmt: skip
    info = probe(clip)
    frame_bytes = info.width * info.height * 3
    out = tmp_path / "out.mp4"
    tracemalloc.start()
    try:
        with VideoWriter(
            out, info.fps, info.width, info.height, preset="ultrafast", audio_from=clip
        ) as writer:
            for _, frame in read_frames(clip, info=info):
                writer.write(frame)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert writer.frames_written == info.frame_count == 900
    assert peak < 4 * frame_bytes
    _assert_round_trip(clip, out)


def test_cancelled_work_stops_and_publishes_nothing(short_clip: Path, local_store: LocalStore) -> None:
    local_store.put_file("c.mp4", short_clip)
    calls = iter(range(100))
    with pytest.raises(Aborted, match="cancelled"):
        extract_frames(local_store, "c.mp4", "out", should_stop=lambda: next(calls) >= 5)
    assert list(local_store.list("out")) == []
    extract_frames(local_store, "c.mp4", "f", end=10)
    calls = iter(range(100))
    with pytest.raises(Aborted):
        encode_video(local_store, "f", "o.mp4", preset="ultrafast", should_stop=lambda: next(calls) >= 5)
    assert not local_store.exists("o.mp4")


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_late_start_seeks_yet_gives_exact_frames(
    media_dir: Path, run_ffmpeg: Callable[..., None], suffix: str, hamilton: Path
) -> None:
    from faceswap.media.frames import seek_point

    clip = media_dir / f"gop{suffix}"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x90:rate=30000/1001", "-frames:v", "150", "-c:v", "libx264",
               "-preset", "ultrafast", "-g", "12", "-bf", "3", str(clip))  # fmt: skip
    # The generated clip (short GOPs with B-frames) and, once, the real hamilton clip (GOPs of 40-60).
    cases = [(clip, (71, 96, 137))] + ([(hamilton, (121, 200))] if suffix == ".mp4" else [])
    for video, starts in cases:
        info = probe(video)
        full = dict(read_frames(video, info=info))
        for start in starts:
            assert seek_point(video, info, start) is not None
            got = list(read_frames(video, start, start + 9, 4, info=info))
            assert [n for n, _ in got] == [start, start + 4, start + 8]
            for n, frame in got:
                assert np.array_equal(frame, full[n]), (video.name, start, n)
