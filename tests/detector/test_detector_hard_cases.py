"""Detector recall: every face in a photo, a face in every video frame, rotated and turned heads.

Real photos from ../shared/data (read in place, never copied) and the bundled clip; real dlib models.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceswap.face.alignments import Alignments
from faceswap.face.detect import box_iou, detect_faces, predict_landmarks, to_gray
from faceswap.face.extract import DetectOptions, detect_images
from faceswap.face.frame_worker import FrameOptions, detection_scale
from faceswap.face.geometry import template_points, transform_points
from faceswap.face.images import decode_image

ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT / "samples" / "liveportrait_s18.mp4"
MISSED_FRAME = 62  # the frame of the clip where HOG on a 640 px copy finds no face


def hard(shared_data: Path, name: str) -> np.ndarray:
    image = cv2.imread(str(shared_data / "hard_cases" / name))
    assert image is not None, name
    return image


def group_photo(shared_data: Path) -> np.ndarray:
    """An 800 x 533 group photo with ten small faces (36-52 px), built in memory from two shared
    photos: HOG upsample 1 finds all ten on the full image, only eight on a 640 px copy."""
    canvas = np.full((533, 800, 3), 128, np.uint8)
    group = cv2.resize(
        hard(shared_data, "multi_face_6_group.jpg"), None, fx=0.36, fy=0.36, interpolation=cv2.INTER_AREA
    )
    canvas[: group.shape[0], : group.shape[1]] = group
    selfie = cv2.resize(
        hard(shared_data, "multi_face_selfie.jpg"), None, fx=0.34, fy=0.34, interpolation=cv2.INTER_AREA
    )
    canvas[533 - selfie.shape[0] :, 800 - selfie.shape[1] :] = selfie
    return canvas


def missing(baseline: list, faces: list) -> int:
    """Faces of the baseline that have no face of ours on them (IoU > 0.5)."""
    return sum(1 for b in baseline if not any(box_iou(b.box, f.box) > 0.5 for f in faces))


# --- scale by need ----------------------------------------------------------------------------


def test_detection_scale_follows_the_faces_to_find() -> None:
    video = FrameOptions(detect_max_side=640, upsample=1)
    shape = (720, 1280)
    assert detection_scale(video, shape, 0) == 1.0  # nothing seen yet: full resolution
    assert detection_scale(video, shape, 240) == 0.5  # large faces: the 640 px fast path
    assert detection_scale(video, shape, 60) == pytest.approx(100 / 120)  # small ones: in between
    assert detection_scale(video, shape, 30) == 1.0  # never enlarged unless asked
    assert detection_scale(FrameOptions(detect_max_side=640, min_face=25), shape, 240) == 2.0
    assert detection_scale(FrameOptions(detect_max_side=0), shape, 240) == 1.0
    photo = FrameOptions(detect_max_side=640, sequence=False)
    assert detection_scale(photo, (533, 800), 240) == 1.0  # photos: full size whatever max side says
    assert detection_scale(photo, (3000, 4096), 0) == 0.5  # very large ones: 2048 px
    assert detection_scale(FrameOptions(sequence=False, min_face=400), (3000, 4000), 0) == 0.125


@pytest.fixture(scope="module")
def group_records(shared_data: Path):
    names = [
        "multi_face_6_group.jpg",
        "multi_face_selfie.jpg",
        "two_people.jpg",
        "lowres_face_obama_240p.jpg",
    ]
    images = [group_photo(shared_data)] + [hard(shared_data, n) for n in names]
    # The CLI's video fast-path setting must not shrink photos.
    records = detect_images(images, DetectOptions(detect_max_side=640, jobs=1))
    return list(zip(["group_800x533", *names], images, records, strict=True))


def test_photos_yield_every_face_hog_finds_on_the_full_image(group_records) -> None:
    readme_counts = {  # ../shared/README.md: HOG upsample 1 on the full image
        "group_800x533": 10,
        "multi_face_6_group.jpg": 6,
        "multi_face_selfie.jpg": 4,
        "two_people.jpg": 2,
        "lowres_face_obama_240p.jpg": 1,
    }
    for name, image, record in group_records:
        baseline = detect_faces(image, "hog", 1, max_side=0)
        assert len(baseline) == readme_counts[name], name
        assert missing(baseline, record.faces) == 0, f"{name}: ours {len(record.faces)} of {len(baseline)}"
        assert all(f.source == "detected" and f.rotation == 0 for f in record.faces)


def test_the_group_photo_loses_faces_on_the_old_640_px_copy(shared_data: Path) -> None:
    # What the test above guards against: the fixed 640 px copy (the old default) drops faces here.
    image = group_photo(shared_data)
    assert len(detect_faces(image, "hog", 1, max_side=640)) < len(detect_faces(image, "hog", 1, max_side=0))


def test_video_of_small_faces_keeps_full_resolution(shared_data: Path) -> None:
    # A "video" of the group photo: its faces are too small for the 400 px fast path, so every frame
    # is detected at full size and keeps all ten faces.
    frames = [group_photo(shared_data)] * 3
    records = detect_images(frames, DetectOptions(detect_max_side=400, jobs=1), sequence=True)
    assert [len(r.faces) for r in records] == [10, 10, 10]


# --- rotations and profiles ---------------------------------------------------------------------


def test_rotated_90_yields_one_upright_aligned_face(shared_data: Path) -> None:
    image = hard(shared_data, "rotated_90.jpg")
    assert detect_faces(image, "hog", 1) == []  # HOG alone finds nothing
    (record,) = detect_images([image], DetectOptions(jobs=1))
    assert record.status == "ok" and len(record.faces) == 1
    face = record.faces[0]
    assert face.rotation in (90, 270) and face.detector == "hog"
    # Landmarks, box and matrix are in the photo's own (unturned) pixels ...
    h, w = image.shape[:2]
    lm = face.landmarks_array
    assert (
        (lm[:, 0] >= -5).all()
        and (lm[:, 0] < w + 5).all()
        and (lm[:, 1] >= -5).all()
        and (lm[:, 1] < h + 5).all()
    )
    left, top, right, bottom = face.box
    assert left <= lm[17:, 0].mean() <= right and top <= lm[17:, 1].mean() <= bottom
    # ... and the matrix turns the face upright onto the template: the converter pastes it back as is.
    crop_points = transform_points(lm, face.matrix_array)
    assert np.linalg.norm(crop_points[17:] - template_points(64)[17:], axis=1).mean() < 4
    # The eyes lie side by side in the photo (the face is turned 90 degrees there).
    eyes = lm[36:48]
    assert np.ptp(eyes[:, 1]) > 2 * np.ptp(eyes[:, 0])
    # The aligned crop is an upright face HOG itself recognises.
    crop = cv2.warpAffine(image, face.matrix_array * 4, (256, 256))
    assert len(detect_faces(crop, "hog", 1)) == 1


def test_retries_can_be_turned_off(shared_data: Path) -> None:
    (record,) = detect_images([hard(shared_data, "rotated_90.jpg")], DetectOptions(fallback="off", jobs=1))
    assert record.status == "no_face"


def test_profile_found_by_the_cnn_retry(shared_data: Path) -> None:
    (record,) = detect_images([hard(shared_data, "profile_right_full.png")], DetectOptions(jobs=1))
    assert record.status == "ok" and len(record.faces) == 1
    assert record.faces[0].detector == "cnn" and record.faces[0].rotation == 0


def test_no_false_faces_from_the_retries(shared_data: Path) -> None:
    # The turned retries find a dog's face at a low score here; the retry threshold drops it.
    names = ["no_human_face_dogs.jpg", "no_face_landscape.jpg"]
    records = detect_images([hard(shared_data, n) for n in names], DetectOptions(jobs=1))
    assert [r.status for r in records] == ["no_face", "no_face"]
    assert "turned" in records[0].reason


def exif_jpeg(image: np.ndarray, orientation: int) -> bytes:
    """JPEG bytes with an EXIF APP1 segment holding only the orientation tag."""
    data = cv2.imencode(".jpg", image)[1].tobytes()
    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack("<I", 0)
    app1 = b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 8) + ifd
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + data[2:]


def test_exif_orientation_is_honoured_first(shared_data: Path) -> None:
    # A phone photo stored sideways with EXIF orientation 6 ("turn 90 clockwise to view"): decoded
    # upright, so the face is found without a retry, in the coordinates every consumer decodes.
    portrait = cv2.imread(str(shared_data / "faces" / "katy_perry" / "deepface_img26.jpg"))
    stored = cv2.rotate(portrait, cv2.ROTATE_90_COUNTERCLOCKWISE)
    decoded = decode_image(exif_jpeg(stored, 6))
    assert decoded is not None and decoded.shape == portrait.shape
    (record,) = detect_images([decoded], DetectOptions(jobs=1))
    assert len(record.faces) == 1 and record.faces[0].rotation == 0


# --- temporal recovery --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip_window() -> list[np.ndarray]:
    """Frames 58..66 of the clip, decoded as the media service decodes them."""
    from faceswap.media.store import read_frames

    return [frame for _, frame in read_frames(str(CLIP), 58, 67)]


def test_missed_frame_is_recovered_by_tracking(clip_window: list[np.ndarray]) -> None:
    options = DetectOptions(detect_max_side=640, jobs=1)
    without = detect_images(
        clip_window, DetectOptions(detect_max_side=640, recover_frames=0, jobs=1), sequence=True
    )
    assert [r.status for r in without].count("no_face") == 1  # frame 62 on the fast path
    records = detect_images(clip_window, options, sequence=True)
    assert all(len(r.faces) == 1 for r in records)
    sources = [r.faces[0].source for r in records]
    assert sources == ["detected"] * 4 + ["tracked"] + ["detected"] * 4
    recovered = records[MISSED_FRAME - 58].faces[0]
    assert recovered.score == 0.0
    # The tracked landmarks match what full-resolution detection fits on that frame.
    gray = to_gray(clip_window[MISSED_FRAME - 58])
    (full,) = detect_faces(clip_window[MISSED_FRAME - 58], "hog", 1)
    naive = predict_landmarks(gray, full.box)
    assert np.linalg.norm(recovered.landmarks_array - naive, axis=1).mean() < 2.0
    assert box_iou(recovered.box, full.box) > 0.7


def test_unverifiable_gap_is_interpolated_and_long_gaps_stay_empty(clip_window: list[np.ndarray]) -> None:
    grey = np.full_like(clip_window[0], 127)
    frames = [clip_window[0], clip_window[1], grey, clip_window[3], clip_window[5]]
    records = detect_images(frames, DetectOptions(detect_max_side=640, jobs=1), sequence=True)
    assert [r.status for r in records] == ["ok"] * 5
    face = records[2].faces[0]
    assert face.source == "interpolated"  # a fit on a grey frame is not the same face
    halfway = (records[1].faces[0].landmarks_array + records[3].faces[0].landmarks_array) / 2
    assert np.abs(face.landmarks_array - halfway).max() < 1e-2
    # More than recover_frames missing in a row: the face is gone, nothing is invented.
    frames = [clip_window[0], grey, grey, grey, clip_window[5]]
    records = detect_images(
        frames, DetectOptions(detect_max_side=640, recover_frames=2, jobs=1), sequence=True
    )
    assert [r.status for r in records] == ["ok", "no_face", "no_face", "no_face", "ok"]
    # The end of the video: one neighbour only, and the fit does not verify.
    records = detect_images([clip_window[0], grey], DetectOptions(jobs=1), sequence=True)
    assert [r.status for r in records] == ["ok", "no_face"]
    # Photos are never filled from each other.
    records = detect_images(frames[:3], DetectOptions(jobs=1))
    assert [r.status for r in records] == ["ok", "no_face", "no_face"]


def test_alignments_fields_round_trip_and_old_files_load() -> None:
    from faceswap.face.alignments import FaceRecord, FrameRecord

    face = FaceRecord(
        [0, 0, 9, 9], 0.0, [[0.0, 0.0]] * 68, [[1, 0, 0], [0, 1, 0]], source="tracked", rotation=90
    )
    data = Alignments(frames=[FrameRecord(0, "k", faces=[face])]).to_dict()
    again = Alignments.loads(json.dumps(data)).frames[0].faces[0]
    assert (again.source, again.rotation) == ("tracked", 90)
    for key in ("source", "rotation", "detector"):
        del data["frames"][0]["faces"][0][key]  # a file written before these fields
    old = Alignments.loads(json.dumps(data)).frames[0].faces[0]
    assert (old.source, old.rotation) == ("detected", 0)


def test_service_defaults_recover_and_retry() -> None:
    from faceswap.options.detect import DetectOptions
    from services.common.pb.faceswap.v1 import detector_pb2

    defaults = DetectOptions.from_proto(detector_pb2.DetectOptions())
    assert (defaults.recover_frames, defaults.fallback, defaults.min_face) == (5, "auto", 0)
    off = DetectOptions.from_proto(detector_pb2.DetectOptions(recover_frames=-1, fallback="off", min_face=30))
    assert (off.recover_frames, off.fallback, off.min_face) == (0, "off", 30)
    # recover_frames and upsample have explicit presence: 0 is 0, as -1 was before
    zero = DetectOptions.from_proto(detector_pb2.DetectOptions(recover_frames=0, upsample=0))
    assert (zero.recover_frames, zero.upsample) == (0, 0)
    assert DetectOptions.from_proto(detector_pb2.DetectOptions()).upsample == 1


@pytest.mark.slow
def test_cli_extract_whole_clip_has_a_face_in_every_frame(tmp_path: Path) -> None:
    from services.cli import main as cli_main

    out = tmp_path / "faces"
    assert cli_main(["extract", "-i", str(CLIP), "-o", str(out), "--no-progress"]) == 0
    frames = json.loads((out / "alignments.json").read_text())["frames"]
    assert len(frames) == 282
    assert all(len(f["faces"]) == 1 for f in frames)
    assert frames[MISSED_FRAME]["faces"][0]["source"] in ("tracked", "interpolated")
