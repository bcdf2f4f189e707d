"""Hyperparameter search with Optuna: ``rnnkit tune RECIPE --trials N``.

The recipe's ``search:`` section declares the space, the sampler (TPE, random, grid) and the
pruner (median, hyperband), see :mod:`rnnkit.tune.space`; :func:`run_search` runs the study in
SQLite so it resumes and can be shared by several workers, and writes the best recipe and the
optimisation-history plot, see :mod:`rnnkit.tune.study`; a dead worker's trial is failed and its
values run again within a stated time, see :mod:`rnnkit.tune.heartbeat`.
"""

from rnnkit.tune.space import Param, SearchConfig, apply_params, load_search_recipe
from rnnkit.tune.study import ReportingTrainer, run_search, storage_url, write_history_plot

__all__ = [
    "Param",
    "SearchConfig",
    "apply_params",
    "load_search_recipe",
    "ReportingTrainer",
    "run_search",
    "storage_url",
    "write_history_plot",
]
