"""One time step of each reference cell, forward and hand-derived backward, in NumPy.

Row-vector convention, as torch.nn: ``x (B, I)``, ``h (B, H_out)``, ``c (B, H)``; a weight
``W (G*H, I)`` acts as ``x @ W.T``, so torch's parameter arrays plug in unchanged. Gates are
stacked along the first weight axis in torch's order (LSTM i, f, g, o; GRU r, z, n).

Each cell has two functions:

* ``<cell>_step(x, state..., p) -> (new state..., cache)``: the forward equations; ``cache``
  keeps what the backward needs (the step's inputs, gates and activations).
* ``<cell>_step_backward(d..., cache, p) -> (dx, d state..., grads)``: the same equations read
  backwards with the chain rule. ``d<name>`` always means dLoss/d<name>. ``grads`` holds this
  step's share of the parameter gradients, keyed like ``p``; the layer sums them over time.

``p`` maps ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh`` (absent when ``bias=False``)
and, for a projected LSTM, ``weight_hr`` to arrays. Derivatives used throughout:
``sigmoid' = s * (1 - s)``, ``tanh' = 1 - t**2``, ``relu' = [a > 0]``.

Legend: B batch, I input size, H hidden size, H_out = P (LSTM proj_size) or H, G gates.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "rnn_step", "rnn_step_backward",
    "lstm_step", "lstm_step_backward",
    "gru_step", "gru_step_backward",
]


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * a))  # = 1 / (1 + exp(-a)), without overflow warnings


def _affine(v: np.ndarray, W: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    return v @ W.T if b is None else v @ W.T + b


def _preactivation(x: np.ndarray, h_prev: np.ndarray, p: dict) -> np.ndarray:
    """``a = x @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh``, shape (B, G*H)."""
    return (_affine(x, p["weight_ih"], p.get("bias_ih"))
            + _affine(h_prev, p["weight_hh"], p.get("bias_hh")))


def _preactivation_backward(da: np.ndarray, x: np.ndarray, h_prev: np.ndarray, p: dict) -> tuple:
    """Backward of ``_preactivation`` given ``da (B, G*H)``: ``(dx, dh_prev, grads)``."""
    grads = {"weight_ih": da.T @ x, "weight_hh": da.T @ h_prev}
    if "bias_ih" in p:
        grads["bias_ih"] = da.sum(axis=0)
        grads["bias_hh"] = da.sum(axis=0)
    dx = da @ p["weight_ih"]
    dh_prev = da @ p["weight_hh"]
    return dx, dh_prev, grads


# ---------------------------------------------------------------------------------------------
# Vanilla RNN (Elman)
#
#     a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
#     h_t = act(a_t),        act = tanh or relu
#
# backward:  da = dh * act'(a);  dW_ih = da^T x;  dW_hh = da^T h_{t-1};  db = sum_B da;
#            dx = da W_ih;  dh_{t-1} = da W_hh
# ---------------------------------------------------------------------------------------------

def rnn_step(x: np.ndarray, h_prev: np.ndarray, p: dict, nonlinearity: str = "tanh") -> tuple:
    """``h = act(x W_ih^T + b_ih + h_prev W_hh^T + b_hh)``; returns ``(h, cache)``."""
    a = _preactivation(x, h_prev, p)
    h = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0.0)
    return h, {"x": x, "h_prev": h_prev, "a": a, "h": h}


def rnn_step_backward(dh: np.ndarray, cache: dict, p: dict, nonlinearity: str = "tanh") -> tuple:
    """Given ``dh = dL/dh (B, H)``, return ``(dx, dh_prev, grads)``."""
    if nonlinearity == "tanh":
        da = dh * (1.0 - cache["h"] ** 2)
    else:
        da = dh * (cache["a"] > 0)
    return _preactivation_backward(da, cache["x"], cache["h_prev"], p)


# ---------------------------------------------------------------------------------------------
# LSTM (Hochreiter & Schmidhuber 1997, with forget gate; projection of Sak et al. 2014)
#
#     a = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh           (4H: a_i, a_f, a_g, a_o)
#     i = sigmoid(a_i)   f = sigmoid(a_f)   g = tanh(a_g)   o = sigmoid(a_o)
#     c_t = f * c_{t-1} + i * g
#     m   = o * tanh(c_t)                                  (H)
#     h_t = W_hr m   if proj_size > 0   else   m           (H_out)
# ---------------------------------------------------------------------------------------------

def lstm_step(x: np.ndarray, h_prev: np.ndarray, c_prev: np.ndarray, p: dict) -> tuple:
    """One LSTM step; returns ``(h, c, cache)``."""
    a = _preactivation(x, h_prev, p)
    a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)  # (B, 4H) -> 4 x (B, H)
    i, f, g, o = _sigmoid(a_i), _sigmoid(a_f), np.tanh(a_g), _sigmoid(a_o)
    c = f * c_prev + i * g
    tanh_c = np.tanh(c)
    m = o * tanh_c
    h = m @ p["weight_hr"].T if "weight_hr" in p else m
    cache = {"x": x, "h_prev": h_prev, "c_prev": c_prev,
             "i": i, "f": f, "g": g, "o": o, "tanh_c": tanh_c, "m": m}
    return h, c, cache


def lstm_step_backward(dh: np.ndarray, dc_next: np.ndarray, cache: dict, p: dict) -> tuple:
    """Backward of one LSTM step.

    ``dh (B, H_out)`` is dL/dh_t (output and later steps); ``dc_next (B, H)`` is the gradient
    that reaches c_t directly from step t+1 (through ``c_{t+1} = f * c_t + ...``).
    Returns ``(dx, dh_prev, dc_prev, grads)``.
    """
    x, h_prev, c_prev = cache["x"], cache["h_prev"], cache["c_prev"]
    i, f, g, o, tanh_c, m = (cache[k] for k in ("i", "f", "g", "o", "tanh_c", "m"))
    grads = {}
    if "weight_hr" in p:                      # h = m W_hr^T
        grads["weight_hr"] = dh.T @ m
        dm = dh @ p["weight_hr"]
    else:                                     # h = m
        dm = dh
    do = dm * tanh_c                          # m = o * tanh(c)
    dc = dm * o * (1.0 - tanh_c**2) + dc_next
    di = dc * g                               # c = f * c_prev + i * g
    dg = dc * i
    df = dc * c_prev
    dc_prev = dc * f
    da_i = di * i * (1.0 - i)                 # back through the gate nonlinearities
    da_f = df * f * (1.0 - f)
    da_g = dg * (1.0 - g**2)
    da_o = do * o * (1.0 - o)
    da = np.concatenate([da_i, da_f, da_g, da_o], axis=1)  # 4 x (B, H) -> (B, 4H)
    dx, dh_prev, affine_grads = _preactivation_backward(da, x, h_prev, p)
    grads.update(affine_grads)
    return dx, dh_prev, dc_prev, grads


# ---------------------------------------------------------------------------------------------
# GRU (Cho et al. 2014); W_hh stacks W_hr, W_hz, W_hn and b_hh stacks b_hr, b_hz, b_hn.
#
#     r = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
#     z = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
#     n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))     reset_after=True (torch.nn.GRU)
#     n = tanh(W_in x_t + b_in + W_hn (r * h_{t-1}) + b_hn)     reset_after=False (Cho et al.)
#     h_t = (1 - z) * n + z * h_{t-1}
# ---------------------------------------------------------------------------------------------

def gru_step(x: np.ndarray, h_prev: np.ndarray, p: dict, reset_after: bool = True) -> tuple:
    """One GRU step; returns ``(h, cache)``."""
    W_hr, W_hz, W_hn = np.split(p["weight_hh"], 3, axis=0)  # (3H, H) -> 3 x (H, H)
    b_ih, b_hh = p.get("bias_ih"), p.get("bias_hh")
    b_hr, b_hz, b_hn = (None, None, None) if b_hh is None else np.split(b_hh, 3)
    gi = _affine(x, p["weight_ih"], b_ih)
    gi_r, gi_z, gi_n = np.split(gi, 3, axis=1)  # (B, 3H) -> 3 x (B, H)
    r = _sigmoid(gi_r + _affine(h_prev, W_hr, b_hr))
    z = _sigmoid(gi_z + _affine(h_prev, W_hz, b_hz))
    if reset_after:
        rh = None
        gh_n = _affine(h_prev, W_hn, b_hn)    # W_hn h + b_hn
        n = np.tanh(gi_n + r * gh_n)
    else:
        rh = r * h_prev
        gh_n = _affine(rh, W_hn, b_hn)        # W_hn (r * h) + b_hn
        n = np.tanh(gi_n + gh_n)
    h = (1.0 - z) * n + z * h_prev
    cache = {"x": x, "h_prev": h_prev, "r": r, "z": z, "n": n, "gh_n": gh_n, "rh": rh}
    return h, cache


def gru_step_backward(dh: np.ndarray, cache: dict, p: dict, reset_after: bool = True) -> tuple:
    """Given ``dh = dL/dh_t (B, H)``, return ``(dx, dh_prev, grads)``."""
    x, h_prev, r, z, n, gh_n, rh = (cache[k] for k in ("x", "h_prev", "r", "z", "n", "gh_n", "rh"))
    W_hr, W_hz, W_hn = np.split(p["weight_hh"], 3, axis=0)  # (3H, H) -> 3 x (H, H)
    # h = (1 - z) * n + z * h_prev
    dn = dh * (1.0 - z)
    dz = dh * (h_prev - n)
    dh_prev = dh * z
    # n = tanh(gi_n + r * gh_n)   or   n = tanh(gi_n + gh_n),  gh_n = W_hn (r * h_prev) + b_hn
    da_n = dn * (1.0 - n**2)
    dgi_n = da_n
    if reset_after:
        dgh_n = da_n * r
        dr = da_n * gh_n
    else:
        dgh_n = da_n
        drh = dgh_n @ W_hn
        dr = drh * h_prev
        dh_prev = dh_prev + drh * r
    # r = sigmoid(gi_r + gh_r),  z = sigmoid(gi_z + gh_z)
    da_r = dr * r * (1.0 - r)
    da_z = dz * z * (1.0 - z)
    dgi = np.concatenate([da_r, da_z, dgi_n], axis=1)  # 3 x (B, H) -> (B, 3H)
    dgh = np.concatenate([da_r, da_z, dgh_n], axis=1)  # 3 x (B, H) -> (B, 3H)
    # gi = x W_ih^T + b_ih;  gh_r = h_prev W_hr^T + b_hr, gh_z likewise, gh_n as above
    dx = dgi @ p["weight_ih"]
    grads = {"weight_ih": dgi.T @ x}
    if reset_after:
        grads["weight_hh"] = dgh.T @ h_prev
        dh_prev = dh_prev + dgh @ p["weight_hh"]
    else:
        dW_hh = [da_r.T @ h_prev, da_z.T @ h_prev, dgh_n.T @ rh]  # rows of W_hr, W_hz, W_hn
        grads["weight_hh"] = np.concatenate(dW_hh, axis=0)  # 3 x (H, H) -> (3H, H)
        dh_prev = dh_prev + da_r @ W_hr + da_z @ W_hz
    if "bias_ih" in p:
        grads["bias_ih"] = dgi.sum(axis=0)
        grads["bias_hh"] = dgh.sum(axis=0)
    return dx, dh_prev, grads
