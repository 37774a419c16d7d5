"""The causal choice of B's faces (hysteresis, cross-fade) and the streaming One Euro filter."""

from __future__ import annotations

import numpy as np

from faceswap.composite import appearance as ap
from faceswap.composite.causal import CausalChooser, OneEuroStream


def _index(descriptors: np.ndarray) -> ap.FaceIndex:
    n = len(descriptors)
    return ap.FaceIndex([str(i) for i in range(n)], np.arange(n), np.zeros((n, 68, 2)), descriptors)


def test_noise_does_not_flicker_and_a_clear_change_switches_after_hold_with_a_crossfade() -> None:
    desc = np.zeros((2, len(ap.FEATURES)))
    desc[1, 2] = 3.0  # face 1: mouth open
    chooser = CausalChooser(_index(desc), margin=1.0, hold=3, crossfade=2, part_hold=3)
    rng = np.random.default_rng(0)
    picks = [
        chooser.choose(rng.normal(0, 0.3, len(ap.FEATURES)) * [1, 1, 0.1, 1, 1, 1, 1, 1]) for _ in range(30)
    ]
    assert all(p["mouth"] == [(0, 1.0)] for p in picks)  # near face 0 all along: never switches
    open_mouth = np.zeros(len(ap.FEATURES))
    open_mouth[2] = 3.0
    seq = [chooser.choose(open_mouth)["mouth"] for _ in range(6)]
    assert seq[0] == seq[1] == [(0, 1.0)]  # not yet: the challenger must win hold=3 frames
    assert [j for j, _ in seq[2]] == [0, 1]  # switch, fading the old face out over 2 frames
    assert seq[2][0][1] > seq[3][0][1] > 0
    assert seq[4] == seq[5] == [(1, 1.0)]
    assert chooser.switches >= 1


def test_the_mouth_follows_at_once_while_the_whole_face_holds() -> None:
    """Parts switch on the first frame another face of B wins (speech is fast; a held mouth lags
    it), still cross-faded; the whole face waits ``hold`` frames; noise moves neither."""
    desc = np.zeros((3, len(ap.FEATURES)))
    desc[1, 2] = 3.0  # face 1: mouth open
    desc[2, 0] = 3.0  # face 2: head turned
    chooser = CausalChooser(_index(desc), margin=1.0, hold=3, crossfade=2)
    rng = np.random.default_rng(0)
    for _ in range(30):
        picks = chooser.choose(rng.normal(0, 0.05, len(ap.FEATURES)))
        assert picks["mouth"] == [(0, 1.0)] and picks["face"] == [(0, 1.0)]
    open_mouth = np.zeros(len(ap.FEATURES))
    open_mouth[2] = 3.0
    assert [j for j, _ in chooser.choose(open_mouth)["mouth"]] == [0, 1]  # at once, cross-faded
    chooser.reset()
    chooser.choose(np.zeros(len(ap.FEATURES)))
    turned = np.zeros(len(ap.FEATURES))
    turned[0] = 3.0
    faces = [chooser.choose(turned)["face"] for _ in range(3)]
    assert faces[0] == faces[1] == [(0, 1.0)] and [j for j, _ in faces[2]] == [0, 2]


def test_a_challenger_that_changes_restarts_the_count() -> None:
    desc = np.zeros((3, len(ap.FEATURES)))
    desc[1, 0], desc[2, 0] = 2.0, -2.0  # yaw left / right
    chooser = CausalChooser(_index(desc), margin=0.5, hold=2, crossfade=0)
    q = np.zeros(len(ap.FEATURES))
    chooser.choose(q)
    for yaw in (2.0, -2.0, 2.0, -2.0):  # alternating challengers never hold long enough
        q[0] = yaw
        assert chooser.choose(q)["face"] == [(0, 1.0)]


def test_one_euro_stream_is_causal_and_smooths_a_still_face() -> None:
    rng = np.random.default_rng(1)
    base = rng.uniform(100, 200, (68, 2))
    series = [base + rng.normal(0, 1.0, base.shape) for _ in range(40)]
    a, b = OneEuroStream(), OneEuroStream()
    out_a = [a(lm, i / 30) for i, lm in enumerate(series)]
    out_b = [b(lm, i / 30) for i, lm in enumerate(series[:20])]
    np.testing.assert_allclose(out_a[:20], out_b)  # the future does not change the past
    raw_jitter = np.diff(np.stack(series[10:]), axis=0).std()
    smooth_jitter = np.diff(np.stack(out_a[10:]), axis=0).std()
    assert smooth_jitter < raw_jitter * 0.7


def test_a_part_stays_with_the_face_pick_unless_another_face_is_clearly_better() -> None:
    # Face 0: A's pose; face 1: another pose with the mouth slightly nearer A's; face 2: the same
    # pose as face 0 but the mouth wide open.
    desc = np.zeros((3, len(ap.FEATURES)))
    desc[1, 0], desc[1, 2] = 0.5, 0.3
    desc[2, 2] = 3.0
    query = np.zeros(len(ap.FEATURES))
    query[2] = 0.3
    assert CausalChooser(_index(desc), part_cost=0.0).choose(query)["mouth"] == [(1, 1.0)]
    assert CausalChooser(_index(desc), part_cost=1.0).choose(query)["mouth"] == [(0, 1.0)]  # a near tie
    wide = CausalChooser(_index(desc), part_cost=1.0)
    query[2] = 3.0
    picks = wide.choose(query)
    assert picks["face"] == [(0, 1.0)] or picks["face"] == [(2, 1.0)]
    assert picks["mouth"] == [(2, 1.0)]  # A's open mouth: worth leaving the face's pick for
