"""Constants shared by the live tests (importable as ``live_helpers``: pytest puts this folder on sys.path)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
CLIP_A = SAMPLES / "liveportrait_s18.mp4"
CLIP_B = SAMPLES / "liveportrait_d10.mp4"
FACES_B = 12  # faces of B in the test bank (a few seconds of detection, cached per process)


def face_identity(image_bgr, analyzer=None):
    """(landmarks, 128-D embedding) of the largest face dlib finds in ``image_bgr``, or None."""
    from faceswap.evaluate.faces import FaceAnalyzer

    analyzer = analyzer or FaceAnalyzer.shared()
    faces = analyzer.detect(image_bgr)
    return analyzer.analyse(image_bgr, faces[0].box) if faces else None


def assert_reads_as_b(swapped_bgr, source_bgr, b_embeddings) -> None:
    """The swapped face is B to dlib: nearer B's faces than the face it replaced, and within dlib's
    same-person distance of them. A count of changed pixels passed a blurred or bleached face and
    failed a good swap of a similar-looking pair; identity is what the swap is for."""
    from faceswap.evaluate.metrics import SAME_PERSON_DISTANCE, embedding_distances

    out, src = face_identity(swapped_bgr), face_identity(source_bgr)
    assert out is not None and src is not None, "no face found in the swapped frame or its source"
    to_b = float(embedding_distances(out[1], b_embeddings).mean())
    to_source = float(embedding_distances(out[1], src[1][None, :])[0])
    assert to_b < SAME_PERSON_DISTANCE and to_b < to_source, f"to B {to_b:.3f}, to the source {to_source:.3f}"
