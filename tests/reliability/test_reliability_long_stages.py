"""Stages that last longer than the RPC timeout and the retry window.

Every service is a real subprocess; FACESWAP_RPC_TIMEOUT is 1 s and FACESWAP_STAGE_RETRY_SECONDS
3 s, so any stage whose single call has to last as long as the stage (detection, training with its
watch stream) fails on a deadline. As long-running operations, each starts at once and is followed
over a stream re-opened from its last sequence: the job succeeds with the input's frame count.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from reliability_support import SAMPLES, cut_clip

from faceswap.storage import LocalStore
from services.common.pb.faceswap.v1 import jobs_pb2
from services.orchestrator.client import TERMINAL, JobClient
from services.orchestrator.launcher import ServiceGroup

RPC_TIMEOUT = 1.0
RETRY_SECONDS = 3.0  # above the timeout: a loaded 2-core machine can stall a service for a second


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("long_clips")
    return {
        "a": cut_clip(SAMPLES / "liveportrait_s18.mp4", d / "a.mp4", 1.0, "320:180"),
        "b": cut_clip(SAMPLES / "liveportrait_d10.mp4", d / "b.mp4", 1.0, "256:256"),
    }


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceGroup]:
    tmp = tmp_path_factory.mktemp("long_stages")
    env = {
        "FACESWAP_DATA_DIR": str(tmp / "data"),
        "FACESWAP_DB_URL": "",
        "FACESWAP_STORAGE": "local",
        "FACESWAP_THREADS": "1",
        "FACESWAP_RPC_TIMEOUT": str(RPC_TIMEOUT),
        "FACESWAP_STAGE_RETRY_SECONDS": str(RETRY_SECONDS),
        "FACESWAP_POLL_SECONDS": "0.2",
        "FACESWAP_LOG_FORMAT": "text",
    }
    with ServiceGroup(env=env, log_dir=tmp / "logs") as g:
        yield g


def test_stages_longer_than_the_rpc_timeout_and_retry_window(
    group: ServiceGroup, clips: dict[str, Path], tmp_path: Path
) -> None:
    from faceswap.media.store import probe

    with JobClient(group.jobs_address) as client:
        spec = jobs_pb2.SwapJobSpec(video=client.upload(clips["a"]), faces_b=[client.upload(clips["b"])])
        spec.options.train.preset = "lite"
        spec.options.convert.method = "autoencoder"  # these jobs exercise training
        spec.options.train.steps = 40
        spec.options.train.batch_size = 4
        spec.options.train.save_every = 20
        spec.options.skip_evaluate = True
        job, _ = client.submit(spec)
        deadline = time.monotonic() + 240
        while client.get(job.name).state not in TERMINAL and time.monotonic() < deadline:
            time.sleep(0.5)
        final = client.get(job.name)
        events = [r.event for r in client.watch(job.name) if r.event.sequence > 0]
    assert final.state == jobs_pb2.JOB_STATE_SUCCEEDED, final.error

    def span(stage: str) -> float:
        times = [datetime.fromisoformat(e.time).timestamp() for e in events if e.progress.stage == stage]
        return max(times) - min(times)

    # The stages really outlasted the timeout and the retry window, and reported progress meanwhile.
    print({stage: round(span(stage), 1) for stage in ("media_extract", "detect_a", "train", "convert")})
    assert span("train") > RPC_TIMEOUT + RETRY_SECONDS, span("train")
    assert span("detect_a") > RPC_TIMEOUT, span("detect_a")
    train_steps = {e.progress.done for e in events if e.progress.stage == "train"}
    assert len(train_steps) >= 3, train_steps
    assert not any("gave up" in e.message for e in events)
    store = LocalStore(Path(group.env["FACESWAP_DATA_DIR"]) / "storage", "faceswap")
    out = tmp_path / "out.mp4"
    store.get_file(final.output.key, out)
    assert probe(out).frame_count == probe(clips["a"]).frame_count
