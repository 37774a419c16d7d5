"""Temporal recovery: video frames where the detector missed a face that its neighbours have.

Runs in the parent process over the results of ``run_frames``, in frame order, so it sees across
the chunks the workers got. A run of at most ``recover_frames`` consecutive ``no_face`` frames
between two frames with faces is held back and filled, face by face (each face of the frame before
that has a match, by position and size, in the frame after):

1. **tracked**: the 68-point predictor is fitted in the box carried from the previous frame's
   landmarks (refitted on its own box so it follows the motion, see ``fit_in_carried_box``), and
   kept only if it is the same face: 128-D identity embedding within ``TRACK_MAX_IDENTITY`` of the
   neighbour's face, and landmarks within ``TRACK_MAX_DEVIATION`` inter-ocular distances of the
   interpolation between the neighbours (a fit that slid onto the background fails both);
2. **interpolated**: otherwise the landmarks and box are interpolated linearly between the two
   neighbours' faces.

At the very start or end of a video only one neighbour exists: there only a verified fit is kept.
Longer runs (the person left, a scene cut), runs next to an unreadable or filtered frame, and
faces whose two neighbours are not the same person (embedding distance > 0.6: a cut between two
people framed alike) stay ``no_face``. Recovered faces get ``score`` 0 and their ``source``; the identity and blur filters
apply to them as to detected faces.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from faceswap.face import events
from faceswap.face.alignments import FaceRecord
from faceswap.face.detect import box_relation, fit_in_carried_box, to_gray
from faceswap.face.frame_worker import (
    FrameOptions,
    FrameResult,
    Source,
    _round_points,
    read_source,
    sharpness,
)
from faceswap.face.geometry import LEFT_EYE, RIGHT_EYE, align_face
from faceswap.face.identity import face_embedding, nearest_distance

# Same person as the neighbour's face: dlib's same-person distances are < 0.6; adjacent frames of
# one face measure ~0.1-0.3 here, a fit on the background or on someone else far more.
TRACK_MAX_IDENTITY = 0.5
# Mean landmark distance from the neighbours' interpolation (or, at the ends of a video, from the
# carried landmarks), in inter-ocular distances.
TRACK_MAX_DEVIATION = 0.25
# The faces before and after a run must be one person (dlib's operating point) to be bridged.
SAME_FACE_IDENTITY = 0.6


def inter_ocular(landmarks: np.ndarray) -> float:
    return float(np.linalg.norm(landmarks[LEFT_EYE].mean(axis=0) - landmarks[RIGHT_EYE].mean(axis=0)))


def match_faces(before: list[FaceRecord], after: list[FaceRecord]) -> list[tuple[FaceRecord, FaceRecord]]:
    """Pairs of one face in two frames a few frames apart: centres within half a box width, widths
    within 1.5x; greedy by distance."""
    candidates = []
    for i, f in enumerate(before):
        for j, g in enumerate(after):
            if f.rotation or g.rotation:
                continue
            wf, wg = f.box[2] - f.box[0], g.box[2] - g.box[0]
            if wf <= 0 or wg <= 0 or max(wf, wg) > 1.5 * min(wf, wg):
                continue
            cf = np.array([(f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2])
            cg = np.array([(g.box[0] + g.box[2]) / 2, (g.box[1] + g.box[3]) / 2])
            d = float(np.linalg.norm(cf - cg))
            if d < 0.5 * (wf + wg) / 2:
                candidates.append((d, i, j))
    pairs, used_i, used_j = [], set(), set()
    for _, i, j in sorted(candidates):
        if i not in used_i and j not in used_j:
            used_i.add(i)
            used_j.add(j)
            pairs.append((before[i], after[j]))
    return pairs


class Recoverer:
    """Wraps an in-order stream of FrameResults; ``sources`` maps frame index -> its pixels (filled
    by the producer as tasks are drawn; entries no longer needed are dropped here)."""

    def __init__(self, opts: FrameOptions, sources: dict[int, Source]) -> None:
        self.opts = opts
        self.sources = sources
        self.max_gap = opts.recover_frames

    def _image(self, index: int) -> np.ndarray | None:
        source = self.sources.get(index)
        try:
            return read_source(source)
        except Exception:
            return None

    def _prune(self, keep_from: int) -> None:
        for index in [i for i in self.sources if i < keep_from]:
            del self.sources[index]

    def __call__(self, results: Iterator[FrameResult]) -> Iterator[FrameResult]:
        last_ok: FrameResult | None = None  # the last frame with faces (already yielded)
        gap: list[FrameResult] = []  # consecutive no_face frames held back
        at_start = True  # nothing but no_face frames so far
        prev_index: int | None = None
        for result in results:
            record = result.record
            consecutive = prev_index is not None and record.index == prev_index + 1
            prev_index = record.index
            if not consecutive and (gap or last_ok is not None):  # a jump in the numbering
                yield from gap
                gap, last_ok = [], None
                at_start = False
            if record.status == "no_face" and (last_ok is not None or at_start):
                if len(gap) < self.max_gap:
                    gap.append(result)
                    continue
                yield from gap  # too long to be a miss: the face is gone
                gap, last_ok, at_start = [], None, False
                yield result
                self._prune(record.index + 1)
                continue
            if record.status == "ok" and gap:
                self._fill(last_ok, gap, result)
            yield from gap
            gap = []
            yield result
            at_start = False
            last_ok = result if record.status == "ok" else None
            self._prune(record.index if last_ok is not None else record.index + 1)
        if gap and last_ok is not None:  # the end of the video: only the frame before is known
            self._fill(last_ok, gap, None)
        yield from gap
        self.sources.clear()

    def _fill(self, before: FrameResult | None, gap: list[FrameResult], after: FrameResult | None) -> None:
        if before is not None and after is not None:
            pairs: list[tuple[FaceRecord | None, FaceRecord | None]] = list(
                match_faces(before.record.faces, after.record.faces)
            )
        elif before is not None:
            pairs = [(f, None) for f in before.record.faces if not f.rotation]
        elif after is not None:
            pairs = [(None, g) for g in after.record.faces if not g.rotation]
        else:
            return
        if not pairs:
            return
        forward = before is not None
        anchor_result = before if forward else after
        assert anchor_result is not None
        anchor_image = self._image(anchor_result.record.index)
        if anchor_image is None:
            return
        after_image = self._image(after.record.index) if before is not None and after is not None else None
        ordered = gap if forward else list(reversed(gap))
        images = {r.record.index: self._image(r.record.index) for r in gap}
        for f, g in pairs:
            anchor = f if forward else g
            assert anchor is not None
            anchor_lm = anchor.landmarks_array
            relation = box_relation(tuple(anchor.box), anchor_lm)
            anchor_emb = face_embedding(anchor_image, anchor_lm, tuple(anchor.box))
            if f is not None and g is not None:
                # Two faces at one place across a scene cut are not one face to bridge.
                if after_image is None:
                    continue
                other = face_embedding(after_image, g.landmarks_array, tuple(g.box))
                if float(np.linalg.norm(other - anchor_emb)) > SAME_FACE_IDENTITY:
                    continue
            carried = anchor_lm
            for result in ordered:
                image = images[result.record.index]
                if image is None:
                    break
                interp = box = None
                if f is not None and g is not None:
                    p, n = before.record.index, after.record.index  # type: ignore[union-attr]
                    t = (result.record.index - p) / (n - p)
                    interp = (1 - t) * f.landmarks_array + t * g.landmarks_array
                    box = tuple(round((1 - t) * a + t * b) for a, b in zip(f.box, g.box, strict=True))
                fit_box, fitted = fit_in_carried_box(to_gray(image), carried, relation)
                embedding = face_embedding(image, fitted, fit_box)
                reference = interp if interp is not None else carried
                deviation = float(np.linalg.norm(fitted - reference, axis=1).mean()) / max(
                    inter_ocular(reference), 1.0
                )
                identity = float(np.linalg.norm(embedding - anchor_emb))
                if deviation <= TRACK_MAX_DEVIATION and identity <= TRACK_MAX_IDENTITY:
                    source, landmarks, face_box = "tracked", fitted, fit_box
                elif interp is not None and box is not None:
                    source, landmarks, face_box = "interpolated", interp, box
                    embedding = None
                else:
                    break  # one-sided and not verified: stop here
                carried = landmarks
                self._add(result, image, landmarks, face_box, source, embedding, anchor)

    def _add(
        self,
        result: FrameResult,
        image: np.ndarray,
        landmarks: np.ndarray,
        box: tuple,
        source: str,
        embedding: np.ndarray | None,
        anchor: FaceRecord,
    ) -> None:
        opts = self.opts
        crop, matrix = align_face(image, landmarks, opts.size, opts.coverage)
        face = FaceRecord(
            box=[int(v) for v in box],
            score=0.0,
            landmarks=_round_points(landmarks),
            matrix=[[float(v) for v in row] for row in matrix],
            source=source,
            detector=anchor.detector,
        )
        if opts.references:
            if embedding is None:
                embedding = face_embedding(image, landmarks, tuple(face.box))
            face.identity_distance = round(nearest_distance(embedding, opts.references), 4)
            if face.identity_distance > opts.identity_threshold:
                return
        if opts.min_sharpness > 0 and sharpness(crop) < opts.min_sharpness:
            return
        record = result.record
        record.faces.append(face)
        result.crops.append(crop if opts.want_crops else np.empty(0, np.uint8))
        record.status, record.reason = "ok", ""
        events.recovered(source)
