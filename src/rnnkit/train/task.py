"""The contract between the one Trainer and a pipeline, and the table of pipelines.

:class:`Task` is what the Trainer runs; :class:`TaskSpec` is everything else the house
needs of a pipeline (its config types, how to build it from a recipe, how to evaluate,
predict with, serve and export its checkpoints).  :func:`get_task_spec` is the one
per-task table: the commands, the server, export, search and compression all read it.

Pipelines live above this level (``rnnkit.tasks``), so the table is filled the way
plugins are: task ``NAME`` is the module named for it in :data:`BUILTIN_TASKS` (or in the
``rnnkit.tasks`` entry-point group, for pipelines of other packages), imported on first
use; the module calls :func:`register_task` at import.  Nothing here imports a pipeline
by name in code, so the levels only look down.

A task owns its data, its model and its loss; the Trainer owns the loop (optimizer,
schedule, clipping, precision, devices, checkpoints, logging, early stopping).  A new
pipeline implements these methods and gets everything else for free::

    class MyTask:
        name = "classify"; item_name = "samples"
        model: nn.Module
        eval_splits = ("valid", "test")                 # splits evaluate() accepts
        def setup(self, rank, world_size): ...           # shard the training data
        def steps_per_epoch(self, epoch): ...            # batches this rank will see
        def train_batches(self, epoch, start_step): ...  # iterator, resumable at a batch index
        def initial_carry(self): return None            # state carried across batches
        def training_step(self, model, batch, carry):   # -> StepOutput(loss, carry, n_items)
        def evaluate(self, model, split): ...            # -> {"loss": ..., "acc": ...}
        def write_assets(self, directory): ...           # vocab.json, scaler.json, ...
        def describe(self): ...    # optional: {"texts": "train 900, ..."} for the run's header
        def finalize(self, model): ...  # optional, after training on the best weights: fit
                                        # what is fitted on held-out data; -> dict or None
        def data_splits(self): ...  # optional: {"train": ids, ...} as built, hashed into
                                    # checkpoints so that --resume refuses edited data

``carry`` is whatever the task threads from one batch to the next (the detached hidden
state in truncated BPTT; ``None`` for i.i.d. batches); the Trainer stores it in mid-epoch
checkpoints so that a resumed run continues exactly.  It must be a tensor, ``None``, or a
(nested) tuple of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

from torch import Tensor, nn

__all__ = ["StepOutput", "Task", "TaskSpec", "TASKS", "BUILTIN_TASKS", "register_task",
           "get_task_spec", "task_names", "UnknownTaskError"]


class StepOutput(NamedTuple):
    """Result of one training step.

    Attributes:
        loss: the scalar to back-propagate (already reduced as the task wants).
        carry: state for the next batch (detached), or None.
        n_items: items this step processed on this rank (tokens, samples), for throughput.
        loss_value: the loss to log per item (e.g. mean cross-entropy in nats), if it
            differs from ``loss`` (e.g. when ``loss`` is summed over time).
    """

    loss: Tensor
    carry: Any
    n_items: int
    loss_value: float | None = None


@runtime_checkable
class Task(Protocol):
    """What the Trainer needs from a pipeline (see the module docstring)."""

    name: str
    item_name: str
    model: nn.Module
    eval_splits: tuple[str, ...]

    def setup(self, rank: int, world_size: int) -> None: ...

    def steps_per_epoch(self, epoch: int) -> int: ...

    def train_batches(self, epoch: int, start_step: int) -> Iterator[Any]: ...

    def initial_carry(self) -> Any: ...

    def training_step(self, model: nn.Module, batch: Any, carry: Any) -> StepOutput: ...

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]: ...

    def write_assets(self, directory: Path) -> None: ...


@dataclass(frozen=True)
class TaskSpec:
    """A pipeline: its config types and the typed functions the commands, server and export call.

    Attributes:
        name: the recipe's ``task`` value (and the ``task`` of its checkpoints' config.json).
        data_config / model_config: dataclasses typing the ``data`` / ``model`` sections.
        build: ``build(run_config, data_dir=None) -> Task`` (data loaded, model built).
        description: one line for help texts.
        load: ``load(checkpoint_dir, run_config, data_dir=None) -> Task`` built with the
            checkpoint's own assets (e.g. its vocabulary) before its weights are loaded;
            ``None``: :attr:`build` (the assets are rebuilt from the data).
        evaluate: ``evaluate(checkpoint, *, split=None, data=None, data_dir=None, **options)
            -> dict`` of metrics (``rnnkit evaluate``); options are keyword-only and named as
            the command's flags (``plot``, ``beam_size``, ...).
        predict: ``predict(checkpoint, inputs: list[str], **options) -> list[dict]``, one
            JSON-able dict per input with a printable ``"text"`` (``rnnkit predict``).
        predictor: ``predictor(checkpoint_dir, int8: bool)`` -> an object with
            ``predict(...)`` and ``reset()`` that keeps the model loaded (``rnnkit serve``).
        export: ``export(checkpoint_dir) -> ExportSpec`` (:mod:`rnnkit.tasks.export_steps`),
            the inference step to trace (``rnnkit export``).
        generate: ``generate(checkpoint, **options) -> dict`` with a printable ``"text"``
            (``rnnkit generate``); options are keyword-only, named as the command's flags.

    A ``None`` function means the pipeline does not offer it; callers say so by name.
    """

    name: str
    data_config: type
    model_config: type
    build: Callable[..., Any]
    description: str = ""
    load: Callable[..., Any] | None = None
    evaluate: Callable[..., dict] | None = None
    predict: Callable[..., list[dict]] | None = None
    predictor: Callable[[Path, bool], Any] | None = None
    export: Callable[[Path], Any] | None = None
    generate: Callable[..., dict] | None = None

    def load_task(
        self, checkpoint: str | Path, run_config: Any, data_dir: str | None = None
    ) -> Any:
        """The Task of a checkpoint's recipe, built with the checkpoint's assets (no weights)."""
        if self.load is not None:
            return self.load(Path(checkpoint), run_config, data_dir=data_dir)
        return self.build(run_config, data_dir=data_dir)


class UnknownTaskError(ValueError):
    """A task name no pipeline registers (one-line message)."""


#: task name -> module defining it (imported on first use; it registers its spec)
BUILTIN_TASKS: dict[str, str] = {
    name: f"rnnkit.tasks.{name}"
    for name in ("anomaly", "asr", "audio", "classify", "forecast", "lm", "music", "tag",
                 "translate")
}

#: the registered specs, filled as pipeline modules are imported
TASKS: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add ``spec`` to :data:`TASKS` (called by a pipeline module at import)."""
    TASKS[spec.name] = spec
    return spec


def _plugins() -> dict[str, str]:
    """Pipelines of other packages: ``[project.entry-points."rnnkit.tasks"] NAME = "module"``."""
    return {ep.name: ep.value.split(":")[0] for ep in entry_points(group="rnnkit.tasks")}


def task_names() -> list[str]:
    """Every pipeline name: built in, from plugins, or registered by hand."""
    return sorted(set(BUILTIN_TASKS) | set(_plugins()) | set(TASKS))


def get_task_spec(name: str) -> TaskSpec:
    """The spec of pipeline ``name``, importing its module on first use."""
    if name not in TASKS:
        module = BUILTIN_TASKS.get(name) or _plugins().get(name)
        if module is not None:
            importlib.import_module(module)
    if name not in TASKS:
        raise UnknownTaskError(f"config key 'task': unknown task {name!r}; expected one of "
                               f"{', '.join(task_names())}")
    return TASKS[name]
