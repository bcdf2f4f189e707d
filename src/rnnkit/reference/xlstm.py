"""NumPy reference sLSTM and mLSTM (Beck et al. 2024, "xLSTM"), with explicit BPTT.

The oracle for ``rnnkit.cells.xlstm``: the same equations, parameter names and shapes
(``state_dict``s load both ways), float64, on the stacking/bidirectional/lengths/BPTT driver of
``rnnkit.reference.layers``. ``_project`` is the input GEMM ``xp = x W^T + b`` for all T
steps; ``_step`` one step of the recurrence; ``_step_backward`` the chain rule back through it.

Both cells share the stabilised exponential gates (``lf = log sigmoid(f~)``, or ``f~`` with
``forget="exp"``; ``i~`` the input gate's pre-activation):

    a = lf + m_prev;   m = max(a, i~);   i' = exp(i~ - m);   f' = exp(a - m)
    backward, given di', df', dm (from the step and from the next step's m):
      dm~ = dm - di' i' - df' f';     w = [a > i~] + 1/2 [a == i~]    (torch.maximum's rule)
      da = df' f' + w dm~;   di~ = di' i' + (1 - w) dm~;   dm_prev = da
      df~ = da sigmoid(-f~)  (sigmoid forget)   or  da  ("exp")

sLSTM, per step (R applied per gate block k and head j: ``h_j @ weight_hh[k, j].T``):

    g = xp + R h_prev;   z, i~, f~, o~ = split(g, 4);   z = tanh(z~), o = sigmoid(o~)
    c = f' c_prev + i' z;   n = f' n_prev + i';   h = o c / n
    backward, dh = dy + dh_next (h is output and state):
      do = dh c / n;   dc = dc_next + dh o / n;   dn = dn_next - dh o c / n^2
      dz = dc i';   di' = dc z + dn;   df' = dc c_prev + dn n_prev
      dg = [dz (1 - z^2), di~, df~, do o (1 - o)]
      dR[k, j] = sum_B dg[k, j]^T h_prev[j];   dh_prev[j] = sum_k dg[k, j] R[k, j]
      dc_prev = f' dc;   dn_prev = f' dn

mLSTM, per step and head (q, k, v (d,), k scaled by 1/sqrt(d); i~, f~, m scalars per head):

    C = f' C_prev + i' v k^T;   n = f' n_prev + i' k;   s = n . q;   e = exp(-m)
    den = max(|s|, e);   h~ = C q / den;   h = sigmoid(o~) h~
    backward, dh = dy (the output is not a state):
      do~ = dh h~ o (1 - o);   dh~ = dh o;   dden = -(dh~ . h~) / den
      u = [|s| > e] + 1/2 [|s| == e];   ds = dden u sign(s);   dm += -dden (1 - u) e
      dC = dC_next + (dh~ / den) q^T;   dn = dn_next + ds q;   dq = C^T dh~ / den + ds n
      df' = <dC, C_prev> + dn . n_prev;   di' = v^T dC k + dn . k
      dv = i' dC k;   dk = (i' (dC^T v + dn)) / sqrt(d);   dC_prev = f' dC;   dn_prev = f' dn

The driver names the gradients of the first two initial states "h0" and "c0" only; these
classes return one per state: ``"h0", "c0", "n0", "m0"`` (sLSTM) and ``"C0", "n0", "m0"``
(mLSTM). ``h0``/``h_n`` are tuples of (D*L, B, size) arrays in the state's order.

Legend: T time, B batch, I input size (of this layer: 2H above a bidirectional layer), H hidden
size (the output), nh heads, d = H / nh, D directions, L layers.

>>> import numpy as np
>>> from rnnkit.reference import xlstm
>>> net = xlstm.SLSTM(3, 4, num_layers=2, bidirectional=True, num_heads=2, seed=0)
>>> out, (h, c, n, m) = net.forward(np.ones((5, 2, 3)), lengths=[5, 2])
>>> grads = net.backward(np.ones_like(out))
>>> out.shape, m.shape, grads["weight_hh_l1_reverse"].shape, list(grads)[-5:]
((5, 2, 8), (4, 2, 4), (4, 2, 2, 2), ['input', 'h0', 'c0', 'n0', 'm0'])
>>> mnet = xlstm.MLSTM(3, 4, bidirectional=True, num_heads=2, seed=0)
>>> out, (C, n, m) = mnet.forward(np.ones((5, 2, 3)), lengths=[5, 2])
>>> out.shape, C.shape, m.shape, mnet.backward(np.ones_like(out))["C0"].shape
((5, 2, 8), (2, 2, 8), (2, 2, 2), (2, 2, 8))
"""
from __future__ import annotations

import numpy as np

from .cells import _sigmoid
from .layers import _check_size, _shape_error
from .zoo import _Linear

__all__ = ["SLSTM", "MLSTM"]

FORGET = ("sigmoid", "exp")


def _max_weight(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """d max(a, b) / da as torch.maximum has it: 1 where a > b, 1/2 at a tie, else 0."""
    return np.where(a > b, 1.0, np.where(a == b, 0.5, 0.0))


class _XLSTM(_Linear):
    """Shared by SLSTM and MLSTM: options, gates, initialisation, one gradient per state."""

    state_names: tuple[str, ...]

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, bias=True,
                 *, num_heads=1, forget="sigmoid", seed=None):
        H, nh = _check_size("hidden_size", hidden_size), _check_size("num_heads", num_heads)
        if H % nh:
            raise ValueError(f"num_heads: expected a divisor of hidden_size={H}, got {nh}")
        if forget not in FORGET:
            raise ValueError(f"forget: expected one of {FORGET}, got {forget!r}")
        self.num_heads, self.head_size, self.forget = nh, H // nh, forget
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        super().__init__(input_size, hidden_size, num_layers, bidirectional, bias, seed=rng)
        for idx in range(self.num_layers * self.num_directions):  # nn.Linear's init, and
            p = self._cell_params(idx // self.num_directions, idx % self.num_directions)
            for name, w in p.items():  # weight_hh U(+-1/sqrt(d)); views: set in place
                fan_in = self.head_size if name == "weight_hh" else p["weight_ih"].shape[1]
                w[...] = rng.uniform(-1.0, 1.0, size=w.shape) / np.sqrt(fan_in)

    # -- gates ---------------------------------------------------------------------------------

    def _gates(self, i_, f_, m_prev):
        """``i~, f~, m_prev -> i', f', m, a`` (a = lf + m_prev), all of one shape."""
        lf = -np.logaddexp(0.0, -f_) if self.forget == "sigmoid" else f_  # log sigmoid, stably
        a = lf + m_prev
        m = np.maximum(a, i_)
        return np.exp(i_ - m), np.exp(a - m), m, a

    def _gates_backward(self, dip, dfp, dm, ip, fp, a, i_, f_):
        """``di', df', dm -> di~, df~, dm_prev`` (see the module docstring)."""
        dm = dm - dip * ip - dfp * fp
        w = _max_weight(a, i_)
        da = dfp * fp + w * dm
        di = dip * ip + (1.0 - w) * dm
        df = da * _sigmoid(-f_) if self.forget == "sigmoid" else da
        return di, df, da

    # -- states: names, checks, and a gradient for each ----------------------------------------

    def _as_states(self, name, value, B):
        DL, sizes = self.num_directions * self.num_layers, self._state_sizes()
        if value is None:
            value = (None,) * self.num_states
        if not (isinstance(value, (tuple, list)) and len(value) == self.num_states):
            raise ValueError(f"{name}: expected a tuple ({', '.join(self.state_names)}) of "
                             f"(D*num_layers, B, size) arrays, got {type(value).__name__}")
        states = []
        for j, (part, size) in enumerate(zip(value, sizes)):
            part = np.zeros((DL, B, size)) if part is None else np.asarray(part, np.float64)
            if part.shape != (DL, B, size):
                raise _shape_error(f"{name}[{j}] ({self.state_names[j]})", part.shape,
                                   (DL, B, size), f"(D*num_layers, B, {size})")
            states.append(part)
        return tuple(states)

    def _backprop_direction(self, dy, dstate, caches, p, keep, reverse):
        dx, dstate0, grads = super()._backprop_direction(dy, dstate, caches, p, keep, reverse)
        self._d_states0[id(p["weight_ih"])] = dstate0  # the driver keeps only two of them
        return dx, dstate0, grads

    def backward(self, d_output, d_h_n=None):
        """As the driver's, with the gradient of every initial state: ``state_names[i] + "0"``."""
        self._d_states0 = {}
        grads = super().backward(d_output, d_h_n)
        grads.pop("h0")
        grads.pop("c0", None)  # sLSTM: the driver's c0 is none of its states
        D, B = self.num_directions, self._tape["B"]
        for i, (name, size) in enumerate(zip(self.state_names, self._state_sizes())):
            g = np.zeros((D * self.num_layers, B, size))
            for idx in range(D * self.num_layers):
                g[idx] = self._d_states0[id(self._cell_params(idx // D, idx % D)["weight_ih"])][i]
            grads[name + "0"] = g
        return grads

    def _extra_repr(self):
        out = super()._extra_repr()
        if self.num_heads != 1:
            out["num_heads"] = self.num_heads
        return out | ({"forget": self.forget} if self.forget != "sigmoid" else {})


class SLSTM(_XLSTM):
    """sLSTM: ``weight_ih (4H, I)`` (blocks z, i, f, o), ``weight_hh (4, nh, d, d)`` (the
    block-diagonal R per gate and head), ``bias (4H,)``; state ``(h, c, n, m)``, output ``h``."""

    num_gates, num_states = 4, 4
    state_names = ("h", "c", "n", "m")

    def _cell_param_shapes(self, in_size):
        H, nh, d = self.hidden_size, self.num_heads, self.head_size
        shapes = {"weight_ih": (4 * H, in_size), "weight_hh": (4, nh, d, d)}
        return shapes | ({"bias": (4 * H,)} if self.bias else {})

    def _state_sizes(self):
        return (self.hidden_size,) * 4

    def _step(self, x, state, p):
        h_prev, c_prev, n_prev, m_prev = state
        B, H, nh, d = x.shape[0], self.hidden_size, self.num_heads, self.head_size
        hj = h_prev.reshape(B, nh, d)  # (B, H) -> (B, nh, d)
        g = x + np.einsum("bjd,kjed->bkje", hj, p["weight_hh"]).reshape(B, 4 * H)  # (B, 4H)
        z_, i_, f_, o_ = np.split(g, 4, axis=1)  # 4 x (B, H)
        z, o = np.tanh(z_), _sigmoid(o_)
        ip, fp, m, a = self._gates(i_, f_, m_prev)
        c = fp * c_prev + ip * z
        n = fp * n_prev + ip
        h = o * c / n
        return h, (h, c, n, m), (hj, c_prev, n_prev, z, o, i_, f_, ip, fp, a, c, n)

    def _step_backward(self, dy, dstate, cache, p):
        hj, c_prev, n_prev, z, o, i_, f_, ip, fp, a, c, n = cache
        B, nh, d = hj.shape
        dh = dy + dstate[0]
        do = dh * c / n
        dc = dstate[1] + dh * o / n
        dn = dstate[2] - dh * o * c / n ** 2
        di, df, dm_prev = self._gates_backward(dc * z + dn, dc * c_prev + dn * n_prev,
                                               dstate[3], ip, fp, a, i_, f_)
        dg = np.concatenate([dc * ip * (1.0 - z * z), di, df, do * o * (1.0 - o)], axis=1)
        dgj = dg.reshape(B, 4, nh, d)  # (B, 4H) -> (B, 4, nh, d)
        dR = np.einsum("bkje,bjd->kjed", dgj, hj)
        dh_prev = np.einsum("bkje,kjed->bjd", dgj, p["weight_hh"]).reshape(B, nh * d)
        return dg, (dh_prev, dc * fp, dn * fp, dm_prev), {"weight_hh": dR}


class MLSTM(_XLSTM):
    """mLSTM: ``weight_ih (4H + 2 nh, I)`` (blocks q, k, v (H), i~, f~ (nh), o (H)), ``bias``
    as long; state ``(C (B, nh*d*d), n (B, H), m (B, nh))``, output ``h`` (B, H)."""

    num_states = 3
    state_names = ("C", "n", "m")

    def _cell_param_shapes(self, in_size):
        G = 4 * self.hidden_size + 2 * self.num_heads
        return {"weight_ih": (G, in_size)} | ({"bias": (G,)} if self.bias else {})

    def _state_sizes(self):
        nh, d = self.num_heads, self.head_size
        return (nh * d * d, self.hidden_size, nh)

    def _step(self, x, state, p):
        B, H, nh, d = x.shape[0], self.hidden_size, self.num_heads, self.head_size
        q, k, v, i_, f_, o_ = np.split(x, [H, 2 * H, 3 * H, 3 * H + nh, 3 * H + 2 * nh], axis=1)
        q, k, v = (t.reshape(B, nh, d) for t in (q, k, v))  # (B, H) -> (B, nh, d)
        k = k / np.sqrt(d)
        C_prev, n_prev = state[0].reshape(B, nh, d, d), state[1].reshape(B, nh, d)
        ip, fp, m, a = self._gates(i_, f_, state[2])  # (B, nh)
        C = fp[..., None, None] * C_prev + ip[..., None, None] * v[..., :, None] * k[..., None, :]
        n = fp[..., None] * n_prev + ip[..., None] * k
        s, e = np.sum(n * q, axis=-1), np.exp(-m)  # (B, nh)
        den = np.maximum(np.abs(s), e)
        ht = np.einsum("bjef,bjf->bje", C, q) / den[..., None]  # (B, nh, d)
        o = _sigmoid(o_)
        h = o * ht.reshape(B, H)
        cache = (q, k, v, i_, f_, o, ip, fp, a, C_prev, n_prev, C, n, ht, s, e, den)
        return h, (C.reshape(B, nh * d * d), n.reshape(B, H), m), cache

    def _step_backward(self, dy, dstate, cache, p):
        q, k, v, i_, f_, o, ip, fp, a, C_prev, n_prev, C, n, ht, s, e, den = cache
        B, nh, d = q.shape
        do = dy * ht.reshape(B, nh * d) * o * (1.0 - o)
        dht = (dy * o).reshape(B, nh, d)
        dden = -np.sum(dht * ht, axis=-1) / den  # (B, nh)
        u = _max_weight(np.abs(s), e)
        ds = dden * u * np.sign(s)
        dm = dstate[2] - dden * (1.0 - u) * e
        dnum = dht / den[..., None]
        dC = dstate[0].reshape(B, nh, d, d) + dnum[..., :, None] * q[..., None, :]
        dn = dstate[1].reshape(B, nh, d) + ds[..., None] * q
        dq = np.einsum("bjef,bje->bjf", C, dnum) + ds[..., None] * n
        dfp = np.sum(dC * C_prev, axis=(-2, -1)) + np.sum(dn * n_prev, axis=-1)
        dip = np.einsum("bjef,bje,bjf->bj", dC, v, k) + np.sum(dn * k, axis=-1)
        dv = ip[..., None] * np.einsum("bjef,bjf->bje", dC, k)
        dk = ip[..., None] * (np.einsum("bjef,bje->bjf", dC, v) + dn) / np.sqrt(d)
        di, df, dm_prev = self._gates_backward(dip, dfp, dm, ip, fp, a, i_, f_)
        dx = np.concatenate([t.reshape(B, nh * d) for t in (dq, dk, dv)] + [di, df, do], axis=1)
        d_prev = ((fp[..., None, None] * dC).reshape(B, nh * d * d),
                  (fp[..., None] * dn).reshape(B, nh * d), dm_prev)
        return dx, d_prev, {}
