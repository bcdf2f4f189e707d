"""Loop state that a resumed run needs to continue exactly: counters, RNGs, history.

``TrainState`` is plain data (saved as JSON); the random-number generators are captured
as tensors (torch, CUDA: uint8) and JSON lists (Python ``random``, NumPy), so nothing is
pickled.  Seeding and deterministic mode live here too.
"""

from __future__ import annotations

import os
import random
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["TrainState", "seed_everything", "set_deterministic", "capture_rng", "restore_rng"]


@dataclass
class TrainState:
    """Counters of the loop.

    Attributes:
        epoch: 0-based epoch in progress (or next to start).
        step: optimizer steps taken in total.
        batch_in_epoch: batches of ``epoch`` already trained on (0 at an epoch boundary).
        best: best value of the monitored metric so far (None before the first evaluation).
        bad_evals: evaluations since the last improvement (early stopping).
        elapsed: training wall-clock seconds so far, over all (re)starts.
        cpu_seconds: CPU seconds of the training process so far, over all (re)starts.
        items: items (tokens, samples) trained on so far, over all ranks.
        history: records ``{"step", "epoch", "train_loss" | "val_*", "lr", ...}`` for plots.
        stopped: why training ended ("max_epochs", "max_steps", "time", "early_stopping").
    """

    epoch: int = 0
    step: int = 0
    batch_in_epoch: int = 0
    best: float | None = None
    bad_evals: int = 0
    elapsed: float = 0.0
    cpu_seconds: float = 0.0
    items: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainState:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def set_deterministic(enabled: bool) -> None:
    """Ask torch for deterministic kernels (errors on ops that have none, as torch does)."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def capture_rng(tensors: dict[str, Tensor]) -> dict[str, Any]:
    """Put torch/CUDA RNG states into ``tensors``; return Python/NumPy states as JSON data."""
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
    }


def restore_rng(meta: dict[str, Any], tensors: dict[str, Tensor]) -> None:
    """Inverse of :func:`capture_rng`."""
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"].to(torch.uint8))
    cuda = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    if cuda and torch.cuda.is_available():
        states = [tensors[k].to(torch.uint8) for k in cuda][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(states)
    if "python" in meta:
        version, internal, gauss = meta["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in meta:
        kind, keys, pos, has_gauss, cached = meta["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
