"""The chart's pods, run as local processes: the migration hook succeeds, then each Deployment's
command and env start a service that answers the gRPC health probe on its port and serves /metrics
on port + 1000, and drains on SIGTERM within the grace period.

Only what a laptop cannot give is swapped: Secret references become values (S3 keys of a local S3
server, SQLite for the job database) and headless-Service names become 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from chart_render import by_kind, manifests
from grpc_health.v1 import health_pb2, health_pb2_grpc
from netutil import free_port

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["orchestrator", "media", "detector", "trainer", "converter", "live"]  # live: enabled here


def _env(container: dict, secrets: dict[str, str], base: dict[str, str]) -> dict[str, str]:
    env = dict(base)
    for item in container["env"]:
        if "value" in item:
            value = item["value"]
        elif "secretKeyRef" in item.get("valueFrom", {}):
            value = secrets[item["name"]]
        else:  # fieldRef (pod name / namespace)
            value = "local-pod"
        # $(VAR) expansion as the kubelet does it
        env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), value)
    for name, value in list(env.items()):
        if name.endswith("_ADDR") and value.startswith("dns:///"):
            env[name] = "127.0.0.1:" + value.rsplit(":", 1)[1]
    return env


def _healthy(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.RpcError:
                pass
        time.sleep(0.5)
    return False


@pytest.mark.timeout(300)
def test_rendered_deployments_start_and_pass_their_probes(
    s3_endpoint: dict[str, str], tmp_path: Path
) -> None:
    ports = {svc: free_port() for svc in SERVICES}
    values = {"services": {svc: {"port": port} for svc, port in ports.items()}}
    values["services"]["live"]["enabled"] = True
    objects = manifests(values)
    deployments = by_kind(objects, "Deployment")
    secrets = {
        "S3_ACCESS_KEY": s3_endpoint["S3_ACCESS_KEY"],
        "S3_SECRET_KEY": s3_endpoint["S3_SECRET_KEY"],
        "FACESWAP_DB_URL": "",  # SQLite in FACESWAP_DATA_DIR instead of the bundled PostgreSQL
    }
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FACESWAP_", "S3_"))}
    base["PYTHONPATH"] = str(ROOT)
    # The migration hook Job first, as Helm runs it.
    migrate = next(o for o in objects if o["kind"] == "Job" and "migrate" in o["metadata"]["name"])
    (container,) = migrate["spec"]["template"]["spec"]["containers"]
    env = {**_env(container, secrets, base), "FACESWAP_DATA_DIR": str(tmp_path / "orchestrator")}
    command = [str(Path(sys.executable).with_name(c)) if c == "faceswap" else c for c in container["command"]]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    procs: dict[str, subprocess.Popen] = {}
    try:
        for svc in SERVICES:
            (container,) = deployments[f"demo-faceswap-{svc}"]["spec"]["template"]["spec"]["containers"]
            env = _env(container, secrets, base)
            env["S3_ENDPOINT"] = s3_endpoint["S3_ENDPOINT"]  # the bundled MinIO's stand-in
            env["FACESWAP_DATA_DIR"] = str(tmp_path / svc)  # the pod's /data emptyDir
            env["FACESWAP_THREADS"] = "1"
            env["FACESWAP_LOG_FORMAT"] = "text"
            command = [sys.executable if c == "python" else c for c in container["command"]]
            log = (tmp_path / f"{svc}.log").open("w")
            procs[svc] = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180  # the chart's startup probe allows 5 s x 60
        for svc in SERVICES:
            assert _healthy(ports[svc], deadline), (tmp_path / f"{svc}.log").read_text()[-3000:]
            with urllib.request.urlopen(f"http://127.0.0.1:{ports[svc] + 1000}/metrics", timeout=10) as resp:
                assert b"faceswap_rpc_requests_total" in resp.read()
    finally:
        for proc in procs.values():
            proc.terminate()  # SIGTERM, as the kubelet sends it
        for svc, proc in procs.items():
            try:
                # The chart's terminationGracePeriodSeconds is 45: a service must stop well within.
                assert proc.wait(45) is not None, svc
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
