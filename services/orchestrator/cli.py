"""``faceswap serve``, ``faceswap swap`` and ``faceswap jobs list|get|watch|cancel|download|migrate``."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
from google.protobuf import json_format

from faceswap.config import load_settings
from faceswap.errors import FailedPrecondition, InvalidArgument, NotFound
from faceswap.media.kinds import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from faceswap.options.convert import METHODS
from faceswap.options.detect import DETECTORS
from faceswap.options.train import DEFAULT_STEPS, PRESET_NAMES
from services.common.errors import from_rpc_error
from services.common.pb.faceswap.v1 import jobs_pb2
from services.orchestrator.client import JobClient, state_name
from services.orchestrator.launcher import SERVICES, ServiceGroup, health_ok


def _rpc_errors(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A failed call prints its status message (faceswap: error: ...), never a traceback."""

    @functools.wraps(func)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    return wrapper


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run every service on localhost (embedded storage and job database)")
    p.add_argument("--services", default=",".join(SERVICES), help="comma-separated subset to start")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("swap", help="swap person B's face into VIDEO_A as a job, with live progress")
    p.add_argument("video", type=Path, help="video whose face is replaced (person A)")
    p.add_argument("--faces-b", type=Path, required=True, help="folder of photos of B, or a video of B")
    p.add_argument("--ref", type=Path, action="append", default=[], help="photo of the person to replace")
    p.add_argument("-o", "--output", type=Path, required=True, help="output video (.mp4)")
    p.add_argument(
        "--report", type=Path, help="where to save the quality report (default OUTPUT.report.html)"
    )
    p.add_argument(
        "--preset", default="", choices=["", *PRESET_NAMES], help="training preset (default: lite)"
    )
    p.add_argument("--steps", type=int, default=0, help=f"training steps (0 = the default, {DEFAULT_STEPS})")
    p.add_argument("--batch-size", type=int, default=0)
    p.add_argument("--max-seconds", type=float, default=0.0, help="training time budget (0 = none)")
    p.add_argument("--warm-start", type=Path, help="checkpoint file to fine-tune from")
    p.add_argument("--model-prefix", default="", help="reuse this trained model (skip training)")
    p.add_argument("--detector", default="", choices=["", *DETECTORS], help="face detector (default hog)")
    p.add_argument("--size", type=int, default=0, help="aligned face size (64 default)")
    p.add_argument(
        "--method", default="", choices=["", *METHODS],
        help="how B's face is rendered (default retrieval: B's real faces, no training; hybrid and "
        "autoencoder train a model first)",
    )  # fmt: skip
    p.add_argument("--color", default="")
    p.add_argument("--blend", default="")
    p.add_argument("--smooth", default="")
    p.add_argument("--codec", default="", help="output encoder (libx264 default)")
    p.add_argument("--crf", type=int, default=0)
    p.add_argument("--no-report", action="store_true", help="skip the quality report")
    p.add_argument("--request-id", default="", help="idempotency key (resubmitting returns the same job)")
    p.add_argument("--server", default="", help="job API address (default FACESWAP_JOBS_ADDR)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--embedded", action="store_true", help="start the services for this command")
    mode.add_argument("--remote", action="store_true", help="never start services; fail if none is running")
    p.set_defaults(func=cmd_swap)

    jobs = sub.add_parser("jobs", help="list, inspect, watch or cancel jobs")
    jobs.add_argument("--server", default="", help="job API address (default FACESWAP_JOBS_ADDR)")
    jsub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION")
    jsub.required = True
    q = jsub.add_parser("list", help="jobs, newest first")
    q.add_argument("--state", default="", help="queued, running, succeeded, failed, cancelling, cancelled")
    q.add_argument("--limit", type=int, default=50)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_jobs_list)
    for name, func, text in (
        ("get", cmd_jobs_get, "show one job"),
        ("watch", cmd_jobs_watch, "follow a job's progress to its end"),
        ("cancel", cmd_jobs_cancel, "cancel a job"),
    ):
        q = jsub.add_parser(name, help=text)
        q.add_argument("name", help="jobs/{id} or the id")
        q.add_argument("--json", action="store_true")
        q.set_defaults(func=func)
    q = jsub.add_parser("download", help="save a succeeded job's output video (and its report)")
    q.add_argument("name", help="jobs/{id} or the id")
    q.add_argument("-o", "--output", type=Path, required=True, help="where to save the video")
    q.add_argument("--report", type=Path, help="also save the quality report (HTML) here")
    q.set_defaults(func=cmd_jobs_download)
    q = jsub.add_parser("migrate", help="apply job database migrations (FACESWAP_DB_URL) and exit")
    q.set_defaults(func=cmd_jobs_migrate)


# ---- serve ---------------------------------------------------------------------------------------
def _configured_ports() -> dict[str, int]:
    addrs = load_settings().addresses
    names = {"media": "media", "detector": "detector", "trainer": "trainer", "converter": "converter"}
    ports = {svc: int(addrs[key].rsplit(":", 1)[1]) for svc, key in names.items()}
    ports["orchestrator"] = int(addrs["jobs"].rsplit(":", 1)[1])
    return ports


def cmd_serve(args: argparse.Namespace) -> int:
    wanted = tuple(s.strip() for s in args.services.split(",") if s.strip())
    unknown = set(wanted) - set(SERVICES)
    if unknown:
        raise InvalidArgument(
            f"unknown services {sorted(unknown)} (use {', '.join(SERVICES)})", field="--services"
        )
    settings = load_settings()
    group = ServiceGroup(
        services=wanted,
        ports=_configured_ports(),
        log_dir=settings.data_dir / "logs",
        env={"FACESWAP_WORKER_ID": "embedded"},  # a restart resumes its own jobs at once
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    storage = settings.storage
    where = storage.endpoint if storage.backend == "s3" else str(storage.root)
    print(f"starting {', '.join(wanted)} (storage: {storage.backend} {where}, logs: {group.log_dir})")
    try:
        group.start()
        for name in wanted:
            print(f"  {name:<13} {group.address(name)}")
        print("job API ready at", group.jobs_address, "- Ctrl-C stops everything")
        # A service that dies is restarted with backoff; the others (and the jobs) carry on.
        group.supervise(stop, say=lambda line: print(line, flush=True))
    finally:
        print("stopping services...")
        group.stop()
    return 0


# ---- swap ----------------------------------------------------------------------------------------
def _b_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise InvalidArgument(
                f"{path} holds no photos ({', '.join(sorted(IMAGE_EXTENSIONS))})", field="--faces-b"
            )
        return files
    if path.is_file() and path.suffix.lower() in (*VIDEO_EXTENSIONS, *IMAGE_EXTENSIONS):
        return [path]
    if not path.exists():
        raise NotFound(f"--faces-b: {path} not found")
    raise InvalidArgument(f"{path} is neither a folder of photos nor a video", field="--faces-b")


@contextlib.contextmanager
def _job_api(args: argparse.Namespace) -> Iterator[tuple[str, bool]]:
    """An address of a running job API: the given/configured one, or services started for us."""
    address = args.server or load_settings().addresses["jobs"]
    if not getattr(args, "embedded", False) and health_ok(address):
        yield address, False
        return
    if getattr(args, "remote", False):
        raise NotFound(f"no job API answers at {address} (start one with `faceswap serve`)")
    print("no job API running: starting the services for this command...", file=sys.stderr)
    settings = load_settings()
    with ServiceGroup(log_dir=settings.data_dir / "logs", env={"FACESWAP_WORKER_ID": "embedded"}) as group:
        yield group.jobs_address, True


def build_swap_spec(client: JobClient, args: argparse.Namespace) -> jobs_pb2.SwapJobSpec:
    if not args.video.is_file():
        raise NotFound(f"video {args.video} not found")
    b_files = _b_files(args.faces_b)  # check every local path before uploading anything
    for path in args.ref:
        if not path.is_file():
            raise NotFound(f"--ref: {path} not found")
    spec = jobs_pb2.SwapJobSpec(video=client.upload(args.video))
    for path in b_files:
        spec.faces_b.append(client.upload(path))
    for path in args.ref:
        spec.reference_photos.append(client.upload(path))
    o = spec.options
    o.train.preset, o.train.steps, o.train.batch_size = args.preset, args.steps, args.batch_size
    o.train.max_seconds = args.max_seconds
    if args.warm_start:
        o.train.warm_start.CopyFrom(client.upload(args.warm_start))
    o.detect.detector, o.detect.size = args.detector, args.size
    o.convert.color, o.convert.blend, o.convert.smooth = args.color, args.blend, args.smooth
    o.convert.method = args.method
    o.output_codec, o.output_crf, o.model_prefix = args.codec, args.crf, args.model_prefix
    o.skip_evaluate = args.no_report
    return spec


class ProgressBars:
    """One tqdm bar per stage, fed by WatchJob events."""

    def __init__(self, quiet: bool = False) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self.bar = None
        self.stage = ""
        self.quiet = quiet

    def __call__(self, resp: jobs_pb2.WatchJobResponse) -> None:
        ev, prog = resp.event, resp.event.progress
        stage = prog.stage or resp.job.progress.stage
        if stage and stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = self._tqdm(desc=f"{stage:<13}", total=None, unit="it", leave=True, disable=self.quiet)
        if self.bar is not None and prog.stage == self.stage and prog.total > 0:
            self.bar.total = prog.total
            self.bar.n = min(prog.done, prog.total)
            if prog.eta_seconds:
                self.bar.set_postfix_str(f"eta {prog.eta_seconds:.0f}s", refresh=False)
            self.bar.refresh()
        if ev.message and ev.message != "snapshot" and not ev.message.endswith(" started"):
            (self.bar.write if self.bar is not None else print)(
                f"  [{state_name(ev.state).lower()}] {ev.message}"
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def run_swap(
    client: JobClient,
    spec: jobs_pb2.SwapJobSpec,
    output: Path,
    report: Path | None,
    request_id: str = "",
    cancel_on_interrupt: bool = True,
) -> jobs_pb2.Job:
    """Submits, follows with progress bars, downloads the output (and report). Returns the final job.

    Ctrl-C cancels the job when cancel_on_interrupt (the services stop with us); else it keeps running.
    """
    job, created = client.submit(spec, request_id=request_id or uuid.uuid4().hex)
    print(f"{'submitted' if created else 'already submitted:'} {job.name}")
    bars = ProgressBars()
    try:
        final = client.wait(job.name, on_event=bars)
    except KeyboardInterrupt:
        bars.close()
        if cancel_on_interrupt:
            with contextlib.suppress(Exception):
                client.cancel(job.name)
            print(f"\ncancelled {job.name}", file=sys.stderr)
        else:
            print(f"\n{job.name} goes on; follow it with `faceswap jobs watch {job.name}`", file=sys.stderr)
        raise
    finally:
        bars.close()
    if final.state != jobs_pb2.JOB_STATE_SUCCEEDED:
        reason = f" at {final.error.where}: {final.error.message}" if final.error.message else ""
        print(f"job {final.name} {state_name(final.state).lower()}{reason}", file=sys.stderr)
        return final
    client.download(final.output, output)
    print(f"output: {output}")
    if report is not None and final.report.key:
        client.download(final.report, report)
        print(f"quality report: {report}")
    return final


@_rpc_errors
def cmd_swap(args: argparse.Namespace) -> int:
    with _job_api(args) as (address, embedded), JobClient(address) as client:
        spec = build_swap_spec(client, args)
        report = None if args.no_report else (args.report or args.output.with_suffix(".report.html"))
        # Embedded services stop with us: Ctrl-C cancels the job rather than leave it half-run.
        final = run_swap(client, spec, args.output, report, args.request_id, cancel_on_interrupt=embedded)
    return 0 if final.state == jobs_pb2.JOB_STATE_SUCCEEDED else 1


# ---- jobs ----------------------------------------------------------------------------------------
def _print_job(job: jobs_pb2.Job, as_json: bool) -> None:
    if as_json:
        print(json_format.MessageToJson(job, preserving_proto_field_name=True))
        return
    p = job.progress
    line = (
        f"{job.name}  {state_name(job.state):<10} {p.stage or '-':<13} {p.done}/{p.total}  {job.create_time}"
    )
    if job.error.message:
        line += f"  error at {job.error.where}: {job.error.message}"
    if job.output.key:
        line += f"  output={job.output.key}"
    print(line)


def _client(args: argparse.Namespace) -> JobClient:
    address = args.server or load_settings().addresses["jobs"]
    if not health_ok(address, timeout=3.0):
        raise NotFound(f"no job API answers at {address} (start one with `faceswap serve`)")
    return JobClient(address)


@_rpc_errors
def cmd_jobs_list(args: argparse.Namespace) -> int:
    state = 0
    if args.state:
        try:
            state = jobs_pb2.JobState.Value("JOB_STATE_" + args.state.upper())
        except ValueError:
            raise InvalidArgument(f"unknown state {args.state!r}", field="--state") from None
    with _client(args) as client:
        jobs = list(client.list(state=state, page_size=args.limit).jobs)
    if args.json:
        print(
            json.dumps(
                [json_format.MessageToDict(j, preserving_proto_field_name=True) for j in jobs], indent=1
            )
        )
    else:
        for job in jobs:
            _print_job(job, False)
        if not jobs:
            print("no jobs")
    return 0


@_rpc_errors
def cmd_jobs_get(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _print_job(client.get(args.name), args.json)
    return 0


@_rpc_errors
def cmd_jobs_watch(args: argparse.Namespace) -> int:
    with _client(args) as client:
        bars = ProgressBars()
        try:
            final = client.wait(args.name, on_event=bars)
        finally:
            bars.close()
        _print_job(final, args.json)
    return 0 if final.state == jobs_pb2.JOB_STATE_SUCCEEDED else 1


@_rpc_errors
def cmd_jobs_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _print_job(client.cancel(args.name), args.json)
    return 0


@_rpc_errors
def cmd_jobs_download(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.get(args.name)
        if job.state != jobs_pb2.JOB_STATE_SUCCEEDED or not job.output.key:
            reason = f" ({job.error.where}: {job.error.message})" if job.error.message else ""
            raise FailedPrecondition(
                f"job {job.name} is {state_name(job.state).lower()}{reason}: it has no output to download"
            )
        client.download(job.output, args.output)
        print(f"output: {args.output}")
        if args.report is not None:
            if not job.report.key:
                raise NotFound(f"job {job.name} has no quality report")
            client.download(job.report, args.report)
            print(f"quality report: {args.report}")
    return 0


def cmd_jobs_migrate(_args: argparse.Namespace) -> int:
    from services.orchestrator.store import open_job_store

    store = open_job_store(migrate=True)
    try:
        print(f"job database ({store.dialect}) at schema version {store.schema_version()}")
    finally:
        store.close()
    return 0
