"""experiments/asr/digits.py: the records have the issue's keys, say partial until complete, and
compare the folds with the isolated-digit classifier (finished runs are fixed summaries)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def digits(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("_digits", ROOT / "experiments/asr/digits.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "ROOT", tmp_path)
    monkeypatch.setattr(mod, "RESULTS", tmp_path / "results")
    return mod


def finish(mod, root: Path, item: str, wer: float):
    """A run's summary as the trainer and the driver's beam evaluation leave it."""
    kind, speaker, seed = mod._parse(item)
    d = root / "runs" / mod._name(kind, speaker, seed)
    d.mkdir(parents=True)
    s = {"test": {"test_wer": wer, "test_cer": wer / 2, "test_sentence_accuracy": 1 - 3 * wer},
         "beam": {"wer": wer * 0.7, "cer": wer / 2, "sentence_accuracy": 1 - 2 * wer},
         "epoch": 20, "stopped": "max_epochs", "wall_seconds": 100.0, "device": "cpu: test"}
    (d / "summary.json").write_text(json.dumps(s))


def test_standard_record_is_partial_then_complete(digits, tmp_path):
    assert digits.record_standard() is None
    finish(digits, tmp_path, "standard:0", 0.01)
    rec = digits.record_standard()
    assert rec["status"] == "partial: 1 of 3 seeds" and rec["met"] is None
    for k in ("dataset", "task", "metric", "value", "cer", "sentence_accuracy", "seeds",
              "command", "wall_seconds", "machine"):
        assert k in rec
    assert rec["metric"] == "wer" and "--out runs/digits_ctc_standard_s0" in rec["command"]
    finish(digits, tmp_path, "standard:1", 0.02)
    finish(digits, tmp_path, "standard:2", 0.03)
    digits.record_standard()
    rec = json.loads((tmp_path / "results" / "digits_ctc_standard.json").read_text())
    assert rec["value"] == pytest.approx(0.02) and rec["met"] is True
    assert rec["status"] == "complete" and rec["seeds"]["values"] == {"0": 0.01, "1": 0.02,
                                                                       "2": 0.03}
    assert rec["beam_lexicon"]["wer"] == pytest.approx(0.014)


def test_loso_record_compares_with_the_classifier_on_the_same_speakers(digits, tmp_path):
    finish(digits, tmp_path, "loso:lucas:0", 0.25)
    rec = digits.record_loso()
    assert rec["reference"]["value"] == pytest.approx(1 - 0.692) and rec["met"] is None
    assert "--set data.split=loso:lucas" in rec["command"]
    for s in digits.SPEAKERS:
        if s != "lucas":
            finish(digits, tmp_path, f"loso:{s}:0", 0.1)
    rec = digits.record_loso()
    assert rec["status"] == "complete" and rec["met"] is True  # 0.125 < 0.197
    assert rec["met_beam_lexicon"] is True  # 0.7 x 0.125
    assert rec["value"] == pytest.approx((0.25 + 5 * 0.1) / 6)


def test_queue_runs_the_labelled_standard_seed_first():
    spec = importlib.util.spec_from_file_location("_d", ROOT / "experiments/asr/digits.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.QUEUE[0] == "standard:0" and len(mod.QUEUE) == 9
    assert mod._command("loso", "theo", 0)[1] == "configs/digits_ctc_loso.yaml"


def test_a_run_of_an_older_recipe_is_stale_and_left_out_of_the_records(digits, tmp_path):
    import rnnkit.tasks.asr  # noqa: F401
    from rnnkit.train.config import load_recipe, to_dict

    finish(digits, tmp_path, "loso:theo:0", 0.2)
    args = digits._command("loso", "theo", 0)
    cfg = to_dict(load_recipe(ROOT / args[1], ["trainer.seed=0", "data.split=loso:theo"]))
    cfg["data"]["data_dir"], cfg["trainer"]["threads"] = "elsewhere", 2  # not settings
    best = tmp_path / "runs" / "digits_ctc_loso_theo_s0" / "best"
    best.mkdir()
    (best / "config.json").write_text(json.dumps({"config": cfg}))
    assert digits._stale("loso", "theo", 0) is None
    assert digits.record_loso()["per_speaker"]["theo"]["wer"] == 0.2
    cfg["data"]["normalize"] = "global" if cfg["data"]["normalize"] != "global" else "utterance"
    cfg["model"]["dropout"] = 0.5
    (best / "config.json").write_text(json.dumps({"config": cfg}))
    why = digits._stale("loso", "theo", 0)
    assert "data.normalize" in why and "model.dropout: 0.5 ->" in why
    assert digits.record_loso() is None  # the only fold is stale


def test_docs_block_is_made_from_the_records_between_the_markers(digits, tmp_path):
    finish(digits, tmp_path, "standard:0", 0.0099)
    finish(digits, tmp_path, "loso:george:0", 0.15)
    finish(digits, tmp_path, "loso:theo:0", 0.05)
    digits.record_standard()
    digits.record_loso()
    page = tmp_path / "asr.md"
    page.write_text("# top\n<!-- asr-results -->\nSTALE TEXT\n<!-- asr-results:end -->\nbottom\n")
    digits.write_docs(page)
    text = page.read_text()
    assert text.startswith("# top\n<!-- asr-results -->\n") and text.endswith(
        "<!-- asr-results:end -->\nbottom\n") and "STALE" not in text
    assert "| 0 | 0.99% | 0.50% |" in text  # seed 0: WER, CER
    assert "| george | 15.0% | 10.5% | 55.0% | 21.0% |" in text  # beam 0.7 x WER; classifier
    assert "| **mean of 2** | **10.0%** |" in text and "(2 so far)" in text
    assert "partial: 2 of 6 folds" in text and "torch " in text
