"""Taps on rnnkit recurrent layers: record every step's input and states during a forward.

``tap_layers(model)`` finds every :class:`rnnkit.Recurrent` in ``model``, makes it run the
plain time loop (the step-by-step form every backend is equivalent to) and swaps each of
its cells for a :class:`_Tap` that calls the cell's own ``step`` and records::

    x_t      projected input of step t         (B, G)   = cell.project(x)[t]
    s_{t-1}  state entering the step           tuple of (B, S_i)
    s_t      state the step produced           tuple of (B, S_i)

for layer ``l`` and direction ``d`` (``d = 1`` walks each sequence backwards from its own
last step). Everything is restored on exit, so the model is unchanged.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

__all__ = ["find_recurrent_layers", "LayerTrace", "tap_layers", "state_names", "direction"]


def find_recurrent_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``[(qualified name, layer)]`` of every rnnkit recurrent layer in ``model`` (the model
    itself counts when it is one)."""
    from rnnkit.layers.recurrent import Recurrent

    return [(name or "<model>", m) for name, m in model.named_modules() if isinstance(m, Recurrent)]


#: cells whose state tensors are not (h, c): their names, by cell class
STATE_NAMES = {"LRUCell": ("s_re", "s_im"), "SLSTMCell": ("h", "c", "n", "m"),
               "MLSTMCell": ("C", "n", "m")}


def state_names(cell) -> tuple[str, ...]:
    """``("h", "c")`` for two state tensors (LSTM), ``("h",)`` for one, the names of
    :data:`STATE_NAMES` (the LRU's, the xLSTM cells'), else h, s1, s2, ..."""
    if type(cell).__name__ in STATE_NAMES:
        return STATE_NAMES[type(cell).__name__]
    n = len(cell.state_sizes)
    return ("h", "c") if n == 2 else ("h",) if n == 1 else ("h", *[f"s{i}" for i in range(1, n)])


@dataclass
class LayerTrace:
    """What one recurrent module did in one forward pass.

    ``steps[l][d]`` is the list over time steps of ``(x_t, s_prev, s_new)`` in the order
    the direction ran them; ``lengths (B,)`` the sequence lengths (all ``T`` if unpadded).
    """

    name: str
    layer: nn.Module
    steps: list[list[list[tuple]]] = field(default_factory=list)
    lengths: Tensor | None = None

    def time_aligned(self, l: int, d: int, which: int, part: str = "new") -> Tensor:
        """State ``which`` (0 = h) of layer l, direction d over time: (T, B, S), where index
        t is time step t of each sequence (reverse-direction steps put back in time order;
        steps past a sequence's length hold zeros)."""
        from rnnkit.kernels.loop import reverse_padded

        k = 2 if part == "new" else 1
        seq = torch.stack([rec[k][which] for rec in self.steps[l][d]])  # (T, B, S)
        T = seq.shape[0]
        valid = (torch.arange(T)[:, None] < self.lengths[None, :]).unsqueeze(-1)  # (T, B, 1)
        seq = seq * valid.to(seq.device, seq.dtype)
        return reverse_padded(seq, self.lengths.to(seq.device)) if d == 1 else seq


class _Tap:
    """Stands in for a cell: same attributes, ``step`` recorded, no whole-sequence ``scan``."""

    def __init__(self, cell, sink: list):
        self._cell, self._sink = cell, sink

    def __getattr__(self, name: str):
        if name == "scan":  # force the step loop so that every state is visible
            raise AttributeError(name)
        return getattr(self._cell, name)

    def step(self, x_t: Tensor, state, p):
        y, new = self._cell.step(x_t, state, p)
        self._sink.append((x_t, state, new))
        return y, new


def _lengths_hook(trace: LayerTrace):
    def hook(module, args, kwargs):
        x = args[0] if args else kwargs.get("input")
        lengths = kwargs.get("lengths", args[2] if len(args) > 2 else None)
        if isinstance(x, PackedSequence):
            from torch.nn.utils.rnn import pad_packed_sequence

            _, lengths = pad_packed_sequence(x)
        elif lengths is None:
            T = x.shape[1] if (module.batch_first and x.dim() == 3) else x.shape[0]
            B = 1 if x.dim() == 2 else (x.shape[0] if module.batch_first else x.shape[1])
            lengths = torch.full((B,), T)
        trace.lengths = torch.as_tensor(lengths).cpu().long()
    return hook


@contextmanager
def tap_layers(model: nn.Module) -> Iterator[list[LayerTrace]]:
    """Record every step of every rnnkit recurrent layer of ``model`` (see module docstring).

    Each layer records its most recent forward pass only (the traces are reset per call).
    """
    layers = find_recurrent_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__}: no rnnkit recurrent layer found in the model "
                         "(explain needs a model built from rnnkit.layers)")
    traces, saved, hooks = [], [], []
    try:
        for name, layer in layers:
            trace = LayerTrace(name, layer)
            traces.append(trace)
            D = layer.num_directions
            saved.append((layer, layer.backend, list(layer.cells)))
            layer.backend = "loop"
            sinks = [[] for _ in layer.cells]
            trace.steps = [[[] for _ in range(D)] for _ in layer.cells]
            layer.cells[:] = [_Tap(c, sinks[l]) for l, c in enumerate(layer.cells)]

            def split(module, args, kwargs, output, trace=trace, sinks=sinks, D=D):
                for l, sink in enumerate(sinks):  # D directions ran one after the other
                    T = len(sink) // D
                    trace.steps[l] = [sink[d * T:(d + 1) * T] for d in range(D)]
                    sink.clear()

            hooks.append(layer.register_forward_pre_hook(_lengths_hook(trace), with_kwargs=True))
            hooks.append(layer.register_forward_hook(split, with_kwargs=True))
        yield traces
    finally:
        for h in hooks:
            h.remove()
        for layer, backend, cells in saved:
            layer.backend = backend
            layer.cells[:] = cells


def direction(layer: nn.Module, d: int) -> str:
    """"forward" or "reverse" for direction ``d`` of ``layer``; a one-way layer that a model
    feeds reversed text (``layer.input_reversed = True``, e.g. the classifier's backward
    layers) is the reverse direction, its steps in the order the layer ran them."""
    return "reverse" if d or getattr(layer, "input_reversed", False) else "forward"
