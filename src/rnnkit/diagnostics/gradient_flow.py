"""Gradient flow through time: ``||dL/dh_t||`` for every step ``t`` of every recurrent layer.

For a loss ``L`` computed from a forward pass, the total derivative with respect to the
state ``h_t`` (through the output at ``t`` and through every later state) obeys::

    dL/dh_t = dL/dy_t + (dh_{t+1}/dh_t)^T dL/dh_{t+1}

so ``||dL/dh_t||`` against ``t`` shows how much of the loss's gradient reaches step ``t``.
For a tanh RNN ``dh_{t+1}/dh_t = diag(1 - h_{t+1}^2) W_hh``: unless that Jacobian's gain is
about 1 the norm falls (vanishing) or grows (exploding) geometrically as ``t`` moves away
from where the loss is taken. For an LSTM the cell state adds a path with
``dc_{t+1}/dc_t = diag(f_{t+1})``, which keeps the gradient alive while the forget gates
stay near 1. The norm at ``t`` is taken over the whole batch, ``||dL/dh_t||_2`` over
``(B, S)`` (for a mean loss each sequence contributes ``1/B`` of its own gradient).

Also here: the gradient norm before and after clipping over training
(:class:`ClipRecord`), and their plots. No training loop lives here: a run under
:class:`rnnkit.train.Trainer` feeds :meth:`ClipRecord.record` with the norm the Trainer
measured before clipping and :func:`gradient_norm` taken after the optimizer step
(:mod:`rnnkit.diagnostics.adding` shows how); :meth:`ClipRecord.clip` is for a plain loop.

Example::

    flows = hidden_gradient_norms(model, lambda m: F.mse_loss(m(x), y))
    flows[0]["norms"]["h"]           # (T,) for the first layer, forward direction
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ._taps import direction, state_names, tap_layers

__all__ = ["hidden_gradient_norms", "flow_summary", "ClipRecord", "gradient_norm",
           "plot_gradient_flow", "plot_clipping"]


def hidden_gradient_norms(model: nn.Module, loss_fn: Callable[[nn.Module], Tensor]) -> list[dict]:
    """``||dL/ds_t||`` for every state ``s`` (h; c for LSTM), step, layer and direction.

    Args:
        model: any module holding rnnkit recurrent layers (found automatically).
        loss_fn: ``loss_fn(model) -> scalar loss``; it runs the forward pass.
    Returns:
        one dict per (module, layer, direction): ``{"module", "layer", "direction", "cell",
        "loss", "lengths", "norms": {"h": (T,) array, "c": ...}}``, time-aligned (index t
        is step t of the sequences, also for the reverse direction).
    """
    with tap_layers(model) as traces:
        loss = loss_fn(model)
        states = [s for tr in traces for l in tr.steps for d in l for rec in d for s in rec[2]]
        wanted = [s for s in states if s.requires_grad]
        if not wanted or not loss.requires_grad:
            raise ValueError("hidden_gradient_norms: the loss does not depend on the recurrent "
                             "states with gradients enabled (run it outside torch.no_grad)")
        got = dict(zip(map(id, wanted), torch.autograd.grad(loss, wanted, allow_unused=True)))
    it = iter([got.get(id(s)) for s in states])
    out = []
    for tr in traces:
        for l, dirs in enumerate(tr.steps):
            for d, steps in enumerate(dirs):
                g = [[next(it) for _ in rec[2]] for rec in steps]  # [t][state]
                names = state_names(tr.layer.cells[l])
                norms = {}
                for k, name in enumerate(names):
                    ref = steps[0][2][k]
                    gk = torch.stack([gt[k] if gt[k] is not None else torch.zeros_like(ref)
                                      for gt in g])  # (T, B, S) in step order
                    if d == 1:
                        from rnnkit.kernels.loop import reverse_padded

                        gk = reverse_padded(gk, tr.lengths.to(gk.device))
                    norms[name] = torch.linalg.vector_norm(gk.double(), dim=(1, 2)).cpu().numpy()
                out.append({"module": tr.name, "layer": l,
                            "direction": direction(tr.layer, d),
                            "cell": repr(tr.layer.cells[l]), "loss": float(loss.detach()),
                            "lengths": tr.lengths.tolist(), "norms": norms})
    return out


def flow_summary(norms: np.ndarray) -> dict[str, float]:
    """Numbers that describe one ``||dL/dh_t||`` curve of length T (T >= 2).

    ``first``/``middle``/``last``: the norm at t = 0, T//2, T-1; ``log10_first_over_last``:
    orders of magnitude gained (+) or lost (-) from the last step back to the first;
    ``per_step_factor``: the geometric mean gain per step back in time,
    ``(first / last) ** (1 / (T - 1))`` (< 1 vanishing, > 1 exploding).
    """
    n = np.asarray(norms, dtype=np.float64)
    T = len(n)
    tiny = np.finfo(np.float64).tiny
    first, last = max(float(n[0]), tiny), max(float(n[-1]), tiny)
    ratio = math.log10(first) - math.log10(last)
    return {"first": float(n[0]), "middle": float(n[T // 2]), "last": float(n[-1]),
            "log10_first_over_last": ratio, "per_step_factor": 10 ** (ratio / max(T - 1, 1))}


@dataclass
class ClipRecord:
    """Global gradient norm before and after clipping, per optimiser step.

    In a plain loop, call :meth:`clip` instead of ``clip_grad_norm_``::

        rec = ClipRecord(max_norm=1.0)
        loss.backward(); rec.clip(model.parameters()); opt.step()

    Under a trainer that clips by itself, :meth:`record` what it measured.
    """

    max_norm: float | None
    steps: list[int] = field(default_factory=list)
    before: list[float] = field(default_factory=list)
    after: list[float] = field(default_factory=list)

    def record(self, before: float, after: float) -> None:
        """Append one optimiser step's norms, before and after clipping."""
        self.steps.append(len(self.steps) + 1)
        self.before.append(float(before))
        self.after.append(float(after))

    def clip(self, params) -> float:
        """Clip the gradients of ``params`` to ``max_norm`` (if set), record, return the
        norm before clipping."""
        params = [p for p in params if p.grad is not None]
        if self.max_norm is not None:
            pre = float(nn.utils.clip_grad_norm_(params, self.max_norm))
        else:
            pre = gradient_norm(params)
        self.record(pre, gradient_norm(params))
        return pre

    def summary(self) -> dict[str, float]:
        b = np.asarray(self.before)
        clipped = float(np.mean(b > self.max_norm)) if len(b) and self.max_norm else 0.0
        return {"steps": len(b), "max_norm": self.max_norm,
                "median_before": float(np.median(b)) if len(b) else math.nan,
                "max_before": float(b.max()) if len(b) else math.nan,
                "fraction_clipped": clipped}


def gradient_norm(params) -> float:
    """Global L2 norm of the gradients of ``params`` (those that have one), in float64."""
    grads = [p.grad.detach().double() for p in params if p.grad is not None]
    if not grads:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g)
                                                       for g in grads])))


# --------------------------------------------------------------------------- plots


def _margins(fig) -> None:
    """Margins in inches, so one panel and five panels both keep their labels."""
    w, h = fig.get_size_inches()
    # 1.1 in on the left: log-scale tick labels (1e-12) plus the y-label, never cut off
    fig.subplots_adjust(left=1.1 / w, right=1 - 0.15 / w, bottom=0.5 / h, top=1 - 0.75 / h,
                        wspace=0.1)


def plot_gradient_flow(panels: dict[str, dict[str, dict[str, np.ndarray]]], path: str | Path,
                       title: str = "") -> Path:
    """Side-by-side log-scale ``||dL/ds_t||`` curves.

    ``panels``: ``{panel title: {curve label: {"h": (T,), optional "c": (T,)}}}``, e.g.
    ``{"RNN (tanh)": {"init": {...}, "step 2000": {...}}, "LSTM": {...}}``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6), sharey=True, squeeze=False)
    for ax, (name, curves) in zip(axes[0], panels.items()):
        for k, (label, norms) in enumerate(curves.items()):
            color = f"C{k}"
            for s, style in (("h", "-"), ("c", "--")):
                if s in norms:
                    v = np.maximum(np.asarray(norms[s], dtype=float), 1e-30)
                    ax.semilogy(np.arange(len(v)), v, style, color=color, lw=1.4,
                                label=f"{label + ': ' if label else ''}||dL/d{s}_t||")
        ax.set_title(name)
        ax.set_xlabel("time step t")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="best", framealpha=0.7)
    axes[0][0].set_ylabel("gradient norm (log scale)")
    if title:
        fig.suptitle(title)
    _margins(fig)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_clipping(records: dict[str, ClipRecord | dict], path: str | Path, title: str = "") -> Path:
    """Gradient norm before and after clipping over training, one panel per run.

    ``records`` values are ClipRecords or dicts with ``steps``, ``before``, ``after``, ``max_norm``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(records)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), sharey=True, squeeze=False)
    for ax, (name, r) in zip(axes[0], records.items()):
        r = r if isinstance(r, dict) else r.__dict__
        ax.semilogy(r["steps"], np.maximum(r["before"], 1e-30), lw=0.8, label="before clipping")
        ax.semilogy(r["steps"], np.maximum(r["after"], 1e-30), lw=0.8, label="after clipping")
        if r.get("max_norm"):
            ax.axhline(r["max_norm"], color="k", ls=":", lw=1, label=f"max_norm {r['max_norm']:g}")
        ax.set_title(name)
        ax.set_xlabel("optimiser step")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="best", framealpha=0.7)
    axes[0][0].set_ylabel("global gradient norm")
    if title:
        fig.suptitle(title)
    _margins(fig)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
