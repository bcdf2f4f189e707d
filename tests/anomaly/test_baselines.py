"""NAB's random and windowed-Gaussian detectors, re-implemented."""

import math
import random

import numpy as np
import pytest

from rnnkit.anomaly.baselines import random_scores, windowed_gaussian_scores


def _nab_windowed_gaussian(x, window, step):
    """NAB's WindowedGaussianDetector.handleRecord, record by record."""
    data, buf, mean, std, out = [], [], 0.0, 1.0, []
    for v in x:
        score = 0.0
        if data:
            z = abs(v - mean) / std
            score = 1 - 0.5 * math.erfc(z / math.sqrt(2))
        if len(data) < window:
            data.append(v)
            mean, std = float(np.mean(data)), float(np.std(data)) or 1e-6
        else:
            buf.append(v)
            if len(buf) == step:
                data, buf = data[step:] + buf, []
                mean, std = float(np.mean(data)), float(np.std(data)) or 1e-6
        out.append(score)
    return np.array(out)


def test_random_detector_is_pythons_mersenne_twister_seeded_per_file():
    s = random_scores(3, seed=42)
    assert s[0] == 0.6394267984578837 and s[1] == 0.025010755222666936  # random.seed(42)
    rng = random.Random(7)
    assert random_scores(5, seed=7).tolist() == [rng.uniform(0, 1) for _ in range(5)]


def test_windowed_gaussian_hand_computed_start():
    s = windowed_gaussian_scores(np.array([0.0, 2.0, 3.0]))
    assert s[0] == 0.0  # no window yet
    assert s[1] == 1.0  # window [0]: std 0 -> 1e-6, z = 2e6
    assert s[2] == pytest.approx(1 - 0.5 * math.erfc(2 / math.sqrt(2)))  # window [0, 2]: z = 2
    assert s[2] == pytest.approx(0.9772498680518208)


@pytest.mark.parametrize("n,window,step", [(60, 10, 3), (300, 64, 7), (40, 100, 5), (25, 10, 1), (12, 10, 3)])
def test_windowed_gaussian_matches_nabs_loop(n, window, step):
    rng = np.random.default_rng(n)
    t = np.arange(n)
    x = 1e4 + 50 * np.sin(t / 5) + rng.normal(0, 3, n)
    x[n // 2] += 400  # a spike
    x[3:6] = x[2]  # a flat run
    ref = _nab_windowed_gaussian(x, window, step)
    np.testing.assert_allclose(windowed_gaussian_scores(x, window, step), ref, rtol=0, atol=1e-9)
    assert windowed_gaussian_scores(x, window, step)[n // 2] > 0.999  # the spike stands out


def test_windowed_gaussian_defaults_are_nabs():
    import inspect

    params = inspect.signature(windowed_gaussian_scores).parameters
    assert (params["window"].default, params["step"].default) == (6400, 100)  # NAB v1.1's tuned values
