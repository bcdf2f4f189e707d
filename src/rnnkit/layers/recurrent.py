"""``Recurrent``: any cell, run over time, stacked, bidirectional, residual.

The layer owns everything but the step: time, direction, depth, variable
lengths, initial states, inter-layer dropout, residual connections, the
parameters (named like torch.nn's: ``weight_ih_l0``, ``bias_hh_l1_reverse``)
and the choice of backend. A plain loop equivalent to every backend::

    for l in range(num_layers):
        for d in directions:                      # d = 1 runs each sequence reversed
            h = hx[l * D + d]
            for t in range(T):                    # only t < lengths[b] for sequence b
                y[t], h = cell.step(project(x)[t], h)
            h_n[l * D + d] = h
        x = dropout(concat(y_forward, y_reverse) + residual(x))

In training the regularisers (:mod:`rnnkit.layers.regularizers`) act inside
this loop: ``input_dropout`` masks ``x`` once per sequence for each layer and
direction, ``weight_drop``/``max_norm`` transform ``weight_hh`` once per call,
``recurrent_dropout`` masks ``h`` where it enters the recurrence, and
``zoneout`` mixes each new state with the previous one (its expectation in
evaluation).

Shapes: ``B`` batch, ``T`` time, ``I`` input, ``H`` hidden, ``O`` cell output
(H, or P with an LSTM projection), ``D`` directions, ``L`` layers.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..cells.base import Cell, check_flag
from ..kernels.dispatch import LOOP, canonical_name, choose
from ..kernels.loop import length_mask, reverse_padded
from ..kernels.torch_kernels import torch_cell_step
from ._inputs import finish, prepare, prepare_step
from .init import apply_init, check_init_args
from .regularizers import Regularizers

__all__ = ["Recurrent"]


def _check_args(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                residual) -> None:
    """torch.nn.RNNBase's checks, in its order, with its exception classes and words.

    torch converts ``dropout`` with ``float()`` first, so ``None`` is a TypeError and
    ``"x"`` a ValueError there; the same here. ``bidirectional`` torch only rejects in
    forward (a TypeError from its kernel); rnnkit rejects it here, as the other flags.
    """
    what = ("should be a number in range [0, 1] representing the probability of an element "
            f"being zeroed, got {dropout!r}")
    try:
        float(dropout)
    except (TypeError, ValueError) as e:
        raise type(e)(f"dropout {what}") from None
    if not isinstance(dropout, numbers.Number) or isinstance(dropout, bool) \
            or not 0 <= dropout <= 1:
        raise ValueError(f"dropout {what}")
    for name, v in (("bias", bias), ("batch_first", batch_first),
                    ("bidirectional", bidirectional), ("residual", residual)):
        check_flag(name, v)
    for name, v in (("input_size", input_size), ("hidden_size", hidden_size),
                    ("num_layers", num_layers)):  # torch.nn's rule: a bool is an int to it
        if not isinstance(v, int):
            raise TypeError(f"{name} should be of type int, got: {type(v).__name__} ({v!r})")
        if v <= 0:
            raise ValueError(f"{name} must be greater than zero, got {v}")


class Recurrent(nn.Module):
    """Run a cell over sequences, with every layer feature.

    Args:
        cell: a :class:`~rnnkit.cells.Cell` subclass (or any callable
            ``(input_size, hidden_size, bias=..., **cell_kwargs) -> Cell``).
        input_size, hidden_size, num_layers, bias, batch_first, dropout,
        bidirectional: as in ``torch.nn.LSTM``.
        residual: add each layer's input to its output; a learned projection
            ``weight_res_l{k}`` maps the input where the sizes differ.
        backend: ``"auto"`` (torch's kernels when they can run the configuration,
            else on CUDA the Triton kernels when triton is installed, else rnnkit's
            fused scan, else the loop), ``"torch"``, ``"triton"``, ``"fused"`` or
            ``"loop"`` (:mod:`rnnkit.kernels.dispatch`); ``"native"``, the old name
            of ``"torch"``, still works and warns once.
        init_ih, init_hh, forget_bias: see :mod:`rnnkit.layers.init`.
        input_dropout, recurrent_dropout, zoneout, weight_drop, max_norm: the
            regularisers of :mod:`rnnkit.layers.regularizers` (variational
            dropout on inputs and on ``h_{t-1}`` in the recurrence, zoneout
            ``p`` or ``(p_h, p_c)``, DropConnect on ``weight_hh``, row max-norm
            of ``weight_hh``); all off by default.
        **cell_kwargs: passed to ``cell`` (e.g. ``proj_size=``, ``nonlinearity=``).

    Forward: ``(input, hx=None, lengths=None) -> (output, h_n)`` with
    ``input`` (T, B, I) [(B, T, I) if batch_first], (T, I) unbatched, or a
    PackedSequence; ``lengths`` (B,) for padded input; ``hx`` a (D*L, B, S)
    tensor, or a tuple of them for cells with several state tensors (LSTM).
    ``output`` (T, B, D*O) is zero past each sequence's length; ``h_n`` holds
    each sequence's state at its own last step.

    Example::

        >>> layer = Recurrent(LSTMCell, 8, 16, num_layers=2, bidirectional=True)
        >>> out, (h, c) = layer(torch.randn(5, 3, 8), lengths=torch.tensor([5, 2, 4]))
        >>> out.shape, h.shape
        (torch.Size([5, 3, 32]), torch.Size([4, 3, 16]))
    """

    def __init__(self, cell, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, *, residual: bool = False, backend: str = "auto",
                 init_ih: str | None = None, init_hh: str | None = None,
                 forget_bias: float | None = None, input_dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, zoneout: float | tuple[float, float] = 0.0,
                 weight_drop: float = 0.0, max_norm: float | None = None,
                 device=None, dtype=None, **cell_kwargs):
        super().__init__()
        _check_args(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                    bidirectional, residual)
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout applies between stacked layers, so it has no effect with "
                          f"num_layers=1 (got dropout={dropout})", stacklevel=2)
        backend = canonical_name(backend, stacklevel=3)  # ValueError for an unknown name
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.residual, self.backend = bidirectional, residual, backend
        self.init_ih, self.init_hh, self.forget_bias = init_ih, init_hh, forget_bias
        D = 2 if bidirectional else 1

        # One cell per layer (both directions share its shapes); parameters per direction.
        self.cells: list[Cell] = []
        self._param_names: list[list[str]] = []  # [l * D + d] -> names in cell order
        factory = dict(device=device, dtype=dtype)
        for l in range(num_layers):
            in_l = input_size if l == 0 else D * self.cells[-1].output_size
            c = cell(in_l, hidden_size, bias=bias, **cell_kwargs)
            self.cells.append(c)
            for d in range(D):
                names = []
                for name, shape in c.param_shapes().items():
                    full = f"{name}_l{l}{'_reverse' if d else ''}"
                    self.register_parameter(full, nn.Parameter(torch.empty(shape, **factory)))
                    names.append(full)
                self._param_names.append(names)
            if residual and in_l != D * c.output_size:
                w = nn.Parameter(torch.empty(D * c.output_size, in_l, **factory))
                self.register_parameter(f"weight_res_l{l}", w)
        check_init_args(self.cells[0], init_ih, init_hh, forget_bias)
        self.regularizers = Regularizers.build(self.cells[0], input_dropout, recurrent_dropout,
                                               zoneout, weight_drop, max_norm)
        self.reset_parameters()
        self.flatten_parameters()  # built with device="cuda": one cuDNN buffer from the start

    # ------------------------------------------------------------ parameters
    @property
    def input_dropout(self) -> float:
        return self.regularizers.input_dropout

    @property
    def recurrent_dropout(self) -> float:
        return self.regularizers.recurrent_dropout

    @property
    def zoneout(self) -> tuple[float, float]:
        """``(p_h, p_c)``: rates for the first state tensor and for the others."""
        return self.regularizers.zoneout

    @property
    def weight_drop(self) -> float:
        return self.regularizers.weight_drop

    @property
    def max_norm(self) -> float | None:
        return self.regularizers.max_norm

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _params(self, l: int, d: int) -> dict[str, Tensor]:
        """The weights of layer ``l``, direction ``d``, keyed by the cell's names."""
        names = self._param_names[l * self.num_directions + d]
        suffix = len(f"_l{l}{'_reverse' if d else ''}")
        return {n[:-suffix]: getattr(self, n) for n in names}

    @property
    def _flat_weights(self) -> list[Tensor]:
        return [getattr(self, n) for names in self._param_names for n in names]

    @property
    def _flat_weights_names(self) -> list[str]:
        return [n for names in self._param_names for n in names]

    @property
    def all_weights(self) -> list[list[Tensor]]:
        """Weights per layer and direction, as ``torch.nn.LSTM.all_weights``."""
        return [[getattr(self, n) for n in names] for names in self._param_names]

    def reset_parameters(self) -> None:
        for l, c in enumerate(self.cells):
            for d in range(self.num_directions):
                p = self._params(l, d)
                c.reset_parameters(p)
                apply_init(c, p, self.init_ih, self.init_hh, self.forget_bias)
            w = getattr(self, f"weight_res_l{l}", None)
            if w is not None:
                nn.init.kaiming_uniform_(w, a=math.sqrt(5))  # nn.Linear's default

    def flatten_parameters(self) -> None:
        """On CUDA with cuDNN, keep the weights in the one buffer cuDNN reads in place.

        As :meth:`torch.nn.LSTM.flatten_parameters` (called after ``.to``/``.cuda``); a
        no-op elsewhere and for cells cuDNN does not run. Without it torch copies every
        weight into a packed buffer on each cuDNN call (and warns that the weights "are not
        part of single contiguous chunk of memory"). Flattened, rnnkit.LSTM and
        torch.nn.LSTM run the same kernels in the same time (``docs/triton.md``).
        """
        mode = getattr(self.cells[0], "native_mode", None)
        proj = getattr(self.cells[0], "proj_size", 0) or 0
        per = (4 if self.bias else 2) + (1 if proj else 0)
        if (mode is None or any(c.native_mode != mode for c in self.cells)
                or not torch.backends.cudnn.enabled or not torch._use_cudnn_rnn_flatten_weight()):
            return
        # a weight replaced by a plain tensor or removed (DropConnect, pruning): leave them
        w = [getattr(self, n, None) for n in self._flat_weights_names]
        if len(w) != per * self.num_layers * self.num_directions or any(
                not isinstance(p, nn.Parameter) or p.dtype != w[0].dtype or not p.is_cuda
                or not torch.backends.cudnn.is_acceptable(p) for p in w):
            return
        if len({p.data_ptr() for p in w}) != len(w):  # aliased weights: leave them alone
            return
        from torch.backends.cudnn import rnn as cudnn_rnn

        with torch.cuda.device_of(w[0]), torch.no_grad():
            torch._cudnn_rnn_flatten_weight(
                w, per, self.input_size, cudnn_rnn.get_cudnn_mode(mode), self.hidden_size,
                proj, self.num_layers, self.batch_first,
                bool(self.bidirectional))

    def __setstate__(self, state):
        super().__setstate__(state)
        if "regularizers" not in self.__dict__:  # pickled before the regularisers existed
            self.regularizers = Regularizers.build(self.cells[0])
        if self.__dict__.get("backend") == "native":  # pickled before the rename
            self.backend = "torch"

    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)
        self.flatten_parameters()
        return out

    # --------------------------------------------------------------- forward
    def forward(self, input, hx=None, lengths=None):
        D, L = self.num_directions, self.num_layers
        w0 = getattr(self, self._param_names[0][0])
        sizes = self.cells[-1].state_sizes
        batch = prepare(input, hx, lengths, input_size=self.input_size,
                        batch_first=self.batch_first, num_states=len(sizes),
                        state_shapes=[(D * L, s) for s in sizes],
                        dtype=w0.dtype, device=w0.device)
        backend = choose(self, batch.x, batch.lengths)  # the configuration checked once
        if batch.x.shape[1] == 0 and backend.scope == "scan":
            backend = LOOP  # an empty batch (B=0): nothing to scan, and no empty GPU grids
        dev = batch.x.device.type
        if backend.scope == "layer":  # under autocast too: torch's kernel, as torch.nn
            out, h_n = self._forward_torch(batch, backend)
        elif torch.is_autocast_enabled(dev):
            # rnnkit's own backends run the recurrence in the layer's dtype with autocast off:
            # per-op autocast would mix dtypes inside the scans (they crashed), the compiled
            # steps are float32, and bfloat16 state math in a layer norm or minLSTM's
            # normalisation moved input gradients by 20% (tests/layers/test_autocast.py);
            # the outputs come back in the input's dtype, as torch.nn's do for its input
            to, back = w0.dtype, batch.x.dtype
            hx = None if batch.hx is None else tuple(h.to(to) for h in batch.hx)
            with torch.autocast(dev, enabled=False):
                out, h_n = self._forward_loop(dataclasses.replace(
                    batch, x=batch.x.to(to), hx=hx), backend)
            out, h_n = out.to(back), tuple(h.to(back) for h in h_n)
        else:
            out, h_n = self._forward_loop(batch, backend)
        out, h_n = finish(out, h_n, batch, self.batch_first)
        return out, (h_n[0] if len(h_n) == 1 else h_n)

    def _initial_states(self, x: Tensor, hx) -> tuple[Tensor, ...]:
        if hx is not None:
            return hx
        D, L, B = self.num_directions, self.num_layers, x.shape[1]
        return tuple(x.new_zeros(D * L, B, s) for s in self.cells[-1].state_sizes)

    def _forward_torch(self, batch, backend):
        """Every layer and direction in one call of torch's kernel (scope "layer")."""
        hx = self._initial_states(batch.x, batch.hx)
        mode = self.cells[0].native_mode
        out, h_n = backend.run(
            mode, batch.x, hx if mode == "LSTM" else hx[0], self._torch_weights(), self.bias,
            self.num_layers, self.dropout, self.training, self.bidirectional, batch.lengths)
        return out, (h_n if mode == "LSTM" else (h_n,))

    def _torch_weights(self) -> list[Tensor]:
        """The weights torch's kernel gets: DropConnect's dropped ones in training.

        Masks drawn per layer and direction in the order of :meth:`_forward_loop`, so a
        seed gives the same dropped weights on every backend.
        """
        reg = self.regularizers
        if not (self.training and reg.weight_drop):
            return self._flat_weights
        D, flat = self.num_directions, []
        for l, c in enumerate(self.cells):
            for d in range(D):
                names = self._param_names[l * D + d]
                suffix = len(f"_l{l}{'_reverse' if d else ''}")
                p = reg.weights(c, self._params(l, d), True)
                flat += [p[n[:-suffix]] for n in names]
        return flat

    def _forward_loop(self, batch, backend):
        """The per-layer, per-direction loop; ``backend`` runs one layer-direction
        (scope "scan": fused, triton; or "step": the loop)."""
        x, lengths = batch.x, batch.lengths
        hx = self._initial_states(x, batch.hx)
        mask = None if lengths is None else length_mask(lengths, x.shape[0])
        if mask is not None:
            # padding is never read: zeroed once, NaN or inf there cannot reach a valid step's
            # output or any gradient (as NaN * 0 in a masked step's backward); the layers
            # above get zeros at padded steps, as each layer's output is zero there
            x = x.masked_fill(~mask, 0.0)
        D, reg, training = self.num_directions, self.regularizers, self.training
        finals = []  # [l * D + d] -> state tuple
        for l, c in enumerate(self.cells):
            outs = []
            for d in range(D):
                p = reg.weights(c, self._params(l, d), training)
                state = tuple(h[l * D + d] for h in hx)
                x_d = x if d == 0 else reverse_padded(x, lengths)
                x_d = reg.drop_input(x_d, training)
                if backend.scope == "scan":  # the same random masks, drawn up front
                    y, state = backend.run(c, p, x_d, state, mask,
                                           **reg.step_inputs(state, x_d.shape[0], training))
                else:  # None: no per-step regulariser
                    y, state = backend.run(c, p, x_d, state, mask, reg.step(c, state, training))
                outs.append(y if d == 0 else reverse_padded(y, lengths))
                finals.append(state)
            y = torch.cat(outs, dim=-1) if D == 2 else outs[0]  # (T, B, D*O)
            if self.residual:
                w = getattr(self, f"weight_res_l{l}", None)
                res = x if w is None else F.linear(x, w)
                y = y + (res if mask is None else res.masked_fill(~mask, 0.0))
            if self.dropout and self.training and l < self.num_layers - 1:
                y = F.dropout(y, self.dropout, training=True)
            x = y
        h_n = tuple(torch.stack([s[i] for s in finals]) for i in range(len(finals[0])))
        return x, h_n

    # ------------------------------------------------------------- streaming
    def init_state(self, batch: int | None = None):
        """Zero state for :meth:`step`: like ``h_n``, (L, B, S) per state tensor.

        ``batch=None`` gives the unbatched form (L, S). A tuple for cells with
        several state tensors (LSTM: ``(h, c)``), else one tensor.
        """
        w0 = getattr(self, self._param_names[0][0])
        lead = (self.num_directions * self.num_layers,) + (() if batch is None else (batch,))
        states = tuple(w0.new_zeros(*lead, s) for s in self.cells[-1].state_sizes)
        return states[0] if len(states) == 1 else states

    def step(self, x_t: Tensor, state=None):
        """One time step through every layer: ``(x_t, state) -> (y_t, new_state)``.

        For streaming inference: feeding a sequence one step at a time, each call
        given the previous call's state, gives the outputs and final state of
        ``forward`` on the whole sequence (evaluation mode; in training the
        dropout-type regularisers draw fresh masks per call, not per sequence).

        Args:
            x_t: (B, I), or (I,) unbatched; ``batch_first`` does not apply.
            state: like ``forward``'s ``hx`` and ``h_n``, or None for zeros.
        Returns:
            ``y_t`` (B, O) and the new state (same layout as ``state``).
        Raises InputError (a ValueError and a RuntimeError) for a wrong shape, dtype or
        device of ``x_t`` or ``state`` (checked as ``forward`` checks ``hx``), and
        ValueError for a bidirectional layer (its reverse direction reads
        the future) and for QRNN with ``window=2`` (its gates read ``x_{t-1}``).
        """
        if self.bidirectional:
            raise ValueError("step: a bidirectional layer cannot stream (its reverse direction "
                             "needs the whole sequence); use forward")
        if getattr(self.cells[0], "window", 1) != 1:
            raise ValueError("step: QRNN with window=2 reads x_{t-1} in its gates; streaming "
                             "needs window=1")
        w0 = getattr(self, self._param_names[0][0])
        sizes = self.cells[-1].state_sizes
        x, states, unbatched = prepare_step(
            x_t, state, input_size=self.input_size,
            state_shapes=[(self.num_layers, s) for s in sizes], dtype=w0.dtype, device=w0.device)
        if states is None:
            states = tuple(x.new_zeros(self.num_layers, x.shape[0], s) for s in sizes)
        reg, training = self.regularizers, self.training
        new = []
        for l, c in enumerate(self.cells):
            p = self._params(l, 0)
            s0 = tuple(h[l] for h in states)
            plain = not reg.per_step(training) and reg.weights(c, p, training) is p \
                and not (training and reg.input_dropout)
            y, s = torch_cell_step(c, x, s0, p) if plain else (None, None)
            if y is None:
                p = reg.weights(c, p, training)
                xp = c.project(reg.drop_input(x.unsqueeze(0), training), p)[0]  # (1, B, G)
                fn = reg.step(c, s0, training) or c.step
                y, s = fn(xp, s0, p)
            if self.residual:
                w = getattr(self, f"weight_res_l{l}", None)
                y = y + (x if w is None else F.linear(x, w))
            if self.dropout and training and l < self.num_layers - 1:
                y = F.dropout(y, self.dropout, training=True)
            new.append(s)
            x = y
        out = tuple(torch.stack([s[i] for s in new]) for i in range(len(new[0])))
        if unbatched:
            x, out = x.squeeze(0), tuple(h.squeeze(1) for h in out)
        return x, (out[0] if len(out) == 1 else out)

    def extra_repr(self) -> str:
        s = f"{self.cells[0]!r}, num_layers={self.num_layers}"
        for k in ("bias", "batch_first", "bidirectional", "residual"):
            default = k == "bias"
            if getattr(self, k) != default:
                s += f", {k}={getattr(self, k)}"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.regularizers.extra_repr():
            s += ", " + self.regularizers.extra_repr()
        if self.backend != "auto":
            s += f", backend={self.backend!r}"
        return s
