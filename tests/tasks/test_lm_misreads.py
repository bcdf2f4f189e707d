"""LM inputs that used to be silently misread: a config level that is not the vocabulary's,
a negative validation fraction, and ``evaluate --data FILE`` scoring only the file's tail."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch

from rnnkit import __version__
from rnnkit.commands import main as cli
from rnnkit.data import Vocab
from rnnkit.data.lm import load_corpus
from rnnkit.models.lm import LanguageModel
from rnnkit.tasks.lm import LMTask, evaluate_checkpoint, load_lm_checkpoint
from rnnkit.train.checkpoint import CheckpointError, write_checkpoint
from rnnkit.train.config import ConfigError, build_run_config, to_dict


def _text(path, n=3000, seed=0):
    rng = random.Random(seed)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog"]
    out = ""
    while len(out) < n:
        out += " ".join(rng.choice(words) for _ in range(8)) + "\n"
    path.write_text(out[:n - 1] + "\n")
    return path


def _cfg(corpus, **data):
    return build_run_config({"task": "lm", "data": {"corpus": str(corpus), "level": "char", **data},
                             "model": {"cell": "lstm", "embedding_size": 8, "hidden_size": 8,
                                       "num_layers": 1}})


@pytest.fixture
def ckpt(tmp_path):
    """An untrained char-LM checkpoint of a 3,000-character corpus: ``(directory, corpus)``."""
    corpus = _text(tmp_path / "train.txt")
    cfg = _cfg(corpus)
    vocab = Vocab.build(list(corpus.read_text()), specials=(), level="char")
    torch.manual_seed(0)
    model = LanguageModel(cfg.model, len(vocab))
    d = write_checkpoint(tmp_path / "best", model_state=model.state_dict(), config=to_dict(cfg),
                         task="lm", version=__version__,
                         write_assets=lambda d: vocab.save(d / "vocab.json"))
    return d, corpus


def _edit_config(d, change):
    meta = json.loads((d / "config.json").read_text())
    change(meta)
    (d / "config.json").write_text(json.dumps(meta))


# --------------------------------------------------------------------------- data.level


def test_a_word_level_config_on_a_char_vocabulary_is_refused(ckpt):
    d, _ = ckpt
    _edit_config(d, lambda m: m["config"]["data"].__setitem__("level", "word"))
    with pytest.raises(CheckpointError) as e:
        load_lm_checkpoint(d)
    msg = str(e.value)
    assert "\n" not in msg and "config.json" in msg and "data.level" in msg and "'char'" in msg, msg


def test_level_mismatch_in_the_cli_is_one_line(ckpt, capsys):
    d, _ = ckpt
    _edit_config(d, lambda m: m["config"]["data"].__setitem__("level", "word"))
    assert cli(["generate", str(d), "--prompt", "th", "--length", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "data.level" in err, err


def test_a_matching_or_default_level_loads(ckpt):
    d, _ = ckpt
    load_lm_checkpoint(d)
    _edit_config(d, lambda m: m["config"]["data"].__setitem__("level", None))  # a file: char
    assert load_lm_checkpoint(d)[1].level == "char"


# --------------------------------------------------------------------------- fractions


@pytest.mark.parametrize("key,value", [("valid_fraction", -0.1), ("valid_fraction", math.nan),
                                       ("test_fraction", -0.5), ("valid_fraction", 1.5)])
def test_a_fraction_out_of_range_is_an_error_not_no_split(tmp_path, key, value):
    corpus = _text(tmp_path / "c.txt")
    with pytest.raises(ValueError, match=rf"{key}=.*expected a number in \[0, 1\)"):
        load_corpus(str(corpus), level="char", **{key: value})
    with pytest.raises(ConfigError) as e:
        LMTask(_cfg(corpus, **{key: value}))
    assert f"config key 'data.{key}'" in str(e.value)


def test_a_zero_fraction_still_means_no_split(tmp_path):
    corpus = _text(tmp_path / "c.txt")
    assert list(load_corpus(str(corpus), level="char", valid_fraction=0.0).splits) == ["train"]


def test_a_bad_fraction_is_refused_even_when_the_source_has_a_valid_file(tmp_path):
    d = tmp_path / "corpus"
    d.mkdir()
    _text(d / "train.txt")
    _text(d / "valid.txt", 300, seed=1)
    with pytest.raises(ValueError, match="valid_fraction=-0.1"):
        load_corpus(str(d), level="char", valid_fraction=-0.1)


# --------------------------------------------------------------------------- evaluate --data


def test_evaluate_data_file_scores_the_whole_file(ckpt, tmp_path):
    d, _ = ckpt
    other = _text(tmp_path / "other.txt", 3000, seed=3)
    r = evaluate_checkpoint(d, data=str(other))
    assert r["split"] == "file" and r["tokens"] == 3000 and r["corpus"] == str(other)


def test_evaluate_data_file_with_a_split_cuts_it_as_in_training(ckpt, tmp_path):
    d, _ = ckpt
    other = _text(tmp_path / "other.txt", 3000, seed=3)
    r = evaluate_checkpoint(d, data=str(other), split="valid")
    assert r["split"] == "valid" and r["tokens"] == 300
    assert evaluate_checkpoint(d, data=str(other), split="train")["tokens"] == 2700


def test_evaluate_without_data_keeps_the_checkpoints_valid_split(ckpt):
    d, _ = ckpt
    r = evaluate_checkpoint(d)
    assert r["split"] == "valid" and r["tokens"] == 300


def test_evaluate_data_directory_with_split_files_keeps_its_test_split(ckpt, tmp_path):
    d, corpus = ckpt
    src = tmp_path / "dir"
    src.mkdir()
    (src / "train.txt").write_text(corpus.read_text())
    _text(src / "test.txt", 500, seed=4)
    r = evaluate_checkpoint(d, data=str(src))
    assert r["split"] == "test" and r["tokens"] == 500


def test_evaluate_cli_data_file(ckpt, tmp_path, capsys):
    d, _ = ckpt
    other = _text(tmp_path / "other.txt", 3000, seed=3)
    assert cli(["evaluate", str(d), "--data", str(other)]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["split"] == "file" and r["tokens"] == 3000
