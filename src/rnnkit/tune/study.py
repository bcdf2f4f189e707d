"""``rnnkit tune``: an Optuna study over a recipe's search space, kept in SQLite.

Each trial samples the space, trains the recipe with the one Trainer and reports every
validation of the monitored metric to the pruner; a trial the pruner rejects stops at that
validation (``TrialPruned``).  The study lives in SQLite (``<out>/study.db`` by default), so
running the same command again resumes it (``--trials`` is the total wanted), and several
processes given the same ``--storage`` share it as workers. A trial whose worker died (no
heartbeat for ``search.grace`` s) is failed and its values run again, within
``heartbeat + grace + 1`` s of the death, or at the latest before the last worker leaves: a
worker returns only when no trial it saw running is left to a dead worker (see
:mod:`rnnkit.tune.heartbeat`).

Outputs in ``<out>``: ``trial_NNNN/`` (each trial's run directory), ``trials.json``,
``best.yaml`` (the recipe with the best values, ready for ``rnnkit train``) and
``history.png`` (objective per trial with the best so far, and the validation curves with the
pruned trials marked).

Example::

    summary = run_search("configs/shakespeare_char_search.yaml", trials=20, out="runs/tune/shk")
    summary["best"]["params"]      # {"optim.lr": 0.0031, ...}
"""

from __future__ import annotations

import json
import math
import re
import time
import warnings
from pathlib import Path
from typing import Any

import yaml

from rnnkit.train.config import ConfigError, build_run_config
from rnnkit.train.trainer import Trainer
from rnnkit.tune.heartbeat import Reclaimer
from rnnkit.tune.space import SearchConfig, apply_params, load_search_recipe

__all__ = ["run_search", "ReportingTrainer", "write_history_plot", "storage_url"]


class ReportingTrainer(Trainer):
    """The Trainer, reporting each validation to an Optuna trial and stopping when it is pruned.

    The hook is :meth:`Trainer._validate` (the one place validation metrics appear): after it,
    ``trial.report(value, step)`` and, if ``trial.should_prune()``, the run stops as if early
    stopping had fired (``state.stopped = "pruned"``; checkpoints and logs are closed normally).
    A trial another worker failed as dead (its heartbeats were late) stops the same way
    (``lost``; ``state.stopped = "lost"``): its values are queued to run again.
    """

    def __init__(self, *args: Any, trial: Any, metric: str, warmup_evals: int = 0, **kw: Any):
        super().__init__(*args, **kw)
        self.trial, self.metric, self.pruned, self.reports = trial, metric, False, 0
        self.lost = False
        self.warmup_evals = warmup_evals
        self._last_step = -1

    def _validate(self) -> bool:
        from optuna.exceptions import UpdateFinishedTrialError

        stop = super()._validate()
        value = self.last_val.get(self.metric)
        # once per step
        if value is None or self.pruned or self.lost or self.state.step == self._last_step:
            return stop
        self._last_step = self.state.step
        try:
            self.trial.report(float(value), self.state.step)
        except UpdateFinishedTrialError:
            self.lost, self.state.stopped = True, "lost"
            return True
        self.reports += 1
        if self.reports > self.warmup_evals and self.trial.should_prune():
            self.pruned, self.state.stopped = True, "pruned"
            self.monitor.print(f"trial {self.trial.number} pruned at step {self.state.step} "
                               f"({self.metric} {value:.4f})")
            return True
        return stop


#: what ``--storage`` takes, for its errors
STORAGE_FORMS = ("a SQLite file path (runs/study.db) or a SQLAlchemy URL "
                 "(sqlite:///runs/study.db, sqlite:////abs/study.db, postgresql://user@host/db)")

#: URL schemes of SQLAlchemy dialects: "sqlite:/x.db" is a mistyped URL, not a file name
_DIALECT = re.compile(r"(sqlite|postgres|postgresql|mysql|mariadb|oracle|mssql)(\+\w+)?:",
                      re.IGNORECASE)


def storage_url(storage: str | Path) -> str:
    """A SQLAlchemy URL from a URL or a path to a SQLite file.

    Raises:
        ConfigError: a database URL without ``://`` (``sqlite:/x.db``), which would otherwise
            be read as a file name in a folder ``sqlite:``.
    """
    s = str(storage)
    if "://" in s:
        return s
    if _DIALECT.match(s):
        raise ConfigError(f"--storage {s}: a database URL needs '://'; expected {STORAGE_FORMS}")
    return f"sqlite:///{Path(s).resolve()}"


def _open_storage(url: str, shown: str, search: SearchConfig, log) -> Reclaimer:
    """The study's storage, or a one-line ``--storage`` error (no SQLAlchemy traceback)."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return Reclaimer(url, heartbeat=search.heartbeat, grace=search.grace_period, log=log)
    except (SQLAlchemyError, ImportError, ValueError, OSError) as e:
        why = " ".join(str(e).split("\n")[0].split())  # the first line, e.g. "unable to open"
        raise ConfigError(
            f"--storage {shown}: cannot open the study storage ({type(e).__name__}: {why}); "
            f"expected {STORAGE_FORMS}, in an existing, writable folder"
        ) from None


def _sampler(search: SearchConfig, seed: int):
    import optuna

    if search.sampler == "grid":
        return optuna.samplers.GridSampler(search.grid(), seed=seed)
    if search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=search.startup_trials)


def _pruner(search: SearchConfig):
    import optuna

    if search.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=search.startup_trials,
                                           n_warmup_steps=0, n_min_trials=1)
    if search.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def _train_trial(raw: dict[str, Any], params: dict[str, Any], trial: Any, run_dir: Path,
                 data_dir: str | None, search: SearchConfig) -> tuple[float, ReportingTrainer]:
    """Train one trial (``run_training``'s steps, with the reporting Trainer)."""
    import torch

    from rnnkit.train.state import seed_everything, set_deterministic
    from rnnkit.train.task import get_task_spec
    from rnnkit.train.trainer import make_fabric

    cfg = build_run_config(apply_params(raw, params))
    tc = cfg.trainer
    if tc.devices * tc.num_nodes != 1:
        raise ConfigError(
            "search: each trial trains in one process (trainer.devices=1); run several "
            "`rnnkit tune` workers on one --storage to use more devices"
        )
    tc.progress = False
    if data_dir is not None and hasattr(cfg.data, "data_dir"):
        cfg.data.data_dir = str(data_dir)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    set_deterministic(tc.deterministic)
    fabric = make_fabric(tc)
    fabric.launch()
    seed_everything(tc.seed)
    task = get_task_spec(cfg.task).build(cfg, data_dir=data_dir)
    trainer = ReportingTrainer(cfg, task, fabric, run_dir, trial=trial, metric=tc.monitor,
                               warmup_evals=search.warmup_evals)
    result = trainer.fit()
    best = result.best_metric
    if trainer.lost:
        return math.nan, trainer
    if trainer.reports == 0 or best is None:
        raise ConfigError(
            f"trial {trial.number}: no validation of {tc.monitor!r} happened; the task needs a "
            "'valid' split and trainer.val_every_steps or whole epochs"
        )
    return float(best), trainer


def run_search(
    recipe: str | Path,
    *,
    trials: int | None = None,
    out: str | Path | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    data_dir: str | None = None,
    timeout: float | None = None,
    log=print,
) -> dict[str, Any]:
    """Run (or resume, or join as a worker) the study of ``recipe`` until it holds ``trials``
    finished (complete or pruned) trials; write the outputs and return the summary."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    if trials is not None and (isinstance(trials, bool) or not isinstance(trials, int)
                               or trials < 1):
        raise ConfigError(f"--trials {trials}: expected a positive integer")
    raw, search = load_search_recipe(recipe)
    base = build_run_config(raw)
    metric, direction = (
        base.trainer.monitor,
        "minimize" if base.trainer.mode == "min" else "maximize",
    )
    url = storage_url(storage) if storage is not None else None  # a bad URL fails before mkdir
    out = Path(out) if out is not None else Path(base.trainer.out_dir) / "tune" / Path(recipe).stem
    out.mkdir(parents=True, exist_ok=True)
    total = search.trials if trials is None else trials  # --trials 0 is an error, not the default
    deadline = None if timeout is None else time.monotonic() + timeout
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # heartbeat, retry
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    rc = _open_storage(url or storage_url(out / "study.db"),
                       storage or f"{out / 'study.db'} (the default)", search, log)
    store = rc.storage
    name = study_name or Path(recipe).stem
    done_states = (TrialState.COMPLETE, TrialState.PRUNED)
    probe = optuna.create_study(
        study_name=name, storage=store, direction=direction, load_if_exists=True
    )
    if probe.direction.name.lower() != direction:
        raise ConfigError(
            f"--storage: study {name!r} exists with direction {probe.direction.name.lower()}, "
            f"but trainer.mode gives {direction}"
        )
    n_before = len(probe.trials)
    # a resumed study or a second worker gets its own sampler seed, so workers do not draw alike
    study = optuna.load_study(
        study_name=name,
        storage=store,
        sampler=_sampler(search, search.seed + n_before),
        pruner=_pruner(search),
    )
    rc.reclaim(study)  # a dead worker's trial is queued before this worker draws new values
    finished = len(study.get_trials(deepcopy=False, states=done_states))
    if finished:
        log(f"resuming study {name!r}: {finished} finished trial(s) in {store.url}")

    def objective(trial: Any) -> float:
        rc.own = trial.number
        params = search.suggest(trial)
        run_dir = out / f"trial_{trial.number:04d}"
        t0 = time.time()
        retry_of = next((t.system_attrs.get("failed_trial") for t in study.get_trials(
            deepcopy=False, states=(TrialState.RUNNING,)) if t.number == trial.number), None)
        log(
            f"trial {trial.number}"
            + (f" (values of trial {retry_of}, whose worker died)" if retry_of is not None else "")
            + ": "
            + ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())
        )
        try:  # values the space allows may still combine into a recipe out of range
            build_run_config(apply_params(raw, params))
        except ConfigError as e:
            trial.set_user_attr("error", str(e))
            log(f"trial {trial.number}: not trained, its values make an invalid recipe ({e})")
            return float("nan")  # optuna records the trial as failed; the study goes on
        value, trainer = _train_trial(raw, params, trial, run_dir, data_dir, search)
        if trainer.lost:
            raise _TrialLost(trial.number)
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("seconds", round(time.time() - t0, 1))
        trial.set_user_attr("steps", trainer.state.step)
        if trainer.pruned:
            raise optuna.TrialPruned()
        log(f"trial {trial.number}: {metric} {value:.4f} ({time.time() - t0:.0f} s)")
        return value

    def optimize(n: int, timeout: float | None, callbacks: list) -> None:
        """``study.optimize``, going on when another worker took this worker's trial for dead."""
        while n > 0:
            try:
                return study.optimize(
                    objective, n_trials=n, timeout=timeout, catch=(), callbacks=callbacks
                )
            except (ValueError, optuna.exceptions.UpdateFinishedTrialError, _TrialLost):
                if not _lost_to_another(study, rc.own):
                    raise
            log(
                f"trial {rc.own} was failed by another worker: no heartbeat from here reached the "
                f"study for {rc.grace} s; its values are queued to run again, and this worker "
                f"goes on"
            )
            n = (
                total - len(study.get_trials(deepcopy=False, states=done_states))
                if callbacks
                else n - 1
            )
            timeout = None if deadline is None else deadline - time.monotonic()
            if timeout is not None and timeout <= 0:
                return

    with rc.watch(study):  # a dead worker's trial is failed and queued while this one trains
        optimize(
            max(0, total - finished),
            timeout,
            [MaxTrialsCallback(total, states=done_states), lambda study, trial: rc.reclaim(study)],
        )
        # queued values run even past --trials: they were drawn, and may be the best ones
        rc.settle(study, lambda: optimize(1, None, []), deadline)
    return write_outputs(study, raw, out, metric, log=log)


class _TrialLost(Exception):
    """This worker's trial was failed by another worker, which took it for dead."""


def _lost_to_another(study: Any, number: int | None) -> bool:
    """Trial ``number`` was failed by a worker that took it for dead: FAIL, and its values
    queued."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    return (number is not None and number < len(trials) and trials[number].state == TrialState.FAIL
            and any(t.system_attrs.get("retry_history", [None])[-1] == number for t in trials))


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def write_outputs(
    study: Any, raw: dict[str, Any], out: Path, metric: str, log=print
) -> dict[str, Any]:
    """``trials.json``, ``best.yaml`` and ``history.png`` of a study; returns the summary."""
    from optuna.trial import TrialState

    rows = [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
             "intermediate": {int(k): v for k, v in sorted(t.intermediate_values.items())},
             "retry_of": t.system_attrs.get("failed_trial"), **t.user_attrs} for t in study.trials]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    summary: dict[str, Any] = {"study": study.study_name, "metric": metric,
                               "direction": study.direction.name.lower(), "trials": len(rows),
                               "complete": len(complete),
                               "pruned": sum(r["state"] == "PRUNED" for r in rows),
                               "failed": sum(r["state"] == "FAIL" for r in rows)}
    if complete:
        b = study.best_trial
        summary["best"] = {"number": b.number, "value": b.value, "params": b.params,
                           "run_dir": b.user_attrs.get("run_dir")}
        best = apply_params(raw, b.params)
        head = (
            f"# best of study {study.study_name!r}: trial {b.number}, {metric} = {b.value:.6g}\n"
            f"# searched values: {json.dumps(b.params)}\n"
        )
        (out / "best.yaml").write_text(head + yaml.safe_dump(best, sort_keys=False))
        summary["best_recipe"] = str(out / "best.yaml")
    (out / "trials.json").write_text(
        json.dumps({**summary, "rows": rows}, indent=1, default=str) + "\n"
    )
    if rows:
        write_history_plot(rows, out / "history.png", metric, summary["direction"])
        summary["plot"] = str(out / "history.png")
    log(f"{summary['complete']} complete, {summary['pruned']} pruned, {summary['failed']} failed"
        + (f"; best {metric} {summary['best']['value']:.4f} (trial {summary['best']['number']}): "
           f"{out / 'best.yaml'}" if complete else ""))
    return summary


def write_history_plot(rows: list[dict[str, Any]], path: Path, metric: str, direction: str) -> None:
    """Left: each trial's objective and the best so far; right: validation curves per trial."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    best, xs, ys, bx, by = None, [], [], [], []
    better = min if direction == "minimize" else max
    for r in rows:
        if r["state"] == "COMPLETE" and r["value"] is not None and math.isfinite(r["value"]):
            xs.append(r["number"])
            ys.append(r["value"])
            best = r["value"] if best is None else better(best, r["value"])
        if best is not None:
            bx.append(r["number"])
            by.append(best)
    a.scatter(xs, ys, s=18, label="complete", color="tab:blue")
    px = [r["number"] for r in rows if r["state"] == "PRUNED" and r["intermediate"]]
    py = [
        list(r["intermediate"].values())[-1]
        for r in rows
        if r["state"] == "PRUNED" and r["intermediate"]
    ]
    a.scatter(px, py, s=22, marker="x", color="tab:gray", label="pruned (last value)")
    a.step(bx, by, where="post", color="tab:red", label="best so far")
    a.set(xlabel="trial", ylabel=metric, title="optimisation history")
    a.legend(fontsize=8)
    for r in rows:
        if r["intermediate"]:
            steps, vals = zip(*r["intermediate"].items())
            style = (
                dict(color="tab:gray", alpha=0.6, ls="--")
                if r["state"] == "PRUNED"
                else dict(alpha=0.9)
            )
            b.plot(steps, vals, marker=".", lw=1, **style)
    b.set(xlabel="optimizer step", ylabel=metric, title="validation per trial (dashed: pruned)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
