"""The live compose workers: real child processes on socket pairs, the same pixels as composing in
the thread, and a worker that dies or fails a frame does not take the stream with it."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from faceswap.composite import appearance as ap
from services.live import compose_processes as cp
from services.live import metrics
from services.live.bank import largest_face


@pytest.fixture(scope="module")
def pool():
    pool = cp.ComposeProcesses(2)
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def job(frames_a):
    frame = frames_a[0]
    lm = largest_face(frame)
    box = ap.roi_box(lm, frame.shape[1], frame.shape[0])
    x0, y0, x1, y1 = box
    return frame[y0:y1, x0:x1], lm, box, {r: [(1, 1.0)] for r in ap.REGIONS}


def test_a_worker_composes_the_pixels_the_thread_does(pool, bank, job) -> None:
    roi, lm, box, sources = job
    here, _ = cp.swap_roi(roi, lm, box, sources, bank)
    there, seconds = pool.swap(bank, roi, lm, box, sources)
    assert there.shape == roi.shape and there.dtype == np.uint8
    assert np.array_equal(here, there)
    assert np.abs(there.astype(int) - roi).max() > 40  # a face was put there
    assert set(seconds) == {"compose", "blend"}


def test_a_dead_worker_is_replaced_and_the_frame_still_composed(pool, bank, job) -> None:
    pool.prime(bank, (*job, None))
    before = metrics.COMPOSE_RESTARTS._value.get()
    victims = [w.process.pid for w in pool._all]
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    out, _ = pool.swap(bank, *job)  # lost on the way: a fresh worker gets the bank and the frame
    assert out.shape == job[0].shape
    assert metrics.COMPOSE_RESTARTS._value.get() >= before + 1
    pool.swap(bank, *job)
    assert all(w.process.poll() is None for w in pool._all)


def test_a_frame_that_fails_comes_back_as_its_error_and_the_worker_goes_on(pool, bank, job) -> None:
    roi, lm, box, _ = job
    with pytest.raises(cp.ComposeError, match=r"IndexError|out of range"):
        pool.swap(bank, roi, lm, box, {r: [(10_000, 1.0)] for r in ap.REGIONS})
    out, _ = pool.swap(bank, *job)
    assert out.shape == roi.shape


def test_a_bank_the_worker_let_go_is_sent_again(pool, bank, job) -> None:
    pool.swap(bank, *job)
    for worker in pool._all:
        worker.banks.clear()  # as if evicted on our side only: the worker still has it (no resend harm)
    pool.swap(bank, *job)
    worker = pool._idle.get()
    try:
        worker.send(("bank", "other", bank.dumps(), "other"))
        worker.recv(30)
        for k in range(cp.BANKS_KEPT):
            worker.send(("bank", f"filler{k}", bank.dumps(), "x"))
            worker.recv(30)
        worker.banks[bank.token] = None  # we think it is there; the worker dropped it
    finally:
        pool._idle.put(worker)
    for _ in range(2):
        out, _ = pool.swap(bank, *job)
        assert out.shape == job[0].shape
