"""Reference RNN, LSTM and GRU layers: stacking, bidirection, lengths and the BPTT driver.

Each layer mirrors torch.nn's: the same parameter names and shapes (``weight_ih_l{k}``,
``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``, ``weight_hr_l{k}`` for a projected LSTM,
suffix ``_reverse`` for the backward direction), torch's initialisation
``uniform(-1/sqrt(H), 1/sqrt(H))``, time-major input, and ``h_n[layer * D + direction]``.

One direction of one layer is a loop over time (``_run_direction``); its BPTT
(``_backprop_direction``) is the same loop run backwards. With ``keep_t = [t < length]`` per
sequence, a step and its backward are

    forward:   h_t = keep_t ? cell(x_t, h_{t-1}) : h_{t-1};      y_t = keep_t ? h_t : 0
    backward:  d_cell = keep_t ? dh_t + dy_t : 0
               dx_t, dh_{t-1} = cell_backward(d_cell);   dh_{t-1} += (keep_t ? 0 : dh_t)

so padded steps neither change the state nor produce output, and the reverse direction (same
loop, t = T-1 .. 0) starts from h0 at each sequence's own last step. Layer k > 0 reads the
concatenated outputs of layer k-1; its input gradient, summed over both directions, is layer
k-1's ``dy``.

The driver serves any cell (``rnnkit.reference.zoo`` reuses it): a subclass gives its
parameter shapes (``_cell_param_shapes``), its step and the step's backward, and may give a
time-parallel input part (``_project``, e.g. QRNN's convolution) with its backward. A step
returns its output ``y_t`` apart from its state, for cells whose output is not the state (QRNN,
SRU); the backward then receives ``dy_t`` and ``d state_t`` separately.

Legend: T time, B batch, I input size, H hidden size, H_out = proj_size or H, D directions,
L num_layers.
"""
from __future__ import annotations

import numpy as np

from .cells import (
    gru_step,
    gru_step_backward,
    lstm_step,
    lstm_step_backward,
    rnn_step,
    rnn_step_backward,
)

__all__ = ["RNN", "LSTM", "GRU"]


def _check_size(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _shape_error(name: str, got, expected, legend: str) -> ValueError:
    return ValueError(f"{name}: expected shape {tuple(expected)} = {legend}, got {tuple(got)}")


class _Recurrent:
    """Shared machinery; subclasses define the parameters, the state and the cell step.

    Arguments common to RNN, LSTM and GRU (as torch.nn's): ``input_size`` I, ``hidden_size`` H,
    ``num_layers`` L, ``bidirectional`` (D = 2), ``bias``; and keyword-only ``seed``, an int or
    a ``np.random.Generator`` for the initial weights. Parameters live in ``params`` (name ->
    float64 array); ``forward`` then ``backward`` give outputs and gradients.
    """

    num_gates: int
    num_states: int = 1  # LSTM: 2, (h, c)

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, bias=True,
                 proj_size=0, *, seed: int | np.random.Generator | None = None):
        self.input_size = _check_size("input_size", input_size)
        self.hidden_size = _check_size("hidden_size", hidden_size)
        self.num_layers = _check_size("num_layers", num_layers)
        self.proj_size = _check_size("proj_size", proj_size, minimum=0)
        if self.proj_size >= self.hidden_size:
            raise ValueError(
                f"proj_size: expected 0 or < hidden_size={hidden_size}, got {proj_size}")
        self.bidirectional, self.bias = bool(bidirectional), bool(bias)
        self.num_directions = 2 if self.bidirectional else 1
        self.output_size = self.proj_size or self.hidden_size  # H_out
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        k = 1.0 / np.sqrt(self.hidden_size)
        self.params = {name: rng.uniform(-k, k, size=shape)
                       for name, shape in self._param_shapes().items()}
        self._tape = None

    # -- parameters -------------------------------------------------------------------------

    def _param_shapes(self) -> dict[str, tuple]:
        """Names and shapes in torch.nn's order."""
        shapes = {}
        for layer in range(self.num_layers):
            in_size = self.input_size if layer == 0 else self.num_directions * self.output_size
            for direction in range(self.num_directions):
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                for name, shape in self._cell_param_shapes(in_size).items():
                    shapes[name + sfx] = shape
        return shapes

    def _cell_param_shapes(self, in_size: int) -> dict[str, tuple]:
        """One (layer, direction)'s parameters, unsuffixed: torch.nn's RNN/LSTM/GRU layout."""
        G, H, P = self.num_gates * self.hidden_size, self.hidden_size, self.proj_size
        shapes = {"weight_ih": (G, in_size), "weight_hh": (G, self.output_size)}
        if self.bias:
            shapes.update(bias_ih=(G,), bias_hh=(G,))
        if P:
            shapes["weight_hr"] = (P, H)
        return shapes

    def _cell_params(self, layer: int, direction: int) -> dict[str, np.ndarray]:
        """The parameters of one (layer, direction), keyed without suffix: ``weight_ih``, ..."""
        sfx = f"_l{layer}" + ("_reverse" if direction else "")
        return {name[: -len(sfx)]: value
                for name, value in self.params.items() if name.endswith(sfx)}

    def state_dict(self) -> dict[str, np.ndarray]:
        return {name: value.copy() for name, value in self.params.items()}

    def load_state_dict(self, state_dict) -> None:
        """Copy arrays (anything ``np.asarray`` takes, torch tensors too) into ``params``."""
        shapes = self._param_shapes()
        for name in state_dict:
            if name not in shapes:
                raise ValueError(
                    f"load_state_dict: unexpected key {name!r}; expected {sorted(shapes)}")
        new = {}
        for name, shape in shapes.items():
            if name not in state_dict:
                raise ValueError(f"load_state_dict: missing key {name!r} (expected shape {shape})")
            value = state_dict[name]
            if hasattr(value, "detach"):  # a torch tensor, without importing torch
                value = value.detach().cpu().numpy()
            value = np.array(value, dtype=np.float64)
            if value.shape != shape:
                raise ValueError(
                    f"load_state_dict: {name!r} has shape {value.shape}, expected {shape}")
            new[name] = value
        self.params = new
        self._tape = None

    # -- cell interface (subclasses) ----------------------------------------------------------

    def _state_sizes(self) -> tuple[int, ...]:
        return (self.output_size,)

    def _step(self, x, state, p):
        """One step: x (B, G) -> (y (B, H_out), new state tuple, cache)."""
        raise NotImplementedError

    def _step_backward(self, dy, dstate, cache, p):
        """dL/dy_t and dL/d(new state) -> (dx (B, G), d(previous state) tuple, grads)."""
        raise NotImplementedError

    def _project(self, x, p, keep, reverse: bool):
        """Input-only part of the cell, all steps at once: x (T, B, in) -> (xp, cache).

        ``keep`` (T, B, 1) marks the valid steps; ``reverse`` is the direction (a cell that
        looks at neighbouring steps must not look past a sequence's ends). Default: identity.
        """
        return x, None

    def _project_backward(self, dxp, cache, p):
        """Backward of ``_project``: dL/dxp -> (dL/dx, grads)."""
        return dxp, {}

    # -- input checks -------------------------------------------------------------------------

    def _check_input(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"x: expected shape (T, B, I={self.input_size}), got {x.shape}")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"x: expected T >= 1 and B >= 1 in shape (T, B, I), got {x.shape}")
        return x

    @staticmethod
    def _check_lengths(lengths, T: int, B: int) -> np.ndarray:
        if lengths is None:
            return np.full(B, T)
        lengths = np.asarray(lengths)
        if lengths.shape != (B,):
            raise _shape_error("lengths", lengths.shape, (B,), "(B,)")
        if not np.issubdtype(lengths.dtype, np.integer):
            raise ValueError(f"lengths: expected integers, got dtype {lengths.dtype}")
        if lengths.min() < 1 or lengths.max() > T:
            raise ValueError(f"lengths: expected values in [1, T={T}], got {lengths.tolist()}")
        return lengths.astype(np.int64)

    def _as_states(self, name: str, value, B: int) -> tuple[np.ndarray, ...]:
        """``value`` (array, or ``(h, c)`` pair for LSTM) -> tuple of ``(D*L, B, size)`` arrays."""
        DL = self.num_directions * self.num_layers
        sizes = self._state_sizes()
        if self.num_states == 1:
            parts = (value,)
        elif isinstance(value, (tuple, list)) and len(value) == self.num_states:
            parts = tuple(value)
        elif value is None:
            parts = (None,) * self.num_states
        else:
            raise ValueError(f"{name}: expected a pair (h, c) for LSTM, got {type(value).__name__}")
        states = []
        for j, (part, size) in enumerate(zip(parts, sizes, strict=True)):
            part_name = name if self.num_states == 1 else f"{name}[{j}]"
            if part is None:
                states.append(np.zeros((DL, B, size)))
                continue
            part = np.asarray(part, dtype=np.float64)
            if part.shape != (DL, B, size):
                legend = ("(D*num_layers, B, H_out)", "(D*num_layers, B, H)")[j]
                raise _shape_error(part_name, part.shape, (DL, B, size), legend)
            states.append(part)
        return tuple(states)

    # -- one direction of one layer -----------------------------------------------------------

    def _run_direction(self, x, state, p, keep, reverse: bool):
        """x (T, B, G), keep (T, B, 1) -> y (T, B, H_out), state, caches."""
        T, B, _ = x.shape
        y = np.zeros((T, B, self.output_size))
        caches = [None] * T
        for t in (reversed(range(T)) if reverse else range(T)):
            y_t, new_state, caches[t] = self._step(x[t], state, p)
            state = tuple(np.where(keep[t], new, old)
                          for new, old in zip(new_state, state, strict=True))
            y[t] = np.where(keep[t], y_t, 0.0)
        return y, state, caches

    def _backprop_direction(self, dy, dstate, caches, p, keep, reverse: bool):
        """BPTT of ``_run_direction``: dy (T, B, H_out), d(final state) -> dx, d(state0), grads."""
        T = dy.shape[0]
        grads = {name: np.zeros_like(value) for name, value in p.items()}
        dx = None
        for t in (range(T) if reverse else reversed(range(T))):  # the forward order, reversed
            d_cell = tuple(np.where(keep[t], d, 0.0) for d in dstate)
            dy_t = np.where(keep[t], dy[t], 0.0)
            dx_t, d_prev, step_grads = self._step_backward(dy_t, d_cell, caches[t], p)
            dstate = tuple(dp + np.where(keep[t], 0.0, d)  # padded: dh passes straight back
                           for dp, d in zip(d_prev, dstate, strict=True))
            if dx is None:
                dx = np.zeros((T,) + dx_t.shape)
            dx[t] = dx_t
            for name, g in step_grads.items():
                grads[name] += g  # W is shared over time: its gradient is the sum over steps
        return dx, dstate, grads

    # -- the whole layer ----------------------------------------------------------------------

    def forward(self, x, h0=None, lengths=None):
        """Run the layer. x (T, B, I) -> output (T, B, D*H_out), h_n (D*L, B, H_out).

        For LSTM ``h0`` and ``h_n`` are ``(h, c)`` pairs with ``c`` of size H. Steps at or after
        ``lengths[b]`` are padding: output zeros there and leave the state unchanged.
        """
        x = self._check_input(x)
        T, B, _ = x.shape
        lengths = self._check_lengths(lengths, T, B)
        states0 = self._as_states("h0", h0, B)
        keep = (np.arange(T)[:, None] < lengths[None, :])[:, :, None]  # (T, B, 1)
        D = self.num_directions
        finals = [np.zeros_like(s) for s in states0]
        caches = {}
        layer_input = x
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(D):
                idx = layer * D + direction
                p = self._cell_params(layer, direction)
                state = tuple(s[idx] for s in states0)
                xp, project_cache = self._project(layer_input, p, keep, bool(direction))
                y, state, step_caches = self._run_direction(
                    xp, state, p, keep, reverse=bool(direction))
                caches[idx] = (project_cache, step_caches)
                outputs.append(y)
                for final, s in zip(finals, state, strict=True):
                    final[idx] = s
            layer_input = np.concatenate(outputs, axis=2)  # D x (T, B, H_out) -> (T, B, D*H_out)
        self._tape = {"T": T, "B": B, "keep": keep, "caches": caches}
        h_n = finals[0] if self.num_states == 1 else tuple(finals)
        return layer_input, h_n

    __call__ = forward

    def backward(self, d_output, d_h_n=None) -> dict[str, np.ndarray]:
        """BPTT of the last ``forward``: gradients of every parameter, "input", "h0" ("c0").

        ``d_output (T, B, D*H_out)`` is dL/d output; ``d_h_n`` is dL/dh_n (LSTM: a ``(dh, dc)``
        pair, either may be None), or None for zero.
        """
        if self._tape is None:
            raise ValueError("backward: call forward(x, ...) first (no forward pass recorded)")
        T, B, keep, caches = (self._tape[k] for k in ("T", "B", "keep", "caches"))
        D, H_out = self.num_directions, self.output_size
        d_output = np.asarray(d_output, dtype=np.float64)
        if d_output.shape != (T, B, D * H_out):
            raise _shape_error("d_output", d_output.shape, (T, B, D * H_out), "(T, B, D*H_out)")
        d_finals = self._as_states("d_h_n", d_h_n, B)
        d_states0 = [np.zeros_like(d) for d in d_finals]
        grads = {}
        d_layer_out = d_output
        for layer in reversed(range(self.num_layers)):
            d_layer_in = None
            for direction in range(D):
                idx = layer * D + direction
                p = self._cell_params(layer, direction)
                dy = d_layer_out[:, :, direction * H_out:(direction + 1) * H_out]  # (T, B, H_out)
                dstate = tuple(d[idx] for d in d_finals)
                project_cache, step_caches = caches[idx]
                dxp, dstate0, cell_grads = self._backprop_direction(
                    dy, dstate, step_caches, p, keep, bool(direction))
                dx, project_grads = self._project_backward(dxp, project_cache, p)
                for name, g in project_grads.items():
                    cell_grads[name] = cell_grads[name] + g
                d_layer_in = dx if d_layer_in is None else d_layer_in + dx
                for d0, d in zip(d_states0, dstate0, strict=True):
                    d0[idx] = d
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                grads.update({name + sfx: g for name, g in cell_grads.items()})
            d_layer_out = d_layer_in
        grads = {name: grads[name] for name in self.params}  # torch's order
        grads["input"] = d_layer_out
        grads["h0"] = d_states0[0]
        if self.num_states == 2:
            grads["c0"] = d_states0[1]
        return grads

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self._extra_repr().items())
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size}{extra})"

    def _extra_repr(self) -> dict:
        out = {}
        if self.num_layers != 1:
            out["num_layers"] = self.num_layers
        if self.bidirectional:
            out["bidirectional"] = True
        if not self.bias:
            out["bias"] = False
        return out


class RNN(_Recurrent):
    """Elman RNN, ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``, act = tanh or relu.

    ``nonlinearity``: "tanh" or "relu". Parameters ``weight_ih_l{k} (H, I or D*H)``,
    ``weight_hh_l{k} (H, H)``, ``bias_ih_l{k} (H,)``, ``bias_hh_l{k} (H,)``.
    """

    num_gates = 1

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh",
                 bidirectional=False, bias=True, *, seed=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bidirectional, bias, seed=seed)

    def _step(self, x, state, p):
        h, cache = rnn_step(x, state[0], p, self.nonlinearity)
        return h, (h,), cache

    def _step_backward(self, dy, dstate, cache, p):
        dx, dh_prev, grads = rnn_step_backward(dstate[0] + dy, cache, p, self.nonlinearity)
        return dx, (dh_prev,), grads

    def _extra_repr(self):
        relu = {"nonlinearity": "relu"} if self.nonlinearity == "relu" else {}
        return relu | super()._extra_repr()


class LSTM(_Recurrent):
    """LSTM (gates i, f, g, o), optionally projected: ``h_t = W_hr (o * tanh(c_t))``.

    ``proj_size`` P (0 = none, else < H) makes h of size H_out = P. Parameters
    ``weight_ih_l{k} (4H, I or D*H_out)``, ``weight_hh_l{k} (4H, H_out)``, biases ``(4H,)``,
    ``weight_hr_l{k} (P, H)``. State, ``h0`` and ``h_n`` are pairs ``(h (D*L, B, H_out),
    c (D*L, B, H))``; ``backward`` also returns ``"c0"``.
    """

    num_gates = 4
    num_states = 2

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, bias=True,
                 proj_size=0, *, seed=None):
        super().__init__(input_size, hidden_size, num_layers, bidirectional, bias, proj_size,
                         seed=seed)

    def _state_sizes(self):
        return (self.output_size, self.hidden_size)  # (h, c)

    def _step(self, x, state, p):
        h, c, cache = lstm_step(x, state[0], state[1], p)
        return h, (h, c), cache

    def _step_backward(self, dy, dstate, cache, p):
        dx, dh_prev, dc_prev, grads = lstm_step_backward(dstate[0] + dy, dstate[1], cache, p)
        return dx, (dh_prev, dc_prev), grads

    def _extra_repr(self):
        return super()._extra_repr() | ({"proj_size": self.proj_size} if self.proj_size else {})


class GRU(_Recurrent):
    """GRU (gates r, z, n); ``reset_after=True`` is torch.nn.GRU, False is Cho et al. 2014.

    ``reset_after``: apply the reset gate after the recurrent product,
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`` (torch), or before it,
    ``n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)`` (Cho et al.). The same parameters
    either way: ``weight_ih_l{k} (3H, I or D*H)``, ``weight_hh_l{k} (3H, H)``, biases ``(3H,)``.
    """

    num_gates = 3

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, bias=True,
                 reset_after=True, *, seed=None):
        self.reset_after = bool(reset_after)
        super().__init__(input_size, hidden_size, num_layers, bidirectional, bias, seed=seed)

    def _step(self, x, state, p):
        h, cache = gru_step(x, state[0], p, self.reset_after)
        return h, (h,), cache

    def _step_backward(self, dy, dstate, cache, p):
        dx, dh_prev, grads = gru_step_backward(dstate[0] + dy, cache, p, self.reset_after)
        return dx, (dh_prev,), grads

    def _extra_repr(self):
        return super()._extra_repr() | ({} if self.reset_after else {"reset_after": False})
