"""NumPy reference IndRNN, QRNN, SRU, minGRU, minLSTM, LayerNorm-LSTM/GRU, with explicit BPTT.

The oracle for ``rnnkit.IndRNN``, ``QRNN``, ``SRU``, ``MinGRU``, ``MinLSTM``, ``LayerNormLSTM``
and ``LayerNormGRU``: the same equations (see ``rnnkit.cells``), the same parameter names and
shapes (``state_dict``s load both ways), float64, and the stacking/bidirectional/lengths/BPTT
driver of ``rnnkit.reference.layers``. Each cell below gives

* ``_project`` / ``_project_backward``: the input-only part, all T steps at once
  (a matrix product; QRNN's window-2 convolution);
* ``_step`` / ``_step_backward``: one step of the recurrence and the chain rule back through
  it, ``(dy_t, d state_t) -> (d xp_t, d state_{t-1}, parameter gradients)``.

Where rnnkit runs minGRU/minLSTM as a log-space parallel scan, the reference steps the
sequential form: the two must agree. QRNN's reverse direction needs care here, as the
reference runs it on the original time axis: its window looks at ``x_{t+1}``, and at zero
past the sequence's last step (never at padding).

Legend: T time, B batch, I input size (of this layer), H hidden size, G gate blocks.

>>> import numpy as np
>>> from rnnkit.reference import zoo
>>> qrnn = zoo.QRNN(3, 4, num_layers=2, bidirectional=True, window=2, pooling="ifo", seed=0)
>>> out, c_n = qrnn.forward(np.ones((5, 2, 3)), lengths=[5, 2])
>>> grads = qrnn.backward(np.ones_like(out))
>>> out.shape, c_n.shape, grads["weight_ih_l1_reverse"].shape
((5, 2, 8), (4, 2, 4), (16, 16))
"""
from __future__ import annotations

import numpy as np

from .cells import _sigmoid
from .layers import _Recurrent

__all__ = ["IndRNN", "QRNN", "SRU", "MinGRU", "MinLSTM", "LayerNormLSTM", "LayerNormGRU"]


def _linear(x: np.ndarray, W: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    return x @ W.T if b is None else x @ W.T + b


def _linear_backward(da: np.ndarray, x: np.ndarray, W: np.ndarray) -> tuple:
    """``a = x W^T (+ b)`` over (T, B, *): returns ``dx``, ``dW``, ``db``."""
    dW = np.einsum("tbg,tbi->gi", da, x)  # sum over T and B of da^T x
    return da @ W, dW, da.sum(axis=(0, 1))


class _Linear(_Recurrent):
    """Cells whose input part is ``xp = x W_ih^T + bias``, params ``weight_ih``, ``bias``."""

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, bias=True,
                 *, seed=None):
        super().__init__(input_size, hidden_size, num_layers, bidirectional, bias, seed=seed)

    def _cell_param_shapes(self, in_size):
        G = self.num_gates * self.hidden_size
        return {"weight_ih": (G, in_size)} | ({"bias": (G,)} if self.bias else {})

    def _project(self, x, p, keep, reverse):
        return _linear(x, p["weight_ih"], p.get("bias")), x

    def _project_backward(self, dxp, x, p):
        dx, dW, db = _linear_backward(dxp, x, p["weight_ih"])
        return dx, {"weight_ih": dW} | ({"bias": db} if "bias" in p else {})


# ---------------------------------------------------------------------------------------------
# IndRNN:  a_t = W x_t + b + u * h_{t-1},  h_t = relu(a_t),  u clamped to [-m, m]
# backward: da = dh * [a > 0];  du = sum_B da * h_{t-1} * [|u| <= m];  dh_{t-1} = da * u
# ---------------------------------------------------------------------------------------------

class IndRNN(_Linear):
    """IndRNN with ``weight_ih (H, I)``, ``weight_hh (H,)``, ``bias (H,)``; ``recurrent_max``/
    ``time_horizon`` as ``rnnkit.IndRNN`` (``u`` clamped in the forward pass)."""

    num_gates = 1

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, bias=True,
                 *, recurrent_max=None, time_horizon=None, seed=None):
        if time_horizon is not None:
            recurrent_max = 2.0 ** (1.0 / time_horizon)
        self.recurrent_max = recurrent_max
        super().__init__(input_size, hidden_size, num_layers, bidirectional, bias, seed=seed)

    def _cell_param_shapes(self, in_size):
        H = self.hidden_size
        return {"weight_ih": (H, in_size), "weight_hh": (H,)} | (
            {"bias": (H,)} if self.bias else {}
        )

    def _u(self, p):
        m = self.recurrent_max
        u = p["weight_hh"]
        return (u, np.ones_like(u)) if m is None else (np.clip(u, -m, m), np.abs(u) <= m)

    def _step(self, x, state, p):
        h_prev = state[0]
        a = x + self._u(p)[0] * h_prev
        h = np.maximum(a, 0.0)
        return h, (h,), (a, h_prev)

    def _step_backward(self, dy, dstate, cache, p):
        a, h_prev = cache
        u, inside = self._u(p)
        da = (dy + dstate[0]) * (a > 0)
        return da, (da * u,), {"weight_hh": (da * h_prev).sum(axis=0) * inside}


# ---------------------------------------------------------------------------------------------
# QRNN:  s_t = [x_t, x_prev_t];  z = tanh(W_z s + b_z), f, o, i = sigmoid(W_{f,o,i} s + b)
#   f: c = f c_prev + (1 - f) z, h = c;  fo: ... h = o c;  ifo: c = f c_prev + i z, h = o c
# ---------------------------------------------------------------------------------------------

class QRNN(_Recurrent):
    """QRNN with ``weight_ih (G*H, window*I)`` (gates z, f, o, i) and ``bias (G*H,)``."""

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, bias=True,
                 *, window=1, pooling="fo", seed=None):
        self.window, self.pooling = window, pooling
        self.num_gates = {"f": 2, "fo": 3, "ifo": 4}[pooling]
        super().__init__(input_size, hidden_size, num_layers, bidirectional, bias, seed=seed)

    def _cell_param_shapes(self, in_size):
        G = self.num_gates * self.hidden_size
        return {"weight_ih": (G, self.window * in_size)} | ({"bias": (G,)} if self.bias else {})

    def _project(self, x, p, keep, reverse):
        s = x
        if self.window == 2:  # the previous step in the direction of travel, 0 at the start
            x_prev = np.zeros_like(x)
            if reverse:
                x_prev[:-1] = np.where(keep[1:], x[1:], 0.0)  # x_{t+1} while inside the sequence
            else:
                x_prev[1:] = x[:-1]
            s = np.concatenate([x, x_prev], axis=2)  # (T, B, 2I)
        a = _linear(s, p["weight_ih"], p.get("bias"))  # (T, B, G*H)
        H = self.hidden_size
        gates = np.concatenate([np.tanh(a[..., :H]), _sigmoid(a[..., H:])], axis=2)
        return gates, (s, gates, keep, reverse)

    def _project_backward(self, dgates, cache, p):
        s, gates, keep, reverse = cache
        H = self.hidden_size
        da = dgates * np.concatenate([1.0 - gates[..., :H] ** 2,
                                      gates[..., H:] * (1.0 - gates[..., H:])], axis=2)
        ds, dW, db = _linear_backward(da, s, p["weight_ih"])
        I = s.shape[2] // self.window
        dx = ds[..., :I].copy()
        if self.window == 2:
            dx_prev = ds[..., I:]
            if reverse:
                dx[1:] += np.where(keep[1:], dx_prev[:-1], 0.0)
            else:
                dx[:-1] += dx_prev[1:]
        return dx, {"weight_ih": dW} | ({"bias": db} if "bias" in p else {})

    def _step(self, x, state, p):
        c_prev = state[0]
        z, f, *oi = np.split(x, self.num_gates, axis=1)  # (B, G*H) -> G x (B, H)
        c = f * c_prev + (oi[1] if self.pooling == "ifo" else 1.0 - f) * z
        h = c if self.pooling == "f" else oi[0] * c
        return h, (c,), (z, f, oi, c_prev, c)

    def _step_backward(self, dy, dstate, cache, p):
        z, f, oi, c_prev, c = cache
        dc = dstate[0] + (dy if self.pooling == "f" else dy * oi[0])
        if self.pooling == "ifo":
            d = [dc * oi[1], dc * c_prev, dy * c, dc * z]           # dz, df, do, di
        else:
            d = [dc * (1.0 - f), dc * (c_prev - z)] + ([dy * c] if self.pooling == "fo" else [])
        return np.concatenate(d, axis=1), (dc * f,), {}


# ---------------------------------------------------------------------------------------------
# SRU:  x~, a_f, a_r, x^ = W x, W_f x + b_f, W_r x + b_r, alpha * (x or W_hw x)
#   f = sigmoid(a_f + v_f c_prev), r = sigmoid(a_r + v_r c_prev)
#   c = f c_prev + (1 - f) x~,  h = r c + (1 - r) x^
# ---------------------------------------------------------------------------------------------

class SRU(_Recurrent):
    """SRU with ``weight_ih (3H or 4H, I)``, ``weight_c (2H,)``, ``bias (2H,)``; ``rescale``."""

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, bias=True,
                 *, rescale=False, seed=None):
        self.alpha = np.sqrt(3.0) if rescale else 1.0
        super().__init__(input_size, hidden_size, num_layers, bidirectional, bias, seed=seed)

    def _cell_param_shapes(self, in_size):
        H = self.hidden_size
        k = 3 if in_size == H else 4
        return ({"weight_ih": (k * H, in_size), "weight_c": (2 * H,)}
                | ({"bias": (2 * H,)} if self.bias else {}))

    def _project(self, x, p, keep, reverse):
        H = self.hidden_size
        u = _linear(x, p["weight_ih"])  # (T, B, 3H or 4H)
        fr = u[..., H:3 * H] + p["bias"] if "bias" in p else u[..., H:3 * H]
        x_hat = u[..., 3 * H:] if u.shape[2] == 4 * H else x
        return np.concatenate([u[..., :H], fr, self.alpha * x_hat], axis=2), x

    def _project_backward(self, dxp, x, p):
        H = self.hidden_size
        projected = p["weight_ih"].shape[0] == 4 * H
        du = dxp[..., :3 * H]  # d(W x), d(W_f x), d(W_r x) [, d(W_hw x) below]
        if projected:
            du = np.concatenate([du, self.alpha * dxp[..., 3 * H:]], axis=2)
        dx, dW, _ = _linear_backward(du, x, p["weight_ih"])
        if not projected:
            dx = dx + self.alpha * dxp[..., 3 * H:]
        grads = {"weight_ih": dW}
        if "bias" in p:
            grads["bias"] = dxp[..., H:3 * H].sum(axis=(0, 1))
        return dx, grads

    def _step(self, x, state, p):
        c_prev = state[0]
        x_tilde, a_f, a_r, x_hat = np.split(x, 4, axis=1)  # (B, 4H) -> 4 x (B, H)
        v_f, v_r = np.split(p["weight_c"], 2)
        f = _sigmoid(a_f + v_f * c_prev)
        r = _sigmoid(a_r + v_r * c_prev)
        c = f * c_prev + (1.0 - f) * x_tilde
        h = r * c + (1.0 - r) * x_hat
        return h, (c,), (x_tilde, x_hat, f, r, c_prev, c)

    def _step_backward(self, dy, dstate, cache, p):
        x_tilde, x_hat, f, r, c_prev, c = cache
        v_f, v_r = np.split(p["weight_c"], 2)
        dc = dstate[0] + dy * r                      # h = r c + (1 - r) x^
        da_r = dy * (c - x_hat) * r * (1.0 - r)
        da_f = dc * (c_prev - x_tilde) * f * (1.0 - f)   # c = f c_prev + (1 - f) x~
        dc_prev = dc * f + da_f * v_f + da_r * v_r
        dx = np.concatenate([dc * (1.0 - f), da_f, da_r, dy * (1.0 - r)], axis=1)
        dv = np.concatenate([(da_f * c_prev).sum(axis=0), (da_r * c_prev).sum(axis=0)])
        return dx, (dc_prev,), {"weight_c": dv}


# ---------------------------------------------------------------------------------------------
# minGRU:  z = sigmoid(k_z), h~ = g(k_h), h = (1 - z) h_prev + z h~
# minLSTM: f, i = sigmoid(k_f, k_i), f' = f/(f+i), i' = i/(f+i), h = f' h_prev + i' g(k_h)
# with g(k) = k + 1/2 (k >= 0) or sigmoid(k) (k < 0), so g'(k) = 1 or s (1 - s)
# ---------------------------------------------------------------------------------------------

def _g(k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``g(k)`` and ``g'(k)``."""
    s = _sigmoid(k)
    return np.where(k >= 0, k + 0.5, s), np.where(k >= 0, 1.0, s * (1.0 - s))


class MinGRU(_Linear):
    """minGRU, sequential form: ``weight_ih (2H, I)`` (blocks z, h), ``bias (2H,)``."""

    num_gates = 2

    def _step(self, x, state, p):
        h_prev = state[0]
        k_z, k_h = np.split(x, 2, axis=1)  # (B, 2H) -> 2 x (B, H)
        z = _sigmoid(k_z)
        h_tilde, dg = _g(k_h)
        h = (1.0 - z) * h_prev + z * h_tilde
        return h, (h,), (z, h_tilde, dg, h_prev)

    def _step_backward(self, dy, dstate, cache, p):
        z, h_tilde, dg, h_prev = cache
        dh = dy + dstate[0]
        dk_z = dh * (h_tilde - h_prev) * z * (1.0 - z)
        dk_h = dh * z * dg
        return np.concatenate([dk_z, dk_h], axis=1), (dh * (1.0 - z),), {}


class MinLSTM(_Linear):
    """minLSTM, sequential form: ``weight_ih (3H, I)`` (blocks f, i, h), ``bias (3H,)``."""

    num_gates = 3

    def _step(self, x, state, p):
        h_prev = state[0]
        k_f, k_i, k_h = np.split(x, 3, axis=1)  # (B, 3H) -> 3 x (B, H)
        f, i = _sigmoid(k_f), _sigmoid(k_i)
        f_n, i_n = f / (f + i), i / (f + i)
        h_tilde, dg = _g(k_h)
        h = f_n * h_prev + i_n * h_tilde
        return h, (h,), (f, i, f_n, i_n, h_tilde, dg, h_prev)

    def _step_backward(self, dy, dstate, cache, p):
        f, i, f_n, i_n, h_tilde, dg, h_prev = cache
        dh = dy + dstate[0]
        df_n, di_n = dh * h_prev, dh * h_tilde
        s2 = (f + i) ** 2               # d f'/d f = i/s^2, d i'/d f = -i/s^2, and alike for i
        df = (df_n - di_n) * i / s2
        di = (di_n - df_n) * f / s2
        dk = [df * f * (1.0 - f), di * i * (1.0 - i), dh * i_n * dg]
        return np.concatenate(dk, axis=1), (dh * f_n,), {}


# ---------------------------------------------------------------------------------------------
# Layer normalisation of the last axis, with a gain (and a bias):
#   n = (v - mean(v)) / s,  s = sqrt(var(v) + eps),  LN(v) = gain * n + bias
# backward: dn = dLN * gain;  dv = (dn - mean(dn) - n * mean(dn * n)) / s
# ---------------------------------------------------------------------------------------------

def _ln(v, gain, bias, eps):
    s = np.sqrt(v.var(axis=-1, keepdims=True) + eps)
    n = (v - v.mean(axis=-1, keepdims=True)) / s
    return (gain * n if bias is None else gain * n + bias), (n, s)


def _ln_backward(d, cache, gain):
    """dL/dLN(v) -> (dL/dv, d gain, d bias), the parameter gradients summed over batch axes."""
    n, s = cache
    dn = d * gain
    dv = (dn - dn.mean(axis=-1, keepdims=True) - n * (dn * n).mean(axis=-1, keepdims=True)) / s
    axes = tuple(range(d.ndim - 1))
    return dv, (d * n).sum(axis=axes), d.sum(axis=axes)


class _LayerNorm(_Recurrent):
    """LayerNorm-LSTM/GRU: ``xp = LN(x W_ih^T; ln_ih_weight, bias_ih)``; the recurrent part
    ``LN(h W_hh^T; ln_hh_weight, bias_hh)`` (see ``rnnkit.cells.layernorm``)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, bias=True,
                 *, eps=1e-5, seed=None):
        self.eps = eps
        super().__init__(input_size, hidden_size, num_layers, bidirectional, bias, seed=seed)

    def _cell_param_shapes(self, in_size):
        G, H = self.num_gates * self.hidden_size, self.hidden_size
        shapes = {"weight_ih": (G, in_size), "weight_hh": (G, H)}
        if self.bias:
            shapes.update(bias_ih=(G,), bias_hh=(G,))
        return shapes | {"ln_ih_weight": (G,), "ln_hh_weight": (G,)}

    def _project(self, x, p, keep, reverse):
        xp, ln_cache = _ln(_linear(x, p["weight_ih"]), p["ln_ih_weight"], p.get("bias_ih"),
                           self.eps)
        return xp, (x, ln_cache)

    def _project_backward(self, dxp, cache, p):
        x, ln_cache = cache
        du, d_gain, d_bias = _ln_backward(dxp, ln_cache, p["ln_ih_weight"])
        dx, dW, _ = _linear_backward(du, x, p["weight_ih"])
        grads = {"weight_ih": dW, "ln_ih_weight": d_gain}
        return dx, grads | ({"bias_ih": d_bias} if "bias_ih" in p else {})

    def _recurrent(self, h_prev, p):
        return _ln(h_prev @ p["weight_hh"].T, p["ln_hh_weight"], p.get("bias_hh"), self.eps)

    def _recurrent_backward(self, dgh, ln_cache, h_prev, p):
        """Back through ``LN(h W_hh^T)``: returns ``dh_prev`` and the parameter gradients."""
        dv, d_gain, d_bias = _ln_backward(dgh, ln_cache, p["ln_hh_weight"])
        grads = {"weight_hh": dv.T @ h_prev, "ln_hh_weight": d_gain}
        return dv @ p["weight_hh"], grads | ({"bias_hh": d_bias} if "bias_hh" in p else {})


class LayerNormLSTM(_LayerNorm):
    """LayerNorm-LSTM (gates i, f, g, o; ``h_t = o * tanh(LN(c_t))``); state ``(h, c)``."""

    num_gates, num_states = 4, 2

    def _state_sizes(self):
        return (self.hidden_size, self.hidden_size)

    def _cell_param_shapes(self, in_size):
        H = self.hidden_size
        return super()._cell_param_shapes(in_size) | {"ln_c_weight": (H,)} | (
            {"ln_c_bias": (H,)} if self.bias else {})

    def _step(self, x, state, p):
        h_prev, c_prev = state
        gh, ln_h = self._recurrent(h_prev, p)
        a_i, a_f, a_g, a_o = np.split(x + gh, 4, axis=1)  # (B, 4H) -> 4 x (B, H)
        i, f, g, o = _sigmoid(a_i), _sigmoid(a_f), np.tanh(a_g), _sigmoid(a_o)
        c = f * c_prev + i * g
        c_hat, ln_c = _ln(c, p["ln_c_weight"], p.get("ln_c_bias"), self.eps)
        tanh_c = np.tanh(c_hat)
        h = o * tanh_c
        return h, (h, c), (h_prev, c_prev, i, f, g, o, tanh_c, ln_h, ln_c)

    def _step_backward(self, dy, dstate, cache, p):
        h_prev, c_prev, i, f, g, o, tanh_c, ln_h, ln_c = cache
        dh = dy + dstate[0]
        dc_hat = dh * o * (1.0 - tanh_c**2)
        dc, d_gain_c, d_bias_c = _ln_backward(dc_hat, ln_c, p["ln_c_weight"])
        dc = dc + dstate[1]
        da = np.concatenate([dc * g * i * (1.0 - i), dc * c_prev * f * (1.0 - f),
                             dc * i * (1.0 - g**2), dh * tanh_c * o * (1.0 - o)], axis=1)
        dh_prev, grads = self._recurrent_backward(da, ln_h, h_prev, p)
        grads["ln_c_weight"] = d_gain_c
        if "ln_c_bias" in p:
            grads["ln_c_bias"] = d_bias_c
        return da, (dh_prev, dc * f), grads


class LayerNormGRU(_LayerNorm):
    """LayerNorm-GRU (torch's form, gates r, z, n); state ``(h,)``."""

    num_gates = 3

    def _step(self, x, state, p):
        h_prev = state[0]
        gh, ln_h = self._recurrent(h_prev, p)
        gi_r, gi_z, gi_n = np.split(x, 3, axis=1)  # (B, 3H) -> 3 x (B, H)
        gh_r, gh_z, gh_n = np.split(gh, 3, axis=1)
        r, z = _sigmoid(gi_r + gh_r), _sigmoid(gi_z + gh_z)
        n = np.tanh(gi_n + r * gh_n)
        h = (1.0 - z) * n + z * h_prev
        return h, (h,), (h_prev, r, z, n, gh_n, ln_h)

    def _step_backward(self, dy, dstate, cache, p):
        h_prev, r, z, n, gh_n, ln_h = cache
        dh = dy + dstate[0]
        da_n = dh * (1.0 - z) * (1.0 - n**2)
        da_r = da_n * gh_n * r * (1.0 - r)
        da_z = dh * (h_prev - n) * z * (1.0 - z)
        dgh = np.concatenate([da_r, da_z, da_n * r], axis=1)  # 3 x (B, H) -> (B, 3H)
        dh_prev, grads = self._recurrent_backward(dgh, ln_h, h_prev, p)
        return np.concatenate([da_r, da_z, da_n], axis=1), (dh * z + dh_prev,), grads
