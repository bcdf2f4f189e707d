"""NAB scoring against hand-computed cases (numenta/NAB sweeper semantics) under each profile."""

import math

import numpy as np
import pytest

from rnnkit.anomaly.nab_scoring import (
    PROFILES,
    ScoredFile,
    nab_score,
    point_metrics,
    scaled_sigmoid,
    score_file,
    sweep_weights,
    threshold_curve,
    window_metrics,
)

W = {"standard": (1.0, 0.11, 1.0), "reward_low_FP_rate": (1.0, 0.22, 1.0), "reward_low_FN_rate": (1.0, 0.11, 2.0)}
SIG_M1 = 2 / (1 + math.exp(-5)) - 1  # scaled sigmoid at the window start, 0.9866142981514305


def _file(n, detections, windows=((10, 14),), probation=0):
    s = np.zeros(n)
    s[list(detections)] = 1.0
    return ScoredFile("f.csv", s, list(windows), probation)


def test_profiles_are_nabs_published_weights():
    for name, (tp, fp, fn) in W.items():
        p = PROFILES[name]
        assert (p.tp, p.fp, p.fn) == (tp, fp, fn)


def test_scaled_sigmoid_values():
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661429815, abs=1e-11)
    assert scaled_sigmoid(-0.5) == pytest.approx(0.84828363995, abs=1e-11)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(1.0) == pytest.approx(-0.98661429815, abs=1e-11)
    assert scaled_sigmoid(3.0) == -1.0 and scaled_sigmoid(7.0) == -1.0
    assert scaled_sigmoid(2.999) == pytest.approx(-0.9999993855, abs=1e-9)


@pytest.mark.parametrize("profile", list(W))
def test_tp_at_window_start_scores_tp_weight(profile):
    r = score_file(_file(20, [10]), 0.5, profile)
    assert r.raw == pytest.approx(W[profile][0], abs=1e-12)
    assert (r.tp, r.fp, r.fn, r.tn) == (1, 0, 4, 15)


@pytest.mark.parametrize("profile", list(W))
def test_tp_at_window_end(profile):
    # window (10, 14): width 5; at row 14 y = -(14 - 14 + 1) / 5 = -0.2
    expected = W[profile][0] * (2 / (1 + math.exp(-1.0)) - 1) / SIG_M1  # 0.468386...
    assert score_file(_file(20, [14]), 0.5, profile).raw == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.4683868, abs=1e-7)


@pytest.mark.parametrize("profile", list(W))
def test_only_the_earliest_detection_in_a_window_counts(profile):
    one = score_file(_file(20, [11]), 0.5, profile).raw
    assert score_file(_file(20, [11, 12, 14]), 0.5, profile).raw == pytest.approx(one, abs=1e-12)
    # y = -(14 - 11 + 1)/5 = -0.8
    assert one == pytest.approx((2 / (1 + math.exp(-4.0)) - 1) / SIG_M1, abs=1e-12)


@pytest.mark.parametrize("profile", list(W))
def test_fp_before_any_window_and_a_miss(profile):
    tp, fp, fn = W[profile]
    r = score_file(_file(20, [3]), 0.5, profile)
    assert r.raw == pytest.approx(-fp - fn, abs=1e-12)  # -A_FP for the FP, -A_FN for the missed window
    assert (r.tp, r.fp, r.fn, r.tn) == (0, 1, 5, 14)
    assert score_file(_file(20, []), 0.5, profile).raw == pytest.approx(-fn, abs=1e-12)


@pytest.mark.parametrize("profile", list(W))
def test_fp_after_a_window_is_discounted_by_distance(profile):
    tp, fp, fn = W[profile]
    # row 16 after window (10, 14): y = (16 - 14) / (5 - 1) = 0.5 -> 2/(1+e^2.5) - 1 = -0.848284
    r = score_file(_file(20, [10, 16]), 0.5, profile)
    assert r.raw == pytest.approx(tp + fp * (2 / (1 + math.exp(2.5)) - 1), abs=1e-12)
    assert (2 / (1 + math.exp(2.5)) - 1) == pytest.approx(-0.8482836, abs=1e-7)


def test_nab_reference_case_tp_at_right_edge_plus_fp_just_after_is_about_minus_one():
    # numenta/NAB tests/integration/true_positive_test.py: 1000 rows, one window of 100 rows,
    # all weights 1: TP score at the right edge + FP score just after + 1 is ~0 (3 decimals)
    from rnnkit.anomaly.nab_scoring import Profile

    ones = Profile(tp=1.0, fp=1.0, fn=1.0)
    win = [(450, 549)]
    a = score_file(ScoredFile("x", np.eye(1, 1000, 549)[0], win, 0), 0.5, ones).raw
    b = score_file(ScoredFile("x", np.eye(1, 1000, 550)[0], win, 0), 0.5, ones).raw
    assert a + b + 1 == pytest.approx(0.0, abs=1e-3)


def test_probationary_rows_are_ignored():
    f = _file(100, [5, 10], windows=[(40, 44)], probation=15)  # 15 = floor(0.15 * 100)
    assert f.probation == 15
    r = score_file(f, 0.5, "standard")
    assert r.raw == -1.0 and r.tp == r.fp == 0  # both detections ignored, the window missed
    # as in NAB's sweeper, a window lying wholly in the probationary period is not scored
    assert score_file(_file(100, [], windows=[(10, 14)], probation=15), 0.5, "standard").raw == 0.0
    assert ScoredFile("x", np.zeros(100), []).probation == 15
    assert ScoredFile("x", np.zeros(10000), []).probation == 750  # min(floor(0.15 n), 750)


@pytest.mark.parametrize("profile", list(W))
def test_normalisation_by_null_and_perfect(profile):
    tp, fp, fn = W[profile]
    win = [(100, 104)]  # 200 rows: the null detector's best is to detect nothing (-A_FN)
    r = nab_score([_file(200, [100], win)], profile)  # exactly the window start
    assert (r.raw_null, r.raw_perfect) == (-fn, tp)
    assert r.score == pytest.approx(100.0)
    assert nab_score([_file(200, [], win)], profile).score == pytest.approx(0.0)
    end = (2 / (1 + math.exp(-1.0)) - 1) / SIG_M1
    assert nab_score([_file(200, [104], win)], profile).score == pytest.approx(100 * (end + fn) / (tp + fn))
    # an FP before the window and the TP at its start: 100 (1 - A_FP + A_FN) / (1 + A_FN)
    r = nab_score([_file(200, [3, 100], win)], profile, threshold=0.5)
    assert r.score == pytest.approx(100 * (tp - fp + fn) / (tp + fn))


def test_null_detector_threshold_is_optimised_too():
    # 20 rows, window (10, 14): detecting every row beats detecting none (-1):
    # TP 1 at the start, 10 FPs before the window (-0.11 each) and rows 15..19 after it,
    # y = 1/4, 2/4, ..., 5/4 -> sigma = -0.554600, -0.848284, -0.954044, -0.986614, -0.996148
    after = sum(2 / (1 + math.exp(5 * k / 4)) - 1 for k in range(1, 6))
    assert after == pytest.approx(-4.3396895, abs=1e-6)
    r = nab_score([_file(20, [10])], "standard")
    assert r.raw_null == pytest.approx(1 - 1.1 + 0.11 * after, abs=1e-12)
    assert r.raw_null == pytest.approx(-0.5773658, abs=1e-7)


def test_threshold_is_optimised_over_the_corpus():
    s = np.full(40, 0.1)
    s[12], s[30] = 0.9, 0.95  # a TP at row 12 of window (12, 16), an FP at row 30 (y = 14/4 > 3)
    f = ScoredFile("f", s, [(12, 16)], 0)
    curve = threshold_curve([f], "standard")
    assert curve.thresholds[0] == np.inf and curve.raw[0] == -1.0
    # inf: miss (-1); 0.95: FP + miss (-1.11); 0.9: FP + TP (0.89); 0.1: everything detected
    assert curve.thresholds[1:3].tolist() == [0.95, 0.9]
    assert curve.raw[1:3] == pytest.approx([-1.11, 0.89])
    assert curve.best() == (0.9, pytest.approx(0.89))
    assert nab_score([f], "standard").threshold == 0.9


def test_threshold_curve_matches_scoring_each_threshold():
    rng = np.random.default_rng(0)
    files = [ScoredFile(f"f{k}", rng.random(300), [(80, 110), (200, 240)]) for k in range(3)]
    for profile in W:
        curve = threshold_curve(files, profile)
        for th, raw in zip(curve.thresholds[::37], curve.raw[::37]):
            assert sum(score_file(f, th, profile).raw for f in files) == pytest.approx(raw, abs=1e-9)


def test_sweep_weights_shape_and_window_ids():
    w, wid = sweep_weights(20, [(10, 14)], "standard")
    assert wid.tolist() == [-1] * 10 + [0] * 5 + [-1] * 5
    assert w[:10].tolist() == [-0.11] * 10
    assert w[10] == pytest.approx(1.0)


def test_point_and_window_metrics():
    s = np.zeros(30)
    s[[11, 12, 20, 21, 25]] = 1.0  # 2 rows inside window (10, 14); 3 rows outside in 2 runs
    f = ScoredFile("f", s, [(10, 14)], 0)
    p = point_metrics([f], 0.5)
    assert p.precision == pytest.approx(2 / 5) and p.recall == pytest.approx(2 / 5)
    assert p.f1 == pytest.approx(2 / 5)
    w = window_metrics([f], 0.5)  # events: [11-12] hits, [20-21] and [25] miss; 1 of 1 window found
    assert w.precision == pytest.approx(1 / 3) and w.recall == 1.0 and w.f1 == pytest.approx(0.5)
