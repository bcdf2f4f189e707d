"""Classify's quick-experiment subsets (data.max_train / data.max_eval): the training texts
are the ones earlier rnnkit chose, and depend on neither max_eval nor the eval splits, so a
mid-epoch resume may change max_eval (or the test file) but not max_train."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.data.textcls import LabeledTexts
from rnnkit.tasks.classify import ClassifyTask
from rnnkit.tasks.classify_data import ClassifyDataConfig, _subsets
from rnnkit.train.config import ConfigError, build_run_config
from rnnkit.train.run import _lays_out_batches, run_training


def _texts(split: str, n: int) -> LabeledTexts:
    return LabeledTexts([f"{split}{i}" for i in range(n)], [("ab"[i % 2],) for i in range(n)],
                        [f"{split}:{i}" for i in range(n)], False)


def _old_subsets(splits, max_train, max_eval, seed):
    """The selection before each split had its own generator: one generator, drawn in the
    splits' dict order, as ClassifyTask.__init__ wrote it."""
    rng = np.random.default_rng(seed)
    out = dict(splits)
    for split, data in splits.items():
        limit = max_train if split == "train" else max_eval
        if limit is not None and limit < len(data):
            out[split] = data.subset(sorted(rng.permutation(len(data))[:limit].tolist()))
    return out


# The orders ClassifyTask builds: IMDB (train, test), files (train, valid, test), a held-out
# valid (appended after test), train alone.
ORDERS = [("train", "test"), ("train", "valid", "test"), ("train", "test", "valid"), ("train",)]


@pytest.mark.parametrize("order", ORDERS, ids="-".join)
@pytest.mark.parametrize("seed", [0, 1234, 2**40 + 3])
@pytest.mark.parametrize("max_train", [None, 1, 17, 50, 200])
def test_training_texts_are_the_ones_earlier_rnnkit_chose(order, seed, max_train):
    """Existing checkpoints resume onto the same training texts, whatever max_eval was."""
    splits = {s: _texts(s, 100 if s == "train" else 30) for s in order}
    for max_eval in (None, 1, 7, 29, 30, 31):
        new = _subsets(splits, max_train, max_eval, seed)
        assert new["train"].texts == _old_subsets(splits, max_train, max_eval, seed)["train"].texts
        for s in order[1:]:
            assert len(new[s]) == min(max_eval or 30, 30)
            assert new[s].texts == sorted(set(new[s].texts), key=splits[s].texts.index)


def test_training_texts_depend_on_neither_max_eval_nor_the_eval_splits():
    """Not by the luck of train coming first in the dict: any order, any eval splits."""
    train = _texts("train", 100)
    want = _subsets({"train": train}, 20, None, 7)["train"].texts
    assert len(want) == 20
    for order in [("valid", "train"), ("test", "valid", "train"), ("valid", "train", "test")]:
        for max_eval in (None, 3, 10):
            splits = {s: train if s == "train" else _texts(s, 30) for s in order}
            assert _subsets(splits, 20, max_eval, 7)["train"].texts == want
    # each eval split has its own generator: its subset ignores max_train and the other splits
    valid = _texts("valid", 30)
    one = _subsets({"train": train, "valid": valid}, None, 5, 7)["valid"].texts
    assert _subsets({"test": _texts("test", 30), "train": train, "valid": valid},
                    20, 5, 7)["valid"].texts == one


def _csv(path: Path, n: int, seed: int) -> str:
    rng = random.Random(seed)
    words = {"pos": ["great", "loved"], "neg": ["awful", "hated"]}
    rows = [" ".join([rng.choice(["the", "film", "a", "plot"]) for _ in range(rng.randint(2, 6))]
                     + [rng.choice(words[c])]) + f",{c}" for c in words for _ in range(n)]
    rng.shuffle(rows)
    path.write_text("text,label\n" + "\n".join(rows) + "\n")
    return str(path)


def _raw(tmp: Path, **data) -> dict:
    return {"task": "classify",
            "data": {"train": _csv(tmp / "train.csv", 40, 0), "test": _csv(tmp / "test.csv", 10, 1),
                     "valid_fraction": 0.25, "batch_size": 4, "vocab_size": 50, "max_tokens": 8,
                     "max_train": 40, "max_eval": 8, **data},
            "model": {"embedding_dim": 8, "hidden_size": 8, "dropout": 0.0,
                      "embedding_dropout": 0.0},
            "trainer": {"max_epochs": 1, "seed": 3, "accelerator": "cpu", "progress": False,
                        "loggers": [], "plot": False, "out_dir": str(tmp / "runs"), "name": "c"}}


def test_the_task_trains_on_the_same_texts_whatever_max_eval_and_the_splits_reorder(
        tmp_path, monkeypatch):
    """ClassifyTask itself: the eval splits read first (another reader's order) or cut to
    another size leave the training texts and their batches alone."""
    import rnnkit.tasks.classify_task as ct

    def tasks():
        for max_eval in (None, 3, 8):
            yield ClassifyTask(build_run_config(_raw(tmp_path, max_eval=max_eval)))

    first = None
    for reorder in (False, True):
        if reorder:  # the eval splits before train in the dict
            read = ct._read_splits
            monkeypatch.setattr(ct, "_read_splits", lambda d, dd: dict(
                sorted(read(d, dd).items(), key=lambda kv: kv[0] == "train")))
        for task in tasks():
            ids = [x.tolist() for x in task.data["train"][0]]
            got = (ids, task.data["train"][1].tolist(), task._batches(0))
            assert len(ids) == 40
            first = first or got
            assert got == first


def test_max_eval_and_the_test_file_are_evaluation_only_keys():
    keys = ClassifyDataConfig.EVAL_ONLY_KEYS
    assert not _lays_out_batches("data.max_eval", keys)
    assert not _lays_out_batches("data.test", keys)
    assert not _lays_out_batches("data.eval_batch_size", keys)
    for key in ("max_train", "train", "valid", "valid_fraction", "batch_size", "max_tokens"):
        assert _lays_out_batches(f"data.{key}", keys), key


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """A tiny classify run stopped mid-epoch (batch 4 of 8), and the weights an unbroken
    epoch ends with."""
    tmp = tmp_path_factory.mktemp("classify_resume")
    whole = _raw(tmp)
    whole["trainer"]["name"] = "whole"
    run_training(build_run_config(whole), recipe_name="whole", test_split=None)
    raw = _raw(tmp)
    raw["trainer"]["max_steps"] = 4
    run_training(build_run_config(raw), recipe_name="c", test_split=None)
    state = json.loads((tmp / "runs" / "c" / "last" / "trainer_state.json").read_text())["state"]
    assert state["batch_in_epoch"] == 4 and state["epoch"] == 0, state
    return tmp


def _weights(run: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run / "last" / "model.safetensors"))


def _resume(stopped: Path, tmp_path: Path, **data) -> dict:
    import shutil

    run = Path(shutil.copytree(stopped / "runs" / "c", tmp_path / "c"))
    return run_training(build_run_config(_raw(stopped, **data)), recipe_name="c", resume=run,
                        test_split=None)


@pytest.mark.parametrize("data", [{"max_eval": 3}, {"test": None}], ids=["max_eval", "test"])
def test_a_mid_epoch_resume_may_change_max_eval_and_trains_on_the_same_batches(
        stopped, tmp_path, data, capsys):
    s = _resume(stopped, tmp_path, **data)
    key = "data." + next(iter(data))
    assert f"note: {key} change(s) evaluation only" in " ".join(capsys.readouterr().out.split())
    state = json.loads((stopped / "runs" / "whole" / "last" / "trainer_state.json").read_text())
    assert s["epoch"] == 1 and s["step"] == state["state"]["step"], (s, state["state"])
    whole, resumed = _weights(stopped / "runs" / "whole"), _weights(tmp_path / "c")
    assert whole.keys() == resumed.keys()
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


@pytest.mark.parametrize("data", [{"max_train": 30}, {"valid_fraction": 0.2}])
def test_a_mid_epoch_resume_still_refuses_another_max_train(stopped, tmp_path, data):
    with pytest.raises(ConfigError) as e:
        _resume(stopped, tmp_path, **data)
    msg = str(e.value)
    key = next(iter(data))
    assert "\n" not in msg and f"config key 'data.{key}'" in msg and "mid-epoch" in msg, msg
