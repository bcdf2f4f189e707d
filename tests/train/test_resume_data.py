"""``--resume`` reads the data the run started on: the task's data is hashed into every
checkpoint, and training data edited in place (the same file, config and vocabulary) is
refused mid-epoch and named at an epoch's end."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
import torch
from rich.console import Console

from rnnkit.train import load_recipe, run_training
from rnnkit.train.checkpoint import CheckpointError
from rnnkit.train.fingerprint import fingerprint
from rnnkit.train.run import check_resume_data
from rnnkit.train.state import TrainState, check_trainer_state
from rnnkit.train.trainer import TrainingError


@pytest.fixture(scope="module")
def runs(tmp_path_factory, request):
    """A tiny char-LM run stopped mid-epoch (step 7 of 18) and one at an epoch's end, with
    their own corpus file: ``(directory, corpus text)``; copy a run and its corpus first."""
    from tests.train.conftest import tiny_corpus, tiny_recipe

    d = tmp_path_factory.mktemp("data_runs")
    corpus = tiny_corpus(d)
    recipe = tiny_recipe(d, corpus, trainer={"max_steps": 7, "seed": 7})
    run_training(load_recipe(recipe), out=d / "mid", test_split=None)
    run_training(load_recipe(recipe, ["trainer.max_steps=null", "trainer.max_epochs=1"]),
                 out=d / "end", test_split=None)
    return d, corpus.read_text()


def _resume(runs, which, tmp_path, edit=None, **kw):
    """Copy run ``which``, point its saved config at a copy of the corpus (edited by ``edit``)
    and resume it; returns the console text."""
    d, text = runs
    run = Path(shutil.copytree(d / which, tmp_path / which))
    corpus = tmp_path / "tiny.txt"
    corpus.write_text(edit(text) if edit else text)
    out = io.StringIO()
    recipe = load_recipe(d / "recipe.yaml", [f"data.corpus={corpus}", *kw.get("overrides", [])])
    # the saved config names the fixture's corpus: move it to the copy (a path is no batch key)
    cfg_path = run / "last" / "config.json"
    meta = json.loads(cfg_path.read_text())
    meta["config"]["data"]["corpus"] = str(corpus)
    cfg_path.write_text(json.dumps(meta))
    run_training(recipe, resume=run, test_split=None, console=Console(file=out, width=400))
    return out.getvalue()


def _reverse(text: str) -> str:
    """The same characters as often (so the same vocabulary, in the same order), reordered."""
    return text[::-1]


def test_checkpoints_record_the_hash_of_each_split(runs):
    d, text = runs
    meta = json.loads((d / "mid" / "last" / "trainer_state.json").read_text())
    assert set(meta["data_sha256"]) == {"train", "valid"}  # this corpus has no test split
    assert all(len(v) == 64 for v in meta["data_sha256"].values())


def test_an_edited_corpus_is_refused_mid_epoch_naming_the_file(runs, tmp_path):
    with pytest.raises(TrainingError) as e:
        _resume(runs, "mid", tmp_path, _reverse, overrides=["trainer.max_steps=null"])
    msg = str(e.value)
    assert "\n" not in msg
    assert "trainer_state.json: the training data is not what the run started on" in msg
    assert "mid-epoch (epoch 1, batch 7)" in msg, msg


def test_the_same_corpus_resumes_mid_epoch_and_says_nothing(runs, tmp_path):
    out = _resume(runs, "mid", tmp_path, overrides=["trainer.max_steps=9"])
    assert "resumed from" in out and "data changed" not in out


def test_at_an_epoch_end_an_edited_corpus_goes_on_and_is_named(runs, tmp_path):
    out = _resume(runs, "end", tmp_path, _reverse,
                  overrides=["trainer.max_steps=null", "trainer.max_epochs=2"])
    assert "data changed since last/ (the train, valid split(s) hash otherwise)" in out
    assert "validation figures from before may not compare" in out


def test_check_resume_data_by_hand(tmp_path):
    a, b = fingerprint([1]), fingerprint([2])
    mid, end = TrainState(batch_in_epoch=3), TrainState(epoch=1)
    last = tmp_path / "last"
    assert check_resume_data({"train": a, "valid": a}, {"train": a, "valid": b}, mid, last) == [
        "valid"]  # validation data only: allowed mid-epoch, named
    assert check_resume_data({"train": a}, {"train": b}, end, last) == ["train"]
    with pytest.raises(TrainingError, match=str(a[:12])):
        check_resume_data({"train": a}, {"train": b}, mid, last)
    # an older checkpoint, or a task without data_splits: nothing to compare
    assert check_resume_data(None, {"train": b}, mid, last) == []
    assert check_resume_data({"train": a}, None, mid, last) == []


def test_a_malformed_hash_in_trainer_state_is_refused_naming_the_field(runs):
    from rnnkit.train.checkpoint import read_trainer_state

    d, _ = runs
    meta, tensors = read_trainer_state(d / "mid" / "last")
    meta["data_sha256"] = {"train": "not-a-hash"}
    with pytest.raises(CheckpointError, match=r"field 'data_sha256\.train': expected a SHA-256"):
        check_trainer_state(meta, tensors, "trainer_state.json")
    assert torch.is_tensor(next(iter(tensors.values())))


def test_mid_epoch_an_edited_validation_split_goes_on_and_says_so(runs, tmp_path):
    """The last characters (the validation split's) reordered: the same vocabulary and
    training data, so the run goes on at its batch, and the header says what changed."""
    out = _resume(runs, "mid", tmp_path, lambda t: t[:-40] + t[-40:][::-1],
                  overrides=["trainer.max_steps=9"])
    assert ("data changed since last/ (the valid split(s) hash otherwise): the run goes on at "
            "batch 7 of the same training data; validation figures from before may not "
            "compare") in out, out
