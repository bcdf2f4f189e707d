"""Scalers (fitted on train only), differencing, STL profiles and exact windows."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.data.windows import (
    Preprocessor,
    Scaler,
    SeasonalProfile,
    difference,
    gather_windows,
    stl_decompose,
    undifference,
    window_origins,
)


def test_standard_scaler_uses_training_statistics_only():
    rng = np.random.default_rng(0)
    train = rng.normal(5, 2, size=(200, 2))
    test = rng.normal(50, 9, size=(50, 2))  # far away: must not move the statistics
    sc = Scaler("standard").fit({"a": train})
    loc, scale = sc.params("a")
    np.testing.assert_allclose(loc, train.mean(0))
    np.testing.assert_allclose(scale, train.std(0))  # population std, as sklearn
    z = sc.transform(np.vstack([train, test]), "a")
    np.testing.assert_allclose(z[:200].mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(z[:200].std(0), 1, atol=1e-12)
    np.testing.assert_allclose(z[200:], (test - train.mean(0)) / train.std(0))
    np.testing.assert_allclose(sc.inverse_transform(z, "a"), np.vstack([train, test]))


def test_minmax_and_per_series_scalers():
    a = np.array([[0.0], [2.0], [4.0]])
    b = np.array([[10.0], [20.0]])
    per = Scaler("minmax", per_series=True).fit({"a": a, "b": b})
    np.testing.assert_allclose(per.transform(a, "a")[:, 0], [0, 0.5, 1])
    np.testing.assert_allclose(per.transform(b, "b")[:, 0], [0, 1])
    pooled = Scaler("minmax").fit({"a": a, "b": b})  # one range over both: [0, 20]
    np.testing.assert_allclose(pooled.transform(b, "b")[:, 0], [0.5, 1.0])
    with pytest.raises(KeyError, match="series 'c' was not seen"):
        per.transform(a, "c")
    again = Scaler.from_dict(per.to_dict())
    np.testing.assert_array_equal(again.transform(b, "b"), per.transform(b, "b"))


def test_constant_channel_keeps_scale_one():
    sc = Scaler("standard").fit({"": np.full((5, 1), 3.0)})
    assert sc.params("")[1][0] == 1.0


def test_difference_and_undifference_are_inverse():
    x = np.array([[1.0], [4.0], [9.0], [16.0], [25.0], [36.0]])
    d = difference(x, 1)
    assert np.isnan(d[0, 0])
    np.testing.assert_array_equal(d[1:, 0], [3, 5, 7, 9, 11])
    levels = undifference(d[None, 3:], x[None, 2:3], 1)  # integrate from x_2 = 9
    np.testing.assert_array_equal(levels[0, :, 0], [16, 25, 36])
    d2 = difference(x, 2)  # seasonal lag 2
    np.testing.assert_array_equal(d2[2:, 0], [8, 12, 16, 20])
    np.testing.assert_array_equal(undifference(d2[None, 4:], x[None, 2:4], 2)[0, :, 0], [25, 36])


def test_window_origins_and_gather_are_exact():
    # targets [t, t+H) inside [start, stop), inputs [t-L, t) from `first` on
    np.testing.assert_array_equal(window_origins(5, 12, 3, 2), [5, 6, 7, 8, 9, 10])
    np.testing.assert_array_equal(window_origins(0, 12, 3, 2), [3, 4, 5, 6, 7, 8, 9, 10])
    np.testing.assert_array_equal(window_origins(0, 12, 3, 2, stride=3), [4, 7, 10])  # the last is kept
    assert len(window_origins(10, 12, 3, 4)) == 0
    # the Informer ETTh1 test split at horizon 24: 2880 - 24 + 1 windows
    o = window_origins(11520, 14400, 96, 24)
    assert (len(o), o[0], o[-1]) == (2857, 11520, 14376)
    x = np.arange(20.0).reshape(10, 2)  # row t = [2t, 2t+1]
    past, fut = gather_windows(x, np.array([3, 7]), 3, 2)
    np.testing.assert_array_equal(past[0, :, 0], [0, 2, 4])
    np.testing.assert_array_equal(fut[0, :, 1], [7, 9])
    np.testing.assert_array_equal(past[1, :, 0], [8, 10, 12])
    np.testing.assert_array_equal(fut[1, :, 0], [14, 16])
    with pytest.raises(IndexError):
        gather_windows(x, np.array([9]), 3, 2)


def _seasonal_series(T=120, m=12, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    season = 3 * np.sin(2 * np.pi * t / m)
    return (0.05 * t + season + 0.05 * rng.normal(size=T))[:, None], season


def test_stl_recovers_a_known_seasonality_and_the_profile_phase():
    x, season = _seasonal_series()
    parts = stl_decompose(x, 12)
    np.testing.assert_allclose(parts["trend"] + parts["seasonal"] + parts["resid"], x, atol=1e-10)
    assert np.abs(parts["seasonal"][24:-24, 0] - season[24:-24]).max() < 0.2
    prof = SeasonalProfile.fit(x[:100], 12)  # 100 is not a multiple of 12: the phase must still match
    future = np.arange(100, 120)
    assert np.abs(prof.at(future)[:, 0] - season[future]).max() < 0.2
    with pytest.raises(ValueError, match="two periods"):
        stl_decompose(x[:20], 12)


@pytest.mark.parametrize("lag, stl", [(0, None), (1, None), (12, None), (1, 12)])
def test_preprocessor_round_trip(lag, stl):
    x, _ = _seasonal_series()
    x = x + 10.0
    pre = Preprocessor(Scaler("standard"), log=True, stl_period=stl, lag=lag).fit({"s": x[:96]})
    steps = np.arange(len(x))
    z = pre.scale(x, "s")
    np.testing.assert_allclose(pre.unscale(z, "s"), x)
    d = pre.to_model(z, "s", steps)
    origins = np.array([60, 100])
    H = 8
    fut = origins[:, None] + np.arange(H)  # (2, H)
    z_last = z[origins[:, None] + np.arange(-max(lag, 1), 0)]
    back = pre.from_model(d[fut], "s", steps[fut], z_last)
    np.testing.assert_allclose(back, z[fut], atol=1e-10)
    # trailing dims (quantiles) ride along
    q = np.stack([d[fut]] * 3, -1)
    np.testing.assert_allclose(pre.from_model(q, "s", steps[fut], z_last)[..., 2], z[fut], atol=1e-10)
    again = Preprocessor.from_dict(pre.to_dict())
    np.testing.assert_allclose(again.to_model(z, "s", steps), d, equal_nan=True)


@pytest.mark.parametrize("bad", [float("inf"), float("nan"), 0.0, -1.0])
def test_scaler_state_with_a_non_finite_or_non_positive_scale_is_refused(bad):
    # a tampered or corrupt checkpoint (JSON allows NaN/Infinity) would forecast garbage
    d = Scaler("standard").fit({"": np.arange(12.0).reshape(6, 2)}).to_dict()
    d["stats"]["*"][1][1] = bad
    with pytest.raises(ValueError, match=r"scaler: series '\*', scale\[1\] is .*; expected a finite "
                                         r"positive number"):
        Scaler.from_dict(d)
    d = Scaler("standard").fit({"": np.arange(12.0).reshape(6, 2)}).to_dict()
    d["stats"]["*"][0][0] = float("inf")
    with pytest.raises(ValueError, match=r"scaler: series '\*', loc\[0\] is inf; expected a finite number"):
        Scaler.from_dict(d)


def test_scaler_handles_huge_and_tiny_units_and_refuses_what_float64_cannot_hold():
    v = np.array([[1.0], [2.0], [3.0]])
    want = Scaler("standard").fit({"a": v}).stats["*"]
    for unit in (1e160, 1e-20):  # the squares overflow; a 1e-12 floor would call it constant
        loc, scale = Scaler("standard").fit({"a": v * unit}).stats["*"]
        assert np.allclose(loc / unit, want[0]) and np.allclose(scale / unit, want[1])
    assert Scaler("standard").fit({"a": np.full((3, 1), 1e-20)}).stats["*"][1] == 1.0  # constant
    with pytest.raises(ValueError, match=r"data.scaler=minmax: channel 0 spans more than float64"):
        Scaler("minmax").fit({"a": np.array([[-1e308], [1e308]])})
