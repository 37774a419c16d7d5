"""Constants shared by the live tests (importable as ``live_helpers``: pytest puts this folder on sys.path)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
CLIP_A = SAMPLES / "liveportrait_s18.mp4"
CLIP_B = SAMPLES / "liveportrait_d10.mp4"
FACES_B = 12  # faces of B in the test bank (a few seconds of detection, cached per process)


def face_embedding_of(image_bgr):
    """dlib's 128-D embedding of the largest face in ``image_bgr`` (as the live bench finds it), or None."""
    from faceswap.face.identity import face_embedding
    from services.live.bank import largest_face

    lm = largest_face(image_bgr)
    return None if lm is None else face_embedding(image_bgr, lm)


def assert_reads_as_b(swapped_bgr, source_bgr, b_embeddings) -> None:
    """The swapped face is B to dlib: nearer B's faces than the face it replaced, and within dlib's
    same-person distance of them. A count of changed pixels passed a blurred or bleached face and
    failed a good swap of a similar-looking pair; identity is what the swap is for."""
    from faceswap.evaluate.metrics import SAME_PERSON_DISTANCE, mean_distance

    out, src = face_embedding_of(swapped_bgr), face_embedding_of(source_bgr)
    assert out is not None and src is not None, "no face found in the swapped frame or its source"
    to_b, to_source = mean_distance(out, b_embeddings), mean_distance(out, src[None, :])
    assert to_b < SAME_PERSON_DISTANCE and to_b < to_source, f"to B {to_b:.3f}, to the source {to_source:.3f}"
