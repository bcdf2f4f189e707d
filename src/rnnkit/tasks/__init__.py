"""Pipelines by name: each task module registers a :class:`TaskSpec`.

A recipe's ``task: lm`` key looks the spec up to type its ``data`` and ``model`` sections
and to build the task object that the Trainer runs.  By convention task ``NAME`` lives in
``rnnkit/tasks/NAME.py``, which calls :func:`register_task` at import; modules are
imported on first use so ``rnnkit --help`` stays fast.

Example::

    spec = get_task_spec("lm")
    spec.data_config, spec.model_config     # LMDataConfig, LMConfig
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["TaskSpec", "TASKS", "get_task_spec", "register_task", "task_names"]


@dataclass(frozen=True)
class TaskSpec:
    """A pipeline.

    Attributes:
        name: the recipe's ``task`` value.
        data_config / model_config: dataclasses typing the ``data`` / ``model`` sections.
        build: ``build(run_config, data_dir=None) -> Task`` (data loaded, model built).
        description: one line for help texts.
    """

    name: str
    data_config: type
    model_config: type
    build: Callable[..., Any]
    description: str = ""


TASKS: dict[str, TaskSpec] = {}

def register_task(spec: TaskSpec) -> TaskSpec:
    """Add ``spec`` to :data:`TASKS` (called by task modules at import)."""
    TASKS[spec.name] = spec
    return spec


def task_names() -> list[str]:
    """Names of the task modules in this package (registered or not yet imported)."""
    found = {m.name for m in pkgutil.iter_modules(__path__)
             if not m.name.startswith("_") and not m.name.endswith("_cli")}
    return sorted(found | set(TASKS))


def get_task_spec(name: str) -> TaskSpec:
    """The registered task ``name``, importing ``rnnkit.tasks.<name>`` on first use."""
    if name not in TASKS and name.isidentifier() and name in task_names():
        importlib.import_module(f"{__name__}.{name}")
    if name not in TASKS:
        from rnnkit.train.config import ConfigError

        raise ConfigError(f"config key 'task': unknown task {name!r}; expected one of {', '.join(task_names())}")
    return TASKS[name]
