"""Layer-normalised LSTM and GRU (Ba et al. 2016, "Layer Normalization").

Layer normalisation of a vector ``v`` of n features, with a learned gain:

    LN(v; gamma, beta) = gamma * (v - mean(v)) / sqrt(var(v) + eps) + beta

LayerNorm-LSTM normalises the input and recurrent projections separately (each
over all 4H gate pre-activations) and the cell state before the output:

    a_t = LN(W_ih x_t; gamma_ih, b_ih) + LN(W_hh h_{t-1}; gamma_hh, b_hh)     (4H: i, f, g, o)
    i, f, o = sigmoid(a_i, a_f, a_o)        g = tanh(a_g)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(LN(c_t; gamma_c, beta_c))

LayerNorm-GRU applies the same normalisation to torch's GRU (gates r, z, n):

    gi = LN(W_ih x_t; gamma_ih, b_ih)      gh = LN(W_hh h_{t-1}; gamma_hh, b_hh)     (3H)
    r = sigmoid(gi_r + gh_r)   z = sigmoid(gi_z + gh_z)   n = tanh(gi_n + r * gh_n)
    h_t = (1 - z) * n + z * h_{t-1}

The paper writes ``LN(W_h h; a1, b1) + LN(W_x x; a2, b2) + b``: the three biases
add up, so rnnkit keeps two of them and names them like torch.nn's,
``bias_ih = b2 + b`` and ``bias_hh = b1`` (for the GRU ``b_hn`` stays inside the
reset gate, as in torch). So the parameters are torch.nn.LSTM/GRU's
(``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``; ``forget_bias``,
``init_ih`` and ``init_hh`` work as for them) plus the gains ``ln_ih_weight``,
``ln_hh_weight`` (G*H,) and, for the LSTM, ``ln_c_weight``, ``ln_c_bias`` (H,).
Gains start at 1, ``ln_c_bias`` at 0, the rest as torch.nn. ``bias=False``
drops every additive term (``bias_ih``, ``bias_hh``, ``ln_c_bias``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Cell, Params, State

__all__ = ["LayerNormLSTMCell", "LayerNormGRUCell"]


class _LayerNormCell(Cell):
    """The normalised projections shared by both cells."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 eps: float = 1e-5):
        super().__init__(input_size, hidden_size, bias)
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            raise ValueError(f"eps: expected a positive number, got {eps!r}")
        if math.isinf(eps):  # var + inf: every normalised value 0, every output constant
            raise ValueError(f"eps: expected a positive finite number, got {eps!r}")
        self.eps = float(eps)

    def param_shapes(self):
        G, H, I = self.num_gates * self.hidden_size, self.hidden_size, self.input_size
        shapes = {"weight_ih": (G, I), "weight_hh": (G, H)}
        if self.bias:
            shapes.update(bias_ih=(G,), bias_hh=(G,))
        shapes.update(ln_ih_weight=(G,), ln_hh_weight=(G,))
        return shapes

    def _ln(self, v: Tensor, gain: Tensor, bias: Tensor | None) -> Tensor:
        return F.layer_norm(v, v.shape[-1:], gain, bias, self.eps)

    def project(self, x: Tensor, p: Params) -> Tensor:
        """LN(W_ih x; gamma_ih, b_ih) for all steps: (T, B, I) -> (T, B, G*H)."""
        return self._ln(F.linear(x, p["weight_ih"]), p["ln_ih_weight"], p.get("bias_ih"))

    def _recurrent(self, h: Tensor, p: Params) -> Tensor:
        """LN(W_hh h; gamma_hh, b_hh): (B, H) -> (B, G*H)."""
        return self._ln(F.linear(h, p["weight_hh"]), p["ln_hh_weight"], p.get("bias_hh"))

    def reset_parameters(self, p: Params) -> None:
        super().reset_parameters(p)  # torch.nn's U(-1/sqrt(H), 1/sqrt(H))
        with torch.no_grad():
            for name, w in p.items():
                if name.startswith("ln_"):
                    w.fill_(0.0 if name.endswith("_bias") else 1.0)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        return s + (f", eps={self.eps:g}" if self.eps != 1e-5 else "")


class LayerNormLSTMCell(_LayerNormCell):
    """LayerNorm-LSTM step; state ``(h, c)``, gates i, f, g, o as torch.nn.LSTM."""

    kernel_kind = "ln_lstm"
    num_gates = 4
    forget_gate = 1

    @property
    def state_sizes(self):
        return (self.hidden_size, self.hidden_size)

    def param_shapes(self):
        shapes = super().param_shapes()
        shapes["ln_c_weight"] = (self.hidden_size,)
        if self.bias:
            shapes["ln_c_bias"] = (self.hidden_size,)
        return shapes

    def step(self, x_t: Tensor, state: State, p: Params):
        h, c = state
        a = x_t + self._recurrent(h, p)  # (B, 4H)
        a_i, a_f, a_g, a_o = a.chunk(4, dim=-1)
        i, f, g, o = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.tanh(a_g), torch.sigmoid(a_o)
        c = f * c + i * g
        h = o * torch.tanh(self._ln(c, p["ln_c_weight"], p.get("ln_c_bias")))
        return h, (h, c)


class LayerNormGRUCell(_LayerNormCell):
    """LayerNorm-GRU step (torch's reset-after form); state ``(h,)``."""

    kernel_kind = "ln_gru"
    num_gates = 3

    def step(self, x_t: Tensor, state: State, p: Params):
        return self.step_recurrent_dropout(x_t, state, state[0], p)

    def step_recurrent_dropout(self, x_t: Tensor, state: State, h_rec: Tensor, p: Params):
        """The step with ``h_rec`` in ``LN(W_hh h)`` and ``h`` carried."""
        (h,) = state
        gi_r, gi_z, gi_n = x_t.chunk(3, dim=-1)
        gh_r, gh_z, gh_n = self._recurrent(h_rec, p).chunk(3, dim=-1)
        r = torch.sigmoid(gi_r + gh_r)
        z = torch.sigmoid(gi_z + gh_z)
        n = torch.tanh(gi_n + r * gh_n)
        h = (1 - z) * n + z * h
        return h, (h,)
