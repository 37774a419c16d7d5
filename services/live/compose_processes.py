"""The live swap's per-frame compose (``appearance.compose`` + alpha blend of one face's ROI) in
worker processes, where Python's GIL does not serialise it.

Why processes: ``compose`` holds the GIL for about a quarter of its time (numpy on small arrays,
the landmark geometry) and two render threads fought over it: on two cores, 720p faces, two
threads made 74.6 composes/s against one thread's 60.2, two worker processes 109.5 (the ROI in
and the blended ROI out over a socket pair cost ~0.3 ms).

One pool per server process, shared by its streams (``shared``): one worker per core, at most 4,
each a ``python -m services.live.compose_processes FD`` child on its own socket pair (a plain
child, not multiprocessing's spawn: that re-imports the server's main module, torch with it). A
render thread takes an idle worker, sends the ROI, A's landmarks and B's sources, and waits for
the blended ROI. B's bank goes to a worker once (``FaceBank.dumps``) and stays there (the last
``BANKS_KEPT``). A worker that dies or hangs is replaced and the frame retried once on the new
one; an error inside compose comes back as that frame's error. A worker ends with its socket
(the server exiting closes it).
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from multiprocessing.connection import Connection
from pathlib import Path

import cv2
import numpy as np

from faceswap.composite import appearance as ap
from faceswap.composite.blend import alpha_blend
from faceswap.composite.face_bank import FaceBank
from services.live import metrics

log = logging.getLogger("faceswap.live")
BANKS_KEPT = 4
START_TIMEOUT_S = 60.0  # a cold start imports numpy and OpenCV (~1 s; slow disks more)
FRAME_TIMEOUT_S = 30.0  # one face takes ~20 ms: a worker silent this long is stuck
ROOT = Path(__file__).resolve().parents[2]

Decoded = tuple[np.ndarray, np.ndarray]  # the decoder's aligned face (float32 BGR) and its matrix


def swap_roi(
    roi: np.ndarray,
    lm: np.ndarray,
    box: tuple[int, int, int, int],
    sources: ap.Sources,
    bank: FaceBank,
    decoded: Decoded | None = None,
) -> tuple[np.ndarray, dict[str, float]]:
    """B's face composed on A's ROI (uint8 BGR, the frame's ``box``) and alpha-blended into it:
    (blended ROI, seconds of compose and blend). What a worker runs, and a session without one."""
    t0 = time.perf_counter()
    in_roi = None if decoded is None else ap.decoded_in_roi(decoded[0], decoded[1], box)
    composed = ap.compose(roi, lm, box, sources, bank.images, bank.index.landmarks, in_roi)
    t1 = time.perf_counter()
    blended = alpha_blend(composed.face, roi, composed.alpha)
    return blended, {"compose": t1 - t0, "blend": time.perf_counter() - t1}


class ComposeError(RuntimeError):
    """A frame the worker could not compose (the worker itself is fine)."""


class WorkerLost(RuntimeError):
    """A worker died or stopped answering (it is replaced)."""


class _Worker:
    def __init__(self) -> None:
        parent, child = socket.socketpair()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": _python_path()}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.live.compose_processes", str(child.fileno())],
            pass_fds=(child.fileno(),), cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        child.close()
        self.conn = Connection(parent.detach())
        self.banks: OrderedDict[str, None] = OrderedDict()  # tokens sent, as the worker keeps them
        self.swaps = 0

    def wait_ready(self) -> None:
        reply = self.recv(START_TIMEOUT_S)
        if reply[0] != "ready":
            raise WorkerLost(f"a compose worker started with {reply!r}")

    def recv(self, timeout: float) -> tuple:
        try:
            if not self.conn.poll(timeout):
                raise WorkerLost(f"a compose worker gave no answer in {timeout:g} s")
            return self.conn.recv()
        except (EOFError, OSError) as exc:
            code = self.process.poll()
            raise WorkerLost(f"a compose worker ended (exit code {code})") from exc

    def send(self, message: tuple) -> None:
        try:
            self.conn.send(message)
        except OSError as exc:
            raise WorkerLost(f"a compose worker ended (exit code {self.process.poll()})") from exc

    def stop(self) -> None:
        self.conn.close()  # the worker's recv ends
        try:
            self.process.wait(2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _python_path() -> str:
    paths = [str(ROOT), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    return os.pathsep.join(p for p in paths if p)


class ComposeProcesses:
    """``count`` compose workers; ``swap`` is thread-safe (a thread per frame in flight)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        self.closed = False
        workers = [_Worker() for _ in range(count)]  # started together, then waited for
        try:
            for worker in workers:
                worker.wait_ready()
        except WorkerLost:
            for worker in workers:
                worker.stop()
            raise
        for worker in workers:
            self._all.append(worker)
            self._idle.put(worker)
        metrics.COMPOSE_WORKERS.set(count)

    def swap(
        self,
        bank: FaceBank,
        roi: np.ndarray,
        lm: np.ndarray,
        box: tuple[int, int, int, int],
        sources: ap.Sources,
        decoded: Decoded | None = None,
    ) -> tuple[np.ndarray, dict[str, float]]:
        """``swap_roi`` in a worker; a worker lost on the way is replaced and the frame sent once more."""
        worker = self._idle.get()
        try:
            try:
                return self._swap_on(worker, bank, roi, lm, box, sources, decoded)
            except WorkerLost as exc:
                log.warning("%s; starting another and sending the frame again", exc)
                worker = self._replace(worker)
                return self._swap_on(worker, bank, roi, lm, box, sources, decoded)
        except WorkerLost as exc:
            worker = self._replace(worker)
            raise ComposeError(f"{exc} twice for this frame") from None
        finally:
            self._idle.put(worker)

    def prime(self, bank: FaceBank, job: tuple) -> None:
        """B's bank into every worker, and one face swapped in each worker that has not swapped
        yet (a process's first compose runs 2-6x slower: OpenCV's and numpy's first paths).
        ``job``: swap's arguments after the bank. Waits for workers busy with other streams."""
        workers = [self._idle.get() for _ in range(self.count)]
        try:
            busy = []
            for i, worker in enumerate(workers):
                try:
                    self._send_bank(worker, bank)
                    if not worker.swaps:
                        worker.send(("swap", bank.token, *job))
                        busy.append(worker)
                except WorkerLost:
                    workers[i] = self._replace(worker)
            for worker in busy:
                try:
                    worker.recv(FRAME_TIMEOUT_S)
                    worker.swaps += 1
                except WorkerLost:
                    workers[workers.index(worker)] = self._replace(worker)
        finally:
            for worker in workers:
                self._idle.put(worker)

    def _send_bank(self, worker: _Worker, bank: FaceBank) -> None:
        if bank.token in worker.banks:
            worker.banks.move_to_end(bank.token)
            return
        worker.send(("bank", bank.token, bank.dumps(), bank.source))
        reply = worker.recv(START_TIMEOUT_S)
        if reply[0] != "ok":
            raise ComposeError(f"B's face bank could not be loaded in a worker: {reply[-1]}")
        worker.banks[bank.token] = None
        while len(worker.banks) > BANKS_KEPT:
            worker.banks.popitem(last=False)

    def _swap_on(self, worker: _Worker, bank: FaceBank, *job: object) -> tuple[np.ndarray, dict[str, float]]:
        for _ in range(2):
            self._send_bank(worker, bank)
            worker.send(("swap", bank.token, *job))
            reply = worker.recv(FRAME_TIMEOUT_S)
            if reply[0] == "ok":
                worker.swaps += 1
                return reply[1], reply[2]
            if reply[0] == "error":
                raise ComposeError(reply[1])
            worker.banks.pop(bank.token, None)  # "no bank": the worker had let it go; send it again
        raise ComposeError("B's face bank did not stay in a compose worker")

    def _replace(self, worker: _Worker) -> _Worker:
        metrics.COMPOSE_RESTARTS.inc()
        worker.process.kill()
        worker.stop()
        fresh = _Worker()
        fresh.wait_ready()
        with self._lock:
            self._all[self._all.index(worker)] = fresh
        return fresh

    def cpu_seconds(self) -> float:
        """CPU seconds the live workers have used (Linux /proc; 0 elsewhere): a benchmark's
        per-frame CPU must count them, not only the server process's."""
        total = 0.0
        for worker in list(self._all):
            try:
                fields = Path(f"/proc/{worker.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except (OSError, IndexError, ValueError):
                pass
        return total

    def close(self) -> None:
        self.closed = True
        for worker in self._all:
            worker.stop()


_shared: ComposeProcesses | None = None
_shared_lock = threading.Lock()


def cores() -> int:
    """The cores this process may run on, at most 4: the live service's render threads and
    compose workers (more than 4 frames in flight only add latency)."""
    return max(1, min(4, len(os.sched_getaffinity(0))))


def shared() -> ComposeProcesses | None:
    """The server process's compose workers, one per core (started on first use, ~1 s); None on
    one core (nothing to gain) or when they cannot start (frames are then composed in threads)."""
    global _shared
    if cores() <= 1:
        return None
    with _shared_lock:
        if _shared is None or _shared.closed:
            try:
                _shared = ComposeProcesses(cores())
            except WorkerLost as exc:
                log.warning("live frames are composed in threads: %s", exc)
                return None
        return _shared


# -- the worker ----------------------------------------------------------------------------------
def serve(conn: Connection) -> None:
    """A worker's loop: ("bank", token, raw, source) -> ("ok",); ("swap", token, roi, lm, box,
    sources, decoded) -> ("ok", blended, seconds) | ("error", message) | ("no bank",)."""
    cv2.setNumThreads(1)  # one worker per core already
    ap.warm_up()
    banks: OrderedDict[str, FaceBank] = OrderedDict()
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the server closed the socket or exited
        try:
            if message[0] == "bank":
                _, token, raw, source = message
                banks[token] = FaceBank.loads(raw, source)
                while len(banks) > BANKS_KEPT:
                    banks.popitem(last=False)
                conn.send(("ok",))
                continue
            _, token, *job = message
            bank = banks.get(token)
            if bank is None:
                conn.send(("no bank",))
                continue
            banks.move_to_end(token)
            roi, lm, box, sources, decoded = job
            blended, seconds = swap_roi(roi, lm, box, sources, bank, decoded)
            conn.send(("ok", blended, seconds))
        except Exception as exc:  # one frame's failure, not the worker's
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


if __name__ == "__main__":
    serve(Connection(int(sys.argv[1])))
