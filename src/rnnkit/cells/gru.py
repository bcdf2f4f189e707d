"""GRU cell in torch's form (reset after the matrix product) or Cho et al.'s original.

torch.nn.GRU (``reset_after=True``, the default):

    r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

Cho et al. 2014 (``reset_after=False``): the reset gate acts on the state
before the product, ``n_t = tanh(W_in x_t + b_in + W_hn (r_t * h_{t-1}) + b_hn)``.
Both use the same parameters, gates stacked r, z, n as in torch:
``weight_ih (3H, I)``, ``weight_hh (3H, H)``, ``bias_ih (3H,)``, ``bias_hh (3H,)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Cell, Params, State, check_flag

__all__ = ["GRUCell"]


class GRUCell(Cell):
    """GRU step; ``reset_after=False`` selects the original Cho et al. form."""

    kernel_kind = "gru"
    num_gates = 3

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 reset_after: bool = True):
        super().__init__(input_size, hidden_size, bias)
        self.reset_after = check_flag("reset_after", reset_after)
        self.native_mode = "GRU" if self.reset_after else None

    def param_shapes(self):
        H, I = self.hidden_size, self.input_size
        shapes = {"weight_ih": (3 * H, I), "weight_hh": (3 * H, H)}
        if self.bias:
            shapes.update(bias_ih=(3 * H,), bias_hh=(3 * H,))
        return shapes

    def project(self, x: Tensor, p: Params) -> Tensor:
        return F.linear(x, p["weight_ih"], p.get("bias_ih"))  # (T, B, I) -> (T, B, 3H)

    def step(self, x_t: Tensor, state: State, p: Params):
        return self.step_recurrent_dropout(x_t, state, state[0], p)

    def step_recurrent_dropout(self, x_t: Tensor, state: State, h_rec: Tensor, p: Params):
        """The step with ``h_rec`` in the recurrent products and ``h`` carried."""
        (h,) = state
        H = self.hidden_size
        W_hh, b_hh = p["weight_hh"], p.get("bias_hh")
        x_r, x_z, x_n = x_t.split(H, dim=-1)
        if self.reset_after:
            h_r, h_z, h_n = F.linear(h_rec, W_hh, b_hh).split(H, dim=-1)
            r = torch.sigmoid(x_r + h_r)
            z = torch.sigmoid(x_z + h_z)
            n = torch.tanh(x_n + r * h_n)
        else:
            b_rz, b_n = (None, None) if b_hh is None else (b_hh[: 2 * H], b_hh[2 * H:])
            h_r, h_z = F.linear(h_rec, W_hh[: 2 * H], b_rz).split(H, dim=-1)
            r = torch.sigmoid(x_r + h_r)
            z = torch.sigmoid(x_z + h_z)
            n = torch.tanh(x_n + F.linear(r * h_rec, W_hh[2 * H:], b_n))
        h = (1 - z) * n + z * h
        return h, (h,)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        return s + ("" if self.reset_after else ", reset_after=False")
