"""Per-task export signatures: each checkpoint's model behind a flat, tensor-only forward.

An exported graph takes and returns plain tensors, so each pipeline gets a wrapper that
spells its inference step out, with the recurrent state as explicit inputs and outputs
(``h0``/``c0`` in, ``h_n``/``c_n`` out: the caller carries them from one call to the next)
and ``lengths`` for padded batches of different lengths::

    lm        tokens (T, B) int64, lengths (B,), h0 (L, B, H)[, c0]  -> logits (T, B, V), h_n[, c_n]
    anomaly   prediction:      x (T, B, 1), lengths (B,), h0[, c0]   -> y (T, B, l), h_n[, c_n]
              reconstruction:  x (L, B, 1)                           -> x' (L, B, 1)
    forecast  x (B, L, C+P+F), xf (B, H, F)[, lengths (B,)]          -> params (B, H, C, K)
              (segrnn, dlinear: x (B, input_length, C), no lengths)
    audio     x (B, T, F), lengths (B,)                              -> logits (B, K)

Rows past a sequence's length are padding (outputs there carry no meaning; states are
each sequence's own at its last step).  Each pipeline's
:attr:`~rnnkit.train.task.TaskSpec.export` loads its checkpoint and calls one of the
``*_export_spec`` functions here, which build the :class:`ExportSpec` from the loaded model;
:mod:`rnnkit.export` writes and verifies the file.  Nothing here imports a pipeline.

Example::

    spec = lm_export_spec(*load_lm_checkpoint("runs/shakespeare_char/best"))
    logits, h, c = spec.module(*spec.example_inputs)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["ExportSpec", "state_layout", "lm_export_spec", "anomaly_export_spec",
           "forecast_export_spec", "forecast_preprocessing_meta", "audio_export_spec"]


@dataclass
class ExportSpec:
    """A traceable module and what an exporter needs to know about it.

    Attributes:
        task: the checkpoint's task.
        module: eval-mode module whose ``forward(*inputs)`` returns a tuple of tensors.
        example_inputs: inputs to trace with (lengths not all equal, so the variable-length
            path is the one traced).
        input_names / output_names: names in the exported graph.
        dynamic_axes: ``{name: {axis: symbol}}`` (``T``, ``B``).
        state: ``[(input name, output name)]`` pairs to carry from one call to the next.
        meta: JSON-able facts for the sidecar file (vocabulary size, horizon, classes, ...).
        make_inputs: ``make_inputs(T, B, seed)`` -> random valid inputs of that size (tests).
    """

    task: str
    module: nn.Module
    example_inputs: tuple[Tensor, ...]
    input_names: list[str]
    output_names: list[str]
    dynamic_axes: dict[str, dict[int, str]]
    state: list[tuple[str, str]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    make_inputs: Callable[[int, int, int], tuple[Tensor, ...]] | None = None


def state_layout(layer: nn.Module) -> list[tuple[int, int]]:
    """``[(D*L, S_i)]``: leading size and feature size of each state tensor of an rnnkit layer."""
    D = 2 if layer.bidirectional else 1
    return [(D * layer.num_layers, s) for s in layer.cells[-1].state_sizes]


def _check_exportable(layer: nn.Module, where: str) -> None:
    """Only layers that run torch's fused kernel trace to a graph valid for any T."""
    from rnnkit.kernels.dispatch import torch_unsupported
    from rnnkit.layers import Recurrent

    if not isinstance(layer, Recurrent):  # e.g. a stack of Griffin's or Mamba's blocks
        raise ValueError(f"export: {where} is a {type(layer).__name__}, not one recurrent layer "
                         "(export supports RNN/LSTM/GRU layers that run torch's fused kernel)")
    was = layer.training
    layer.eval()
    try:
        w = layer._flat_weights[0]
        reason = torch_unsupported(layer, torch.zeros(1, 1, layer.input_size, dtype=w.dtype))
    finally:
        layer.train(was)
    if reason is not None:
        raise ValueError(f"export: {where} cannot be exported for every sequence length: {reason} "
                         "(export supports RNN/LSTM/GRU layers that run torch's fused kernel)")


def _lengths(T: int, B: int, gen: torch.Generator) -> Tensor:
    """Random lengths in [1, T] with the first at T (the batch's longest)."""
    lens = torch.randint(1, T + 1, (B,), generator=gen)
    lens[0] = T
    return lens


def _states(layout: list[tuple[int, int]], B: int, gen: torch.Generator) -> list[Tensor]:
    return [0.5 * torch.randn(n, B, s, generator=gen) for n, s in layout]


def _state_io(
    layout: list[tuple[int, int]],
) -> tuple[list[str], list[str], dict[str, dict[int, str]]]:
    ins = ["h0", "c0"][:len(layout)]
    outs = ["h_n", "c_n"][:len(layout)]
    return ins, outs, {n: {1: "B"} for n in ins + outs}


def _pack(state: tuple[Tensor, ...]) -> Any:
    return state[0] if len(state) == 1 else tuple(state)


def _unpack(h_n: Any) -> tuple[Tensor, ...]:
    return (h_n,) if isinstance(h_n, Tensor) else tuple(h_n)


# --------------------------------------------------------------------------- language model


class LMStep(nn.Module):
    """``(tokens (T, B), lengths (B,), *state) -> (logits (T, B, V), *h_n)`` of a LanguageModel."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor, lengths: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        m = self.model
        x = m.embedding(tokens)  # (T, B, E)
        out, h_n = m.rnn(x, _pack(state), lengths=lengths)  # (T, B, H)
        return (m.decoder(out), *_unpack(h_n))  # (T, B, V)


def lm_export_spec(model: nn.Module, vocab: Any, cfg: Any) -> ExportSpec:
    """The ExportSpec of a loaded language model (``load_lm_checkpoint``'s outputs)."""
    _check_exportable(model.rnn, "the language model's recurrent layer")
    layout = state_layout(model.rnn)
    s_in, s_out, s_axes = _state_io(layout)
    V = len(vocab)

    def make(T: int, B: int, seed: int = 0) -> tuple[Tensor, ...]:
        g = torch.Generator().manual_seed(seed)
        return (torch.randint(0, V, (T, B), generator=g), _lengths(T, B, g), *_states(layout, B, g))

    return ExportSpec(
        "lm",
        LMStep(model).eval(),
        make(7, 3),
        ["tokens", "lengths", *s_in],
        ["logits", *s_out],
        {"tokens": {0: "T", 1: "B"}, "lengths": {0: "B"}, "logits": {0: "T", 1: "B"}, **s_axes},
        list(zip(s_in, s_out)),
        {"vocab_size": V, "level": vocab.level, "state_shapes": layout, "cell": cfg.model.cell,
         "token_range": [0, V],
         "tokens": f"token ids in [0, {V}) (vocabulary order); the graph does not check them: "
                   "onnxruntime's Gather reads an id in [-V, -1] from the end of the vocabulary "
                   "and an id out of range fails or reads garbage, so check ids before calling"},
        make,
    )


# --------------------------------------------------------------------------- anomaly


class PredictorStep(nn.Module):
    """``(x (T, B, 1), lengths, *state) -> (y (T, B, l), *h_n)`` of an LSTM-AD predictor."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, lengths: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        out, h_n = self.model.rnn(x, _pack(state), lengths=lengths)  # (T, B, H)
        return (self.model.head(out), *_unpack(h_n))


class _Reconstruct(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple[Tensor]:
        return (self.model(x),)


def anomaly_export_spec(det: Any) -> ExportSpec:
    """The ExportSpec of a loaded anomaly detector
    (:func:`rnnkit.anomaly.detectors.load_detector`)."""
    from rnnkit.anomaly.detectors import PredictionDetector

    c = det.config
    meta = {"kind": c.kind, "mean": det.mean, "std": det.std, "cell": c.cell}
    if isinstance(det, PredictionDetector):
        _check_exportable(det.model.rnn, "the detector's recurrent layer")
        layout = state_layout(det.model.rnn)
        s_in, s_out, s_axes = _state_io(layout)

        def make(T: int, B: int, seed: int = 0) -> tuple[Tensor, ...]:
            g = torch.Generator().manual_seed(seed)
            return (torch.randn(T, B, 1, generator=g), _lengths(T, B, g), *_states(layout, B, g))

        return ExportSpec(
            "anomaly",
            PredictorStep(det.model).eval(),
            make(7, 3),
            ["x", "lengths", *s_in],
            ["y", *s_out],
            {"x": {0: "T", 1: "B"}, "lengths": {0: "B"}, "y": {0: "T", 1: "B"}, **s_axes},
            list(zip(s_in, s_out)),
            {**meta, "horizon": c.horizon, "state_shapes": layout},
            make,
        )
    for name in ("encoder", "decoder"):
        _check_exportable(getattr(det.model, name), f"the autoencoder's {name}")
    L = c.window

    def make_w(T: int, B: int, seed: int = 0) -> tuple[Tensor, ...]:
        g = torch.Generator().manual_seed(seed)
        return (torch.randn(L, B, 1, generator=g),)  # the window length is fixed: L

    return ExportSpec(
        "anomaly",
        _Reconstruct(det.model).eval(),
        make_w(L, 3),
        ["x"],
        ["reconstruction"],
        {"x": {1: "B"}, "reconstruction": {1: "B"}},
        [],
        {**meta, "window": L},
        make_w,
    )


# --------------------------------------------------------------------------- forecasting


class ForecastStep(nn.Module):
    """``(x, xf[, lengths]) -> params (B, H, C, K)`` of a Forecaster (eval mode)."""

    def __init__(self, model: nn.Module, with_lengths: bool):
        super().__init__()
        self.model, self.with_lengths = model, with_lengths

    def forward(self, x: Tensor, xf: Tensor, lengths: Tensor | None = None) -> tuple[Tensor]:
        return (self.model(x, xf, lengths if self.with_lengths else None),)


def forecast_export_spec(model: nn.Module, state: dict[str, Any], cfg: Any) -> ExportSpec:
    """The ExportSpec of a loaded forecaster (``load_forecast_checkpoint``'s outputs); its
    ``meta`` holds the preprocessing and feature layout (:func:`forecast_preprocessing_meta`):
    the graph reads and writes scaled model-space values, never raw units."""
    m = model.config
    if hasattr(model, "encoder"):
        _check_exportable(model.encoder, "the forecaster's encoder")
    if hasattr(model, "decoder"):
        _check_exportable(model.decoder, "the forecaster's decoder")
    # segrnn and dlinear read windows of exactly input_length steps (linear maps of the window);
    # recursive forecasts and the highway read the whole window: no padding there
    fixed = m.arch in ("segrnn", "dlinear")
    with_lengths = not fixed and m.strategy != "recursive" and not m.highway
    I, H, F = model.C + model.P + model.F, model.H, model.F
    L = cfg.data.input_length

    def make(T: int, B: int, seed: int = 0) -> tuple[Tensor, ...]:
        g = torch.Generator().manual_seed(seed)
        T = L if fixed else T
        x, xf = torch.randn(B, T, I, generator=g), torch.randn(B, H, F, generator=g)
        return (x, xf, _lengths(T, B, g)) if with_lengths else (x, xf)

    names = ["x", "xf"] + (["lengths"] if with_lengths else [])
    axes = {"x": {0: "B"} if fixed else {0: "B", 1: "T"}, "xf": {0: "B"}, "params": {0: "B"}}
    if with_lengths:
        axes["lengths"] = {0: "B"}
    meta = {"input_length": L, "horizon": H, "targets": state["schema"]["targets"], "head": m.head,
            "n_features": I, "n_future": F, "strategy": m.strategy,
            **forecast_preprocessing_meta(state, cfg, m, I, F)}
    return ExportSpec(
        "forecast",
        ForecastStep(model, with_lengths).eval(),
        make(max(L, 2), 3),
        names,
        ["params"],
        axes,
        [],
        meta,
        make,
    )


def _per_channel(stats: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """A fitted :class:`~rnnkit.data.windows.Scaler`'s ``stats`` as ``{series: {"loc":
    {name: v}, "scale": {name: v}}}`` (series ``"*"``: one pair for all series)."""
    return {sid: {"loc": dict(zip(names, map(float, loc))),
                  "scale": dict(zip(names, map(float, scale)))}
            for sid, (loc, scale) in stats.items()}


def forecast_preprocessing_meta(state: dict[str, Any], cfg: Any, m: Any, I: int,
                                F: int) -> dict[str, Any]:
    """What the exported forecaster's graph expects around it (the sidecar's ``meta``):
    the feature layout of ``x`` and ``xf``, and the preprocessing chain of
    :class:`~rnnkit.data.windows.Preprocessor` with its fitted parameters, as
    :class:`~rnnkit.tasks.predictors.ForecastPredictor` applies it.  The graph's inputs and
    outputs are in the model's space, never in raw units."""
    d = cfg.data
    targets = list(state["schema"]["targets"])
    calendar = list(state["schema"]["calendar"])
    past, future = list(d.past_covariates), list(d.future_covariates)
    pre = state["preprocessor"]
    sc = pre["scaler"]
    cov = state["covariates"]
    features = targets + past + future + calendar
    if len(features) != I or len(future) + len(calendar) != F:  # the layout is what the model read
        raise ValueError(f"export: the checkpoint's feature layout ({len(features)} columns: "
                         f"{features}) does not match the model's {I} inputs ({F} known-future)")
    lag, stl = pre["lag"], pre["stl_period"]
    chain = (["log"] if pre["log"] else []) + ["scale"] + (["stl"] if stl else []) + \
        (["difference"] if lag else [])
    model_space = "(" + " -> ".join(chain) + ")"
    return {
        "lookback": d.input_length,
        "freq": state["schema"]["freq"],
        "time_col": state["schema"]["time_col"],
        "features": features,  # the columns of x, in order
        "future_features": future + calendar,  # the columns of xf, in order
        "inputs_scaled": True,
        "outputs_scaled": True,
        "io": (
            f"x (B, T, {I}): one row per step, oldest first, the last row the step before the "
            f"forecast; its columns are 'features': the targets in model space {model_space}"
            + (" (0 where no value is 'difference' steps earlier)" if lag else "")
            + (", the covariates scaled by 'covariate_scaler'" if past or future else "")
            + (", the calendar features of the step (in [-0.5, 0.5], not scaled)"
               if calendar else "")
            + f"; xf (B, {d.horizon}, {F}): the 'future_features' of the forecast steps, "
            f"scaled likewise. params (B, {d.horizon}, {len(targets)}, K) are {m.head}-head "
            "parameters in model space, NOT raw units ("
            + {"point": "the value is params[..., 0]",
               "gaussian": "mu = params[..., 0], sigma = softplus(params[..., 1]) + 1e-3",
               "quantile": "the quantiles at 'quantiles' along K, unsorted: sort along K"}[m.head]
            + "); to get raw values undo 'order' last step first ("
            + (("undifference (x_{t+h} = x_{t+h-lag} + d_{t+h}) from the last 'difference' "
                "scaled levels" + (" minus their STL profile" if stl else "") + ", ")
               if lag else "")
            + ("add the STL profile, " if stl else "")
            + "v = z * scale + loc" + (", y = exp(v)" if pre["log"] else "") + ")"
        ),
        "quantiles": list(m.quantiles) if m.head == "quantile" else None,
        "preprocessing": {
            "order": chain,
            "log": bool(pre["log"]),
            "scaler": {
                "kind": sc["kind"],
                "per_series": bool(sc["per_series"]),
                "formula": "z = (v - loc) / scale, v = log(y) if log else y (standard: loc is "
                           "the training mean and scale its std; minmax: loc the min and scale "
                           "the range; none: 0 and 1); series '*' holds for every series",
                "series": _per_channel(sc["stats"], targets),
                # the anomaly sidecar's names, for the common case (one standard scaler)
                **({"mean": _per_channel(sc["stats"], targets)["*"]["loc"],
                    "std": _per_channel(sc["stats"], targets)["*"]["scale"]}
                   if sc["kind"] == "standard" and "*" in sc["stats"] else {}),
            },
            "stl": None if not stl else {
                "period": stl,
                "formula": "z -= profile[series][(steps from anchors[series]) mod period]",
                "anchors": dict(state["anchors"]),
                "profile": pre["profiles"],
            },
            "difference": lag,
            "covariate_scaler": {
                "kind": cov["kind"],
                "columns": past + future,
                "series": _per_channel(cov["stats"], past + future),
            } if past or future else None,
        },
    }


# --------------------------------------------------------------------------- audio


class AudioStep(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor]:
        return (self.model(x, lengths),)


def audio_export_spec(model: nn.Module, classes: list[str]) -> ExportSpec:
    """The ExportSpec of a loaded audio classifier (``load_audio_checkpoint``'s outputs)."""
    _check_exportable(model.rnn, "the classifier's recurrent layer")
    Fn = model.num_features

    def make(T: int, B: int, seed: int = 0) -> tuple[Tensor, ...]:
        g = torch.Generator().manual_seed(seed)
        lens = _lengths(T, B, g).clamp(min=min(T, 8))
        return torch.randn(B, T, Fn, generator=g), lens

    return ExportSpec("audio", AudioStep(model).eval(), make(40, 3), ["x", "lengths"], ["logits"],
                      {"x": {0: "B", 1: "T"}, "lengths": {0: "B"}, "logits": {0: "B"}}, [],
                      {"classes": classes, "n_features": Fn}, make)
