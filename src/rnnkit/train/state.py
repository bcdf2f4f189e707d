"""Loop state that a resumed run needs to continue exactly: counters, RNGs, history.

``TrainState`` is plain data (saved as JSON); the random-number generators are captured
as tensors (torch, CUDA: uint8) and JSON lists (Python ``random``, NumPy), so nothing is
pickled.  Seeding and deterministic mode live here too.

:func:`check_trainer_state` checks a ``trainer_state.json`` field by field before a resume
builds anything, and :func:`check_optimizer_state` checks its optimizer state against the
optimizer it is loaded into: a wrong type is one ``CheckpointError`` line naming the file and
the field, not a TypeError in the middle of the loop.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rnnkit.train.checkpoint import CheckpointError, optimizer_from_flat, unflatten_tensors

__all__ = ["TrainState", "seed_everything", "set_deterministic", "capture_rng", "restore_rng",
           "check_trainer_state", "check_optimizer_state", "STOP_REASONS"]

#: the values of ``TrainState.stopped`` besides None
STOP_REASONS = ("max_epochs", "max_steps", "time", "early_stopping")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class _Checker:
    """Raises CheckpointError("<path>: field '<name>': expected <what>, got <value>")."""

    def __init__(self, path: Any):
        self.path = path

    def fail(self, name: str, what: str, value: Any = None, show: bool = True) -> CheckpointError:
        got = f", got {value!r:.60}" if show else ""
        return CheckpointError(f"{self.path}: field '{name}': expected {what}{got}")

    def get(self, obj: dict, key: str, name: str, what: str) -> Any:
        if key not in obj:
            raise self.fail(name, what + " (missing)", show=False)
        return obj[key]

    def count(self, v: Any, name: str, low: int = 0) -> int:
        if not (_is_int(v) and v >= low):
            raise self.fail(name, f"an integer >= {low}", v)
        return v

    def number(self, v: Any, name: str, *, null: bool = False, low: float | None = None) -> Any:
        if v is None and null:
            return v
        if not _is_number(v) or (low is not None and not v >= low):
            what = (
                "a number"
                + (f" >= {low:g}" if low is not None else "")
                + (" or null" if null else "")
            )
            raise self.fail(name, what, v)
        return v

    def obj(self, v: Any, name: str) -> dict:
        if not isinstance(v, dict):
            raise self.fail(name, "an object", v)
        return v


@dataclass
class TrainState:
    """Counters of the loop.

    Attributes:
        epoch: 0-based epoch in progress (or next to start).
        step: optimizer steps taken in total.
        batch_in_epoch: batches of ``epoch`` already trained on (0 at an epoch boundary).
        best: best value of the monitored metric so far (None before the first evaluation).
        best_step: the step ``best`` (and ``best/``) came from.
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
    best_step: int | None = None
    bad_evals: int = 0
    elapsed: float = 0.0
    cpu_seconds: float = 0.0
    items: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Any, where: Any = "trainer_state.json") -> TrainState:
        """The state of a ``trainer_state.json``'s ``"state"`` object, each field type-checked
        (missing ones take their defaults; unknown ones are ignored)."""
        c, pre = _Checker(where), "state"
        d = c.obj(d, pre)
        out = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for k in ("epoch", "step", "batch_in_epoch", "bad_evals", "items"):
            if k in out:
                c.count(out[k], f"{pre}.{k}")
        if "best" in out:
            c.number(out["best"], f"{pre}.best", null=True)
        if out.get("best_step") is not None:
            c.count(out["best_step"], f"{pre}.best_step")
        for k in ("elapsed", "cpu_seconds"):
            if k in out:
                out[k] = float(c.number(out[k], f"{pre}.{k}", low=0))
        if "history" in out:
            h = out["history"]
            if not isinstance(h, list):
                raise c.fail(f"{pre}.history", "a list of records", h)
            for i, r in enumerate(h):
                if not (
                    isinstance(r, dict)
                    and all(
                        isinstance(k, str) and (v is None or isinstance(v, (int, float, str)))
                        for k, v in r.items()
                    )
                ):
                    raise c.fail(f"{pre}.history[{i}]", "an object of numbers and strings", r)
        if "stopped" in out and out["stopped"] is not None and out["stopped"] not in STOP_REASONS:
            raise c.fail(
                f"{pre}.stopped", f"one of null, {', '.join(STOP_REASONS)}", out["stopped"]
            )
        return cls(**out)


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
    cuda = sorted(
        (k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1])
    )
    if cuda and torch.cuda.is_available():
        states = [tensors[k].to(torch.uint8) for k in cuda][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(states)
    if "python" in meta:
        version, internal, gauss = meta["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in meta:
        kind, keys, pos, has_gauss, cached = meta["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


# --------------------------------------------------------------------------- validation


def check_trainer_state(meta: Any, tensors: dict[str, Tensor], where: Any) -> TrainState:
    """Check a ``trainer_state.json`` (``meta``) and its tensors as :meth:`Trainer.save
    <rnnkit.train.Trainer.save>` writes them; return its :class:`TrainState`.

    Raises:
        CheckpointError: ``"<where>: field 'state.epoch': expected an integer >= 0, got 'one'"``.
    """
    c = _Checker(where)
    meta = c.obj(meta, "(top level)")
    state = TrainState.from_json(c.get(meta, "state", "state", "an object"), where)
    c.count(c.get(meta, "world_size", "world_size", "an integer >= 1"), "world_size", low=1)
    opt = c.obj(c.get(meta, "optimizer", "optimizer", "an object"), "optimizer")
    if not isinstance(opt.get("state"), list):
        raise c.fail(
            "optimizer.state", "a list of [parameter index, state] pairs", opt.get("state")
        )
    optimizer_from_flat(opt, tensors, str(where))
    sched = c.obj(c.get(meta, "schedule", "schedule", "an object"), "schedule")
    c.number(sched.get("plateau_best"), "schedule.plateau_best", null=True)
    for k in ("plateau_bad", "plateau_reductions"):
        c.count(sched.get(k, 0), f"schedule.{k}")
    carry = unflatten_tensors(meta.get("carry"), tensors, str(where))
    _check_carry(c, carry, "carry")
    rng = c.obj(c.get(meta, "rng", "rng", "an object"), "rng")
    _check_rng(c, rng, tensors)
    last_val = c.obj(meta.get("last_val", {}), "last_val")
    for k, v in last_val.items():
        c.number(v, f"last_val.{k}")
    for k, v in c.obj(meta.get("data_sha256", {}), "data_sha256").items():
        if not (isinstance(v, str) and len(v) == 64
                and all(ch in "0123456789abcdef" for ch in v)):
            raise c.fail(f"data_sha256.{k}", "a SHA-256 as 64 lowercase hex digits", v)
    return state


def _check_carry(c: _Checker, x: Any, name: str) -> None:
    if x is None:
        return
    if isinstance(x, Tensor):
        if not x.is_floating_point() or x.dim() < 1:
            raise c.fail(name, "a floating-point tensor with a leading process dimension",
                         f"{x.dtype} of shape {tuple(x.shape)}")
        return
    if not isinstance(x, tuple):
        raise c.fail(name, "null, a tensor or a tuple of them", x)
    for i, v in enumerate(x):
        _check_carry(c, v, f"{name}[{i}]")


def _check_rng(c: _Checker, rng: dict, tensors: dict[str, Tensor]) -> None:
    """Each state must be accepted by a scratch generator of its kind."""
    try:
        version, internal, gauss = rng["python"]
        random.Random().setstate((version, tuple(internal), gauss))
    except Exception:  # whatever the scratch generator refuses
        raise c.fail("rng.python", "[version, 625 integers, gauss] of random.getstate()",
                     rng.get("python")) from None
    try:
        kind, keys, pos, has_gauss, cached = rng["numpy"]
        np.random.RandomState().set_state(
            (kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)
        )
    except Exception:
        raise c.fail(
            "rng.numpy",
            "[kind, 624 integers, pos, has_gauss, cached] of numpy's get_state()",
            rng.get("numpy"),
        ) from None
    for k, t in tensors.items():
        if k == "rng.torch" or k.startswith("rng.cuda."):
            ok = t.dtype == torch.uint8 and t.dim() == 1
            if ok and k == "rng.torch":
                try:
                    torch.Generator().set_state(t)
                except RuntimeError:
                    ok = False
            if not ok:
                raise c.fail(
                    f"tensor {k}", "a generator state (uint8 vector)", f"{t.dtype} {tuple(t.shape)}"
                )


def check_optimizer_state(
    state: dict[str, Any], optimizer: torch.optim.Optimizer, where: Any
) -> None:
    """Check a loaded ``optimizer.state_dict()``-like ``state`` against ``optimizer``: the same
    groups and parameter counts, values of the same kinds, per-parameter state with the keys
    this optimizer makes and tensors of the parameters' shapes (or scalars, like Adam's
    ``step``). A group setting that ``state`` lacks is set to ``optimizer``'s (in place)."""
    c = _Checker(where)
    live = optimizer.state_dict()
    groups = state["param_groups"]
    if not isinstance(groups, list) or len(groups) != len(live["param_groups"]):
        raise c.fail(
            "optimizer.param_groups", f"a list of {len(live['param_groups'])} group(s)", groups
        )
    # saved index -> the parameter it is loaded into, as torch maps them
    params: dict[int, Tensor] = {}
    for i, (g, ref, live_g) in enumerate(zip(groups, live["param_groups"], optimizer.param_groups)):
        name = f"optimizer.param_groups[{i}]"
        g = c.obj(g, name)
        ids = g.get("params")
        if not (
            isinstance(ids, list)
            and len(ids) == len(ref["params"])
            and all(_is_int(j) for j in ids)
        ):
            raise c.fail(f"{name}.params", f"{len(ref['params'])} parameter indices", ids)
        for j, p in zip(ids, live_g["params"]):
            if j in params:
                raise c.fail(f"{name}.params", "distinct parameter indices", ids)
            params[j] = p
        # settings a checkpoint lacks (another torch version's) take this run's
        for k, v in ref.items():
            g.setdefault(k, v)
        for k, v in g.items():
            if k == "params" or k not in ref:
                continue
            r = ref[k]
            if isinstance(r, bool) or r is None:
                ok = v is None or isinstance(v, bool)
            elif _is_number(r):
                ok = _is_number(v) and not (isinstance(v, float) and math.isnan(v))
            elif isinstance(r, (tuple, list)):
                ok = isinstance(v, (tuple, list)) and len(v) == len(r) and all(map(_is_number, v))
            elif isinstance(r, Tensor):
                ok = isinstance(v, Tensor) and v.numel() == r.numel()
            else:
                ok = isinstance(v, type(r))
            if not ok:
                raise c.fail(f"{name}.{k}", f"a value like {r!r}", v)
    expected = _state_kinds(optimizer)
    for i, s in state["state"].items():
        name = f"optimizer.state.{i}"
        if i not in params:
            raise c.fail(name, "the index of a parameter in optimizer.param_groups", i, show=False)
        s = c.obj(s, name)
        if expected is not None and set(s) != set(expected):
            raise c.fail(name, f"an object with keys {sorted(expected)}", sorted(map(str, s)))
        for k, v in s.items():
            if v is None and (expected is None or expected[k] is None):
                continue
            if not (isinstance(v, Tensor) and v.is_floating_point()
                    and (v.numel() == 1 or v.shape == params[i].shape)):
                got = f"{v.dtype} {tuple(v.shape)}" if isinstance(v, Tensor) else v
                raise c.fail(
                    f"{name}.{k}",
                    f"a float tensor of shape {tuple(params[i].shape)} or a scalar",
                    got,
                )


def _state_kinds(optimizer: torch.optim.Optimizer) -> dict[str, type | None] | None:
    """The per-parameter state one step of this kind of optimizer creates: {key: Tensor or None}
    (found by stepping a copy on a one-element parameter); None if that cannot be done."""
    opt = getattr(optimizer, "optimizer", optimizer)  # under Lightning Fabric's wrapper
    p = torch.zeros(1, requires_grad=True)
    try:
        scratch = type(opt)([p], **opt.defaults)
        p.grad = torch.zeros(1)
        scratch.step()
    except Exception:  # an optimizer that cannot be rebuilt from its defaults: keys unchecked
        return None
    return {k: None if v is None else Tensor for k, v in scratch.state[p].items()}
