"""The search space, --trials and --storage are checked up front: one-line errors naming the
field, not a silently different search, an Optuna error at the first trial, or a traceback."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from rnnkit.commands import main
from rnnkit.train.config import ConfigError
from rnnkit.tune import load_search_recipe, run_search
from rnnkit.tune.space import Param
from rnnkit.tune.study import storage_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def recipe(helpers, tmp_path):
    """``recipe(search)`` -> a tiny char-LM search recipe file (never trained here)."""

    def make(search: dict) -> Path:
        r = helpers.lm_recipe(helpers.make_text(tmp_path / "corpus.txt", 2000), max_steps=2)
        r["model"].update(hidden_size=16, embedding_size=8, num_layers=1)
        r["trainer"]["out_dir"] = str(tmp_path / "runs")
        r["search"] = search
        path = tmp_path / "s.yaml"
        path.write_text(yaml.safe_dump(r))
        return path

    return make


HS = "model.hidden_size"


@pytest.mark.parametrize("param,needle", [
    ({"type": "int", "low": 16, "high": 64, "step": 0}, r"step > 0, got 0"),
    ({"type": "int", "low": 16, "high": 64, "step": -8}, r"step > 0, got -8"),
    ({"type": "int", "low": 16, "high": 64, "step": 1.5}, r"integer step, got 1\.5"),
    ({"type": "int", "low": 16, "high": 64, "step": 100}, r"step 100 is larger than high - low = 48"),
    ({"type": "int", "low": 16, "high": 64, "step": 20}, r"not a multiple of step 20"),
    ({"type": "int", "low": 16, "high": 64, "grid": [16, 128]}, r"grid\[1\]: 128 is outside low..high = 16..64"),
    ({"type": "int", "low": 16, "high": 64, "grid": [16, 32.5]}, r"grid\[1\]: expected an integer"),
    ({"type": "int", "low": 16, "high": 64, "grid": []}, r"grid: expected a non-empty list"),
    ({"type": "int", "low": 16, "high": 64, "choices": [16, 32]}, r"'choices' does not apply to an int range"),
    ({"type": "categorical", "choices": [16, 32], "low": 16}, r"low does not apply to a categorical"),
    ({"type": "categorical", "choices": [16, 32], "log": True}, r"log does not apply to a categorical"),
    ({"type": "categorical", "choices": [16, 32], "grid": [16]}, r"grid does not apply to a categorical"),
])
def test_bad_int_and_categorical_params_name_the_field(recipe, param, needle):
    rec = recipe({"sampler": "grid", "space": {HS: param}})
    with pytest.raises(ConfigError, match=rf"search\.space\.model\.hidden_size.*{needle}"):
        load_search_recipe(rec)


@pytest.mark.parametrize("param,needle", [
    ({"type": "float", "low": 0.0, "high": 0.5, "step": 0.0}, r"step > 0, got 0"),
    ({"type": "float", "low": 0.0, "high": 0.5, "step": -0.1}, r"step > 0, got -0\.1"),
    ({"type": "float", "low": 0.0, "high": math.inf}, r"finite high, got inf"),
    ({"type": "float", "low": -math.inf, "high": 0.5}, r"finite low, got -inf"),
    ({"type": "float", "low": 0.0, "high": 0.5, "choices": [0.1]}, r"'choices' does not apply"),
])
def test_float_params_fail_at_load_not_at_the_first_trial(recipe, param, needle):
    rec = recipe({"sampler": "random", "space": {"model.dropout": param}})
    with pytest.raises(ConfigError, match=rf"search\.space\.model\.dropout.*{needle}"):
        load_search_recipe(rec)
    assert main(["tune", str(rec), "--trials", "1"]) == 2


def test_a_grid_needs_the_grid_sampler(recipe):
    rec = recipe({"sampler": "tpe", "space": {
        "model.dropout": {"type": "float", "low": 0.0, "high": 0.5, "grid": [0.0, 0.5]}}})
    with pytest.raises(ConfigError, match=r"model\.dropout\.grid: only the grid sampler .* 'tpe'"):
        load_search_recipe(rec)


def test_empty_grid_is_a_one_line_error_not_an_index_error(recipe, capsys):
    rec = recipe({"sampler": "grid", "space": {
        "model.dropout": {"type": "float", "low": 0.0, "high": 0.5, "grid": []}}})
    assert main(["tune", str(rec), "--trials", "1"]) == 2
    err = capsys.readouterr().err
    assert "grid: expected a non-empty list" in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_valid_params_still_load_and_sample_as_before(recipe):
    rec = recipe({"sampler": "grid", "space": {
        HS: {"type": "int", "low": 16, "high": 64, "step": 24},
        "model.dropout": {"type": "float", "low": 0.0, "high": 0.5, "grid": [0.0, 0.25, 0.5]},
        "model.cell": {"type": "categorical", "choices": ["gru", "lstm"]}}})
    _, search = load_search_recipe(rec)
    assert search.grid() == {HS: [16, 40, 64], "model.dropout": [0.0, 0.25, 0.5],
                             "model.cell": ["gru", "lstm"]}
    Param(type="float", low=0.0, high=0.5, step=0.1).check("x")  # 0.5 / 0.1 is not exact in floats
    Param(type="float", low=1e-4, high=1e-2, log=True).check("x")


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*_search.yaml")), ids=lambda p: p.stem)
def test_shipped_search_recipes_still_load(path):
    load_search_recipe(path)


def test_zero_trials_is_an_error_not_the_default(recipe, tmp_path, capsys):
    rec = recipe({"sampler": "random", "trials": 2, "space": {
        "model.cell": {"type": "categorical", "choices": ["gru", "lstm"]}}})
    for n in (0, -1):
        with pytest.raises(ConfigError, match=rf"--trials {n}: expected a positive integer"):
            run_search(rec, trials=n, out=tmp_path / "o", log=lambda *a: None)
    assert not (tmp_path / "o" / "study.db").exists()  # nothing ran
    assert main(["tune", str(rec), "--trials", "0", "--out", str(tmp_path / "o")]) == 2
    assert "--trials 0: expected a positive integer" in capsys.readouterr().err


def test_a_storage_url_without_double_slash_is_named(recipe, tmp_path, capsys):
    rec = recipe({"sampler": "random", "space": {
        "model.cell": {"type": "categorical", "choices": ["gru", "lstm"]}}})
    with pytest.raises(ConfigError, match=r"--storage sqlite:/x\.db: a database URL needs '://'"):
        storage_url("sqlite:/x.db")
    assert storage_url("sqlite:///x.db") == "sqlite:///x.db"
    assert storage_url(tmp_path / "s.db") == f"sqlite:///{(tmp_path / 's.db').resolve()}"
    for bad, needle in ((f"sqlite:{tmp_path}/x.db", "needs '://'"),
                        (f"sqlite:///{tmp_path}/no/such/dir/x.db", "cannot open the study storage"),
                        ("nosuchdialect://h/db", "cannot open the study storage")):
        capsys.readouterr()
        assert main(["tune", str(rec), "--trials", "1", "--out", str(tmp_path / "o"),
                     "--storage", bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"rnnkit: error: --storage {bad}: ") and needle in err, err
        assert err.count("\n") == 1 and "Traceback" not in err


def test_search_recipes_are_read_as_strictly_as_training_recipes(tmp_path):
    from rnnkit.train.config import ConfigError
    from rnnkit.tune.space import load_search_recipe

    p = tmp_path / "s.yaml"  # a second search: section used to replace the first wholesale
    p.write_text((ROOT / "configs" / "shakespeare_char_search.yaml").read_text() + "\nsearch: {trials: 2}\n")
    with pytest.raises(ConfigError, match=r"s\.yaml:\d+:1: invalid YAML \(key 'search' repeated in one mapping"):
        load_search_recipe(p)
