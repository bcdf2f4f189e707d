"""The Gaussian error model and its tail-probability score."""

import math

import numpy as np
import pytest
from scipy.stats import chi2

from rnnkit.anomaly.gaussian import (
    ErrorScorer,
    GaussianErrorModel,
    chi2_log_tail,
    surprise_to_score,
)


def test_one_dimensional_fit_is_the_z_score():
    e = np.array([1.0, 2.0, 3.0, 4.0])  # mean 2.5, sample variance 5/3
    g = GaussianErrorModel.fit(e, shrinkage=0.0)
    assert g.mean.tolist() == [2.5]
    assert g.cov[0, 0] == pytest.approx(5 / 3 * (1 + 1e-6))
    m = g.mahalanobis2(np.array([[6.0]]))[0]
    assert m == pytest.approx(3.5 ** 2 / (5 / 3), rel=1e-5)
    # two-sided normal tail probability of |z| = sqrt(m): P(chi2_1 > m)
    p = math.erfc(math.sqrt(m) / math.sqrt(2))
    assert g.surprise(np.array([[6.0]]))[0] == pytest.approx(-math.log(p), rel=1e-9)


def test_full_covariance_mahalanobis():
    g = GaussianErrorModel(np.zeros(2), np.array([[2.0, 1.0], [1.0, 2.0]]))
    # inverse = [[2, -1], [-1, 2]] / 3; e = (1, 1): (2 - 1 - 1 + 2) / 3 = 2/3
    assert g.mahalanobis2(np.array([[1.0, 1.0]]))[0] == pytest.approx(2 / 3)
    assert g.mahalanobis2(np.array([[1.0, -1.0]]))[0] == pytest.approx(2.0)


def test_shrinkage_pulls_towards_the_diagonal():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(500, 2)) @ np.array([[1.0, 0.9], [0.0, 0.4]])
    c = np.cov(e, rowvar=False)
    g = GaussianErrorModel.fit(e, shrinkage=0.5)
    assert g.cov[0, 1] == pytest.approx(0.5 * c[0, 1], rel=1e-9)
    assert g.cov[0, 0] == pytest.approx(c[0, 0], rel=1e-5)


def test_log_tail_is_finite_and_continuous_far_out():
    m = np.array([1.0, 100.0, 1000.0])
    np.testing.assert_allclose(chi2_log_tail(m, 4), chi2.logsf(m, 4))
    far = chi2_log_tail(np.array([1400.0, 1500.0, 1e6]), 1)
    assert np.isfinite(far).all() and (np.diff(far) < 0).all()
    # asymptotic for dof 1: ln P(|Z| > sqrt(m)) ~ -m/2 - ln(sqrt(pi m / 2))
    assert far[1] == pytest.approx(-750 - math.log(math.sqrt(math.pi * 1500 / 2)), abs=1e-3)


def test_score_is_monotone_in_surprise_and_below_one():
    s = surprise_to_score(np.array([0.0, 1.0, 10.0, 1e6]))
    assert s.tolist() == [0.0, 0.5, pytest.approx(10 / 11), pytest.approx(1e6 / (1e6 + 1))]
    assert (s < 1).all()


def test_rolling_scorer_refits_on_past_rows_only():
    rng = np.random.default_rng(1)
    e = rng.normal(0, 1, (400, 1))
    e[250:] += 50.0  # a level shift at row 250
    base = GaussianErrorModel.fit(e[100:200])
    fixed = ErrorScorer(base, "validation").score_batch(e, 0)
    roll = ErrorScorer(base, "rolling", fit_end=200, val_start=100, window=50, every=50).score_batch(e, 0)
    assert fixed[300:].min() > 0.99  # the fixed Gaussian keeps alarming after the shift
    assert roll[250] > 0.99  # the first shifted block is still scored by the pre-shift fit
    assert roll[300:].max() < 0.95  # later blocks are refitted on shifted rows
    streamed = ErrorScorer(base, "rolling", fit_end=200, val_start=100, window=50, every=50)
    np.testing.assert_allclose([streamed.push(t, e[t]) for t in range(400)], roll, atol=1e-12)
