"""Fixtures for the trainer tests: tiny language-modeling runs on a 2,000-character corpus."""

from __future__ import annotations

import gzip
import importlib.resources
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file


def tiny_corpus(directory: Path, n_chars: int = 2000) -> Path:
    """The first ``n_chars`` characters of the shipped tinyshakespeare, as a text file."""
    res = importlib.resources.files("rnnkit").joinpath("resources", "tinyshakespeare.txt.gz")
    text = gzip.decompress(res.read_bytes()).decode("utf-8")[:n_chars]
    path = Path(directory) / "tiny.txt"
    path.write_text(text, encoding="utf-8")
    return path


def tiny_recipe(directory: Path, corpus: Path, **sections) -> Path:
    """A recipe file for a small char LSTM; ``sections`` update data/model/optim/trainer."""
    raw = {
        "task": "lm",
        "data": {"corpus": str(corpus), "level": "char", "batch_size": 4, "bptt": 25, "eval_batch_size": 2},
        "model": {"cell": "lstm", "embedding_size": 8, "hidden_size": 16, "num_layers": 2, "dropout": 0.1,
                  "embedding_dropout": 0.1},
        "optim": {"name": "adam", "lr": 0.01},
        "schedule": {"name": "constant"},
        "trainer": {"max_epochs": 2, "checkpoint_every_steps": 5, "log_every_steps": 4, "progress": False,
                    "loggers": [], "plot": False, "seed": 7, "out_dir": str(Path(directory) / "runs")},
    }
    for k, v in sections.items():
        raw.setdefault(k, {}).update(v)
    path = Path(directory) / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def weights(run_dir: Path, which: str = "last") -> dict:
    return load_file(str(Path(run_dir) / which / "model.safetensors"))


@pytest.fixture
def corpus(tmp_path):
    """Path of a 2,000-character text file."""
    return tiny_corpus(tmp_path)


@pytest.fixture
def lm_helpers():
    """The helper functions (recipe writer, weight reader) for tests in this directory."""
    return tiny_recipe, weights


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished one-epoch run of the tiny char LSTM: ``<tmp>/run`` (``last/``, ``best/``), with
    its ``<tmp>/recipe.yaml``; shared by a module's tests, so copy it before changing it."""
    from rnnkit.train import load_recipe, run_training

    d = tmp_path_factory.mktemp("trained")
    recipe = tiny_recipe(d, tiny_corpus(d), trainer={"max_epochs": 1})
    run_training(load_recipe(recipe), out=d / "run", test_split=None)
    return d / "run"
