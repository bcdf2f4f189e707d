"""Interval calibration (split CQR, rolling conformal): the arithmetic by hand, no test target
reaching its own or an earlier window, nominal coverage on exchangeable data, the config and CLI
path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import norm

from rnnkit.models.forecast import ForecastModelConfig
from rnnkit.models.forecasters import build_forecaster
from rnnkit.tasks.forecast import (
    ForecastData,
    ForecastDataConfig,
    evaluate_checkpoint,
    evaluate_windows,
    load_forecast_checkpoint,
    predict_checkpoint,
    train_forecast,
)
from rnnkit.tasks.forecast_intervals import (
    _probs,
    _windows,
    calibrate,
    calibrate_interval,
    choose_window,
    conformal_rank,
    interval_reports,
    interval_scores,
)
from rnnkit.train.config import ConfigError, build_run_config

LEVELS = (0.8, 0.95)


def _org(n: int, start: int = 0, sid: str = "") -> list[tuple[str, int]]:
    return [(sid, t) for t in range(start, start + n)]


def test_conformal_rank_by_hand():
    assert conformal_rank(9, 0.8) == 8  # ceil(10 * 0.8)
    assert conformal_rank(4, 0.8) == 4  # ceil(5 * 0.8)
    assert conformal_rank(3, 0.8) == 4  # > m: the interval is unbounded
    assert conformal_rank(9, 0.1, up=False) == 1  # floor(10 * 0.1)
    assert conformal_rank(8, 0.1, up=False) == 0  # < 1: unbounded below
    assert list(conformal_rank(np.array([19, 99]), 0.95)) == [19, 95]  # ceil(20 .95), ceil(100 .95)


def test_split_cqr_by_hand():
    probs = [0.1, 0.5, 0.9]
    # calibration: q = (0, 0.5, 1) and y = -1, 0.5, 1.5, 3 -> s = max(q_lo - y, y - q_hi)
    # = 1, -0.5, 0.5, 2; m = 4, k = ceil(5 * 0.8) = 4 -> Q = 2: both ends move out by 2
    y = np.array([-1, 0.5, 1.5, 3.0]).reshape(4, 1, 1)
    q = np.broadcast_to(np.array([0.0, 0.5, 1.0]), (4, 1, 1, 3))
    out = calibrate(q[:1] + 10, probs, {"q": q, "actual": y, "origins": _org(4)}, kind="cqr",
                    method="split")
    assert np.allclose(out[0, 0, 0], [8, 10.5, 13])
    # every target deep inside: s = -0.5 for all nine, Q = -0.5 narrows both ends to the middle
    y9 = np.full((9, 1, 1), 0.5)
    q9 = np.broadcast_to(np.array([0.0, 0.5, 1.0]), (9, 1, 1, 3))
    out = calibrate(q9[:1], probs, {"q": q9, "actual": y9, "origins": _org(9)}, kind="cqr",
                    method="split")
    assert np.allclose(out[0, 0, 0], [0.5, 0.5, 0.5])


def test_split_residual_shift_by_hand():
    probs = [0.1, 0.5, 0.9]
    f = np.zeros((9, 1, 1, 3))
    y = np.arange(1.0, 10.0).reshape(9, 1, 1)  # residuals e = 1..9, m = 9
    out = calibrate(f[:1] + 10, probs, {"q": f, "actual": y, "origins": _org(9)},
                    kind="residual", method="split")
    # p = 0.1: e_(floor(1.0)) = 1; 0.5: e_(ceil(5.0)) = 5; 0.9: e_(ceil(9.0)) = 9
    assert np.allclose(out[0, 0, 0], [11, 15, 19])


def test_rolling_sets_by_hand():
    idx, m = _windows(np.arange(10), np.array([6, 9, 1]), h=1, K=3)
    # origin 6, step 1: targets t_j + 1 < 6 -> j <= 4; the last three are 2, 3, 4
    assert idx[0].tolist() == [2, 3, 4] and m[0] == 3
    assert idx[1].tolist() == [5, 6, 7] and m[1] == 3
    assert m[2] == 0  # origin 1, step 1: t_j < 0, nothing observed yet
    idx, m = _windows(np.arange(10), np.array([6]), h=1, K=8)
    assert m[0] == 5 and idx[0, :5].tolist() == [0, 1, 2, 3, 4]


def test_rolling_residual_shift_by_hand():
    # residual of window j at step h: 10 j + h; K = 3, the median: rank ceil(4 * 0.5) = 2
    probs = [0.1, 0.5, 0.9]
    J, H = 10, 2
    y = (10.0 * np.arange(J)[:, None] + np.arange(H)).reshape(J, H, 1)
    f = np.zeros((J, H, 1, 3))
    out = calibrate(f[6:7], probs, {"q": f, "actual": y, "origins": _org(J)}, kind="residual",
                    method="rolling", origins=_org(1, 6), window=3)
    # step 0: windows t_j < 6 -> 3, 4, 5 (residuals 30, 40, 50); step 1: 2, 3, 4 (21, 31, 41)
    # p = 0.1: floor(0.4) = 0 -> -inf; 0.5: the 2nd; 0.9: ceil(3.6) = 4 > 3 -> +inf
    assert out[0, 0, 0].tolist() == [-np.inf, 40, np.inf]
    assert out[0, 1, 0].tolist() == [-np.inf, 31, np.inf]


@pytest.mark.parametrize("kind", ["cqr", "residual"])
def test_no_test_target_reaches_its_own_or_an_earlier_window(kind):
    """Change every target at or after window n's origin, and every later window's forecast:
    window n's calibrated quantiles, and every earlier window's, stay exactly the same."""
    rng = np.random.default_rng(1)
    probs = _probs(LEVELS)
    Nv, Nt, H = 300, 200, 5
    y = rng.normal(size=(Nv + Nt, H, 1))
    q = np.sort(rng.normal(size=(Nv + Nt, H, 1, len(probs))), -1)
    if kind == "residual":
        q = np.repeat(q[..., :1], len(probs), -1)
    org = _org(Nv + Nt, 1000)
    n = Nv + 60  # a test window; its origin
    t_n = org[n][1]

    def run(y, q, method):
        return calibrate(q[Nv:], probs, {"q": q if method == "rolling" else q[:Nv],
                                         "actual": y if method == "rolling" else y[:Nv],
                                         "origins": org if method == "rolling" else org[:Nv]},
                         kind=kind, method=method, origins=org[Nv:], window=100)

    t_target = np.array([t for _, t in org])[:, None] + np.arange(H)  # (J, H) target times
    y2, q2 = y.copy(), q.copy()
    y2[t_target >= t_n] += 100 * rng.normal(size=int((t_target >= t_n).sum()))[:, None]
    q2[n + 1:] += 50.0
    for method in ("rolling", "split"):
        a, b = run(y, q, method), run(y2, q2, method)
        assert np.array_equal(a[: n - Nv + 1], b[: n - Nv + 1])
        if method == "rolling":  # and the perturbation does reach the later windows
            assert not np.array_equal(a[n - Nv + 1:], b[n - Nv + 1:])
    # split uses validation only: no test target anywhere changes it
    y3 = y.copy()
    y3[Nv:] = 0.0
    assert np.array_equal(run(y, q, "split"), run(y3, q, "split"))


@pytest.mark.parametrize("kind", ["cqr", "residual"])
def test_exchangeable_data_cover_their_level(kind):
    """i.i.d. N(0, 1) targets against quantiles of N(0, 0.5^2) (too narrow: 80% -> 47%);
    both calibrations bring 3000 test windows x 4 steps to the nominal levels."""
    rng = np.random.default_rng(0)
    probs = _probs(LEVELS)
    Nv, Nt, H = 2000, 3000, 4
    y = rng.normal(size=(Nv + Nt, H, 1))
    base = 0.5 * norm.ppf(probs) if kind == "cqr" else np.zeros(len(probs))
    q = np.broadcast_to(base, (Nv + Nt, H, 1, len(probs))).copy()
    org = _org(Nv + Nt)
    if kind == "cqr":
        raw = interval_scores(y[Nv:], q[Nv:], probs, LEVELS)
        assert raw["coverage_80"] == pytest.approx(2 * norm.cdf(0.5 * norm.ppf(0.9) / 1) - 1,
                                                   abs=0.02)  # 0.47: the miscalibrated head
    split = calibrate(q[Nv:], probs, {"q": q[:Nv], "actual": y[:Nv], "origins": org[:Nv]},
                      kind=kind, method="split")
    roll = calibrate(q[Nv:], probs, {"q": q, "actual": y, "origins": org}, kind=kind,
                     method="rolling", origins=org[Nv:], window=500)
    for out in (split, roll):
        s = interval_scores(y[Nv:], out, probs, LEVELS)
        assert s["coverage_80"] == pytest.approx(0.8, abs=0.02)
        assert s["coverage_95"] == pytest.approx(0.95, abs=0.01)
        assert s["width_80"] == pytest.approx(2 * norm.ppf(0.9), rel=0.06)  # the true 2.56
        # the true N(0, 1) quantiles' CRPS is 0.5642 (19-level grid: about 0.586)
        assert s["crps"] == pytest.approx(0.586, abs=0.01)


def test_choose_window_uses_one_split_and_scores_full_sets():
    rng = np.random.default_rng(2)
    probs = _probs(LEVELS)
    y = rng.normal(size=(800, 3, 1))
    q = np.zeros((800, 3, 1, len(probs)))
    K, err = choose_window(q, y, _org(800), probs, kind="residual", candidates=(50, 200))
    assert K in (50, 200) and set(err) == {50, 200} and all(0 <= e < 0.05 for e in err.values())
    with pytest.raises(ValueError, match="too few"):
        choose_window(q[:150], y[:150], _org(150), probs, kind="residual", candidates=(50, 200))


@pytest.fixture(scope="module")
def sine(tmp_path_factory):
    """14,500 hourly steps of a daily sine in N(0, 0.2^2) noise (stationary: exchangeable
    enough), in the LTSF protocol at L = 48, H = 24."""
    rng = np.random.default_rng(0)
    T = 14500
    t = np.arange(T)
    p = tmp_path_factory.mktemp("cal") / "e.csv"
    pd.DataFrame({"date": pd.date_range("2016-07-01", periods=T, freq="h"),
                  "OT": np.sin(2 * np.pi * t / 24) + 0.2 * rng.normal(size=T)}).to_csv(
        p, index=False)
    return p


def _data(path, **kw) -> ForecastData:
    return ForecastData(ForecastDataConfig(path=str(path), protocol="ltsf", metric_space="scaled",
                                           calendar=False, input_length=48, horizon=24,
                                           season_length=24, **kw))


def test_reports_calibrate_an_untrained_head_to_its_level(sine):
    data = _data(sine)
    torch.manual_seed(0)
    m = build_forecaster(ForecastModelConfig(arch="segrnn", cell="gru", hidden_size=8,
                                             segment_length=12, head="gaussian", norm="last"),
                         n_targets=1, horizon=24, input_length=48)
    reps = interval_reports(m, data, window=720)
    none, split, roll = reps["none"], reps["split"], reps["rolling"]
    assert set(none) >= {"model"} and "naive" not in none  # a point forecast has no interval
    assert abs(none["model"]["coverage_80"] - 0.8) > 0.1  # random weights: far off
    for rep in (split, roll):
        assert rep["windows"] == 2857
        for name in ("model", "naive", "seasonal_naive", "linear_ar"):
            assert rep[name]["coverage_80"] == pytest.approx(0.8, abs=0.04), (rep["calibration"],
                                                                             name)
            assert rep[name]["coverage_95"] == pytest.approx(0.95, abs=0.03)
        assert rep["model"]["crps"] < none["model"]["crps"]
    assert roll["window"] == {k: 720 for k in ("model", "naive", "seasonal_naive", "linear_ar")}
    # the central interval alone, as evaluate calibrates it, is the report's 80% interval
    r = evaluate_windows(m, data, "test")
    lo, hi = calibrate_interval(m, data, r, "test", method="split")
    assert float(((r["actual"] >= lo) & (r["actual"] <= hi)).mean()) == pytest.approx(
        split["model"]["coverage_80"], abs=1e-3)
    with pytest.raises(ValueError, match="split calibrates test on validation"):
        calibrate_interval(m, data, r, "valid", method="split")


def test_config_names_the_calibration(sine):
    cfg = build_run_config({"task": "forecast", "data": {"path": str(sine),
                                                         "interval_calibration": "rolling",
                                                         "calibration_window": 336}})
    assert (cfg.data.interval_calibration, cfg.data.calibration_window) == ("rolling", 336)
    with pytest.raises(ConfigError, match="data.interval_calibration.*'none', 'split', 'rolling'"):
        build_run_config({"task": "forecast", "data": {"interval_calibration": "always"}})
    with pytest.raises(ConfigError, match="data.calibration_window"):
        _data(sine, calibration_window=0)


@pytest.fixture(scope="module")
def trained(sine, tmp_path_factory):
    """One epoch of a quantile SegRNN on the sine (a head far too narrow), recipe calibration
    rolling with K = 336: (training summary, best checkpoint)."""
    out = tmp_path_factory.mktemp("calrun") / "run"
    s = train_forecast(
        "configs/ltsf_etth1_segrnn.yaml", out=out,
        overrides=[f"data.path={sine}", "data.data_dir=null", "data.input_length=48",
                   "data.horizon=24", "data.targets=[OT]", "data.train_stride=4", "model.hidden_size=8",
                   "model.segment_length=12", "model.head=quantile", "trainer.max_epochs=1",
                   "trainer.loggers=[]", "trainer.plot=false",
                   "data.interval_calibration=rolling", "data.calibration_window=336"])
    return s, out / "best"


def test_evaluate_checkpoint_calibrates_the_interval(trained):
    s, best = trained
    raw = evaluate_checkpoint(best, calibration="none")
    assert raw["calibration"] == "none"
    assert raw["metrics"]["model"]["coverage"] < 0.5  # one epoch: the head is far too narrow
    cov = {}
    for method in (None, "split"):  # None: the recipe's (rolling, K = 336)
        r = evaluate_checkpoint(best, calibration=method)
        assert r["calibration"] == (method or "rolling")
        assert r["metrics"]["model"]["mse"] == raw["metrics"]["model"]["mse"]
        cov[method] = r["metrics"]["model"]["coverage"]
        assert cov[method] == pytest.approx(0.8, abs=0.04)
    # training's test report is the recipe's calibrated one
    assert s["report"]["calibration"] == "rolling"
    assert s["report"]["metrics"]["model"]["coverage"] == cov[None]
    with pytest.raises(ValueError, match="--calibration always"):
        evaluate_checkpoint(best, calibration="always")


def _upto(sine, tmp_path, end: int, start: int = 0):
    p = tmp_path / f"upto_{start}_{end}.csv"
    pd.read_csv(sine).iloc[start:end].to_csv(p, index=False)
    return p


def test_predict_split_calibration_is_evaluates_on_the_same_window(trained, sine, tmp_path):
    """predict --calibration split on the history before the first test window gives exactly
    the interval evaluate's split calibration gives that window (both CQR on every validation
    window, in scaled units)."""
    _, best = trained
    model, state, cfg = load_forecast_checkpoint(best)
    data = ForecastData(cfg.data, state=state)
    r = evaluate_windows(model, data, "test")
    lo, hi = calibrate_interval(model, data, r, "test", method="split")
    t0 = r["origins"][0][1]
    out = predict_checkpoint(best, _upto(sine, tmp_path, t0), calibration="split")
    assert out.attrs["calibration"] == "split"
    exp_lo, exp_hi = (data.pre.unscale(v[:1], "")[0, :, 0] for v in (lo, hi))
    assert np.allclose(out["lower_80"], exp_lo, atol=1e-4)
    assert np.allclose(out["upper_80"], exp_hi, atol=1e-4)
    raw = predict_checkpoint(best, _upto(sine, tmp_path, t0), calibration="none")
    assert raw.attrs["calibration"] == "none"
    assert np.allclose(raw["forecast"], out["forecast"])  # calibration moves the interval only
    assert ((out["upper_80"] - out["lower_80"]) > (raw["upper_80"] - raw["lower_80"])).all()
    hist = _upto(sine, tmp_path, t0)
    sine.rename(sine.with_suffix(".away"))  # the recipe's file gone: a one-line error, not a crash
    try:
        with pytest.raises(ValueError, match="split calibration .* could not be read .*--data-dir"):
            predict_checkpoint(best, hist, calibration="split")
    finally:
        sine.with_suffix(".away").rename(sine)


def test_predict_rolling_calibration_reads_the_last_windows_of_the_history(trained, sine,
                                                                         tmp_path):
    _, best = trained
    L, H, K = 48, 24, 336
    df = pd.read_csv(sine)
    # the recipe's rolling rule (K = 336 complete windows) is the default
    ends = range(12000, 14400, 200)  # 12 forecast origins in the test months
    inside, raw_inside = [], []
    for T in ends:
        out = predict_checkpoint(best, _upto(sine, tmp_path, T))
        assert out.attrs["calibration"] == "rolling"
        y = df["OT"].to_numpy()[T:T + H]
        inside.append((out["lower_80"] <= y) & (y <= out["upper_80"]))
        raw = predict_checkpoint(best, _upto(sine, tmp_path, T), calibration="none")
        raw_inside.append((raw["lower_80"] <= y) & (y <= raw["upper_80"]))
    assert np.mean(inside) == pytest.approx(0.8, abs=0.1)
    assert np.mean(raw_inside) < 0.5
    # only the last K complete windows count: history cut to exactly what they need, same result
    T = 13000
    full = predict_checkpoint(best, _upto(sine, tmp_path, T))
    cut = predict_checkpoint(best, _upto(sine, tmp_path, T, start=T - (L + K + H - 1)))
    assert np.allclose(full[["lower_80", "upper_80"]], cut[["lower_80", "upper_80"]], atol=1e-5)
    # one window fewer than K: the set changes
    less = predict_checkpoint(best, _upto(sine, tmp_path, T, start=T - (L + K + H - 2)))
    assert not np.allclose(full[["lower_80", "upper_80"]], less[["lower_80", "upper_80"]])
    # too short a history to bound the 80% interval (needs 4 complete windows): one-line error
    with pytest.raises(ValueError, match=r"rolling calibration of the 80% interval has 2 complete "
                                         r"calibration windows; it needs at least 4"):
        predict_checkpoint(best, _upto(sine, tmp_path, T, start=T - (L + H + 1)))


def test_the_forecast_server_calibrates_as_predict_does(trained, sine, tmp_path):
    """The streaming/HTTP predictor of an LTSF checkpoint (the protocol's split rows do not
    apply to a request) gives predict's rolling-calibrated interval for the same history, and
    says how much history that takes."""
    from rnnkit.serve import load_predictor

    _, best = trained
    L, H = 48, 24
    T = 13000
    hist = pd.read_csv(sine).iloc[T - (L + 336 + H - 1):T]
    ref = predict_checkpoint(best, _upto(sine, tmp_path, T, start=T - (L + 336 + H - 1)))
    p = load_predictor(best)
    assert p.facts()["interval_calibration"] == "rolling"
    assert p.facts()["min_history"] == L + H - 1 + 4  # 4 complete windows bound an 80% interval
    got = p.forecast(list(hist["date"]), {"OT": list(hist["OT"])})
    assert np.allclose([r["forecast"] for r in got], ref["forecast"], atol=1e-5)
    assert np.allclose([r["lower"] for r in got], ref["lower_80"], atol=1e-5)
    assert np.allclose([r["upper"] for r in got], ref["upper_80"], atol=1e-5)
    # streaming keeps the K windows' rows: the last step's forecast is the same
    p.reset()
    outs = [p.step(t, {"OT": v}) for t, v in zip(hist["date"], hist["OT"], strict=True)]
    assert outs[L + H + 1] is None and outs[L + H + 2] is not None  # from the 4th window on
    assert np.allclose([r["upper"] for r in outs[-1]], ref["upper_80"], atol=1e-5)
    with pytest.raises(ValueError, match=r"needs the last 75 \(input_length=48, difference=0, "
                                         r"and 27 more for the rolling interval calibration\)"):
        p.forecast(list(hist["date"][:60]), {"OT": list(hist["OT"][:60])})
