"""Elman RNN cell (torch.nn.RNN's math).

    h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),   act = tanh or relu
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Cell, Params, State

__all__ = ["RNNCell"]


class RNNCell(Cell):
    """Vanilla RNN step with tanh or relu; parameters named like torch.nn.RNN.

    Shapes: ``weight_ih (H, I)``, ``weight_hh (H, H)``, ``bias_ih (H,)``, ``bias_hh (H,)``.
    """

    kernel_kind = "rnn"
    num_gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh"):
        super().__init__(input_size, hidden_size, bias)
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self.native_mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        self._act = torch.tanh if nonlinearity == "tanh" else torch.relu

    def param_shapes(self):
        H, I = self.hidden_size, self.input_size
        shapes = {"weight_ih": (H, I), "weight_hh": (H, H)}
        if self.bias:
            shapes.update(bias_ih=(H,), bias_hh=(H,))
        return shapes

    def project(self, x: Tensor, p: Params) -> Tensor:
        return F.linear(x, p["weight_ih"], p.get("bias_ih"))  # (T, B, I) -> (T, B, H)

    def step(self, x_t: Tensor, state: State, p: Params):
        (h,) = state
        h = self._act(x_t + F.linear(h, p["weight_hh"], p.get("bias_hh")))
        return h, (h,)

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}, nonlinearity={self.nonlinearity!r}"
