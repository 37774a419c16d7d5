"""The appearance methods: B's real faces chosen, placed, relit and blended onto A's real frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from converter_helpers import ROOT, SWAP_FRAMES, detect_alignments, put_frames, read_clip

from faceswap.composite import appearance as ap
from faceswap.composite.blend import alpha_blend
from faceswap.composite.face_bank import FaceBank, bank_from_alignments, build_bank
from faceswap.errors import InvalidArgument
from faceswap.face.geometry import MEAN_FACE_68
from faceswap.options.convert import ConvertOptions
from faceswap.storage import LocalStore
from services.converter.swap import convert_frames

CLIP_B = ROOT / "samples" / "liveportrait_d10.mp4"
WARM_START = ROOT / "faceswap" / "model" / "warmstart" / "demo.pt"


def _face(mouth_open: float = 0.0, eye_open: float = 1.0, x: float = 0.0) -> np.ndarray:
    """A synthetic 68-point face (mean face, 200 px wide) with a given mouth/eye opening."""
    lm = MEAN_FACE_68 * 200 + (100 + x, 100)
    lm[[65, 66, 67, 56, 57, 58]] += (0, mouth_open * 50)  # lower lips down
    lm[[37, 38, 43, 44]] -= (0, (eye_open - 1.0) * 5)
    return lm


def test_still_face_keeps_one_face_of_b() -> None:
    faces = np.stack([_face(m) for m in np.linspace(0, 0.6, 30)])
    index = ap.FaceIndex.build([str(i) for i in range(30)], np.arange(30) * 3, faces)  # no runs
    queries = ap.normalise(ap.describe(np.stack([_face(0.2)] * 40)), np.median(ap.describe(faces), 0))
    path = ap.choose_sequence(queries, index)
    assert len(set(path.tolist())) == 1


def test_expression_change_switches_once_with_crossfade() -> None:
    faces = np.stack([_face(m) for m in np.linspace(0, 0.6, 30)])
    index = ap.FaceIndex.build([str(i) for i in range(30)], np.arange(30) * 3, faces)
    seq = [_face(0.0)] * 20 + [_face(0.6)] * 20
    centre = np.median(ap.describe(faces), 0)
    path = ap.choose_sequence(ap.normalise(ap.describe(np.stack(seq)), centre), index)
    assert int((np.diff(path) != 0).sum()) == 1
    first, last = ap.describe(faces[[path[0], path[-1]]])[:, 2]
    assert first + 0.2 < last  # closed mouth first, open after the change
    weights = ap.crossfade_weights(path, frames=4)
    switch = int(np.nonzero(np.diff(path))[0][0]) + 1
    assert len(weights[switch]) == 2 and len(weights[switch + 5]) == 1  # faded in, then alone
    assert sum(w for _, w in weights[switch]) == pytest.approx(1.0)


def test_b_footage_playing_on_is_free() -> None:
    """Moving to B's next frame costs nothing: a talking A follows B's own consecutive frames."""
    faces = np.stack([_face(m) for m in np.linspace(0, 0.6, 20)])
    index = ap.FaceIndex.build([str(i) for i in range(20)], np.arange(20), faces)
    centre = np.median(ap.describe(faces), 0)
    path = ap.choose_sequence(ap.normalise(ap.describe(faces), centre), index, switch_cost=50.0)
    assert path.tolist() == list(range(20))


def test_expression_targets_take_a_opening_keep_b_shape() -> None:
    b = _face(0.0)
    a = _face(0.4) * 1.3  # a bigger face, mouth open
    target = ap.expression_targets(b, a)
    open_t = ap.expression_series(target[None])["mouth_open"][0]
    open_a = ap.expression_series(a[None])["mouth_open"][0]
    assert open_t == pytest.approx(open_a, rel=0.25)
    assert np.allclose(target[27:36], b[27:36])  # B's nose, eyes corners and jaw untouched
    assert np.allclose(target[0:17], b[0:17])


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A's first frames and B's face bank from a few of B's real frames, in one store."""
    if not CLIP_B.is_file():
        pytest.skip("sample clips missing")
    root = tmp_path_factory.mktemp("pair")
    store = LocalStore(root, "t")
    a = read_clip(ROOT / "samples" / "liveportrait_s18.mp4", SWAP_FRAMES)
    b = read_clip(CLIP_B, 120)[::6]  # 20 frames spread over 4 s of B
    keys_b = put_frames(store, "b_frames", b)
    align_b = detect_alignments(b)
    for rec, key in zip(align_b.frames, keys_b, strict=True):
        rec.key = key
    store.put_bytes("faces_b/alignments.json", align_b.dumps())
    put_frames(store, "frames", a)
    align_a = detect_alignments(a)
    store.put_bytes("alignments.json", align_a.dumps())
    return {"store": store, "a": a, "align_a": align_a, "b": b}


def _face_box(lm: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(lm).astype(np.int32)), 255)
    return cv2.erode(mask, np.ones((9, 9), np.uint8)) > 0


def _check_real_swap(pair: dict, out_prefix: str) -> None:
    """Every frame swapped; inside A's face: changed, as sharp as the source, in A's light."""
    store = pair["store"]
    for i, src in enumerate(pair["a"]):
        out = cv2.imdecode(np.frombuffer(store.get_bytes(f"{out_prefix}/{i:08d}.png"), np.uint8), 1)
        inside = _face_box(pair["align_a"].frames[i].faces[0].landmarks_array, src.shape)
        assert np.abs(out.astype(int) - src.astype(int))[inside].mean() > 8, "face not replaced"
        lap_out = cv2.Laplacian(cv2.cvtColor(out, cv2.COLOR_BGR2GRAY), cv2.CV_64F)[inside].var()
        lap_src = cv2.Laplacian(cv2.cvtColor(src, cv2.COLOR_BGR2GRAY), cv2.CV_64F)[inside].var()
        assert lap_out >= 0.8 * lap_src, (lap_out, lap_src)
        l_out = cv2.cvtColor(out, cv2.COLOR_BGR2LAB)[..., 0][inside].mean() * 100 / 255
        l_src = cv2.cvtColor(src, cv2.COLOR_BGR2LAB)[..., 0][inside].mean() * 100 / 255
        assert abs(l_out - l_src) <= 3.0, (l_out, l_src)
        outside = ~cv2.dilate(inside.astype(np.uint8), np.ones((201, 201), np.uint8)).astype(bool)
        assert np.array_equal(out[outside], src[outside])  # nothing far from the face changes


def test_retrieval_swaps_real_frames_sharp_in_a_light(pair: dict) -> None:
    store = pair["store"]
    summary = convert_frames(
        store, "frames", "alignments.json", "", "out_r", ConvertOptions(method="retrieval"),
        faces_b="faces_b/alignments.json",
    )  # fmt: skip
    assert summary.frames_converted == SWAP_FRAMES and not summary.frame_errors
    _check_real_swap(pair, "out_r")
    # The bank was cached beside B's alignments and reads back the same.
    cached = [k for k in store.list("faces_b") if k.endswith("faces_bank.npz")]
    assert len(cached) == 1
    bank = FaceBank.loads(store.get_bytes(cached[0]))
    assert len(bank) == 20 and bank.image(0).ndim == 3


def test_hybrid_with_a_trained_model(pair: dict) -> None:
    if not WARM_START.is_file():
        pytest.skip("warm start missing")
    store = pair["store"]
    model = LocalStore(WARM_START.parent, "")
    summary = convert_frames(
        store, "frames", "alignments.json", "demo.pt", "out_h", ConvertOptions(method="hybrid"),
        faces_b="faces_b/alignments.json", model_store=model,
    )  # fmt: skip
    assert summary.frames_converted == SWAP_FRAMES and not summary.frame_errors
    _check_real_swap(pair, "out_h")


def test_real_face_methods_need_faces_b(pair: dict) -> None:
    with pytest.raises(InvalidArgument) as err:
        convert_frames(pair["store"], "frames", "alignments.json", "", "out_x", ConvertOptions())
    assert err.value.field == "faces_b"


def test_bank_from_frames_without_faces_is_refused(tmp_path: Path) -> None:
    from faceswap.errors import FailedPrecondition

    with pytest.raises(FailedPrecondition):
        build_bank([(0, "x", np.zeros((64, 64, 3), np.uint8), [])])
    store = LocalStore(tmp_path, "t")
    with pytest.raises(Exception) as err:
        bank_from_alignments(store, "nope/alignments.json")
    assert "run the detector on B" in str(err.value)


def test_blurred_faces_of_b_are_avoided() -> None:
    """Two faces of B with the same expression: the motion-blurred one is not chosen."""
    faces = np.stack([_face(0.2), _face(0.2), _face(0.5)])
    index = ap.FaceIndex.build(["blur", "sharp", "open"], np.array([0, 10, 20]), faces, [10.0, 100.0, 100.0])
    centre = np.median(ap.describe(faces), 0)
    path = ap.choose_sequence(ap.normalise(ap.describe(np.stack([_face(0.2)] * 5)), centre), index)
    assert set(path.tolist()) == {1}
    assert ap.blur_penalty([10.0, 100.0, 100.0])[0] > 0 == ap.blur_penalty([10.0, 100.0, 100.0])[1]


def test_alpha_blend_leaves_pixels_outside_the_mask_untouched() -> None:
    rng = np.random.default_rng(0)
    roi = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    face = rng.uniform(0, 255, (20, 30, 3)).astype(np.float32)
    alpha = np.zeros((20, 30), np.float32)
    alpha[5:15, 10:20] = 0.5
    out = alpha_blend(face, roi, alpha)
    outside = alpha == 0
    assert np.array_equal(out[outside], roi[outside])
    expected = np.clip(np.rint(roi[~outside] * 0.5 + face[~outside] * 0.5), 0, 255)
    assert np.abs(out[~outside].astype(int) - expected).max() <= 1


# -- what the compose takes for skin, and how it relights B (synthetic faces, exact places) -------
SKIN_BGR = np.array([150.0, 170.0, 220.0])  # a lit cheek, L* ~73
HAIR_BGR = np.array([30.0, 40.0, 55.0])  # dark brown hair, L* ~17


def _side_lit(lm: np.ndarray, size: int = 400) -> np.ndarray:
    """A skin-coloured frame lit from the right: the left cheek at 55 % of the right's light."""
    light = np.linspace(0.55, 1.0, size)[None, :, None]
    return np.broadcast_to(SKIN_BGR * light, (size, size, 3)).astype(np.float32).copy()


def _temple_strip(lm: np.ndarray) -> tuple[slice, slice]:
    """A vertical band by the left temple, inside the face's outline and clear of brow and eye."""
    x = int(lm[0, 0]) + 6
    return slice(int(lm[17, 1]) - 10, int(lm[1, 1])), slice(x, x + 14)


def _lab(image: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(np.clip(image, 0, 255).astype(np.uint8), cv2.COLOR_BGR2LAB).astype(np.float64)
    return lab * (100 / 255, 1, 1) - (0, 128, 128)


def test_hair_by_a_side_lit_face_is_not_skin() -> None:
    """A side-lit face's cheeks spread so wide in lightness that dark hair passed the old test
    at a weight of ~0.3 (a ghost of B's strands on A's temple); its shaded cheek must still pass."""
    lm = _face()
    image = _side_lit(lm)
    ys, xs = _temple_strip(lm)
    image[ys, xs] = HAIR_BGR
    assert not ap.feature_mask(lm, image.shape[:2])[ys, xs].any()  # the test looks at the hair
    weight = ap.skin_weight(image, lm, np.ones(image.shape[:2], np.float32))
    assert weight[ys, xs.start + 2 : xs.stop - 2].max() < 0.05  # the hair, to its edges
    # The soft edge ends on skin, not on the hair (a dark fringe otherwise).
    assert weight[ys, xs.start : xs.start + 1].max() < 0.2
    shaded_cheek = weight[int(lm[30, 1]), int(lm[2, 0]) + 25 : int(lm[31, 0]) - 10]
    assert shaded_cheek.min() > 0.8


def test_a_thick_brow_above_its_landmarks_is_kept() -> None:
    """dlib's brow points run along a thick brow's lower half: the hull reaches above them."""
    lm = _face()
    iod = float(ap.interocular(lm))
    mask = ap.feature_mask(lm, (400, 400))
    for i in (19, 24):  # each brow's middle point, 8 % of the eye distance higher
        x, y = lm[i]
        assert mask[int(y - 0.08 * iod), int(x)] > 0


def _composed(a: np.ndarray, b: np.ndarray, lm: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple]:
    box = ap.roi_box(lm, a.shape[1], a.shape[0])
    x0, y0, x1, y1 = box
    one = [(0, 1.0)]
    sources = {"face": one, "mouth": one, "eyes": one}
    out = ap.compose(_u8(a)[y0:y1, x0:x1], lm, box, sources, [_u8(b)], lm[None])
    return out.face, out.alpha, box


def _u8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def test_b_hair_does_not_brighten_the_skin_beside_it() -> None:
    """Light is taken from skin only: B's hair by the cheek, counted as B's light, made A's light
    brighten B's skin next to it (a pale band along the mask's edge)."""
    lm = _face()
    # A lit from above (its brightest skin, where the highlight shoulder sits, is well above the
    # cheeks measured), B evenly.
    a = (SKIN_BGR * np.linspace(1.0, 0.6, 400)[:, None, None] * np.ones((1, 400, 1))).astype(np.float32)
    b = np.broadcast_to(SKIN_BGR * 0.8, (400, 400, 3)).astype(np.float32).copy()
    ys, xs = _temple_strip(lm)
    edge = xs.stop + 16
    b[ys.start :, :edge] = HAIR_BGR  # B's hair hangs down the left side of the face
    face, alpha, (x0, y0, _, _) = _composed(a, b, lm)
    light = _lab(face)[..., 0]
    row = int(lm[29, 1]) - y0
    beside = light[row, edge - x0 + 8 : edge - x0 + 20]  # B's skin just right of the hair
    far = light[row, int(lm[14, 0]) - x0 - 40 : int(lm[14, 0]) - x0 - 28]  # B's other cheek
    assert alpha[row, edge - x0 + 8 : edge - x0 + 20].min() > 0.5  # that skin is shown
    assert abs(beside.mean() - far.mean()) < 1.5, (beside.mean(), far.mean())


def test_a_dark_patch_of_b_takes_a_smaller_colour_shift() -> None:
    """Colour under light scales with the light: B's dark under-eye in A's warmer light stays a
    darker B, not an olive smudge (the old additive shift gave it the lit cheek's whole b* shift)."""
    lm = _face()
    a = np.broadcast_to(np.array([90.0, 160.0, 215.0]), (400, 400, 3)).astype(np.float32).copy()  # warm
    b = np.broadcast_to(np.array([175.0, 165.0, 200.0]), (400, 400, 3)).astype(np.float32).copy()  # cool
    cx, cy = np.round(lm[[40, 41]].mean(0) + np.array([0.0, 14.0])).astype(int)  # under the left eye
    b[cy - 4 : cy + 5, cx - 8 : cx + 9] *= 0.45  # B's dark ring there
    face, _alpha, (x0, y0, _, _) = _composed(a, b, lm)
    out, src = _lab(face), _lab(_u8(b)[y0:, x0:][: face.shape[0], : face.shape[1]])
    py, px = cy - y0, cx - x0
    cheek = (int(lm[30, 1]) - y0, int(lm[13, 0]) - x0 - 35)
    shift_patch = out[py, px, 2] - src[py, px, 2]
    shift_cheek = out[cheek][2] - src[cheek][2]
    assert shift_cheek > 8  # A's light is warmer: B's lit cheek takes it
    assert shift_patch < 0.75 * shift_cheek, (shift_patch, shift_cheek)
    assert out[py, px, 0] < out[cheek][0] - 15  # and the ring stays darker than the cheek


def test_b_brows_keep_their_hue_when_the_skins_differ() -> None:
    """A's colour shift is mostly the two skins' tones, not the light's: B's brown brows took the
    whole of it and came out lilac grey on a paler, pinker A. Skin takes it; B's features do not."""
    lm = _face()
    a = np.broadcast_to(np.array([190.0, 195.0, 235.0]), (400, 400, 3)).astype(np.float32).copy()  # pale pink
    b = np.broadcast_to(np.array([120.0, 160.0, 205.0]), (400, 400, 3)).astype(np.float32).copy()  # tan
    brow = np.zeros((400, 400), np.uint8)
    cv2.polylines(brow, [np.round(lm[17:22]).astype(np.int32)], False, 255, 7)
    b[brow > 0] = (50.0, 75.0, 125.0)  # a warm brown brow
    face, _alpha, (x0, y0, _, _) = _composed(a, b, lm)
    out, src = _lab(face), _lab(_u8(b)[y0:, x0:][: face.shape[0], : face.shape[1]])
    bx, by = np.round(lm[19]).astype(int) - (x0, y0)
    cheek = (int(lm[30, 1]) - y0, int(lm[13, 0]) - x0 - 35)
    shift_cheek = out[cheek][1:] - src[cheek][1:]
    shift_brow = out[by, bx, 1:] - src[by, bx, 1:]
    assert np.linalg.norm(shift_cheek) > 10  # the skin takes A's tone
    assert np.linalg.norm(shift_brow) < 0.2 * np.linalg.norm(shift_cheek), (shift_brow, shift_cheek)


def test_a_thick_brow_of_b_is_shown_to_its_top() -> None:
    """B's thick brow reaches ~0.2 eye distances above dlib's points (they run along its lower
    half): its top half failed the skin test, so A's forehead showed there and B's brows came out
    thin and faint (the demo's first look)."""
    lm = _face()
    iod = float(ap.interocular(lm))
    a = np.broadcast_to(np.array([190.0, 195.0, 235.0]), (400, 400, 3)).astype(np.float32).copy()
    b = np.broadcast_to(np.array([120.0, 160.0, 205.0]), (400, 400, 3)).astype(np.float32).copy()
    for brow in (lm[17:22], lm[22:27]):
        top = brow - (0, 0.2 * iod)
        cv2.fillPoly(b, [np.round(np.vstack([brow, top[::-1]])).astype(np.int32)], (50.0, 75.0, 125.0))
    _face_img, alpha, (x0, y0, _, _) = _composed(a, b, lm)
    for i in (19, 24):
        x, y = np.round(lm[i] - (x0, y0 + 0.16 * iod)).astype(int)
        assert alpha[y, x] > 0.8, (i, alpha[y, x])


def _skins() -> tuple[np.ndarray, np.ndarray]:
    a = np.broadcast_to(np.array([190.0, 195.0, 235.0]), (400, 400, 3)).astype(np.float32).copy()
    b = np.broadcast_to(np.array([120.0, 160.0, 205.0]), (400, 400, 3)).astype(np.float32).copy()
    return a, b


def _thick_brows(b: np.ndarray, lm: np.ndarray, height: float) -> None:
    for brow in (lm[17:22], lm[22:27]):
        top = brow - (0, height)
        cv2.fillPoly(b, [np.round(np.vstack([brow, top[::-1]])).astype(np.int32)], (50.0, 75.0, 125.0))


def test_the_eyes_of_another_face_of_b_bring_their_own_brow_to_its_top() -> None:
    """The eyes (and brows) may come from another face of B than the rest: the eyes layer covered
    the brow only near dlib's points, so the face layer's thick brow showed above it, a second brow."""
    lm = _face()
    iod = float(ap.interocular(lm))
    a, b_face = _skins()
    b_eyes = b_face.copy()
    _thick_brows(b_face, lm, 0.2 * iod)  # the face layer's brow: thick
    _thick_brows(b_eyes, lm, 0.05 * iod)  # the eyes layer's: thin
    box = ap.roi_box(lm, 400, 400)
    x0, y0, x1, y1 = box
    sources = {"face": [(0, 1.0)], "mouth": [(0, 1.0)], "eyes": [(1, 1.0)]}
    out = ap.compose(_u8(a)[y0:y1, x0:x1], lm, box, sources, [_u8(b_face), _u8(b_eyes)], np.stack([lm, lm]))
    lab = _lab(out.face)
    for i in (19, 24):
        x, y = np.round(lm[i] - (x0, y0 + 0.15 * iod)).astype(int)
        x_skin, y_skin = np.round(lm[i] - (x0, y0 + 0.4 * iod)).astype(int)
        assert lab[y, x, 0] > lab[y_skin, x_skin, 0] - 8, (i, lab[y, x, 0], lab[y_skin, x_skin, 0])
