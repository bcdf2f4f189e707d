"""Forecasting pipeline: metrics by hand, Task + Trainer + checkpoint round trip, predict, bad input."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from rnnkit.commands.forecast import add_parser
from rnnkit.data.timeseries import TimeSeriesError
from rnnkit.tasks.forecast import (
    ForecastData,
    backtest,
    evaluate_checkpoint,
    evaluate_windows,
    forecast_metrics,
    load_forecast_checkpoint,
    predict_checkpoint,
    train_forecast,
)
from rnnkit.train.config import ConfigError, build_run_config, load_recipe

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / ".." / "shared" / "datasets"


def test_metrics_by_hand():
    a = np.array([[1.0], [2.0], [4.0]])
    f = np.array([[2.0], [2.0], [2.0]])
    m = forecast_metrics(a, f, scale=0.5)
    assert m["mae"] == pytest.approx(1.0)  # (1 + 0 + 2) / 3
    assert m["mse"] == pytest.approx(5 / 3) and m["rmse"] == pytest.approx(np.sqrt(5 / 3))
    assert m["mape"] == pytest.approx(100 * (1 + 0 + 0.5) / 3)
    assert m["smape"] == pytest.approx(100 * (2 / 3 + 0 + 4 / 6) / 3)  # 200 |a-f| / (|a|+|f|)
    assert m["mase"] == pytest.approx(2.0)  # MAE / 0.5
    # a zero actual: MAPE skips it, sMAPE counts it, 0/0 in sMAPE counts as 0
    z = forecast_metrics(np.array([0.0, 2.0, 0.0]), np.array([1.0, 1.0, 0.0]))
    assert z["mape"] == pytest.approx(50.0) and z["smape"] == pytest.approx(100 * (2 + 2 / 3 + 0) / 3)
    # a NaN forecast (a diverged model) is not a perfect sMAPE; a NaN actual is not scored
    assert np.isnan(forecast_metrics(np.array([1.0, 2.0]), np.array([np.nan, 2.0]))["smape"])
    with pytest.raises(ValueError, match="1 actual value\\(s\\) are not finite"):
        forecast_metrics(np.array([1.0, np.nan]), np.array([1.0, 2.0]))


def _write_series(path: Path, T: int = 240, future_rows: int = 0, seed: int = 0) -> None:
    """Two hourly series in long format: a daily sine, a level, and a known-future 'promo' bump."""
    rng = np.random.default_rng(seed)
    rows = []
    for sid, level in (("a", 10.0), ("b", 20.0)):
        ix = pd.date_range("2021-03-01", periods=T + future_rows, freq="h")
        promo = (np.arange(T + future_rows) % 17 == 0).astype(float)
        y = level + 2 * np.sin(2 * np.pi * np.arange(T + future_rows) / 24) + 3 * promo
        y = y + 0.05 * rng.normal(size=len(y))
        for t in range(T + future_rows):
            rows.append({"time": ix[t], "store": sid, "sales": "" if t >= T else f"{y[t]:.4f}",
                         "promo": int(promo[t])})
    pd.DataFrame(rows).to_csv(path, index=False)


def _recipe(tmp_path: Path, **data) -> Path:
    raw = {
        "task": "forecast",
        "data": {"path": str(tmp_path / "sales.csv"), "series_id": "store", "targets": ["sales"],
                 "future_covariates": ["promo"], "input_length": 24, "horizon": 6, "val_size": 30,
                 "test_size": 30, "season_length": 24, "per_series": True, "batch_size": 32, **data},
        "model": {"cell": "gru", "hidden_size": 16, "strategy": "seq2seq", "attention": "dot",
                  "head": "quantile", "norm": "last"},
        "optim": {"lr": 0.01},
        "trainer": {"max_epochs": 4, "progress": False, "loggers": [], "plot": False, "threads": 1,
                    "checkpoint_every_steps": None, "log_every_steps": 1000},
    }
    p = tmp_path / "recipe.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fc")
    _write_series(tmp / "sales.csv")
    summary = train_forecast(_recipe(tmp), out=tmp / "run")
    return tmp, summary


def test_train_reports_model_and_baselines_and_writes_outputs(trained):
    tmp, s = trained
    run = Path(s["run_dir"])
    rep = json.loads((run / "report.json").read_text())
    assert set(rep["metrics"]) == {"model", "naive", "seasonal_naive", "linear_ar"}
    # 2 series x (30 - 6 + 1) test windows, each scored on the same windows
    assert rep["windows"] == 2 * 25 and rep["split"] == "test"
    assert 0.0 <= rep["metrics"]["model"]["coverage"] <= 1.0
    # the data are a daily sine: seasonal naive (m=24) must beat naive by far
    assert rep["metrics"]["seasonal_naive"]["mae"] < 0.5 * rep["metrics"]["naive"]["mae"]
    # the RNN learned something: better than naive on this easy series
    assert rep["metrics"]["model"]["mae"] < rep["metrics"]["naive"]["mae"]
    for f in ("forecast.png", "test_forecasts.csv", "best/scaler.json", "best/model.safetensors"):
        assert (run / f).is_file(), f
    csv = pd.read_csv(run / "test_forecasts.csv")
    assert {"forecast", "lower_80", "upper_80", "seasonal_naive", "actual"} <= set(csv.columns)


def test_scaler_is_fitted_on_the_training_split_only(trained):
    tmp, s = trained
    _, state, cfg = load_forecast_checkpoint(Path(s["run_dir"]) / "best")
    df = pd.read_csv(tmp / "sales.csv")
    a = df[df.store == "a"].sales.to_numpy()[: 240 - 60]  # train = all but val (30) and test (30)
    loc, scale = state["preprocessor"]["scaler"]["stats"]["a"]
    assert loc[0] == pytest.approx(a.mean()) and scale[0] == pytest.approx(a.std())


def test_checkpoint_round_trip_reproduces_the_report(trained):
    tmp, s = trained
    run = Path(s["run_dir"])
    again = evaluate_checkpoint(run / "best", split="test")
    rep = json.loads((run / "report.json").read_text())
    for k, v in rep["metrics"]["model"].items():
        assert again["metrics"]["model"][k] == pytest.approx(v, rel=1e-6)


def test_predict_writes_the_next_horizon_with_covariates(trained, tmp_path):
    tmp, s = trained
    ckpt = Path(s["run_dir"]) / "best"
    _write_series(tmp_path / "next.csv", T=240, future_rows=6)
    out = tmp_path / "fc.csv"
    # through the command line, as `rnnkit forecast predict`
    root = argparse.ArgumentParser(prog="rnnkit")
    add_parser(root.add_subparsers(dest="command", required=True))
    a = root.parse_args(["forecast", "predict", str(ckpt), "--data", str(tmp_path / "next.csv"),
                         "--output", str(out), "--plot", str(tmp_path / "fc.png")])
    assert a.func(a) == 0
    df = pd.read_csv(out, parse_dates=["timestamp"])
    assert len(df) == 2 * 6 and list(df.series_id.unique()) == ["a", "b"]
    assert df.timestamp.iloc[0] == pd.Timestamp("2021-03-11 00:00")  # 240 h after the start
    assert (df.lower_80 <= df.forecast).all() and (df.forecast <= df.upper_80).all()
    assert (tmp_path / "fc.png").stat().st_size > 10_000
    # the same numbers as the model run by hand on the last window of series b
    model, state, cfg = load_forecast_checkpoint(ckpt)
    fd = ForecastData(cfg.data, state=state, path=tmp_path / "next.csv", future_rows=True)
    x = fd.inputs[fd.offsets[1] + 240 - 24:fd.offsets[1] + 240][None]
    idx = pd.date_range("2021-03-11", periods=6, freq="h")
    promo = (np.arange(240, 246) % 17 == 0).astype(float)
    loc, scale = fd.cov_scaler.params("b")
    from rnnkit.data.timeseries import calendar_features

    xf = np.hstack([((promo - loc[0]) / scale[0])[:, None], calendar_features(idx, "h")[0]])
    with torch.no_grad():
        med = model(x, torch.tensor(xf, dtype=torch.float32)[None])[0, :, 0, 1].numpy()
    expected = fd.pre.unscale(med[:, None], "b")[:, 0]
    np.testing.assert_allclose(df[df.series_id == "b"].forecast.to_numpy(), expected, rtol=1e-5)


def test_covariate_missing_at_prediction_time(trained, tmp_path):
    tmp, s = trained
    ckpt = Path(s["run_dir"]) / "best"
    _write_series(tmp_path / "short.csv", T=240, future_rows=3)  # 3 of the 6 future rows
    with pytest.raises(TimeSeriesError, match=r"short\.csv: column 'promo': known-future covariate missing at "
                       r"prediction time for 2021-03-11 03:00:00 \(step 4 of 6 after the last target at row \d+"):
        predict_checkpoint(ckpt, tmp_path / "short.csv")
    _write_series(tmp_path / "hole.csv", T=240, future_rows=6)
    df = pd.read_csv(tmp_path / "hole.csv", dtype=str, keep_default_na=False)
    df.loc[243, "promo"] = ""  # series a, 4th future step; file row = 243 + 2
    df.to_csv(tmp_path / "hole.csv", index=False)
    with pytest.raises(TimeSeriesError, match=r"hole\.csv: row 245, column 'promo': known-future covariate missing"):
        predict_checkpoint(ckpt, tmp_path / "hole.csv")


def test_a_missing_last_observation_is_not_taken_for_a_forecast_step(trained, tmp_path):
    tmp, s = trained
    _write_series(tmp_path / "gap.csv", T=240, future_rows=6)
    df = pd.read_csv(tmp_path / "gap.csv", dtype=str, keep_default_na=False)
    df.loc[239, "sales"] = ""  # series a's last observation (file row 241); 6 future rows follow
    df.to_csv(tmp_path / "gap.csv", index=False)
    with pytest.raises(TimeSeriesError, match=r"gap\.csv: row 241, column 'sales': 7 rows after the last "
                                              r"target \(row 240 of series 'a'\) have empty targets, "
                                              r"more than the horizon of 6"):
        predict_checkpoint(Path(s["run_dir"]) / "best", tmp_path / "gap.csv")


def test_rnnkit_forecast_command(trained, tmp_path, capsys):
    """``rnnkit forecast`` (found by rnnkit.commands): evaluate prints JSON; bad input is one line, status 2."""
    import rnnkit.commands as cli

    tmp, s = trained
    ckpt = str(Path(s["run_dir"]) / "best")
    assert cli.main(["forecast", "evaluate", ckpt, "--split", "valid"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["split"] == "valid" and out["windows"] == 2 * 25
    _write_series(tmp_path / "none.csv", T=240)  # no rows for the future covariate
    assert cli.main(["forecast", "predict", ckpt, "--data", str(tmp_path / "none.csv"),
                     "--output", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnnkit: error: ") and "none.csv: column 'promo': known-future covariate" in err
    assert len(err.splitlines()) == 1


def test_forecast_train_resume_equals_the_uninterrupted_run(trained, capsys):
    """A run stopped mid-epoch (as a kill leaves it: last/ only, no report) and continued with
    ``rnnkit forecast train --resume`` ends with the uninterrupted run's weights and report; a
    recipe-less resume takes the run's saved config."""
    from safetensors.torch import load_file

    import rnnkit.commands as cli

    tmp, s = trained
    full = json.loads((Path(s["run_dir"]) / "report.json").read_text())
    part = tmp / "part"
    train_forecast(_recipe(tmp), out=part, overrides=["trainer.max_steps=13"])
    (part / "report.json").unlink()  # a kill leaves no report
    assert json.loads((part / "summary.json").read_text())["step"] == 13 < s["step"]
    assert cli.main(["forecast", "train", str(_recipe(tmp)), "--resume", str(part)]) == 0
    capsys.readouterr()
    rep = json.loads((part / "report.json").read_text())
    assert rep["metrics"]["model"] == full["metrics"]["model"]
    a, b = (load_file(Path(d) / "best" / "model.safetensors") for d in (s["run_dir"], part))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # without the recipe: the saved config (max_steps 13 lifted by an override)
    again = tmp / "again"
    train_forecast(_recipe(tmp), out=again, overrides=["trainer.max_steps=13"])
    train_forecast(None, resume=again, overrides=["trainer.max_steps=null"])
    assert json.loads((again / "report.json").read_text())["metrics"]["model"] == \
        full["metrics"]["model"]
    assert cli.main(["forecast", "train"]) == 2
    assert "--resume RUN_DIR" in capsys.readouterr().err


def test_rolling_origin_backtest_with_refits(trained):
    tmp, s = trained
    rep = json.loads((Path(s["run_dir"]) / "report.json").read_text())
    r = backtest(_recipe(tmp), folds=2, step=12, out=tmp / "bt",
                 overrides=["trainer.max_epochs=1", "model.hidden_size=4"])
    assert [f["end_offset"] for f in r["folds"]] == [12, 0]
    assert all(f["windows"] == 2 * 25 for f in r["folds"])
    # the last fold tests the same windows as the full run: identical baseline scores
    assert r["folds"][1]["metrics"]["seasonal_naive"] == pytest.approx(rep["metrics"]["seasonal_naive"])
    assert r["folds"][0]["metrics"]["naive"]["mae"] != pytest.approx(rep["metrics"]["naive"]["mae"])
    assert r["mean"]["naive"]["mae"] == pytest.approx(np.mean([f["metrics"]["naive"]["mae"] for f in r["folds"]]))
    assert (tmp / "bt" / "backtest.json").is_file()


def test_horizon_longer_than_the_data_allows(tmp_path):
    _write_series(tmp_path / "sales.csv", T=120)
    cfg = load_recipe(_recipe(tmp_path), ["data.horizon=40"])
    with pytest.raises(TimeSeriesError, match=r"sales\.csv: column 'sales': data\.horizon=40 is longer than the "
                       r"data allows: the train split of series 'a' covers rows 2\.\.\d+ \(60 steps\)"):
        ForecastData(cfg.data)


def test_recipe_errors_name_the_key(tmp_path):
    _write_series(tmp_path / "sales.csv", T=120)
    with pytest.raises(ConfigError, match="unknown config key 'data.horizont'"):
        load_recipe(_recipe(tmp_path), ["data.horizont=4"])
    with pytest.raises(ConfigError, match="'model.strategy': 'beam' is not one of"):
        load_recipe(_recipe(tmp_path), ["model.strategy=beam"])


def _edit_series(tmp_path: Path, edit) -> None:
    """The two-series file as ``edit(frame)`` returns it (rows: a at 2..241, b at 242..481)."""
    _write_series(tmp_path / "sales.csv")
    edit(pd.read_csv(tmp_path / "sales.csv")).to_csv(tmp_path / "sales.csv", index=False)


def test_log_transform_checks_every_split_not_only_training(tmp_path):
    # a -5 in series b's test split: log would give NaN there, silently zeroed in the inputs
    _edit_series(tmp_path, lambda f: f.assign(sales=f["sales"].where(f.index != 470, -5.0)))
    cfg = load_recipe(_recipe(tmp_path), ["data.transform=log"])
    with pytest.raises(TimeSeriesError, match=r"sales\.csv: row 472, column 'sales' \(series 'b'\): "
                                              r"data\.transform=log needs target values > 0, got -5"):
        ForecastData(cfg.data)


@pytest.mark.parametrize("key, value", [("val_size", -0.01), ("val_size", -5.0), ("test_size", 1.5),
                                        ("test_size", float("nan")), ("val_size", float("inf"))])
def test_split_sizes_must_be_a_fraction_or_whole_steps(tmp_path, key, value):
    import dataclasses

    _write_series(tmp_path / "sales.csv", T=120)
    cfg = load_recipe(_recipe(tmp_path))
    with pytest.raises(ConfigError, match=rf"config key 'data\.{key}': expected a fraction in \[0, 1\) "
                                          rf"or a whole number of steps >= 1, got {value}"):
        ForecastData(dataclasses.replace(cfg.data, **{key: value}))


def test_split_rows_and_end_offset_past_the_data_are_errors(tmp_path):
    _write_series(tmp_path / "sales.csv")
    cfg = load_recipe(_recipe(tmp_path), ["data.split_rows=[120,250,300]"])
    with pytest.raises(ConfigError, match=r"'data\.split_rows': val_end 250 leaves no test split: "
                                          r"series 'a' has 240 steps"):
        ForecastData(cfg.data)
    cfg = load_recipe(_recipe(tmp_path), ["data.end_offset=-6"])
    with pytest.raises(ConfigError, match=r"'data\.end_offset': expected a number of steps >= 0, got -6"):
        ForecastData(cfg.data)
    with pytest.raises(ValueError, match=r"--step 0: expected a positive number of steps"):
        backtest(_recipe(tmp_path), folds=2, step=0, out=tmp_path / "bt")


def test_split_rows_past_a_history_do_not_stop_a_checkpoint_reading_it(trained, tmp_path):
    import dataclasses

    tmp, s = trained
    _, state, cfg = load_forecast_checkpoint(Path(s["run_dir"]) / "best")
    _write_series(tmp_path / "h.csv", T=60, future_rows=6)
    d = dataclasses.replace(cfg.data, split_rows=[120, 180, 240])  # a training file's rows
    assert len(ForecastData(d, state=state, path=tmp_path / "h.csv", future_rows=True).series[0]) == 60
    _write_series(tmp_path / "t.csv", T=60)
    with pytest.raises(ConfigError, match=r"val_end 180 leaves no test split: series 'a' has 60 steps"):
        ForecastData(d, path=tmp_path / "t.csv")  # but a file to train on must reach its test split


def test_a_split_too_short_for_a_window_is_an_error_not_skipped(tmp_path):
    from rnnkit.tasks.forecast_task import ForecastTask

    _write_series(tmp_path / "sales.csv")
    # 4 test steps, horizon 6: no test window; the run would report validation scores instead
    with pytest.raises(TimeSeriesError, match=r"data\.horizon=6 is longer than the data allows: the "
                                              r"test split of series 'a' covers rows 238\.\.241 \(4 steps\)"):
        ForecastTask(load_recipe(_recipe(tmp_path), ["data.test_size=4"]))
    # series b is a sixth as long: its share (5 steps) cannot hold a validation window, and it
    # would drop out of the scores without a word
    _edit_series(tmp_path, lambda f: f.drop(index=range(240, 440)))
    cfg = load_recipe(_recipe(tmp_path), ["data.val_size=0.125", "data.test_size=0.125"])
    with pytest.raises(TimeSeriesError, match=r"the valid split of series 'b' covers rows \d+\.\.\d+ "
                                              r"\(5 steps\)"):
        ForecastTask(cfg)
    # no test split asked for (test_size 0): validation only, as before
    assert ForecastTask(load_recipe(_recipe(tmp_path), ["data.test_size=0"])).eval_splits == ("valid",)


def test_the_run_header_names_the_grid_and_what_was_filled(tmp_path):
    from rnnkit.tasks.forecast_task import ForecastTask

    _edit_series(tmp_path, lambda f: f.drop(index=[100]))  # one hour of series a
    assert ForecastTask(load_recipe(_recipe(tmp_path), ["data.fill=linear"])).describe()["grid"] == (
        "h, 1 steps or values filled in (data.fill=linear)")
    _write_series(tmp_path / "sales.csv")
    assert ForecastTask(load_recipe(_recipe(tmp_path))).describe()["grid"] == "h"


@pytest.mark.parametrize("recipe", sorted((ROOT / "configs").glob("forecast_*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_are_valid(recipe):
    cfg = load_recipe(recipe)
    assert cfg.task == "forecast" and cfg.data.horizon >= 1
    if not (DATA / cfg.data.path).is_file():
        pytest.skip(f"needs {DATA / cfg.data.path}")
    cfg.data.data_dir = str(DATA)
    data = ForecastData(cfg.data)
    assert data.origins["test"], "the recipe must leave test windows"


@pytest.mark.skipif(not (DATA / "ett" / "ETTh1.csv").is_file(), reason="needs ../shared/datasets/ett/ETTh1.csv")
def test_etth1_informer_protocol():
    cfg = load_recipe(ROOT / "configs" / "forecast_etth1.yaml")
    cfg.data.data_dir = str(DATA)
    d = ForecastData(cfg.data)
    assert sum(len(o) for _, o in d.origins["test"]) == 2880 - 24 + 1
    ot = pd.read_csv(DATA / "ett" / "ETTh1.csv")["OT"].to_numpy()
    loc, scale = d.pre.scaler.params("")
    assert loc[0] == pytest.approx(ot[:8640].mean()) and scale[0] == pytest.approx(ot[:8640].std())
    r = evaluate_windows(None, d, "test")
    # naive on the standardised scale, by hand on the first and last test windows
    z = (ot - loc[0]) / scale[0]
    by_hand = np.mean([(z[t:t + 24] - z[t - 1]) ** 2 for t in range(11520, 14377)])
    assert r["metrics"]["naive"]["mse"] == pytest.approx(by_hand, rel=1e-9)


def test_build_run_config_types_the_sections(tmp_path):
    cfg = build_run_config({"task": "forecast", "data": {"path": "x.csv", "split_rows": [1, 2, 3]},
                            "model": {"quantiles": [0.2, 0.8]}})
    assert cfg.data.split_rows == [1, 2, 3] and cfg.model.quantiles == [0.2, 0.8]


def test_the_data_hash_sees_which_split_an_edit_falls_in(tmp_path):
    """``data_splits`` (hashed for ``--resume``): a value edited in the test rows changes the
    test split's hash only; one in the training rows changes the training split's (and the
    later splits', whose windows read back into those rows)."""
    from rnnkit.tasks.forecast_task import ForecastTask
    from rnnkit.train.fingerprint import data_fingerprints

    _write_series(tmp_path / "sales.csv")

    def hashes(edit_row=None):
        if edit_row is not None:
            frame = pd.read_csv(tmp_path / "sales.csv")
            frame.loc[edit_row, "sales"] += 1.0
            frame.to_csv(tmp_path / "sales.csv", index=False)
        return data_fingerprints(ForecastTask(load_recipe(_recipe(tmp_path))))

    before = hashes()
    after_test = hashes(edit_row=239)  # series "a"'s last row: in its test split
    assert {k for k in before if before[k] != after_test[k]} == {"test"}
    after_train = hashes(edit_row=10)
    assert {k for k in before if after_test[k] != after_train[k]} == {"train", "valid", "test"}
