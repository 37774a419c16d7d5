"""convert_frames end to end on real frames: outputs, pass-through, bad input, S3, gRPC, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest
from converter_helpers import CLIP, SWAP_FRAMES, put_frames

from faceswap.errors import FailedPrecondition, InvalidArgument, NotFound
from faceswap.face.alignments import Alignments
from faceswap.options.convert import ConvertOptions
from faceswap.storage import LocalStore, ObjectStore
from services.converter.swap import convert_frames

ROOT = Path(__file__).resolve().parents[2]


def _decode(store: ObjectStore, key: str) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(store.get_bytes(key), np.uint8), cv2.IMREAD_COLOR)


def _edit_alignments(store: ObjectStore, edit) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(store.get_bytes("alignments.json"))
    edit(data)
    store.put_bytes("alignments.json", json.dumps(data).encode())


def test_convert_frames_swaps_faces_and_keeps_names(frames_store: LocalStore) -> None:
    progress = []
    summary = convert_frames(
        frames_store, "frames", "alignments.json", "model", "out", ConvertOptions(method="autoencoder", batch_size=4),
        on_progress=lambda done, total: progress.append((done, total)),
    )  # fmt: skip
    inputs = [k.split("/")[-1] for k in frames_store.list("frames")]
    outputs = [k.split("/")[-1] for k in frames_store.list("out")]
    assert outputs == inputs and len(outputs) == SWAP_FRAMES
    assert summary.frames_total == SWAP_FRAMES
    assert summary.frames_converted == SWAP_FRAMES and summary.faces_swapped == SWAP_FRAMES
    assert summary.frame_errors == []
    assert progress[-1] == (SWAP_FRAMES, SWAP_FRAMES)
    assert summary.frames_per_second > 0
    assert {"read", "decode", "crop", "infer", "paste", "encode", "write"} <= set(summary.stage_seconds)
    for name in inputs:
        before, after = _decode(frames_store, f"frames/{name}"), _decode(frames_store, f"out/{name}")
        assert before.shape == after.shape
        changed = (before != after).any(axis=2)
        assert 0.005 < changed.mean() < 0.2  # the face, and only the face


def test_frames_without_a_face_pass_through_byte_for_byte(frames_store: LocalStore) -> None:
    def edit(data):  # type: ignore[no-untyped-def]
        data["frames"][1].update(status="no_face", faces=[])
        data["frames"][3].update(status="filtered", reason="identity distance 0.8 > 0.6")

    _edit_alignments(frames_store, edit)
    summary = convert_frames(
        frames_store, "frames", "alignments.json", "model", "out", ConvertOptions(method="autoencoder")
    )
    assert summary.frames_total == SWAP_FRAMES and summary.frames_converted == SWAP_FRAMES - 2
    for i in (1, 3):
        key = f"{i:08d}.png"
        assert frames_store.get_bytes(f"out/{key}") == frames_store.get_bytes(f"frames/{key}")
    assert frames_store.get_bytes("out/00000000.png") != frames_store.get_bytes("frames/00000000.png")


def test_range_converts_only_its_frames(frames_store: LocalStore) -> None:
    summary = convert_frames(
        frames_store,
        "frames",
        "alignments.json",
        "model",
        "part",
        ConvertOptions(method="autoencoder"),
        start=2,
        end=5,
    )
    assert summary.frames_total == 3
    assert [k.split("/")[-1] for k in frames_store.list("part")] == [f"{i:08d}.png" for i in (2, 3, 4)]


def test_a_frame_failing_mid_run_is_recorded_and_passed_through(frames_store: LocalStore) -> None:
    broken = b"\x89PNG\r\n\x1a\n not really a png"
    frames_store.put_bytes("frames/00000002.png", broken)
    summary = convert_frames(
        frames_store, "frames", "alignments.json", "model", "out", ConvertOptions(method="autoencoder")
    )
    assert summary.frames_total == SWAP_FRAMES
    assert [(e.index, e.code) for e in summary.frame_errors] == [(2, grpc.StatusCode.INVALID_ARGUMENT)]
    assert frames_store.get_bytes("out/00000002.png") == broken
    assert summary.frames_converted == SWAP_FRAMES - 1


def test_predicted_mask_needs_a_model_with_a_mask(frames_store: LocalStore, model_store) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FailedPrecondition, match="predicted"):
        convert_frames(
            frames_store,
            "frames",
            "alignments.json",
            "model",
            "out",
            ConvertOptions(method="autoencoder", mask="predicted"),
        )
    for name in ("checkpoint.pt", "checkpoint.json"):
        frames_store.put_bytes(f"demo/{name}", model_store.get_bytes(f"demo/{name}"))
    summary = convert_frames(
        frames_store,
        "frames",
        "alignments.json",
        "demo",
        "out",
        ConvertOptions(method="autoencoder", mask="predicted"),
        end=2,
    )
    assert summary.frames_total == 2 and not summary.frame_errors


@pytest.mark.parametrize(
    ("case", "error", "match"),
    [
        ("no_model", NotFound, "model"),
        ("corrupt_model", FailedPrecondition, "corrupt"),
        ("no_alignments", NotFound, "alignments"),
        ("bad_alignments", InvalidArgument, "alignments"),
        ("missing_record", FailedPrecondition, "no record"),
        ("other_key", FailedPrecondition, "do not match"),
        ("short_landmarks", InvalidArgument, "68 x 2"),
        ("other_size", FailedPrecondition, "640x360"),
        ("no_frames", NotFound, "no frames"),
        ("bad_option", InvalidArgument, "options.color"),
        ("same_prefix", InvalidArgument, "output_prefix"),
        ("bad_range", InvalidArgument, "range"),
    ],
)
def test_bad_input_fails_before_any_output(frames_store: LocalStore, case: str, error, match: str) -> None:  # type: ignore[no-untyped-def]
    args = {"frames_prefix": "frames", "alignments_key": "alignments.json", "model_prefix": "model"}
    kwargs: dict = {}
    options = ConvertOptions(method="autoencoder")
    output = "out"
    if case == "no_model":
        args["model_prefix"] = "nothing-here"
    elif case == "corrupt_model":
        frames_store.put_bytes("model/checkpoint.pt", b"not a checkpoint")
    elif case == "no_alignments":
        args["alignments_key"] = "missing.json"
    elif case == "bad_alignments":
        frames_store.put_bytes("alignments.json", b"{not json")
    elif case == "missing_record":
        _edit_alignments(frames_store, lambda d: d["frames"].pop(3))
    elif case == "other_key":
        _edit_alignments(frames_store, lambda d: d["frames"][0].update(key="other/00000099.png"))
    elif case == "short_landmarks":
        _edit_alignments(frames_store, lambda d: d["frames"][2]["faces"][0].update(landmarks=[[1, 2]] * 5))
    elif case == "other_size":
        _edit_alignments(frames_store, lambda d: [f.update(width=640, height=360) for f in d["frames"]])
    elif case == "no_frames":
        args["frames_prefix"] = "empty"
    elif case == "bad_option":
        options = ConvertOptions(method="autoencoder", color="sepia")
    elif case == "same_prefix":
        output = "frames"
    elif case == "bad_range":
        kwargs = {"start": 4, "end": 2}
    with pytest.raises(error, match=match):
        convert_frames(frames_store, output_prefix=output, options=options, **args, **kwargs)
    assert list(frames_store.list("out")) == []


def test_convert_frames_on_s3(s3_store: ObjectStore, clip, clip_alignments: Alignments, model_store) -> None:  # type: ignore[no-untyped-def]
    put_frames(s3_store, "job/frames", clip[:3])
    subset = Alignments(size=64, coverage=0.75, frames=[f for f in clip_alignments.frames if f.index < 3])
    s3_store.put_bytes("job/alignments.json", subset.dumps())
    for name in ("checkpoint.pt", "checkpoint.json"):
        s3_store.put_bytes(f"job/model/{name}", model_store.get_bytes(f"lite/{name}"))
    summary = convert_frames(
        s3_store,
        "job/frames",
        "job/alignments.json",
        "job/model",
        "job/out",
        ConvertOptions(method="autoencoder"),
    )
    assert summary.frames_total == 3 and summary.faces_swapped == 3
    assert list(s3_store.list("job/out")) == [f"job/out/{i:08d}.png" for i in range(3)]


def test_grpc_convert_frames(frames_store: LocalStore) -> None:
    from services.common.pb.faceswap.v1 import common_pb2, converter_pb2, converter_pb2_grpc
    from services.common.server import start_server
    from services.converter.server import build_spec

    running = start_server(build_spec(frames_store), port=0, metrics_port=0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = converter_pb2_grpc.ConverterServiceStub(channel)
            request = converter_pb2.ConvertFramesRequest(
                frames_prefix="frames",
                alignments=common_pb2.ObjectRef(key="alignments.json"),
                model_prefix="model",
                output_prefix="out",
                range=common_pb2.FrameRange(start=1, end=4),
                options=converter_pb2.ConvertOptions(
                    method="autoencoder", blend="alpha", smooth="oneeuro", batch_size=2
                ),
            )
            reply = stub.ConvertFrames(request, timeout=120)
            assert (reply.frames_total, reply.frames_converted, reply.faces_swapped) == (3, 3, 3)
            assert reply.frames_per_second > 0 and "infer" in reply.stage_seconds
            assert len(list(frames_store.list("out"))) == 3
            for change, code in [
                ({"model_prefix": "missing"}, grpc.StatusCode.NOT_FOUND),
                (
                    {"options": converter_pb2.ConvertOptions(method="autoencoder", blend="smudge")},
                    grpc.StatusCode.INVALID_ARGUMENT,
                ),
                ({"output_prefix": ""}, grpc.StatusCode.INVALID_ARGUMENT),
                ({"alignments": common_pb2.ObjectRef(key="nope.json")}, grpc.StatusCode.NOT_FOUND),
            ]:
                bad = converter_pb2.ConvertFramesRequest()
                bad.CopyFrom(request)
                for name, value in change.items():
                    if isinstance(value, str):
                        setattr(bad, name, value)
                    else:
                        getattr(bad, name).CopyFrom(value)
                with pytest.raises(grpc.RpcError) as info:
                    stub.ConvertFrames(bad, timeout=60)
                assert info.value.code() == code, change
                assert "Traceback" not in (info.value.details() or "")
    finally:
        running.stop(grace=1)


def test_cli_frames_folder_and_video(
    tmp_path: Path, frames_store: LocalStore, capsys: pytest.CaptureFixture[str]
) -> None:
    from services.cli import main

    frames_dir = frames_store.root / "frames"
    (frames_dir / "alignments.json").write_bytes(frames_store.get_bytes("alignments.json"))
    model_dir = frames_store.root / "model"
    out_dir = tmp_path / "out"
    # In process (the same entry point as the console script), to keep the suite quick.
    assert main(["convert", "-i", str(frames_dir), "-o", str(out_dir), "-m", str(model_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["frames_total"] == SWAP_FRAMES
    assert sorted(p.name for p in out_dir.glob("*.png")) == sorted(p.name for p in frames_dir.glob("*.png"))

    # A missing model is a clear error, not a traceback.
    assert main(["convert", "-i", str(frames_dir), "-o", str(out_dir), "-m", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "Traceback" not in err

    # Video in, video out with the source's audio, alignments given: the real command line.
    out_mp4 = tmp_path / "out.mp4"
    cmd = [sys.executable, "-m", "services.cli", "convert", "-i", str(CLIP), "-o", str(out_mp4)]
    cmd += ["-m", str(model_dir), "--alignments", str(frames_dir / "alignments.json")]
    res = subprocess.run(
        [*cmd, "--end", str(SWAP_FRAMES)], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert res.returncode == 0, res.stderr
    from faceswap.media.store import probe

    info = probe(out_mp4)
    assert info.frame_count == SWAP_FRAMES and info.has_audio and (info.width, info.height) == (1280, 720)


@pytest.mark.slow
def test_cli_video_without_alignments_runs_the_detector(tmp_path: Path, model_store) -> None:  # type: ignore[no-untyped-def]
    out_mp4 = tmp_path / "swapped.mp4"
    model = model_store.root / "lite"
    cmd = [
        sys.executable,
        "-m",
        "services.cli",
        "convert",
        "-i",
        str(CLIP),
        "-o",
        str(out_mp4),
        "-m",
        str(model),
    ]
    res = subprocess.run([*cmd, "--end", "12"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr
    from faceswap.media.store import probe

    assert probe(out_mp4).frame_count == 12


class _FullDisk(LocalStore):
    """A real local store that fails after a few writes, as a full disk would."""

    def __init__(self, root: Path, writes: int) -> None:
        super().__init__(root, "")
        self.left = writes

    def put_stream(self, key, stream, size=-1):  # type: ignore[no-untyped-def,override]
        self.left -= 1
        if self.left < 0:
            raise OSError(28, "No space left on device")
        return super().put_stream(key, stream, size)


@pytest.mark.timeout(120)
def test_a_failing_output_ends_the_run_without_hanging(tmp_path: Path, frames_store: LocalStore) -> None:
    with pytest.raises(OSError, match="No space"):
        convert_frames(
            frames_store, "frames", "alignments.json", "model", "out", ConvertOptions(method="autoencoder", batch_size=2),
            output_store=_FullDisk(tmp_path / "full", writes=2),
        )  # fmt: skip
