"""The job model: states, stages, object keys, spec validation and the record <-> proto mapping.

State machine (the store enforces it in SQL, ``TRANSITIONS`` documents and tests it)::

    QUEUED -> RUNNING -> SUCCEEDED | FAILED
    QUEUED -> CANCELLED                     (cancel before it started)
    RUNNING -> CANCELLING -> CANCELLED      (the worker stops the stage in hand)
    CANCELLING -> FAILED | SUCCEEDED        (the stage ended before the cancel was seen)

Stages run in order; each records its outputs (object keys) when it completes, so a resumed job starts
at the first stage without outputs and nothing already produced is redone.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from faceswap.errors import InvalidArgument, NotFound, PermissionDenied, echo
from faceswap.limits import check_count, check_image, check_train_steps, load_limits
from faceswap.media.kinds import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from faceswap.model.layout import checkpoint_key
from faceswap.options.convert import ConvertOptions
from faceswap.options.detect import DetectOptions
from faceswap.options.train import PRESET_NAMES, TrainOptions
from faceswap.storage import ObjectStore, join_key, validate_key, validate_prefix
from services.common.auth import ANONYMOUS, current_client
from services.common.pb.faceswap.v1 import common_pb2, jobs_pb2
from services.orchestrator.store import (
    CANCELLED,
    CANCELLING,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    TERMINAL_STATES,
    JobEventRecord,
    JobRecord,
)

STAGES = ("media_extract", "detect_a", "detect_b", "train", "convert", "encode", "evaluate")

TRANSITIONS: dict[str, frozenset[str]] = {
    QUEUED: frozenset({RUNNING, CANCELLED}),
    RUNNING: frozenset({SUCCEEDED, FAILED, CANCELLING}),
    CANCELLING: frozenset({CANCELLED, FAILED, SUCCEEDED}),
    SUCCEEDED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
}

STATE_TO_PROTO = {
    QUEUED: jobs_pb2.JOB_STATE_QUEUED,
    RUNNING: jobs_pb2.JOB_STATE_RUNNING,
    SUCCEEDED: jobs_pb2.JOB_STATE_SUCCEEDED,
    FAILED: jobs_pb2.JOB_STATE_FAILED,
    CANCELLING: jobs_pb2.JOB_STATE_CANCELLING,
    CANCELLED: jobs_pb2.JOB_STATE_CANCELLED,
}
PROTO_TO_STATE = {v: k for k, v in STATE_TO_PROTO.items()}


def check_transition(old: str, new: str) -> None:
    if new not in TRANSITIONS[old]:
        raise ValueError(f"job state {old} cannot become {new}")


def is_terminal(state: str) -> bool:
    return state in TERMINAL_STATES


# ---- object keys: derived from the job id only, never from client input ---------------------------
class JobKeys:
    def __init__(self, job_id: str) -> None:
        self.root = join_key("jobs", job_id)
        self.input = join_key(self.root, "input")
        self.faces_b_source = join_key(self.input, "faces_b")  # photos, or frames of B's video
        self.reference = join_key(self.input, "reference")
        self.frames = join_key(self.root, "frames")
        self.faces_a = join_key(self.root, "faces_a")
        self.faces_b = join_key(self.root, "faces_b")
        self.model = join_key(self.root, "model")
        self.loss_log = join_key(self.root, "train_loss.json")
        self.converted = join_key(self.root, "converted")
        self.output = join_key(self.root, "output.mp4")
        self.report = join_key(self.root, "report.html")
        self.report_dir = join_key(self.root, "report")

    def input_video(self, source_key: str) -> str:
        return join_key(self.input, "video" + extension(source_key))

    def input_b_video(self, source_key: str) -> str:
        return join_key(self.input, "faces_b_video" + extension(source_key))


def extension(key: str) -> str:
    ext = PurePosixPath(key).suffix.lower()
    return ext if re.fullmatch(r"\.[a-z0-9]{1,8}", ext) else ""


def job_name(job_id: str) -> str:
    return f"jobs/{job_id}"


def parse_job_name(name: str, field: str = "name") -> str:
    """'jobs/{id}' (or a bare id) -> id."""
    job_id = name[len("jobs/") :] if name.startswith("jobs/") else name
    if not re.fullmatch(r"[0-9a-f]{32}", job_id or ""):
        if not name:
            raise InvalidArgument("is required ('jobs/{id}')", field=field)
        raise NotFound(f"job {echo(name)} not found")
    return job_id


def scoped_request_id(owner: str, request_id: str) -> str:
    """The stored idempotency key: per client when authentication names clients."""
    if not request_id or owner in ("", ANONYMOUS):
        return request_id
    return f"{owner}:{request_id}"


def spec_hash(spec: jobs_pb2.SwapJobSpec) -> str:
    return hashlib.sha256(spec.SerializeToString(deterministic=True)).hexdigest()


# ---- validation -------------------------------------------------------------------------------
def known_presets() -> tuple[str, ...]:
    """The training presets a job may name (the library's list: no torch needed to check a job)."""
    return PRESET_NAMES


def _range(value: float, lo: float, hi: float, field: str) -> None:
    if not lo <= value <= hi:
        raise InvalidArgument(f"{value} is out of range [{lo}, {hi}]", field=field)


def _library_check(build: Callable[[], Any], prefix: str) -> None:
    """Builds and validates a stage's options with the library's definition; an error names the
    field under the job spec (``spec.options.convert.mask_erode``)."""
    try:
        build().validate()
    except InvalidArgument as exc:
        field = (exc.field or "").removeprefix("options.")
        # The library's message already starts with its own field name: say it once, under the spec.
        message = exc.message.removeprefix(f"{exc.field}: ") if exc.field else exc.message
        raise InvalidArgument(message, field=f"{prefix}.{field}") from None


def check_options(opts: jobs_pb2.SwapOptions) -> None:
    """Each stage's options checked with the stage's own definition (faceswap/options/: ranges,
    choices, the service's proto mapping), so a bad value is refused here, before any stage runs,
    with the message the stage would give and the field under the spec. (This install's limits,
    FACESWAP_MAX_TRAIN_STEPS, are validate_spec's.)"""
    d = opts.detect
    if d.reference_photos or d.faces_prefix:
        raise InvalidArgument(
            "is set by the job (use spec.reference_photos)", field="spec.options.detect.reference_photos"
        )
    _library_check(lambda: DetectOptions.from_proto(d), "spec.options.detect")
    _library_check(lambda: TrainOptions.from_proto(opts.train), "spec.options.train")
    _library_check(
        lambda: ConvertOptions.from_proto(opts.convert if opts.HasField("convert") else None),
        "spec.options.convert",
    )


def _check_ref(store: ObjectStore, ref: common_pb2.ObjectRef, field: str) -> None:
    if not ref.key:
        raise InvalidArgument("object key is required", field=f"{field}.key")
    if ref.bucket and ref.bucket != store.bucket:
        raise InvalidArgument(
            f"bucket {echo(ref.bucket)} is not this platform's bucket {store.bucket!r}",
            field=f"{field}.bucket",
        )
    try:
        validate_key(ref.key)
    except InvalidArgument as exc:
        raise InvalidArgument(exc.message, field=f"{field}.key") from None
    if not store.exists(ref.key):
        raise NotFound(f"{field}.key: object {ref.key!r} not found (upload it with UploadFile first)")


def _key_field(key: str, field: str) -> str:
    try:
        return validate_key(key)
    except InvalidArgument as exc:
        raise InvalidArgument(exc.message, field=field) from None


def upload_tag(client: str) -> str:
    """The first 16 hex digits of an upload's key name its owner (the other 32 are random)."""
    return hashlib.sha256(f"faceswap-upload:{client}".encode()).hexdigest()[:16]


def owns_upload(key: str, client: str) -> bool:
    """True for ``uploads/{tag(client)}{32 hex}{ext}``: an upload that client made."""
    parts = key.split("/")
    return (
        len(parts) == 2
        and parts[0] == "uploads"
        and re.fullmatch(r"[0-9a-f]{48}(\.[a-z0-9]{1,8})?", parts[1]) is not None
        and parts[1].startswith(upload_tag(client))
    )


def check_ref_access(
    spec: jobs_pb2.SwapJobSpec, owns_job: Callable[[str], bool], client: str | None = None
) -> None:
    """Every object a client names must be an upload or under one of its own jobs.

    Checked before anything is looked up in storage, so a client learns nothing about other keys:
    malformed keys ('../x', '/etc/passwd') are INVALID_ARGUMENT, other places PERMISSION_DENIED.
    """
    named: list[tuple[str, str]] = []
    if spec.video.key:
        named.append((spec.video.key, "spec.video.key"))
    named += [(r.key, f"spec.faces_b[{i}].key") for i, r in enumerate(spec.faces_b)]
    named += [(r.key, f"spec.reference_photos[{i}].key") for i, r in enumerate(spec.reference_photos)]
    if spec.options.train.warm_start.key:
        named.append((spec.options.train.warm_start.key, "spec.options.train.warm_start.key"))
    if spec.options.model_prefix:
        named.append((spec.options.model_prefix.rstrip("/") + "/x", "spec.options.model_prefix"))
    for key, field in named:
        if not key:
            continue  # 'is required' is validate_spec's to say
        key = _key_field(key, field)
        parts = key.split("/")
        if parts[0] == "uploads" and len(parts) == 2:
            if owns_upload(key, client or current_client()):
                continue
            raise NotFound(f"{field}: no upload {key[:100]!r} of yours")  # another client's: not revealed
        own_job = parts[0] == "jobs" and len(parts) > 2 and re.fullmatch(r"[0-9a-f]{32}", parts[1])
        if own_job and owns_job(parts[1]):
            continue
        raise PermissionDenied(f"{field}: only objects under uploads/ or your own jobs/ may be used")


def _check_image(store: ObjectStore, key: str, field: str) -> None:
    """A photo's header only: a 20000x20000 image is refused here, not decoded by the detector."""
    with store.open(key) as fh:
        check_image(fh, field)


def validate_spec(spec: jobs_pb2.SwapJobSpec, store: ObjectStore) -> None:
    """Raises InvalidArgument naming the field (``spec.options.train.preset``) or NotFound."""
    limits = load_limits()
    if not spec.HasField("video"):
        raise InvalidArgument("is required", field="spec.video")
    _check_ref(store, spec.video, "spec.video")
    if extension(spec.video.key) not in VIDEO_EXTENSIONS:
        raise InvalidArgument(
            f"{spec.video.key!r} does not have a video extension ({', '.join(sorted(VIDEO_EXTENSIONS))})",
            field="spec.video.key",
        )
    opts = spec.options
    if not spec.faces_b and not opts.model_prefix:
        raise InvalidArgument(
            "give photos or one video of person B (or options.model_prefix)", field="spec.faces_b"
        )
    check_count(len(spec.faces_b), "spec.faces_b", limits)
    check_count(len(spec.reference_photos), "spec.reference_photos", limits)
    kinds = set()
    for i, ref in enumerate(spec.faces_b):
        _check_ref(store, ref, f"spec.faces_b[{i}]")
        ext = extension(ref.key)
        if ext in IMAGE_EXTENSIONS:
            kinds.add("image")
            _check_image(store, ref.key, f"spec.faces_b[{i}]")
        elif ext in VIDEO_EXTENSIONS:
            kinds.add("video")
        else:
            raise InvalidArgument(
                f"{ref.key!r} is neither an image nor a video", field=f"spec.faces_b[{i}].key"
            )
    if "video" in kinds and len(spec.faces_b) != 1:
        raise InvalidArgument("give either photos or exactly one video of person B", field="spec.faces_b")
    for i, ref in enumerate(spec.reference_photos):
        _check_ref(store, ref, f"spec.reference_photos[{i}]")
        if extension(ref.key) not in IMAGE_EXTENSIONS:
            raise InvalidArgument(f"{ref.key!r} is not an image", field=f"spec.reference_photos[{i}].key")
        _check_image(store, ref.key, f"spec.reference_photos[{i}]")

    check_options(opts)
    check_train_steps(TrainOptions.from_proto(opts.train).steps, "spec.options.train.steps", limits)
    t = opts.train
    if t.HasField("warm_start") and t.warm_start.key:
        try:
            validate_key(t.warm_start.key)
        except InvalidArgument as exc:
            raise InvalidArgument(exc.message, field="spec.options.train.warm_start.key") from None

    if opts.output_codec and not re.fullmatch(r"[A-Za-z0-9_]{1,32}", opts.output_codec):
        raise InvalidArgument(
            f"{echo(opts.output_codec)} is not an encoder name", field="spec.options.output_codec"
        )
    _range(opts.output_crf, 0, 63, "spec.options.output_crf")
    if opts.model_prefix:
        prefix = validate_prefix(opts.model_prefix, field="spec.options.model_prefix")
        if not store.exists(checkpoint_key(prefix)):
            raise NotFound(f"spec.options.model_prefix: no checkpoint under {prefix!r}")


# ---- proto mapping -------------------------------------------------------------------------------
def rfc3339(ts: float) -> str:
    if not ts:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int((ts % 1) * 1000):03d}Z"


def ref(store_bucket: str, key: str) -> common_pb2.ObjectRef | None:
    return common_pb2.ObjectRef(bucket=store_bucket, key=key) if key else None


def job_to_proto(job: JobRecord, bucket: str = "") -> jobs_pb2.Job:
    spec = jobs_pb2.SwapJobSpec()
    spec.ParseFromString(job.spec)
    out = jobs_pb2.Job(
        name=job_name(job.id),
        state=STATE_TO_PROTO[job.state],
        progress=jobs_pb2.JobProgress(
            stage=job.stage, done=job.progress_done, total=job.progress_total, eta_seconds=job.eta_seconds
        ),
        request_id=job.request_id.removeprefix(f"{job.owner}:")
        if job.owner not in ("", ANONYMOUS)
        else job.request_id,
        spec=spec,
        owner=job.owner,
        create_time=rfc3339(job.created_at),
        update_time=rfc3339(job.updated_at),
    )
    if job.error_code or job.error_message:
        out.error.CopyFrom(
            common_pb2.ErrorStatus(code=job.error_code, message=job.error_message, where=job.error_where)
        )
    for field_name, key in (
        ("output", job.output_key),
        ("report", job.report_key),
        ("preview", job.preview_key),
    ):
        r = ref(bucket, key)
        if r is not None:
            getattr(out, field_name).CopyFrom(r)
    return out


def event_to_proto(event: JobEventRecord, bucket: str = "") -> jobs_pb2.JobEvent:
    p = event.payload
    msg = p.get("message", "")
    if "error" in p and p["error"].get("message"):
        msg = f"{msg}: {p['error']['message']}" if msg else p["error"]["message"]
    out = jobs_pb2.JobEvent(
        sequence=event.sequence,
        time=rfc3339(event.time),
        state=STATE_TO_PROTO.get(p.get("state", ""), jobs_pb2.JOB_STATE_UNSPECIFIED),
        message=msg,
    )
    if "stage" in p:
        out.progress.CopyFrom(
            jobs_pb2.JobProgress(
                stage=p.get("stage", ""),
                done=int(p.get("done", 0)),
                total=int(p.get("total", 0)),
                eta_seconds=float(p.get("eta", 0.0)),
            )
        )
    r = ref(bucket, p.get("preview", ""))
    if r is not None:
        out.preview.CopyFrom(r)
    return out
