"""The core-layer suite: rnnkit.RNN/LSTM/GRU (``auto`` and ``loop``) against torch.nn.

For each cell and shape, every contender gets the same weights (loaded from the
torch.nn module) and the same input ``x (T, B, I)``, and two calls are measured:

- ``forward``: ``layer(x)`` under ``torch.no_grad()`` (inference);
- ``forward_backward``: a training step's share of the layer: gradients reset
  to None (untimed, as ``optimizer.zero_grad()``), then ``out, _ = layer(x)``
  and ``out.backward(g)`` with a fixed ``g (T, B, H)``; the input needs no grad.

Each contender's time is the median over interleaved repeats (see
:mod:`rnnkit.bench.measure`), and its ratio is ``median / median of torch.nn``
for the same cell, shape and measure: below 1 is faster than torch.nn.

``torch.nn-copy`` is an A/A control: a second torch.nn module with copies of the
same weights (in other memory). It runs the very same code, so its ratio is pure
measurement noise, the floor against which the other ratios are read.
"""
from __future__ import annotations

import copy
import gc
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from .measure import CLOCKS, Task, interleave, peak_bytes, summarize

#: version of the result document; bump when a field changes meaning.
SCHEMA = "rnnkit-bench/1"

__all__ = ["SCHEMA", "Shape", "Settings", "CELLS", "CONTENDERS", "BASELINE", "CONTROL",
           "MEASURES", "SHAPES",
           "quick_settings", "build_contenders", "layer_tasks", "add_ratios", "run_suite"]


@dataclass(frozen=True)
class Shape:
    """Batch B, time T, input I and hidden H of one benchmark case."""

    B: int
    T: int
    I: int
    H: int

    def __post_init__(self):
        for k, v in asdict(self).items():
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"shape: {k} must be a positive int, got {v!r}")

    @property
    def label(self) -> str:
        return f"B={self.B} T={self.T} I={self.I} H={self.H}"


def _cells() -> dict[str, tuple[type[nn.Module], type[nn.Module], dict]]:
    from rnnkit.layers import GRU, LSTM, RNN

    return {
        "rnn_tanh": (nn.RNN, RNN, {"nonlinearity": "tanh"}),
        "lstm": (nn.LSTM, LSTM, {}),
        "gru": (nn.GRU, GRU, {}),
    }


#: cell name -> (torch.nn class, rnnkit class, constructor kwargs); filled on first use.
CELLS: tuple[str, ...] = ("rnn_tanh", "lstm", "gru")
#: contender name -> rnnkit backend (None: the torch.nn module itself).
CONTENDERS: dict[str, str | None] = {"torch.nn": None, "torch.nn-copy": None,
                                     "rnnkit-auto": "auto", "rnnkit-loop": "loop"}
#: the A/A control: same module as the baseline, other memory
CONTROL = "torch.nn-copy"
BASELINE = "torch.nn"
MEASURES = ("forward", "forward_backward")
SHAPES = (Shape(B=32, T=100, I=128, H=256), Shape(B=8, T=1000, I=512, H=512))


@dataclass
class Settings:
    """What to run and how many times; every field lands in the result's ``settings``."""

    device: str = "cpu"
    dtype: str = "float32"
    repeats: int = 11
    warmup: int = 2
    min_sample_s: float = 0.05
    clock: str = "wall"
    quick: bool = False
    seed: int = 0
    memory: bool = True
    cells: tuple[str, ...] = CELLS
    shapes: tuple[Shape, ...] = SHAPES
    contenders: tuple[str, ...] = tuple(CONTENDERS)

    def __post_init__(self):
        unknown = [c for c in self.cells if c not in CELLS]
        if unknown:
            raise ValueError(f"cells: unknown {unknown}; expected some of {list(CELLS)}")
        unknown = [c for c in self.contenders if c not in CONTENDERS]
        if unknown:
            raise ValueError(f"contenders: unknown {unknown}; expected some of {list(CONTENDERS)}")
        if BASELINE not in self.contenders:
            raise ValueError(f"contenders: must include the baseline {BASELINE!r} (ratios are "
                             f"taken to it), got {list(self.contenders)}")
        if not isinstance(getattr(torch, self.dtype, None), torch.dtype):
            raise ValueError(f"dtype: expected a torch dtype name such as 'float32', "
                             f"got {self.dtype!r}")
        if not isinstance(self.repeats, int) or self.repeats < 1:
            raise ValueError(f"repeats: expected a positive int, got {self.repeats!r}")
        if self.clock not in CLOCKS:
            raise ValueError(f"clock: expected one of {list(CLOCKS)}, got {self.clock!r}")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"warmup: expected an int >= 0, got {self.warmup!r}")

    def to_json(self) -> dict:
        d = asdict(self)
        d["cells"], d["contenders"] = list(self.cells), list(self.contenders)
        d["shapes"] = [asdict(s) for s in self.shapes]
        d["baseline"], d["measures"] = BASELINE, list(MEASURES)
        return d


def quick_settings(**overrides) -> Settings:
    """A smoke run: 3 repeats, 1 warm-up, short samples, T divided by 10 (at least 10)."""
    shapes = tuple(replace(s, T=max(10, s.T // 10)) for s in SHAPES)
    kw = dict(repeats=3, warmup=1, min_sample_s=0.02, quick=True, shapes=shapes)
    kw.update(overrides)
    return Settings(**kw)


# ------------------------------------------------------------------ contenders
def build_contenders(cell: str, shape: Shape, contenders, *, device="cpu",
                     dtype=torch.float32) -> dict[str, nn.Module]:
    """The torch.nn module and rnnkit's layers for ``cell``, all with the same weights."""
    torch_cls, ours_cls, kw = _cells()[cell]
    ref = torch_cls(shape.I, shape.H, **kw).to(device=device, dtype=dtype)
    modules = {}
    for name in contenders:
        backend = CONTENDERS[name]
        if backend is None:
            modules[name] = ref if name == BASELINE else copy.deepcopy(ref)
        else:
            m = ours_cls(shape.I, shape.H, backend=backend, **kw).to(device=device, dtype=dtype)
            m.load_state_dict(ref.state_dict())
            modules[name] = m
    return modules


def layer_tasks(module: nn.Module, x: torch.Tensor, grad_out: torch.Tensor) -> dict[str, Task]:
    """The ``forward`` and ``forward_backward`` tasks of one layer on input ``x``."""
    params = list(module.parameters())

    def forward():
        with torch.no_grad():
            return module(x)

    def drop_grads():
        for p in params:
            p.grad = None
        x.grad = None

    def forward_backward():
        out, _ = module(x)  # (T, B, H)
        out.backward(grad_out)

    return {"forward": Task(forward), "forward_backward": Task(forward_backward, drop_grads)}


# --------------------------------------------------------------------- running
def _run_case(cell: str, shape: Shape, s: Settings,
              progress: Callable[[str], None] | None) -> list[dict]:
    device, dtype = torch.device(s.device), getattr(torch, s.dtype)
    gc.collect()  # start each case clean; interleave() keeps the collector off while timing
    torch.manual_seed(s.seed)
    modules = build_contenders(cell, shape, s.contenders, device=device, dtype=dtype)
    x = torch.randn(shape.T, shape.B, shape.I, device=device, dtype=dtype)
    g = torch.randn(shape.T, shape.B, shape.H, device=device, dtype=dtype)
    tasks = {name: layer_tasks(m, x, g) for name, m in modules.items()}
    rows = {name: {"cell": cell, "shape": asdict(shape), "contender": name,
                   "backend": CONTENDERS[name]} for name in modules}
    for measure in MEASURES:
        say = None if progress is None else (
            lambda msg, m=measure: progress(f"{cell} {shape.label} {m}: {msg}"))
        timed = interleave({n: t[measure] for n, t in tasks.items()}, repeats=s.repeats,
                           warmup=s.warmup, min_sample_s=s.min_sample_s, device=device,
                           clock=s.clock, progress=say)
        for name, t in timed.items():
            entry = summarize(t["samples_ms"])
            entry["calls_per_sample"] = t["calls_per_sample"]
            entry["peak_bytes"] = peak_bytes(tasks[name][measure], device) if s.memory else None
            rows[name][measure] = entry
    return list(rows.values())


def add_ratios(rows: list[dict], baseline: str = BASELINE) -> list[dict]:
    """Set ``ratio`` (time) and ``peak_ratio`` (memory) of every measure, to the baseline row.

    ``ratio = median_ms / baseline median_ms`` of the same cell, shape and measure;
    ``peak_ratio`` likewise with ``peak_bytes`` (None where either is unknown or zero).
    """
    base = {}
    for r in rows:
        if r["contender"] == baseline:
            base[(r["cell"], tuple(sorted(r["shape"].items())))] = r
    for r in rows:
        key = (r["cell"], tuple(sorted(r["shape"].items())))
        if key not in base:
            raise ValueError(f"rows: no {baseline!r} row for cell {r['cell']!r} at {r['shape']}")
        b = base[key]
        for m in MEASURES:
            if m not in r:
                continue
            r[m]["ratio"] = r[m]["median_ms"] / b[m]["median_ms"]
            mine, theirs = r[m].get("peak_bytes"), b[m].get("peak_bytes")
            r[m]["peak_ratio"] = mine / theirs if mine is not None and theirs else None
    return rows


def run_suite(settings: Settings | None = None,
              progress: Callable[[str], None] | None = None) -> dict:
    """Run every cell x shape x contender; returns the result document (see ``report.validate``)."""
    from datetime import datetime, timezone

    from .machine import loadavg_now, machine_info

    s = settings or Settings()
    machine = machine_info(s.device)
    started = datetime.now(timezone.utc)
    rows: list[dict] = []
    for shape in s.shapes:
        for cell in s.cells:
            rows.extend(_run_case(cell, shape, s, progress))
    machine["loadavg_end"] = loadavg_now()
    return {
        "schema": SCHEMA,
        "suite": "core_layers",
        "created": started.isoformat(timespec="seconds"),
        "seconds": round((datetime.now(timezone.utc) - started).total_seconds(), 1),
        "machine": machine,
        "settings": s.to_json(),
        "results": add_ratios(rows),
    }

