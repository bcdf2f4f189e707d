"""experiments/music/jsb.py: the published numbers it cites and the rewrite of result files'
references (no training)."""
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def jsb():
    spec = importlib.util.spec_from_file_location("_jsb", ROOT / "experiments/music/jsb.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_published_numbers_are_the_checked_ones(jsb):
    values = {o: {p["model"]: p["value"] for p in pubs} for o, pubs in jsb.PUBLISHED.items()}
    assert values["bernoulli"] == {"RNN (SGD)": 8.71, "RNN (Hessian-free)": 8.58,
                                   "tanh RNN": 9.10, "GRU": 8.54, "LSTM": 8.67}
    assert values["nade"] == {"RNN-NADE (SGD)": 5.56, "RNN-NADE (Hessian-free)": 5.19}
    for pubs in jsb.PUBLISHED.values():
        for p in pubs:  # every number says what confirmed it, or that nothing did
            assert p["checked"].split(":")[0] in (
                "verified", "value verified", "partly", "unsettled", "not verified")
    assert jsb.reference("nade")["value"] == 5.19
    assert jsb.reference("bernoulli")["source"].startswith("GRU, Chung")


def test_refresh_rewrites_references_and_met_only(jsb, tmp_path):
    old = {"reference": {"value": 1.0, "source": "from memory", "published": []},
           "target": "old", "met": True, "seeds": {"values": {"0": 5.5}}, "notes": "kept"}
    (tmp_path / "jsb_gru_nade.json").write_text(json.dumps({**old, "value": 5.5}))
    (tmp_path / "jsb_gru_bernoulli_tr6.json").write_text(
        json.dumps({**old, "value": 8.5, "met": False}))
    (tmp_path / "jsb_lstm_nade_partial.json").write_text(
        json.dumps({**old, "value": 5.0, "met": None}))
    (tmp_path / "other.json").write_text("{}")

    done = jsb.refresh_references(tmp_path)

    assert [p.name for p in done] == ["jsb_gru_bernoulli_tr6.json", "jsb_gru_nade.json",
                                      "jsb_lstm_nade_partial.json"]
    nade = json.loads((tmp_path / "jsb_gru_nade.json").read_text())
    assert nade["reference"]["value"] == 5.19 and nade["met"] is False  # 5.5 > 5.19
    assert nade["target"].startswith("mean over 3 seeds <= 5.19")
    assert [p["value"] for p in nade["reference"]["published"]] == [5.56, 5.19]
    assert nade["seeds"] == old["seeds"] and nade["notes"] == "kept" and nade["value"] == 5.5
    bern = json.loads((tmp_path / "jsb_gru_bernoulli_tr6.json").read_text())
    assert bern["reference"]["value"] == 8.54 and bern["met"] is True  # 8.5 <= 8.54
    partial = json.loads((tmp_path / "jsb_lstm_nade_partial.json").read_text())
    assert partial["met"] is None  # fewer than 3 seeds: not judged
    assert (tmp_path / "other.json").read_text() == "{}"


def test_a_variant_recipe_names_its_runs_and_its_augmentation(jsb, monkeypatch):
    monkeypatch.setattr(jsb, "TAG", "aug")
    monkeypatch.setattr(jsb, "RECIPE", "configs/jsb_gru_nade_aug.yaml")
    cmd = jsb._command("lstm", "nade", 2, ["optim.lr=0.001"])
    assert cmd[:2] == ["train", "configs/jsb_gru_nade_aug.yaml"]
    assert cmd[cmd.index("--out") + 1] == "runs/jsb_lstm_nade_aug_s2"
    assert cmd[-2:] == ["--set", "optim.lr=0.001"]
    assert jsb._transpose("nade", []) == "6"  # read from the recipe
    assert jsb._transpose("nade", ["data.transpose=3"]) == "3"  # an override wins
    monkeypatch.setattr(jsb, "TAG", "")
    monkeypatch.setattr(jsb, "RECIPE", None)
    assert jsb._command("gru", "bernoulli", 0, [])[1] == "configs/jsb_gru.yaml"
    assert jsb._transpose("bernoulli", []) == "0"


def test_a_recipe_without_a_tag_is_refused(jsb, capsys):
    with pytest.raises(SystemExit):
        jsb.main(["gru", "nade", "--recipe", "configs/jsb_gru_nade_aug.yaml", "--record-only"])
    assert "--recipe needs --tag" in capsys.readouterr().err


def test_the_model_label_says_what_sets_a_variant_apart(jsb, monkeypatch):
    assert jsb._model_label("gru", "nade", []) == "GRU, RNN-NADE output (64 NADE hidden units)"
    assert jsb._model_label("lstm", "bernoulli", []) == "LSTM, independent Bernoulli outputs"
    monkeypatch.setattr(jsb, "TAG", "aug")
    monkeypatch.setattr(jsb, "RECIPE", "configs/jsb_gru_nade_aug.yaml")
    assert jsb._model_label("gru", "nade", ["model.dropout=0.2"]) == (
        "GRU, RNN-NADE output (150 NADE hidden units), dropout 0.2, training pieces transposed "
        "by up to +-6 semitones, at most 400 epochs or 15 min of process CPU time (1 thread)")
    monkeypatch.setattr(jsb, "RECIPE", None)
    monkeypatch.setattr(jsb, "TAG", "tr6")
    assert jsb._model_label("gru", "bernoulli", ["data.transpose=6",
                                                 "trainer.max_time_minutes=3"]) == (
        "GRU, independent Bernoulli outputs, dropout 0.5, training pieces transposed by up to "
        "+-6 semitones, at most 200 epochs or 3 min of wall-clock time (1 thread)")
