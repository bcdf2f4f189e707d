"""Config and state files are validated before anything is built or allocated (issue 19, item 5).

Each bad input gets one ``CheckpointError``/``ConfigError`` line naming the file (and the
field) and what was expected; none reaches the model constructors, the allocator or the
training loop as a traceback.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors import SafetensorError

from rnnkit.commands import main as cli
from rnnkit.train import checkpoint as ck
from rnnkit.train import load_recipe, run_training
from rnnkit.train.checkpoint import CheckpointError
from rnnkit.train.config import ConfigError


def _copy(run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(run, out)
    return out


def _edit(path, change):
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def _one_line(e):
    msg = str(e.value)
    assert "\n" not in msg and len(msg) < 600, msg
    return msg


# --------------------------------------------------------------------------- config.json


def test_unknown_extras_keyword_in_config_json(trained, tmp_path):
    from rnnkit.tasks.lm import load_lm_checkpoint

    run = _copy(trained, tmp_path)
    _edit(run / "last" / "config.json", lambda m: m["config"]["model"].update(extras={"bogus": 1}))
    with pytest.raises(CheckpointError) as e:
        load_lm_checkpoint(run / "last")
    msg = _one_line(e)
    assert "config.json" in msg and "model.extras" in msg and "bogus" in msg


def test_unknown_extras_keyword_in_recipe(tmp_path, corpus, lm_helpers):
    recipe = lm_helpers[0](tmp_path, corpus, model={"extras": {"bogus": 1}})
    with pytest.raises(ConfigError) as e:
        run_training(load_recipe(recipe), out=tmp_path / "run")
    assert "model.extras" in _one_line(e) and "bogus" in str(e.value)


def test_generate_cli_on_bad_extras_prints_one_line(trained, tmp_path, capsys):
    run = _copy(trained, tmp_path)
    _edit(run / "last" / "config.json", lambda m: m["config"]["model"].update(extras={"bogus": 1}))
    assert cli(["generate", str(run / "last"), "--prompt", "Th", "--length", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "config.json" in err and "bogus" in err, err


@pytest.mark.parametrize("name", ["config.json", "trainer_state.json"])
def test_deeply_nested_json(trained, tmp_path, name):
    run = _copy(trained, tmp_path)
    (run / "last" / name).write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CheckpointError) as e:
        if name == "config.json":
            ck.read_config(run / "last")
        else:
            ck.read_trainer_state(run / "last")
    assert name in _one_line(e) and "nested" in str(e.value)


def test_deeply_nested_but_parsable_trainer_state(resumable):
    """Nesting that json accepts (500 levels) but that would overflow the readers."""
    run = resumable
    _edit(run / "last" / "trainer_state.json", lambda m: m.update(carry=json.loads("[" * 500 + "]" * 500)))
    _rehash(run / "last")
    with pytest.raises(CheckpointError) as e:
        run_training(load_recipe(run.parent / "recipe.yaml"), resume=run, test_split=None)
    assert "trainer_state.json" in _one_line(e) and "nested" in str(e.value)


def test_deeply_nested_yaml_recipe_and_override(tmp_path, corpus, lm_helpers):
    recipe = lm_helpers[0](tmp_path, corpus)
    deep = "[" * 2_000 + "]" * 2_000
    with pytest.raises(ConfigError) as e:
        load_recipe(recipe, [f"trainer.loggers={deep}"])
    assert "trainer.loggers" in _one_line(e) and "nested" in str(e.value)
    bad = tmp_path / "deep.yaml"
    bad.write_text(f"task: lm\ndata: {deep}\n")
    with pytest.raises(ConfigError) as e:
        load_recipe(bad)
    assert "deep.yaml" in _one_line(e) and "nested" in str(e.value)


# --------------------------------------------------------------------------- memory


def test_huge_hidden_size_is_refused_before_allocating(tmp_path, corpus, lm_helpers):
    recipe = lm_helpers[0](tmp_path, corpus, model={"hidden_size": 1_000_000})
    with pytest.raises(ConfigError) as e:
        run_training(load_recipe(recipe), out=tmp_path / "run")
    msg = _one_line(e)
    assert "TB" in msg and "trainer.max_model_memory_gb" in msg, msg
    assert not (tmp_path / "run").exists()  # nothing left behind


def test_huge_hidden_size_in_checkpoint_config(trained, tmp_path):
    from rnnkit.tasks.lm import load_lm_checkpoint

    run = _copy(trained, tmp_path)
    _edit(run / "last" / "config.json", lambda m: m["config"]["model"].update(hidden_size=10**7))
    with pytest.raises(CheckpointError) as e:
        load_lm_checkpoint(run / "last")
    msg = _one_line(e)
    assert "config.json" in msg and "GB" in msg, msg


def test_memory_limit_override(tmp_path, corpus, lm_helpers):
    """The limit is a setting: a tiny one refuses the tiny model, ``inf`` turns the check off."""
    recipe = lm_helpers[0](tmp_path, corpus, trainer={"max_steps": 1})
    with pytest.raises(ConfigError, match=r"trainer.max_model_memory_gb=1e-06"):
        run_training(load_recipe(recipe, ["trainer.max_model_memory_gb=1e-6"]), out=tmp_path / "a")
    out = run_training(load_recipe(recipe, ["trainer.max_model_memory_gb=inf"]), out=tmp_path / "b",
                       test_split=None)
    assert out["step"] == 1


def test_model_memory_estimate_counts_optimizer_state():
    from rnnkit.models.lm import LanguageModel, LMConfig
    from rnnkit.train.config import OptimConfig
    from rnnkit.train.sizing import model_memory

    with torch.device("meta"):
        m = LanguageModel(LMConfig(embedding_size=8, hidden_size=16, num_layers=2, tie_weights=False), 11)
    n = sum(p.numel() for p in m.parameters())
    assert model_memory(m, None) == 4 * n
    assert model_memory(m, OptimConfig(name="adam")) == 3 * 4 * n
    assert model_memory(m, OptimConfig(name="sgd")) == 4 * n
    assert model_memory(m, OptimConfig(name="sgd", momentum=0.9)) == 2 * 4 * n


# --------------------------------------------------------------------------- disk full


def _small_model():
    from rnnkit.models.lm import LanguageModel, LMConfig

    torch.manual_seed(0)
    return LanguageModel(LMConfig(embedding_size=8, hidden_size=8, num_layers=1), 11)


def _write(d, model):
    return ck.write_checkpoint(d, model_state=model.state_dict(), config={"a": 1}, task="lm", version="0")


def test_disk_full_during_safetensors_write(tmp_path, monkeypatch):
    m = _small_model()
    _write(tmp_path / "last", m)
    before = (tmp_path / "last" / "model.safetensors").read_bytes()

    def full(*a, **k):
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                              'message: "No space left on device" })')

    monkeypatch.setattr(ck, "save_file", full)
    with pytest.raises(CheckpointError) as e:
        _write(tmp_path / "last", m)
    msg = _one_line(e)
    assert str(tmp_path / "last") in msg and "No space left on device" in msg, msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
    assert (tmp_path / "last" / "model.safetensors").read_bytes() == before


def test_disk_full_during_json_write(tmp_path, monkeypatch):
    import errno
    import os

    m = _small_model()
    _write(tmp_path / "last", m)
    real = os.fsync

    def full(fd):
        real(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(CheckpointError) as e:
        _write(tmp_path / "last", m)
    assert "No space left on device" in _one_line(e)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
    ck.load_model_weights(_small_model(), tmp_path / "last")


def test_disk_full_in_training_is_one_line(tmp_path, corpus, lm_helpers, monkeypatch, capsys):
    recipe = lm_helpers[0](tmp_path, corpus, trainer={"max_steps": 6})

    def full(*a, **k):
        raise SafetensorError("Error while serializing: IoError(No space left on device)")

    monkeypatch.setattr(ck, "save_file", full)
    assert cli(["train", str(recipe), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and "last" in err[0], err


# --------------------------------------------------------------------------- trainer_state.json


@pytest.fixture
def resumable(trained, tmp_path):
    run = _copy(trained, tmp_path)
    shutil.copy(trained.parent / "recipe.yaml", tmp_path / "recipe.yaml")
    return run


@pytest.mark.parametrize("field, value, expected", [
    ("state.epoch", "one", r"state\.epoch.*expected an integer >= 0"),
    ("state.step", [1], r"state\.step.*expected an integer >= 0"),
    ("state.best", "low", r"state\.best.*expected a number or null"),
    ("state.history", {"a": 1}, r"state\.history.*expected a list"),
    ("state.stopped", 3, r"state\.stopped.*expected one of"),
    ("world_size", 0, r"world_size.*expected an integer >= 1"),
    ("schedule.plateau_bad", "x", r"schedule\.plateau_bad.*expected an integer >= 0"),
    ("rng.python", [3, [1, 2], None], r"rng\.python.*expected"),
    ("rng.numpy", "MT19937", r"rng\.numpy.*expected"),
    ("optimizer.state", {"0": 1}, r"optimizer\.state.*expected a list"),
    ("last_val", [], r"last_val.*expected an object"),
])
def test_trainer_state_with_wrong_types(resumable, monkeypatch, field, value, expected):
    """Refused with the file and field named, before the task (data, model) is built."""
    from rnnkit.tasks import TASKS

    run = resumable

    def change(m):
        node = m
        *path, last = field.split(".")
        for p in path:
            node = node[p]
        node[last] = value

    _edit(run / "last" / "trainer_state.json", change)
    _rehash(run / "last")
    built = []
    spec = TASKS["lm"]
    monkeypatch.setitem(TASKS, "lm", type(spec)(**{**spec.__dict__, "build": lambda *a, **k: built.append(1)}))
    with pytest.raises(CheckpointError, match=expected) as e:
        run_training(load_recipe(run.parent / "recipe.yaml"), resume=run, test_split=None)
    assert "trainer_state.json" in _one_line(e) and not built


def _rehash(d):
    """Re-bind trainer_state.json to trainer_state.safetensors after an edit (as a writer would)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    try:
        from rnnkit.train.checkpoint import TRAINER_JSON_SHA256, file_sha256
    except ImportError:  # checkpoints without the binding
        return
    t = load_file(str(d / "trainer_state.safetensors"))
    with safe_open(str(d / "trainer_state.safetensors"), "pt") as f:
        meta = dict(f.metadata() or {})
    meta[TRAINER_JSON_SHA256] = file_sha256(d / "trainer_state.json")
    save_file(t, str(d / "trainer_state.safetensors"), metadata=meta)


def test_edited_trainer_state_json_is_detected(resumable):
    """Byte changes to trainer_state.json that keep it valid JSON are still caught."""
    run = resumable
    _edit(run / "last" / "trainer_state.json", lambda m: m["state"].update(step=m["state"]["step"] + 1))
    with pytest.raises(CheckpointError, match="trainer_state.json.*does not match") as e:
        ck.read_trainer_state(run / "last")
    _one_line(e)


def test_resume_with_wrong_types_cli_is_one_line(resumable, capsys):
    run = resumable
    _edit(run / "last" / "trainer_state.json", lambda m: m["state"].update(epoch="one"))
    _rehash(run / "last")
    assert cli(["train", "--resume", str(run), "--set", "trainer.max_epochs=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trainer_state.json" in err[0] and "state.epoch" in err[0], err
