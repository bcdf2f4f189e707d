"""Recipes and overrides that used to be read as something other than what they say:
repeated keys, YAML 1.1 number and key forms, untyped ``--set`` values, out-of-range numbers.
Each is now a one-line ConfigError naming the file (and line) or the config key."""

from __future__ import annotations

import pytest

from rnnkit.train.config import ConfigError, ScheduleConfig, load_recipe
from rnnkit.train.optim import LRSchedule

RECIPE = """\
task: lm
data: {corpus: tinyshakespeare, batch_size: 8, bptt: 16}
model: {hidden_size: 32, embedding_size: 16, num_layers: 1}
optim:
  name: adam
  lr: 0.01
trainer:
  max_epochs: 2
"""


def write(tmp_path, text):
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


def one_line_error(path, overrides=None) -> str:
    with pytest.raises(ConfigError) as e:
        load_recipe(path, overrides)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(path))
    return msg


# --------------------------------------------------------------------- 1. repeated keys


def test_a_repeated_key_is_an_error_naming_file_line_and_key(tmp_path):
    p = write(tmp_path, RECIPE.replace("  lr: 0.01\n", "  lr: 0.01\n  lr: 0.9\n"))
    msg = one_line_error(p)  # was: lr = 0.9, the last one
    assert f"{p}:7:3: " in msg and "key 'lr' repeated in one mapping (first on line 6)" in msg
    p = write(tmp_path, RECIPE + "optim:\n  lr: 0.5\n")
    msg = one_line_error(p)  # was: the second section replaced the first wholesale
    assert f"{p}:9:1: " in msg and "key 'optim' repeated in one mapping (first on line 4)" in msg
    p = write(tmp_path, RECIPE.replace("batch_size: 8,", "batch_size: 8, batch_size: 4,"))
    assert "key 'batch_size' repeated" in one_line_error(p)  # flow mappings too


def test_merge_keys_and_aliases_still_work(tmp_path):
    p = write(tmp_path, RECIPE.replace("optim:\n  name: adam\n  lr: 0.01\n",
                                       "optim:\n  <<: {lr: 0.2, name: sgd}\n  lr: 0.3\n"))
    cfg = load_recipe(p)  # a merged key may be overridden by the mapping's own key
    assert cfg.optim.lr == 0.3 and cfg.optim.name == "sgd"
    p = write(tmp_path, RECIPE.replace("bptt: 16}", "bptt: &b 16, eval_bptt: *b}"))
    assert load_recipe(p).data.eval_bptt == 16


# --------------------------------------------------------------------- 2. YAML 1.1 quirks


@pytest.mark.parametrize("text, form, read_as", [
    ("010", "an octal integer", "8"),
    ("0x10", "a hexadecimal integer", "16"),
    ("0b11", "a binary integer", "3"),
    ("1:30", "a base-60 (sexagesimal) integer", "90"),
    ("1:30.5", "a base-60 (sexagesimal) number", "90.5"),
])
def test_non_decimal_yaml_numbers_are_errors(tmp_path, text, form, read_as):
    p = write(tmp_path, RECIPE + f"  max_steps: {text}\n")
    msg = one_line_error(p)
    assert f"{p}:9:14: " in msg and f"{text} is {form} to YAML 1.1, read as {read_as}" in msg
    assert "plain decimal" in msg and "quote it" in msg


def test_decimal_numbers_unchanged(tmp_path):
    p = write(tmp_path, RECIPE + "  max_steps: 1_000\n  seed: 0\n  min_delta: 0.0\n")
    t = load_recipe(p).trainer
    assert (t.max_steps, t.seed, t.min_delta) == (1000, 0, 0.0)
    # quoted, or --set text: read as written, in decimal
    assert load_recipe(write(tmp_path, RECIPE + "  max_steps: '010'\n")).trainer.max_steps == 10
    assert load_recipe(write(tmp_path, RECIPE), ["trainer.max_steps=010"]).trainer.max_steps == 10


@pytest.mark.parametrize("keys, shown", [
    ("{yes: pos, no: neg}", "key True was read as bool"),
    ("{on: pos}", "key True was read as bool"),
    ("{null: pos}", "key None was read as NoneType"),
    ("{1.50: pos}", "key 1.5 was read as float"),
])
def test_dict_str_keys_that_yaml_reads_as_other_types_are_errors(tmp_path, keys, shown):
    p = write(tmp_path, RECIPE.replace("model: {", f"model: {{extras: {keys}, "))
    # extras is dict[str, Any]: {True: 'pos'} used to become {'True': 'pos'}, matching nothing
    msg = one_line_error(p)
    assert "config key 'model.extras': " in msg and shown in msg and "quote the key" in msg


def test_int_and_quoted_keys_read_as_written(tmp_path):
    p = write(tmp_path, RECIPE.replace("model: {", "model: {extras: {1: a, 'yes': b}, "))
    assert load_recipe(p).model.extras == {"1": "a", "yes": "b"}


def test_section_keys_read_as_bool_say_so(tmp_path):
    msg = one_line_error(write(tmp_path, RECIPE + "  true: 1\n"))
    assert "unknown config key 'trainer.True' (read as bool: quote it)" in msg


# --------------------------------------------------------------------- 3. --set typing


def test_set_values_of_any_fields_are_typed(tmp_path):
    p = write(tmp_path, RECIPE)
    cfg = load_recipe(p, ["model.extras.residual=false", "model.extras.n=3",
                          "model.extras.rate=1.5e-3", "model.extras.none=null",
                          "model.extras.word=abc", "model.extras.deep.on=true",
                          "model.extras.hash=#x"])
    # was: {'residual': 'false', ...}: a non-empty string, so true to `if residual`
    assert cfg.model.extras == {"residual": False, "n": 3, "rate": 1.5e-3, "none": None,
                                "word": "abc", "deep": {"on": True}, "hash": "#x"}
    # recipe strings are strings, as written
    q = write(tmp_path, RECIPE.replace("model: {", "model: {extras: {residual: 'false'}, "))
    assert load_recipe(q).model.extras == {"residual": "false"}
    msg = one_line_error(p, ["model.extras.n=010"])
    assert "config key 'model.extras.n': 010 is an octal integer" in msg


def test_set_null_follows_the_field_type(tmp_path):
    p = write(tmp_path, RECIPE)
    assert load_recipe(p, ["trainer.name=null"]).trainer.name is None
    for text in ("null", "~", "None"):
        msg = one_line_error(p, [f"trainer.out_dir={text}"])  # was: a directory named 'null'
        assert f"config key 'trainer.out_dir': expected str, got null ({text!r}); this key " \
               "cannot be null" in msg
    t = load_recipe(p, ["trainer.out_dir=runs2", "trainer.name=x"]).trainer
    assert type(t.out_dir) is str and type(t.name) is str  # plain str, not the marker


# --------------------------------------------------------------------- 4. ranges


@pytest.mark.parametrize("override, needle", [
    (["schedule.name=cosine", "schedule.min_lr=-1"],
     "'schedule.min_lr': expected a rate in [0, optim.lr = 0.01]"),
    (["schedule.name=cosine", "schedule.min_lr=5"],
     "'schedule.min_lr': expected a rate in [0, optim.lr = 0.01]"),
    (["schedule.name=cosine", "schedule.min_lr=nan"], "'schedule.min_lr': expected a rate"),
    (["schedule.name=step", "schedule.decay_start=-3"],
     "'schedule.decay_start': expected an epoch >= 0 or null"),
    (["schedule.name=plateau", "schedule.patience=-3"],
     "'schedule.patience': expected an integer >= 0"),
    (["schedule.name=plateau", "schedule.threshold=nan"],
     "'schedule.threshold': expected a number >= 0 (finite), got nan"),
    (["schedule.name=step", "schedule.gamma=nan"],
     "'schedule.gamma': expected a decay factor in (0, 1] for step, got nan"),
    (["schedule.name=step", "schedule.gamma=10"],
     "'schedule.gamma': expected a decay factor in (0, 1] for step, got 10.0"),
    (["schedule.name=plateau", "schedule.gamma=1.5"], "'schedule.gamma': expected a decay"),
    (["schedule.warmup_steps=-1"], "'schedule.warmup_steps': expected an integer >= 0"),
    (["trainer.min_delta=inf"], "'trainer.min_delta': expected a number >= 0 (finite), got inf"),
    (["trainer.log_every_steps=-5"], "'trainer.log_every_steps': expected a positive integer"),
    (["trainer.log_every_steps=0"], "'trainer.log_every_steps': expected a positive integer"),
    (["optim.eps=0"], "'optim.eps': expected a positive, finite number (adam divides"),
    (["optim.name=rmsprop", "optim.eps=-1e-8"], "'optim.eps': expected a positive, finite"),
    (["optim.lr=nan"], "'optim.lr': expected a positive, finite learning rate, got nan"),
    (["optim.lr=inf"], "'optim.lr': expected a positive, finite learning rate, got inf"),
    (["optim.weight_decay=-1"], "'optim.weight_decay': expected a number >= 0"),
    (["optim.name=sgd", "optim.momentum=-1"], "'optim.momentum': expected a number >= 0"),
    (["optim.betas=[1.5, 2]"], "'optim.betas': expected two numbers in [0, 1)"),
    # 5. seeds: torch.manual_seed failed with "Overflow when unpacking long long"
    (["trainer.seed=99999999999999999999999"],
     "'trainer.seed': expected an integer in [0, 2**63), got 99999999999999999999999"),
    (["trainer.seed=-1"], "'trainer.seed': expected an integer in [0, 2**63), got -1"),
])
def test_out_of_range_numbers_name_the_key_when_read(tmp_path, override, needle):
    assert f"config key {needle}" in one_line_error(write(tmp_path, RECIPE), override)


@pytest.mark.parametrize("override", [
    ["schedule.name=cosine", "schedule.min_lr=0.01"],  # min_lr == lr: flat
    ["schedule.name=step", "schedule.gamma=1", "schedule.decay_start=0"],
    ["schedule.name=constant", "schedule.gamma=10"],  # gamma unused by constant
    ["schedule.name=plateau", "schedule.patience=0", "schedule.threshold=0"],
    ["optim.name=sgd", "optim.eps=0"],  # SGD has no eps
    ["trainer.seed=0", "trainer.log_every_steps=1", "trainer.min_delta=0"],
    [f"trainer.seed={2**63 - 1}"],
])
def test_edge_values_in_range_still_load(tmp_path, override):
    load_recipe(write(tmp_path, RECIPE), override)


def test_lr_schedule_checks_the_same_ranges():
    with pytest.raises(ConfigError, match=r"'schedule.min_lr': expected a rate in \[0, optim.lr"):
        LRSchedule(ScheduleConfig(name="cosine", min_lr=-1.0), 0.01)
    with pytest.raises(ConfigError, match=r"'schedule.gamma': expected a decay factor"):
        LRSchedule(ScheduleConfig(name="step", gamma=10.0), 0.01)
