"""SRU cell (Lei et al. 2018): matrix products off the recurrence, a highway out.

    x~_t = W x_t                                         (all T at once, in ``project``)
    f_t  = sigmoid(W_f x_t + v_f * c_{t-1} + b_f)
    r_t  = sigmoid(W_r x_t + v_r * c_{t-1} + b_r)
    c_t  = f_t * c_{t-1} + (1 - f_t) * x~_t
    h_t  = r_t * c_t + (1 - r_t) * alpha * x^_t          (highway connection)

The highway carries the input itself, ``x^_t = x_t``, when ``input_size ==
hidden_size``; otherwise (a first layer of another width, or any layer above a
bidirectional one, whose input is 2H wide) it carries a learned projection
``x^_t = W_hw x_t``, as the authors' ``sru`` library does. ``alpha`` is 1, or
``sqrt(3)`` with ``rescale=True`` (the paper's scaling correction, which keeps
the output variance at 1 at initialisation with ``b_r = 0``).

Parameters: ``weight_ih (3H, I)`` stacking W, W_f, W_r (and W_hw: ``(4H, I)``
where the sizes differ), ``weight_c (2H,)`` stacking the elementwise recurrent
weights v_f, v_r, and ``bias (2H,)`` stacking b_f, b_r. Initialisation follows
the authors: ``weight_ih ~ U(-sqrt(3/I), sqrt(3/I))`` (variance 1/I) with the
W_f, W_r blocks scaled by sqrt(1/2), ``weight_c ~ U(-sqrt(3/2), sqrt(3/2))``,
``bias = 0``. The state is ``(c,)`` and the output ``h``, so ``h_n`` is the
last ``c``. rnnkit departs from the paper in one place: ``bias=False`` drops
b_f and b_r, which the paper always has.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Cell, Params, State, check_flag

__all__ = ["SRUCell"]


class SRUCell(Cell):
    """SRU step; state ``(c,)``, output ``h``; ``rescale`` scales the highway by sqrt(3)."""

    kernel_kind = "sru"
    forget_gate = 0  # bias is (b_f, b_r)

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 rescale: bool = False):
        super().__init__(input_size, hidden_size, bias)
        self.rescale = check_flag("rescale", rescale)
        self.alpha = math.sqrt(3.0) if self.rescale else 1.0
        self.projected_highway = input_size != hidden_size
        self.num_gates = 4 if self.projected_highway else 3  # blocks of weight_ih

    def param_shapes(self):
        H, I = self.hidden_size, self.input_size
        shapes = {"weight_ih": (self.num_gates * H, I), "weight_c": (2 * H,)}
        if self.bias:
            shapes["bias"] = (2 * H,)
        return shapes

    def project(self, x: Tensor, p: Params) -> Tensor:
        """(T, B, I) -> (T, B, 4H): x~, W_f x + b_f, W_r x + b_r, alpha * x^."""
        H = self.hidden_size
        u = F.linear(x, p["weight_ih"])  # (T, B, 3H or 4H)
        x_tilde, fr, x_hat = u[..., :H], u[..., H:3 * H], u[..., 3 * H:]
        if "bias" in p:
            fr = fr + p["bias"]
        if not self.projected_highway:
            x_hat = x
        return torch.cat([x_tilde, fr, self.alpha * x_hat], dim=-1)

    def step(self, x_t: Tensor, state: State, p: Params):
        (c_prev,) = state
        x_tilde, a_f, a_r, x_hat = x_t.chunk(4, dim=-1)
        v_f, v_r = p["weight_c"].chunk(2)
        f = torch.sigmoid(a_f + v_f * c_prev)
        r = torch.sigmoid(a_r + v_r * c_prev)
        c = f * c_prev + (1 - f) * x_tilde
        h = r * c + (1 - r) * x_hat
        return h, (c,)

    def reset_parameters(self, p: Params) -> None:
        H = self.hidden_size
        k = math.sqrt(3.0 / self.input_size)
        with torch.no_grad():
            p["weight_ih"].uniform_(-k, k)
            p["weight_ih"][H:3 * H].mul_(math.sqrt(0.5))  # W_f, W_r
            p["weight_c"].uniform_(-math.sqrt(1.5), math.sqrt(1.5))
            if "bias" in p:
                p["bias"].zero_()

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}" + (", rescale=True" if self.rescale else "")
