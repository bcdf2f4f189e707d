"""Interval scores by hand: pinball, CRPS, residual quantiles, coverage; the report's shape."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from rnnkit.models.forecast import ForecastModelConfig
from rnnkit.models.forecasters import build_forecaster
from rnnkit.tasks.forecast import ForecastData, ForecastDataConfig
from rnnkit.tasks.forecast_intervals import (
    CRPS_LEVELS,
    crps_from_quantiles,
    interval_report,
    interval_scores,
    pinball,
    residual_quantiles,
)


def test_pinball_and_crps_by_hand():
    v = np.array([1.0, 2.0, 4.0])
    q = np.array([2.0, 2.0, 2.0])
    # e = v - q = (-1, 0, 2): p = 0.9 -> (0.1, 0, 1.8) / 3
    assert pinball(v, q, 0.9) == pytest.approx((0.1 + 0 + 1.8) / 3)
    # a point forecast's CRPS is its absolute error: 2 mean_p pinball_p = |e| (levels symmetric)
    qs = np.repeat(q[:, None], len(CRPS_LEVELS), 1)
    assert crps_from_quantiles(v, qs, CRPS_LEVELS) == pytest.approx(np.abs(v - q).mean())


def test_residual_quantiles_per_step_and_channel():
    actual = np.zeros((5, 2, 1))
    f = -np.arange(5.0)[:, None, None] * np.array([1.0, 2.0])[None, :, None]  # e_n = n, 2n
    q = residual_quantiles(actual, f, [0.0, 0.5, 1.0])  # (H, C, P)
    assert q.shape == (2, 1, 3)
    assert np.allclose(q[0, 0], [0, 2, 4]) and np.allclose(q[1, 0], [0, 4, 8])


def test_true_quantiles_cover_their_level():
    from scipy.stats import norm

    rng = np.random.default_rng(0)
    v = rng.normal(size=(4000, 3, 2))
    probs = sorted(set(CRPS_LEVELS) | {0.025, 0.975})
    q = np.broadcast_to(norm.ppf(probs), (4000, 3, 2, len(probs)))
    s = interval_scores(v, q, probs, (0.8, 0.95))
    assert s["coverage_80"] == pytest.approx(0.8, abs=0.015)
    assert s["coverage_95"] == pytest.approx(0.95, abs=0.01)
    assert s["width_80"] == pytest.approx(2 * norm.ppf(0.9))
    # N(0, 1) against N(0, 1) draws: CRPS = 1/sqrt(pi) = 0.564; the 19-level grid is close
    assert s["crps"] == pytest.approx(1 / np.sqrt(np.pi), rel=0.06)


def test_interval_report_on_every_test_window(tmp_path):
    rng = np.random.default_rng(0)
    T = 14500
    t = np.arange(T)
    pd.DataFrame({"date": pd.date_range("2016-07-01", periods=T, freq="h"),
                  "OT": np.sin(2 * np.pi * t / 24) + 0.2 * rng.normal(size=T)}).to_csv(
        tmp_path / "e.csv", index=False)
    data = ForecastData(ForecastDataConfig(path=str(tmp_path / "e.csv"), protocol="ltsf",
                                           metric_space="scaled", calendar=False,
                                           input_length=48, horizon=24, season_length=24))
    torch.manual_seed(0)
    m = build_forecaster(ForecastModelConfig(arch="segrnn", cell="gru", hidden_size=8,
                                             segment_length=12, head="gaussian", norm="last"),
                         n_targets=1, horizon=24, input_length=48)
    rep = interval_report(m, data)
    assert rep["windows"] == 2880 - 24 + 1
    assert set(rep) >= {"model", "naive", "seasonal_naive", "linear_ar"}
    for name in ("model", "naive", "seasonal_naive", "linear_ar"):
        r = rep[name]
        assert 0 <= r["coverage_80"] <= r["coverage_95"] <= 1 and r["crps"] > 0
    # the seasonal naive's residual interval on a clean daily sine covers about its level
    assert rep["seasonal_naive"]["coverage_80"] == pytest.approx(0.8, abs=0.05)
