"""Thresholds on tiny arrays, against hand computation."""

import math

import numpy as np
import pytest

from rnnkit.anomaly.thresholds import (
    dynamic_threshold,
    ewma,
    gaussian_tail_threshold,
    percentile_threshold,
)


def test_percentile_threshold():
    x = [4.0, 1.0, 3.0, 2.0]
    assert percentile_threshold(x, 50) == 2.5
    assert percentile_threshold(x, 25) == 1.75  # 1 + 0.75 * (2 - 1)
    assert percentile_threshold(x, 0) == 1.0 and percentile_threshold(x, 100) == 4.0
    with pytest.raises(ValueError, match=r"q=101"):
        percentile_threshold(x, 101)
    with pytest.raises(ValueError, match=r"scores: contains NaN .*index 1"):
        percentile_threshold([1.0, math.nan], 50)


def test_gaussian_tail_threshold():
    x = [1.0, 2.0, 3.0, 4.0]  # mean 2.5, population std sqrt(1.25)
    sd = math.sqrt(1.25)
    assert gaussian_tail_threshold(x, 0.5) == pytest.approx(2.5)
    assert gaussian_tail_threshold(x, 0.15865525393145707) == pytest.approx(2.5 + sd)  # z = 1
    assert gaussian_tail_threshold(x, 0.001) == pytest.approx(2.5 + 3.090232306167813 * sd)
    with pytest.raises(ValueError, match=r"alpha=0"):
        gaussian_tail_threshold(x, 0.0)


def test_ewma_matches_the_adjusted_recursion():
    # span 3 -> alpha 0.5; adjusted: y1 = (x1 + 0.5 x0) / (1 + 0.5)
    assert ewma([0.0, 3.0], span=3).tolist() == [0.0, 2.0]
    assert ewma([0.0, 3.0], span=None).tolist() == [0.0, 3.0]


def test_dynamic_threshold_single_spike():
    e = np.ones(100)
    e[50] = 10.0
    r = dynamic_threshold(e, span=None)
    # every z in 2..10 leaves only the spike above eps, so f ties and the first z = 2 wins:
    # mean 1.09, E[e^2] = 1.99 -> std sqrt(0.8019)
    assert r.thresholds[0] == pytest.approx(1.09 + 2 * math.sqrt(0.8019))
    assert np.flatnonzero(r.flags).tolist() == [50] and r.sequences == [(50, 50)]


def test_dynamic_threshold_prunes_anomalies_close_to_the_normal_maximum():
    e = np.ones(200)
    e[50], e[120], e[150] = 10.0, 4.0, 3.2
    # mean 1.071, std sqrt(1.6162 - 1.071^2) = 0.68498; z = 3.5 -> eps = 3.4685: 50 and 120 are above
    r = dynamic_threshold(e, span=None, z_range=[3.5], min_decrease=0.13)
    assert r.thresholds[0] == pytest.approx(1.071 + 3.5 * math.sqrt(1.6162 - 1.071 ** 2))
    # peaks 10, 4 then the normal maximum 3.2: decreases 0.6, 0.2 -> both exceed 0.13, both kept
    assert r.sequences == [(50, 50), (120, 120)]
    # with p = 0.3 only the first decrease is large: the 4.0 sequence is pruned
    r = dynamic_threshold(e, span=None, z_range=[3.5], min_decrease=0.3)
    assert r.sequences == [(50, 50)] and np.flatnonzero(r.flags).tolist() == [50]


def test_dynamic_threshold_prunes_everything_when_no_clear_gap():
    e = np.ones(200)
    e[50], e[120], e[150] = 10.0, 9.5, 9.0
    r = dynamic_threshold(e, span=None)
    assert not r.flags.any() and r.sequences == []  # the 10 is only 5% above the next value


def test_dynamic_threshold_blocks_are_causal():
    e = np.ones(300)
    e[250] = 10.0
    r = dynamic_threshold(e, span=None, window=100, step=100)
    assert np.isinf(r.thresholds[:200]).all()  # constant history: no threshold
    assert r.flags.tolist().index(True) == 250
