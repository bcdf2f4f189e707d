"""IndRNN cell (Li et al. 2018): independent neurons, elementwise recurrence.

    h_t = relu(W x_t + b + u * h_{t-1})

``W`` is ``weight_ih (H, I)``, ``b`` is ``bias (H,)`` and the recurrent weight
``u`` is a vector, ``weight_hh (H,)``: each neuron sees only its own past, so a
gradient through k steps is a product of scalars ``u_n**k * [a > 0]`` and its
growth can be bounded neuron by neuron. For a time horizon ``T`` the paper
constrains ``|u_n| <= gamma**(1/T)``, so no gradient grows by more than
``gamma`` over ``T`` steps; rnnkit takes ``gamma = 2`` (the authors' code's
default ``MAG = 2``):

    recurrent_max = 2 ** (1 / time_horizon)      (or given as ``recurrent_max``)

How the bound is kept (departures from the paper's code are marked *):

- ``reset_parameters`` draws ``u ~ U(0, recurrent_max)`` (the authors' init;
  ``U(0, 1)`` without a bound);
- the forward pass uses ``clamp(u, -recurrent_max, recurrent_max)`` (*), so the
  constraint holds even if no one projects the weights; a weight past the bound
  gets no gradient, exactly as if it had been projected back;
- :meth:`IndRNN.constrain_ <rnnkit.layers.zoo.IndRNN.constrain_>` projects the
  stored weights in place, as the paper does after every optimiser step; call
  it there to keep the optimiser's view of ``u`` inside the bound too.

The paper's lower bound for long memory (``|u| >= (1/gamma)**(1/T)`` in the
last layer) is an initialisation choice there and is not enforced here (*).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Cell, Params, State

__all__ = ["IndRNNCell", "recurrent_bound"]


def recurrent_bound(recurrent_max: float | None, time_horizon: int | None) -> float | None:
    """``recurrent_max``, or ``2 ** (1 / time_horizon)``, or None (no bound); checks both."""
    if recurrent_max is not None and time_horizon is not None:
        raise ValueError("recurrent_max, time_horizon: give at most one of them, got "
                         f"recurrent_max={recurrent_max}, time_horizon={time_horizon}")
    if time_horizon is not None:
        if isinstance(time_horizon, bool) or not isinstance(time_horizon, int) \
                or time_horizon < 1:
            raise ValueError(f"time_horizon: expected a positive int, got {time_horizon!r}")
        return 2.0 ** (1.0 / time_horizon)
    if recurrent_max is not None:
        if isinstance(recurrent_max, bool) or not isinstance(recurrent_max, (int, float)) \
                or not recurrent_max > 0 or math.isinf(recurrent_max):
            raise ValueError(f"recurrent_max: expected a positive finite number, "
                             f"got {recurrent_max!r}")
        return float(recurrent_max)
    return None


class IndRNNCell(Cell):
    """IndRNN step; state ``(h,)``; ``recurrent_max``/``time_horizon`` bound ``|u|``."""

    kernel_kind = "indrnn"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 recurrent_max: float | None = None, time_horizon: int | None = None):
        super().__init__(input_size, hidden_size, bias)
        self.recurrent_max = recurrent_bound(recurrent_max, time_horizon)

    def param_shapes(self):
        H, I = self.hidden_size, self.input_size
        shapes = {"weight_ih": (H, I), "weight_hh": (H,)}
        if self.bias:
            shapes["bias"] = (H,)
        return shapes

    def recurrent_weight(self, p: Params) -> Tensor:
        """``u`` as the forward pass uses it: clamped to ``[-recurrent_max, recurrent_max]``."""
        u = p["weight_hh"]
        m = self.recurrent_max
        return u if m is None else u.clamp(-m, m)

    def project(self, x: Tensor, p: Params) -> Tensor:
        return F.linear(x, p["weight_ih"], p.get("bias"))  # (T, B, I) -> (T, B, H)

    def step(self, x_t: Tensor, state: State, p: Params):
        (h,) = state
        h = torch.relu(x_t + self.recurrent_weight(p) * h)
        return h, (h,)

    def reset_parameters(self, p: Params) -> None:
        super().reset_parameters(p)  # W, b ~ U(-1/sqrt(H), 1/sqrt(H))
        with torch.no_grad():
            p["weight_hh"].uniform_(0.0, 1.0 if self.recurrent_max is None
                                    else self.recurrent_max)

    def constrain_(self, p: Params) -> None:
        """Project the stored ``u`` onto ``|u| <= recurrent_max`` in place (no-op without
        a bound)."""
        if self.recurrent_max is not None:
            with torch.no_grad():
                p["weight_hh"].clamp_(-self.recurrent_max, self.recurrent_max)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        return s + (f", recurrent_max={self.recurrent_max:.6g}" if self.recurrent_max else "")
