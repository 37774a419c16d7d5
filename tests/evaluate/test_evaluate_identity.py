"""Identity and the pure metrics on real photos and synthetic landmarks (no videos here)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceswap.errors import InvalidArgument, NotFound
from faceswap.evaluate import metrics as m
from faceswap.evaluate.core import BSet, build_b_set
from faceswap.evaluate.faces import FaceAnalyzer
from faceswap.evaluate.loss_log import load_loss_log


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer.shared()


PEOPLE = ("angelina_jolie", "katy_perry")


def _photos(shared_data: Path, person: str) -> list[Path]:
    return sorted((shared_data / "faces" / person).glob("*.jpg"))


@pytest.fixture(scope="module")
def photo_sets(shared_data: Path, analyzer: FaceAnalyzer) -> dict[str, BSet]:
    """Every photo's embedding, per person, in file-name order."""
    return {p: build_b_set(analyzer, _photos(shared_data, p), max_faces=20) for p in PEOPLE}


def test_photo_is_closer_to_its_own_person_than_to_another(photo_sets: dict[str, BSet]) -> None:
    sets = photo_sets
    for person, other in (PEOPLE, PEOPLE[::-1]):
        embeddings = sets[person].embeddings
        assert len(embeddings) >= 7, sets[person].skipped
        for i, embedding in enumerate(embeddings):
            same = m.mean_distance(embedding, np.delete(embeddings, i, 0))
            different = m.mean_distance(embedding, sets[other].embeddings)
            assert same < different, (person, sets[person].sources[i], same, different)
        # And on average by a wide margin: same person well under dlib's 0.6, another person over it.
        assert sets[person].spread < 0.6
        cross = np.mean([m.mean_distance(e, sets[other].embeddings) for e in embeddings])
        assert cross > 0.6 > sets[person].spread


def test_small_face_crops_work_as_a_b_set(
    shared_data: Path, analyzer: FaceAnalyzer, photo_sets: dict[str, BSet], tmp_path: Path
) -> None:
    """The detector's face sets are 64-px aligned crops: they must still give a usable B set."""
    for person in PEOPLE:
        (tmp_path / person).mkdir()
        for photo in _photos(shared_data, person)[:4]:
            image = cv2.imread(str(photo))
            left, top, right, bottom = analyzer.detect(image)[0].box
            pad = (right - left) // 5
            crop = image[max(0, top - pad) : bottom + pad, max(0, left - pad) : right + pad]
            cv2.imwrite(str(tmp_path / person / f"{photo.stem}.png"), cv2.resize(crop, (64, 64)))
    crops = {p: build_b_set(analyzer, tmp_path / p) for p in PEOPLE}
    assert all(len(c.sources) == 4 for c in crops.values())
    # The photos not cropped: near their own person's crops, far from the other's.
    for name, embedding in zip(
        photo_sets[PEOPLE[0]].sources[4:], photo_sets[PEOPLE[0]].embeddings[4:], strict=True
    ):
        own = m.mean_distance(embedding, crops[PEOPLE[0]].embeddings)
        other = m.mean_distance(embedding, crops[PEOPLE[1]].embeddings)
        assert own < 0.6 < other, (name, own, other)


def test_reads_as_b_needs_threshold_and_closer_than_source() -> None:
    assert m.reads_as_b(0.45, 0.7, 0.8)
    assert not m.reads_as_b(0.65, 0.9, 0.8)  # far from A but not B: a blurred face
    assert not m.reads_as_b(0.5, 0.4, 0.8)  # still closer to the face it replaced
    assert m.reads_as_b(0.3, 0.0, 0.3)  # the source itself is B (self-check): threshold only


def test_b_set_input_errors(tmp_path: Path, analyzer: FaceAnalyzer, shared_data: Path) -> None:
    with pytest.raises(NotFound):
        build_b_set(analyzer, tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidArgument) as err:
        build_b_set(analyzer, tmp_path / "empty")
    assert err.value.field == "faces_b"
    with pytest.raises(InvalidArgument) as err:
        build_b_set(analyzer, [shared_data / "hard_cases" / "no_face_landscape.jpg"])
    assert err.value.field == "faces_b"


def test_landmark_error_and_jitter_on_synthetic_tracks() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(100, 200, size=(68, 2))
    base[36:42] = [100, 100]
    base[42:48] = [150, 100]  # inter-ocular distance 50
    assert m.inter_ocular(base) == pytest.approx(50)
    assert m.landmark_error(base, base) == 0
    assert m.landmark_error(base, base + np.array([3.0, 4.0])) == pytest.approx(10.0)  # 5 px / 50 px
    # Steady motion has no second difference; shake does.
    steady = [base + np.array([t * 2.0, 0.0]) for t in range(10)]
    shaken = [p + rng.normal(0, 2, size=2) for p in steady]
    scales = [50.0] * 10
    assert m.rms_percent(m.second_difference_energy(steady, scales)) == pytest.approx(0, abs=1e-9)
    assert m.rms_percent(m.second_difference_energy(shaken, scales)) > 3
    gaps = m.second_difference_energy([base, None, base, base, base], [50.0] * 5)
    assert math.isnan(gaps[1]) and math.isnan(gaps[2]) and gaps[3] == 0


def test_border_measure_sees_a_seam() -> None:
    image = np.full((200, 200, 3), 120, np.uint8)
    points = np.array([[100 + 60 * math.cos(a), 100 + 60 * math.sin(a)] for a in np.linspace(0, 6.2, 68)])
    points[36:42] = [80, 90]
    points[42:48] = [120, 90]
    geometry = m.border_geometry(points, image.shape)
    assert geometry is not None
    flat = m.measure_border(image, geometry)
    seamed = image.copy()
    mask = np.zeros((200, 200), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(points.astype(np.int32)), 1)
    seamed[mask > 0] = (90, 140, 170)  # a pasted face of another colour
    seam = m.measure_border(seamed, geometry)
    assert max(flat.gradient) == 0 and flat.delta_e == pytest.approx(0, abs=1e-3)
    assert max(seam.gradient) > 20 and seam.delta_e > 10


def test_seam_on_a_real_face_fails_and_a_feathered_blend_passes(
    shared_data: Path, analyzer: FaceAnalyzer
) -> None:
    image = cv2.imread(str(shared_data / "faces" / "angelina_jolie" / "deepface_img11.jpg"))
    points, _ = analyzer.analyse(image, analyzer.detect(image)[0].box)
    geometry = m.border_geometry(points, image.shape)
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(points.astype(np.int32)), 255)
    recoloured = cv2.add(image, np.full_like(image, (0, 45, 80)))  # a face of another skin tone
    hard = np.where(mask[..., None] > 0, recoloured, image)
    alpha = cv2.GaussianBlur(cv2.erode(mask, np.ones((9, 9), np.uint8)), (41, 41), 0)[..., None] / 255.0
    soft = (recoloured * alpha + image * (1 - alpha)).astype(np.uint8)
    source = m.measure_border(image, geometry)

    def jump(img: np.ndarray) -> float:
        return max(
            o / s for o, s in zip(m.measure_border(img, geometry).gradient, source.gradient, strict=True)
        )

    assert jump(hard) > 1.2 >= jump(soft)


def test_iou_matching() -> None:
    assert m.iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1
    assert m.best_match((0, 0, 10, 10), [(50, 50, 60, 60), (1, 1, 11, 11)]) == 1
    assert m.best_match((0, 0, 10, 10), [(50, 50, 60, 60)]) == -1


def test_loss_log_formats(tmp_path: Path) -> None:
    records = [{"step": s, "loss_a": 1 / s, "loss_b": 2 / s, "time": s * 0.1} for s in range(1, 6)]
    (tmp_path / "log.json").write_text(json.dumps({"history": records}))
    (tmp_path / "log.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    (tmp_path / "log.csv").write_text(
        "step,loss_a,loss_b\n" + "\n".join(f"{s},{1 / s},{2 / s}" for s in range(1, 6))
    )
    for name in ("log.json", "log.jsonl", "log.csv"):
        series = load_loss_log(tmp_path / name)
        assert set(series) == {"loss_a", "loss_b"}, name
        assert series["loss_a"][0] == (1.0, 1.0) and series["loss_b"][-1] == (5.0, 0.4)
    nested = [{"step": 10, "losses": {"a": 0.2, "b": 0.3}}, {"step": 20, "losses": {"a": 0.1, "b": 0.2}}]
    (tmp_path / "nested.json").write_text(json.dumps(nested))
    assert load_loss_log(tmp_path / "nested.json")["losses.b"] == [(10.0, 0.3), (20.0, 0.2)]
    (tmp_path / "lists.json").write_text(json.dumps({"loss": [0.5, 0.4, 0.3]}))
    assert load_loss_log(tmp_path / "lists.json") == {"loss": [(0.0, 0.5), (1.0, 0.4), (2.0, 0.3)]}
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InvalidArgument):
        load_loss_log(tmp_path / "bad.json")
    with pytest.raises(NotFound):
        load_loss_log(tmp_path / "nope.csv")
