"""Every shipped recipe loads, validates and builds its model; the PTB recipes match the paper."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnkit.data import KNOWN
from rnnkit.models.lm import LanguageModel
from rnnkit.tasks import task_names
from rnnkit.train.config import build_run_config, load_recipe, to_dict

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_there_are_recipes():
    names = {p.stem for p in CONFIGS}
    assert {"shakespeare_char", "ptb_small", "ptb_medium"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_recipe_is_valid(path):
    """Every recipe of every task loads into its typed config (unknown keys and wrong types fail)."""
    cfg = load_recipe(path)
    assert cfg.task in task_names() and cfg.trainer.max_epochs >= 1
    assert build_run_config(to_dict(cfg)) == cfg  # what a checkpoint's config.json holds reloads
    if cfg.task == "lm":
        assert cfg.data.corpus in KNOWN and cfg.data.batch_size >= 1
        model = LanguageModel(cfg.model, 50)  # builds: sizes, dropout and tying are consistent
        assert sum(p.numel() for p in model.parameters()) > 0


def test_ptb_small_is_zaremba_small():
    c = load_recipe(CONFIGS[[p.stem for p in CONFIGS].index("ptb_small")])
    m, d, o, s, t = c.model, c.data, c.optim, c.schedule, c.trainer
    assert (m.cell, m.num_layers, m.hidden_size, m.embedding_size, m.dropout, m.init_range) == ("lstm", 2, 200, 200, 0.0, 0.1)
    assert (d.batch_size, d.bptt, d.loss_reduction, d.level) == (20, 20, "sum_time", "word")
    assert (o.name, o.lr, o.momentum, t.grad_clip, t.max_epochs) == ("sgd", 1.0, 0.0, 5.0, 13)
    assert (s.name, s.decay_start, s.step_size, s.gamma) == ("step", 4, 1, 0.5)
