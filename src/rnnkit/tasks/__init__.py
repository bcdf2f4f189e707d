"""The pipelines: one module per task, each registering its :class:`TaskSpec`.

The spec type and the table live in :mod:`rnnkit.train.task` (the Trainer's level), so
that training, search and compression can look a pipeline up by the recipe's ``task`` key
without importing this package; they are re-exported here.  Task ``NAME`` lives in
``rnnkit/tasks/NAME.py`` and calls :func:`register_task` at import.

Example::

    spec = get_task_spec("lm")
    spec.data_config, spec.model_config     # LMDataConfig, LMConfig
"""

from __future__ import annotations

from rnnkit.train.task import TASKS, TaskSpec, get_task_spec, register_task, task_names

__all__ = ["TaskSpec", "TASKS", "get_task_spec", "register_task", "task_names"]
