"""The grid checks of :mod:`rnnkit.data.timeseries`: order, frequency, gaps and fills.

Timestamps of one series must strictly increase (:func:`_check_order`) and lie on one
frequency grid, inferred when not given (:func:`_infer_freq`: the coarsest grid that holds
every timestamp); :func:`_regularize` puts a series on its grid, filling gaps and missing
values (:func:`_fill`) or raising a one-line :class:`TimeSeriesError` naming the file, row
and column.  :func:`step_summary` describes the typical step and the gaps of any timestamps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rnnkit.data._show import shown
from rnnkit.data._table import TimeSeriesError, pd_infer_freq

__all__ = ["step_summary"]



def step_summary(ts: pd.DatetimeIndex) -> dict[str, str | int | None]:
    """The typical step of increasing timestamps ``ts`` and the gaps in them.

    Returns ``{"step", "gaps", "largest_gap", "first_gap_after"}``: the median step, how many
    steps are at least 1.5 times it (a missing row or more), the longest step, and the
    timestamp before the first gap (None without gaps).  Steps print as pandas frequencies
    (``5min``, ``h``, ``24h``; whole days print in hours, as pandas 3 names a fixed day).
    """
    if len(ts) < 2:
        return {"step": None, "gaps": 0, "largest_gap": None, "first_gap_after": None}
    d = np.diff(ts.asi8)
    med = np.median(d)
    gap = d >= 1.5 * med if med > 0 else np.zeros(len(d), dtype=bool)
    def shown_step(k) -> str:
        return pd.tseries.frequencies.to_offset(pd.Timedelta(int(k), unit=ts.unit)).freqstr

    return {
        "step": shown_step(med),
        "gaps": int(gap.sum()),
        "largest_gap": shown_step(d.max()) if gap.any() else None,
        "first_gap_after": str(ts[int(np.flatnonzero(gap)[0])]) if gap.any() else None,
    }


def _in(sid: str) -> str:
    return f" in series {shown(sid)}" if sid else ""


def _check_order(path: Path, ts: pd.DatetimeIndex, rows: np.ndarray, col: str, sid: str) -> None:
    d = np.diff(ts.asi8)  # in the index's own unit; only the sign matters here
    if (d > 0).all():
        return
    i = int(np.flatnonzero(d <= 0)[0])
    kind = "duplicate" if d[i] == 0 else "non-monotonic"
    raise TimeSeriesError(
        f"{path}: row {rows[i + 1]}, column {shown(col)}: {kind} timestamp {ts[i + 1]} "
        f"after {ts[i]} at row {rows[i]}{_in(sid)} (timestamps must strictly increase)"
    )


def _grid_size(ts: pd.DatetimeIndex, off: pd.DateOffset) -> float:
    """About how many steps of ``off`` span ``ts`` (cheap: before building the grid)."""
    step = pd.Timedelta(off) if isinstance(off, pd.offsets.Tick) else (ts[0] + off) - ts[0]
    return (ts[-1] - ts[0]) / max(step, pd.Timedelta(1, unit="ns")) + 1


def _off_grid(ts: pd.DatetimeIndex, off: pd.DateOffset) -> np.ndarray:
    """(N,) True where a timestamp of ``ts`` is off the ``off`` grid that holds most of them.

    A fixed step's grid (``Tick``s, and whole days of zone-less timestamps: ``Day`` is no
    ``Tick`` in pandas 3) is anchored where most timestamps fall, so an off-grid first row is
    found too; a calendar step's grid is anchored at the first timestamp, or at the second
    where that holds more of them.
    """
    if isinstance(off, pd.offsets.Tick) or (isinstance(off, pd.offsets.Day) and ts.tz is None):
        k = int(pd.Timedelta(off) // pd.Timedelta(1, unit=ts.unit))  # the step in ts's unit
        r = ts.asi8 % max(k, 1)
        vals, counts = np.unique(r, return_counts=True)
        return r != vals[np.argmax(counts)]
    off_first = pd.date_range(ts[0], ts[-1], freq=off).get_indexer(ts) < 0
    if len(ts) < 3 or off_first.sum() <= len(ts) // 2:
        return off_first
    off_second = pd.date_range(ts[1], ts[-1], freq=off).get_indexer(ts) < 0  # ts[0] counts off
    return off_second if off_second.sum() < off_first.sum() else off_first


def _infer_freq(path: Path, ts: pd.DatetimeIndex, rows: np.ndarray, col: str) -> str:
    """The grid of strictly increasing ``ts``: the coarsest candidate that holds every timestamp.

    ``pd.infer_freq`` answers only when no step is missing.  Otherwise the candidates are
    ``pd.infer_freq`` of runs of three timestamps spread over the series (one gap spoils only
    the runs around it; this finds calendar steps such as ``MS``), then the most common step
    and the greatest common step (fixed lengths, measured in the index's own unit: pandas may
    parse timestamps as s, ms, us or ns; whole days are ``D``, as pd.infer_freq says).  A grid
    that would leave more than half of its steps missing is refused: the series is too sparse
    to guess, and ``data.freq`` must say.  A few timestamps (at most 1%, at least one) off a
    grid that holds the rest are an error at their row (file row ``rows[i]`` of ``ts[i]``)
    when taking them in would make the grid half as fine or finer, or leave no grid at all:
    hourly data with one ``10:30`` is a typo to fix, not half-hourly data with every other step
    missing (``data.freq`` says otherwise where the finer grid is meant).
    """
    if len(ts) >= 3 and (f := pd_infer_freq(ts)) is not None:
        return f.freqstr
    if len(ts) < 2:
        raise TimeSeriesError(
            f"{path}: column {shown(col)}: cannot infer a frequency from {len(ts)} "
            "timestamp(s); set data.freq"
        )
    cands: list[pd.DateOffset] = []
    if len(ts) >= 3:  # runs of 3, the fewest pd.infer_freq reads, at up to 32 places
        for a in np.unique(np.linspace(0, len(ts) - 3, num=min(32, len(ts) - 2)).astype(int)):
            f = pd_infer_freq(ts[a:a + 3])
            if f is not None and f not in cands:
                cands.append(f)
    d = np.diff(ts.asi8)  # (N-1,) steps in units of ts.unit
    vals, counts = np.unique(d, return_counts=True)
    # the modal step, the common one
    for k in (int(vals[np.argmax(counts)]), int(np.gcd.reduce(d))):
        step = pd.Timedelta(k, unit=ts.unit)
        if step < pd.Timedelta(days=28):  # months and years are calendar steps, not fixed lengths
            whole_days = step % pd.Timedelta(days=1) == pd.Timedelta(0)
            off = (
                pd.offsets.Day(step.days) if whole_days else pd.tseries.frequencies.to_offset(step)
            )
            if off not in cands:
                cands.append(off)
    best, best_n = None, None
    for off in cands:
        if _grid_size(ts, off) > 4 * len(ts) + 8:  # far too sparse; do not build the grid
            continue
        grid = pd.date_range(ts[0], ts[-1], freq=off)
        if (grid.get_indexer(ts) < 0).any():
            continue
        if best is None or len(grid) < best_n:
            best, best_n = off, len(grid)
    near = None  # the coarsest candidate that all but a few timestamps lie on
    for off in cands:
        if _grid_size(ts, off) > 4 * len(ts) + 8:
            continue
        stray = _off_grid(ts, off)
        if 0 < stray.sum() <= max(1, len(ts) // 100):
            n = _grid_size(ts[~stray], off)
            if near is None or n < near[1]:
                near = (off, n, stray)
    if near is not None and (best is None or best_n > 1.5 * near[1]):
        off, _, stray = near
        i = int(np.flatnonzero(stray)[0])
        finer = f"data.freq={best.freqstr!r}" if best is not None else "data.freq"
        raise TimeSeriesError(
            f"{path}: row {rows[i]}, column {shown(col)}: timestamp {ts[i]} is off the "
            f"{off.freqstr!r} grid that holds the other {int((~stray).sum())} timestamps "
            f"({int(stray.sum())} off it); correct or drop the row, or set {finer} if the "
            "finer grid is meant"
        )
    if best is not None and best_n <= 2 * len(ts):
        return best.freqstr
    why = (
        f"the finest grid holding them, {best.freqstr!r}, would add {best_n - len(ts)} "
        f"missing steps to {len(ts)}"
        if best is not None
        else "no regular grid holds them"
    )
    raise TimeSeriesError(f"{path}: column {shown(col)}: cannot infer a frequency from {len(ts)} "
                          f"timestamps ({why}); set data.freq, e.g. 'h' or 'MS'")


def _fill(values: np.ndarray, how: str) -> np.ndarray:
    """Fill NaN in each column of (T, K) ``values``: forward fill, linear, or zero."""
    if how == "zero":
        return np.where(np.isnan(values), 0.0, values)
    df = pd.DataFrame(values)
    if how == "ffill":
        return df.ffill().bfill().to_numpy(dtype=np.float64)  # leading gaps take the first value
    with np.errstate(over="ignore", invalid="ignore"):
        out = df.interpolate(method="linear", limit_direction="both").to_numpy(dtype=np.float64)
        if not np.isfinite(out).all():  # the slope between values near +-1.8e308 overflowed:
            scale = np.nanmax(np.abs(values), axis=0)  # (K,) interpolate in [-1, 1] instead
            scale = np.where(scale > 0, scale, 1.0)
            scaled = pd.DataFrame(values / scale).interpolate(
                method="linear", limit_direction="both"
            )
            out = np.where(np.isnan(values), scaled.to_numpy(dtype=np.float64) * scale, values)
    return out


def _regularize(path, ts, rows, cols, values, freq, fill, time_col, sid, *, inferred=False):
    """Put one series on its ``freq`` grid: detect gaps and missing values; fill or raise.

    ``rows`` (T,) are the file rows of ``ts``; returns the grid, the values on it, the file
    row of each grid step (0 where a step was filled in) and how many steps/values were filled.
    A grid ``inferred`` from another series of the file may not be filled in over more than
    half of this one's steps (the inferring series is held to the same bound).
    """
    where = _in(sid)
    size = _grid_size(ts, pd.tseries.frequencies.to_offset(freq))
    if inferred and fill != "error" and size > 2 * max(len(ts), 2):
        raise TimeSeriesError(
            f"{path}: row {rows[0]}, column {shown(time_col)}: the {len(ts)} rows{where} from "
            f"{ts[0]} to {ts[-1]} span about {size:.3g} steps of the {freq!r} grid inferred from "
            f"the file's longest series, so more than half would be filled in; check their "
            "timestamps, or set data.freq"
        )
    if _grid_size(ts, pd.tseries.frequencies.to_offset(freq)) > 50 * len(ts) + 10**6:
        raise TimeSeriesError(
            f"{path}: column {shown(time_col)}: the {freq!r} grid from {ts[0]} to {ts[-1]} "
            f"has about {_grid_size(ts, pd.tseries.frequencies.to_offset(freq)):.3g} steps "
            f"for {len(ts)} rows{where}; check data.freq"
        )
    grid = pd.date_range(ts[0], ts[-1], freq=freq)
    at = grid.get_indexer(ts)
    if (at < 0).any():
        i = int(np.flatnonzero(at < 0)[0])
        off = pd.tseries.frequencies.to_offset(freq)
        on = off.is_on_offset(ts[0])  # a month-end date on a month-start grid is not
        step = f"starting at {ts[0]}" if on else f"(its next step is {off.rollforward(ts[i])})"
        raise TimeSeriesError(f"{path}: row {rows[i]}, column {shown(time_col)}: timestamp "
                              f"{ts[i]} is not on the {freq!r} grid {step}{where}")
    n_gaps = len(grid) - len(ts)
    if n_gaps and fill == "error":
        j = int(np.flatnonzero(np.diff(at) > 1)[0])
        raise TimeSeriesError(
            f"{path}: row {rows[j + 1]}, column {shown(time_col)}: {n_gaps} missing "
            f"timestamp(s){where}, the first is {grid[at[j] + 1]} (between rows "
            f"{rows[j]} and {rows[j + 1]}); set data.fill to ffill, linear or zero to fill them")
    full = np.full((len(grid), values.shape[1]), np.nan)
    full[at] = values
    grid_rows = np.zeros(len(grid), dtype=np.int64)
    grid_rows[at] = rows
    missing = np.isnan(values)
    if missing.any() and fill == "error":
        i, k = (int(v[0]) for v in np.nonzero(missing))
        raise TimeSeriesError(
            f"{path}: row {rows[i]}, column {shown(cols[k])}: missing "
            f"value{where} ({int(missing.sum())} in all); set data.fill to ffill, "
            "linear or zero to fill them"
        )
    if np.isnan(full).all(axis=0).any():
        k = int(np.flatnonzero(np.isnan(full).all(axis=0))[0])
        raise TimeSeriesError(f"{path}: column {shown(cols[k])}: no values at all{where}")
    filled = n_gaps + int(missing.sum())
    return grid, (_fill(full, fill) if filled else full), grid_rows, filled
