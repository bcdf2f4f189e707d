"""The cell x backend x shape suite behind ``rnnkit bench``.

For each shape every contender runs side by side in one process (interleaved
repeats after warm-up, see :mod:`rnnkit.bench.measure`): the baselines
``torch.nn.LSTM`` and ``torch.nn.GRU``, and each rnnkit cell on each backend
that can run it. Every row has ``forward`` and ``forward_backward`` entries
(median ms, quartiles, peak bytes) and the ratios ``ratio_lstm``/``ratio_gru``
of its median to the baselines' at the same B, T, I, H (below 1: faster).

``forward`` is ``layer(x)`` under ``no_grad``; ``forward_backward`` is
``layer(x)[0].backward(g)`` with gradients reset (untimed) before each call,
an input that needs no grad and a fixed ``g``; layers are in training mode.

Example::

    doc = run_grid(GridSettings(cells=("gru", "sru"), shapes=(Shape(32, 100, 128, 256),)))
"""
from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .layers import Shape, layer_tasks
from .measure import CLOCKS, interleave, peak_bytes, summarize

__all__ = ["ZOO_CELLS", "BACKENDS", "GRID_SHAPES", "QUICK_SHAPES", "GridSettings", "run_grid",
           "parse_shape"]

SCHEMA = "rnnkit-bench-grid/1"
BASELINES = {"torch.nn.LSTM": nn.LSTM, "torch.nn.GRU": nn.GRU}
BACKENDS = ("auto", "torch", "fused", "loop")
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
    }


#: cell names of the suite (each an rnnkit layer factory ``(I, H, backend=...)``).
ZOO_CELLS = ("rnn_tanh", "lstm", "gru", "lstm_zoneout", "lstm_rec_dropout", "lstm_weight_drop",
             "ln_lstm", "ln_gru", "indrnn", "qrnn", "sru", "mingru", "minlstm")


def parse_shape(text: str) -> Shape:
    """``"B,T,H"`` (I = 128) or ``"B,T,I,H"`` -> :class:`Shape`."""
    try:
        v = [int(p) for p in text.split(",")]
        if len(v) == 3:
            v = [v[0], v[1], 128, v[2]]
        if len(v) != 4:
            raise ValueError
    except ValueError:
        raise ValueError(f"--shapes: expected B,T,H or B,T,I,H (positive ints), "
                         f"got {text!r}") from None
    return Shape(*v)


@dataclass
class GridSettings:
    cells: tuple[str, ...] = ZOO_CELLS
    backends: tuple[str, ...] = ("auto", "fused")
    shapes: tuple[Shape, ...] = GRID_SHAPES
    repeats: int = 5
    warmup: int = 1
    min_sample_s: float = 0.05
    clock: str = "cpu"
    memory: bool = True
    device: str = "cpu"
    dtype: str = "float32"
    seed: int = 0
    quick: bool = False
    input_grad: bool = False  # forward_backward also computes dL/dx
    measures: tuple[str, ...] = field(default=("forward", "forward_backward"))

    def __post_init__(self):
        for name, values, known in (("cells", self.cells, ZOO_CELLS),
                                    ("backends", self.backends, BACKENDS)):
            bad = [v for v in values if v not in known]
            if bad:
                raise ValueError(f"--{name}: unknown {bad}; expected some of {list(known)}")
        if self.clock not in CLOCKS:
            raise ValueError(f"clock: expected one of {list(CLOCKS)}, got {self.clock!r}")
        if not isinstance(self.repeats, int) or self.repeats < 1:
            raise ValueError(f"repeats: expected a positive int, got {self.repeats!r}")

    def to_json(self) -> dict:
        d = asdict(self)
        d["shapes"] = [asdict(s) for s in self.shapes]
        return d


def _contenders(shape: Shape, s: GridSettings, x: torch.Tensor) -> dict[tuple, nn.Module]:
    """``{(cell, backend): module}``: the baselines and every runnable rnnkit layer."""
    from rnnkit.kernels.dispatch import choose_backend

    kw = dict(device=s.device, dtype=getattr(torch, s.dtype))
    out: dict[tuple, nn.Module] = {}
    for name, cls in BASELINES.items():
        out[(name, "torch.nn")] = cls(shape.I, shape.H, **kw).train()
    zoo = _zoo()
    for cell in s.cells:
        for backend in s.backends:
            m = zoo[cell](shape.I, shape.H, backend=backend, **kw).train()
            try:
                chosen = choose_backend(m, x)
            except ValueError:
                continue  # this backend cannot run this cell
            if backend == "auto":  # what auto runs when training and, under no_grad, inferring
                m.chosen = chosen
                with torch.no_grad():
                    m.chosen_forward = choose_backend(m, x)
            out[(cell, backend)] = m
    return out


def _shape_rows(shape: Shape, s: GridSettings, progress) -> list[dict]:
    gc.collect()
    torch.manual_seed(s.seed)
    dev, dt = torch.device(s.device), getattr(torch, s.dtype)
    x = torch.randn(shape.T, shape.B, shape.I, device=dev, dtype=dt, requires_grad=s.input_grad)
    g = torch.randn(shape.T, shape.B, shape.H, device=dev, dtype=dt)
    mods = _contenders(shape, s, x)
    tasks = {k: layer_tasks(m, x, g) for k, m in mods.items()}
    rows = {k: {"cell": k[0], "backend": k[1], "shape": asdict(shape),
                "ran": getattr(mods[k], "chosen", k[1]),
                "ran_forward": getattr(mods[k], "chosen_forward", k[1])} for k in mods}
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
    for r in rows.values():
        for base in BASELINES:
            b = rows[(base, "torch.nn")]
            key = "ratio_" + base.split(".")[-1].lower()
            r[key] = {m: r[m]["median_ms"] / b[m]["median_ms"] for m in s.measures}
    return list(rows.values())


def run_grid(s: GridSettings, progress: Callable[[str], None] | None = None,
             on_shape: Callable[[dict], None] | None = None) -> dict:
    """Run every shape; ``on_shape(doc)`` after each one (to save partial results)."""
    from datetime import datetime, timezone

    from .machine import loadavg_now, machine_info

    started = datetime.now(timezone.utc)
    doc = {"schema": SCHEMA, "suite": "cells_backends_shapes",
           "created": started.isoformat(timespec="seconds"), "machine": machine_info(s.device),
           "settings": s.to_json(), "results": [], "shapes_done": 0}
    for shape in s.shapes:
        doc["results"].extend(_shape_rows(shape, s, progress))
        doc["shapes_done"] += 1
        doc["seconds"] = round((datetime.now(timezone.utc) - started).total_seconds(), 1)
        doc["machine"]["loadavg_end"] = loadavg_now()
        if on_shape is not None:
            on_shape(doc)
    return doc
