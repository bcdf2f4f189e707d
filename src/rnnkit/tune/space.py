"""The ``search:`` section of a recipe: the space, the sampler, the pruner.

A search recipe is an ordinary recipe plus one section::

    search:
      sampler: tpe                # tpe (Bayesian, Bergstra et al. 2011) | random | grid
      pruner: median              # median | hyperband | none
      startup_trials: 3           # trials before TPE models the space and before pruning acts
      warmup_evals: 1             # validations of a trial before it may be pruned (median)
      seed: 0
      trials: 20                  # default of --trials
      heartbeat: 10               # seconds between a trial's heartbeats in the study
      grace: 30                   # seconds without one before its worker counts as dead (default
                                  # 3 x heartbeat): the trial is failed and its values run again
      space:                      # dotted recipe keys -> distributions
        optim.lr:          {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
        model.hidden_size: {type: int, low: 64, high: 256, step: 64}
        model.cell:        {type: categorical, choices: [lstm, gru]}
        model.dropout:     {type: float, low: 0.0, high: 0.4}  # sampler grid: add grid: [0, 0.2]

The objective is the run's monitored metric (``trainer.monitor``, e.g. ``val_loss``) in its
``trainer.mode`` direction; the value of a trial is its best validation value, and every
validation is reported to the pruner.  The grid sampler needs a finite set per parameter:
``choices`` of a categorical, ``low..high`` by ``step`` of an int, or an explicit ``grid`` list.
A dead worker's trial is re-run within ``heartbeat + grace + 1`` s of its death, or at the latest
before the last worker leaves the study (see :mod:`rnnkit.tune.heartbeat`).

Every field is checked when the recipe loads (a one-line error naming ``search.space.<key>``):
a categorical takes ``choices`` only; a float or int range takes finite ``low < high``, ``log``
(``low > 0``) or a ``step`` (``> 0``, an integer for an int, at most ``high - low`` and dividing
it); a ``grid`` is a non-empty list of values within ``low..high``, used only by
``sampler: grid``.

Example::

    base, search = load_search_recipe("configs/shakespeare_char_search.yaml")
    overrides = search.suggest(trial)          # {"optim.lr": 0.0031, "model.cell": "gru"}
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rnnkit.train.config import ConfigError, build_run_config, from_dict, read_recipe_yaml

__all__ = ["Param", "SearchConfig", "load_search_recipe", "apply_params"]


@dataclass
class Param:
    """One searched value: ``type`` float | int | categorical (see the module docstring)."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None
    grid: list[Any] | None = None

    def check(self, key: str) -> None:
        """One-line :class:`ConfigError` naming ``search.space.<key>`` for a value Optuna would
        reject at the first trial, or (worse) silently read otherwise."""
        where = f"search.space.{key}"
        if self.type == "categorical":
            if not self.choices:
                raise ConfigError(f"{where}: a categorical needs a non-empty 'choices' list")
            extra = [k for k in ("low", "high", "step", "grid") if getattr(self, k) is not None]
            extra += ["log"] if self.log else []
            if extra:
                raise ConfigError(
                    f"{where}: {', '.join(extra)} {'does' if len(extra) == 1 else 'do'} not "
                    "apply to a categorical; expected only 'choices'")
            return
        if self.choices is not None:
            kind = "an int" if self.type == "int" else "a float"
            raise ConfigError(f"{where}: 'choices' does not apply to {kind} range; expected "
                              "low/high (or type: categorical)")
        for k in ("low", "high"):
            v = getattr(self, k)
            if v is not None and not math.isfinite(v):
                raise ConfigError(f"{where}: expected a finite {k}, got {v}")
        if self.low is None or self.high is None or not self.low < self.high:
            raise ConfigError(f"{where}: expected low < high, got low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise ConfigError(f"{where}: log scale needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ConfigError(f"{where}: 'log' and 'step' cannot be combined")
        if self.type == "int" and (int(self.low) != self.low or int(self.high) != self.high):
            raise ConfigError(
                f"{where}: an int range needs integer low/high, got {self.low}..{self.high}"
            )
        if self.step is not None:
            span, step = self.high - self.low, self.step
            if not (math.isfinite(step) and step > 0):
                raise ConfigError(f"{where}: expected step > 0, got {_num(step)}")
            if self.type == "int" and int(step) != step:
                raise ConfigError(f"{where}: an int range needs an integer step, got {_num(step)}")
            if step > span:
                raise ConfigError(
                    f"{where}: step {_num(step)} is larger than high - low = {_num(span)} "
                    f"(only low would be sampled); expected a step <= {_num(span)}")
            n = span / step
            if abs(n - round(n)) > 1e-9 * max(1.0, n):
                raise ConfigError(
                    f"{where}: high - low = {_num(span)} is not a multiple of step {_num(step)} "
                    f"(high would never be sampled); expected a step that divides it")
        if self.grid is not None:
            self._check_grid(where)

    def _check_grid(self, where: str) -> None:
        if not isinstance(self.grid, list) or not self.grid:
            raise ConfigError(f"{where}.grid: expected a non-empty list of values, got "
                              f"{self.grid!r}")
        for i, v in enumerate(self.grid):
            number = isinstance(v, (int, float)) and not isinstance(v, bool)
            if not number or (self.type == "int" and not isinstance(v, int)):
                want = "an integer" if self.type == "int" else "a number"
                raise ConfigError(f"{where}.grid[{i}]: expected {want}, got {v!r}")
            if not self.low <= v <= self.high:
                raise ConfigError(f"{where}.grid[{i}]: {v} is outside low..high = "
                                  f"{_num(self.low)}..{_num(self.high)}")

    def grid_values(self, key: str) -> list[Any]:
        if self.grid is not None:
            return list(self.grid)
        if self.type == "categorical":
            return list(self.choices)
        if self.type == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        raise ConfigError(
            f"search.space.{key}: the grid sampler needs a 'grid' list for a float range"
        )


@dataclass
class SearchConfig:
    """The ``search:`` section (see the module docstring)."""

    space: dict[str, Param] = field(default_factory=dict)
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    pruner: Literal["median", "hyperband", "none"] = "median"
    startup_trials: int = 3
    warmup_evals: int = 1
    seed: int = 0
    trials: int = 20
    heartbeat: int = 10
    grace: int | None = None

    @property
    def grace_period(self) -> int:
        """Seconds without a heartbeat before a trial's worker counts as dead."""
        return 3 * self.heartbeat if self.grace is None else self.grace

    def check(self) -> None:
        if not self.space:
            raise ConfigError("search.space: empty; declare at least one parameter to search")
        for k, p in self.space.items():
            p.check(k)
            if p.grid is not None and self.sampler != "grid":
                raise ConfigError(
                    f"search.space.{k}.grid: only the grid sampler uses a grid, but "
                    f"search.sampler is {self.sampler!r}; expected sampler: grid (or no grid)")
        for k in ("startup_trials", "warmup_evals", "trials", "heartbeat"):
            if getattr(self, k) < (1 if k in ("trials", "heartbeat") else 0):
                raise ConfigError(
                    f"search.{k}: expected a positive integer, got {getattr(self, k)}"
                )
        if self.grace_period < self.heartbeat + 2:  # SQLite's one-second timestamps: a live trial
            raise ConfigError(
                f"search.grace: expected at least heartbeat + 2 = {self.heartbeat + 2} s "
                f"(a live trial's heartbeat can read as {self.heartbeat + 1} s old), "
                f"got {self.grace_period}"
            )

    def grid(self) -> dict[str, list[Any]]:
        return {k: p.grid_values(k) for k, p in self.space.items()}

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Sample every parameter with ``trial`` (an ``optuna.Trial``)."""
        out = {}
        for k, p in self.space.items():
            if self.sampler == "grid" and p.type != "categorical":
                out[k] = trial.suggest_categorical(k, p.grid_values(k))
            elif p.type == "categorical":
                out[k] = trial.suggest_categorical(k, p.choices)
            elif p.type == "int":
                out[k] = trial.suggest_int(
                    k, int(p.low), int(p.high), step=int(p.step or 1), log=p.log
                )
            else:
                out[k] = trial.suggest_float(k, p.low, p.high, step=p.step, log=p.log)
        return out


def _num(x: float) -> str:
    """``16`` for 16.0, ``0.1`` for 0.1: numbers in messages as they were written."""
    return f"{x:g}"


def apply_params(raw: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A copy of the raw recipe with dotted keys set (``model.extras.zoneout`` creates sections)."""
    out = copy.deepcopy(raw)
    for key, value in params.items():
        node = out
        *path, leaf = key.split(".")
        for p in path:
            if not isinstance(node.get(p, {}), dict):
                raise ConfigError(f"search.space.{key}: '{p}' is not a section of the recipe")
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def load_search_recipe(path: str | Path) -> tuple[dict[str, Any], SearchConfig]:
    """``(the recipe without its search section, SearchConfig)``; every trial's recipe is checked
    up front by building it with the space's first values, so a wrong key fails before training."""
    path = Path(path)
    raw = read_recipe_yaml(path)  # the recipe reader's checks (repeated keys, 010, ...)
    if "search" not in raw:
        raise ConfigError(f"{path}: no 'search:' section (see rnnkit.tune.space for its format)")
    raw = dict(raw)
    sec = raw.pop("search") or {}
    try:
        if not isinstance(sec, dict) or not isinstance(sec.get("space", {}), dict):
            raise ConfigError("search: expected a mapping with a 'space' mapping")
        space = {
            k: from_dict(Param, v, f"search.space.{k}") for k, v in (sec.get("space") or {}).items()
        }
        search = from_dict(SearchConfig, {**sec, "space": {}}, "search")
        search.space = space
        search.check()
        first = {k: (p.grid_values(k)[0] if search.sampler == "grid"
                     else p.choices[0] if p.type == "categorical"
                     else int(p.low) if p.type == "int" else p.low)
                 for k, p in space.items()}
        build_run_config(apply_params(raw, first))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    return raw, search
