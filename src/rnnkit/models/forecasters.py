"""``model.arch`` -> the forecasting model: one constructor for the pipeline and checkpoints.

Every forecaster takes ``(config, n_targets=C, n_past=P, n_future=F, horizon=H)`` and maps
``x (B, L, C+P+F)``, ``xf (B, H, F)`` to head parameters ``(B, H, C, K)``.

Example::

    m = build_forecaster(ForecastModelConfig(arch="segrnn", cell="lstm", hidden_size=32,
                         segment_length=12), n_targets=1, horizon=24, input_length=96)
"""

from __future__ import annotations

from torch import nn

from rnnkit.models.forecast import Forecaster, ForecastModelConfig
from rnnkit.models.forecast_linear import DLinear
from rnnkit.models.forecast_segrnn import SegRNN

__all__ = ["build_forecaster", "ARCHS"]

ARCHS = ("rnn", "segrnn", "dlinear")


def build_forecaster(config: ForecastModelConfig, *, n_targets: int, n_past: int = 0,
                     n_future: int = 0, horizon: int = 1, input_length: int) -> nn.Module:
    """The model ``config.arch`` names (``input_length`` is L; DLinear's maps need it)."""
    kw = {"n_targets": n_targets, "n_past": n_past, "n_future": n_future, "horizon": horizon}
    if config.decoder_step != "auto" and config.arch != "segrnn":
        raise ValueError(f"model.decoder_step={config.decoder_step!r} chooses how SegRNN's "
                         f"decoder steps, so it needs model.arch 'segrnn' (got {config.arch!r})")
    if config.arch == "rnn":
        return Forecaster(config, **kw)
    if config.arch == "segrnn":
        return SegRNN(config, input_length=input_length, **kw)
    if config.arch == "dlinear":
        return DLinear(config, input_length=input_length, **kw)
    raise ValueError(f"model.arch={config.arch!r}: expected one of {', '.join(ARCHS)}")
