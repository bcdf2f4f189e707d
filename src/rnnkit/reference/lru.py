"""NumPy reference LRU and RG-LRU (diagonal linear recurrences), with explicit BPTT.

The oracle for rnnkit's LRU (Orvieto et al. 2023, "Resurrecting Recurrent Neural Networks for
Long Sequences") and RG-LRU (De et al. 2024, "Griffin"): the same equations as
``rnnkit.cells.lru``, the same parameter names and shapes (``state_dict``s load both ways),
float64, on the stacking/bidirectional/lengths/BPTT driver of ``rnnkit.reference.layers``.
As in ``rnnkit.reference.zoo``, ``_project`` is the input-only part for all T steps at once
and ``_step`` one step of the recurrence; the parameters a step reads (LRU: ``lambda`` and
``weight_out``; RG-LRU: ``a_param``) get their gradients summed over the steps.

LRU: a complex diagonal state ``s = s_re + i s_im`` (B, N), carried as the pair
``(s_re, s_im)``, and an output ``y`` (B, H):

    lambda = exp(-exp(nu_log) + i exp(theta_log)),   gamma = exp(gamma_log)      (N,)
    u_t    = gamma * (x_t B^T),       B = B_re + i B_im = weight_ih[:N] + i weight_ih[N:]
    s_t    = lambda * s_{t-1} + u_t
    y_t    = [s_re, s_im]_t weight_out^T + skip_t       (= Re(C s_t), C = W[:, :N] - i W[:, N:])
    skip_t = x_t * weight_skip (I == H: the paper's diagonal D) or x_t weight_skip^T (+ bias)

RG-LRU: a real diagonal state, which is also the output, ``h`` (B, H); ``c`` a constant (8):

    k_a, k_x, v = x_t weight_ih^T (+ bias)               three blocks of H  (value="project")
    k_a, k_x    = x_t weight_ih^T (+ bias);   v = x_t    two blocks, I == H (value="identity")
    r, i        = sigmoid(k_a), sigmoid(k_x)
    log_a       = -c r softplus(a_param),   a = exp(log_a)
    m           = sqrt(max(1 - a^2, 2.5e-7))             (1 - a^2 = -expm1(2 log_a))
    h_t         = a h_{t-1} + m (i v)

The floor caps ``dm / d(1 - a^2)`` at 1000, Griffin's bound; below it the derivative is 0.

Legend: T time, B batch, I input size (of this layer: 2H above a bidirectional layer), H hidden
size (the output), N state size (LRU), D directions. For the LRU, ``h0``/``h_n`` are pairs
``(s_re, s_im)`` of (D*L, B, N) arrays and ``backward`` returns their gradients as ``"h0"`` and
``"c0"`` (the driver's names for a two-part state).

>>> import numpy as np
>>> from rnnkit.reference import lru
>>> net = lru.LRU(3, 4, num_layers=2, bidirectional=True, state_size=6, seed=0)
>>> out, (s_re, s_im) = net.forward(np.ones((5, 2, 3)), lengths=[5, 2])
>>> grads = net.backward(np.ones_like(out))
>>> out.shape, s_re.shape, grads["weight_out_l1_reverse"].shape, grads["c0"].shape
((5, 2, 8), (4, 2, 6), (4, 12), (4, 2, 6))
>>> net.params["weight_skip_l0"].shape, lru.LRU(4, 4, seed=0).params["weight_skip_l0"].shape
((4, 3), (4,))
>>> rg = lru.RGLRU(3, 4, bidirectional=True, seed=0)
>>> out, h_n = rg.forward(np.ones((5, 2, 3)), lengths=[5, 2])
>>> out.shape, h_n.shape, rg.backward(np.ones_like(out))["a_param_l0_reverse"].shape
((5, 2, 8), (2, 2, 4), (4,))
>>> lru.RGLRU(4, 4, num_layers=2, value="identity", seed=0).params["weight_ih_l1"].shape
(8, 4)
"""
from __future__ import annotations

import math

import numpy as np

from .cells import _sigmoid
from .layers import _check_size, _Recurrent
from .zoo import _Linear, _linear, _linear_backward

__all__ = ["LRU", "RGLRU"]

SQRT_FLOOR = 2.5e-7  # floor of 1 - a^2 under the RG-LRU's square root


def _check_value(value, input_size, hidden_size, num_layers, bidirectional) -> str:
    """``value`` ("project" or "identity"); "identity" needs every layer's input of size H."""
    if value not in ("project", "identity"):
        raise ValueError(f"value: expected 'project' or 'identity', got {value!r}")
    if value == "identity":
        sizes = [input_size] + ([2 * hidden_size] if bidirectional and num_layers > 1 else [])
        for size in sizes:
            if size != hidden_size:
                raise ValueError(f"value='identity' reads x as the value, so it needs "
                                 f"input_size == hidden_size, got input_size={size}, "
                                 f"hidden_size={hidden_size}")
    return value


def _each_cell(model: _Recurrent):
    """The parameter dicts of every (layer, direction), to initialise in place."""
    for layer in range(model.num_layers):
        for direction in range(model.num_directions):
            yield model._cell_params(layer, direction)


# ---------------------------------------------------------------------------------------------
# LRU:  s' = lambda s + u (complex, elementwise);  y = [s'_re, s'_im] W_out^T + skip
# backward of a step, with g = d state' + dy W_out split into (g_re, g_im):
#   du = g;  dskip = dy;  dW_out = dy^T [s'_re, s'_im]
#   ds_re = lam_re g_re + lam_im g_im,   ds_im = lam_re g_im - lam_im g_re    (conj(lambda) g)
#   dlam_re = sum_B g_re s_re + g_im s_im,   dlam_im = sum_B g_im s_re - g_re s_im
#   dnu_log = -exp(nu_log) (dlam_re lam_re + dlam_im lam_im)       (|lambda| = exp(-exp(nu)))
#   dtheta_log = exp(theta_log) (dlam_im lam_re - dlam_re lam_im)  (arg lambda = exp(theta))
# backward of the projection, P = x B^T (T, B, 2N), u = gamma P:
#   dweight_ih = sum_TB (gamma du)^T x;  dgamma_log = sum_TB du_re u_re + du_im u_im
#   dx = (gamma du) weight_ih + (dskip * weight_skip or dskip weight_skip);  dbias = sum dskip
# ---------------------------------------------------------------------------------------------

class LRU(_Recurrent):
    """Linear Recurrent Unit: ``weight_ih (2N, I)``, ``nu_log``, ``theta_log``, ``gamma_log``
    ``(N,)``, ``weight_out (H, 2N)``, ``weight_skip (H,)`` if I == H else ``(H, I)``,
    ``bias (H,)``; state ``(s_re, s_im)``, each of size N = ``state_size`` or H.

    Initialisation as the paper's: ``|lambda|`` uniform on the ring [0.5, 0.99] (in
    ``|lambda|^2``), phase uniform in [0, 2 pi), ``gamma = sqrt(1 - |lambda|^2)``,
    ``weight_ih ~ N(0, 1/(2I))``, ``weight_out ~ N(0, 1/N)``; the rest uniform(+-1/sqrt(H)).
    """

    num_states = 2
    r_min, r_max, max_phase = 0.5, 0.99, 2 * math.pi

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, bias=True,
                 *, state_size=None, seed=None):
        N = hidden_size if state_size is None else state_size
        self.state_size = _check_size("state_size", N)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        super().__init__(input_size, hidden_size, num_layers, bidirectional, bias, seed=rng)
        N = self.state_size
        for p in _each_cell(self):
            r2 = rng.uniform(self.r_min ** 2, self.r_max ** 2, size=N)  # |lambda|^2
            nu = -0.5 * np.log(r2)
            p["nu_log"][:] = np.log(nu)
            p["theta_log"][:] = np.log(self.max_phase * (1.0 - rng.uniform(size=N)))  # > 0
            p["gamma_log"][:] = 0.5 * np.log1p(-r2)
            p["weight_ih"][:] = rng.normal(0.0, 1.0 / np.sqrt(2 * p["weight_ih"].shape[1]),
                                           size=p["weight_ih"].shape)
            p["weight_out"][:] = rng.normal(0.0, 1.0 / np.sqrt(N), size=p["weight_out"].shape)

    def _cell_param_shapes(self, in_size):
        H, N = self.hidden_size, self.state_size
        shapes = {"weight_ih": (2 * N, in_size), "nu_log": (N,), "theta_log": (N,),
                  "gamma_log": (N,), "weight_out": (H, 2 * N),
                  "weight_skip": (H,) if in_size == H else (H, in_size)}
        return shapes | ({"bias": (H,)} if self.bias else {})

    def _state_sizes(self):
        return (self.state_size, self.state_size)  # (s_re, s_im)

    def _as_states(self, name, value, B):
        if value is not None and not (isinstance(value, (tuple, list)) and len(value) == 2):
            raise ValueError(f"{name}: expected a pair (s_re, s_im) of (D*num_layers, B, "
                             f"N={self.state_size}) arrays, got {type(value).__name__}")
        return super()._as_states(name, value, B)

    @staticmethod
    def _lambda(p):
        """``lambda`` as (re, im), each (N,)."""
        mod, arg = np.exp(-np.exp(p["nu_log"])), np.exp(p["theta_log"])
        return mod * np.cos(arg), mod * np.sin(arg)

    def _project(self, x, p, keep, reverse):
        gamma = np.tile(np.exp(p["gamma_log"]), 2)  # (2N,): the same for re and im
        u = _linear(x, p["weight_ih"]) * gamma  # (T, B, 2N): u_re, u_im
        w = p["weight_skip"]
        skip = x * w if w.ndim == 1 else _linear(x, w, p.get("bias"))  # (T, B, H)
        if w.ndim == 1 and "bias" in p:
            skip = skip + p["bias"]
        return np.concatenate([u, skip], axis=2), (x, u)  # (T, B, 2N + H)

    def _project_backward(self, dxp, cache, p):
        x, u = cache
        N2 = 2 * self.state_size
        du, dskip = dxp[..., :N2], dxp[..., N2:]  # (T, B, 2N), (T, B, H)
        gamma = np.tile(np.exp(p["gamma_log"]), 2)
        dx, dW, _ = _linear_backward(du * gamma, x, p["weight_ih"])
        dgamma = (du * u).sum(axis=(0, 1))  # (2N,): d gamma_log, re and im parts
        w = p["weight_skip"]
        if w.ndim == 1:
            dx = dx + dskip * w
            dw = (dskip * x).sum(axis=(0, 1))
        else:
            dx_skip, dw, _ = _linear_backward(dskip, x, w)
            dx = dx + dx_skip
        grads = {"weight_ih": dW, "gamma_log": dgamma[:N2 // 2] + dgamma[N2 // 2:],
                 "weight_skip": dw}
        return dx, grads | ({"bias": dskip.sum(axis=(0, 1))} if "bias" in p else {})

    def _step(self, x, state, p):
        N = self.state_size
        u_re, u_im, skip = x[:, :N], x[:, N:2 * N], x[:, 2 * N:]  # (B, 2N + H) -> N, N, H
        l_re, l_im = self._lambda(p)
        s_re, s_im = state
        n_re = l_re * s_re - l_im * s_im + u_re
        n_im = l_re * s_im + l_im * s_re + u_im
        s = np.concatenate([n_re, n_im], axis=1)  # (B, 2N)
        y = s @ p["weight_out"].T + skip
        return y, (n_re, n_im), (s_re, s_im, s)

    def _step_backward(self, dy, dstate, cache, p):
        s_re, s_im, s = cache
        N = self.state_size
        l_re, l_im = self._lambda(p)
        g = dy @ p["weight_out"]  # (B, 2N)
        g_re, g_im = g[:, :N] + dstate[0], g[:, N:] + dstate[1]
        dl_re = (g_re * s_re + g_im * s_im).sum(axis=0)
        dl_im = (g_im * s_re - g_re * s_im).sum(axis=0)
        grads = {"weight_out": dy.T @ s,
                 "nu_log": -np.exp(p["nu_log"]) * (dl_re * l_re + dl_im * l_im),
                 "theta_log": np.exp(p["theta_log"]) * (dl_im * l_re - dl_re * l_im)}
        d_prev = (l_re * g_re + l_im * g_im, l_re * g_im - l_im * g_re)
        return np.concatenate([g_re, g_im, dy], axis=1), d_prev, grads

    def _extra_repr(self):
        N = self.state_size
        return super()._extra_repr() | ({"state_size": N} if N != self.hidden_size else {})


# ---------------------------------------------------------------------------------------------
# RG-LRU:  r, i = sigmoid(k_a, k_x);  log_a = -c r softplus(a_param);  a = exp(log_a)
#          q = 1 - a^2;  m = sqrt(max(q, 2.5e-7));  h = a h_prev + m i v
# backward: dh = dy + d state;  dh_prev = a dh;  dv = dh m i;  di = dh m v;  dm = dh i v
#   dq = dm / (2 m) [q >= 2.5e-7];  dlog_a = a h_prev dh - 2 a^2 dq
#   dk_a = -c softplus(a_param) dlog_a r (1 - r);  dk_x = di i (1 - i)
#   da_param = sum_B -c r dlog_a sigmoid(a_param)                 (softplus' = sigmoid)
# ---------------------------------------------------------------------------------------------

class RGLRU(_Linear):
    """Real-Gated Linear Recurrent Unit: ``weight_ih (3H, I)`` (blocks gate_a, gate_x, value),
    ``bias (3H,)``, ``a_param (H,)``; state and output ``h``; ``c`` a constant (default 8).
    With ``value="identity"`` (every layer's input of size H): ``weight_ih (2H, H)`` (blocks
    gate_a, gate_x), ``bias (2H,)``, and the value is the input itself.

    Initialisation: ``weight_ih``/``bias`` uniform(+-1/sqrt(H)); ``a_param`` so that the base
    decay ``a = exp(-softplus(a_param))`` has ``a^2`` uniform in [0.9^2, 0.999^2] (Griffin's
    code; the open gate decays by ``a^c``).
    """

    num_gates = 3
    r_min, r_max = 0.9, 0.999

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, bias=True,
                 *, c=8.0, value="project", seed=None):
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0 < c < math.inf:
            raise ValueError(f"c: expected a positive finite number, got {c!r}")
        self.c = float(c)
        self.value = _check_value(value, input_size, hidden_size, num_layers, bidirectional)
        self.num_gates = 3 if self.value == "project" else 2
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        super().__init__(input_size, hidden_size, num_layers, bidirectional, bias, seed=rng)
        for p in _each_cell(self):
            a = np.sqrt(rng.uniform(self.r_min ** 2, self.r_max ** 2, size=hidden_size))
            p["a_param"][:] = np.log(np.expm1(-np.log(a)))  # softplus^-1(-log a)

    def _cell_param_shapes(self, in_size):
        return super()._cell_param_shapes(in_size) | {"a_param": (self.hidden_size,)}

    def _project(self, x, p, keep, reverse):
        k = _linear(x, p["weight_ih"], p.get("bias"))  # (T, B, G*H)
        return (k if self.value == "project" else np.concatenate([k, x], axis=2)), x

    def _project_backward(self, dxp, x, p):
        G = self.num_gates * self.hidden_size
        dx, dW, db = _linear_backward(dxp[..., :G], x, p["weight_ih"])
        if self.value == "identity":
            dx = dx + dxp[..., G:]  # v = x
        return dx, {"weight_ih": dW} | ({"bias": db} if "bias" in p else {})

    def _step(self, x, state, p):
        h_prev = state[0]
        k_a, k_x, v = np.split(x, 3, axis=1)  # (B, 3H) -> 3 x (B, H)
        r, i = _sigmoid(k_a), _sigmoid(k_x)
        sp = np.logaddexp(0.0, p["a_param"])  # softplus, stably
        log_a = -self.c * r * sp
        a = np.exp(log_a)
        q = -np.expm1(2.0 * log_a)  # 1 - a^2
        m = np.sqrt(np.maximum(q, SQRT_FLOOR))
        h = a * h_prev + m * (i * v)
        return h, (h,), (h_prev, r, i, v, sp, a, q, m)

    def _step_backward(self, dy, dstate, cache, p):
        h_prev, r, i, v, sp, a, q, m = cache
        dh = dy + dstate[0]
        dm = dh * i * v
        dq = np.where(q >= SQRT_FLOOR, dm * 0.5 / m, 0.0)
        dlog_a = dh * h_prev * a - 2.0 * a * a * dq
        dk_a = -self.c * sp * dlog_a * r * (1.0 - r)
        dk_x = dh * m * v * i * (1.0 - i)
        dv = dh * m * i
        da_param = (-self.c * r * dlog_a).sum(axis=0) * _sigmoid(p["a_param"])
        return np.concatenate([dk_a, dk_x, dv], axis=1), (dh * a,), {"a_param": da_param}

    def _extra_repr(self):
        out = super()._extra_repr() | ({"c": self.c} if self.c != 8.0 else {})
        return out | ({"value": self.value} if self.value != "project" else {})
