"""DetectorService over a real gRPC socket, and the `faceswap extract` CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import cv2
import grpc
import pytest

from faceswap.storage import ObjectStore
from services.cli import main as cli_main
from services.common.pb.faceswap.v1 import common_pb2, detector_pb2, detector_pb2_grpc
from services.common.server import start_server
from services.detector.server import build_spec


@pytest.fixture
def detector(local_store: ObjectStore, shared_data: Path):
    hard = shared_data / "hard_cases"
    local_store.put_file("in/00000000.jpg", hard / "two_people.jpg")
    local_store.put_file("in/00000001.jpg", hard / "no_face_landscape.jpg")
    local_store.put_file("in/00000002.jpg", hard / "broken_truncated_compreface.jpg")
    local_store.put_file("in/00000003.jpg", hard / "broken_zero_bytes.jpg")
    running = start_server(build_spec(local_store), port=0)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield detector_pb2_grpc.DetectorServiceStub(channel), local_store
    finally:
        channel.close()
        running.stop(grace=1)


def frame_keys(*indices: int) -> list[detector_pb2.FrameKey]:
    return [detector_pb2.FrameKey(frame_index=i, key=f"in/{i:08d}.jpg") for i in indices]


def test_detect_faces_batch(detector) -> None:
    stub, store = detector
    options = detector_pb2.DetectOptions(detect_max_side=800, save_faces=True, faces_prefix="crops", jobs=1)
    reply = stub.DetectFaces(
        detector_pb2.DetectFacesRequest(frames=frame_keys(0, 1, 3), options=options), timeout=120
    )
    two, empty, broken = reply.frames
    assert (two.status, len(two.faces), two.width, two.height) == ("ok", 2, 1126, 661)
    assert len(two.faces[0].landmarks) == 68 and len(two.faces[0].matrix) == 6
    assert two.faces[0].aligned.key == "crops/00000000_0.png" and store.exists("crops/00000000_1.png")
    assert two.faces[0].aligned.sha256
    assert two.faces[0].identity_distance == -1
    assert empty.status == "no_face" and empty.error.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert broken.status == "unreadable" and broken.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "cannot decode" in broken.error.message


def test_stream_detect_faces(detector) -> None:
    stub, _ = detector
    options = detector_pb2.DetectOptions(detect_max_side=640, jobs=1)
    requests = [
        detector_pb2.StreamDetectFacesRequest(frames=frame_keys(0), options=options),
        detector_pb2.StreamDetectFacesRequest(frames=frame_keys(1, 2)),
    ]
    replies = list(stub.StreamDetectFaces(iter(requests), timeout=120))
    assert [r.frame.frame_index for r in replies] == [0, 1, 2]
    # A truncated JPEG still partly decodes (the rest grey): a frame with its face, not an error.
    assert [len(r.frame.faces) for r in replies] == [2, 0, 1]
    assert [r.frame.status for r in replies] == ["ok", "no_face", "ok"]


def test_extract_face_set_rpc(detector) -> None:
    stub, store = detector
    request = detector_pb2.ExtractFaceSetRequest(
        source_prefix="in",
        output_prefix="sets/a",
        options=detector_pb2.DetectOptions(detect_max_side=800, jobs=1),
        range=common_pb2.FrameRange(start=0, end=2),
    )
    reply = stub.ExtractFaceSet(request, timeout=120)
    assert (reply.frames_total, reply.faces_total, reply.frames_without_face) == (2, 2, 1)
    assert reply.alignments.key == "sets/a/alignments.json" and reply.alignments.sha256
    assert json.loads(store.get_bytes("sets/a/alignments.json"))["frames"][0]["faces"][1]["face_key"]
    assert store.exists("sets/a/faces/00000000_1.png")


@pytest.mark.parametrize(
    ("options", "frames", "field"),
    [
        (detector_pb2.DetectOptions(detector="yolo"), [0], "detector"),
        (detector_pb2.DetectOptions(size=1000), [0], "size"),
        (detector_pb2.DetectOptions(), [], "frames"),
    ],
)
def test_bad_detect_requests_are_invalid_argument(detector, options, frames, field) -> None:
    stub, _ = detector
    with pytest.raises(grpc.RpcError) as err:
        stub.DetectFaces(
            detector_pb2.DetectFacesRequest(frames=frame_keys(*frames), options=options), timeout=30
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in err.value.details()
    assert "Traceback" not in err.value.details()


def test_empty_source_is_invalid_argument(detector) -> None:
    stub, _ = detector
    with pytest.raises(grpc.RpcError) as err:
        stub.ExtractFaceSet(
            detector_pb2.ExtractFaceSetRequest(source_prefix="nope", output_prefix="x"), timeout=30
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "source_prefix" in err.value.details()


def test_cli_extract_photos_folder(shared_data: Path, tmp_path: Path, capsys) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(shared_data / "faces" / "katy_perry" / "deepface_img26.jpg", photos / "a.jpg")
    shutil.copy(shared_data / "hard_cases" / "broken_corrupted_compreface.png", photos / "b.png")
    out = tmp_path / "faces"
    assert cli_main(["extract", "-i", str(photos), "-o", str(out), "--size", "96", "--jobs", "1"]) == 0
    assert "2 frames, 1 faces" in capsys.readouterr().out
    data = json.loads((out / "alignments.json").read_text())
    assert [f["status"] for f in data["frames"]] == ["ok", "unreadable"]
    assert cv2.imread(str(out / "faces" / "00000000_0.png")).shape == (96, 96, 3)
    with pytest.raises(SystemExit) as exit_:  # argparse: the flag's choices come from DetectOptions
        cli_main(["extract", "-i", str(photos), "-o", str(out), "--detector", "nope"])
    assert exit_.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err
    assert cli_main(["extract", "-i", str(photos), "-o", str(out), "--upsample", "9"]) == 2
    assert "options.upsample" in capsys.readouterr().err
    assert cli_main(["extract", "-i", str(tmp_path / "missing"), "-o", str(out)]) == 2


def test_cli_extract_video(tmp_path: Path) -> None:
    from faceswap.media.store import find_ffmpeg

    clip = tmp_path / "clip.mp4"
    src = Path(__file__).resolve().parents[2] / "samples" / "liveportrait_s18.mp4"
    subprocess.run(
        [
            find_ffmpeg(),
            "-v",
            "error",
            "-i",
            str(src),
            "-frames:v",
            "4",
            "-vf",
            "scale=640:360",
            "-an",
            str(clip),
        ],
        check=True,
    )
    out = tmp_path / "faces"
    assert cli_main(["extract", "-i", str(clip), "-o", str(out), "--jobs", "1", "--track-interval", "2"]) == 0
    data = json.loads((out / "alignments.json").read_text())
    assert [len(f["faces"]) for f in data["frames"]] == [1, 1, 1, 1]
