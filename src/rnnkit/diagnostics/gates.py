"""Gate activity: the gates, hidden and cell states of a recurrent layer over a sequence.

The gates are recomputed from what each step received (projected input ``x_t`` and state
``s_{t-1}``, recorded by :func:`~rnnkit.diagnostics._taps.tap_layers`) with the layer's
own weights, using the cell's equations::

    LSTM (also LayerNorm-LSTM, with LN on the recurrent term)
        [a_i, a_f, a_g, a_o] = x_t + W_hh h_{t-1} + b_hh
        i, f, o = sigmoid(a_i, a_f, a_o)      g = tanh(a_g)
    GRU (torch's reset-after form; Cho et al.'s with reset_after=False; LayerNorm-GRU)
        r = sigmoid(x_r + W_hr h + b_hr)   z = sigmoid(x_z + W_hz h + b_hz)
        n = tanh(x_n + r * (W_hn h + b_hn))
    minGRU: z = sigmoid(k_z)       minLSTM: f' = f / (f + i), i' = i / (f + i)
    RG-LRU: r = sigmoid(k_a)   i = sigmoid(k_x)   a = exp(-c r softplus(a_param))  (the decay)
    sLSTM: [g, i~, f~, o] = x_t + R h_{t-1};  g = tanh(.), o = sigmoid(.), f = sigmoid(f~)
        (with forget="sigmoid"), and the factors the stabilised state is updated with,
        i_stab = exp(i~ - m_t), f_stab = exp(log f + m_{t-1} - m_t), both in (0, 1]; f_stab is
        exactly 1 whenever the input gate is below the memory's scale, so it is no timescale
    mLSTM: f, i_stab, f_stab as the sLSTM's, one per head (B, heads); o = sigmoid(.)

Saturation statistics per gate (over steps inside each sequence's length and units)::

    sigmoid gates: frac_low = P(v < 0.05), frac_high = P(v > 0.95)
    tanh values (g, n, h): frac_saturated = P(|v| > 0.95)

A forget gate ``f`` near 1 keeps ``c`` (and its gradient, ``dc_t/dc_{t-1} = diag(f_t)``)
over about ``1 / (1 - f)`` steps; ``median_timescale = 1 / (1 - median(f))`` reports that
for ``f`` and for the GRU's ``z`` (which plays the same role: ``h_t = z h_{t-1} + (1 - z) n``),
and for the RG-LRU's decay ``a`` and the xLSTM cells' forget gate ``f``.

Shapes: ``T`` steps, ``H`` units; arrays returned per sequence are ``(T, H)``.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._taps import LayerTrace, direction, state_names, tap_layers

__all__ = ["gate_activity", "cell_gates", "saturation", "plot_gate_heatmaps", "SIGMOID_GATES"]

#: gates that are sigmoids (the rest, g and n, are tanh)
SIGMOID_GATES = ("i", "f", "o", "r", "z", "f'", "i'", "a")


def cell_gates(cell, x_t: Tensor, state: tuple[Tensor, ...],
               p: dict[str, Tensor]) -> dict[str, Tensor]:
    """Gate activations ``{name: (B, H)}`` of one step of ``cell`` ({} for gate-less cells)."""
    kind = type(cell).__name__
    h = state[0]
    if kind in ("LSTMCell", "LayerNormLSTMCell"):
        rec = cell._recurrent(h, p) if kind == "LayerNormLSTMCell" \
            else F.linear(h, p["weight_hh"], p.get("bias_hh"))
        a_i, a_f, a_g, a_o = (x_t + rec).chunk(4, dim=-1)
        return {"i": torch.sigmoid(a_i), "f": torch.sigmoid(a_f), "g": torch.tanh(a_g),
                "o": torch.sigmoid(a_o)}
    if kind in ("GRUCell", "LayerNormGRUCell"):
        H = cell.hidden_size
        x_r, x_z, x_n = x_t.split(H, dim=-1)
        if kind == "LayerNormGRUCell" or cell.reset_after:
            rec = cell._recurrent(h, p) if kind == "LayerNormGRUCell" \
                else F.linear(h, p["weight_hh"], p.get("bias_hh"))
            h_r, h_z, h_n = rec.split(H, dim=-1)
            r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
            return {"r": r, "z": z, "n": torch.tanh(x_n + r * h_n)}
        W, b = p["weight_hh"], p.get("bias_hh")
        h_r, h_z = F.linear(h, W[:2 * H], None if b is None else b[:2 * H]).split(H, dim=-1)
        r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + F.linear(r * h, W[2 * H:], None if b is None else b[2 * H:]))
        return {"r": r, "z": z, "n": n}
    if kind == "MinGRUCell":
        return {"z": torch.sigmoid(x_t.chunk(2, dim=-1)[0])}
    if kind == "MinLSTMCell":
        k_f, k_i, _ = x_t.chunk(3, dim=-1)
        f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
        return {"f'": f / (f + i), "i'": i / (f + i)}
    if kind == "RGLRUCell":
        k_a, k_x, _ = x_t.chunk(3, dim=-1)
        r = torch.sigmoid(k_a)
        return {"r": r, "i": torch.sigmoid(k_x),
                "a": torch.exp(-cell.c * r * F.softplus(p["a_param"]))}
    if kind in ("SLSTMCell", "MLSTMCell"):
        return _xlstm_gates(cell, kind, x_t, state, p)
    return {}


def _xlstm_gates(cell, kind: str, x_t: Tensor, state: tuple[Tensor, ...],
                 p: dict[str, Tensor]) -> dict[str, Tensor]:
    """The xLSTM cells' stabilised gates i', f' (and o, the sLSTM's g) of one step."""
    H, nh = cell.hidden_size, cell.num_heads
    if kind == "SLSTMCell":
        g_, i_, f_, o_ = (x_t + cell.recurrent(state[0], p["weight_hh"])).chunk(4, dim=-1)
        m_prev = state[3]
    else:
        i_, f_, o_ = x_t[..., 3 * H:3 * H + nh], x_t[..., 3 * H + nh:3 * H + 2 * nh], \
            x_t[..., 3 * H + 2 * nh:]
        m_prev = state[2]
    a = cell._log_f(f_) + m_prev
    m = torch.maximum(a, i_)
    out = {"i_stab": torch.exp(i_ - m), "f_stab": torch.exp(a - m), "o": torch.sigmoid(o_)}
    if cell.forget == "sigmoid":  # the forget gate itself: its timescale is 1 / (1 - f)
        out["f"] = torch.sigmoid(f_)
    return out | ({"g": torch.tanh(g_)} if kind == "SLSTMCell" else {})


def saturation(name: str, v: np.ndarray) -> dict[str, float]:
    """Mean and saturation fractions of the values ``v`` of gate or state ``name``."""
    v = np.asarray(v, dtype=np.float64)
    out = {"mean": float(v.mean()), "std": float(v.std())}
    if name in SIGMOID_GATES:
        out.update(frac_low=float((v < 0.05).mean()), frac_high=float((v > 0.95).mean()))
        if name in ("f", "z", "f'", "a"):
            out["median_timescale"] = float(1.0 / max(1.0 - np.median(v), 1e-6))
    else:
        out["frac_saturated"] = float((np.abs(v) > 0.95).mean())
    return out


@torch.no_grad()
def _trace_activity(tr: LayerTrace, l: int, d: int) -> dict[str, Tensor]:
    """Gates and states of layer l, direction d of one traced module, each (T, B, H)."""
    cell, p = tr.layer.cells[l], tr.layer._params(l, d)
    gates = [cell_gates(cell, x_t, s_prev, p) for x_t, s_prev, _ in tr.steps[l][d]]
    out = {}
    for name in gates[0] if gates else ():
        seq = torch.stack([g[name] for g in gates])  # (T, B, H) in step order
        out[name] = _align(seq, tr.lengths, d)
    for k, name in enumerate(state_names(cell)):
        out[name] = tr.time_aligned(l, d, k)
    return out


def _align(seq: Tensor, lengths: Tensor, d: int) -> Tensor:
    from rnnkit.kernels.loop import reverse_padded

    T = seq.shape[0]
    valid = (torch.arange(T)[:, None] < lengths[None, :]).unsqueeze(-1)  # (T, B, 1)
    seq = seq * valid.to(seq.device, seq.dtype)
    return reverse_padded(seq, lengths.to(seq.device)) if d == 1 else seq


def gate_activity(model: nn.Module, forward: Callable[[nn.Module], object],
                  sequence: int = 0) -> list[dict]:
    """Gates and states of every recurrent layer during ``forward(model)``.

    Returns one dict per (module, layer, direction): ``{"module", "layer", "direction",
    "cell", "length", "values": {name: (T_b, H) array for sequence ``sequence``},
    "stats": {name: saturation stats over all sequences and valid steps}}``.
    """
    with torch.no_grad(), tap_layers(model) as traces:
        forward(model)
    out = []
    for tr in traces:
        if not 0 <= sequence < len(tr.lengths):
            raise ValueError(f"sequence: {sequence} is not in the batch of {len(tr.lengths)}")
        n = int(tr.lengths[sequence])
        for l in range(len(tr.steps)):
            for d in range(len(tr.steps[l])):
                act = _trace_activity(tr, l, d)
                values = {k: v[:n, sequence].double().cpu().numpy() for k, v in act.items()}
                T = next(iter(act.values())).shape[0]
                valid = torch.arange(T)[:, None] < tr.lengths[None, :]  # (T, B)
                stats = {k: saturation(k, v.cpu()[valid].double().numpy()) for k, v in act.items()}
                out.append({"module": tr.name, "layer": l,
                            "direction": direction(tr.layer, d),
                            "cell": repr(tr.layer.cells[l]), "length": n, "values": values,
                            "stats": stats})
    return out


def plot_gate_heatmaps(activity: dict, path: str | Path, title: str = "",
                       max_units: int = 64, marks: list[int] | None = None) -> Path:
    """One heatmap per gate/state (units x time) for one entry of :func:`gate_activity`;
    the first ``max_units`` units are shown, ``marks`` are time steps drawn as dotted lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    values = activity["values"]
    names = list(values)
    fig, axes = plt.subplots(len(names), 1, figsize=(8, 1.9 * len(names) + 0.6), squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        v = values[name][:, :max_units].T  # (H, T): units on the y axis
        lo, hi = (0.0, 1.0) if name in SIGMOID_GATES else (-1.0, 1.0)
        if name == "c":
            m = max(float(np.abs(v).max()), 1e-6)
            lo, hi = -m, m
        im = ax.imshow(v, aspect="auto", interpolation="nearest", origin="lower",
                       cmap="viridis" if name in SIGMOID_GATES else "RdBu_r", vmin=lo, vmax=hi)
        st = activity["stats"][name]
        sat = (f"<0.05: {st['frac_low']:.0%}  >0.95: {st['frac_high']:.0%}" if "frac_low" in st
               else f"|v|>0.95: {st['frac_saturated']:.0%}")
        ax.set_ylabel(f"{name}\nunit", fontsize=8)
        ax.set_title(f"{name}: mean {st['mean']:.2f}, {sat}", fontsize=8, loc="left")
        for t in marks or ():
            ax.axvline(t, color="k", ls=":", lw=0.8)
        fig.colorbar(im, ax=ax, pad=0.01)
    axes[-1, 0].set_xlabel("time step t")
    axes[-1, 0].xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title or f"{activity['module']} layer {activity['layer']} "
                 f"{activity['direction']}: {activity['cell']}", fontsize=9)
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.5 / fig.get_figheight(),
                        top=1 - 0.55 / fig.get_figheight(), hspace=0.45)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
