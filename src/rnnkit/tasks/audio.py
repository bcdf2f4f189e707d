"""Audio classification: labelled clips -> log-mel/MFCC frames -> CNN-BiRNN -> class.

The data (a folder with label subfolders, a CSV, or file names with a pattern such as
FSDD's ``{label}_{speaker}_{index}``; see :mod:`rnnkit.data.audio`) is split by field
filters, featurised once (cached), normalised with the training split's per-feature
statistics and batched with lengths. Per batch::

    x     = (feats - mean) / std                 (B, T, F), zero-padded, lengths (B,)
    x     = SpecAugment(x)                       training only (time and frequency masks)
    p     = softmax(model(x, lengths))           (B, K)
    loss  = mean_b -log p[b, y_b]                metrics: loss (nats), acc

Splits: ``test`` and ``valid`` are filters over the files' fields (FSDD's standard split is
``test: "index<5"``; a held-out speaker is ``test: "speaker=theo"``); without a ``valid``
filter, ``valid_fraction`` of the remaining files per class (seeded) is held out for early
stopping. A checkpoint stores ``labels.json`` and ``features.json`` (feature settings and
normalisation statistics), so :func:`predict_files` needs nothing else.

Example::

    cfg = load_recipe("configs/fsdd.yaml")
    summary = run_training(cfg, recipe_name="fsdd")
    predict_files("runs/fsdd/best", ["7_theo_0.wav"])   # [{"label": "7", "prob": 0.99, ...}]
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data._show import shown
from rnnkit.data.audio import (
    AudioDataError,
    AudioList,
    FeatureConfig,
    collate,
    compute_features,
    feature_table,
    list_audio,
    load_audio,
    normalise_features,
    select,
    spec_augment,
)
from rnnkit.models.audio import AudioClassifier, AudioConfig
from rnnkit.tasks.export_steps import ExportSpec, audio_export_spec
from rnnkit.tasks.predictors import AudioPredictor, maybe_int8
from rnnkit.train.checkpoint import (
    CheckpointError,
    load_model_weights,
    read_run_config,
)
from rnnkit.train.config import (
    ConfigError,
    RunConfig,
    from_dict,
)
from rnnkit.train.sizing import build_model
from rnnkit.train.task import StepOutput, TaskSpec, register_task

__all__ = ["AudioDataConfig", "AudioTask", "check_audio_data_config", "resolve_source",
           "load_audio_checkpoint", "predict_files", "evaluate_audio_checkpoint"]

#: known collections: name -> (folder under a data directory, label form, pattern)
KNOWN_AUDIO = {"fsdd": ("fsdd/recordings", "pattern", "{label}_{speaker}_{index}")}


@dataclass
class AudioDataConfig:
    """The ``data:`` section of an audio recipe.

    Attributes:
        source: "fsdd", a folder (label subfolders, or file names matching ``pattern``) or a CSV.
        labels / pattern / path_column / label_column: how labels are read (see list_audio).
        data_dir: where known collections live (else ``--data-dir``, $RNNKIT_DATA, the cache).
        test / valid: split filters over file fields, e.g. "index<5", "speaker=theo".
        valid_fraction: per-class share of the non-test files for validation when no ``valid``.
        features: frame features (:class:`~rnnkit.data.audio.FeatureConfig`).
        normalize: "global" (training mean/std per feature), "utterance" (per clip) or "none".
        spec_augment, freq_masks, freq_width, time_masks, time_width, max_time_fraction:
            SpecAugment during training (see spec_augment).
        batch_size / eval_batch_size: clips per batch.
        cache: cache features in ~/.cache/rnnkit/audio.
    """

    source: str = "fsdd"
    labels: Literal["auto", "folders", "csv", "pattern"] = "auto"
    pattern: str = "{label}_{speaker}_{index}"
    path_column: str = "path"
    label_column: str = "label"
    data_dir: str | None = None
    test: str | None = "index<5"
    valid: str | None = None
    valid_fraction: float = 0.1
    features: FeatureConfig = field(default_factory=FeatureConfig)
    normalize: Literal["global", "utterance", "none"] = "global"
    spec_augment: bool = True
    freq_masks: int = 2
    freq_width: int = 4
    time_masks: int = 2
    time_width: int = 8
    max_time_fraction: float = 0.2
    batch_size: int = 32
    eval_batch_size: int = 256
    cache: bool = True


def resolve_source(d: AudioDataConfig, data_dir: str | None = None) -> tuple[Path, str, str]:
    """``(path, labels, pattern)`` of ``d.source``: a path, or a known name looked up in
    ``data_dir``, ``d.data_dir``, ``$RNNKIT_DATA`` and ``~/.cache/rnnkit``."""
    if d.source not in KNOWN_AUDIO:
        p = Path(d.source).expanduser()
        if not p.exists():
            raise AudioDataError(f"data.source {d.source!r}: no such file or folder; expected a "
                                 f"folder of audio, a CSV or one of {sorted(KNOWN_AUDIO)}")
        return p, d.labels, d.pattern
    sub, labels, pattern = KNOWN_AUDIO[d.source]
    roots = [r for r in (data_dir, d.data_dir, os.environ.get("RNNKIT_DATA")) if r]
    roots.append(str(Path.home() / ".cache" / "rnnkit"))
    for r in roots:
        if (Path(r).expanduser() / sub).is_dir():
            return Path(r).expanduser() / sub, labels, pattern
    raise AudioDataError(f"data.source {d.source!r}: {sub}/ not found in {roots}; pass --data-dir "
                         "DIR or set RNNKIT_DATA to the folder holding it")


def check_audio_data_config(d: AudioDataConfig) -> None:
    """A :class:`ConfigError` naming the first key of ``d`` out of its range."""
    for key in ("batch_size", "eval_batch_size"):
        if getattr(d, key) < 1:
            raise ConfigError(
                f"config key 'data.{key}': expected a positive integer, got {getattr(d, key)}"
            )
    for key in ("freq_masks", "freq_width", "time_masks", "time_width"):
        if getattr(d, key) < 0:
            raise ConfigError(f"config key 'data.{key}': expected a non-negative integer, "
                              f"got {getattr(d, key)}")
    if not 0.0 <= d.max_time_fraction <= 1.0:
        raise ConfigError("config key 'data.max_time_fraction': expected a fraction in [0, 1], "
                          f"got {d.max_time_fraction}")
    if not 0.0 <= d.valid_fraction < 1.0:
        raise ConfigError("config key 'data.valid_fraction': expected a fraction in [0, 1), "
                          f"got {d.valid_fraction}")


def _split(items: AudioList, d: AudioDataConfig, seed: int) -> dict[str, list[int]]:
    """Indices of train/valid/test: filters, else a per-class seeded fraction for valid."""
    all_idx = set(range(len(items)))
    test = set(select(items, d.test)) if d.test else set()
    if d.test and not test:
        raise ConfigError(f"config key 'data.test': filter {d.test!r} matches none of the "
                          f"{len(items)} files; expected a filter that selects the test files")
    rest = sorted(all_idx - test)
    if d.valid:
        valid = set(select(items, d.valid)) - test
        if not valid:
            raise ConfigError(f"config key 'data.valid': filter {d.valid!r} matches none of "
                              f"the {len(rest)} non-test files; expected a filter that selects "
                              "the validation files (or no filter and data.valid_fraction)")
    else:
        rng = np.random.default_rng(seed)
        valid = set()
        for label in items.classes():
            idx = [i for i in rest if items.labels[i] == label]
            rng.shuffle(idx)
            valid.update(idx[:round(d.valid_fraction * len(idx))])
    parts = {"train": sorted(set(rest) - valid), "valid": sorted(valid), "test": sorted(test)}
    if not parts["train"]:
        raise ConfigError(f"data.test={d.test!r} / data.valid={d.valid!r}: no training files left")
    return {k: v for k, v in parts.items() if v}


class AudioTask:
    """The audio-classification task for :class:`~rnnkit.train.Trainer`.

    Args:
        config: the run config (``data``: :class:`AudioDataConfig`, ``model``: AudioConfig).
        data_dir: overrides ``data.data_dir`` (the CLI's ``--data-dir``).
    """

    name = "audio"
    item_name = "clips"
    loss_name = "cross-entropy (nats per clip)"  # the y-label of curves.png

    def __init__(self, config: RunConfig, *, data_dir: str | None = None):
        d: AudioDataConfig = config.data
        check_audio_data_config(d)
        self.config, self.seed = config, config.trainer.seed
        src, labels, pattern = resolve_source(d, data_dir)
        self.items = list_audio(src, labels, pattern, d.path_column, d.label_column)
        self.parts = _split(self.items, d, self.seed)
        # the classes are the training labels: a valid/test label never trained on is an error
        self.classes = self.items.subset(self.parts["train"]).classes()
        index = {c: k for k, c in enumerate(self.classes)}
        known = ", ".join(map(shown, self.classes[:20])) + (
            " ..." if len(self.classes) > 20 else "")
        for split in ("valid", "test"):
            for i in self.parts.get(split, []):
                if self.items.labels[i] not in index:
                    raise AudioDataError(
                        f"{self.items.place(i)}: label {shown(self.items.labels[i])} was never "
                        f"seen in training; known labels: {known}"
                    )
        feats = feature_table(self.items, d.features, cache=d.cache)
        train = np.concatenate([feats[i] for i in self.parts["train"]])  # (sum T, F)
        self.stats = {"normalize": d.normalize, "mean": train.mean(0).tolist(),
                      "std": (train.std(0) + 1e-5).tolist()}
        self.data = {
            s: [
                (
                    torch.from_numpy(normalise_features(feats[i], self.stats)),
                    index[self.items.labels[i]],
                )
                for i in idx
            ]
            for s, idx in self.parts.items()
        }
        self.model = build_model(
            AudioClassifier, config.model, d.features.num_features, len(self.classes), run=config
        )
        self.eval_splits = tuple(s for s in ("valid", "test") if s in self.data)
        self.rank, self.world = 0, 1

    def setup(self, rank: int, world_size: int) -> None:
        self.rank, self.world = rank, world_size

    def steps_per_epoch(self, epoch: int) -> int:
        """Batches per epoch; with several processes the last partial batch is dropped,
        so that no rank gets an empty share."""
        n, B = len(self.data["train"]), self.config.data.batch_size
        return max(1, n // B) if self.world > 1 else -(-n // B)

    def train_batches(self, epoch: int, start_step: int) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """Seeded shuffle per epoch; each rank takes every W-th clip of the global batch."""
        B, train = self.config.data.batch_size, self.data["train"]
        g = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        order = torch.randperm(len(train), generator=g).tolist()
        for k in range(start_step, self.steps_per_epoch(epoch)):
            chunk = order[k * B:(k + 1) * B][self.rank::self.world]
            yield collate([train[i] for i in chunk])

    def initial_carry(self) -> Any:
        return None

    def training_step(self, model: nn.Module, batch, carry: Any) -> StepOutput:
        d: AudioDataConfig = self.config.data
        dev = next(model.parameters()).device
        x, lengths, y = batch
        if d.spec_augment:
            x, _ = spec_augment(x, lengths, freq_masks=d.freq_masks, freq_width=d.freq_width,
                                time_masks=d.time_masks, time_width=d.time_width,
                                max_time_fraction=d.max_time_fraction)
        logits = model(x.to(dev), lengths.to(dev))  # (B, K)
        loss = F.cross_entropy(logits.float(), y.to(dev))
        return StepOutput(loss, None, int(y.numel()))

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        if split not in self.data:
            raise ValueError(
                f"split {split!r} is empty or unknown; available: {', '.join(self.data)}"
            )
        return _evaluate(model, self.data[split], self.config.data.eval_batch_size)

    def data_splits(self) -> dict[str, Any]:
        """Each split's (normalised features, label) clips, hashed for ``--resume``."""
        return dict(self.data)

    def write_assets(self, directory: Path) -> None:
        (directory / "labels.json").write_text(json.dumps(self.classes) + "\n")
        feats = {"features": asdict(self.config.data.features), **self.stats}
        (directory / "features.json").write_text(json.dumps(feats) + "\n")


@torch.no_grad()
def _evaluate(
    model: nn.Module, data: list[tuple[Tensor, int]], batch_size: int
) -> dict[str, float]:
    """Mean cross-entropy and accuracy; batches sorted by length to limit padding."""
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    order = sorted(range(len(data)), key=lambda i: data[i][0].shape[0])
    loss, correct = 0.0, 0
    for k in range(0, len(order), batch_size):
        x, lengths, y = collate([data[i] for i in order[k:k + batch_size]])
        logits = model(x.to(dev), lengths.to(dev)).float()  # (B, K)
        loss += float(F.cross_entropy(logits, y.to(dev), reduction="sum"))
        correct += int((logits.argmax(-1).cpu() == y).sum())
    model.train(was)
    return {"loss": loss / len(data), "acc": correct / len(data)}


def build_audio_task(config: RunConfig, data_dir: str | None = None) -> AudioTask:
    return AudioTask(config, data_dir=data_dir)




# --------------------------------------------------------------------------- checkpoints


def load_audio_checkpoint(directory: str | Path, *, map_location: str = "cpu"):
    """``(model (eval mode), classes, feature settings with statistics, run config)``."""
    d = Path(directory)
    _, cfg = read_run_config(d, task="audio")
    assets = {}
    for name in ("labels.json", "features.json"):
        if not (d / name).is_file():
            raise CheckpointError(f"{d}: not a complete audio checkpoint ({name} is missing)")
        try:
            assets[name] = json.loads((d / name).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{d / name}: corrupted ({e})") from None
    classes, feats = assets["labels.json"], assets["features.json"]
    fcfg = from_dict(FeatureConfig, feats["features"], "features")
    model = build_model(
        AudioClassifier,
        cfg.model,
        fcfg.num_features,
        len(classes),
        run=cfg,
        training=False,
        source=d / "config.json",
    )
    load_model_weights(model, d)
    model.to(map_location).eval()
    return model, classes, {**feats, "features": fcfg}, cfg


@torch.no_grad()
def predict_files(
    directory: str | Path, files: list[str | Path], top_k: int = 1
) -> list[dict[str, Any]]:
    """Label and probability of each audio file (resampled to the checkpoint's rate).

    Returns ``[{"file", "label", "prob", "top": [[label, prob], ...]}]``.
    """
    model, classes, feats, _ = load_audio_checkpoint(directory)
    fcfg: FeatureConfig = feats["features"]
    out = []
    for f in files:
        y, _ = load_audio(f, fcfg.sample_rate)
        # (1, T, F)
        x = torch.from_numpy(normalise_features(compute_features(y, fcfg), feats))[None]
        p = torch.softmax(model(x, torch.tensor([x.shape[1]])).float(), -1)[0]  # (K,)
        probs, idx = p.topk(min(top_k, len(classes)))
        top = [[classes[int(i)], float(q)] for q, i in zip(probs, idx)]
        out.append({"file": str(f), "label": top[0][0], "prob": top[0][1], "top": top})
    return out


def predict_inputs(
    checkpoint: str | Path, inputs: list[str], *, top_k: int = 1
) -> list[dict[str, Any]]:
    """``rnnkit predict`` for audio checkpoints: each input is an audio file's path."""
    out = predict_files(checkpoint, inputs, top_k=top_k)
    for r in out:
        rest = "  ".join(f"{label} {p:.3f}" for label, p in r["top"][1:])
        r["input"] = r["file"]
        r["text"] = f"{Path(r['file']).name}\t{r['label']}\t{r['prob']:.3f}" + (
            f"\t{rest}" if rest else ""
        )
    return out


def evaluate_audio_checkpoint(directory: str | Path, *, split: str = "test",
                              data_dir: str | None = None) -> dict[str, Any]:
    """Loss, accuracy and per-class accuracy of a checkpoint on ``split`` of its own data."""
    model, classes, _, cfg = load_audio_checkpoint(directory)
    task = AudioTask(cfg, data_dir=data_dir)
    if task.classes != classes:
        raise CheckpointError(f"{directory}: the data's classes {task.classes} differ from the "
                              f"checkpoint's {classes}")
    if split not in task.data:
        raise ValueError(f"--split {split}: not in the data; available: {', '.join(task.data)}")
    data = task.data[split]
    metrics = _evaluate(model, data, cfg.data.eval_batch_size)
    per_class = {}
    for k, c in enumerate(classes):
        sub = [item for item in data if item[1] == k]
        if sub:
            per_class[c] = _evaluate(model, sub, cfg.data.eval_batch_size)["acc"]
    return {"split": split, "clips": len(data), **metrics, "per_class_acc": per_class}


def _predictor(directory: Path, int8: bool) -> AudioPredictor:
    model, classes, feats, _ = load_audio_checkpoint(directory)
    return AudioPredictor(maybe_int8(model, int8), classes, feats)


def _export(directory: Path) -> ExportSpec:
    model, classes, _, _ = load_audio_checkpoint(directory)
    return audio_export_spec(model, classes)


SPEC = register_task(TaskSpec(
    name="audio",
    data_config=AudioDataConfig,
    model_config=AudioConfig,
    build=build_audio_task,
    description="audio classification (log-mel/MFCC, CNN front-end, bidirectional RNN)",
    evaluate=evaluate_audio_checkpoint,
    predict=predict_inputs,
    predictor=_predictor,
    export=_export,
))
