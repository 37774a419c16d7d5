"""Job records and their event log behind one small interface: SQLite (embedded) or PostgreSQL.

Both backends share the SQL below; they differ only in how they open connections, lock for a claim
and wake watchers:
- SQLite: one file in FACESWAP_DATA_DIR in WAL mode; a write transaction is ``BEGIN IMMEDIATE`` (the
  database's single writer lock), a claim is an atomic ``UPDATE ... WHERE lease expired``; watchers poll.
- PostgreSQL (psycopg 3): claims use ``SELECT ... FOR UPDATE SKIP LOCKED`` plus a transaction-scoped
  advisory lock so the global running-jobs limit holds across replicas; every event is announced with
  ``pg_notify`` and watchers ``LISTEN``.

A running job is leased: its orchestrator renews the lease while it works, and every write a worker
makes is fenced on ``lease_owner``, so a replica that lost its lease (paused, partitioned) cannot
overwrite the job after another replica took it over. A job whose lease expired is claimable again:
that is how a killed orchestrator's jobs resume.

Schema migrations are numbered SQL files under ``migrations/<dialect>/`` recorded in
``schema_migrations``; ``migrate()`` applies the missing ones under a lock (safe with replicas).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import queue
import sqlite3
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceswap.config import load_settings
from faceswap.errors import AlreadyExists, InvalidArgument, NotFound, ServiceError

log = logging.getLogger("faceswap.orchestrator.store")

MIGRATIONS = Path(__file__).with_name("migrations")

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLING, CANCELLED = (
    "QUEUED",
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "CANCELLING",
    "CANCELLED",
)
TERMINAL_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED})
ACTIVE_STATES = (RUNNING, CANCELLING)
_CLAIM_LOCK_KEY = 0x6661636573776170  # "faceswap": serialises claims for the global running limit
_NOTIFY_CHANNEL = "faceswap_job_events"


class LeaseLost(ServiceError):
    """This worker no longer holds the job's lease (another orchestrator took it over)."""


@dataclass
class JobRecord:
    id: str
    request_id: str
    request_hash: str
    state: str
    spec: bytes
    owner: str = ""
    stage: str = ""
    progress_done: int = 0
    progress_total: int = 0
    eta_seconds: float = 0.0
    error_code: int = 0
    error_message: str = ""
    error_where: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    output_key: str = ""
    report_key: str = ""
    preview_key: str = ""
    attempts: int = 0
    last_sequence: int = 0
    lease_owner: str = ""
    lease_expires: float = 0.0
    created_at: float = 0.0
    updated_at: float = 0.0
    cleanup_after: float = 0.0  # when its temporary objects are due for removal; 0 = none pending

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES


@dataclass
class JobEventRecord:
    job_id: str
    sequence: int
    time: float
    payload: dict[str, Any]


def _record(row: Any) -> JobRecord:
    d = dict(row)
    d["outputs"] = json.loads(d.get("outputs") or "{}")
    d["spec"] = bytes(d["spec"])
    d["request_id"] = d.get("request_id") or ""
    return JobRecord(**d)


def encode_page_token(created_at: float, job_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at, job_id]).encode()).decode()


def decode_page_token(token: str) -> tuple[float, str]:
    try:
        created_at, job_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        return float(created_at), str(job_id)
    except Exception:
        raise InvalidArgument("not a page token this server issued", field="page_token") from None


class JobStore(ABC):
    """The job database. All methods are thread-safe."""

    dialect: str

    def __init__(self) -> None:
        # Bumped after every event this process writes (and on PostgreSQL NOTIFY): watchers wake at once.
        self._generation = 0
        self._cond = threading.Condition()

    # ---- backend hooks -------------------------------------------------------------------------
    @abstractmethod
    def _tx(self) -> contextlib.AbstractContextManager[Any]:
        """A write transaction; yields an object with ``execute(sql, params)`` returning a cursor."""

    @abstractmethod
    def _read(self) -> contextlib.AbstractContextManager[Any]:
        """A connection for reads."""

    def _sql(self, sql: str) -> str:
        return sql

    def _lock_claims(self, cur: Any) -> None:
        """Serialises claimers (the running-jobs count must not race). SQLite: BEGIN IMMEDIATE does."""
        return None

    _for_update = ""  # row lock for read-modify-write (PostgreSQL)
    _skip_locked = ""  # claim: skip rows another replica is claiming (PostgreSQL)

    def _notify(self, cur: Any, job_id: str) -> None:
        """Announces an event to other processes (SQLite watchers poll instead)."""
        return None

    def _is_unique_violation(self, exc: Exception) -> bool:
        return False

    def close(self) -> None:
        """Releases connections."""
        return None

    # ---- migrations -------------------------------------------------------------------------------
    def migrate(self) -> int:
        """Applies every migration not yet recorded; returns the schema version."""
        files = sorted((MIGRATIONS / self.dialect).glob("*.sql"))
        with self._tx() as cur:
            self._lock_claims(cur)  # replicas starting together migrate one after the other
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
            )
            applied = {int(r["version"]) for r in cur.execute("SELECT version FROM schema_migrations")}
            for path in files:
                version = int(path.name.split("_", 1)[0])
                if version in applied:
                    continue
                log.info("applying migration %s", path.name)
                # Comment lines dropped, our migrations hold no ';' inside statements: split is safe.
                text = "\n".join(
                    line for line in path.read_text().splitlines() if not line.strip().startswith("--")
                )
                for statement in text.split(";"):
                    if statement.strip():
                        cur.execute(statement.strip())
                cur.execute(
                    self._sql("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"),
                    (version, path.stem, time.time()),
                )
                applied.add(version)
        return max(applied, default=0)

    def schema_version(self) -> int:
        with self._read() as cur:
            row = cur.execute("SELECT max(version) AS v FROM schema_migrations").fetchone()
        return int(row["v"] or 0)

    # ---- events ---------------------------------------------------------------------------------
    def _append_event(self, cur: Any, job_id: str, payload: dict[str, Any], now: float) -> int:
        row = cur.execute(
            self._sql(
                "UPDATE jobs SET last_sequence = last_sequence + 1, updated_at = ? WHERE id = ? "
                "RETURNING last_sequence"
            ),
            (now, job_id),
        ).fetchone()
        sequence = int(row["last_sequence"])
        cur.execute(
            self._sql("INSERT INTO job_events (job_id, sequence, time, payload) VALUES (?, ?, ?, ?)"),
            (job_id, sequence, now, json.dumps(payload)),
        )
        self._notify(cur, job_id)
        return sequence

    def _wake(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def change_token(self) -> int:
        """Take before reading; pass to wait_for_change so no event is missed in between."""
        with self._cond:
            return self._generation

    def wait_for_change(self, token: int, timeout: float) -> None:
        """Returns when an event was written after ``token`` was taken, or after timeout."""
        with self._cond:
            self._cond.wait_for(lambda: self._generation != token, timeout)

    def list_events(self, job_id: str, after_sequence: int = 0, limit: int = 1000) -> list[JobEventRecord]:
        with self._read() as cur:
            rows = cur.execute(
                self._sql(
                    "SELECT job_id, sequence, time, payload FROM job_events "
                    "WHERE job_id = ? AND sequence > ? ORDER BY sequence LIMIT ?"
                ),
                (job_id, after_sequence, limit),
            ).fetchall()
        return [
            JobEventRecord(r["job_id"], int(r["sequence"]), float(r["time"]), json.loads(r["payload"]))
            for r in rows
        ]

    # ---- jobs ---------------------------------------------------------------------------------
    def create_job(
        self, *, request_id: str, request_hash: str, spec: bytes, owner: str = ""
    ) -> tuple[JobRecord, bool]:
        """Creates a QUEUED job; a known request_id returns its job (created=False) or ALREADY_EXISTS."""
        for _ in range(3):
            try:
                with self._tx() as cur:
                    if request_id:
                        row = cur.execute(
                            self._sql("SELECT * FROM jobs WHERE request_id = ?"), (request_id,)
                        ).fetchone()
                        if row is not None:
                            return self._existing(_record(row), request_hash), False
                    now = time.time()
                    job_id = uuid.uuid4().hex
                    cur.execute(
                        self._sql(
                            "INSERT INTO jobs (id, request_id, request_hash, state, spec, owner, "
                            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                        ),
                        (job_id, request_id or None, request_hash, QUEUED, spec, owner, now, now),
                    )
                    self._append_event(cur, job_id, {"state": QUEUED, "message": "job queued"}, now)
                self._wake()
                return self.get_job(job_id), True
            except Exception as exc:
                # A concurrent submit with the same request_id won the insert: read its job.
                if not self._is_unique_violation(exc):
                    raise
        raise AlreadyExists(f"request_id {request_id!r} is being submitted concurrently; retry")

    @staticmethod
    def _existing(job: JobRecord, request_hash: str) -> JobRecord:
        if job.request_hash != request_hash:
            raise AlreadyExists(
                f"request_id {job.request_id!r} was already used for a different request (job {job.id})"
            )
        return job

    def find_by_request_id(self, request_id: str) -> JobRecord | None:
        with self._read() as cur:
            row = cur.execute(self._sql("SELECT * FROM jobs WHERE request_id = ?"), (request_id,)).fetchone()
        return _record(row) if row is not None else None

    def get_job(self, job_id: str) -> JobRecord:
        with self._read() as cur:
            row = cur.execute(self._sql("SELECT * FROM jobs WHERE id = ?"), (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"job {job_id!r} not found")
        return _record(row)

    def list_jobs(
        self, state: str | None = None, page_size: int = 50, page_token: str = "", owner: str | None = None
    ) -> tuple[list[JobRecord], str]:
        """Newest first; returns (jobs, next_page_token) with '' on the last page."""
        where: list[str] = []
        params: list[Any] = []
        if state:
            where.append("state = ?")
            params.append(state)
        if owner is not None:
            where.append("owner = ?")
            params.append(owner)
        if page_token:
            created, job_id = decode_page_token(page_token)
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            params += [created, created, job_id]
        sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        with self._read() as cur:
            rows = cur.execute(self._sql(sql), (*params, page_size + 1)).fetchall()
        jobs = [_record(r) for r in rows[:page_size]]
        more = len(rows) > page_size
        return jobs, (encode_page_token(jobs[-1].created_at, jobs[-1].id) if more and jobs else "")

    def claim_job(self, worker: str, lease_seconds: float, max_running: int) -> JobRecord | None:
        """Leases the next job to run: an orphaned active job first, then the oldest QUEUED one.

        Returns None when nothing waits or ``max_running`` jobs already hold live leases.
        """
        with self._tx() as cur:
            self._lock_claims(cur)
            now = time.time()
            live = cur.execute(
                self._sql("SELECT count(*) AS n FROM jobs WHERE state IN (?, ?) AND lease_expires > ?"),
                (*ACTIVE_STATES, now),
            ).fetchone()
            if int(live["n"]) >= max_running:
                return None
            row = cur.execute(
                self._sql(
                    "SELECT id, state FROM jobs WHERE state = ? OR (state IN (?, ?) AND lease_expires <= ?) "
                    "ORDER BY CASE WHEN state = ? THEN 1 ELSE 0 END, created_at, id LIMIT 1"
                    + self._skip_locked
                ),
                (QUEUED, *ACTIVE_STATES, now, QUEUED),
            ).fetchone()
            if row is None:
                return None
            # The WHERE repeats the claim condition: the UPDATE is atomic even without row locks.
            claimed = cur.execute(
                self._sql(
                    "UPDATE jobs SET state = CASE WHEN state = ? THEN ? ELSE state END, lease_owner = ?, "
                    "lease_expires = ?, attempts = attempts + 1, updated_at = ? "
                    "WHERE id = ? AND (state = ? OR (state IN (?, ?) AND lease_expires <= ?)) RETURNING state"
                ),
                (QUEUED, RUNNING, worker, now + lease_seconds, now, row["id"], QUEUED, *ACTIVE_STATES, now),
            ).fetchone()
            if claimed is None:
                return None
            resumed = row["state"] != QUEUED
            self._append_event(
                cur,
                row["id"],
                {
                    "state": claimed["state"],
                    "message": f"{'resumed' if resumed else 'started'} by {worker}",
                },
                now,
            )
        self._wake()
        return self.get_job(row["id"])

    def renew_lease(self, job_id: str, worker: str, lease_seconds: float) -> JobRecord:
        """Extends the lease; raises LeaseLost when another worker holds it or the job ended."""
        with self._tx() as cur:
            now = time.time()
            row = cur.execute(
                self._sql(
                    "UPDATE jobs SET lease_expires = ? WHERE id = ? AND lease_owner = ? AND state IN (?, ?) "
                    "RETURNING *"
                ),
                (now + lease_seconds, job_id, worker, *ACTIVE_STATES),
            ).fetchone()
        if row is None:
            raise LeaseLost(f"job {job_id} is no longer leased by {worker}")
        return _record(row)

    def update_job(
        self,
        job_id: str,
        worker: str,
        *,
        stage: str | None = None,
        done: int | None = None,
        total: int | None = None,
        eta_seconds: float | None = None,
        outputs: dict[str, Any] | None = None,
        preview_key: str | None = None,
        message: str | None = None,
        event: bool = True,
    ) -> JobRecord:
        """Records progress (and merges ``outputs`` per stage), fenced on the lease; adds an event."""
        with self._tx() as cur:
            row = cur.execute(
                self._sql("SELECT * FROM jobs WHERE id = ? AND lease_owner = ?" + self._for_update),
                (job_id, worker),
            ).fetchone()
            if row is None or row["state"] not in ACTIVE_STATES:
                raise LeaseLost(f"job {job_id} is no longer leased by {worker}")
            job = _record(row)
            if outputs:
                for key, value in outputs.items():
                    job.outputs[key] = value
            job.stage = stage if stage is not None else job.stage
            job.progress_done = done if done is not None else job.progress_done
            job.progress_total = total if total is not None else job.progress_total
            job.eta_seconds = eta_seconds if eta_seconds is not None else job.eta_seconds
            job.preview_key = preview_key if preview_key is not None else job.preview_key
            now = time.time()
            cur.execute(
                self._sql(
                    "UPDATE jobs SET stage = ?, progress_done = ?, progress_total = ?, eta_seconds = ?, "
                    "outputs = ?, preview_key = ?, updated_at = ? WHERE id = ?"
                ),
                (
                    job.stage,
                    job.progress_done,
                    job.progress_total,
                    job.eta_seconds,
                    json.dumps(job.outputs),
                    job.preview_key,
                    now,
                    job_id,
                ),
            )
            if event:
                payload = {
                    "state": job.state,
                    "stage": job.stage,
                    "done": job.progress_done,
                    "total": job.progress_total,
                    "eta": job.eta_seconds,
                }
                if message:
                    payload["message"] = message
                if preview_key:
                    payload["preview"] = preview_key
                job.last_sequence = self._append_event(cur, job_id, payload, now)
        if event:
            self._wake()
        return job

    def finish_job(
        self,
        job_id: str,
        worker: str,
        state: str,
        *,
        message: str = "",
        error_code: int = 0,
        error_message: str = "",
        error_where: str = "",
        output_key: str = "",
        report_key: str = "",
        cleanup_after: float = 0.0,
    ) -> JobRecord:
        """Moves a leased job to a terminal state and releases the lease; ``cleanup_after``: when its
        temporary objects are due for removal (0 = now), recorded so a failed clean-up is retried."""
        if state not in TERMINAL_STATES:
            raise ValueError(f"{state} is not a terminal state")
        with self._tx() as cur:
            now = time.time()
            row = cur.execute(
                self._sql(
                    "UPDATE jobs SET state = ?, error_code = ?, error_message = ?, error_where = ?, "
                    "output_key = CASE WHEN ? = '' THEN output_key ELSE ? END, "
                    "report_key = CASE WHEN ? = '' THEN report_key ELSE ? END, eta_seconds = 0, "
                    "lease_owner = '', lease_expires = 0, updated_at = ?, cleanup_after = ? "
                    "WHERE id = ? AND lease_owner = ? AND state IN (?, ?) RETURNING *"
                ),
                (
                    state,
                    error_code,
                    error_message,
                    error_where,
                    output_key,
                    output_key,
                    report_key,
                    report_key,
                    now,
                    cleanup_after or now,
                    job_id,
                    worker,
                    *ACTIVE_STATES,
                ),
            ).fetchone()
            if row is None:
                raise LeaseLost(f"job {job_id} is no longer leased by {worker}")
            payload: dict[str, Any] = {
                "state": state,
                "stage": row["stage"],
                "done": row["progress_done"],
                "total": row["progress_total"],
                "message": message or state,
            }
            if error_message:
                payload["error"] = {"code": error_code, "message": error_message, "where": error_where}
            self._append_event(cur, job_id, payload, now)
        self._wake()
        return self.get_job(job_id)

    # ---- clean-up of ended jobs ---------------------------------------------------------------
    def set_cleanup(self, job_id: str, when: float) -> None:
        """When the job's temporary objects are due for removal; 0 = done (nothing pending)."""
        with self._tx() as cur:
            cur.execute(self._sql("UPDATE jobs SET cleanup_after = ? WHERE id = ?"), (when, job_id))

    def due_cleanups(self, now: float, limit: int = 100) -> list[JobRecord]:
        """Ended jobs whose clean-up is due (failed before, or postponed by a retention setting)."""
        with self._read() as cur:
            rows = cur.execute(
                self._sql(
                    "SELECT * FROM jobs WHERE cleanup_after > 0 AND cleanup_after <= ? "
                    "AND state IN (?, ?, ?) ORDER BY cleanup_after LIMIT ?"
                ),
                (now, *sorted(TERMINAL_STATES), limit),
            ).fetchall()
        return [_record(r) for r in rows]

    def request_cancel(self, job_id: str) -> JobRecord:
        """QUEUED -> CANCELLED at once; RUNNING -> CANCELLING (its worker stops it); else unchanged."""
        with self._tx() as cur:
            row = cur.execute(
                self._sql("SELECT state FROM jobs WHERE id = ?" + self._for_update), (job_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"job {job_id!r} not found")
            now = time.time()
            new_state = {QUEUED: CANCELLED, RUNNING: CANCELLING}.get(row["state"])
            if new_state is not None:
                cur.execute(
                    self._sql("UPDATE jobs SET state = ?, updated_at = ?, cleanup_after = ? WHERE id = ?"),
                    (new_state, now, now if new_state == CANCELLED else 0.0, job_id),
                )
                self._append_event(cur, job_id, {"state": new_state, "message": "cancel requested"}, now)
        if new_state is not None:
            self._wake()
        return self.get_job(job_id)

    def release_job(self, job_id: str, worker: str, message: str = "released") -> None:
        """Gives a leased job back at once (graceful shutdown) so another worker resumes it."""
        with self._tx() as cur:
            row = cur.execute(
                self._sql(
                    "UPDATE jobs SET lease_expires = 0 WHERE id = ? AND lease_owner = ? AND state IN (?, ?) "
                    "RETURNING state"
                ),
                (job_id, worker, *ACTIVE_STATES),
            ).fetchone()
            if row is not None:
                self._append_event(cur, job_id, {"state": row["state"], "message": message}, time.time())

    def release_worker(self, worker: str) -> int:
        """At start-up: expire the leases a previous run of this worker id held (resume at once)."""
        with self._tx() as cur:
            rows = cur.execute(
                self._sql(
                    "UPDATE jobs SET lease_expires = 0 WHERE lease_owner = ? AND state IN (?, ?) RETURNING id"
                ),
                (worker, *ACTIVE_STATES),
            ).fetchall()
        return len(rows)


# ---- SQLite ---------------------------------------------------------------------------------------
class SQLiteJobStore(JobStore):
    dialect = "sqlite"

    def __init__(self, path: str | Path, poll_seconds: float = 0.5) -> None:
        super().__init__()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.poll_seconds = poll_seconds
        self._local = threading.local()
        self._all: list[tuple[sqlite3.Connection, threading.RLock]] = []
        self._all_lock = threading.Lock()

    def _conn(self) -> tuple[sqlite3.Connection, threading.RLock]:
        """This thread's connection and its lock (one pair: close() may replace ``_local`` between
        two reads of it)."""
        pair = getattr(self._local, "pair", None)
        if pair is None:
            # One connection per thread; isolation_level=None so we issue BEGIN ourselves.
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            pair = (conn, threading.RLock())  # RLock: a read inside a transaction takes it again
            self._local.pair = pair
            with self._all_lock:
                self._all.append(pair)
        return pair

    # Each thread's connection is used under its own lock (never contended but by close): closing
    # a connection another thread was reading on crashed the process (sqlite3 in CPython 3.11),
    # a WatchJob stream still reading while a test's server shut down; now that read fails cleanly.
    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn, lock = self._conn()
        with lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        conn, lock = self._conn()
        with lock:
            yield conn

    def _is_unique_violation(self, exc: Exception) -> bool:
        return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)

    def wait_for_change(self, token: int, timeout: float) -> None:
        # Other processes' writes are only seen by polling.
        super().wait_for_change(token, min(timeout, self.poll_seconds))

    def close(self) -> None:
        with self._all_lock:
            for conn, lock in self._all:
                with lock, contextlib.suppress(Exception):
                    conn.close()
            self._all.clear()
        self._local = threading.local()


# ---- PostgreSQL -----------------------------------------------------------------------------------
class PostgresJobStore(JobStore):
    dialect = "postgresql"
    _for_update = " FOR UPDATE"
    _skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str, pool_size: int = 8, poll_seconds: float = 5.0) -> None:
        super().__init__()
        import psycopg  # imported here so SQLite users need no driver

        self._psycopg = psycopg
        self.url = url
        self.poll_seconds = poll_seconds
        self._pool: queue.LifoQueue[Any] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(pool_size)
        self._listener: threading.Thread | None = None
        self._stop = threading.Event()
        self._listener_lock = threading.Lock()
        self._connect().close()  # fail fast with a clear error

    def _connect(self) -> Any:
        from psycopg.rows import dict_row

        try:
            return self._psycopg.connect(self.url, autocommit=True, row_factory=dict_row, connect_timeout=10)
        except self._psycopg.OperationalError as exc:
            from faceswap.errors import Unavailable

            raise Unavailable(f"cannot connect to the job database: {exc}".strip()) from exc

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        self._slots.acquire()
        conn = None
        try:
            try:
                conn = self._pool.get_nowait()
                if conn.closed or conn.broken:
                    conn = None
            except queue.Empty:
                conn = None
            conn = conn or self._connect()
            yield conn
            self._pool.put(conn)
            conn = None
        finally:
            if conn is not None:  # failed mid-use: drop it rather than return a bad connection
                with contextlib.suppress(Exception):
                    conn.close()
            self._slots.release()

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Any]:
        with self._connection() as conn, conn.transaction():
            yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[Any]:
        with self._connection() as conn:
            yield conn

    def _lock_claims(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_CLAIM_LOCK_KEY,))

    def _notify(self, cur: Any, job_id: str) -> None:
        cur.execute("SELECT pg_notify(%s, %s)", (_NOTIFY_CHANNEL, job_id))

    def _is_unique_violation(self, exc: Exception) -> bool:
        return isinstance(exc, self._psycopg.errors.UniqueViolation)

    def _listen_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn = self._connect()
                with conn:
                    conn.execute(f"LISTEN {_NOTIFY_CHANNEL}")
                    self._wake()  # anything sent while we were not listening is re-read by waiters
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=64):
                            self._wake()
            except Exception as exc:  # database restarted: reconnect, waiters fall back to polling
                log.warning("job event listener reconnecting: %s", exc)
                self._stop.wait(1.0)

    def wait_for_change(self, token: int, timeout: float) -> None:
        with self._listener_lock:
            if self._listener is None:
                self._listener = threading.Thread(target=self._listen_loop, name="pg-listen", daemon=True)
                self._listener.start()
        super().wait_for_change(token, min(timeout, self.poll_seconds))

    def close(self) -> None:
        self._stop.set()
        while True:
            try:
                conn = self._pool.get_nowait()
            except queue.Empty:
                break
            with contextlib.suppress(Exception):
                conn.close()


def open_job_store(url: str | None = None, migrate: bool = True) -> JobStore:
    """The store FACESWAP_DB_URL names: empty = SQLite file in FACESWAP_DATA_DIR, or postgresql://..."""
    settings = load_settings()
    url = settings.db_url if url is None else url
    from services.orchestrator.settings import load_orchestrator_settings

    poll = load_orchestrator_settings().poll_seconds
    if url.startswith(("postgresql://", "postgres://")):
        store: JobStore = PostgresJobStore(url, poll_seconds=max(poll, 2.0))
    elif url.startswith("sqlite:///"):
        store = SQLiteJobStore(url[len("sqlite:///") :], poll_seconds=poll)
    elif not url:
        store = SQLiteJobStore(settings.data_dir / "jobs.sqlite3", poll_seconds=poll)
    else:
        raise InvalidArgument(
            f"unsupported job database URL {url.split('://')[0]!r}://...: use postgresql:// or sqlite:///",
            field="FACESWAP_DB_URL",
        )
    if migrate:
        store.migrate()
    return store
