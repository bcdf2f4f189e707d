"""NumPy reference S6, Mamba's selective state-space recurrence, with explicit BPTT.

The oracle for ``rnnkit.cells.ssm.S6Cell`` (Gu & Dao 2023, "Mamba", Algorithm 2): the same
equations, the same parameter names and shapes (``state_dict``s load both ways), float64, on
the stacking/bidirectional/lengths/BPTT driver of ``rnnkit.reference.layers``. ``_project`` is
the input-only part for all T steps at once, ``_step`` one step of the recurrence; the
parameters a step reads (``A_log``, ``D``) get their gradients summed over the steps.

Per layer and direction, with a state ``h`` (B, H, N) carried flat as (B, H*N) (unit
``d * N + n``) and an output ``y`` (B, H):

    k_t      = x_t weight_ih^T                          blocks [u, delta, B, C]: H, H, N, N
    u_t      = k^u_t (+ b_u),   z_t = k^delta_t (+ b_delta) + dt_bias,   delta_t = softplus(z_t)
    A        = -exp(A_log)                              (H, N)
    a_t      = exp(delta_t[:, :, None] A)               (B, H, N)   zero-order hold
    h_t      = a_t h_{t-1} + (delta_t u_t)[:, :, None] B_t[:, None, :]   Euler for B
    y_t[d]   = sum_n C_t[n] h_t[d, n] + D[d] u_t[d]

``bias (2H,)`` holds ``[b_u, b_delta]`` (B and C have none); ``dt_bias (H,)`` is always there.
With ``value="identity"`` (every layer's input of size H) the input is ``u`` itself:
``weight_ih (H + 2N, H)`` has blocks [delta, B, C] and ``bias (H,)`` is ``b_delta``.
Initialisation as rnnkit's: ``weight_ih ~ U(+-1/sqrt(I))``, ``bias = 0``, ``A_log[d, n] =
log(n + 1)``, ``D = 1``, ``dt_bias = softplus^-1(dt)``, ``dt`` log-uniform in [dt_min, dt_max]
floored at 1e-4.

Legend: T time, B batch, I input size (of this layer: 2H above a bidirectional layer), H hidden
size (the channels and the output), N state size per channel, D directions.

>>> import numpy as np
>>> from rnnkit.reference import ssm
>>> net = ssm.S6(3, 4, num_layers=2, bidirectional=True, state_size=2, seed=0)
>>> out, h_n = net.forward(np.ones((5, 2, 3)), lengths=[5, 2])
>>> grads = net.backward(np.ones_like(out))
>>> out.shape, h_n.shape, grads["A_log_l1_reverse"].shape, grads["h0"].shape
((5, 2, 8), (4, 2, 8), (4, 2), (4, 2, 8))
>>> tuple(net.params)[:5]
('weight_ih_l0', 'bias_l0', 'dt_bias_l0', 'A_log_l0', 'D_l0')
>>> a_log = net.params["A_log_l0"]
>>> net.params["weight_ih_l1"].shape, bool(np.allclose(a_log[0], np.log([1.0, 2.0])))
((12, 8), True)
>>> ident = ssm.S6(4, 4, num_layers=2, state_size=2, value="identity", seed=0)
>>> ident.params["weight_ih_l1"].shape, ident.params["bias_l1"].shape
((8, 4), (4,))
"""
from __future__ import annotations

import math

import numpy as np

from .cells import _sigmoid
from .layers import _check_size, _Recurrent
from .lru import _check_value
from .zoo import _linear, _linear_backward

__all__ = ["S6"]

DT_FLOOR = 1e-4  # Mamba's dt_init_floor


def _softplus(z: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, z)  # log(1 + e^z), stably


# ---------------------------------------------------------------------------------------------
# backward of a step, with g = d h_t = d state + dy[:, :, None] C[:, None, :]:
#   dC = sum_d dy h;   dD = sum_B dy u;   du = dy D + sum_n g B delta
#   dh_prev = a g;   d(delta A) = g h_prev a;   ddelta = sum_n d(delta A) A + sum_n g B u
#   dA_log = sum_B d(delta A) delta A           (dA/dA_log = A);   dB = sum_d g delta u
# backward of the projection: dz = ddelta sigmoid(z); dk = [du, dz, dB, dC]
#   dweight_ih = sum_TB dk^T x;  dx = dk weight_ih;  dbias = sum [du, dz];  ddt_bias = sum dz
#   value="identity" (u = x): dk = [dz, dB, dC];  dx = dk weight_ih + du;  dbias = sum dz
# ---------------------------------------------------------------------------------------------

class S6(_Recurrent):
    """Selective SSM: ``weight_ih (2H + 2N, I)``, ``bias (2H,)``, ``dt_bias (H,)``,
    ``A_log (H, N)``, ``D (H,)``; state ``h`` (H*N), output ``y`` (H).

    Keyword-only: ``state_size`` N (16), ``dt_min``, ``dt_max`` (0.001, 0.1): the range of the
    initial step sizes; ``value`` "project" or "identity" (``u = x``: ``weight_ih (H + 2N, H)``,
    ``bias (H,)``); ``seed``.
    """

    num_gates = 1

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, bias=True,
                 *, state_size=16, dt_min=0.001, dt_max=0.1, value="project", seed=None):
        self.state_size = _check_size("state_size", state_size)
        self.value = _check_value(value, input_size, hidden_size, num_layers, bidirectional)
        for name, v in (("dt_min", dt_min), ("dt_max", dt_max)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{name}: expected a finite number, got {v!r}")
        if not 0 < dt_min < dt_max:
            raise ValueError(f"dt_min, dt_max: expected 0 < dt_min < dt_max, got "
                             f"dt_min={dt_min}, dt_max={dt_max}")
        self.dt_min, self.dt_max = float(dt_min), float(dt_max)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        super().__init__(input_size, hidden_size, num_layers, bidirectional, bias, seed=rng)
        H, N = self.hidden_size, self.state_size
        lo, hi = math.log(self.dt_min), math.log(self.dt_max)
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                p = self._cell_params(layer, direction)
                k = 1.0 / np.sqrt(p["weight_ih"].shape[1])
                p["weight_ih"][:] = rng.uniform(-k, k, size=p["weight_ih"].shape)
                if "bias" in p:
                    p["bias"][:] = 0.0
                dt = np.maximum(np.exp(rng.uniform(lo, hi, size=H)), DT_FLOOR)
                p["dt_bias"][:] = dt + np.log(-np.expm1(-dt))  # softplus^-1(dt)
                p["A_log"][:] = np.log(np.arange(1, N + 1))
                p["D"][:] = 1.0

    def _cell_param_shapes(self, in_size):
        H, N = self.hidden_size, self.state_size
        U = H if self.value == "project" else 0  # rows (and biases) of u
        shapes = {"weight_ih": (U + H + 2 * N, in_size)}
        if self.bias:
            shapes["bias"] = (U + H,)
        return shapes | {"dt_bias": (H,), "A_log": (H, N), "D": (H,)}

    def _state_sizes(self):
        return (self.hidden_size * self.state_size,)

    def _split(self, v):
        H, N = self.hidden_size, self.state_size
        return np.split(v, [H, 2 * H, 2 * H + N], axis=-1)  # u, delta/z (.., H); B, C (.., N)

    def _project(self, x, p, keep, reverse):
        H = self.hidden_size
        k = _linear(x, p["weight_ih"])  # (T, B, [H +] H + 2N)
        if self.value == "project":
            u, z, BC = np.split(k, [H, 2 * H], axis=-1)
            if "bias" in p:
                u, z = u + p["bias"][:H], z + p["bias"][H:]
        else:  # u = x
            u, (z, BC) = x, np.split(k, [H], axis=-1)
            if "bias" in p:
                z = z + p["bias"]
        z = z + p["dt_bias"]
        return np.concatenate([u, _softplus(z), BC], axis=-1), (x, z)  # (T, B, 2H + 2N)

    def _project_backward(self, dxp, cache, p):
        x, z = cache
        du, ddelta, dB, dC = self._split(dxp)
        dz = ddelta * _sigmoid(z)  # softplus' = sigmoid
        project = self.value == "project"
        dk = np.concatenate(([du] if project else []) + [dz, dB, dC], axis=-1)
        dx, dW, _ = _linear_backward(dk, x, p["weight_ih"])
        if not project:
            dx = dx + du  # u = x
        grads = {"weight_ih": dW, "dt_bias": dz.sum(axis=(0, 1))}
        if "bias" in p:
            db = [du.sum(axis=(0, 1))] if project else []
            grads["bias"] = np.concatenate(db + [dz.sum(axis=(0, 1))])
        return dx, grads

    def _step(self, x, state, p):
        u, delta, Bt, Ct = self._split(x)  # (B, H), (B, H), (B, N), (B, N)
        H, N = self.hidden_size, self.state_size
        A = -np.exp(p["A_log"])  # (H, N)
        h_prev = state[0].reshape(-1, H, N)  # (B, H*N) -> (B, H, N)
        a = np.exp(delta[:, :, None] * A)
        h = a * h_prev + (delta * u)[:, :, None] * Bt[:, None, :]
        y = np.einsum("bhn,bn->bh", h, Ct) + p["D"] * u
        return y, (h.reshape(-1, H * N),), (u, delta, Bt, Ct, A, h_prev, a, h)

    def _step_backward(self, dy, dstate, cache, p):
        u, delta, Bt, Ct, A, h_prev, a, h = cache
        H, N = self.hidden_size, self.state_size
        g = dstate[0].reshape(-1, H, N) + dy[:, :, None] * Ct[:, None, :]  # d h_t (B, H, N)
        dC = np.einsum("bhn,bh->bn", h, dy)
        gB = np.einsum("bhn,bn->bh", g, Bt)  # sum_n g B
        d_dA = g * h_prev * a  # d(delta A)
        du = dy * p["D"] + gB * delta
        ddelta = np.einsum("bhn,hn->bh", d_dA, A) + gB * u
        dB = np.einsum("bhn,bh->bn", g, delta * u)
        grads = {"A_log": np.einsum("bhn,bh->hn", d_dA, delta) * A,
                 "D": (dy * u).sum(axis=0)}
        dx = np.concatenate([du, ddelta, dB, dC], axis=1)  # (B, 2H + 2N)
        return dx, ((a * g).reshape(-1, H * N),), grads

    def _extra_repr(self):
        out = super()._extra_repr() | {"state_size": self.state_size}
        return out | ({"value": self.value} if self.value != "project" else {})
