"""Typed configs: YAML recipes, --set overrides, coercion and one-line errors."""

from __future__ import annotations

import pytest

from rnnkit.models.lm import LMConfig
from rnnkit.tasks.lm import LMDataConfig
from rnnkit.train.config import (
    ConfigError,
    OptimConfig,
    TrainerConfig,
    apply_overrides,
    build_run_config,
    from_dict,
    load_recipe,
    to_dict,
)

RECIPE = """\
task: lm
data: {corpus: tinyshakespeare, batch_size: 8, bptt: 16}
model: {hidden_size: 32, embedding_size: 16, num_layers: 1}
optim: {name: sgd, lr: 1, betas: [0.8, 0.9]}
trainer: {max_epochs: 2, grad_clip: null}
"""


@pytest.fixture
def recipe(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text(RECIPE)
    return p


def test_recipe_types_and_defaults(recipe):
    cfg = load_recipe(recipe)
    assert isinstance(cfg.data, LMDataConfig) and isinstance(cfg.model, LMConfig)
    assert cfg.data.batch_size == 8 and cfg.data.eval_batch_size == 10  # default kept
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)  # int -> float
    assert cfg.optim.betas == (0.8, 0.9) and isinstance(cfg.optim.betas, tuple)
    assert cfg.trainer.grad_clip is None and cfg.trainer.max_epochs == 2
    # round trip through plain data gives the same typed config
    assert build_run_config(to_dict(cfg)) == cfg


def test_overrides_are_coerced(recipe):
    cfg = load_recipe(recipe, [
        "optim.lr=3e-4", "trainer.max_steps=7", "trainer.deterministic=true", "trainer.grad_clip=2.5",
        "data.level=word", "optim.betas=[0.5, 0.6]", "trainer.max_time_minutes=none",
        "model.extras={backend: loop}", "trainer.loggers=[csv]",
    ])
    assert cfg.optim.lr == pytest.approx(3e-4)
    assert cfg.trainer.max_steps == 7 and cfg.trainer.deterministic is True
    assert cfg.trainer.grad_clip == 2.5 and cfg.data.level == "word"
    assert cfg.optim.betas == (0.5, 0.6) and cfg.trainer.max_time_minutes is None
    assert cfg.model.extras == {"backend": "loop"} and cfg.trainer.loggers == ["csv"]


@pytest.mark.parametrize("override, needle", [
    ("optim.lrr=1", "unknown config key 'optim.lrr'; allowed keys in 'optim': name, lr, momentum"),
    ("bogus.x=1", "unknown config key 'bogus'; allowed top-level keys: task, data, model"),
    ("trainer.max_epochs=ten", "config key 'trainer.max_epochs': expected int, got 'ten' (str)"),
    ("trainer.max_epochs=2.5", "config key 'trainer.max_epochs': expected int, got '2.5'"),
    ("optim.lr=fast", "config key 'optim.lr': expected float, got 'fast'"),
    ("optim.name=adagrad", "config key 'optim.name': 'adagrad' is not one of 'sgd', 'adam', 'adamw', 'rmsprop'"),
    ("trainer.deterministic=maybe", "config key 'trainer.deterministic': expected bool"),
    ("optim.betas=[1, 2, 3]", "config key 'optim.betas': expected 2 values, got 3"),
    ("trainer.max_epochs", "expected key=value"),
    ("task=summarize", "unknown task 'summarize'; expected one of "),
    # torch scales by max_norm / norm: -1 would reverse every gradient, 0 zero them
    ("trainer.grad_clip=-1", "config key 'trainer.grad_clip': expected a positive norm or null"),
    ("trainer.grad_clip=0", "config key 'trainer.grad_clip': expected a positive norm or null"),
    ("trainer.max_epochs=0", "config key 'trainer.max_epochs': expected a positive integer, got 0"),
    ("trainer.patience=-1", "config key 'trainer.patience': expected an integer >= 0 or null"),
    ("trainer.threads=0", "config key 'trainer.threads': expected a positive integer or null"),
    ("trainer.min_delta=-0.1", "config key 'trainer.min_delta': expected a number >= 0"),
])
def test_bad_overrides_name_the_key(recipe, override, needle):
    with pytest.raises(ConfigError) as e:
        load_recipe(recipe, [override])
    msg = str(e.value)
    assert needle in msg and "\n" not in msg
    assert msg.startswith(str(recipe))  # names the recipe file


def test_wrong_type_in_yaml(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(RECIPE.replace("batch_size: 8", "batch_size: eight"))
    with pytest.raises(ConfigError, match=r"config key 'data.batch_size': expected int, got 'eight'"):
        load_recipe(p)
    p.write_text(RECIPE.replace("grad_clip: null", "grad_clip: [1]"))
    with pytest.raises(ConfigError, match=r"'trainer.grad_clip': expected float \| None, got \[1\]"):
        load_recipe(p)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")
    p = tmp_path / "e.yaml"
    p.write_text("")
    with pytest.raises(ConfigError, match="recipe is empty"):
        load_recipe(p)
    p.write_text("task: lm\ndata: {corpus: [unclosed\n")
    with pytest.raises(ConfigError, match=r"e\.yaml:\d+:\d+: invalid YAML"):
        load_recipe(p)
    p.write_bytes(b"task: lm\n\xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_recipe(p)
    p.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_recipe(p)
    p.write_text("data: {}\n")
    with pytest.raises(ConfigError, match="'task' is missing"):
        load_recipe(p)


def test_from_dict_and_apply_overrides_units():
    t = from_dict(TrainerConfig, {"devices": "2", "strategy": "ddp"}, "trainer")
    assert t.devices == 2 and t.strategy == "ddp"
    assert from_dict(OptimConfig, {}) == OptimConfig()
    raw = {"trainer": {"devices": 1}}
    out = apply_overrides(raw, ["trainer.devices=2", "optim.lr=0.5"])
    assert out == {"trainer": {"devices": "2"}, "optim": {"lr": "0.5"}}
    assert raw == {"trainer": {"devices": 1}}  # input untouched
    with pytest.raises(ConfigError, match="'task' is not a section"):
        apply_overrides({"task": "lm"}, ["task.x=1"])
