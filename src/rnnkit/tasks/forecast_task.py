"""Time-series forecasting: data -> windows -> Forecaster -> Trainer -> metrics vs baselines.

A recipe names a file (:func:`rnnkit.data.timeseries.read_timeseries`), its columns, the
splits and the preprocessing (:class:`rnnkit.data.windows.Preprocessor`, fitted on the
training split only), and a :class:`~rnnkit.models.forecast.ForecastModelConfig`.  Each
series of length ``T`` is split chronologically (``split_rows`` or ``val_size``/``test_size``,
a count of steps if >= 1, else a fraction of ``T``); a split's windows are the origins whose
targets lie inside it, their inputs reaching back (the Informer protocol).

Metrics (over every window, step and target; ``v`` actuals, ``f`` forecasts, in the
``metric_space``: "original" units or the "scaled" space, e.g. standardised for Informer)::

    MSE = mean (v - f)^2      MAE = mean |v - f|      RMSE = sqrt(MSE)
    MAPE  = 100 mean |v - f| / |v|                    sMAPE = 200 mean |v - f| / (|v| + |f|)
    MASE  = mean |v - f| / s,  s = mean_t |v_t - v_{t-m}| on the series' training split
                               (m = season_length)

Every evaluation also scores the baselines on the same windows: naive (last value), seasonal
naive (last season) and a linear AR(p) fitted on the training split.  Evaluating every origin
of the test split with one trained model is rolling-origin evaluation;
:func:`~rnnkit.tasks.forecast.backtest` retrains on expanding windows.

Example::

    cfg = build_run_config({"task": "forecast", "data": {"path": "air.csv", "horizon": 12,
                            "input_length": 24, "season_length": 12}, "model": {"cell": "gru"}})
    task = ForecastTask(cfg)          # what rnnkit's Trainer runs
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.models.forecast import (
    LinearAR,
    NLinear,
    forecast_loss,
    naive_forecast,
    point_forecast,
    quantile_forecast,
    seasonal_naive_forecast,
)
from rnnkit.models.forecasters import build_forecaster
from rnnkit.tasks.forecast_data import ASSET, ForecastData, ForecastDataConfig
from rnnkit.train.checkpoint import (
    CheckpointError,
    load_model_weights,
    read_run_config,
)
from rnnkit.train.config import ConfigError, RunConfig
from rnnkit.train.sizing import build_model
from rnnkit.train.task import StepOutput

__all__ = [
    "attach_linear_ar",
    "blend_checkpoint",
    "fit_ar_blend",
    "ForecastDataConfig",
    "ForecastData",
    "ForecastTask",
    "build_forecast_task",
    "forecast_metrics",
    "evaluate_windows",
    "load_forecast_checkpoint",
    "ASSET",
]

# --------------------------------------------------------------------------- metrics


def forecast_metrics(
    actual: np.ndarray, forecast: np.ndarray, scale: np.ndarray | float = 1.0
) -> dict[str, float]:
    """MSE, MAE, RMSE, MAPE, sMAPE (both in %) and MASE over all elements.

    Args:
        actual, forecast: same shape (..., C).
        scale: the MASE denominator per element (broadcast), e.g. (N, 1, C).
    """
    if not np.isfinite(actual).all():
        raise ValueError(f"forecast_metrics: {int((~np.isfinite(actual)).sum())} actual value(s) "
                         "are not finite; a score over them would be made up")
    e = actual - forecast
    ae = np.abs(e)
    with np.errstate(divide="ignore", invalid="ignore"):
        ape = np.where(actual != 0, ae / np.abs(actual), np.nan)
        den = np.abs(actual) + np.abs(forecast)
        # 0/0 (both zero) is a perfect 0; a NaN forecast stays NaN rather than scoring 0
        sape = np.where(den > 0, 2 * ae / den, np.where(den == 0, 0.0, np.nan))
    return {
        "mse": float((e**2).mean()),
        "mae": float(ae.mean()),
        "rmse": float(np.sqrt((e**2).mean())),
        "mape": float(100 * np.nanmean(ape)) if np.isfinite(ape).any() else float("nan"),
        "smape": float(100 * sape.mean()),
        "mase": float((ae / scale).mean()),
    }


@torch.no_grad()
def _model_params(model: nn.Module, data: ForecastData, g: np.ndarray, batch: int) -> Tensor:
    dev = next(model.parameters()).device
    outs = []
    for i in range(0, len(g), batch):
        x, xf, _ = data.batch(g[i:i + batch])
        outs.append(model(x.to(dev), xf.to(dev)).float().cpu())
    return torch.cat(outs) if outs else torch.zeros(0)  # (N, H, C, K)


def evaluate_windows(model: nn.Module | None, data: ForecastData, split: str, *,
                     baselines: bool = True, quantiles: list[float] | None = None
                     ) -> dict[str, Any]:
    """Forecasts and metrics on every window of ``split`` (rolling origin, step 1).

    Returns ``{"metrics": {name: {...}}, "actual", "forecasts": {name: (N, H, C)}, "lower",
    "upper" (the model's central interval, metric space; not for a point head), "origins"
    [(series, t)], "loss"}``; names are
    "model" (if given), "naive", "seasonal_naive", "linear_ar".  With ``quantiles`` (levels in
    (0, 1)) and a model, also ``"quantiles"``: the model's forecast quantiles (N, H, C, P).
    """
    d, cfg_level = data.cfg, data.cfg.interval_level
    if not data.origins[split]:
        raise data.too_short(split, 0)
    g = data.global_origins(split)
    probs = [(1 - cfg_level) / 2, 0.5, (1 + cfg_level) / 2] + list(quantiles or [])
    res: dict[str, Any] = {"forecasts": {}, "metrics": {}}
    params = None
    if model is not None:
        was = model.training
        model.eval()
        params = _model_params(model, data, g, d.eval_batch_size)
        model.train(was)
        y = data.batch(g)[2]
        res["loss"] = float(forecast_loss(params, y, model.config))
        pt = point_forecast(params, model.config).numpy()  # (N, H, C)
        qs = quantile_forecast(params, model.config, probs).numpy()  # (N, H, C, 3 + P)
    ar = LinearAR(data.ar_p)
    ar.coef = np.asarray(data.state["ar_coef"])
    acts, outs, origins, scales = (
        [],
        {k: [] for k in ("model", "lower", "upper", "quantiles", "naive", "seasonal_naive",
                         "linear_ar")},
        [],
        [],
    )
    start = 0
    for i, o in data.origins[split]:
        sid, n = data.ids[i], len(o)
        z = data.z[data.offsets[i]:data.offsets[i] + len(data.series[i])]  # (T, C) scaled
        idx = data.series[i].index
        st = data.steps(sid, idx)
        fut = o[:, None] + np.arange(data.H)  # (n, H)

        def metric(v: np.ndarray, sid: str = sid) -> np.ndarray:
            return data._metric(data.pre, v, sid)

        acts.append(metric(z[fut]))
        if params is not None:
            z_last = z[o[:, None] + np.arange(-max(data.lag, 1), 0)]  # (n, lag, C)
            outs["model"].append(
                metric(data.pre.from_model(pt[start : start + n], sid, st[fut], z_last))
            )
            q = data.pre.from_model(qs[start:start + n], sid, st[fut], z_last)  # (n, H, C, 3+P)
            outs["lower"].append(metric(q[..., 0]))
            outs["upper"].append(metric(q[..., 2]))
            if quantiles:
                outs["quantiles"].append(np.stack([metric(q[..., j]) for j in
                                                   range(3, q.shape[-1])], -1))
        if baselines:
            # (n, Lb, C)
            hist = z[o[:, None] + np.arange(-max(data.L, d.season_length, data.ar_p), 0)]
            outs["naive"].append(metric(naive_forecast(hist, data.H)))
            outs["seasonal_naive"].append(
                metric(seasonal_naive_forecast(hist, data.H, d.season_length))
            )
            outs["linear_ar"].append(metric(ar.forecast(hist, data.H)))
        scales.append(
            np.broadcast_to(np.asarray(data.state["mase_scale"].get(sid, 1.0)), (n, 1, data.C))
        )
        origins += [(sid, int(t)) for t in o]
        start += n
    actual, scale = np.concatenate(acts), np.concatenate(scales)
    want = getattr(data, "window_counts", {}).get(split)
    if want is not None and not len(actual) == len(origins) == want:
        raise RuntimeError(f"{split}: scored {len(actual)} windows; the protocol has {want}")
    res.update(actual=actual, origins=origins)
    for k, v in outs.items():
        if v:
            res["forecasts"][k] = np.concatenate(v)
            if k not in ("lower", "upper", "quantiles"):
                res["metrics"][k] = forecast_metrics(actual, res["forecasts"][k], scale)
    if params is not None:
        lo, hi = res["forecasts"].pop("lower"), res["forecasts"].pop("upper")
        if quantiles:
            res["quantiles"] = res["forecasts"].pop("quantiles")
        if model.config.head != "point":  # the interval, and the share of actuals inside it
            res["lower"], res["upper"] = lo, hi
            res["metrics"]["model"]["coverage"] = float(((actual >= lo) & (actual <= hi)).mean())
    return res


# --------------------------------------------------------------------------- the Task


class ForecastTask:
    """The forecasting task for :class:`~rnnkit.train.Trainer` (see the module docstring)."""

    name = "forecast"
    item_name = "windows"
    valid_split_key = "data.val_size or data.split_rows"  # the no-validation hint's key

    def __init__(self, config: RunConfig, *, data_dir: str | None = None):
        self.config = config
        self.data = ForecastData(config.data, data_dir=data_dir)
        d = self.data
        d.check_windows()
        self.model = build_model(build_forecaster, config.model, n_targets=d.C, n_past=d.P,
                                 n_future=d.F, horizon=d.H, input_length=d.L, run=config)
        self.eval_splits = tuple(s for s in ("valid", "test") if d.origins[s])
        attach_linear_ar(self.model, config, d)
        self.order = d.global_origins("train")
        self.rank, self.world, self.b = 0, 1, config.data.batch_size

    @property
    def loss_name(self) -> str:
        """The training loss, as the y-label of curves.png (in the model's scaled space)."""
        m = self.config.model
        if m.head == "point":
            return f"{m.loss.upper()} (scaled targets)"
        return "pinball loss (scaled targets)" if m.head == "quantile" else "Gaussian NLL"

    def describe(self) -> dict[str, str]:
        """What the run's header says of the data (rnnkit.train.run)."""
        d = self.data
        windows = ", ".join(f"{s} {len(d.global_origins(s)):,}" for s in ("train", "valid", "test"))
        grid = f"{d.ts.freq}"
        if d.ts.filled:  # say what was made up, so a misread grid cannot pass unseen
            grid += f", {d.ts.filled:,} steps or values filled in (data.fill={d.cfg.fill})"
        return {"windows": windows, "series": f"{len(d.series):,}",
                "targets": f"{d.C} ({', '.join(d.ts.targets)})",
                "grid": grid,
                "input -> horizon": f"{self.config.data.input_length} -> {d.H} steps"}

    def setup(self, rank: int, world_size: int) -> None:
        if self.config.data.batch_size % world_size:
            raise ConfigError(
                f"config key 'data.batch_size': {self.config.data.batch_size} windows cannot be "
                f"split evenly over {world_size} processes"
            )
        self.rank, self.world, self.b = rank, world_size, self.config.data.batch_size // world_size

    def _perm(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng(self.config.trainer.seed + 7919 * epoch)
        p = self.order[rng.permutation(len(self.order))]
        # equal shares: no DDP hang
        p = p[:max(1, len(p) // self.world) * self.world] if self.world > 1 else p
        return p[self.rank::self.world]  # this rank's share

    def steps_per_epoch(self, epoch: int) -> int:
        return -(-len(self._perm(epoch)) // self.b)

    def train_batches(self, epoch: int, start_step: int) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        p = self._perm(epoch)
        for i in range(start_step, self.steps_per_epoch(epoch)):
            yield self.data.batch(p[i * self.b:(i + 1) * self.b])

    def initial_carry(self) -> Any:
        return None

    def training_step(
        self, model: nn.Module, batch: tuple[Tensor, Tensor, Tensor], carry: Any
    ) -> StepOutput:
        dev = next(model.parameters()).device
        x, xf, y = (t.to(dev) for t in batch)
        p = model(x, xf, y_teacher=y)  # (B, H, C, K)
        loss = forecast_loss(p.float(), y, self.config.model)
        return StepOutput(loss, None, x.size(0))

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        """Model loss, and MSE/MAE of the point forecast in the metric space."""
        if split not in ("train", "valid", "test"):
            raise ValueError(f"split {split!r}: expected train, valid or test")
        r = evaluate_windows(model, self.data, split, baselines=False)
        m = r["metrics"]["model"]
        return {"loss": r["loss"], "mse": m["mse"], "mae": m["mae"]}

    def finalize(self, model: nn.Module) -> dict[str, Any] | None:
        """After training, on the best weights: fit ``model.ar_blend``'s weights on every
        validation window (:meth:`SegRNN.fit_ar_blend`).  Returns what was fitted (None: nothing
        to fit), for the run's summary."""
        if not self.config.model.ar_blend:
            return None
        return fit_ar_blend(model, self.data)

    def data_splits(self) -> dict[str, Any]:
        """Each split's windows, hashed for ``--resume``: the model inputs and scaled targets of
        every series up to the split's end (its windows read back into earlier rows) and the
        window origins."""
        d, out = self.data, {}
        for k, s in enumerate(("train", "valid", "test")):
            rows = np.concatenate([np.arange(o, o + d.bounds[i][k])  # [0, split end) per series
                                   for i, o in zip(d.ids, d.offsets)])
            out[s] = (d.inputs[rows], d.z[rows], d.origins[s])
        return out

    def write_assets(self, directory: Path) -> None:
        import json

        (Path(directory) / ASSET).write_text(json.dumps(self.data.state, indent=1) + "\n")


def attach_linear_ar(model: nn.Module, config: RunConfig, data: ForecastData) -> None:
    """Hand ``data``'s linear AR (fitted on its training split) to a ``model.linear_ar`` or
    ``model.ar_blend`` SegRNN; nothing for other models.

    Raises:
        ConfigError: another arch, inputs that are not the scaled series the AR was fitted on,
            or (``ar_blend``) no validation windows to fit the blend on.
    """
    m = config.model
    if m.ar_blend_partner != "linear_ar" and not (m.arch == "segrnn" and m.ar_blend):
        raise ConfigError(f"config key 'model.ar_blend_partner': {m.ar_blend_partner!r} names "
                          "what a SegRNN is blended with, so it needs model.arch 'segrnn' and "
                          f"model.ar_blend: true (got arch {m.arch!r}, ar_blend {m.ar_blend})")
    if m.ar_blend_weights != "per_step" and not (m.arch == "segrnn" and m.ar_blend):
        raise ConfigError(f"config key 'model.ar_blend_weights': {m.ar_blend_weights!r} says "
                          "how a SegRNN's blend weights are fitted, so it needs model.arch "
                          f"'segrnn' and model.ar_blend: true (got arch {m.arch!r}, ar_blend "
                          f"{m.ar_blend})")
    for key in ("linear_ar", "ar_blend"):
        if not getattr(m, key):
            continue
        if m.arch != "segrnn":
            raise ConfigError(f"config key 'model.{key}': only model.arch 'segrnn' has it "
                              f"(got {m.arch!r})")
        if data.lag or data.pre.stl_period:
            raise ConfigError(f"config key 'model.{key}': the linear AR is fitted on the scaled "
                              "series, so the model's inputs must be those: no data.difference, "
                              "no data.stl_period")
        if key == "ar_blend" and not data.origins["valid"] and m.ar_blend_weights != "equal":
            raise ConfigError("config key 'model.ar_blend': the blend is fitted on the "
                              "validation windows, and the data has none (set data.valid_size, "
                              "use the ltsf protocol, or model.ar_blend_weights: equal)")
        if key == "ar_blend" and m.ar_blend_partner == "nlinear":
            model.set_linear_map(*nlinear_of(data).affine())
        else:
            model.set_linear_ar(np.asarray(data.state["ar_coef"]))


def nlinear_of(data: ForecastData) -> NLinear:
    """:class:`~rnnkit.models.forecast_baselines.NLinear` fitted on the training windows of
    ``data`` the model trains on (every ``data.train_stride``-th; the model's scaled space;
    ``ar_blend_partner: nlinear``), in batches of about 2**22 input values."""
    g = data.global_origins("train")
    bs = max(1, 2**22 // (data.L * data.C))
    if not len(g):
        raise ConfigError("config key 'model.ar_blend_partner': NLinear is fitted on the "
                          "training windows, and the data has none")
    C = data.C
    return NLinear().fit((x[..., :C], y) for x, y in
                         (data.batch(g[i:i + bs])[0::2] for i in range(0, len(g), bs)))


def fit_ar_blend(model: nn.Module, data: ForecastData) -> dict[str, Any]:
    """Fit an ``ar_blend`` SegRNN's weights on every validation window of ``data``, as its
    ``model.ar_blend_weights`` says (:meth:`~rnnkit.models.forecast_segrnn.SegRNN.fit_ar_blend`);
    returns their mean, min and max, how they were fitted and the number of windows (0 for
    equal weights, which read none)."""
    g, bs = data.global_origins("valid"), data.cfg.eval_batch_size
    how = model.config.ar_blend_weights
    b = model.fit_ar_blend(data.batch(g[i:i + bs])[0::2] for i in range(0, len(g), bs))
    return {"ar_blend_mean": float(b.mean()), "ar_blend_min": float(b.min()),
            "ar_blend_max": float(b.max()), "ar_blend_weights": how,
            "ar_blend_windows": 0 if how == "equal" else len(g)}


def blend_checkpoint(checkpoint: str | Path, out: str | Path, *, partner: str = "linear_ar",
                     weights: str = "per_step",
                     data_dir: str | None = None) -> dict[str, Any]:
    """Write checkpoint ``out``: the SegRNN of ``checkpoint`` with ``model.ar_blend`` turned on
    (blended with ``partner``: ``model.ar_blend_partner``) and its weights fitted on the
    validation windows of the checkpoint's own data and preprocessing as ``weights`` says
    (``model.ar_blend_weights``).  SegRNN trains the same
    with or without the blend (it is fitted after training), so this is the checkpoint training
    with ``model.ar_blend: true`` would have written.  Returns what :func:`fit_ar_blend` returns.

    Raises:
        ValueError: not a plain SegRNN point forecaster (or already blended), or an unknown
            ``partner``.
        ConfigError / CheckpointError: as :func:`attach_linear_ar` / loading.
    """
    import json

    from rnnkit.runtime import __version__
    from rnnkit.train.checkpoint import write_checkpoint
    from rnnkit.train.config import to_dict

    old, state, cfg = load_forecast_checkpoint(checkpoint)
    m = cfg.model
    if m.arch != "segrnn" or m.linear_ar or m.ar_blend or m.head != "point":
        raise ValueError(f"{checkpoint}: blend_checkpoint needs a SegRNN point forecaster "
                         f"without linear_ar or ar_blend (got arch {m.arch!r}, head {m.head!r})")
    if partner not in ("linear_ar", "nlinear"):
        raise ValueError(f"blend_checkpoint: partner={partner!r}: expected 'linear_ar' or "
                         "'nlinear'")
    if weights not in ("per_step", "shared", "equal"):
        raise ValueError(f"blend_checkpoint: weights={weights!r}: expected 'per_step', "
                         "'shared' or 'equal'")
    m.ar_blend, m.ar_blend_partner, m.ar_blend_weights = True, partner, weights
    data = ForecastData(cfg.data, data_dir=data_dir, state=state)
    model = build_model(build_forecaster, m, n_targets=data.C, n_past=data.P, n_future=data.F,
                        horizon=data.H, input_length=data.L, run=cfg, training=False)
    missing, unexpected = model.load_state_dict(old.state_dict(), strict=False)
    if unexpected or set(missing) - {"ar_map", "ar_bias", "blend"}:
        raise ValueError(f"{checkpoint}: weights do not match a blended SegRNN "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    attach_linear_ar(model, cfg, data)
    fitted = fit_ar_blend(model, data)
    write_checkpoint(out, model_state=model.state_dict(), config=to_dict(cfg), task="forecast",
                     version=__version__, write_assets=lambda d: (Path(d) / ASSET).write_text(
                         json.dumps(state, indent=1) + "\n"))
    return fitted


def build_forecast_task(config: RunConfig, data_dir: str | None = None) -> ForecastTask:
    return ForecastTask(config, data_dir=data_dir)


def load_forecast_checkpoint(directory: str | Path) -> tuple[nn.Module, dict[str, Any], RunConfig]:
    """Model (eval mode), preprocessing state (:data:`ASSET`) and run config of a checkpoint.

    Raises:
        CheckpointError: not a checkpoint, another task's, or missing/corrupted assets.
    """
    import json

    d = Path(directory)
    _, cfg = read_run_config(d, task="forecast")
    asset = d / ASSET
    if not asset.is_file():
        raise CheckpointError(f"{d}: not a complete forecasting checkpoint ({ASSET} is missing)")
    try:
        state = json.loads(asset.read_text(encoding="utf-8"))
        s = state["schema"]
        C, F = len(s["targets"]), len(cfg.data.future_covariates) + len(s["calendar"])
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{asset}: corrupted preprocessing state ({e})") from None
    model = build_model(
        build_forecaster,
        cfg.model,
        n_targets=C,
        n_past=len(cfg.data.past_covariates),
        n_future=F,
        horizon=cfg.data.horizon,
        input_length=cfg.data.input_length,
        run=cfg,
        training=False,
        source=d / "config.json",
    )
    load_model_weights(model, d)
    return model.eval(), state, cfg
