"""Optuna search: trials train for real, bad trials are pruned, the SQLite study resumes.

Dead workers' trials: test_tune_heartbeat.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rnnkit.commands import main
from rnnkit.train.config import ConfigError, load_recipe
from rnnkit.tune import load_search_recipe, run_search

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def recipe(helpers):
    """``recipe(tmp, search, **trainer)`` -> a tiny char-LM search recipe file."""

    def make(tmp: Path, search: dict, **trainer) -> Path:
        return _recipe(helpers, tmp, search, **trainer)

    return make


def _recipe(h, tmp: Path, search: dict, **trainer) -> Path:
    trainer = {"max_steps": 16, "val_every_steps": 4, **trainer}
    r = h.lm_recipe(h.make_text(tmp / "corpus.txt", 4000), **trainer)
    r["model"].update(hidden_size=16, embedding_size=8, num_layers=1)
    r["trainer"]["out_dir"] = str(tmp / "runs")
    r["search"] = search
    path = tmp / "tiny_search.yaml"
    path.write_text(yaml.safe_dump(r))
    return path


LR = {"optim.lr": {"type": "categorical", "choices": [1e-6, 0.03]}}


def test_search_prunes_bad_trials_and_writes_outputs(recipe, tmp_path):
    rec = recipe(tmp_path, {"sampler": "random", "pruner": "median", "startup_trials": 1, "seed": 3,
                             "space": {**LR, "model.cell": {"type": "categorical", "choices": ["lstm", "gru"]}}})
    s = run_search(rec, trials=6, out=tmp_path / "out", log=lambda *a: None)
    rows = json.loads((tmp_path / "out" / "trials.json").read_text())["rows"]
    assert s["trials"] == 6 and s["complete"] + s["pruned"] == 6
    pruned = [r for r in rows if r["state"] == "PRUNED"]
    assert pruned, "a trial with lr 1e-6 cannot beat the median and must be pruned"
    for r in pruned:  # stopped early: fewer validations than a full trial (16 steps / 4)
        assert r["params"]["optim.lr"] == 1e-6 and len(r["intermediate"]) < 4 and r["steps"] < 16
    full = [r for r in rows if r["state"] == "COMPLETE"]
    assert all(len(r["intermediate"]) == 4 for r in full)
    assert s["best"]["params"]["optim.lr"] == 0.03
    best = load_recipe(tmp_path / "out" / "best.yaml")  # a plain recipe rnnkit train accepts
    assert best.optim.lr == 0.03 and best.model.cell == s["best"]["params"]["model.cell"]
    assert (tmp_path / "out" / "history.png").stat().st_size > 10_000
    b = s["best"]
    summary = json.loads((Path(b["run_dir"]) / "summary.json").read_text())
    assert summary["best"] == pytest.approx(b["value"])  # the trial value is its run's best val_loss


def test_study_resumes_from_sqlite(recipe, tmp_path):
    rec = recipe(tmp_path, {"sampler": "tpe", "pruner": "none", "startup_trials": 2, "seed": 0,
                             "space": {"optim.lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True}}})
    out = tmp_path / "out"
    s1 = run_search(rec, trials=2, out=out, log=lambda *a: None)
    first = {r["number"]: r["params"] for r in json.loads((out / "trials.json").read_text())["rows"]}
    s2 = run_search(rec, trials=4, out=out, log=lambda *a: None)  # "interrupted" after 2: go on to 4
    rows = json.loads((out / "trials.json").read_text())["rows"]
    assert (s1["trials"], s2["trials"], s2["complete"]) == (2, 4, 4)
    assert {r["number"]: r["params"] for r in rows[:2]} == first  # the old trials are kept, not redone
    assert len({r["params"]["optim.lr"] for r in rows}) == 4
    assert run_search(rec, trials=4, out=out, log=lambda *a: None)["trials"] == 4  # nothing left to do


def test_grid_sampler_covers_the_grid_and_stops(recipe, tmp_path):
    rec = recipe(tmp_path, {"sampler": "grid", "pruner": "none", "space": {
        **LR, "model.hidden_size": {"type": "int", "low": 8, "high": 16, "step": 8}}}, max_steps=4)
    s = run_search(rec, trials=10, out=tmp_path / "out", log=lambda *a: None)
    rows = json.loads((tmp_path / "out" / "trials.json").read_text())["rows"]
    assert s["complete"] == 4
    assert {(r["params"]["optim.lr"], r["params"]["model.hidden_size"]) for r in rows} == {
        (a, b) for a in (1e-6, 0.03) for b in (8, 16)}


def test_a_trial_whose_values_make_an_invalid_recipe_fails_and_the_study_goes_on(recipe, tmp_path):
    # each value is in its range, but a cosine floor above the rate is not: that trial fails
    rec = recipe(tmp_path, {"sampler": "grid", "pruner": "none", "space": {
        "schedule.min_lr": {"type": "categorical", "choices": [0.0, 5.0]}}}, max_steps=4)
    raw = yaml.safe_load(rec.read_text())
    raw["schedule"] = {"name": "cosine"}
    rec.write_text(yaml.safe_dump(raw))
    lines = []
    s = run_search(rec, trials=2, out=tmp_path / "out", log=lines.append)
    assert s["complete"] == 1
    assert any("not trained, its values make an invalid recipe" in ln and "min_lr" in ln for ln in lines)


@pytest.mark.parametrize("space,needle", [
    ({}, "empty"),
    ({"optim.lr": {"type": "float", "low": 1.0, "high": 0.1}}, "low < high"),
    ({"optim.lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}, "log scale"),
    ({"optim.lr": {"type": "categorical"}}, "choices"),
    ({"optim.nope": {"type": "float", "low": 0.1, "high": 0.2}}, "optim.nope"),
    ({"optim.lr": {"type": "float", "low": 0.1, "high": 0.2, "spread": 1}}, "spread"),
])
def test_bad_search_sections_are_one_line_errors(recipe, tmp_path, space, needle):
    rec = recipe(tmp_path, {"space": space})
    with pytest.raises(ConfigError, match=needle):
        load_search_recipe(rec)
    assert main(["tune", str(rec), "--trials", "1"]) == 2


def test_grid_needs_values_for_floats(recipe, tmp_path):
    rec = recipe(tmp_path, {"sampler": "grid", "space": {"optim.lr": {"type": "float", "low": 0.1, "high": 0.2}}})
    with pytest.raises(ConfigError, match="grid"):
        load_search_recipe(rec)


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*_search.yaml")), ids=lambda p: p.stem)
def test_shipped_search_recipes_are_valid(path):
    raw, search = load_search_recipe(path)
    assert search.space and search.trials >= 1 and raw["trainer"].get("threads") == 1




def test_hyperband_pruner_prunes_only_bad_trials(recipe, tmp_path):
    rec = recipe(tmp_path, {"sampler": "random", "pruner": "hyperband", "seed": 3, "space": LR})
    s = run_search(rec, trials=8, out=tmp_path / "out", log=lambda *a: None)
    rows = json.loads((tmp_path / "out" / "trials.json").read_text())["rows"]
    pruned = [r for r in rows if r["state"] == "PRUNED"]
    assert s["pruned"] >= 1 and all(r["params"]["optim.lr"] == 1e-6 and len(r["intermediate"]) < 4 for r in pruned)
