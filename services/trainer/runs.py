"""Background training runs, one per model prefix (plain Python; server.py exposes it over gRPC).

``TrainingManager.start`` launches ``loop.train`` in a thread and returns at once; ``get`` and
``watch`` read its progress (watch yields a snapshot first, then each update until the run ends);
``stop`` asks it to save and stop; ``stop_all`` does that for every run (server shutdown).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from faceswap.errors import NotFound, ServiceError
from faceswap.storage import ObjectStore, validate_prefix
from services.trainer.loop import TrainOptions, TrainProgress, train

log = logging.getLogger("faceswap.trainer")

FINAL_STATES = ("succeeded", "stopped", "failed")


@dataclass
class Run:
    model_prefix: str
    preset: str
    progress: TrainProgress
    stop: threading.Event = field(default_factory=threading.Event)
    changed: threading.Condition = field(default_factory=threading.Condition)
    version: int = 0
    error: ServiceError | None = None
    thread: threading.Thread | None = None

    @property
    def done(self) -> bool:
        return self.progress.state in FINAL_STATES

    def publish(self, progress: TrainProgress) -> None:
        with self.changed:
            self.progress = replace(progress, losses=dict(progress.losses))
            self.version += 1
            self.changed.notify_all()


class TrainingManager:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._runs: dict[str, Run] = {}
        self._lock = threading.Lock()

    def start(self, faces_a: str, faces_b: str, model_prefix: str, options: TrainOptions) -> Run:
        """Starts a run; a run already going for model_prefix is returned as it is."""
        prefix = validate_prefix(model_prefix)
        with self._lock:
            current = self._runs.get(prefix)
            if current is not None and not current.done:
                return current
            run = Run(prefix, options.preset, TrainProgress(model_prefix=prefix, total_steps=options.steps))
            run.thread = threading.Thread(
                target=self._run, args=(run, faces_a, faces_b, options), name=f"train-{prefix}", daemon=True
            )
            self._runs[prefix] = run
        run.thread.start()
        return run

    def _run(self, run: Run, faces_a: str, faces_b: str, options: TrainOptions) -> None:
        try:
            final = train(self.store, faces_a, faces_b, run.model_prefix, options, run.publish, run.stop)
            run.publish(final)
        except ServiceError as exc:
            run.error = exc
            log.warning("training %s failed: %s", run.model_prefix, exc.message)
            run.publish(replace(run.progress, state="failed", message=exc.message))
        except Exception as exc:
            run.error = ServiceError(f"internal error: {type(exc).__name__}: {exc}")
            log.exception("training %s failed", run.model_prefix)
            run.publish(replace(run.progress, state="failed", message=run.error.message))

    def get(self, model_prefix: str) -> Run:
        prefix = validate_prefix(model_prefix)
        with self._lock:
            run = self._runs.get(prefix)
        if run is None:
            raise NotFound(f"no training run for {prefix!r} in this server")
        return run

    def watch(self, model_prefix: str, alive: threading.Event | None = None) -> Iterator[Run]:
        """Yields the run now, then after each change, until it ends (or `alive` is cleared)."""
        run = self.get(model_prefix)
        seen = -1
        while True:
            with run.changed:
                run.changed.wait_for(lambda last=seen: run.version != last, timeout=1.0)
                version, done = run.version, run.done
            if version != seen:
                seen = version
                yield run
            if done or (alive is not None and not alive.is_set()):
                return

    def stop(self, model_prefix: str, wait: float = 0.0) -> Run:
        run = self.get(model_prefix)
        if not run.done:
            run.stop.set()
            if run.progress.state == "running":
                run.publish(replace(run.progress, state="stopping"))
        if wait and run.thread is not None:
            run.thread.join(wait)
        return run

    def stop_all(self, wait: float = 60.0) -> None:
        """Every running training saves a checkpoint and stops (server shutdown)."""
        with self._lock:
            runs = [r for r in self._runs.values() if not r.done]
        for run in runs:
            run.stop.set()
        for run in runs:
            if run.thread is not None:
                run.thread.join(wait)
