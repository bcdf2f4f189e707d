"""``--resume`` goes on with the run as it started: the same vocabulary/labels (the task's
assets), and no change to how batches are laid out while the run is mid-epoch."""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
from pathlib import Path

import pytest
import torch
from rich.console import Console
from torch import nn

from rnnkit.train import load_recipe, run_training
from rnnkit.train.checkpoint import write_checkpoint
from rnnkit.train.config import ConfigError
from rnnkit.train.run import check_resume_assets
from rnnkit.train.trainer import TrainingError


def _one_line(e) -> str:
    msg = str(e.value)
    assert "\n" not in msg, msg
    return msg


def _helpers():
    """This directory's conftest (tiny_corpus, tiny_recipe), for a module-scoped fixture."""
    spec = importlib.util.spec_from_file_location("_train_conftest",
                                                  Path(__file__).with_name("conftest.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """A tiny char-LM run stopped mid-epoch (step 7 of 18) and one stopped at an epoch's end:
    ``(directory, recipe, corpus)``; copy the runs before resuming them."""
    h = _helpers()
    d = tmp_path_factory.mktemp("stopped")
    corpus = h.tiny_corpus(d)
    recipe = h.tiny_recipe(d, corpus, trainer={"max_steps": 7, "seed": 7})
    run_training(load_recipe(recipe), out=d / "mid", test_split=None)
    run_training(load_recipe(recipe, ["trainer.max_steps=null", "trainer.max_epochs=1"]),
                 out=d / "end", test_split=None)
    return d, recipe, corpus


def _copy(stopped, which, tmp_path) -> Path:
    return Path(shutil.copytree(stopped[0] / which, tmp_path / which))


def test_resume_keeps_the_checkpoints_vocabulary_when_the_corpus_order_changed(stopped, tmp_path):
    """The probe's case: the same characters, another frequency order (+4000 'z'). Rebuilt,
    every embedding row would stand for another character; the resume reads the new corpus
    through the checkpoint's vocabulary instead."""
    d, recipe, corpus = stopped
    run = _copy(stopped, "end", tmp_path)  # at an epoch's end data.corpus may name another file
    saved = (run / "last" / "vocab.json").read_bytes()
    changed = tmp_path / "tiny_z.txt"
    changed.write_text(corpus.read_text() + "z" * 4000)
    run_training(load_recipe(recipe, [f"data.corpus={changed}", "trainer.max_epochs=2",
                                      "trainer.max_steps=null"]), resume=run, test_split=None)
    assert json.loads((run / "last" / "vocab.json").read_bytes()) == json.loads(saved)
    assert json.loads((run / "last" / "trainer_state.json").read_text())["state"]["epoch"] >= 1


def test_resume_refuses_an_edited_corpus_the_vocabulary_cannot_spell(stopped, tmp_path):
    """``--resume RUN`` alone reads the run's saved config, whose corpus file was edited."""
    from rnnkit.train.run import recipe_or_resume

    d, recipe, corpus = stopped
    src = tmp_path / "src"
    src.mkdir()
    text = tmp_path / "src" / "tiny.txt"
    shutil.copy(corpus, text)
    run_training(load_recipe(recipe, [f"data.corpus={text}", "trainer.max_steps=3"]),
                 out=tmp_path / "run", test_split=None)
    text.write_text(text.read_text().replace("e", "Q"))  # 'e' gone, 'Q' new
    cfg, name = recipe_or_resume(None, ["trainer.max_steps=null"], tmp_path / "run")
    with pytest.raises(ValueError) as e:
        run_training(cfg, recipe_name=name, resume=tmp_path / "run", test_split=None)
    msg = _one_line(e)
    assert "'Q'" in msg, msg


def test_a_checkpoint_an_older_rnnkit_wrote_with_now_refused_ranges_loads_but_does_not_resume(
        stopped, tmp_path):
    """Training ranges (optim.eps > 0, ...) are checked for training, not for using weights."""
    from rnnkit.tasks.lm import load_lm_checkpoint
    from rnnkit.train.run import recipe_or_resume

    run = _copy(stopped, "end", tmp_path)
    cfg_path = run / "last" / "config.json"
    meta = json.loads(cfg_path.read_text())
    meta["config"]["optim"]["eps"] = 0.0  # accepted before 2026-12-07
    cfg_path.write_text(json.dumps(meta))
    model, vocab, cfg = load_lm_checkpoint(run / "last")
    assert cfg.optim.eps == 0.0 and len(vocab) > 10
    with pytest.raises(ConfigError, match=r"config key 'optim\.eps'"):
        recipe_or_resume(None, [], run)


@pytest.mark.parametrize("override", ["data.bptt=10", "data.batch_size=8",
                                      "data.variable_bptt=true", "trainer.seed=8",
                                      "data.corpus=other.txt"])
def test_mid_epoch_resume_refuses_a_change_of_batch_layout(stopped, tmp_path, override):
    d, recipe, _ = stopped
    run = _copy(stopped, "mid", tmp_path)
    key, value = override.split("=")
    with pytest.raises(ConfigError) as e:
        run_training(load_recipe(recipe, [override, "trainer.max_steps=null"]), resume=run,
                     test_split=None)
    msg = _one_line(e)
    assert f"config key '{key}'" in msg and "mid-epoch" in msg and "config.json" in msg, msg


def test_resume_prints_the_changed_keys_and_allows_harmless_ones(stopped, tmp_path):
    d, recipe, _ = stopped
    run = _copy(stopped, "mid", tmp_path)
    out = io.StringIO()
    summary = run_training(
        load_recipe(recipe, ["data.eval_bptt=9", "trainer.max_steps=9"]), resume=run,
        test_split=None, console=Console(file=out, width=400, highlight=False))
    assert summary["step"] == 9
    text = out.getvalue()
    assert "config changed since last/: data.eval_bptt null -> 9, trainer.max_steps 7 -> 9" in text


def test_resume_at_an_epoch_end_may_change_the_batch_layout(stopped, tmp_path):
    d, recipe, _ = stopped
    run = _copy(stopped, "end", tmp_path)
    out = io.StringIO()
    summary = run_training(
        load_recipe(recipe, ["data.bptt=10", "trainer.max_steps=null", "trainer.max_epochs=2"]),
        resume=run, test_split=None, console=Console(file=out, width=400))
    assert summary["epoch"] == 2 and "data.bptt 25 -> 10" in out.getvalue()


def test_resume_unchanged_prints_no_changes_and_goes_on(stopped, tmp_path):
    d, recipe, _ = stopped
    run = _copy(stopped, "mid", tmp_path)
    out = io.StringIO()
    run_training(load_recipe(recipe), resume=run, test_split=None,
                 console=Console(file=out, width=400))
    assert "config changed" not in out.getvalue() and "resumed from" in out.getvalue()


# --------------------------------------------------------------------------- assets, any task


class _Task:
    """The part of a Task that check_resume_assets uses: a model and its assets."""

    def __init__(self, labels, scale=None):
        torch.manual_seed(0)
        self.model = nn.Linear(2, len(labels))
        self.labels, self.scale = labels, scale

    def write_assets(self, directory: Path) -> None:
        (directory / "labels.json").write_text(json.dumps({"classes": self.labels}) + "\n")
        if self.scale is not None:
            (directory / "scaler.json").write_text(json.dumps(self.scale))


def _ckpt(tmp_path, task) -> Path:
    return write_checkpoint(tmp_path / "last", model_state=task.model.state_dict(), config={},
                            task="x", version="0", write_assets=task.write_assets)


def test_retrained_labels_are_refused_naming_the_file(tmp_path):
    last = _ckpt(tmp_path, _Task(["neg", "pos"]))
    with pytest.raises(TrainingError) as e:
        check_resume_assets(_Task(["pos", "neg"]), last)
    msg = _one_line(e)
    assert "labels.json" in msg and "classes[0]" in msg and "data changed" in msg, msg


def test_same_assets_pass_json_key_order_and_float_noise_aside(tmp_path):
    last = _ckpt(tmp_path, _Task(["a", "b"], {"mean": 0.1 + 0.2, "std": 2.0}))
    check_resume_assets(_Task(["a", "b"], {"std": 2.0, "mean": 0.3}), last)  # 1e-17 apart
    with pytest.raises(TrainingError, match=r"scaler\.json.*at mean"):
        check_resume_assets(_Task(["a", "b"], {"mean": 0.31, "std": 2.0}), last)


def test_an_asset_the_checkpoint_lacks_is_not_compared(tmp_path):
    last = _ckpt(tmp_path, _Task(["a", "b"]))
    check_resume_assets(_Task(["a", "b"], {"mean": 1.0}), last)


def test_only_the_data_part_of_an_asset_is_compared(tmp_path):
    """An anomaly detector's error model is fitted with the weights (and on another device
    rounds otherwise), and its history names where the file was: resume_assets writes the
    keys that come from the data, and only those are compared."""
    last = _ckpt(tmp_path, _Task(["a", "b"], {"mean": 1.0, "error_model": {"cov": [[2.0]]}}))

    class Part(_Task):
        def resume_assets(self, directory: Path) -> None:
            (directory / "scaler.json").write_text(json.dumps({"mean": self.scale["mean"]}))

    check_resume_assets(Part(["a", "b"], {"mean": 1.0}), last)
    with pytest.raises(TrainingError, match=r"scaler\.json.*at mean"):
        check_resume_assets(Part(["a", "b"], {"mean": 1.5}), last)


def test_evaluation_only_keys_may_change_mid_epoch():
    """A data config's EVAL_ONLY_KEYS (translate's beam, forecast's intervals) do not lay out
    the training batches, so a mid-epoch resume may change them; the rest may not."""
    from rnnkit.tasks.forecast_data import ForecastDataConfig
    from rnnkit.tasks.translate import TranslateDataConfig
    from rnnkit.train.run import _lays_out_batches

    tr, fc = TranslateDataConfig.EVAL_ONLY_KEYS, ForecastDataConfig.EVAL_ONLY_KEYS
    assert not _lays_out_batches("data.beam_size", tr) and _lays_out_batches("data.batch_size", tr)
    assert not _lays_out_batches("data.interval_level", fc) and _lays_out_batches("data.horizon", fc)
    assert _lays_out_batches("data.beam_size") and not _lays_out_batches("data.eval_batch_size")
    assert "EVAL_ONLY_KEYS" not in to_dict_keys(TranslateDataConfig())


def to_dict_keys(obj) -> set:
    import dataclasses

    return set(dataclasses.asdict(obj))
