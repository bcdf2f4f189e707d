"""LSTM cell (torch.nn.LSTM's math), with optional projection (Sak et al. 2014).

    i_t = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)
    f_t = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf)
    g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
    o_t = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)
    c_t = f_t * c_{t-1} + i_t * g_t
    h_t = o_t * tanh(c_t)                 (h_t = W_hr (o_t * tanh(c_t)) with proj_size P > 0)

Gates are stacked in the order i, f, g, o in ``weight_ih (4H, I)`` and
``weight_hh (4H, P or H)``, as in torch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Cell, Params, State, check_int

__all__ = ["LSTMCell"]


class LSTMCell(Cell):
    """LSTM step; state is ``(h, c)`` with ``h`` of size P (proj_size) or H and ``c`` of size H."""

    kernel_kind = "lstm"
    native_mode = "LSTM"
    num_gates = 4
    forget_gate = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, proj_size: int = 0):
        super().__init__(input_size, hidden_size, bias)
        proj_size = check_int("proj_size", proj_size)
        if proj_size < 0 or (proj_size and proj_size >= hidden_size):
            raise ValueError(
                f"proj_size must be 0 or in [1, hidden_size={hidden_size}), got {proj_size}"
            )
        self.proj_size = proj_size

    @property
    def state_sizes(self):
        return (self.proj_size or self.hidden_size, self.hidden_size)

    def param_shapes(self):
        H, I, P = self.hidden_size, self.input_size, self.proj_size
        shapes = {"weight_ih": (4 * H, I), "weight_hh": (4 * H, P or H)}
        if self.bias:
            shapes.update(bias_ih=(4 * H,), bias_hh=(4 * H,))
        if P:
            shapes["weight_hr"] = (P, H)
        return shapes

    def project(self, x: Tensor, p: Params) -> Tensor:
        return F.linear(x, p["weight_ih"], p.get("bias_ih"))  # (T, B, I) -> (T, B, 4H)

    def step(self, x_t: Tensor, state: State, p: Params):
        h, c = state
        gates = x_t + F.linear(h, p["weight_hh"], p.get("bias_hh"))  # (B, 4H)
        i, f, g, o = gates.chunk(4, dim=-1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c = f * c + i * g
        h = o * torch.tanh(c)
        if self.proj_size:
            h = F.linear(h, p["weight_hr"])
        return h, (h, c)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        return s + (f", proj_size={self.proj_size}" if self.proj_size else "")
