"""Recurrent anomaly detectors: prediction error (LSTM-AD) and reconstruction error (EncDec-AD).

Both are fitted on the first ``fit_end`` rows of one series (for NAB: its probationary
period, the only rows a detector may learn from before scoring), which are split in time::

    rows [0, train_end)        network training (standardised with their mean and std)
    rows [train_end, fit_end)  validation: early stopping, and the Gaussian of the errors

then every row is scored from its error vector ``e_t`` by :mod:`rnnkit.anomaly.gaussian`:

- **prediction** (Malhotra et al. 2015): a :class:`~rnnkit.anomaly.models.Predictor` reads the
  series once, its state carried from row 0, and predicts the next ``l`` values at each
  step; ``e_t[j-1] = x_t - (prediction of x_t made at t - j)``, ``j = 1..l``; rows
  ``t < l`` score 0.
- **reconstruction** (Malhotra et al. 2016): an :class:`~rnnkit.anomaly.models.EncDecAE`
  reconstructs the window of the last ``L`` rows; ``e_t = |x_{t-L+1..t} - x'|`` (L-vector);
  rows ``t < L - 1`` score 0.  Scoring the window that *ends* at ``t`` keeps it causal.

**Training** is :class:`rnnkit.train.Trainer`'s (:class:`DetectorFit`, a throwaway run in a
temporary directory: no logs, plot or progress bar), on the schedule of the per-series loop it
replaced, so a fit gives the same weights, bit for bit::

    v_0 = validation MSE of the untrained network        the first candidate for best
    for e = 1 .. max_epochs - 1:                          Trainer epoch e - 1
        train on batches(e): Adam, global-norm clip grad_clip
        v_e = validation MSE;  best = argmin v;  stop when v has not improved for
                                                 more than ``patience`` evaluations
    weights = those of the best v

The fit keeps the best weights in memory and writes no checkpoint (``trainer.checkpoints:
memory``; a fit is never resumed), and validates the untrained network before the first step
(``trainer.validate_at_start``). Writing ``best/`` and ``last/`` to disk had made NAB's
prediction runs 3-5 times slower (docs/pipelines/anomaly-detection.md has the measurements).

The fitted detector is saved as an rnnkit checkpoint by :meth:`Detector.save`.

Example::

    det = build_detector(DetectorConfig(kind="prediction", horizon=4)).fit(values, fit_end=750)
    scores = det.score(values)         # (N,) in [0, 1)
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from torch import nn

from rnnkit.anomaly.gaussian import ErrorScorer, GaussianErrorModel
from rnnkit.anomaly.models import EncDecAE, Predictor
from rnnkit.train import (
    OptimConfig,
    RunConfig,
    StepOutput,
    Trainer,
    TrainerConfig,
    TrainingError,
    make_fabric,
)

__all__ = ["DetectorConfig", "Detector", "DetectorFit", "PredictionDetector",
           "ReconstructionDetector", "build_detector", "load_detector"]


@dataclass
class DetectorConfig:
    """A detector's hyperparameters (the ``detector:`` section of ``configs/anomaly_*.yaml``).

    Attributes:
        kind: "prediction" (LSTM-AD) or "reconstruction" (EncDec-AD).
        cell / hidden_size / num_layers: the recurrent layer(s) (:func:`rnnkit.layers.build_layer`),
            or a stack of blocks ("mamba", "griffin", "xlstm", "deep_lru").
        horizon: ``l``, values predicted ahead (prediction).
        window: ``L``, window length (reconstruction).
        val_fraction: share of the fit rows kept, at their end, for validation.
        max_epochs / patience: early stopping on the validation loss.
        lr / batch_size / grad_clip: Adam, windows per step (reconstruction), global-norm clip.
        error_model / rolling_window / refit_every / shrinkage: see :mod:`rnnkit.anomaly.gaussian`.
        seed: initialisation and batch order.
    """

    kind: Literal["prediction", "reconstruction"] = "prediction"
    cell: str = "lstm"
    hidden_size: int = 32
    num_layers: int = 1
    horizon: int = 4
    window: int = 32
    val_fraction: float = 0.3
    max_epochs: int = 300
    patience: int = 30
    lr: float = 5e-3
    batch_size: int = 64
    grad_clip: float = 1.0
    error_model: Literal["validation", "rolling"] = "validation"
    rolling_window: int = 2000
    refit_every: int = 100
    shrinkage: float = 0.1
    seed: int = 0


def _standardise(values: np.ndarray, mean: float, std: float) -> np.ndarray:
    return (np.asarray(values, dtype=np.float64).reshape(-1) - mean) / std


class Detector:
    """Shared part of the detectors: splits, scaling, the error model, save/load."""

    dim: int  # length d of an error vector
    valid_from: int  # first row with a complete error vector

    def __init__(self, config: DetectorConfig):
        c = config
        checks = (  # caught at train time, not when a saved detector first scores
            ("grad_clip", math.isfinite(c.grad_clip) and c.grad_clip > 0, "a positive norm"),
            ("batch_size", c.batch_size >= 1, "a positive integer"),
            ("max_epochs", c.max_epochs >= 1, "a positive integer"),
            ("patience", c.patience >= 0, "an integer >= 0"),
            ("lr", math.isfinite(c.lr) and c.lr > 0, "a positive learning rate"),
            ("rolling_window", c.rolling_window >= 2, "an integer >= 2"),
            ("refit_every", c.refit_every >= 1, "a positive integer"),
        )
        for key, ok, want in checks:
            if not ok:
                raise ValueError(f"{key}={getattr(c, key)}: expected {want}")
        if c.error_model == "rolling" and c.rolling_window <= self.dim:  # never refits otherwise
            raise ValueError(
                f"rolling_window={c.rolling_window}: expected more rows than the error vector's "
                f"length ({self.dim}), or the rolling Gaussian can never be refitted"
            )
        self.config = config
        self.mean, self.std = 0.0, 1.0
        self.fit_end = self.train_end = 0
        self.base: GaussianErrorModel | None = None
        self.history: dict[str, float] = {}
        self.step: str | None = None  # the training series' median step, where it had timestamps
        torch.manual_seed(config.seed)
        self.model = self._build()

    def _build(self) -> torch.nn.Module:
        raise NotImplementedError

    def _training_data(self, z: np.ndarray) -> None:
        """Build the training/validation tensors from the standardised fit rows ``z``."""
        raise NotImplementedError

    def batches(self, epoch: int) -> list:
        """The training batches of one epoch (order seeded by ``seed`` and ``epoch``)."""
        raise NotImplementedError

    def loss(self, batch) -> torch.Tensor:
        """Training loss (MSE in standardised units) of one batch."""
        raise NotImplementedError

    @torch.no_grad()
    def val_loss(self) -> float:
        """Validation MSE of the current model (inference mode)."""
        raise NotImplementedError

    def errors(self, values: np.ndarray) -> np.ndarray:
        """Error vectors ``(N, d)`` of a whole series (NaN rows before ``valid_from``)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ fit / score

    def prepare(self, values: np.ndarray, fit_end: int | None = None) -> None:
        """Split the fit rows, fit the scaler and build the training data (no training)."""
        x = np.asarray(values, dtype=np.float64).reshape(-1)
        fit_end = len(x) if fit_end is None else int(fit_end)
        if not 0.0 < self.config.val_fraction < 1.0:
            raise ValueError(f"val_fraction={self.config.val_fraction}: expected a value in (0, 1)")
        train_end = fit_end - int(round(self.config.val_fraction * fit_end))
        need = 2 * self.valid_from + 4
        if fit_end > len(x) or train_end < need or fit_end - train_end < 4:
            raise ValueError(f"fit rows [0, {fit_end}) of a {len(x)}-row series are too few: the "
                             f"training part needs >= {need} rows and validation >= 4")
        self.fit_end, self.train_end = fit_end, train_end
        self.mean = float(x[:train_end].mean())
        self.std = float(x[:train_end].std()) or 1.0
        self._fit_values = x[:fit_end]
        self._training_data(_standardise(x[:fit_end], self.mean, self.std))

    @property
    def fit_values(self) -> np.ndarray:
        """The rows ``[0, fit_end)`` :meth:`prepare` was given (float64)."""
        return self._fit_values

    def fit_error_model(self) -> GaussianErrorModel:
        """Fit the error Gaussian on the validation rows with the current network."""
        self.model.eval()
        e = self.errors(self._fit_values)[max(self.train_end, self.valid_from):self.fit_end]
        self.base = GaussianErrorModel.fit(e, self.config.shrinkage)
        return self.base

    def fit(self, values: np.ndarray, fit_end: int | None = None) -> Detector:
        """Train on rows ``[0, train_end)`` (Adam, clipping, early stopping on the validation
        loss, best weights kept; the module docstring has the schedule) under
        :class:`rnnkit.train.Trainer`, and fit the error Gaussian on ``[train_end, fit_end)``."""
        c = self.config
        self.prepare(values, fit_end)
        v0 = self.val_loss()
        if math.isnan(v0):
            raise ValueError(f"validation loss is {v0} from the first epoch: the fit rows contain "
                             "values the network cannot model (check the series for extreme "
                             "outliers)")
        # LSTM-AD's loop stops after *more than* `patience` epochs without improvement; the
        # Trainer after `patience` of them: one more keeps the published schedule
        tc = TrainerConfig(max_epochs=max(c.max_epochs - 1, 0), patience=c.patience + 1,
                           grad_clip=c.grad_clip, monitor="val_loss", mode="min",
                           accelerator="cpu", checkpoint_every_steps=None, loggers=[], plot=False,
                           progress=False, log_every_steps=10**9, checkpoints="memory",
                           validate_at_start=True)
        cfg = RunConfig(task="anomaly", data=None, model=c,
                        optim=OptimConfig(name="adam", lr=c.lr), trainer=tc)
        fabric = make_fabric(tc)
        fabric.launch()
        # validate_at_start: the untrained network is the first candidate for the best weights,
        # kept in memory (checkpoints="memory"): nothing is written
        with tempfile.TemporaryDirectory(prefix="rnnkit-detector-") as tmp:
            trainer = Trainer(cfg, DetectorFit(self), fabric, Path(tmp),
                              console=Console(quiet=True))
            try:
                trainer.fit()
            except TrainingError:  # the loss diverged: the best weights so far stand
                pass
            trainer.load_best()
        self.history = {"epochs": trainer.state.epoch + 1, "best_val_mse": trainer.state.best}
        self.fit_error_model()
        return self

    def error_scorer(self) -> ErrorScorer:
        c = self.config
        if self.base is None:
            raise RuntimeError("the detector is not fitted; call fit() or load_detector() first")
        return ErrorScorer(self.base, c.error_model, fit_end=self.fit_end, val_start=self.train_end,
                           window=c.rolling_window, every=c.refit_every, shrinkage=c.shrinkage)

    def score(self, values: np.ndarray) -> np.ndarray:
        """Anomaly scores ``(N,)`` in [0, 1) of a whole series (the batch path)."""
        return self.error_scorer().score_batch(self.errors(values), self.valid_from)

    # ------------------------------------------------------------------ checkpoints

    def save(self, directory: str | Path) -> Path:
        """Write an rnnkit checkpoint: model.safetensors, config.json (``{"task": "anomaly",
        "model": DetectorConfig}``, the layout ``rnnkit train`` writes too) and detector.json."""
        from rnnkit.runtime import __version__
        from rnnkit.train.checkpoint import write_checkpoint

        if self.base is None:
            raise RuntimeError("the detector is not fitted; call fit() before save()")
        state = {"mean": self.mean, "std": self.std, "fit_end": self.fit_end,
                 "train_end": self.train_end,
                 "error_model": self.base.to_dict(), "history": self.history}
        if self.step is not None:
            state["step"] = self.step

        def assets(d: Path) -> None:
            (d / "detector.json").write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")

        return write_checkpoint(directory, model_state=self.model.state_dict(),
                                config={"task": "anomaly", "model": asdict(self.config)},
                                task="anomaly",
                                version=__version__, write_assets=assets)


class DetectorFit:
    """A detector's training as a :class:`rnnkit.train.Task` (what :meth:`Detector.fit` runs).

    Trainer epoch ``e`` trains on the detector's ``batches(e + 1)``; ``valid`` is the
    validation MSE. Call :meth:`Detector.prepare` first.
    """

    name = "anomaly"
    item_name = "windows"
    eval_splits = ("valid",)

    def __init__(self, detector: Detector):
        self.detector = detector
        self.model: nn.Module = detector.model

    def setup(self, rank: int, world_size: int) -> None:
        if world_size != 1:
            raise ValueError("an anomaly detector trains in one process")

    def steps_per_epoch(self, epoch: int) -> int:
        return len(self.detector.batches(epoch + 1))

    def train_batches(self, epoch: int, start_step: int) -> Iterator[Any]:
        return iter(self.detector.batches(epoch + 1)[start_step:])

    def initial_carry(self) -> Any:
        return None

    def training_step(self, model: nn.Module, batch: Any, carry: Any) -> StepOutput:
        return StepOutput(self.detector.loss(batch), None, 1 if batch is None else len(batch))

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        return {"loss": self.detector.val_loss()}

    def write_assets(self, directory: Path) -> None:
        pass


class PredictionDetector(Detector):
    """LSTM-AD: errors of ``l``-step-ahead predictions (module docstring)."""

    def __init__(self, config: DetectorConfig):
        if config.horizon < 1:
            raise ValueError(f"horizon={config.horizon}: expected a positive integer")
        self.dim = self.valid_from = config.horizon
        super().__init__(config)

    def _build(self) -> Predictor:
        c = self.config
        return Predictor(c.cell, c.hidden_size, c.num_layers, c.horizon)

    def _training_data(self, z: np.ndarray) -> None:
        n, l = len(z), self.config.horizon
        rows = np.arange(n)[:, None] + np.arange(1, l + 1)[None, :]  # (N, l): row of each target
        self._x = torch.tensor(z, dtype=torch.float32).view(-1, 1, 1)  # (T, 1, 1)
        self._y = torch.tensor(np.where(rows < n, z[np.minimum(rows, n - 1)], np.nan),
                               dtype=torch.float32)
        self._tr = torch.tensor(rows < self.train_end)
        self._va = torch.tensor((rows >= self.train_end) & (rows < n))

    def batches(self, epoch: int) -> list:
        return [None]  # one full-sequence step per epoch: the fit rows are a few hundred

    def loss(self, batch) -> torch.Tensor:
        pred = self.model(self._x)[0][:, 0]  # (T, l)
        return F.mse_loss(pred[self._tr], self._y[self._tr])

    @torch.no_grad()
    def val_loss(self) -> float:
        self.model.eval()
        pred = self.model(self._x)[0][:, 0]  # (T, l)
        return float(F.mse_loss(pred[self._va], self._y[self._va]))

    @torch.no_grad()
    def predictions(self, values: np.ndarray) -> np.ndarray:
        """``P[t, j-1]``: the prediction of ``x_{t+j}`` made at row ``t``, standardised, (N, l)."""
        z = _standardise(values, self.mean, self.std)
        x = torch.tensor(z, dtype=torch.float32).view(-1, 1, 1)  # (N, 1, 1)
        return self.model(x)[0][:, 0].double().numpy()

    def errors(self, values: np.ndarray) -> np.ndarray:
        z = _standardise(values, self.mean, self.std)
        p = self.predictions(values)
        e = np.full((len(z), self.dim), np.nan)
        for j in range(1, self.dim + 1):
            e[j:, j - 1] = z[j:] - p[:-j, j - 1]
        return e


def _windows(z: np.ndarray, L: int) -> np.ndarray:
    """All windows of length ``L``: ``(N - L + 1, L)``, row ``k`` = ``z[k:k+L]``."""
    return np.lib.stride_tricks.sliding_window_view(z, L)


class ReconstructionDetector(Detector):
    """EncDec-AD: errors of reconstructing the last ``L`` rows (module docstring)."""

    def __init__(self, config: DetectorConfig):
        if config.window < 2:
            raise ValueError(f"window={config.window}: expected an integer >= 2")
        self.dim = config.window
        self.valid_from = config.window - 1
        super().__init__(config)

    def _build(self) -> EncDecAE:
        c = self.config
        return EncDecAE(c.cell, c.hidden_size, c.num_layers)

    def _training_data(self, z: np.ndarray) -> None:
        L = self.config.window
        w = torch.tensor(_windows(z, L), dtype=torch.float32)  # (K, L): window k ends at row k+L-1
        ends = np.arange(len(w)) + L - 1
        self._train_w = w[torch.tensor(ends < self.train_end)].T[..., None]  # (L, Ktr, 1)
        self._val_w = w[torch.tensor(ends >= self.train_end)].T[..., None]  # (L, Kva, 1)

    def batches(self, epoch: int) -> list:
        gen = torch.Generator().manual_seed(self.config.seed * 100003 + epoch)
        order = torch.randperm(self._train_w.size(1), generator=gen)
        return list(order.split(self.config.batch_size))

    def loss(self, batch) -> torch.Tensor:
        xb = self._train_w[:, batch]  # (L, B, 1)
        return F.mse_loss(self.model(xb, teacher_forcing=True), xb)

    @torch.no_grad()
    def val_loss(self) -> float:
        self.model.eval()
        return float(F.mse_loss(self.model(self._val_w), self._val_w))

    @torch.no_grad()
    def reconstruct(self, windows: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """Free-running reconstructions of standardised windows ``(K, L)`` -> ``(K, L)``."""
        out = []
        for k in range(0, len(windows), chunk):
            xb = torch.tensor(windows[k:k + chunk], dtype=torch.float32).T[..., None]  # (L, B, 1)
            out.append(self.model(xb)[..., 0].T.double().numpy())  # (B, L)
        return np.concatenate(out) if out else np.zeros((0, self.dim))

    def errors(self, values: np.ndarray) -> np.ndarray:
        z = _standardise(values, self.mean, self.std)
        e = np.full((len(z), self.dim), np.nan)
        if len(z) >= self.dim:
            w = _windows(z, self.dim)
            e[self.valid_from:] = np.abs(w - self.reconstruct(w))
        return e


def build_detector(config: DetectorConfig) -> Detector:
    """An unfitted detector of ``config.kind``."""
    if config.kind == "prediction":
        return PredictionDetector(config)
    if config.kind == "reconstruction":
        return ReconstructionDetector(config)
    raise ValueError(f"detector.kind={config.kind!r}: expected 'prediction' or 'reconstruction'")


def load_detector(directory: str | Path) -> Detector:
    """A fitted detector from a checkpoint written by :meth:`Detector.save`."""
    from rnnkit.train.checkpoint import CheckpointError, load_model_weights, read_config
    from rnnkit.train.config import ConfigError, from_dict

    d = Path(directory)
    meta = read_config(d, task="anomaly")
    if not isinstance(meta["config"].get("model"), dict):
        raise CheckpointError(f"{d / 'config.json'}: no 'model' section with the detector's "
                              "configuration")
    try:
        cfg = from_dict(DetectorConfig, meta["config"]["model"], "model")
    except ConfigError as e:
        raise CheckpointError(f"{d / 'config.json'}: invalid detector config ({e})") from None
    path = d / "detector.json"
    if not path.is_file():
        raise CheckpointError(f"{d}: not a complete anomaly checkpoint (detector.json is missing)")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        det = build_detector(cfg)
        det.mean, det.std = float(state["mean"]), float(state["std"])
        det.fit_end, det.train_end = int(state["fit_end"]), int(state["train_end"])
        det.base = GaussianErrorModel.from_dict(state["error_model"])
        det.history = state.get("history", {})
        det.step = None if state.get("step") is None else str(state["step"])
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: corrupted detector state ({e})") from None
    load_model_weights(det.model, d)
    det.model.eval()
    return det
