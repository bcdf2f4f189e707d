"""Tiny real checkpoints of each pipeline, trained for a few steps by the real Trainer.

Session-scoped: each is built once (a second or two each) and shared by the tests of
search, compression, export and serving.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from rnnkit.train.config import build_run_config
from rnnkit.train.run import run_training

QUIET = {"loggers": ["csv"], "plot": False, "progress": False, "checkpoint_every_steps": None,
         "threads": 1, "accelerator": "cpu"}


def make_text(path: Path, n: int = 6000, seed: int = 0) -> Path:
    """A learnable character stream: words from a small lexicon, lines of 8 words."""
    rng = np.random.default_rng(seed)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far"]
    out, size = [], 0
    while size < n:
        line = " ".join(rng.choice(words, 8)) + "\n"
        out.append(line)
        size += len(line)
    path.write_text("".join(out))
    return path


def make_series_csv(path: Path, T: int = 400, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    ix = pd.date_range("2021-01-01", periods=T, freq="h")
    y = 5 + np.sin(2 * np.pi * np.arange(T) / 24) + 0.05 * rng.normal(size=T)
    pd.DataFrame({"time": ix, "y": y}).to_csv(path, index=False)
    return path


def lm_recipe(corpus: Path, **trainer) -> dict:
    return {"task": "lm",
            "data": {"corpus": str(corpus), "level": "char", "valid_fraction": 0.2, "batch_size": 8,
                     "bptt": 20, "eval_batch_size": 4},
            "model": {"cell": "lstm", "embedding_size": 16, "hidden_size": 24, "num_layers": 2},
            "optim": {"name": "adam", "lr": 0.01},
            "trainer": {"max_epochs": 1, "max_steps": 15, **QUIET, **trainer}}


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("prod")


@pytest.fixture(scope="session")
def lm_ckpt(workdir) -> Path:
    corpus = make_text(workdir / "corpus.txt")
    run_training(build_run_config(lm_recipe(corpus)), out=workdir / "lm", test_split=None)
    return workdir / "lm" / "best"


@pytest.fixture(scope="session")
def gru_lm_ckpt(workdir) -> Path:
    corpus = make_text(workdir / "corpus_gru.txt", seed=1)
    r = lm_recipe(corpus)
    r["model"]["cell"] = "gru"
    run_training(build_run_config(r), out=workdir / "lm_gru", test_split=None)
    return workdir / "lm_gru" / "best"


@pytest.fixture(scope="session")
def forecast_ckpt(workdir) -> Path:
    csv = make_series_csv(workdir / "series.csv")
    r = {"task": "forecast",
         "data": {"path": str(csv), "time_col": "time", "targets": ["y"], "input_length": 24, "horizon": 6,
                  "season_length": 24, "batch_size": 32, "val_size": 0.2, "test_size": 0.2},
         "model": {"cell": "gru", "hidden_size": 16, "strategy": "direct"},
         "optim": {"name": "adam", "lr": 0.01},
         "trainer": {"max_epochs": 2, **QUIET}}
    run_training(build_run_config(r), out=workdir / "forecast", test_split=None)
    return workdir / "forecast" / "best"


@pytest.fixture(scope="session")
def anomaly_ckpt(workdir) -> Path:
    from rnnkit.anomaly.detectors import DetectorConfig, build_detector

    t = np.arange(600)
    values = np.sin(2 * np.pi * t / 30) + 0.05 * np.random.default_rng(0).normal(size=600)
    det = build_detector(DetectorConfig(kind="prediction", cell="lstm", hidden_size=8, horizon=3,
                                        max_epochs=5, patience=2))
    det.fit(values, fit_end=300)
    det.save(workdir / "anomaly")
    np.save(workdir / "anomaly_values.npy", values)
    return workdir / "anomaly"


@pytest.fixture(scope="session")
def audio_ckpt(workdir) -> Path:
    """An audio classifier checkpoint with random weights (the layout predict/export load)."""
    from rnnkit import __version__
    from rnnkit.data.audio import FeatureConfig
    from rnnkit.models.audio import AudioClassifier
    from rnnkit.train.checkpoint import write_checkpoint
    from rnnkit.train.config import to_dict

    fc = FeatureConfig()
    F = fc.num_features
    cfg = build_run_config({"task": "audio", "model": {"cell": "gru", "conv_channels": [8], "conv_strides": [2],
                                                       "hidden_size": 8}})
    torch.manual_seed(0)
    model = AudioClassifier(cfg.model, F, 3)

    def assets(d: Path) -> None:
        (d / "labels.json").write_text(json.dumps(["a", "b", "c"]))
        (d / "features.json").write_text(json.dumps({"features": asdict(fc), "normalize": "global",
                                                     "mean": [0.0] * F, "std": [1.0] * F}))

    return write_checkpoint(workdir / "audio", model_state=model.state_dict(), config=to_dict(cfg),
                            task="audio", version=__version__, write_assets=assets)


@pytest.fixture(scope="session")
def train_lm():
    """``train_lm(out_dir, model=..., trainer=...)`` -> the best checkpoint of a tiny LM run."""

    def run(out: Path, model: dict | None = None, trainer: dict | None = None, n: int = 3000) -> Path:
        r = lm_recipe(make_text(Path(str(out) + "_corpus.txt"), n), **(trainer or {}))
        r["model"].update(model or {})
        run_training(build_run_config(r), out=out, test_split=None)
        return Path(out) / "best"

    return run


@pytest.fixture(scope="session")
def helpers():
    """The module's data/recipe helpers, for tests (conftest is not importable by name)."""
    import types

    return types.SimpleNamespace(QUIET=QUIET, lm_recipe=lm_recipe, make_text=make_text,
                                 make_series_csv=make_series_csv)
