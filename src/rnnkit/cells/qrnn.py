"""QRNN cell (Bradbury et al. 2017): convolutional gates, elementwise pooling.

The gates are a causal convolution of width ``window`` (k = 1 or 2) over the
input, computed for all time steps at once in ``project``:

    s_t = [x_t, x_{t-1}]          (k = 2; x_{-1} = 0)      or      s_t = x_t   (k = 1)
    z_t = tanh(W_z s_t + b_z)     f_t = sigmoid(W_f s_t + b_f)
    o_t = sigmoid(W_o s_t + b_o)  i_t = sigmoid(W_i s_t + b_i)

and only the pooling is sequential (``pooling``):

    f:    c_t = f_t * c_{t-1} + (1 - f_t) * z_t           h_t = c_t
    fo:   c_t = f_t * c_{t-1} + (1 - f_t) * z_t           h_t = o_t * c_t
    ifo:  c_t = f_t * c_{t-1} + i_t * z_t                 h_t = o_t * c_t

Parameters: ``weight_ih (G*H, k*I)`` with gate blocks stacked z, f, o, i (as many
as the pooling needs: G = 2, 3, 4) acting on ``[x_t, x_{t-1}]`` (the layout of
the authors' ``torchqrnn``), ``bias (G*H,)``; initialised like ``nn.Linear``.
The state is ``(c,)`` and the output ``h``, so ``h_n`` is the last ``c`` (as in
``torchqrnn``). The layer reverses each sequence before ``project`` for the
reverse direction, so there ``x_{t-1}`` is the *next* input of the original
sequence, and the window never reaches a padded step (it looks back only).
"""
from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Cell, Params, State

__all__ = ["QRNNCell"]

_GATES = {"f": 2, "fo": 3, "ifo": 4}


class QRNNCell(Cell):
    """QRNN pooling step; ``window`` 1 or 2, ``pooling`` "f", "fo" or "ifo"; state ``(c,)``."""

    kernel_kind = "qrnn"
    forget_gate = 1  # blocks of weight_ih/bias: z, f, o, i

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 window: int = 1, pooling: str = "fo"):
        super().__init__(input_size, hidden_size, bias)
        if isinstance(window, bool) or not isinstance(window, numbers.Integral) \
                or window not in (1, 2):
            raise ValueError(f"window: expected 1 or 2, got {window!r}")
        if pooling not in _GATES:
            raise ValueError(f"pooling: expected 'f', 'fo' or 'ifo', got {pooling!r}")
        self.window, self.pooling = int(window), pooling
        self.num_gates = _GATES[pooling]

    def param_shapes(self):
        G, H, I = self.num_gates, self.hidden_size, self.input_size
        shapes = {"weight_ih": (G * H, self.window * I)}
        if self.bias:
            shapes["bias"] = (G * H,)
        return shapes

    def project(self, x: Tensor, p: Params) -> Tensor:
        """(T, B, I) -> (T, B, G*H): the gates z, f[, o[, i]], activated."""
        if self.window == 2:
            x_prev = torch.cat([torch.zeros_like(x[:1]), x[:-1]])  # x_{t-1}, zero at t = 0
            x = torch.cat([x, x_prev], dim=-1)  # (T, B, 2I)
        gates = F.linear(x, p["weight_ih"], p.get("bias"))  # (T, B, G*H)
        z, rest = gates.split([self.hidden_size, (self.num_gates - 1) * self.hidden_size], -1)
        return torch.cat([torch.tanh(z), torch.sigmoid(rest)], dim=-1)

    def step(self, x_t: Tensor, state: State, p: Params):
        (c,) = state
        z, f, *oi = x_t.chunk(self.num_gates, dim=-1)
        if self.pooling == "ifo":
            o, i = oi
            c = f * c + i * z
        else:
            c = f * c + (1 - f) * z
        h = c if self.pooling == "f" else oi[0] * c
        return h, (c,)

    def reset_parameters(self, p: Params) -> None:
        k = 1.0 / math.sqrt(self.window * self.input_size)  # nn.Linear's bound, fan_in = k*I
        with torch.no_grad():
            for w in p.values():
                w.uniform_(-k, k)

    def extra_repr(self):
        return (f"{self.input_size}, {self.hidden_size}, window={self.window}, "
                f"pooling={self.pooling!r}")
