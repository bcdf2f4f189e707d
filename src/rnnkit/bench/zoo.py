"""The cell x backend x shape x threads suite behind ``rnnkit bench``.

For each shape every contender runs side by side in one process (interleaved
repeats after warm-up, see :mod:`rnnkit.bench.measure`): the baselines
``torch.nn.LSTM`` and ``torch.nn.GRU``, and each rnnkit cell on each backend
that can run it, each at every thread count of the sweep. A contender's untimed
setup sets torch's intra-op threads, so the rounds interleave thread counts as
well as contenders: a slow spell on a shared machine hits 1 and N threads alike.

Every row (one cell, backend, shape and thread count) has ``forward`` and
``forward_backward`` entries (median ms, quartiles, peak bytes), the ratios
``ratio_lstm``/``ratio_gru`` of its median to the baselines' at the same shape
and thread count (below 1: faster), and its thread scaling ``scaling`` = time
at the sweep's first (smallest) thread count / time at this row's, beside
torch.nn.LSTM's own, ``scaling_lstm``.

``forward`` is ``layer(x)`` under ``no_grad``; ``forward_backward`` is
``layer(x)[0].backward(g)`` with gradients reset (untimed) before each call,
an input that needs no grad and a fixed ``g``; layers are in training mode.

Example::

    doc = run_grid(GridSettings(cells=("gru", "sru"), shapes=(Shape(32, 100, 128, 256),),
                                threads=(1, 2)))
"""
from __future__ import annotations

import copy
import gc
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .measure import CLOCKS, Task, interleave, peak_bytes, summarize
from .report import CLOCK_LABELS, SCHEMA

__all__ = ["ZOO_CELLS", "DEFAULT_CELLS", "BLOCK_STACKS", "BACKENDS", "GRID_SHAPES",
           "QUICK_SHAPES", "CONTROL", "Shape", "GridSettings", "run_grid", "parse_shape",
           "parse_threads", "layer_tasks"]

BASELINES = {"torch.nn.LSTM": nn.LSTM, "torch.nn.GRU": nn.GRU}
#: the A/A control (``control=True``): a second torch.nn.LSTM, same weights, other memory
CONTROL = ("torch.nn.LSTM", "torch.nn-copy")
BACKENDS = ("auto", "torch", "fused", "loop")


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


GRID_SHAPES = tuple(Shape(B, T, 128, H) for B in (1, 32, 128) for T in (100, 1000)
                    for H in (128, 512))
QUICK_SHAPES = (Shape(8, 50, 32, 64),)


def _zoo() -> dict[str, Callable[..., nn.Module]]:
    from rnnkit import layers as L

    return {
        "rnn_tanh": L.RNN, "lstm": L.LSTM, "gru": L.GRU,
        "lstm_zoneout": lambda I, H, **kw: L.LSTM(I, H, zoneout=0.1, **kw),
        "lstm_rec_dropout": lambda I, H, **kw: L.LSTM(I, H, recurrent_dropout=0.25, **kw),
        "lstm_weight_drop": lambda I, H, **kw: L.LSTM(I, H, weight_drop=0.5, **kw),
        "ln_lstm": L.LayerNormLSTM, "ln_gru": L.LayerNormGRU,
        "indrnn": L.IndRNN, "qrnn": L.QRNN, "sru": L.SRU,
        "mingru": L.MinGRU, "minlstm": L.MinLSTM,
        "lru": L.LRU, "rglru": L.RGLRU, "slstm": L.SLSTM, "mlstm": L.MLSTM,
        "s6": L.S6,
        **{b: (lambda I, H, b=b, **kw: _block_stack(b, I, H, **kw)) for b in BLOCK_STACKS},
    }


#: the published blocks, each benchmarked as a one-block stack at ``d_model = H``
#: (:class:`rnnkit.models.blocks.BlockStack`: a linear map from I, the block, a final norm):
#: their own torch code, no backend to choose ("auto" only). name -> (block, stack options):
#: "xlstm" is xLSTM's mLSTM block, "xlstm_slstm" its sLSTM block
BLOCK_STACKS = {"griffin": ("griffin", {}), "mamba": ("mamba", {}), "xlstm": ("xlstm", {}),
                "xlstm_slstm": ("xlstm", {"slstm_every": 1}), "deep_lru": ("deep_lru", {})}


def _block_stack(name: str, I: int, H: int, backend: str = "auto", **kw) -> nn.Module:
    from rnnkit.models.blocks import BlockStack

    if backend != "auto":
        raise ValueError(f"cell {name!r}: a block stack has no backend to choose; "
                         f"expected backend 'auto', got {backend!r}")
    block, options = BLOCK_STACKS[name]
    return BlockStack(block, I, H, 1, **options, **kw)


#: cell names of the suite (each an rnnkit layer factory ``(I, H, backend=...)``).
ZOO_CELLS = ("rnn_tanh", "lstm", "gru", "lstm_zoneout", "lstm_rec_dropout", "lstm_weight_drop",
             "ln_lstm", "ln_gru", "indrnn", "qrnn", "sru", "mingru", "minlstm", "lru", "rglru",
             "slstm", "mlstm", "s6", *BLOCK_STACKS)
#: the suite's cells run when none are named: all but S6 and the block stacks, which only run
#: when asked for (``--cells s6``): S6 keeps about 15 tensors of (T, B, H*16) floats for its
#: backward (by that count about 60 GB at the grid's B=128, T=1000, H=512; not run), and so
#: does Mamba's block
DEFAULT_CELLS = tuple(c for c in ZOO_CELLS if c != "s6" and c not in BLOCK_STACKS)
#: the cells whose fused scan runs a compiled matrix loop with a packed recurrent weight (the
#: peak-memory check's layers: tests/kernels/test_compiled_scans.py, bench_pack_memory.py).
PACKED_LOOP_CELLS = ("lstm_zoneout", "lstm_rec_dropout", "lstm_weight_drop", "ln_lstm", "ln_gru",
                     "gru", "rnn_tanh")


def make_layer(name: str, I: int, H: int, **kw) -> nn.Module:
    """The suite's layer ``name`` (:data:`ZOO_CELLS`), input size ``I``, hidden size ``H``;
    ``kw`` (e.g. ``backend="fused"``) go to the layer."""
    zoo = _zoo()
    if name not in zoo:
        raise ValueError(f"cell {name!r}: expected one of {', '.join(ZOO_CELLS)}")
    return zoo[name](I, H, **kw)


def parse_shape(text: str) -> Shape:
    """``"B,T,H"`` (I = 128) or ``"B,T,I,H"`` -> :class:`Shape`."""
    try:
        v = [int(p) for p in text.split(",")]
        if len(v) == 3:
            v = [v[0], v[1], 128, v[2]]
        if len(v) != 4:
            raise ValueError
        return Shape(*v)
    except ValueError:
        raise ValueError(f"--shapes: expected B,T,H or B,T,I,H (positive ints), "
                         f"got {text!r}") from None


def parse_threads(text: str) -> tuple[int, ...]:
    """``"1,2,4"`` -> ``(1, 2, 4)``: distinct positive thread counts, in ascending order."""
    try:
        v = [int(p) for p in text.split(",")]
        if not v or min(v) < 1 or len(set(v)) != len(v):
            raise ValueError
    except ValueError:
        raise ValueError(f"--threads: expected distinct positive ints separated by commas "
                         f"such as 1,2,4, got {text!r}") from None
    return tuple(sorted(v))


def _default_threads() -> tuple[int, ...]:
    return (torch.get_num_threads(),)


@dataclass
class GridSettings:
    cells: tuple[str, ...] = DEFAULT_CELLS
    backends: tuple[str, ...] = ("auto", "fused")
    shapes: tuple[Shape, ...] = GRID_SHAPES
    threads: tuple[int, ...] = field(default_factory=_default_threads)  # torch's default count
    repeats: int = 5
    warmup: int = 1
    min_sample_s: float = 0.05
    clock: str = "wall"
    memory: bool = True
    device: str = "cpu"
    dtype: str = "float32"
    seed: int = 0
    quick: bool = False
    input_grad: bool = False  # forward_backward also computes dL/dx
    control: bool = False  # add the A/A control CONTROL
    measures: tuple[str, ...] = field(default=("forward", "forward_backward"))

    def __post_init__(self):
        for name, values, known in (("cells", self.cells, ZOO_CELLS),
                                    ("backends", self.backends, BACKENDS)):
            bad = [v for v in values if v not in known]
            if bad:
                raise ValueError(f"--{name}: unknown {bad}; expected some of {list(known)}")
        blocks = sorted(set(self.cells) & set(BLOCK_STACKS))
        if blocks and "auto" not in self.backends:
            raise ValueError(f"--cells {blocks[0]}: a block stack runs only under --backends "
                             f"auto (it has no backend to choose), got {list(self.backends)}")
        if self.clock not in CLOCKS:
            raise ValueError(f"--clock: expected one of {list(CLOCKS)}, got {self.clock!r}")
        if not isinstance(self.repeats, int) or self.repeats < 1:
            raise ValueError(f"--repeats: expected a positive int, got {self.repeats!r}")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"--warmup: expected an int >= 0, got {self.warmup!r}")
        if not isinstance(getattr(torch, self.dtype, None), torch.dtype):
            raise ValueError(f"--dtype: expected a torch dtype name such as 'float32', "
                             f"got {self.dtype!r}")
        self.threads = parse_threads(",".join(map(str, self.threads)))

    def to_json(self) -> dict:
        d = asdict(self)
        d["shapes"] = [asdict(s) for s in self.shapes]
        d["threads"] = list(self.threads)
        d["clock_label"] = CLOCK_LABELS[self.clock]
        return d


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


def _set_threads(n: int) -> None:
    if torch.get_num_threads() != n:  # re-setting the same count is not free (thread pools)
        torch.set_num_threads(n)


def _at_threads(task: Task, n: int) -> Task:
    """``task`` with torch's intra-op threads set to ``n`` in its (untimed) setup."""
    def setup():
        _set_threads(n)
        if task.setup is not None:
            task.setup()

    return Task(task.run, setup)


# ------------------------------------------------------------------ contenders
def _contenders(shape: Shape, s: GridSettings, x: torch.Tensor) -> dict[tuple, nn.Module]:
    """``{(cell, backend): module}``: the baselines and every runnable rnnkit layer."""
    from rnnkit.kernels.dispatch import choose_backend

    kw = dict(device=s.device, dtype=getattr(torch, s.dtype))
    out: dict[tuple, nn.Module] = {}
    for name, cls in BASELINES.items():
        out[(name, "torch.nn")] = cls(shape.I, shape.H, **kw).train()
    if s.control:
        out[CONTROL] = copy.deepcopy(out[("torch.nn.LSTM", "torch.nn")])
    zoo = _zoo()
    for cell in s.cells:
        for backend in s.backends:
            if cell in BLOCK_STACKS:
                if backend == "auto":
                    out[(cell, backend)] = zoo[cell](shape.I, shape.H, **kw).train()
                continue
            m = zoo[cell](shape.I, shape.H, backend=backend, **kw).train()
            try:
                choose_backend(m, x)
            except ValueError:
                continue  # this backend cannot run this cell
            out[(cell, backend)] = m
    return out


def _ran(m: nn.Module, cell: str, backend: str, x: torch.Tensor) -> tuple[str, str]:
    """What ``auto`` runs when training and, under no_grad, inferring (at the current threads)."""
    from rnnkit.kernels.dispatch import choose_backend

    if backend != "auto":
        return backend, backend
    if cell in BLOCK_STACKS:  # its own torch code
        return "blocks", "blocks"
    train = choose_backend(m, x)
    with torch.no_grad():
        return train, choose_backend(m, x)


# --------------------------------------------------------------------- running
def _shape_rows(shape: Shape, s: GridSettings, progress) -> list[dict]:
    gc.collect()
    torch.manual_seed(s.seed)
    dev, dt = torch.device(s.device), getattr(torch, s.dtype)
    x = torch.randn(shape.T, shape.B, shape.I, device=dev, dtype=dt, requires_grad=s.input_grad)
    g = torch.randn(shape.T, shape.B, shape.H, device=dev, dtype=dt)
    _set_threads(s.threads[0])
    mods = _contenders(shape, s, x)
    rows: dict[tuple, dict] = {}
    tasks: dict[tuple, dict[str, Task]] = {}
    for n in s.threads:  # rows: (cell, backend, threads), thread counts inner
        _set_threads(n)
        for (cell, backend), m in mods.items():
            ran, ran_forward = _ran(m, cell, backend, x)
            rows[(cell, backend, n)] = {"cell": cell, "backend": backend, "shape": asdict(shape),
                                        "threads": n, "ran": ran, "ran_forward": ran_forward,
                                        "parameters": sum(p.numel() for p in m.parameters())}
            tasks[(cell, backend, n)] = {k: _at_threads(t, n)
                                         for k, t in layer_tasks(m, x, g).items()}
    for measure in s.measures:
        say = None if progress is None else (
            lambda msg, m=measure: progress(f"{shape.label} {m}: {msg}"))
        timed = interleave({k: t[measure] for k, t in tasks.items()}, repeats=s.repeats,
                           warmup=s.warmup, min_sample_s=s.min_sample_s, device=dev,
                           clock=s.clock, progress=say)
        for k, t in timed.items():
            e = summarize(t["samples_ms"])
            e["calls_per_sample"] = t["calls_per_sample"]
            e["peak_bytes"] = peak_bytes(tasks[k][measure], dev) if s.memory else None
            rows[k][measure] = e
    order = sorted(rows, key=lambda k: list(mods).index(k[:2]))  # each contender's counts together
    return add_ratios([rows[k] for k in order], s.measures)


def add_ratios(rows: list[dict], measures=("forward", "forward_backward")) -> list[dict]:
    """Set ``ratio_lstm``/``ratio_gru`` and ``scaling``/``scaling_lstm`` of rows of one shape.

    ``ratio_lstm[m]`` = median / torch.nn.LSTM's median at the same thread count;
    ``scaling[m]`` = this contender's median at the smallest thread count of ``rows`` /
    its median at this row's count; ``scaling_lstm[m]``: the same for torch.nn.LSTM.
    """
    med = {(r["cell"], r["backend"], r["threads"]): {m: r[m]["median_ms"] for m in measures}
           for r in rows}
    first = min(r["threads"] for r in rows)
    for r in rows:
        n, me = r["threads"], (r["cell"], r["backend"])
        for base in BASELINES:
            b = med[(base, "torch.nn", n)]
            r["ratio_" + base.split(".")[-1].lower()] = {m: med[(*me, n)][m] / b[m]
                                                         for m in measures}
        lstm = ("torch.nn.LSTM", "torch.nn")
        r["scaling"] = {m: med[(*me, first)][m] / med[(*me, n)][m] for m in measures}
        r["scaling_lstm"] = {m: med[(*lstm, first)][m] / med[(*lstm, n)][m] for m in measures}
    return rows


def run_grid(s: GridSettings, progress: Callable[[str], None] | None = None,
             on_shape: Callable[[dict], None] | None = None) -> dict:
    """Run every shape; ``on_shape(doc)`` after each one (to save partial results)."""
    from datetime import datetime, timezone

    from .machine import loadavg_now, machine_info

    started = datetime.now(timezone.utc)
    doc = {"schema": SCHEMA, "suite": "cells_backends_shapes",
           "created": started.isoformat(timespec="seconds"), "machine": machine_info(s.device),
           "settings": s.to_json(), "results": [], "shapes_done": 0}
    before = torch.get_num_threads()
    try:
        for shape in s.shapes:
            doc["results"].extend(_shape_rows(shape, s, progress))
            doc["shapes_done"] += 1
            doc["seconds"] = round((datetime.now(timezone.utc) - started).total_seconds(), 1)
            doc["machine"]["loadavg_end"] = loadavg_now()
            if on_shape is not None:
                on_shape(doc)
    finally:
        _set_threads(before)
    return doc
