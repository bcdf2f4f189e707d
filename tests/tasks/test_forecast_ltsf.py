"""The LTSF protocol in the forecasting pipeline: splits, scaling, every window scored, recipes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnkit.models.forecasters import build_forecaster
from rnnkit.tasks.forecast import ForecastData, ForecastDataConfig, evaluate_windows, train_forecast
from rnnkit.tasks.forecast_data import ltsf_window_counts
from rnnkit.train.config import ConfigError, load_recipe
from rnnkit.train.sizing import build_model

ROOT = Path(__file__).resolve().parents[2]
ETT = ROOT / ".." / "shared" / "datasets" / "ett"


@pytest.fixture(scope="module")
def ett_like(tmp_path_factory) -> Path:
    """An hourly file with ETT's columns and 14,500 rows: a daily cycle, a drift, noise."""
    rng = np.random.default_rng(0)
    T = 14500
    t = np.arange(T)
    cols = {"date": pd.date_range("2016-07-01", periods=T, freq="h").strftime("%Y-%m-%d %H:%M:%S")}
    for k, c in enumerate(["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]):
        cols[c] = np.round(3 * np.sin(2 * np.pi * (t + 3 * k) / 24) + t / 3000
                           + 0.3 * rng.normal(size=T) + k, 4)
    p = tmp_path_factory.mktemp("ett") / "ETTx.csv"
    pd.DataFrame(cols).to_csv(p, index=False)
    return p


def _cfg(path: Path, **kw) -> ForecastDataConfig:
    base = {"path": str(path), "protocol": "ltsf", "metric_space": "scaled", "calendar": False,
            "targets": ["HUFL", "OT"], "input_length": 48, "horizon": 24, "season_length": 24,
            "eval_batch_size": 1000}
    return ForecastDataConfig(**{**base, **kw})


def test_protocol_splits_scaling_and_counts(ett_like):
    d = ForecastData(_cfg(ett_like))
    assert d.bounds[d.ids[0]] == (8640, 11520, 14400)  # the file's extra 100 rows are unused
    assert d.window_counts == {"train": 8640 - 48 - 24 + 1, "valid": 2880 - 24 + 1,
                               "test": 2880 - 24 + 1}
    assert d.window_counts == ltsf_window_counts([8640, 11520, 14400], 48, 24)
    test = d.global_origins("test")
    assert test[0] == 11520 and test[-1] + 24 == 14400
    x, _, y = d.batch(test[:1])  # the first test window's input is rows [11472, 11520)
    raw = pd.read_csv(ett_like)[["HUFL", "OT"]].to_numpy()
    mu, sd = raw[:8640].mean(0), raw[:8640].std(0)  # training rows only, population std
    assert np.allclose(x[0].numpy(), (raw[11472:11520] - mu) / sd, atol=1e-5)
    assert np.allclose(y[0].numpy(), (raw[11520:11544] - mu) / sd, atol=1e-5)


def test_protocol_strides_training_windows_only(ett_like):
    d = ForecastData(_cfg(ett_like, train_stride=4))
    assert d.window_counts["train"] == -(-(8640 - 48 - 24 + 1) // 4)
    assert d.window_counts["test"] == 2857


@pytest.mark.parametrize("key,value", [("metric_space", "original"), ("scaler", "minmax"),
                                       ("split_rows", [100, 200, 300]), ("per_series", True)])
def test_protocol_rejects_what_it_fixes(ett_like, key, value):
    with pytest.raises(ConfigError, match=f"data.{key}"):
        ForecastData(_cfg(ett_like, **{key: value}))


def test_protocol_needs_twenty_months(tmp_path, ett_like):
    short = tmp_path / "short.csv"
    pd.read_csv(ett_like).iloc[:12000].to_csv(short, index=False)
    with pytest.raises(Exception, match="14400"):
        ForecastData(_cfg(short))


def test_protocol_end_offset_moves_every_boundary(ett_like):
    """A rolling-origin fold: 4 months earlier, train [0, 5760), validation and test 2880 each,
    scaled with the fold's own training rows (nothing after 11520 is read)."""
    d = ForecastData(_cfg(ett_like, end_offset=2880))
    assert d.bounds[d.ids[0]] == (5760, 8640, 11520)
    assert d.window_counts == ltsf_window_counts([5760, 8640, 11520], 48, 24)
    assert d.window_counts["valid"] == d.window_counts["test"] == 2857
    test = d.global_origins("test")
    assert test[0] == 8640 and test[-1] + 24 == 11520
    x, _, y = d.batch(test[-1:])
    raw = pd.read_csv(ett_like)[["HUFL", "OT"]].to_numpy()
    mu, sd = raw[:5760].mean(0), raw[:5760].std(0)
    assert np.allclose(x[0].numpy(), (raw[11448:11496] - mu) / sd, atol=1e-5)
    assert np.allclose(y[0].numpy(), (raw[11496:11520] - mu) / sd, atol=1e-5)


@pytest.mark.parametrize("k", [-1, 2880 * 2, 10**6])
def test_protocol_end_offset_must_leave_training(ett_like, k):
    """Training must stay longer than validation: 8640 - k > 2880."""
    with pytest.raises(ConfigError, match=r"data.end_offset.*(k < 5760|steps >= 0, got -1)"):
        ForecastData(_cfg(ett_like, end_offset=k))


def test_protocol_fold_needs_only_its_own_months(tmp_path, ett_like):
    """Four months earlier, 16 months of rows are enough; the full protocol still needs 20."""
    short = tmp_path / "short.csv"
    pd.read_csv(ett_like).iloc[:11520].to_csv(short, index=False)
    assert ForecastData(_cfg(short, end_offset=2880)).bounds[""] == (5760, 8640, 11520)
    with pytest.raises(Exception, match="14400 steps"):
        ForecastData(_cfg(short))
    shorter = tmp_path / "shorter.csv"
    pd.read_csv(ett_like).iloc[:11519].to_csv(shorter, index=False)
    with pytest.raises(Exception, match=r"at least 11520 steps \(12\+4\+4 months at 'h', less "
                                        r"data.end_offset=2880\)"):
        ForecastData(_cfg(shorter, end_offset=2880))


def test_backtest_on_the_protocol(ett_like, tmp_path):
    """`rnnkit forecast backtest` with the protocol: fold 0 is the protocol 4 months earlier
    (its test split is the protocol's validation months), fold 1 the protocol itself."""
    from rnnkit.tasks.forecast import backtest

    rep = backtest(ROOT / "configs" / "ltsf_etth1_dlinear.yaml", folds=2, step=2880,
                   out=tmp_path / "bt", overrides=[
                       f"data.path={ett_like}", "data.data_dir=null", "data.input_length=48",
                       "data.horizon=24", "data.targets=[OT]", "trainer.max_epochs=1",
                       "trainer.loggers=[]", "trainer.plot=false"])
    assert [f["end_offset"] for f in rep["folds"]] == [2880, 0]
    assert [f["windows"] for f in rep["folds"]] == [2857, 2857]
    raw = pd.read_csv(ett_like)["OT"].to_numpy()
    for f, (a, b, c) in zip(rep["folds"], [(5760, 8640, 11520), (8640, 11520, 14400)]):
        mu, sd = raw[:a].mean(), raw[:a].std()
        z = (raw - mu) / sd  # the naive forecast of each test window: its input's last value
        err = np.stack([z[o:o + 24] - z[o - 1] for o in range(b, c - 24 + 1)])
        assert f["metrics"]["naive"]["mse"] == pytest.approx(float((err**2).mean()), rel=1e-5)


def test_every_test_window_is_scored(ett_like):
    """2857 windows in batches of 1000: the last, partial batch counts (no drop-last)."""
    from rnnkit.train.config import build_run_config

    cfg = build_run_config({"task": "forecast", "data": vars(_cfg(ett_like)),
                            "model": {"arch": "segrnn", "cell": "gru", "hidden_size": 8,
                                      "segment_length": 12, "norm": "last"}})
    d = ForecastData(cfg.data)
    m = build_model(build_forecaster, cfg.model, n_targets=d.C, horizon=d.H, input_length=d.L,
                    run=cfg)
    r = evaluate_windows(m, d, "test")
    assert r["actual"].shape == (2857, 24, 2) and len(r["origins"]) == 2857
    assert r["forecasts"]["model"].shape == (2857, 24, 2)
    assert set(r["metrics"]) == {"model", "naive", "seasonal_naive", "linear_ar"}
    e = r["actual"] - r["forecasts"]["naive"]
    assert r["metrics"]["naive"]["mse"] == pytest.approx(float((e**2).mean()))
    d.window_counts["test"] = 2856  # a dropped window is an error, never a number
    with pytest.raises(RuntimeError, match="2856"):
        evaluate_windows(m, d, "test", baselines=False)


@pytest.mark.parametrize("recipe", ["ltsf_etth1_segrnn", "ltsf_etth1_dlinear"])
def test_ltsf_recipes_train_end_to_end(ett_like, tmp_path, recipe):
    s = train_forecast(ROOT / "configs" / f"{recipe}.yaml", out=tmp_path / recipe, overrides=[
        f"data.path={ett_like}", "data.data_dir=null", "data.input_length=48", "data.horizon=24",
        "data.targets=[OT]", "data.train_stride=2", "model.hidden_size=8", "optim.lr=0.01",
        "model.segment_length=12", "trainer.max_epochs=2", "trainer.loggers=[]",
        "trainer.plot=false"])
    rep = s["report"]
    assert rep["windows"] == 2857 and rep["metric_space"] == "scaled"
    assert rep["metrics"]["model"]["mse"] < rep["metrics"]["naive"]["mse"]


@pytest.mark.parametrize("name", ["ltsf_etth1_segrnn", "ltsf_ettm1_segrnn", "ltsf_etth1_dlinear",
                                  "ltsf_ettm1_dlinear"])
def test_ltsf_recipes_follow_the_papers(name):
    c = load_recipe(ROOT / "configs" / f"{name}.yaml")
    assert c.data.protocol == "ltsf" and c.data.calendar is False and c.model.loss == "mse"
    if c.model.arch == "segrnn":  # SegRNN's lookback-96 scripts, d_model 256 on CPU (stated)
        assert (c.model.cell, c.model.dropout, c.data.batch_size, c.trainer.max_epochs,
                c.trainer.patience) == ("gru", 0.5, 256, 30, 10)
        assert c.optim.lr == 1e-3  # ETTm1: 1e-3 chosen on validation over the papers' 2e-4
        assert (c.schedule.name, c.schedule.gamma, c.schedule.decay_start) == ("step", 0.8, 4)
    else:  # LTSF-Linear's DLinear scripts
        assert (c.model.decomposition_kernel, c.trainer.max_epochs, c.trainer.patience) == (25, 10, 3)
        assert (c.optim.lr, c.data.batch_size) == ((0.005, 32) if "etth" in name else (1e-4, 8))


@pytest.mark.skipif(not ETT.is_dir(), reason=f"ETT data not found at {ETT} (shared datasets)")
@pytest.mark.parametrize("file,L,H,rows", [("ETTh1.csv", 336, 720, 2880),
                                           ("ETTm1.csv.gz", 96, 96, 11520)])
def test_ett_test_windows(file, L, H, rows):
    d = ForecastData(_cfg(ETT / file, targets=["OT"], input_length=L, horizon=H))
    assert d.window_counts["test"] == rows - H + 1 == len(d.global_origins("test"))
    assert d.window_counts["valid"] == rows - H + 1


def test_linear_ar_hybrid_starts_at_the_baseline_and_round_trips(ett_like, tmp_path):
    """model.linear_ar: the task fits the AR on the training split and hands it to the model,
    which, as built, scores exactly the linear AR baseline on every test window; trained, its
    checkpoint (the AR map is a saved buffer) scores what the run reported."""
    from rnnkit.tasks.forecast import ForecastTask, evaluate_checkpoint
    from rnnkit.train.config import build_run_config

    over = [f"data.path={ett_like}", "data.data_dir=null", "data.input_length=48",
            "data.horizon=24", "data.targets=[HUFL,OT]", "data.train_stride=2",
            "model.hidden_size=8", "model.segment_length=12", "model.linear_ar=true",
            "trainer.max_epochs=1", "trainer.loggers=[]", "trainer.plot=false"]
    cfg = load_recipe(ROOT / "configs" / "ltsf_etth1_segrnn.yaml", over)
    task = ForecastTask(cfg)
    r = evaluate_windows(task.model, task.data, "test")
    assert r["metrics"]["model"]["mse"] == pytest.approx(r["metrics"]["linear_ar"]["mse"],
                                                         rel=1e-5)
    s = train_forecast(ROOT / "configs" / "ltsf_etth1_segrnn.yaml", out=tmp_path / "run",
                       overrides=over)
    again = evaluate_checkpoint(tmp_path / "run" / "best")
    assert again["metrics"]["model"]["mse"] == pytest.approx(
        s["report"]["metrics"]["model"]["mse"], rel=1e-6)
    assert again["metrics"]["model"]["mse"] != r["metrics"]["model"]["mse"]  # it trained
    with pytest.raises(ConfigError, match="model.linear_ar.*only model.arch 'segrnn'"):
        ForecastTask(build_run_config({"task": "forecast", "data": {
            "path": str(ett_like), "targets": ["OT"], "input_length": 48, "horizon": 24},
            "model": {"arch": "rnn", "linear_ar": True}}))


def test_segrnn_fit_ar_blend_recovers_the_least_squares_weight():
    """fit_ar_blend: targets built as ``AR + b (SegRNN - AR)`` with a known b per step give
    that b back (exact least squares), clipped to [0, 1], and refitting is idempotent."""
    import torch

    from rnnkit.models.forecast import ForecastModelConfig
    from rnnkit.models.forecast_segrnn import SegRNN

    torch.manual_seed(0)
    cfg = ForecastModelConfig(arch="segrnn", cell="gru", hidden_size=8, segment_length=6,
                              norm="last", ar_blend=True)
    m = SegRNN(cfg, n_targets=2, horizon=12, input_length=24).eval()
    m.set_linear_ar(np.random.default_rng(1).normal(0, 0.2, size=(2, 4 + 1)))
    x = torch.randn(50, 24, 2)
    with torch.no_grad():
        ar, seg = m.ar_forecast(x), m(x)[..., 0]
    b = torch.linspace(-0.5, 1.5, 12)  # steps outside [0, 1] clip to the nearest end
    y = ar + b[None, :, None] * (seg - ar)
    got = m.fit_ar_blend([(x[:20], y[:20]), (x[20:], y[20:])])
    assert torch.allclose(got, b.clamp(0, 1), atol=1e-4)
    assert torch.allclose(m.fit_ar_blend([(x, y)]), got, atol=1e-6)  # b = 1 while refitting
    with torch.no_grad():  # the forward is the blend it fitted
        want = ar + got[None, :, None] * (seg - ar)
        assert torch.allclose(m(x)[..., 0], want, atol=1e-5)
    # shared: one weight, the pooled least squares sum((y - ar) gap) / sum(gap^2), by hand
    y2 = ar + 0.3 * (seg - ar) + 0.05 * torch.randn_like(ar)
    gap = (seg - ar).double()
    one = float(((y2.double() - ar.double()) * gap).sum() / (gap * gap).sum())
    assert 0.2 < one < 0.4
    shared = m.fit_ar_blend([(x, y2)], weights="shared")
    assert torch.allclose(shared, torch.full((12,), one, dtype=shared.dtype), atol=1e-5)
    per_step = m.fit_ar_blend([(x, y2)])
    assert float(per_step.std()) > 1e-3  # the noise moves each step's weight; shared does not
    assert torch.equal(m.fit_ar_blend(iter(()), weights="equal"), torch.full((12,), 0.5))
    with torch.no_grad():
        assert torch.allclose(m(x)[..., 0], (ar + seg) / 2, atol=1e-5)
    with pytest.raises(ValueError, match="weights='mean': expected 'per_step', 'shared' or"):
        m.fit_ar_blend([(x, y2)], weights="mean")
    with pytest.raises(ValueError, match="ar_blend with model.head='quantile'"):
        SegRNN(ForecastModelConfig(arch="segrnn", head="quantile", ar_blend=True), n_targets=2,
               horizon=12, input_length=24)
    with pytest.raises(ValueError, match="choose one"):
        SegRNN(ForecastModelConfig(arch="segrnn", linear_ar=True, ar_blend=True), n_targets=2,
               horizon=12, input_length=24)


def test_ar_blend_is_fitted_on_validation_after_training(ett_like, tmp_path, capsys):
    """model.ar_blend: training writes a best checkpoint whose per-step weights are the least
    squares blend of SegRNN's and the linear AR baseline's validation forecasts (computed here
    from evaluate_windows, independently of the model's fit); the checkpoint scores what the
    run reported; blend_checkpoint turns a plain SegRNN run into the same checkpoint."""
    import torch

    from rnnkit.tasks.forecast import evaluate_checkpoint
    from rnnkit.tasks.forecast_task import blend_checkpoint, load_forecast_checkpoint

    over = [f"data.path={ett_like}", "data.data_dir=null", "data.input_length=48",
            "data.horizon=24", "data.targets=[HUFL,OT]", "data.train_stride=4",
            "model.hidden_size=8", "model.segment_length=12", "trainer.max_epochs=1",
            "trainer.loggers=[]", "trainer.plot=false"]
    recipe = ROOT / "configs" / "ltsf_etth1_segrnn.yaml"
    s = train_forecast(recipe, out=tmp_path / "blend", overrides=over + ["model.ar_blend=true"])
    assert s["finalized"]["ar_blend_windows"] == 2880 - 24 + 1
    model, state, cfg = load_forecast_checkpoint(tmp_path / "blend" / "best")
    fitted = model.blend.clone()
    assert not torch.allclose(fitted, torch.ones(24))
    data = ForecastData(cfg.data, state=state)
    model.blend.fill_(1.0)  # SegRNN alone, against the baseline on the same windows
    r = evaluate_windows(model, data, "valid")
    y, seg, ar = r["actual"], r["forecasts"]["model"], r["forecasts"]["linear_ar"]
    b = (((y - ar) * (seg - ar)).sum((0, 2)) / ((seg - ar) ** 2).sum((0, 2))).clip(0, 1)
    assert np.allclose(fitted.numpy(), b, atol=1e-4)
    again = evaluate_checkpoint(tmp_path / "blend" / "best")
    assert again["metrics"]["model"]["mse"] == pytest.approx(
        s["report"]["metrics"]["model"]["mse"], rel=1e-6)
    # the same seed without the blend trains the same SegRNN; blending it afterwards matches
    train_forecast(recipe, out=tmp_path / "plain", overrides=over)
    from rnnkit.commands import main

    assert main(["forecast", "blend", str(tmp_path / "plain" / "best"), "--out",
                 str(tmp_path / "post")]) == 0  # the command the docs show
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["fitted"] == pytest.approx(s["finalized"], rel=1e-5)
    post = evaluate_checkpoint(tmp_path / "post")
    assert post["metrics"]["model"]["mse"] == pytest.approx(again["metrics"]["model"]["mse"],
                                                            rel=1e-5)
    assert printed["metrics"]["model"]["mse"] == pytest.approx(post["metrics"]["model"]["mse"])
    with pytest.raises(ValueError, match="without linear_ar or ar_blend"):
        blend_checkpoint(tmp_path / "post", tmp_path / "twice")


def test_ar_blend_with_nlinear(ett_like, tmp_path, capsys):
    """model.ar_blend_partner=nlinear: the blend's linear map is NLinear fitted on every
    training window (its forecast on the windows, recomputed here from the data's training
    windows, is the model's with the blend at 0); the weights are the least squares blend on
    validation; ``rnnkit forecast blend --partner nlinear`` of the plain run writes the same
    checkpoint; the partner without the blend is refused."""
    import torch

    from rnnkit.commands import main
    from rnnkit.models.forecast import NLinear
    from rnnkit.tasks.forecast import evaluate_checkpoint
    from rnnkit.tasks.forecast_task import load_forecast_checkpoint

    over = [f"data.path={ett_like}", "data.data_dir=null", "data.input_length=48",
            "data.horizon=24", "data.targets=[HUFL,OT]", "data.train_stride=4",
            "model.hidden_size=8", "model.segment_length=12", "trainer.max_epochs=1",
            "trainer.loggers=[]", "trainer.plot=false"]
    recipe = ROOT / "configs" / "ltsf_etth1_segrnn.yaml"
    s = train_forecast(recipe, out=tmp_path / "nl", overrides=over + [
        "model.ar_blend=true", "model.ar_blend_partner=nlinear"])
    model, state, cfg = load_forecast_checkpoint(tmp_path / "nl" / "best")
    assert cfg.model.ar_blend_partner == "nlinear"
    data = ForecastData(cfg.data, state=state)
    g = data.global_origins("train")
    x, y = (t.numpy() for t in data.batch(g)[0::2])
    want = NLinear().fit([(x, y)])
    v = data.global_origins("valid")
    xv, yv = (t.double() for t in data.batch(v)[0::2])
    nl = torch.from_numpy(want.forecast(xv.numpy()))
    with torch.no_grad():
        model.blend.zero_()
        assert torch.allclose(model(xv.float())[..., 0].double(), nl, atol=1e-4)
        fitted = s["finalized"]
        model.blend.fill_(1.0)
        seg = model(xv.float())[..., 0].double()
    b = (((yv - nl) * (seg - nl)).sum((0, 2)) / ((seg - nl) ** 2).sum((0, 2))).clamp(0, 1)
    assert fitted["ar_blend_mean"] == pytest.approx(float(b.mean()), abs=1e-4)
    # not the linear AR's map: the two partners give different forecasts
    ar = evaluate_windows(model, data, "valid")["forecasts"]["linear_ar"]
    assert not np.allclose(ar, nl.numpy(), atol=1e-3)
    train_forecast(recipe, out=tmp_path / "plain", overrides=over)
    assert main(["forecast", "blend", str(tmp_path / "plain" / "best"), "--out",
                 str(tmp_path / "post"), "--partner", "nlinear"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["fitted"] == pytest.approx(fitted, rel=1e-5)
    assert evaluate_checkpoint(tmp_path / "post")["metrics"]["model"]["mse"] == pytest.approx(
        s["report"]["metrics"]["model"]["mse"], rel=1e-5)
    # model.ar_blend_weights: equal weights (fitted on nothing) and one shared weight
    assert main(["forecast", "blend", str(tmp_path / "plain" / "best"), "--out",
                 str(tmp_path / "eq"), "--partner", "nlinear", "--weights", "equal"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["fitted"]["ar_blend_weights"] == "equal"
    assert printed["fitted"]["ar_blend_windows"] == 0 and printed["fitted"]["ar_blend_mean"] == 0.5
    eq, _, eq_cfg = load_forecast_checkpoint(tmp_path / "eq")
    assert eq_cfg.model.ar_blend_weights == "equal"
    with torch.no_grad():
        assert torch.allclose(eq(xv.float())[..., 0].double(), (seg + nl) / 2, atol=1e-4)
    sh = train_forecast(recipe, out=tmp_path / "sh", overrides=over + [
        "model.ar_blend=true", "model.ar_blend_partner=nlinear", "model.ar_blend_weights=shared"])
    one = float(((yv - nl) * (seg - nl)).sum() / ((seg - nl) ** 2).sum())
    assert sh["finalized"]["ar_blend_weights"] == "shared"
    assert sh["finalized"]["ar_blend_min"] == pytest.approx(sh["finalized"]["ar_blend_max"])
    assert sh["finalized"]["ar_blend_mean"] == pytest.approx(min(max(one, 0.0), 1.0), abs=1e-4)
    with pytest.raises(ConfigError, match="ar_blend_weights"):
        train_forecast(recipe, out=tmp_path / "bad3", overrides=over + [
            "model.ar_blend=true", "model.ar_blend_weights=mean"])
    with pytest.raises(ConfigError, match="ar_blend_weights='equal' needs model.ar_blend: true"):
        train_forecast(recipe, out=tmp_path / "bad4", overrides=over + [
            "model.ar_blend_weights=equal"])
    with pytest.raises(ConfigError, match="ar_blend_partner='nlinear' needs model.ar_blend"):
        train_forecast(recipe, out=tmp_path / "bad", overrides=over + [
            "model.ar_blend_partner=nlinear"])
    with pytest.raises(ConfigError, match="'model.ar_blend_partner'.*arch 'dlinear'"):
        train_forecast(ROOT / "configs" / "ltsf_etth1_dlinear.yaml", out=tmp_path / "bad2",
                       overrides=over[:6] + ["trainer.max_epochs=1", "trainer.loggers=[]",
                                             "trainer.plot=false",
                                             "model.ar_blend_partner=nlinear"])
    with pytest.raises(ConfigError, match="'model.ar_blend_weights'.*arch 'dlinear'"):
        train_forecast(ROOT / "configs" / "ltsf_etth1_dlinear.yaml", out=tmp_path / "bad5",
                       overrides=over[:6] + ["trainer.max_epochs=1", "trainer.loggers=[]",
                                             "trainer.plot=false",
                                             "model.ar_blend_weights=shared"])


@pytest.mark.parametrize("arch", ["segrnn_ar", "dlinear"])
def test_fixed_window_forecasters_export_and_match(ett_like, tmp_path, arch):
    """rnnkit export of SegRNN (with its AR blend) and DLinear: windows of input_length steps,
    no lengths input; the ONNX file reproduces the checkpoint's forward at a new batch size."""
    import torch

    from rnnkit.export import export_checkpoint, load_exported
    from rnnkit.tasks.forecast_task import load_forecast_checkpoint

    recipe = "ltsf_etth1_dlinear.yaml" if arch == "dlinear" else "ltsf_etth1_segrnn.yaml"
    over = [f"data.path={ett_like}", "data.data_dir=null", "data.input_length=48",
            "data.horizon=24", "data.targets=[HUFL,OT]", "data.train_stride=8",
            "trainer.max_epochs=1", "trainer.loggers=[]", "trainer.plot=false"]
    if arch != "dlinear":
        over += ["model.hidden_size=8", "model.segment_length=12", "model.ar_blend=true"]
    train_forecast(ROOT / "configs" / recipe, out=tmp_path / "run", overrides=over)
    info = export_checkpoint(tmp_path / "run" / "best", "onnx", tmp_path / "f.onnx")
    assert info["inputs"] == ["x", "xf"] and info["verify"]["max_abs_diff"] < 1e-4
    model, _, _ = load_forecast_checkpoint(tmp_path / "run" / "best")
    if arch != "dlinear":
        assert not torch.allclose(model.blend, torch.ones(24))  # the fitted blend is exported
    x = torch.randn(5, 48, 2, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = model(x, torch.zeros(5, 24, 0))
    (got,) = load_exported(tmp_path / "f.onnx", "onnx")(x, torch.zeros(5, 24, 0))
    np.testing.assert_allclose(np.asarray(got), ref.numpy(), atol=2e-5, rtol=1e-4)


def test_blend_holdout_fits_on_early_validation_and_scores_the_late(ett_like, tmp_path):
    """experiments/forecast/blend_holdout.py: the weights are fitted on the validation windows
    before the split (less a gap of H), and the three MSEs on the later windows equal those
    computed from evaluate_windows' forecasts of the same windows."""
    import importlib.util

    from rnnkit.tasks.forecast_task import load_forecast_checkpoint

    spec = importlib.util.spec_from_file_location(
        "_blend_holdout", ROOT / "experiments" / "forecast" / "blend_holdout.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    over = [f"data.path={ett_like}", "data.data_dir=null", "data.input_length=48",
            "data.horizon=24", "data.targets=[HUFL,OT]", "data.train_stride=4",
            "model.hidden_size=8", "model.segment_length=12", "trainer.max_epochs=1",
            "trainer.loggers=[]", "trainer.plot=false", "model.ar_blend=true"]
    train_forecast(ROOT / "configs" / "ltsf_etth1_segrnn.yaml", out=tmp_path / "b", overrides=over)
    row = mod.holdout(tmp_path / "b" / "best", data_dir=None)
    n, H = 2880 - 24 + 1, 24
    assert (row["windows_fit"], row["windows_checked"]) == (n // 2 - H, n - n // 2)
    model, state, cfg = load_forecast_checkpoint(tmp_path / "b" / "best")
    full = model.blend.clone()
    data = ForecastData(cfg.data, state=state)
    model.blend.fill_(1.0)
    r = evaluate_windows(model, data, "valid")
    y = r["actual"][n // 2:]
    for key, name in (("late_mse_segrnn_alone", "model"), ("late_mse_ar", "linear_ar")):
        assert row[key] == pytest.approx(float(((r["forecasts"][name][n // 2:] - y) ** 2).mean()),
                                         rel=1e-5), key
    # fitted on the earlier windows only, not on all of them as the checkpoint's were
    assert row["blend_weight_mean"] != pytest.approx(float(full.mean()), abs=1e-6)
    assert row["held_out_prefers"] == ("blend" if row["late_mse_blend"] < row[
        "late_mse_segrnn_alone"] else "SegRNN alone")


def test_blend_partner_screen_and_its_rule(ett_like, tmp_path, monkeypatch):
    """experiments/forecast/blend_partner.py: on the later validation windows, the AR alone
    scores what blend_holdout.py scores, NLinear alone what NLinear fitted here on the training
    windows scores, and each blend is fitted on the earlier windows; the test split is read
    only with ``test``.  The rule picks NLinear iff the geometric mean of the rows' held-out
    ratios is below 1, and decides nothing for a lookback with rows missing."""
    import importlib.util

    import torch

    from rnnkit.models.forecast import NLinear
    from rnnkit.tasks.forecast_task import load_forecast_checkpoint

    monkeypatch.syspath_prepend(str(ROOT / "experiments" / "forecast"))
    mods = {}
    for name in ("blend_partner", "blend_holdout"):
        spec = importlib.util.spec_from_file_location(
            f"_{name}", ROOT / "experiments" / "forecast" / f"{name}.py")
        mods[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mods[name])
    over = [f"data.path={ett_like}", "data.data_dir=null", "data.input_length=48",
            "data.horizon=24", "data.targets=[HUFL,OT]", "data.train_stride=4",
            "model.hidden_size=8", "model.segment_length=12", "trainer.max_epochs=1",
            "trainer.loggers=[]", "trainer.plot=false", "model.ar_blend=true"]
    train_forecast(ROOT / "configs" / "ltsf_etth1_segrnn.yaml", out=tmp_path / "b", overrides=over)
    row = mods["blend_partner"].screen(tmp_path / "b" / "best", None, test=False)
    held = mods["blend_holdout"].holdout(tmp_path / "b" / "best", data_dir=None)
    assert row["late_ar_alone"] == pytest.approx(held["late_mse_ar"], rel=1e-6)
    assert row["late_segrnn"] == pytest.approx(held["late_mse_segrnn_alone"], rel=1e-6)
    assert row["late_ar_blend"] == pytest.approx(held["late_mse_blend"], rel=1e-6)
    assert "test_nlinear_blend" not in row
    _, state, cfg = load_forecast_checkpoint(tmp_path / "b" / "best")
    data = ForecastData(cfg.data, state=state)
    x, y = (t.numpy() for t in data.batch(data.global_origins("train"))[0::2])
    late = data.global_origins("valid")[row["windows_fit"] + 24:]
    xl, yl = (t.numpy() for t in data.batch(late)[0::2])
    f = NLinear().fit([(x, y)]).forecast(xl.astype(np.float64))
    assert row["late_nlinear_alone"] == pytest.approx(float(((f - yl) ** 2).mean()), rel=1e-4)
    # the NLinear blend: weights by least squares on the earlier windows, scored on the later
    model, _, _ = load_forecast_checkpoint(tmp_path / "b" / "best")
    model.eval().blend.fill_(1.0)
    early = data.global_origins("valid")[:row["windows_fit"]]
    xe, ye = (t.numpy() for t in data.batch(early)[0::2])
    nl = NLinear().fit([(x, y)])
    with torch.no_grad():
        se, sl = (model(torch.from_numpy(v))[..., 0].double().numpy() for v in (xe, xl))
    fe = nl.forecast(xe.astype(np.float64))
    b = np.clip(((ye - fe) * (se - fe)).sum((0, 2)) / ((se - fe) ** 2).sum((0, 2)), 0, 1)
    blend = f + b[None, :, None] * (sl - f)
    assert row["late_nlinear_blend"] == pytest.approx(float(((blend - yl) ** 2).mean()), rel=1e-4)
    assert row["nlinear_weight_early"] == pytest.approx(float(b.mean()), abs=1e-5)
    both = mods["blend_partner"].screen(tmp_path / "b" / "best", None, test=True)
    assert {"test_ar_blend", "test_nlinear_blend", "ar_weight", "nlinear_weight"} <= set(both)
    # main(): a table of one row whose checkpoint is this one; --reuse keeps a row only for the
    # same weights, and with --test only one scored on test
    bp = mods["blend_partner"]
    res = tmp_path / "results"
    res.mkdir()
    cmd = "rnnkit forecast train x.yaml --out runs/ltsf/ltsf_ettx_m_h24_l48_segrnn_seed1"
    (res / "ltsf_ettx_m_h24_l48.json").write_text(json.dumps(
        {"runs": {"segrnn": [{"command": cmd, "mse": 1.0}]}}))
    ck = tmp_path / "runs" / "ltsf" / "ltsf_ettx_m_h24_l48_segrnn-ar_seed1"
    shutil.copytree(tmp_path / "b" / "best", ck)
    monkeypatch.setattr(bp, "ROOT", tmp_path)
    monkeypatch.setattr(bp, "RESULTS", res)
    bp.main(["--json", str(tmp_path / "s1.json")])
    first = json.loads((tmp_path / "s1.json").read_text())
    assert first["chosen"] == {"48": "nlinear" if row["late_nlinear_blend"] < row["late_ar_blend"]
                               else "linear_ar"}
    assert first["rows"][0]["late_ar_blend"] == pytest.approx(row["late_ar_blend"], rel=1e-9)
    calls = []
    real = bp.screen
    monkeypatch.setattr(bp, "screen", lambda *a: calls.append(a) or real(*a))
    bp.main(["--json", str(tmp_path / "s2.json"), "--reuse", str(tmp_path / "s1.json")])
    assert not calls  # the same weights: reused
    again = json.loads((tmp_path / "s2.json").read_text())
    assert again["rows"] == first["rows"] and again["chosen"] == first["chosen"]
    bp.main(["--json", str(tmp_path / "s3.json"), "--reuse", str(tmp_path / "s1.json"), "--test"])
    assert len(calls) == 1  # s1 was not scored on test
    unhashed = first | {"rows": [{k: v for k, v in r.items() if k != "sha256"}
                                 for r in first["rows"]]}
    (tmp_path / "s0.json").write_text(json.dumps(unhashed))
    bp.main(["--json", str(tmp_path / "s5.json"), "--reuse", str(tmp_path / "s0.json")])
    assert len(calls) == 2  # a row without the weights' hash is not taken on trust
    from safetensors.torch import load_file, save_file
    w = load_file(ck / "model.safetensors")
    w["blend"] = w["blend"] * 0.5
    save_file(w, ck / "model.safetensors")
    bp.main(["--json", str(tmp_path / "s4.json"), "--reuse", str(tmp_path / "s1.json")])
    assert len(calls) == 3  # other weights: screened again
    assert json.loads((tmp_path / "s4.json").read_text())["rows"][0]["sha256"] != \
        first["rows"][0]["sha256"]
    # the rule, on made-up rows: two rows at lookback 96 (ratios 0.5 and 1.5: geometric mean
    # 0.866), one of two at 512
    rows = [{"row": "ltsf_a_l96", "late_nlinear_blend": 0.5, "late_ar_blend": 1.0},
            {"row": "ltsf_b_l96", "late_nlinear_blend": 1.5, "late_ar_blend": 1.0},
            {"row": "ltsf_a_l512", "late_nlinear_blend": 0.5, "late_ar_blend": 1.0}]
    got = mods["blend_partner"].decide(rows, {96: 2, 512: 2})
    # decided once: a later screen with more seeds records its ratio but keeps the choice
    then = {"chosen": {"96": "linear_ar"}, "by_lookback": {"96": {"geomean_ratio": 1.01}}}
    kept = mods["blend_partner"].keep_decided(got, then)
    assert kept["chosen"] == {"96": "linear_ar"}
    assert kept["by_lookback"]["96"]["geomean_ratio"] == pytest.approx(0.75 ** 0.5)
    assert kept["by_lookback"]["96"]["decided_with"] == {"geomean_ratio": 1.01}
    again = mods["blend_partner"].keep_decided(got, kept)
    assert again["by_lookback"]["96"]["decided_with"] == {"geomean_ratio": 1.01}
    assert mods["blend_partner"].keep_decided(got, {}) == got
    assert got["chosen"] == {"96": "nlinear"}
    assert got["by_lookback"]["96"]["geomean_ratio"] == pytest.approx(0.75 ** 0.5)
    assert got["by_lookback"]["96"]["rows_nlinear_lower"] == 1
    assert "1 of the 2 rows" in got["by_lookback"]["512"]["undecided"]
    rows[1]["late_nlinear_blend"] = 2.5  # geometric mean 1.118: the AR stays
    assert mods["blend_partner"].decide(rows, {96: 2})["chosen"] == {"96": "linear_ar"}
