"""The forecast pipeline's streaming predictor (re-exported by :mod:`rnnkit.tasks.predictors`).

:class:`ForecastPredictor` (``forecast``): ``step(timestamp, values)`` appends one row and, once
``input_length`` rows are in, returns the forecast of the next ``horizon`` steps; the window of
the last rows is the carried state.  Its interval is calibrated as the recipe's
``data.interval_calibration`` says, as ``forecast predict`` does
(:class:`~rnnkit.tasks.forecast_intervals.IntervalCalibrator`).

Example::

    p = load_predictor("runs/etth1/best")
    p.forecast(timestamps, {"OT": values})  # [{"timestamp", "step", "target", "forecast", ...}]
"""

from __future__ import annotations

import tempfile
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["ForecastPredictor"]


def _check_columns(values: dict[str, Any], expected: list[str]) -> None:
    """``values`` has exactly the model's target and covariate columns (an extra key is not
    silently dropped: it is a typo, the time column, or a covariate the model never saw)."""
    missing = [t for t in expected if t not in values]
    if missing:
        raise ValueError(f"values: missing target column(s) {missing}; expected {expected}")
    extra = [k for k in values if k not in expected]
    if extra:
        raise ValueError(f"values[{str(extra[0])[:60]!r}]: not a target or covariate of this "
                         f"model; expected the keys {expected}")


def _check_series(values: dict[str, list[float]], targets: list[str], n: int) -> None:
    _check_columns(values, targets)
    for k, v in values.items():
        if len(v) != n:
            raise ValueError(f"values[{k!r}]: {len(v)} values for {n} timestamps")


class ForecastPredictor:
    """Forecasts of the next ``horizon`` steps from the latest ``input_length`` rows."""

    task = "forecast"
    api = "forecast"  # POST /forecast

    def __init__(self, model: torch.nn.Module, state: dict[str, Any], config: Any):
        self.model, self.state, self.config = model.eval(), state, config
        d = config.data
        self.targets: list[str] = list(state["schema"]["targets"])
        self.time_col: str = state["schema"]["time_col"] or "time"
        self.covariates: list[str] = list(d.past_covariates) + list(d.future_covariates)
        if d.future_covariates:
            raise ValueError(
                "serving forecasts with known-future covariates is not supported yet: the "
                "request would have to carry the future rows"
            )
        from rnnkit.tasks.forecast_intervals import IntervalCalibrator

        self.calibrate = IntervalCalibrator(self.model, config, state)
        self.need, self.keep = self.calibrate.history(d)
        self.reset()

    def facts(self) -> dict[str, Any]:
        """What ``GET /info`` says of the model."""
        d = self.config.data
        return {"targets": self.targets, "input_length": d.input_length, "horizon": d.horizon,
                "interval_calibration": self.calibrate.method, "min_history": self.need}

    def reset(self) -> None:
        self.rows: deque[dict[str, Any]] = deque(
            maxlen=max(self.keep, self.config.data.season_length) + 1
        )

    def step(self, timestamp: str, values: dict[str, float]) -> list[dict[str, Any]] | None:
        """Append one row; the forecast of the next ``horizon`` steps once the window is full."""
        _check_columns(values, self.targets + self.covariates)
        self.rows.append(
            {self.time_col: timestamp, **{k: values[k] for k in self.targets + self.covariates}}
        )
        if len(self.rows) < self.need:
            return None
        return self._forecast(list(self.rows))

    def forecast(
        self, timestamps: list[str], values: dict[str, list[float]]
    ) -> list[dict[str, Any]]:
        """Forecast after the last of ``timestamps`` (a history of at least ``input_length``
        rows)."""
        _check_series(values, self.targets + self.covariates, len(timestamps))
        if len(timestamps) < self.need:
            d = self.config.data
            why = (f"input_length={d.input_length}, difference={d.difference}" +
                   (f", and {self.need - d.input_length - d.difference} more for the rolling "
                    f"interval calibration" if self.calibrate.method == "rolling" else ""))
            raise ValueError(
                f"timestamps: {len(timestamps)} rows given; the model needs the last {self.need} "
                f"({why})"
            )
        rows = [
            {self.time_col: t, **{k: v[i] for k, v in values.items()}}
            for i, t in enumerate(timestamps)
        ]
        return self._forecast(rows)

    @torch.no_grad()
    def _forecast(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        import pandas as pd

        from rnnkit.data.timeseries import future_index
        from rnnkit.models.forecast import point_forecast, quantile_forecast
        from rnnkit.tasks.forecast_data import ForecastData

        d = self.config.data
        d.end_offset = 0
        d.protocol = "none"  # the benchmark's split rows do not apply to a request's history
        # the file reader validates rows
        with tempfile.TemporaryDirectory(prefix="rnnkit-serve-") as tmp:
            path = Path(tmp) / "request.csv"
            pd.DataFrame(rows).to_csv(path, index=False)
            try:
                fd = ForecastData(d, state=self.state, path=path)
            except ValueError as e:  # the reader names its file: the request, not a server path
                raise ValueError(str(e).replace(str(path), "request (as a table: row 1 the header, "
                                                          "row k+2 timestamps[k])")) from None
        s, T = fd.series[0], len(fd.series[0])
        idx = future_index(s.index[-1], fd.ts.freq, fd.H)
        xf = fd.known_future(np.zeros((fd.H, 0)), idx, s.id)  # (H, F): calendar features
        x = fd.inputs[T - fd.L:T][None]  # (1, L, C+P+F)
        p = self.model(x, torch.tensor(xf, dtype=torch.float32)[None])  # (1, H, C, K)
        z_last = fd.z[T - max(fd.lag, 1):T][None]
        steps = fd.steps(s.id, idx)[None]
        pt = fd.pre.unscale(
            fd.pre.from_model(point_forecast(p, self.config.model).numpy(), s.id, steps, z_last),
            s.id,
        )[0]  # (H, C)
        lvl = d.interval_level
        q = fd.pre.from_model(
            quantile_forecast(p, self.config.model, [(1 - lvl) / 2, (1 + lvl) / 2]).numpy(),
            s.id,
            steps,
            z_last,
        )[0]  # (H, C, 2), scaled
        q = self.calibrate(fd, 0, q, "request")
        q = fd.pre.unscale(np.moveaxis(q, -1, 0), s.id)  # (2, H, C)
        out = []
        for h in range(fd.H):
            for c, name in enumerate(self.targets):
                r = {
                    "timestamp": str(idx[h]),
                    "step": h + 1,
                    "target": name,
                    "forecast": float(pt[h, c]),
                }
                if self.config.model.head != "point":
                    r["lower"], r["upper"] = float(q[0, h, c]), float(q[1, h, c])
                out.append(r)
        return out
