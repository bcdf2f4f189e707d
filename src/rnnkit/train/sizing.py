"""Build a model from its config only after checking that it is buildable and affordable.

``build_model(Model, cfg.model, V, run=cfg)`` first builds the model on PyTorch's ``meta``
device, where tensors have shapes but no memory, so a bad config costs nothing:

- a constructor error (an unknown keyword in ``model.extras``, a negative size, ...) becomes
  one line naming the ``model`` section;
- the memory the model needs is counted from the dry build::

      bytes = P x (1 + S) + buffers      P: parameter bytes (tied weights once)
                                         S: optimizer state per parameter byte, from
                                            ``optim``: adam/adamw 2, rmsprop 1 (+1 with
                                            momentum), sgd 0 (1 with momentum); 0 to
                                            load a checkpoint for inference

  and a model above the limit is refused before any allocation. The limit is
  ``trainer.max_model_memory_gb`` (GB of 1e9 bytes), else the environment variable
  ``RNNKIT_MAX_MODEL_MEMORY_GB``, else half of this machine's memory (the smaller of the
  physical memory and the cgroup limit). Gradients, activations and data need the other
  half. ``inf`` turns the check off. The dry build itself stops early, at the limit or at
  :data:`MAX_PARAMETER_TENSORS` parameter tensors (a ``num_layers`` of a million would
  otherwise spend minutes building layers of nothing).

Only then is the model built for real. Errors are :class:`~rnnkit.train.config.ConfigError`,
or :class:`~rnnkit.train.checkpoint.CheckpointError` naming ``source`` (the checkpoint's
config.json) when one is given.

Example::

    model = build_model(LanguageModel, cfg.model, len(vocab), run=cfg)
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rnnkit.train.checkpoint import CheckpointError
from rnnkit.train.config import ConfigError, OptimConfig, RunConfig

__all__ = [
    "build_model",
    "model_memory",
    "machine_memory",
    "memory_limit",
    "optimizer_state_factor",
    "MAX_PARAMETER_TENSORS",
]

#: a dry build registering more parameter tensors than this is refused (1,000 stacked
#: bidirectional LSTM layers have 8,000)
MAX_PARAMETER_TENSORS = 20_000
_ENV = "RNNKIT_MAX_MODEL_MEMORY_GB"


def machine_memory() -> int | None:
    """Bytes of memory this process may use: physical memory, or a smaller cgroup limit."""
    sizes = []
    try:
        sizes.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        pass
    for f in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(f).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            sizes.append(int(text))
    return min(sizes) if sizes else None


def memory_limit(max_model_memory_gb: float | None) -> tuple[float, str]:
    """``(bytes, where the limit comes from)``; ``math.inf`` bytes when there is none."""
    if max_model_memory_gb is not None:
        if not max_model_memory_gb > 0:
            raise ConfigError(
                f"config key 'trainer.max_model_memory_gb': expected a positive number of GB "
                f"(inf turns the check off), got {max_model_memory_gb}"
            )
        return max_model_memory_gb * 1e9, f"trainer.max_model_memory_gb={max_model_memory_gb:g}"
    env = os.environ.get(_ENV)
    if env:
        try:
            gb = float(env)
        except ValueError:
            gb = math.nan
        if not gb > 0:
            raise ConfigError(
                f"{_ENV}={env!r}: expected a positive number of GB (inf turns the check off)"
            )
        return gb * 1e9, f"{_ENV}={env}"
    total = machine_memory()
    if total is None:
        return math.inf, "no limit (the machine's memory is unknown)"
    return total / 2, f"half of this machine's {total / 1e9:.1f} GB"


def optimizer_state_factor(optim: OptimConfig | None) -> int:
    """Optimizer state bytes per parameter byte (see the module docstring)."""
    if optim is None:
        return 0
    if optim.name in ("adam", "adamw"):
        return 2
    if optim.name == "rmsprop":
        return 1 + (optim.momentum > 0)
    return int(optim.momentum > 0)


def model_memory(model: nn.Module, optim: OptimConfig | None) -> int:
    """Bytes of ``model``'s parameters (tied ones once) and optimizer state, plus its buffers."""
    params = {id(p): p.numel() * p.element_size() for p in model.parameters()}
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    return sum(params.values()) * (1 + optimizer_state_factor(optim)) + buffers


def _gb(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 1e3:.1f} kB"


class _TooBig(BaseException):
    """Stops a dry build (a BaseException, so that no ``except Exception`` in a constructor
    eats it)."""


class _Counter:
    """Count the parameter bytes registered by this thread's modules; stop past the limit."""

    def __init__(self, limit: float, factor: int):
        self.limit, self.factor = limit, factor
        self.seen: dict[int, int] = {}
        self.total = 0
        self.thread = threading.get_ident()

    def __call__(self, module: nn.Module, name: str, param: Any) -> None:
        if param is None or threading.get_ident() != self.thread:
            return
        self.seen[id(param)] = param.numel() * param.element_size()
        if len(self.seen) > MAX_PARAMETER_TENSORS:
            raise _TooBig(f"more than {MAX_PARAMETER_TENSORS:,} parameter tensors")
        self.total = sum(self.seen.values()) * (1 + self.factor)
        if self.total > self.limit:
            raise _TooBig("")


def build_model(
    factory: Callable[..., nn.Module],
    *args: Any,
    run: RunConfig,
    training: bool = True,
    source: str | os.PathLike | None = None,
    **kwargs: Any,
) -> nn.Module:
    """``factory(*args, **kwargs)``, once a dry build on ``meta`` shows that it can be built
    and that it fits the memory limit (module docstring).

    Args:
        factory: the model class (or a function returning a module).
        run: the run config: its ``optim`` (training) and ``trainer.max_model_memory_gb``.
        training: count the optimizer's state too (False: loading for inference).
        source: the checkpoint's config.json, when the config comes from one.
    """
    where = f"{source}: " if source is not None else ""
    error = CheckpointError if source is not None else ConfigError
    try:
        limit, why = memory_limit(run.trainer.max_model_memory_gb)
    except ConfigError as e:
        raise error(f"{where}{e}") from None
    optim = run.optim if training else None
    factor = optimizer_state_factor(optim)
    what = f"parameters and {optim.name} state" if factor else "parameters"

    def too_big(need: str) -> Exception:
        return error(f"{where}model: needs {need} for its {what}, more than {why} allows; "
                     f"make the model smaller, or set trainer.max_model_memory_gb (or {_ENV}) "
                     f"to a larger number of GB (inf turns the check off)")

    counter = _Counter(limit, factor)
    handle = nn.modules.module.register_module_parameter_registration_hook(counter)
    meta = None
    try:
        with torch.device("meta"):
            meta = factory(*args, **kwargs)
    except _TooBig as e:
        if str(e):
            raise error(f"{where}model: {e} (check model.num_layers)") from None
        raise too_big(f"at least {_gb(counter.total)}") from None
    except (TypeError, ValueError, KeyError) as e:
        raise error(f"{where}model: {_message(e)}") from None
    except (NotImplementedError, RuntimeError):
        meta = None  # cannot be built on meta: build it for real unchecked
    finally:
        handle.remove()
    if meta is not None:
        need = model_memory(meta, optim)
        if need > limit:
            raise too_big(_gb(need))
    try:
        return factory(*args, **kwargs)
    except (TypeError, ValueError, KeyError, RuntimeError) as e:
        raise error(f"{where}model: {_message(e)}") from None


def _message(e: BaseException) -> str:
    """One line: an unknown keyword reads as such (it comes from ``model.extras``)."""
    msg = " ".join(str(e).split())
    if isinstance(e, TypeError) and "unexpected keyword argument" in msg:
        kw = msg.rsplit("unexpected keyword argument", 1)[1].strip()
        return f"model.extras: unknown keyword {kw} for this model's layers ({msg})"
    return msg[:400]
