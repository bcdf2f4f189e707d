"""The contract between the one Trainer and a pipeline (language modeling, classification, ...).

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

``carry`` is whatever the task threads from one batch to the next (the detached hidden
state in truncated BPTT; ``None`` for i.i.d. batches); the Trainer stores it in mid-epoch
checkpoints so that a resumed run continues exactly.  It must be a tensor, ``None``, or a
(nested) tuple of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

from torch import Tensor, nn

__all__ = ["StepOutput", "Task"]


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
