"""``rnnkit anomaly`` commands, the anomaly recipes, the Trainer task, and bad-input errors."""

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnkit.commands import anomaly as anomaly_cli
from rnnkit.tasks.anomaly import load_anomaly_recipe

ROOT = Path(__file__).resolve().parents[2]


def _parse(argv):
    p = argparse.ArgumentParser(prog="rnnkit")
    anomaly_cli.add_parser(p.add_subparsers(dest="command"))
    return p.parse_args(argv)


def _series_csv(path, n=240, spike=200):
    t = pd.date_range("2014-01-01", periods=n, freq="5min")
    x = np.sin(np.arange(n) / 4.0) + 0.05 * np.random.default_rng(0).normal(size=n)
    x[spike] += 3.0
    pd.DataFrame({"timestamp": t.strftime("%Y-%m-%d %H:%M:%S"), "value": x}).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("recipe", sorted((ROOT / "configs").glob("anomaly_*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_validate(recipe):
    cfg = load_anomaly_recipe(recipe)
    assert cfg.task == "anomaly" and cfg.model.kind in ("prediction", "reconstruction")
    assert cfg.data.families == ["realKnownCause", "realAWSCloudwatch"]


def test_recipe_unknown_key_is_an_error(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("task: anomaly\nmodel: {kind: prediction, horizn: 3}\n")
    with pytest.raises(ValueError, match=r"unknown config key 'model.horizn'"):
        load_anomaly_recipe(p)


def test_train_then_score_batch_and_streaming(tmp_path, capsys):
    csv = _series_csv(tmp_path / "s.csv")
    a = _parse(["anomaly", "train", str(csv), "--out", str(tmp_path / "ckpt"), "--fit-fraction", "0.6",
                "--set", "model.max_epochs=20", "--set", "model.hidden_size=8", "--set", "model.horizon=2"])
    assert a.func(a) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["fit_rows"] == 144 and info["train_rows"] == 101  # 0.6 * 240; 30% of it validates
    outs = {}
    for mode in ("batch", "streaming"):
        argv = ["anomaly", "score", str(tmp_path / "ckpt"), str(csv), "--out", str(tmp_path / f"{mode}.csv"),
                "--threshold", "0.99"] + (["--streaming"] if mode == "streaming" else [])
        a = _parse(argv)
        assert a.func(a) == 0
        outs[mode] = pd.read_csv(tmp_path / f"{mode}.csv")
    np.testing.assert_allclose(outs["streaming"]["anomaly_score"], outs["batch"]["anomaly_score"], atol=1e-5)
    assert list(outs["batch"].columns) == ["timestamp", "value", "anomaly_score", "is_anomaly"]
    assert int(outs["batch"]["anomaly_score"].idxmax()) == 200


def test_score_rejects_bad_csv_naming_row_and_column(tmp_path):
    csv = _series_csv(tmp_path / "s.csv")
    a = _parse(["anomaly", "train", str(csv), "--out", str(tmp_path / "ckpt"), "--fit-fraction", "0.5",
                "--set", "model.max_epochs=2", "--set", "model.hidden_size=4"])
    a.func(a)
    bad = pd.read_csv(csv).astype({"value": object})
    bad.loc[7, "value"] = "oops"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    a = _parse(["anomaly", "score", str(tmp_path / "ckpt"), str(tmp_path / "bad.csv")])
    with pytest.raises(ValueError, match=r"bad\.csv: row 9, column 'value': non-numeric value 'oops'"):
        a.func(a)
    dup = pd.read_csv(csv)
    dup.loc[10, "timestamp"] = dup.loc[9, "timestamp"]
    dup.to_csv(tmp_path / "dup.csv", index=False)
    a = _parse(["anomaly", "score", str(tmp_path / "ckpt"), str(tmp_path / "dup.csv")])
    with pytest.raises(ValueError, match=r"dup\.csv: row 12, column 'timestamp': duplicate timestamp"
                                         r".*with --in-file-order$"):
        a.func(a)


def test_in_file_order_trains_and_scores_a_series_with_a_repeated_timestamp(tmp_path, capsys):
    """NAB's own files repeat 2014-03-09 03:00:00; `anomaly nab` reads them in file order, and
    so do train and score when asked: every row scored, in file order, the same scores as the
    series with the timestamp corrected (a detector reads values, not times)."""
    csv = _series_csv(tmp_path / "s.csv")
    dup = pd.read_csv(csv)
    dup.loc[10, "timestamp"] = dup.loc[9, "timestamp"]
    dup.to_csv(tmp_path / "dup.csv", index=False)
    train = ["anomaly", "train", str(tmp_path / "dup.csv"), "--out", str(tmp_path / "ckpt"),
             "--fit-fraction", "0.5", "--set", "model.max_epochs=2", "--set", "model.hidden_size=4"]
    a = _parse(train)
    with pytest.raises(ValueError, match="duplicate timestamp"):
        a.func(a)
    a = _parse(train + ["--in-file-order"])
    assert a.func(a) == 0
    capsys.readouterr()
    scores = {}
    for name, extra in (("dup.csv", ["--in-file-order"]), ("s.csv", [])):
        out = tmp_path / f"scores_{name}"
        a = _parse(["anomaly", "score", str(tmp_path / "ckpt"), str(tmp_path / name),
                    "--out", str(out), *extra])
        assert a.func(a) == 0
        scores[name] = pd.read_csv(out)
    assert len(scores["dup.csv"]) == 240
    assert list(scores["dup.csv"]["timestamp"]) == list(dup["timestamp"])
    np.testing.assert_array_equal(scores["dup.csv"]["anomaly_score"],
                                  scores["s.csv"]["anomaly_score"])


def test_score_reports_gaps_and_rejects_a_series_at_another_step(tmp_path, capsys):
    csv = _series_csv(tmp_path / "s.csv")
    a = _parse(["anomaly", "train", str(csv), "--out", str(tmp_path / "ckpt"), "--fit-fraction", "0.5",
                "--set", "model.max_epochs=2", "--set", "model.hidden_size=4"])
    assert a.func(a) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["steps"] == {"step": "5min", "gaps": 0, "largest_gap": None, "first_gap_after": None}
    assert json.loads((tmp_path / "ckpt" / "detector.json").read_text())["step"] == "5min"
    # rows 50-52 deleted: scored as before (rows count), but the gap is reported
    gappy = pd.read_csv(csv).drop(index=[50, 51, 52])
    gappy.to_csv(tmp_path / "gap.csv", index=False)
    a = _parse(["anomaly", "score", str(tmp_path / "ckpt"), str(tmp_path / "gap.csv"), "--out", str(tmp_path / "o.csv")])
    assert a.func(a) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows"] == 237 and out["steps"] == {
        "step": "5min", "gaps": 1, "largest_gap": "20min",
        "first_gap_after": "2014-01-01 04:05:00"}
    # every second row: the same values stepping 10 minutes would be misread by 5-minute windows
    coarse = pd.read_csv(csv).iloc[::2]
    coarse.to_csv(tmp_path / "coarse.csv", index=False)
    a = _parse(["anomaly", "score", str(tmp_path / "ckpt"), str(tmp_path / "coarse.csv")])
    with pytest.raises(ValueError, match=r"coarse\.csv: the series steps 10min \(median\), but the "
                       r"detector .*ckpt was trained on one stepping 5min; .*--any-step"):
        a.func(a)
    a = _parse(["anomaly", "score", str(tmp_path / "ckpt"), str(tmp_path / "coarse.csv"), "--any-step",
                "--out", str(tmp_path / "c.csv")])
    assert a.func(a) == 0 and json.loads(capsys.readouterr().out)["rows"] == 120


def test_a_monthly_series_scores_on_its_own_slices(tmp_path, capsys):
    # months run 28-31 days: a slice's median step (720h, 732h) is not the whole series' (744h)
    t = pd.date_range("2001-01-01", periods=120, freq="MS")
    x = np.sin(np.arange(120) / 3.0)
    pd.DataFrame({"timestamp": t.strftime("%Y-%m-%d"), "value": x}).to_csv(tmp_path / "m.csv", index=False)
    a = _parse(["anomaly", "train", str(tmp_path / "m.csv"), "--out", str(tmp_path / "ckpt"), "--fit-fraction",
                "0.5", "--set", "model.max_epochs=2", "--set", "model.hidden_size=4", "--set", "model.horizon=2"])
    assert a.func(a) == 0
    assert json.loads(capsys.readouterr().out)["steps"]["step"] == "744h"
    for rows in (slice(0, 5), slice(1, 7), slice(40, 57)):  # 732h, 720h, 744h
        pd.read_csv(tmp_path / "m.csv").iloc[rows].to_csv(tmp_path / "part.csv", index=False)
        a = _parse(["anomaly", "score", str(tmp_path / "ckpt"), str(tmp_path / "part.csv"), "--out",
                    str(tmp_path / "o.csv")])
        assert a.func(a) == 0
        assert json.loads(capsys.readouterr().out)["steps"]["step"] in ("720h", "732h", "744h")


def test_score_rejects_a_series_too_short_and_thresholds_outside_the_scores(tmp_path, capsys):
    csv = _series_csv(tmp_path / "s.csv")
    a = _parse(["anomaly", "train", str(csv), "--out", str(tmp_path / "ckpt"), "--fit-fraction", "0.5",
                "--set", "model.max_epochs=2", "--set", "model.hidden_size=4", "--set", "model.horizon=4"])
    assert a.func(a) == 0
    pd.read_csv(csv).iloc[:4].to_csv(tmp_path / "short.csv", index=False)  # every score was 0
    a = _parse(["anomaly", "score", str(tmp_path / "ckpt"), str(tmp_path / "short.csv")])
    with pytest.raises(ValueError, match=r"short\.csv: 4 rows, but the detector .*ckpt scores a row only "
                       r"after 4 earlier ones; the series needs at least 5"):
        a.func(a)
    for t in ("nan", "7", "-1", "0"):  # 0 alarms, 0 alarms, every row, every row
        a = _parse(["anomaly", "score", str(tmp_path / "ckpt"), str(csv), "--threshold", t])
        with pytest.raises(ValueError, match=r"threshold=.*: expected a value in \(0, 1\)"):
            a.func(a)


def test_nab_and_evaluate_commands_on_a_tiny_corpus(tmp_path, capsys):
    root = tmp_path / "nab"
    (root / "data" / "fam").mkdir(parents=True)
    (root / "labels").mkdir()
    _series_csv(root / "data" / "fam" / "x.csv", n=400, spike=300)
    (root / "labels" / "combined_windows.json").write_text(
        json.dumps({"fam/x.csv": [["2014-01-02 00:40:00", "2014-01-02 01:20:00"]]}))  # rows 296..304
    a = _parse(["anomaly", "nab", "--detector", "windowed_gaussian", "--families", "fam", "--data-dir", str(root),
                "--out", str(tmp_path / "res")])
    assert a.func(a) == 0
    first = json.loads(capsys.readouterr().out)
    assert (tmp_path / "res" / "windowed_gaussian" / "fam" / "windowed_gaussian_x.csv").is_file()
    assert (tmp_path / "res" / "windowed_gaussian" / "plots" / "fam" / "x.png").is_file()
    a = _parse(["anomaly", "evaluate", str(tmp_path / "res" / "windowed_gaussian"), "--detector",
                "windowed_gaussian", "--data-dir", str(root)])
    assert a.func(a) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["standard"] == pytest.approx(first["standard"]) and first["windows"] == 1
    assert first["standard"] > 50  # the spike at row 300 lies in the window: an early detection
    # a results file in another row order is another file's scores: NAB scores by row
    res = tmp_path / "res" / "windowed_gaussian" / "fam" / "windowed_gaussian_x.csv"
    frame = pd.read_csv(res)
    frame.iloc[::-1].to_csv(res, index=False)
    with pytest.raises(ValueError, match=r"windowed_gaussian_x\.csv: row 2, column 'timestamp': "
                       r"'2014-01-02 09:15:00', but row 2 of .*x\.csv is 2014-01-01 00:00:00"):
        a.func(a)
    frame.assign(anomaly_score=frame["anomaly_score"].where(frame.index != 5, np.inf)).to_csv(res, index=False)
    with pytest.raises(ValueError, match=r"row 7, column 'anomaly_score': not a finite number"):
        a.func(a)


def test_rnnkit_train_runs_an_anomaly_recipe_with_the_trainer(tmp_path):
    from rnnkit.anomaly.detectors import load_detector
    from rnnkit.train.config import load_recipe
    from rnnkit.train.run import run_training

    csv = _series_csv(tmp_path / "s.csv")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"task: anomaly\ndata: {{source: {csv}, fit_fraction: 0.5}}\n"
                      "model: {kind: prediction, hidden_size: 8, horizon: 2}\n"
                      "optim: {lr: 0.01}\n"
                      "trainer: {max_epochs: 3, loggers: [], plot: false, progress: false, accelerator: cpu}\n")
    cfg = load_recipe(recipe)
    summary = run_training(cfg, recipe_name="r", out=tmp_path / "run")
    det = load_detector(Path(summary["run_dir"]) / "best")
    assert det.step == "5min"  # recorded by the Trainer task too
    s = det.score(pd.read_csv(csv)["value"].to_numpy())
    assert s.shape == (240,) and np.isfinite(s).all() and (s[:2] == 0).all()
