"""The audio task end to end on synthetic tones: train, checkpoint, evaluate, predict."""
import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

sf = pytest.importorskip("soundfile")
pytest.importorskip("librosa")

from rnnkit.commands.predict import add_parser  # noqa: E402
from rnnkit.data.audio import AudioDataError  # noqa: E402
from rnnkit.tasks import get_task_spec  # noqa: E402
from rnnkit.tasks.audio import (  # noqa: E402
    AudioTask,
    evaluate_audio_checkpoint,
    predict_files,
    resolve_source,
)
from rnnkit.train.checkpoint import write_checkpoint  # noqa: E402
from rnnkit.train.config import ConfigError, build_run_config, load_recipe  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def tone(freq, seconds, rng, sr=8000):
    t = np.arange(int(sr * seconds)) / sr
    y = 0.4 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(len(t))
    return y.astype(np.float32)


def make_tones(folder: Path, per_class=10, seed=0):
    """'lo' (250-450 Hz) and 'hi' (1500-2500 Hz) clips named {label}_{speaker}_{index}.wav."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for label, (f0, f1) in (("lo", (250, 450)), ("hi", (1500, 2500))):
        for i in range(per_class):
            y = tone(rng.uniform(f0, f1), rng.uniform(0.12, 0.35), rng)
            sf.write(str(folder / f"{label}_{'ab'[i % 2]}_{i}.wav"), y, 8000)
    return folder


def recipe(source, **data):
    return {
        "task": "audio",
        "data": {"source": str(source), "test": "index<2", "valid_fraction": 0.25, "batch_size": 4,
                 "features": {"kind": "logmel", "n_mels": 16}, "time_width": 3, **data},
        "model": {"cell": "gru", "conv_channels": [8], "conv_strides": [2], "kernel_size": 3,
                  "hidden_size": 8, "dropout": 0.0},
        "trainer": {"seed": 0},
    }


def train_task(task, epochs=6, lr=0.02):
    """The Trainer's loop reduced to its core (the Trainer is tested in tests/train)."""
    task.setup(0, 1)
    opt = torch.optim.Adam(task.model.parameters(), lr=lr)
    for epoch in range(epochs):
        assert task.steps_per_epoch(epoch) == 3  # 12 training clips, batches of 4
        for batch in task.train_batches(epoch, 0):
            out = task.training_step(task.model, batch, task.initial_carry())
            opt.zero_grad()
            out.loss.backward()
            opt.step()
    task.model.eval()
    return task


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short training run shared by the tests below, saved as a checkpoint."""
    from rnnkit.train.config import to_dict

    tmp = tmp_path_factory.mktemp("audio")
    # the module's own cache, put back afterwards (it leaked into every later test before)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp / "cache"))
        src = make_tones(tmp / "tones")
        torch.manual_seed(0)
        cfg = build_run_config(recipe(src))
        task = train_task(AudioTask(cfg))
        metrics = {s: task.evaluate(task.model, s) for s in task.eval_splits}
        best = write_checkpoint(tmp / "run" / "best", model_state=task.model.state_dict(),
                                config=to_dict(cfg), task="audio", version="0",
                                write_assets=task.write_assets)
        yield tmp, src, {"best": best, "metrics": metrics}


def test_training_learns_the_tones_and_checkpoints(trained):
    tmp, _, run = trained
    best, test = run["best"], run["metrics"]["test"]
    assert test["acc"] == 1.0 and test["loss"] < 0.3  # 4 held-out clips of an easy task
    assert json.loads((best / "labels.json").read_text()) == ["hi", "lo"]
    feats = json.loads((best / "features.json").read_text())
    assert feats["features"]["n_mels"] == 16 and len(feats["mean"]) == 16
    ev = evaluate_audio_checkpoint(best)
    assert ev["clips"] == 4 and ev["acc"] == test["acc"]
    assert ev["loss"] == pytest.approx(test["loss"], rel=1e-5)
    assert set(ev["per_class_acc"]) == {"hi", "lo"}


def test_predict_files_and_cli(trained, capsys):
    tmp, _, run = trained
    best = run["best"]
    rng = np.random.default_rng(99)
    lo = tmp / "new_lo.wav"
    sf.write(str(lo), tone(330, 0.3, rng, sr=16000), 16000)  # another rate: resampled
    hi = tmp / "new_hi.flac"
    sf.write(str(hi), tone(2000, 0.3, rng), 8000)
    (r_lo, r_hi) = predict_files(best, [lo, hi], top_k=2)
    assert (r_lo["label"], r_hi["label"]) == ("lo", "hi")
    assert r_lo["prob"] > 0.5 and sum(p for _, p in r_lo["top"]) == pytest.approx(1.0, abs=1e-6)
    ap = argparse.ArgumentParser()
    add_parser(ap.add_subparsers())
    a = ap.parse_args(["predict", str(best), str(lo), str(hi)])
    assert a.func(a) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split("\t")[:2] for ln in lines] == [["new_lo.wav", "lo"], ["new_hi.flac", "hi"]]
    assert float(lines[0].split("\t")[2]) == pytest.approx(r_lo["prob"], abs=1e-3)


def test_predict_refuses_other_tasks_and_bad_audio(trained, tmp_path):
    _, _, run = trained
    other = write_checkpoint(tmp_path / "lm", model_state={"w": torch.zeros(1)}, config={},
                             task="lm", version="0")
    ap = argparse.ArgumentParser()
    add_parser(ap.add_subparsers())
    a = ap.parse_args(["predict", str(other), "x.wav"])
    with pytest.raises(ValueError, match="is a 'lm' checkpoint; predict supports asr, audio, classify"):
        a.func(a)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"nope")
    with pytest.raises(AudioDataError, match=r"bad\.wav: cannot read audio"):
        predict_files(run["best"], [bad])


def test_splits_by_field_and_per_class_validation(trained):
    tmp, src, _ = trained
    cfg = build_run_config(recipe(src, test="speaker=b", valid_fraction=0.25))
    task = AudioTask(cfg)
    items = task.items
    assert {items.fields[i]["speaker"] for i in task.parts["test"]} == {"b"}
    assert len(task.parts["test"]) == 10
    valid = [items.labels[i] for i in task.parts["valid"]]
    assert sorted(valid) == ["hi"] * 1 + ["lo"] * 1  # round(0.25 * 5) per class
    assert task.eval_splits == ("valid", "test")
    train = torch.cat([x for x, _ in task.data["train"]])  # normalised with training statistics
    torch.testing.assert_close(train.mean(0), torch.zeros(16), atol=1e-4, rtol=0)


def test_a_split_filter_matching_nothing_is_an_error(trained):
    _, src, _ = trained  # before: no test split (test) or no validation split (valid), silently
    with pytest.raises(ConfigError, match=r"config key 'data\.test': filter 'speaker=zz' matches none of "
                       r"the 20 files"):
        AudioTask(build_run_config(recipe(src, test="speaker=zz")))
    with pytest.raises(ConfigError, match=r"config key 'data\.valid': filter 'speaker=b' matches none of "
                       r"the 10 non-test files"):
        AudioTask(build_run_config(recipe(src, test="speaker=b", valid="speaker=b")))


def test_known_source_lookup_and_shipped_recipe(tmp_path, monkeypatch):
    monkeypatch.delenv("RNNKIT_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = load_recipe(ROOT / "configs" / "fsdd.yaml")
    assert cfg.task == "audio" and cfg.data.test == "index<5" and cfg.model.bidirectional
    assert cfg.data.features.kind == "mfcc" and cfg.data.features.num_features == 40
    assert get_task_spec("audio").data_config is type(cfg.data)
    with pytest.raises(AudioDataError, match="fsdd/recordings/ not found in"):
        resolve_source(cfg.data, str(tmp_path))
    (tmp_path / "fsdd" / "recordings").mkdir(parents=True)
    assert resolve_source(cfg.data, str(tmp_path))[0] == tmp_path / "fsdd" / "recordings"


def make_csv(tmp: Path, rows: list[tuple[str, str, str]]) -> Path:
    """``list.csv`` (path,label,split) over the tones of :func:`make_tones` in ``tmp/tones``."""
    make_tones(tmp / "tones", per_class=4)
    p = tmp / "list.csv"
    p.write_text("path,label,split\n" + "".join(f"tones/{f},{lab},{s}\n" for f, lab, s in rows))
    return p


def csv_recipe(source, **data):
    r = recipe(source, test="split=test", cache=False, **data)
    return build_run_config(r)


GOOD_ROWS = [(f"{lab}_{'ab'[i % 2]}_{i}.wav", lab, "test" if i == 0 else "train")
             for lab in ("lo", "hi") for i in range(4)]


@pytest.mark.parametrize("bad", [-0.2, 1.0, 1.5])
def test_valid_fraction_out_of_range_is_a_config_error(tmp_path, bad):


    src = make_csv(tmp_path, GOOD_ROWS)
    with pytest.raises(ConfigError, match=r"^config key 'data\.valid_fraction': expected a "
                       rf"fraction in \[0, 1\), got {bad}$"):
        AudioTask(csv_recipe(src, valid_fraction=bad))
    task = AudioTask(csv_recipe(src, valid_fraction=0.34))  # 3 training clips per class: 1 valid
    assert {s: len(v) for s, v in task.parts.items()} == {"train": 4, "valid": 2, "test": 2}


@pytest.mark.parametrize("key,value,expected", [
    ("freq_masks", -1, "a non-negative integer"), ("freq_width", -4, "a non-negative integer"),
    ("time_masks", -2, "a non-negative integer"), ("time_width", -1, "a non-negative integer"),
    ("max_time_fraction", -0.1, r"a fraction in \[0, 1\]"),
    ("max_time_fraction", 1.5, r"a fraction in \[0, 1\]"),
])
def test_spec_augment_keys_are_range_checked(tmp_path, key, value, expected):


    src = make_csv(tmp_path, GOOD_ROWS)
    with pytest.raises(ConfigError, match=rf"^config key 'data\.{key}': expected {expected}, "
                       rf"got {value}$"):
        AudioTask(csv_recipe(src, **{key: value}))
    ok = AudioTask(csv_recipe(src, freq_masks=0, freq_width=0, time_masks=0, time_width=0,
                              max_time_fraction=1.0))
    x, lengths, _ = next(iter(ok.train_batches(0, 0)))
    ok.training_step(ok.model, (x, lengths, _), None)


def test_classes_come_from_training_and_an_unseen_label_names_its_row(tmp_path):
    src = make_csv(tmp_path, GOOD_ROWS)
    task = AudioTask(csv_recipe(src, valid_fraction=0.0))
    assert task.classes == ["hi", "lo"] and set(task.parts) == {"train", "test"}
    # line 6 of the CSV (header = line 1): a test clip labelled 'mid', no training clip is
    rows = list(GOOD_ROWS)
    rows[4] = ("hi_a_0.wav", "mid", "test")
    src = make_csv(tmp_path, rows)
    with pytest.raises(AudioDataError, match=r"list\.csv:6: label 'mid' was never seen in "
                       r"training; known labels: 'hi', 'lo'$"):
        AudioTask(csv_recipe(src, valid_fraction=0.0))
    # the same for a validation clip picked by a filter
    rows[4] = ("hi_a_0.wav", "mid", "valid")
    src = make_csv(tmp_path, rows)
    with pytest.raises(AudioDataError, match=r"list\.csv:6: label 'mid' was never seen in "
                       r"training"):
        AudioTask(csv_recipe(src, valid="split=valid"))


@pytest.mark.parametrize("label", ["lo", "hi"])
def test_a_file_listed_twice_names_both_rows(tmp_path, label):
    rows = [*GOOD_ROWS, ("lo_b_1.wav", label, "train")]  # line 10 repeats line 3
    src = make_csv(tmp_path, rows)
    with pytest.raises(AudioDataError, match=r"list\.csv:10: audio file .*lo_b_1\.wav is "
                       r"listed twice \(also at .*list\.csv:3\); expected each file once$"):
        AudioTask(csv_recipe(src))
    # blank lines do not shift the line numbers
    text = src.read_text().splitlines()
    src.write_text("\n".join(text[:4] + [""] + text[4:]) + "\n")
    with pytest.raises(AudioDataError, match=r"list\.csv:11: .*also at .*list\.csv:3\)"):
        AudioTask(csv_recipe(src))
