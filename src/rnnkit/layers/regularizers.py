"""Regularisers for recurrent layers: variational dropout, zoneout, DropConnect, max-norm.

Every layer (:class:`~rnnkit.Recurrent`, hence the presets and the zoo) takes them
as keyword-only arguments. Dropout-type ones act only in training; evaluation is
deterministic. Masks come from torch's RNG, so ``torch.manual_seed`` reproduces them.
Each layer and direction draws its own masks. ``m ~ Bernoulli(1 - p) / (1 - p)``
is an inverted-dropout mask (expectation 1); ``d ~ Bernoulli(p)`` a zoneout mask.

``input_dropout=p`` (Keras' ``dropout``; Gal & Ghahramani 2016's input mask):
    ``x_t -> m_x * x_t`` on every layer's input, ``m_x`` (B, I) drawn once per
    forward call: one mask per sequence, the same at every time step.

``recurrent_dropout=p`` (Keras' ``recurrent_dropout``; Gal & Ghahramani 2016):
    ``h_{t-1} -> m_h * h_{t-1}`` where the previous output enters the recurrent
    product (``W_hh h_{t-1}``), ``m_h`` (B, O) drawn once per forward call. The
    carried state is never dropped: an LSTM's ``c`` is untouched, and a GRU's
    ``h_t = (1 - z) * n + z * h_{t-1}`` interpolates the undropped ``h_{t-1}``
    (as in Keras). For a cell without an adapter the layer passes
    ``(m_h * h, *rest)`` to ``step``, which is right when the step reads ``h``
    only through its recurrent weights (Elman, LSTM, LayerNorm-LSTM, IndRNN);
    a cell that also carries ``h`` (GRU, LayerNorm-GRU, a custom cell) defines
    ``step_recurrent_dropout(x_t, state, h_rec, p)`` (the default of
    :class:`~rnnkit.cells.Cell` is the pass-through above).
    Cells without a recurrent weight ``weight_hh`` (QRNN, SRU, minGRU, minLSTM)
    are refused: their state is carried, not multiplied.

``zoneout=p`` or ``(p_h, p_c)`` (Krueger et al. 2017):
    each unit of each state tensor keeps its previous value with probability p,
    a fresh ``d`` (B, S) per step: ``s_t = d * s_{t-1} + (1 - d) * s~_t``, with
    ``s~_t`` the cell's new state; ``p_h`` applies to the first state tensor and
    ``p_c`` to the others (an LSTM's ``c``). In evaluation the expectation,
    ``s_t = p * s_{t-1} + (1 - p) * s~_t``. The output ``y_t`` follows the zoned
    state when the cell emits its first state as output (RNN, LSTM, GRU, ...);
    as in the paper the LSTM's candidate ``h~_t`` uses the un-zoned ``c~_t``.

``weight_drop=p`` (DropConnect on the recurrent weights; AWD-LSTM, Merity et al. 2017):
    ``W_hh -> M * W_hh``, one mask per forward call shared by every time step and
    sequence; gradients reach the raw weight through the mask.

``max_norm=c`` (a weight constraint, as Keras' ``MaxNorm`` on ``recurrent_constraint``):
    each row of ``W_hh`` (the incoming recurrent weights of one gate unit) is
    rescaled to L2 norm at most ``c``; for the elementwise recurrent weight of
    IndRNN, ``|u| <= c``. It is applied in the forward pass, differentiably
    (``torch.renorm``), in training and evaluation alike, so it needs no trainer
    hook and the weights the layer uses always satisfy it; :func:`max_norm_`
    projects the stored weights in place as Keras does after each update (call
    it before exporting the weights to torch.nn). With ``weight_drop`` the
    constraint applies to the raw weight, then the mask.

"Recurrent weights" are the cell's parameters named ``weight_hh*``.

Shapes: ``B`` batch, ``I`` input, ``O`` cell output, ``S`` state size.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..cells.base import Cell, Params, State

__all__ = ["Regularizers", "dropout_mask", "zoneout", "uniform_draws", "zoneout_keep_",
           "embedding_dropout", "max_norm_", "recurrent_weight_names"]


def dropout_mask(shape, p: float, like: Tensor) -> Tensor:
    """Inverted-dropout mask ``Bernoulli(1 - p) / (1 - p)`` of ``shape``, from torch's RNG."""
    return like.new_empty(shape).bernoulli_(1.0 - p).div_(1.0 - p)


def zoneout(new: Tensor, old: Tensor, p: float, training: bool) -> Tensor:
    """Keep each unit of ``old`` with probability ``p`` (training), or the expectation (eval)."""
    if p == 0:
        return new
    if not training:
        return p * old + (1.0 - p) * new
    keep = zoneout_keep_(uniform_draws(old), p).bool()  # (B, S), fresh every step
    return torch.where(keep, old, new)


def uniform_draws(like: Tensor, steps: int | None = None) -> Tensor:
    """U[0, 1) float32 draws of ``like``'s shape on its device; with ``steps``, an empty
    (steps, *shape) buffer for them.

    Zoneout's keep masks are these draws thresholded (:func:`zoneout_keep_`); the fused
    scans draw them step by step (``u[t].uniform_()``), which on every device gives the
    numbers this draws for one step, so loop and fused layers zone out the same units
    under the same seed, in every dtype (the draws are float32 for all).
    ``bernoulli_(p)`` per step took about twice as long on the CPU (docs/kernels.md,
    "Small choices"; ``python benchmarks/bench_native.py``).
    """
    shape = like.shape if steps is None else (steps, *like.shape)
    u = like.new_empty(shape, dtype=torch.float32)
    return u.uniform_() if steps is None else u


def zoneout_keep_(u: Tensor, p: float) -> Tensor:
    """Uniform draws ``u`` -> 0/1 keep masks with ``P(1) = p``, in place: ``floor(u + p)``."""
    return u.add_(p).floor_()


def recurrent_weight_names(cell: Cell) -> list[str]:
    """The cell's recurrent weights: parameter names starting with ``weight_hh``."""
    return [n for n in cell.param_shapes() if n.startswith("weight_hh")]


def _renorm_rows(w: Tensor, c: float) -> Tensor:
    """Rows of ``w`` (G*H, H) rescaled to L2 norm <= c; a vector (H,) clamped to |u| <= c;
    the rows of a block-diagonal weight (sLSTM's (4, heads, d, d)) each rescaled alike."""
    if w.dim() == 1:
        return w.clamp(-c, c)
    return torch.renorm(w.reshape(-1, w.shape[-1]), 2, 0, c).view_as(w)


def max_norm_(module: nn.Module) -> None:
    """Project the stored recurrent weights of every layer in ``module`` with ``max_norm``.

    Layers without ``max_norm`` are left alone; the forward pass already uses
    the constrained weights, so this changes no output.
    """
    with torch.no_grad():
        for layer in module.modules():  # the recurrent layers: those holding Regularizers
            if isinstance(getattr(layer, "regularizers", None), Regularizers) \
                    and layer.max_norm is not None:
                for l, cell in enumerate(layer.cells):
                    for d in range(layer.num_directions):
                        p = layer._params(l, d)
                        for n in recurrent_weight_names(cell):
                            p[n].copy_(_renorm_rows(p[n], layer.max_norm))


def embedding_dropout(embed: nn.Embedding, x: Tensor, p: float, training: bool) -> Tensor:
    """Embedding lookup with whole words dropped (AWD-LSTM's ``embedded_dropout``).

    In training each row of the embedding matrix (a word type) is zeroed with
    probability ``p`` for the whole call (every occurrence of a dropped word,
    in every sequence), the rest scaled by ``1 / (1 - p)``; otherwise ``embed(x)``.

    Args:
        embed: the ``nn.Embedding`` (V, E); its padding index and options are kept.
        x: int64 token ids, any shape ``(*)``. Returns ``(*, E)``.
    """
    if not isinstance(embed, nn.Embedding):
        raise ValueError(f"embed: expected a torch.nn.Embedding, got {type(embed).__name__}")
    _check_rate("p", p)
    if not training or p == 0:
        return embed(x)
    w = embed.weight
    w = w * dropout_mask((w.shape[0], 1), p, w)  # (V, 1) broadcast over E
    return F.embedding(x, w, embed.padding_idx, embed.max_norm, embed.norm_type,
                       embed.scale_grad_by_freq, embed.sparse)


def _check_rate(name: str, p) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise ValueError(f"{name}: expected a probability in [0, 1), got {p!r}")
    return float(p)


def _check_zoneout(z, cell: Cell) -> tuple[float, float]:
    refused = getattr(cell, "zoneout_refused", None)  # a cell whose state tensors belong together
    if refused and z not in (0, 0.0, (0, 0), (0.0, 0.0), [0, 0], [0.0, 0.0]):
        raise ValueError(f"zoneout: {type(cell).__name__} does not take it: {refused}")
    if isinstance(z, (tuple, list)):
        if len(z) != 2:
            raise ValueError(f"zoneout: expected a rate or a pair (p_h, p_c), got {z!r}")
        p_h, p_c = (_check_rate("zoneout", r) for r in z)
        if len(cell.state_sizes) == 1 and p_c != p_h:
            raise ValueError(f"zoneout: {type(cell).__name__} has one state tensor, so give one "
                             f"rate; got (p_h, p_c) = {tuple(z)}")
        return p_h, p_c
    p = _check_rate("zoneout", z)
    return p, p


def _dropped_recurrence_step(cell: Cell):
    """``f(x_t, state, h_rec, p)``: the step with ``h_rec`` feeding the recurrence."""
    if hasattr(cell, "step_recurrent_dropout"):
        return cell.step_recurrent_dropout
    return lambda x_t, state, h_rec, p: cell.step(x_t, (h_rec, *state[1:]), p)


# ------------------------------------------------------------ the settings
@dataclass(frozen=True)
class Regularizers:
    """A layer's regularisers, checked against its cell; see the module docstring."""

    input_dropout: float = 0.0
    recurrent_dropout: float = 0.0
    zoneout: tuple[float, float] = (0.0, 0.0)
    weight_drop: float = 0.0
    max_norm: float | None = None

    @classmethod
    def build(cls, cell: Cell, input_dropout=0.0, recurrent_dropout=0.0, zoneout=0.0,
              weight_drop=0.0, max_norm=None) -> Regularizers:
        """Check every argument (one clear error each) against ``cell``."""
        if max_norm is not None:
            if isinstance(max_norm, bool) or not isinstance(max_norm, (int, float)) \
                    or not 0 < max_norm < float("inf"):
                raise ValueError(f"max_norm: expected a positive finite number or None, "
                                 f"got {max_norm!r}")
            max_norm = float(max_norm)
        r = cls(_check_rate("input_dropout", input_dropout),
                _check_rate("recurrent_dropout", recurrent_dropout),
                _check_zoneout(zoneout, cell), _check_rate("weight_drop", weight_drop), max_norm)
        has_hh = bool(recurrent_weight_names(cell))
        for name, on in (("recurrent_dropout", r.recurrent_dropout > 0),
                         ("weight_drop", r.weight_drop > 0), ("max_norm", max_norm is not None)):
            if on and not has_hh:
                raise ValueError(
                    f"{name}: {type(cell).__name__} has no recurrent weights (no parameter "
                    f"weight_hh*): its state is carried, not multiplied; use zoneout or "
                    f"input_dropout")
        return r

    def torch_unsupported(self, training: bool, drops_weights: bool = False) -> str | None:
        """Why torch's fused kernel (backend ``"torch"``) cannot run these regularisers now,
        or None.

        ``drops_weights``: the caller hands torch's kernel weights already passed through
        :meth:`weights` (DropConnect draws one mask for all steps and the whole batch, so
        the kernel runs it as it is: AWD-LSTM's WeightDrop does this with cuDNN).
        """
        if any(self.zoneout):
            return "zoneout mixes each step's state with the previous one"
        if self.max_norm is not None:
            return "max_norm renormalises the recurrent weights in the forward pass"
        if training:
            if self.recurrent_dropout:
                return "recurrent_dropout masks h_{t-1} per sequence inside the recurrence"
            if self.input_dropout:
                return "input_dropout draws one input mask per sequence for every layer"
            if self.weight_drop and not drops_weights:
                return "weight_drop drops the recurrent weights (DropConnect) in training"
        return None

    def per_step(self, training: bool) -> bool:
        """Whether the time loop must apply something at every step."""
        return any(self.zoneout) or (training and self.recurrent_dropout > 0)

    # ---------------------------------------------------------- application
    def weights(self, cell: Cell, p: Params, training: bool) -> Params:
        """Max-norm, then DropConnect, on the recurrent weights of one layer/direction."""
        if self.max_norm is None and not (training and self.weight_drop):
            return p
        p = dict(p)
        for n in recurrent_weight_names(cell):
            w = p[n]
            if self.max_norm is not None:
                w = _renorm_rows(w, self.max_norm)
            if training and self.weight_drop:
                w = F.dropout(w, self.weight_drop, training=True)  # one mask, all steps
            p[n] = w
        return p

    def drop_input(self, x: Tensor, training: bool) -> Tensor:
        """Variational input dropout: x (T, B, I) times one (B, I) mask for all steps."""
        if not (training and self.input_dropout):
            return x
        return x * dropout_mask(x.shape[1:], self.input_dropout, x)  # (B, I) over T

    def step(self, cell: Cell, state: State, training: bool):
        """The step function for :func:`rnnkit.kernels.loop.scan`, or None for ``cell.step``.

        Draws this layer/direction's recurrent mask once (B, O); zoneout masks are
        drawn at every step.
        """
        if not self.per_step(training):
            return None
        drop = training and self.recurrent_dropout > 0
        m_h = dropout_mask(state[0].shape, self.recurrent_dropout, state[0]) if drop else None
        inner = _dropped_recurrence_step(cell) if drop else None
        p_h, p_c = self.zoneout

        def step(x_t: Tensor, state: State, p: Params):
            if drop:
                y, new = inner(x_t, state, state[0] * m_h, p)
            else:
                y, new = cell.step(x_t, state, p)
            if p_h or p_c:
                emits_state = y is new[0]
                new = tuple(zoneout(n, s, p_h if i == 0 else p_c, training)
                            for i, (n, s) in enumerate(zip(new, state)))
                if emits_state:
                    y = new[0]
            return y, new

        return step

    def step_inputs(self, state: State, T: int, training: bool) -> dict:
        """The random inputs of the regularised step, as the scan backends take them.

        Draws exactly what :meth:`step` and the loop would, in the same order: the
        recurrent-dropout mask ``m_h`` (B, O) once, then at every step a zoneout keep
        mask (B, S) for each state tensor with a non-zero rate (0/1 in the state's
        dtype). In evaluation zoneout is its expectation (a float). The layer draws them
        and passes them down, so kernels never draw (nor import this module).

        Args:
            state: the initial state of this layer/direction (only shapes are used).
        Returns:
            ``{"rec_mask": Tensor | None, "zoneout": tuple[float | Tensor | None, ...] | None}``.
        """
        h = state[0]
        rec_mask = None
        if training and self.recurrent_dropout > 0:
            rec_mask = dropout_mask(h.shape, self.recurrent_dropout, h)  # (B, O)
        p_h, p_c = self.zoneout
        rates = [p_h if i == 0 else p_c for i in range(len(state))]
        if not any(rates):
            return {"rec_mask": rec_mask, "zoneout": None}
        if not training:
            return {"rec_mask": rec_mask, "zoneout": tuple(p if p else None for p in rates)}
        draws = [uniform_draws(s, T) if p else None for s, p in zip(state, rates)]
        for t in range(T):  # per step and state tensor, as the loop draws them
            for u in draws:
                if u is not None:
                    u[t].uniform_()
        keeps = tuple(None if u is None else zoneout_keep_(u, p).to(s.dtype)
                      for u, p, s in zip(draws, rates, state))
        return {"rec_mask": rec_mask, "zoneout": keeps}

    def extra_repr(self) -> str:
        parts = [f"{k}={getattr(self, k)}" for k in
                 ("input_dropout", "recurrent_dropout", "weight_drop") if getattr(self, k)]
        if any(self.zoneout):
            z = self.zoneout
            parts.append(f"zoneout={z[0] if z[0] == z[1] else z}")
        if self.max_norm is not None:
            parts.append(f"max_norm={self.max_norm}")
        return ", ".join(parts)
