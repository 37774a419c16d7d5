"""kmock's stateful Kubernetes API emulator on 127.0.0.1, for synchronous tests of the Kubernetes runner.

kmock (PyPI) serves create / list / watch / get / patch / delete of any resource over real HTTP from
memory, with 409 on a duplicate create and 404 on a missing object. What it does not do, and the tests
play instead: it runs no controllers (the test patches a Job's status as the Job controller, Kueue or
the kubelet would), keeps no resourceVersion or uid (the runner copes with both absent), ignores label
and field selectors (the runner filters what it gets), validates no schema (the chart tests do that
with kubernetes-validate) and enforces no RBAC (the tests compare the requests made with the chart's
Role instead). One shim: kmock only treats ``watch=true`` as a watch, while the Python client sends
``watch=True`` (the API server parses both), so the query value is lower-cased before kmock looks.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import kmock
from kmock._internal import parsing

from services.orchestrator import k8s_jobs

_guess = parsing.guess_k8s


def _guess_case_insensitive(k8s: Any, method: Any, query: dict[str, str]) -> Any:
    if "watch" in query:
        query = {**query, "watch": str(query["watch"]).lower()}
    return _guess(k8s, method, query)


parsing.guess_k8s = _guess_case_insensitive

CONTROLLER_AGENT = "faceswap-tests/controllers"
RESOURCES = {
    "batch/v1/jobs": "Job",
    "v1/pods": "Pod",
    "v1/events": "Event",
    "v1/configmaps": "ConfigMap",
}


class KubeEmulator:
    """`with KubeEmulator() as api:` an API server at api.url; api.client is a runner-side KubeClient."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="kmock", daemon=True)

    def __enter__(self) -> KubeEmulator:
        self._thread.start()
        self.kmock, self.server = self._run(self._start())
        self.url = f"http://{self.server.host}:{self.server.port}"
        fast = k8s_jobs.RetryPolicy(attempts=4, base_seconds=0.01, max_seconds=0.05)
        self.client = k8s_jobs.KubeClient.for_host(self.url, retry=fast)
        self.controller = k8s_jobs.KubeClient.for_host(self.url)  # plays the controllers' part
        self.controller.api_client.user_agent = CONTROLLER_AGENT
        return self

    def __exit__(self, *exc: object) -> None:
        self._run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    async def _start(self) -> tuple[Any, Any]:
        emulator = kmock.KubernetesEmulator()
        await emulator.__aenter__()
        for resource, kind in RESOURCES.items():
            emulator.resources[resource].kind = kind
            emulator.resources[resource].namespaced = True
        server = kmock.Server(emulator)
        await server.__aenter__()
        return emulator, server

    async def _stop(self) -> None:
        await self.server.__aexit__(None, None, None)
        await self.kmock.__aexit__(None, None, None)

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    # ---- what the tests look at ----
    def requests(self) -> list[Any]:
        return list(self.kmock)

    def runner_requests(self) -> list[Any]:
        """Requests the runner made (not the test playing the controllers)."""
        return [r for r in self.kmock if r.headers.get("User-Agent") != CONTROLLER_AGENT]

    def jobs(self, namespace: str) -> dict[str, dict[str, Any]]:
        items = self.controller.batch.list_namespaced_job(namespace).items
        return {j.metadata.name: self.controller.api_client.sanitize_for_serialization(j) for j in items}

    def patch_status(self, name: str, namespace: str, status: dict[str, Any]) -> None:
        """As the Job controller: a status change (streamed to watchers as MODIFIED)."""
        self.controller.batch.patch_namespaced_job_status(name, namespace, {"status": status})

    def ttl_delete_after_success(self, name: str, namespace: str, status: dict[str, Any]) -> None:
        """The Job completes and is deleted (TTL) in one step: a watcher sees only DELETED."""

        async def complete_and_delete() -> None:
            key = next(k for k in self.kmock.objects if k[1] == namespace and k[2] == name)
            obj = self.kmock.objects[key]
            obj.patch({"status": status})
            raw = obj.raw
            obj.delete()
            await self.kmock._buses[key[0]].put({"type": "DELETED", "object": raw})

        self._run(complete_and_delete())

    def patch_spec(self, name: str, namespace: str, spec: dict[str, Any]) -> None:
        self.controller.batch.patch_namespaced_job(name, namespace, {"spec": spec})
