"""LiveService.Swap over a real socket: order, drops, bad frames, bad configs, disconnects."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import cv2
import grpc
import numpy as np
import pytest
from live_helpers import CLIP_B, FACES_B, SAMPLES, assert_reads_as_b

from services.common.pb.faceswap.v1 import live_pb2, live_pb2_grpc
from services.live import client as lc
from services.live import metrics


@pytest.fixture(scope="module")
def server() -> Iterator[object]:
    from services.common.server import start_server
    from services.live.server import build_spec

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACESWAP_LIVE_FACES_DIRS", str(SAMPLES.resolve()))
        running = start_server(build_spec(), port=0, metrics_port=0)
        yield running
        running.stop(1)


@pytest.fixture
def stub(server) -> Iterator[live_pb2_grpc.LiveServiceStub]:
    channel, stub = lc.connect(f"127.0.0.1:{server.port}")
    yield stub
    channel.close()


def _config(**options: object) -> live_pb2.LiveFrame:
    opts = live_pb2.LiveOptions(max_faces_b=FACES_B, **options)
    return lc.config_message(str(CLIP_B), options=opts)


def _wait_streams_closed(timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while metrics.STREAMS._value.get() > 0:
        assert time.monotonic() < deadline, "the server did not end the stream"
        time.sleep(0.05)


def test_the_server_leaves_parallelism_to_its_render_workers(server) -> None:
    """One OpenCV thread: the workers already use every core (its pool cost ~25 % more CPU)."""
    assert cv2.getNumThreads() == 1


def test_a_stream_starts_with_the_servers_objects_frozen_out_of_the_collector(stub, jpegs_a) -> None:
    """A full collection scans every object with the GIL held (85 ms mid-stream at 720p, frames
    dropped); what is alive at a stream's start is frozen so streams run none."""
    import gc

    gc.unfreeze()
    lc.stream(stub, _config(), jpegs_a[:2], None, timeout=120)
    assert gc.get_freeze_count() > 10_000  # the models, the bank, the modules


def test_frames_come_back_swapped_in_order_with_timings(stub, jpegs_a, frames_a, b_embeddings) -> None:
    replies: list[live_pb2.LiveFrame] = []
    stats = lc.stream(stub, _config(queue_size=64), jpegs_a[:12], None, on_reply=replies.append, timeout=120)
    assert stats.ready is not None and stats.ready.faces_b == FACES_B
    assert stats.sequences == list(range(1, 13)) and not stats.dropped and not stats.errors
    assert stats.swapped == 12
    first = lc.decode_reply(replies[0])
    assert first.shape == frames_a[0].shape
    assert_reads_as_b(first, frames_a[0], b_embeddings)  # the face is B's ...
    diff = np.abs(first.astype(int) - frames_a[0]).max(axis=2)
    assert diff[:, :150].max() < 40  # ... the background on the left did not (JPEG noise only)
    for stage in ("decode", "compose", "blend", "encode", "server", "queue"):
        assert stage in replies[0].stage_seconds
    assert all(r.capture_time > 0 for r in replies)


def test_a_compose_worker_dying_mid_stream_costs_no_frame(stub, jpegs_a) -> None:
    """The compose workers are processes: one killed mid-stream is replaced, its frame sent again."""
    import os
    import signal

    from services.live import compose_processes

    pool = compose_processes.shared()
    if pool is None:
        pytest.skip("one core: frames are composed in the render threads")
    killed: list[int] = []

    def kill_after_fifth(msg: live_pb2.LiveFrame) -> None:
        if msg.sequence == 5 and not killed:
            killed.extend(w.process.pid for w in pool._all)
            for pid in killed:
                os.kill(pid, signal.SIGKILL)

    stats = lc.stream(
        stub, _config(queue_size=64), jpegs_a[:20], None, on_reply=kill_after_fifth, timeout=120
    )
    assert killed and stats.sequences == list(range(1, 21)) and not stats.errors
    assert stats.swapped == 20
    assert not {w.process.pid for w in pool._all} & set(killed)
    assert "handoff" in stats.stage_seconds  # composed in a worker, not in the thread


def test_a_trained_model_of_b_adds_the_decoders_face_hybrid(stub, jpegs_a, frames_a) -> None:
    """config.model (the bundled demo model): every frame swapped, the decoder timed per frame,
    and the picture differs from retrieval's only inside the face."""
    outs = {}
    for model in ("", "builtin:demo"):
        replies: list[live_pb2.LiveFrame] = []
        config = lc.config_message(
            str(CLIP_B), options=live_pb2.LiveOptions(max_faces_b=FACES_B, queue_size=64), model=model
        )
        stats = lc.stream(stub, config, jpegs_a[:6], None, on_reply=replies.append, timeout=120)
        assert stats.swapped == 6 and not stats.errors and not stats.dropped
        assert ("model" in replies[-1].stage_seconds) == bool(model)
        outs[model] = lc.decode_reply(replies[-1]).astype(int)
    diff = np.abs(outs["builtin:demo"] - outs[""]).max(axis=2)
    assert diff[:, :150].max() < 40  # the background is the same (JPEG noise only)


def test_raw_frames_both_ways_come_back_swapped_and_untouched_outside_the_face(
    stub, frames_a, b_embeddings
) -> None:
    replies: list[live_pb2.LiveFrame] = []
    config = _config(queue_size=64, output_encoding=live_pb2.FRAME_ENCODING_RAW_BGR)
    stats = lc.stream(stub, config, frames_a[:6], None, on_reply=replies.append, timeout=120, raw=True)
    assert stats.sequences == list(range(1, 7)) and not stats.errors and stats.swapped == 6
    assert all(r.image.encoding == live_pb2.FRAME_ENCODING_RAW_BGR for r in replies)
    first = lc.decode_reply(replies[0])
    assert_reads_as_b(first, frames_a[0], b_embeddings)  # the face is B's ...
    diff = np.abs(first.astype(int) - frames_a[0]).max(axis=2)
    assert diff[:, :150].max() == 0  # ... and, with no JPEG on the way, nothing else did
    assert "decode" in replies[0].stage_seconds


def test_under_load_the_newest_wins_and_drops_are_reported_never_reordered(stub, jpegs_a) -> None:
    dropped_before = metrics.FRAMES_DROPPED._value.get()
    stats = lc.stream(stub, _config(queue_size=1, workers=1), jpegs_a[:30], None, timeout=120)
    assert stats.dropped, "30 frames sent at once through a 1-frame queue: some must be dropped"
    assert stats.sequences == sorted(stats.sequences)
    assert sorted(stats.sequences + stats.dropped) == list(range(1, 31))  # each frame once
    assert stats.sequences[-1] == 30  # the newest frame always wins
    assert metrics.FRAMES_DROPPED._value.get() - dropped_before == len(stats.dropped)


def test_a_corrupt_jpeg_and_a_size_change_are_per_frame_errors(stub, jpegs_a, frames_a) -> None:
    small = cv2.imencode(".jpg", cv2.resize(frames_a[3], (320, 180)))[1].tobytes()
    corrupt = jpegs_a[1][:200] + b"\x00garbage" * 50
    raw = frames_a[5]
    msgs = [
        lc.jpeg_frame(1, jpegs_a[0], 1.0),
        lc.jpeg_frame(2, corrupt, 2.0),
        lc.jpeg_frame(3, jpegs_a[2], 3.0),
        lc.jpeg_frame(4, small, 4.0),
        lc.jpeg_frame(5, b"not an image", 5.0),
        live_pb2.LiveFrame(
            sequence=6,
            image=live_pb2.LiveImage(
                encoding=live_pb2.FRAME_ENCODING_RAW_BGR, data=raw.tobytes(), width=640, height=360
            ),
        ),
        live_pb2.LiveFrame(
            sequence=7,
            image=live_pb2.LiveImage(
                encoding=live_pb2.FRAME_ENCODING_RAW_BGR, data=b"\x00" * 10, width=640, height=360
            ),
        ),
        lc.jpeg_frame(7, jpegs_a[7], 7.0),  # repeats 7 after a failed 7: accepted
        lc.jpeg_frame(7, jpegs_a[8], 8.0),  # a sequence that does not increase
    ]
    replies = list(stub.Swap(iter([_config(queue_size=64), *msgs]), timeout=120))
    assert replies[0].HasField("ready")
    by_seq = [(r.sequence, r.error.message if r.HasField("error") else "") for r in replies[1:]]
    assert [s for s, _ in by_seq] == [1, 2, 3, 4, 5, 6, 7, 7, 7]
    errors = {i: m for i, (_s, m) in enumerate(by_seq) if m}
    assert set(errors) == {1, 3, 4, 6, 8}, by_seq
    assert "corrupt" in errors[1] or "readable" in errors[1]
    assert "320x180" in errors[3] and "640x360" in errors[3]
    assert "bytes" in errors[6]
    assert "increase" in errors[8]
    for r in replies[1:]:
        if r.HasField("error"):
            assert r.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
            assert r.error.where == f"frame {r.sequence}"
        else:
            assert lc.decode_reply(r).shape == (360, 640, 3)


@pytest.mark.parametrize(
    ("first", "code", "words"),
    [
        (lc.jpeg_frame(1, b"x", 0.0), grpc.StatusCode.INVALID_ARGUMENT, "config"),
        (lc.config_message("/etc/passwd"), grpc.StatusCode.INVALID_ARGUMENT, "FACESWAP_LIVE_FACES_DIRS"),
        (lc.config_message(str(SAMPLES / "nope.mp4")), grpc.StatusCode.NOT_FOUND, "does not exist"),
        (lc.config_message(), grpc.StatusCode.INVALID_ARGUMENT, "exactly one"),
        (
            lc.config_message(str(CLIP_B), options=live_pb2.LiveOptions(queue_size=1000)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "queue_size",
        ),
        (
            lc.config_message(
                str(CLIP_B), options=live_pb2.LiveOptions(max_faces_b=FACES_B), model="builtin:nope"
            ),
            grpc.StatusCode.NOT_FOUND,
            "builtin:nope",
        ),
    ],
)
def test_bad_configs_end_the_stream_with_a_clear_status(stub, first, code, words) -> None:
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Swap(iter([first]), timeout=30))
    assert err.value.code() == code
    assert words in err.value.details()


def test_a_client_that_disconnects_mid_stream_frees_the_server(stub, jpegs_a) -> None:
    def forever() -> Iterator[live_pb2.LiveFrame]:
        yield _config()
        i = 0
        while True:
            i += 1
            yield lc.jpeg_frame(i, jpegs_a[i % len(jpegs_a)], time.perf_counter())
            time.sleep(0.02)

    call = stub.Swap(forever(), timeout=60)
    got = 0
    for msg in call:
        got += int(msg.HasField("image"))
        if got == 3:
            call.cancel()
            break
    _wait_streams_closed()
    stats = lc.stream(stub, _config(queue_size=8), jpegs_a[:3], None, timeout=60)  # still serving
    assert stats.received == 3


def test_a_client_that_stops_reading_is_ended_after_the_stall_timeout(server, stub, frames_a) -> None:
    ended_before = metrics.STREAMS_ENDED.labels("stalled")._value.get()
    big = cv2.resize(frames_a[0], (1920, 1080))
    raw = big.tobytes()  # 6 MB replies fill the flow-control windows after a few frames

    stop = threading.Event()

    def requests() -> Iterator[live_pb2.LiveFrame]:
        yield _config(stall_timeout_s=1.0, output_encoding=live_pb2.FRAME_ENCODING_RAW_BGR)
        for i in range(1, 400):
            if stop.is_set():
                return
            yield live_pb2.LiveFrame(
                sequence=i,
                image=live_pb2.LiveImage(
                    encoding=live_pb2.FRAME_ENCODING_RAW_BGR, data=raw, width=1920, height=1080
                ),
            )
            time.sleep(0.01)

    call = stub.Swap(requests(), timeout=60)
    next(call)  # the ready message; then never read again
    deadline = time.monotonic() + 30
    while metrics.STREAMS_ENDED.labels("stalled")._value.get() == ended_before:
        assert time.monotonic() < deadline, "a stalled stream was not ended"
        time.sleep(0.1)
    stop.set()
    _wait_streams_closed()
    with pytest.raises(grpc.RpcError) as err:
        for _ in call:
            pass
    assert err.value.code() == grpc.StatusCode.CANCELLED


def test_patch_replies_carry_only_the_face_and_rebuild_the_frame(stub, frames_a, b_embeddings) -> None:
    frames: list[tuple[live_pb2.LiveFrame, np.ndarray | None]] = []
    config = _config(queue_size=64, reply_patch=True)
    stats = lc.stream(
        stub, config, frames_a[:5], None, timeout=120, on_frame=lambda m, i: frames.append((m, i))
    )
    assert stats.sequences == list(range(1, 6)) and stats.swapped == 5 and not stats.errors
    msg, image = frames[0]
    p = msg.patch
    assert 0 < p.width * p.height < frames_a[0].shape[0] * frames_a[0].shape[1] / 2  # only the face
    assert (msg.image.width, msg.image.height) == (p.width, p.height)
    assert image.shape == frames_a[0].shape
    outside = np.ones(frames_a[0].shape[:2], bool)
    outside[p.y : p.y + p.height, p.x : p.x + p.width] = False
    assert np.array_equal(image[outside], frames_a[0][outside])  # never re-compressed
    assert_reads_as_b(image, frames_a[0], b_embeddings)


def test_pacing_starts_at_the_first_frame_so_a_slow_reader_sends_no_burst(stub, jpegs_a) -> None:
    """A video reader takes a while to yield its first frame; paced from before it, the frames
    due meanwhile went out at once and the server's small queue dropped them."""

    def slow_start() -> Iterator[bytes]:
        time.sleep(0.5)  # ffmpeg starting up
        yield from jpegs_a[:5]

    replies: list[live_pb2.LiveFrame] = []
    stats = lc.stream(stub, _config(queue_size=64), slow_start(), 10.0, on_reply=replies.append, timeout=120)
    assert stats.sequences == [1, 2, 3, 4, 5] and not stats.dropped
    sent = sorted(r.capture_time for r in replies)
    # Paced from before the reader's start, all five were overdue and went out at once (span ~0);
    # a pause of the whole process (a garbage collection late in the suite) can only widen it.
    assert sent[-1] - sent[0] > 0.3, f"frames sent {np.diff(sent)} s apart at 10 frames/s"
