"""Starts the platform's services on localhost as subprocesses (``faceswap serve``, the demo, tests).

Each service runs as ``python -m services.<svc>.server --port N`` with the addresses of the others
in its environment, so the orchestrator finds them. ``ServiceGroup`` waits for their gRPC health
checks and stops them (SIGTERM, then SIGKILL) when closed. One service can be killed and restarted
on the same port (fault-injection tests).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from faceswap.errors import Unavailable
from services.common.auth import channel_credentials

SERVICES = ("media", "detector", "trainer", "converter", "orchestrator")
ADDR_ENV = {
    "media": "FACESWAP_MEDIA_ADDR",
    "detector": "FACESWAP_DETECTOR_ADDR",
    "trainer": "FACESWAP_TRAINER_ADDR",
    "converter": "FACESWAP_CONVERTER_ADDR",
    "orchestrator": "FACESWAP_JOBS_ADDR",
}
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def health_ok(address: str, timeout: float = 1.0) -> bool:
    """True when a gRPC server answers SERVING at address."""
    credentials = channel_credentials()  # TLS when FACESWAP_TLS_CA is set, like every other client
    channel = grpc.secure_channel(address, credentials) if credentials else grpc.insecure_channel(address)
    try:
        resp = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=timeout
        )
        return resp.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False
    finally:
        channel.close()


@dataclass
class ServiceGroup:
    """Local subprocesses of the services; use as a context manager."""

    env: dict[str, str] = field(default_factory=dict)
    services: tuple[str, ...] = SERVICES
    ports: dict[str, int] = field(default_factory=dict)
    log_dir: Path | None = None
    # Module to run per service (default services.<name>.server), e.g. a build of your own.
    modules: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._fixed = set(self.ports)  # ports the caller chose are kept; ours move if taken meanwhile
        for name in SERVICES:
            self.ports.setdefault(name, free_port())
        self.env = {**os.environ, **self.env}
        self._set_addresses()
        self.env.setdefault("PYTHONUNBUFFERED", "1")

    def _set_addresses(self) -> None:
        for name, var in ADDR_ENV.items():
            self.env[var] = f"127.0.0.1:{self.ports[name]}"

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    @property
    def jobs_address(self) -> str:
        return self.address("orchestrator")

    def start(self, timeout: float = 120.0) -> ServiceGroup:
        # The services first, then the orchestrator with their final addresses.
        workers = [n for n in self.services if n != "orchestrator"]
        self._start_many(workers, timeout)
        if "orchestrator" in self.services:
            self._start_many(["orchestrator"], timeout)
        return self

    def _start_many(self, names: list[str], timeout: float, attempts: int = 3) -> None:
        for attempt in range(attempts):
            self._set_addresses()
            for name in names:
                self.start_one(name, wait=False)
            try:
                self.wait_healthy(names, timeout)
                return
            except Unavailable:
                # A free port picked earlier can be taken by another program before the child binds it.
                failed = [n for n in names if self.procs[n].poll() is not None and n not in self._fixed]
                if not failed or attempt == attempts - 1:
                    raise
                for name in names:
                    self.kill(name)
                for name in failed:
                    self.ports[name] = free_port()

    def start_one(self, name: str, wait: bool = True, timeout: float = 120.0) -> None:
        log = subprocess.DEVNULL
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        # An explicit free metrics port: the default (gRPC port + 1000) can collide with a sibling.
        env = {**self.env, "FACESWAP_METRICS_PORT": str(free_port())}
        self.procs[name] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                self.modules.get(name, f"services.{name}.server"),
                "--port",
                str(self.ports[name]),
            ],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, we stop the children in order
        )
        if log is not subprocess.DEVNULL:
            log.close()
        if wait:
            self.wait_healthy((name,), timeout)

    def wait_healthy(self, names: tuple[str, ...] | list[str], timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        pending = list(names)
        while pending:
            for name in list(pending):
                proc = self.procs.get(name)
                if proc is not None and proc.poll() is not None:
                    raise Unavailable(
                        f"service {name} exited with code {proc.returncode} at start{self._log_tail(name)}"
                    )
                if health_ok(self.address(name)):
                    pending.remove(name)
            if pending and time.monotonic() > deadline:
                raise Unavailable(f"services not healthy after {timeout:.0f} s: {', '.join(pending)}")
            if pending:
                time.sleep(0.3)

    def _log_tail(self, name: str, lines: int = 3) -> str:
        if self.log_dir is None:
            return ""
        path = self.log_dir / f"{name}.log"
        try:
            tail = path.read_text(errors="replace").strip().splitlines()[-lines:]
        except OSError:
            tail = []
        return f" (see {path}: {' / '.join(tail)})" if tail else f" (see {path})"

    def restart(self, name: str, attempts: int = 3, timeout: float = 120.0) -> None:
        """Starts a service again on its port (after kill); retries a start that exits at once."""
        for attempt in range(attempts):
            self.start_one(name, wait=False)
            try:
                self.wait_healthy((name,), timeout)
                return
            except Unavailable:
                if attempt == attempts - 1 or self.procs[name].poll() is None:
                    raise
                time.sleep(1.0)

    def supervise(
        self,
        stop: threading.Event,
        say: Callable[[str], None] = print,
        base_delay: float = 1.0,
        max_delay: float = 30.0,
        healthy_after: float = 60.0,
        poll: float = 0.5,
    ) -> None:
        """Until stop is set: a service that exits is started again on its port after a backoff
        (base_delay, doubling to max_delay; reset once it has run healthy_after seconds), so one
        crash does not stop the others; jobs in flight retry UNAVAILABLE meanwhile (the orchestrator
        itself resumes its jobs when restarted)."""
        failures = dict.fromkeys(self.procs, 0)
        started = dict.fromkeys(self.procs, time.monotonic())
        due: dict[str, float] = {}
        while not stop.wait(poll):
            now = time.monotonic()
            for name, proc in list(self.procs.items()):
                if proc.poll() is None:
                    if failures.get(name) and now - started[name] > healthy_after:
                        failures[name] = 0
                    continue
                if name not in due:
                    failures[name] = failures.get(name, 0) + 1
                    delay = min(max_delay, base_delay * 2 ** (failures[name] - 1))
                    due[name] = now + delay
                    logs = f" (logs: {self.log_dir / (name + '.log')})" if self.log_dir else ""
                    say(
                        f"faceswap: service {name} exited with code {proc.returncode}; "
                        f"restarting it in {delay:.0f} s{logs}"
                    )
                elif now >= due[name]:
                    del due[name]
                    self.start_one(name, wait=False)
                    started[name] = time.monotonic()
                    say(f"faceswap: service {name} restarted on {self.address(name)}")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(60)

    def stop(self, timeout: float = 30.0) -> None:
        # The orchestrator first, so it releases its jobs before the services it calls go away.
        order = ["orchestrator", *[n for n in self.procs if n != "orchestrator"]]
        for name in order:
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                if name == "orchestrator":
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def __enter__(self) -> ServiceGroup:
        try:
            return self.start()
        except BaseException:
            self.stop(5)
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def storage_env(env: Mapping[str, str]) -> dict[str, str]:
    """The storage/database variables a child must share with the parent."""
    keys = ("FACESWAP_STORAGE", "FACESWAP_DATA_DIR", "FACESWAP_BUCKET", "S3_ENDPOINT", "S3_ACCESS_KEY")
    keys += ("S3_SECRET_KEY", "S3_REGION", "S3_SECURE", "FACESWAP_DB_URL")
    return {k: env[k] for k in keys if k in env}
