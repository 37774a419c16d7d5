"""The job store contract, run against SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest

from faceswap.errors import AlreadyExists, InvalidArgument, NotFound
from services.orchestrator.store import (
    CANCELLED,
    CANCELLING,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    LeaseLost,
    open_job_store,
)


def _create(store, request_id: str = "", spec: bytes = b"spec", rhash: str = "h1"):
    return store.create_job(request_id=request_id, request_hash=rhash, spec=spec, owner="me")


def test_migrations_are_versioned_and_idempotent(job_store) -> None:
    assert job_store.schema_version() >= 1
    assert job_store.migrate() == job_store.schema_version()


def test_create_get_and_idempotent_request_id(job_store) -> None:
    job, created = _create(job_store, "req-1")
    assert created and job.state == QUEUED and job.owner == "me" and job.spec == b"spec"
    again, created2 = _create(job_store, "req-1")
    assert not created2 and again.id == job.id
    with pytest.raises(AlreadyExists):
        _create(job_store, "req-1", rhash="other")
    other, created3 = _create(job_store, "")
    assert created3 and other.id != job.id
    assert job_store.get_job(job.id).id == job.id
    with pytest.raises(NotFound):
        job_store.get_job("0" * 32)


def test_concurrent_submits_with_one_request_id_make_one_job(job_store) -> None:
    ids: list[str] = []

    def submit() -> None:
        ids.append(_create(job_store, "same")[0].id)

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 1 and len(ids) == 6


def test_list_pages_and_state_filter(job_store) -> None:
    made = [_create(job_store)[0].id for _ in range(5)]
    seen, token = [], ""
    while True:
        page, token = job_store.list_jobs(page_size=2, page_token=token)
        seen += [j.id for j in page]
        if not token:
            break
    assert seen == list(reversed(made))
    job_store.request_cancel(made[0])
    cancelled, _ = job_store.list_jobs(state=CANCELLED)
    assert [j.id for j in cancelled] == [made[0]]
    with pytest.raises(InvalidArgument, match="page_token"):
        job_store.list_jobs(page_token="garbage!")


def test_claim_lease_progress_finish_and_events(job_store) -> None:
    job, _ = _create(job_store)
    claimed = job_store.claim_job("w1", lease_seconds=30, max_running=1)
    assert claimed is not None and claimed.id == job.id and claimed.state == RUNNING
    assert job_store.claim_job("w2", lease_seconds=30, max_running=5) is None  # nothing else queued
    job_store.update_job(job.id, "w1", stage="train", done=3, total=10, outputs={"media_extract": {"n": 1}})
    with pytest.raises(LeaseLost):
        job_store.update_job(job.id, "w2", stage="train", done=4)
    job_store.renew_lease(job.id, "w1", 30)
    final = job_store.finish_job(job.id, "w1", SUCCEEDED, output_key="jobs/x/output.mp4")
    assert final.state == SUCCEEDED and final.output_key == "jobs/x/output.mp4"
    assert final.outputs == {"media_extract": {"n": 1}} and final.stage == "train"
    events = job_store.list_events(job.id)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert [e.payload["state"] for e in events] == [QUEUED, RUNNING, RUNNING, SUCCEEDED]
    assert [e.sequence for e in job_store.list_events(job.id, after_sequence=2)] == [3, 4]
    with pytest.raises(LeaseLost):
        job_store.renew_lease(job.id, "w1", 30)


def test_concurrency_limit_keeps_jobs_queued(job_store) -> None:
    a, _ = _create(job_store)
    b, _ = _create(job_store)
    assert job_store.claim_job("w1", 30, max_running=1).id == a.id
    assert job_store.claim_job("w2", 30, max_running=1) is None
    assert job_store.get_job(b.id).state == QUEUED
    job_store.finish_job(a.id, "w1", FAILED, error_code=3, error_message="bad", error_where="media_extract")
    assert job_store.get_job(a.id).error_where == "media_extract"
    assert job_store.claim_job("w2", 30, max_running=1).id == b.id


def test_expired_lease_is_resumed_by_another_worker(job_store) -> None:
    job, _ = _create(job_store)
    job_store.claim_job("dead", lease_seconds=0.2, max_running=1)
    assert job_store.claim_job("w2", 30, max_running=1) is None  # lease still live
    time.sleep(0.3)
    resumed = job_store.claim_job("w2", 30, max_running=1)
    assert resumed is not None and resumed.id == job.id and resumed.attempts == 2
    with pytest.raises(LeaseLost):  # the old worker is fenced off
        job_store.update_job(job.id, "dead", done=1)


def test_release_worker_reclaims_own_jobs_at_once(job_store) -> None:
    job, _ = _create(job_store)
    job_store.claim_job("stable-id", lease_seconds=300, max_running=1)
    assert job_store.release_worker("stable-id") == 1
    assert job_store.claim_job("stable-id", 30, max_running=1).id == job.id


def test_cancel_transitions(job_store) -> None:
    queued, _ = _create(job_store)
    assert job_store.request_cancel(queued.id).state == CANCELLED
    running, _ = _create(job_store)
    job_store.claim_job("w1", 30, max_running=1)
    assert job_store.request_cancel(running.id).state == CANCELLING
    assert job_store.renew_lease(running.id, "w1", 30).state == CANCELLING
    assert job_store.finish_job(running.id, "w1", CANCELLED).state == CANCELLED
    assert job_store.request_cancel(running.id).state == CANCELLED  # already over: unchanged
    with pytest.raises(NotFound):
        job_store.request_cancel("f" * 32)


def test_watchers_wake_on_events(job_store) -> None:
    job, _ = _create(job_store)
    canceller = threading.Timer(0.2, lambda: job_store.request_cancel(job.id))
    canceller.start()
    start = time.monotonic()
    # The watch loop of WatchJob: take a token, read, wait for a change, read again.
    while time.monotonic() - start < 10:
        token = job_store.change_token()
        if job_store.list_events(job.id)[-1].payload["state"] == CANCELLED:
            break
        job_store.wait_for_change(token, timeout=10)
    elapsed = time.monotonic() - start
    # The canceller may still be reading its result: let it finish before the fixture closes the
    # store, or it uses a connection that is being closed (a crash in the driver, not a failure).
    canceller.join(10)
    assert job_store.list_events(job.id)[-1].payload["state"] == CANCELLED
    assert elapsed < 5


def test_two_stores_on_one_database_never_run_a_job_twice(db_url: str) -> None:
    """Two orchestrators (separate stores, separate connections) claim from one database."""
    stores = [open_job_store(db_url), open_job_store(db_url)]
    try:
        ids = {_create(stores[0])[0].id for _ in range(12)}
        claims: list[tuple[int, str]] = []
        lock = threading.Lock()

        def worker(n: int) -> None:
            store = stores[n % 2]
            while True:
                job = store.claim_job(f"w{n}", lease_seconds=30, max_running=100)
                if job is None:
                    return
                with lock:
                    claims.append((n, job.id))
                store.finish_job(job.id, f"w{n}", SUCCEEDED)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        claimed = [job_id for _, job_id in claims]
        assert sorted(claimed) == sorted(ids)  # every job exactly once
        assert all(stores[1].get_job(i).state == SUCCEEDED for i in ids)
    finally:
        for s in stores:
            s.close()


def test_cross_process_watch_wakes_on_postgres(pg_url: str) -> None:
    """LISTEN/NOTIFY: a watcher on one store wakes on another store's write."""
    a, b = open_job_store(pg_url), open_job_store(pg_url)
    canceller = None
    try:
        job, _ = _create(a)
        b.wait_for_change(b.change_token(), timeout=0.5)  # starts b's listener
        time.sleep(0.5)
        token = b.change_token()
        canceller = threading.Timer(0.2, lambda: a.request_cancel(job.id))
        canceller.start()
        start = time.monotonic()
        b.wait_for_change(token, timeout=10)
        assert time.monotonic() - start < 1.5  # woken by NOTIFY, not by the 2 s poll
        canceller.join(10)
        assert b.get_job(job.id).state == CANCELLED
    finally:
        if canceller is not None:
            canceller.join(10)  # never close a store another thread is still using
        a.close()
        b.close()
