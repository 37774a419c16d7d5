"""Face-set extraction from stored frames and photos: files written, alignments, filters, tracking."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceswap.errors import InvalidArgument
from faceswap.face.alignments import Alignments
from faceswap.face.extract import DetectOptions, extract_face_set, frame_options
from faceswap.storage import ObjectStore
from services.detector import metrics as _metrics  # noqa: F401  (the Prometheus sink the counts go to)

ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT / "samples" / "liveportrait_s18.mp4"
N_FRAMES = 8


@pytest.fixture(scope="module")
def clip_frames() -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(CLIP))
    frames = []
    while len(frames) < N_FRAMES:
        ok, frame = cap.read()
        assert ok, "sample clip too short"
        frames.append(frame)
    cap.release()
    return frames


def put_frames(store: ObjectStore, prefix: str, frames: list[np.ndarray]) -> None:
    for i, frame in enumerate(frames):
        store.put_bytes(f"{prefix}/{i:08d}.png", cv2.imencode(".png", frame)[1].tobytes())
    store.put_json(f"{prefix}/index.json", {"frames": len(frames)})


def metric(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_extract_from_frames_prefix(local_store: ObjectStore, clip_frames: list[np.ndarray]) -> None:
    before = {
        "faces": metric("faceswap_detector_faces_total"),
        "unreadable": metric("faceswap_detector_frames_total", status="unreadable"),
        "latency": metric("faceswap_detector_detect_seconds_count", detector="hog"),
    }
    put_frames(local_store, "jobs/j1/frames", clip_frames)
    local_store.put_bytes(f"jobs/j1/frames/{N_FRAMES:08d}.png", b"\x89PNG\r\n\x1a\n garbage")
    options = DetectOptions(detect_max_side=640, jobs=2)
    summary = extract_face_set(local_store, "jobs/j1/frames", "jobs/j1/faces_a", options)
    assert summary.frames_total == N_FRAMES + 1
    assert summary.faces_total == N_FRAMES
    assert summary.frames_unreadable == 1 and summary.frames_without_face == 0
    assert summary.alignments_key == "jobs/j1/faces_a/alignments.json"
    assert metric("faceswap_detector_faces_total") - before["faces"] == N_FRAMES
    assert metric("faceswap_detector_frames_total", status="unreadable") - before["unreadable"] == 1
    assert metric("faceswap_detector_detect_seconds_count", detector="hog") - before["latency"] == N_FRAMES
    assert metric("faceswap_detector_frames_per_second") > 0

    raw = local_store.get_bytes(summary.alignments_key)
    alignments = Alignments.loads(raw)
    assert Alignments.loads(alignments.dumps()).to_dict() == alignments.to_dict() == json.loads(raw)
    assert (alignments.size, alignments.coverage, alignments.detector) == (64, 0.75, "hog")
    assert [f.index for f in alignments.frames] == list(range(N_FRAMES + 1))
    bad = alignments.frames[-1]
    assert bad.status == "unreadable" and bad.reason and bad.faces == []
    for frame in alignments.frames[:-1]:
        assert frame.status == "ok" and (frame.width, frame.height) == (1280, 720)
        face = frame.faces[0]
        assert face.face_key == f"faces/{frame.index:08d}_0.png"
        crop = cv2.imdecode(
            np.frombuffer(local_store.get_bytes(f"jobs/j1/faces_a/{face.face_key}"), np.uint8), 1
        )
        assert crop.shape == (64, 64, 3)
        # The stored matrix reproduces the stored crop from the frame.
        again = cv2.warpAffine(clip_frames[frame.index], face.matrix_array, (64, 64), flags=cv2.INTER_AREA)
        assert np.abs(again.astype(int) - crop.astype(int)).mean() < 3


def test_tracking_gives_the_same_faces(local_store: ObjectStore, clip_frames: list[np.ndarray]) -> None:
    put_frames(local_store, "f", clip_frames)
    every = extract_face_set(local_store, "f", "every", DetectOptions(detect_max_side=640, jobs=1))
    tracked = extract_face_set(
        local_store, "f", "tracked", DetectOptions(detect_max_side=640, track_interval=4, jobs=1)
    )
    assert every.faces_total == tracked.faces_total == N_FRAMES
    a = Alignments.loads(local_store.get_bytes(every.alignments_key))
    b = Alignments.loads(local_store.get_bytes(tracked.alignments_key))
    for fa, fb in zip(a.frames, b.frames, strict=True):
        width = fa.faces[0].box[2] - fa.faces[0].box[0]
        diff = np.abs(fa.faces[0].landmarks_array - fb.faces[0].landmarks_array).mean()
        assert diff < 0.02 * width, f"frame {fa.index}: landmarks moved {diff:.1f} px"


def test_photos_folder_dedupe_and_blur(local_store: ObjectStore, shared_data: Path) -> None:
    aj = shared_data / "faces" / "angelina_jolie"
    for name in ("deepface_img1.jpg", "deepface_img2.jpg"):
        local_store.put_file(f"photos/{name}", aj / name)
    local_store.put_file("photos/deepface_img2_copy.jpg", aj / "deepface_img2.jpg")  # a duplicate
    local_store.put_file("photos/zz_broken.jpg", shared_data / "hard_cases" / "broken_zero_bytes.jpg")
    local_store.put_bytes("photos/notes.txt", b"not an image")  # ignored: not an image name
    summary = extract_face_set(
        local_store, "photos", "set", DetectOptions(size=128, dedupe_distance=6, jobs=1)
    )
    alignments = Alignments.loads(local_store.get_bytes(summary.alignments_key))
    assert [(f.index, f.key.split("/")[-1], f.status) for f in alignments.frames] == [
        (0, "deepface_img1.jpg", "ok"),
        (1, "deepface_img2.jpg", "ok"),
        (2, "deepface_img2_copy.jpg", "filtered"),
        (3, "zz_broken.jpg", "unreadable"),
    ]
    assert alignments.frames[2].rejected[0].reason.startswith("duplicate")
    # Landmarks are in the original photo's pixels even though detection ran on a reduced copy.
    assert alignments.frames[0].width == 1382 and alignments.frames[0].faces[0].box[2] > 900
    crop = local_store.get_bytes("set/faces/00000000_0.png")
    assert cv2.imdecode(np.frombuffer(crop, np.uint8), 1).shape == (128, 128, 3)

    blurry = extract_face_set(local_store, "photos", "sharp", DetectOptions(min_sharpness=1e6, jobs=1))
    assert blurry.faces_total == 0 and blurry.frames_filtered == 3


def test_bad_requests(local_store: ObjectStore) -> None:
    with pytest.raises(InvalidArgument, match="source_prefix: no images"):
        extract_face_set(local_store, "nothing/here", "out", DetectOptions())
    local_store.put_bytes("one/00000000.png", b"x")
    with pytest.raises(InvalidArgument, match="detector"):
        extract_face_set(local_store, "one", "out", DetectOptions(detector="mtcnn"))
    with pytest.raises(InvalidArgument, match="size"):
        extract_face_set(local_store, "one", "out", DetectOptions(size=1024))
    with pytest.raises(InvalidArgument, match="reference photo"):
        extract_face_set(local_store, "one", "out", DetectOptions(reference_photos=["one/00000000.png"]))


def test_extract_on_s3(s3_store: ObjectStore, clip_frames: list[np.ndarray]) -> None:
    put_frames(s3_store, "jobs/s3/frames", clip_frames[:2])
    summary = extract_face_set(
        s3_store, "jobs/s3/frames", "jobs/s3/faces", DetectOptions(detect_max_side=480, jobs=1)
    )
    assert summary.faces_total == 2
    assert s3_store.exists("jobs/s3/faces/faces/00000001_0.png")
    assert Alignments.loads(s3_store.get_bytes("jobs/s3/faces/alignments.json")).frames[1].status == "ok"


def test_identity_filter_with_tracking_on_video_frames(
    local_store: ObjectStore, clip_frames: list[np.ndarray], shared_data: Path
) -> None:
    put_frames(local_store, "v", clip_frames[:4])
    # Someone else as reference: every frame's face is dropped, and the run still records them all.
    local_store.put_file("refs/katy.jpg", shared_data / "faces" / "katy_perry" / "deepface_img26.jpg")
    other = DetectOptions(detect_max_side=640, track_interval=2, reference_photos=["refs/katy.jpg"], jobs=1)
    summary = extract_face_set(local_store, "v", "other", other)
    assert (summary.faces_total, summary.frames_filtered, summary.faces_rejected) == (0, 4, 4)
    assert not list(local_store.list("other/faces"))
    # The person herself (a crop of the first frame) as reference: every face kept.
    w = clip_frames[0].shape[1]
    local_store.put_bytes(
        "refs/self.png", cv2.imencode(".png", clip_frames[0][:, w // 4 : 3 * w // 4])[1].tobytes()
    )
    same = DetectOptions(detect_max_side=640, track_interval=2, reference_photos=["refs/self.png"], jobs=1)
    summary = extract_face_set(local_store, "v", "other", same)
    assert summary.faces_total == 4
    frames = Alignments.loads(local_store.get_bytes(summary.alignments_key)).frames
    assert all(0 <= f.faces[0].identity_distance < 0.4 for f in frames)
    # A rerun into the same folder with fewer frames leaves no stale crops behind.
    summary = extract_face_set(local_store, "v", "other", same, end=2)
    assert sorted(local_store.list("other/faces")) == [
        "other/faces/00000000_0.png",
        "other/faces/00000001_0.png",
    ]


def test_tracking_ends_at_a_scene_cut(clip_frames: list[np.ndarray], shared_data: Path) -> None:
    from faceswap.face.frame_worker import FrameTask, process_chunk

    landscape = cv2.imread(str(shared_data / "hard_cases" / "no_face_landscape.jpg"))
    cut = cv2.resize(landscape, (1280, 720))
    frames = [clip_frames[0], clip_frames[1], cut, clip_frames[2], clip_frames[3]]
    options = frame_options(DetectOptions(detect_max_side=640, track_interval=10))
    results = process_chunk([FrameTask(i, "", f) for i, f in enumerate(frames)], options)
    assert [r.record.status for r in results] == ["ok", "ok", "no_face", "ok", "ok"]
    # Only the first frame and the frames after the cut needed the full detector.
    assert [r.detected for r in results] == [True, False, True, True, False]
