"""experiments/forecast/ltsf_checkpoints.py: which of the table's runs must be trained again
here (a seed whose SegRNN checkpoint or its AR blend is missing): one seed of each row with
none here first, ETTh rows first."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _mod():
    spec = importlib.util.spec_from_file_location(
        "_ltsf_checkpoints", ROOT / "experiments" / "forecast" / "ltsf_checkpoints.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_missing_lists_the_seeds_without_both_checkpoints(tmp_path):
    res = tmp_path / "results"
    res.mkdir()

    def row(name, seeds, seg=""):
        runs = [{"command": f"rnnkit forecast train configs/x.yaml --set=trainer.seed={s} "
                            f"--out runs/ltsf/{name}_segrnn{seg}_seed{s}", "mse": 0.1 * s}
                for s in seeds]
        (res / f"{name}.json").write_text(json.dumps({"runs": {"segrnn": runs}}))

    row("ltsf_ettm1_m_h96_l512", [1])
    row("ltsf_etth2_s_h96_l512", [1, 2, 3])
    row("ltsf_etth1_s_h96_l96", [1], seg="_seg24")  # another lookback: not listed
    for d in ("runs/ltsf/ltsf_etth2_s_h96_l512_segrnn_seed1/best",  # both: done
              "runs/ltsf/ltsf_etth2_s_h96_l512_segrnn-ar_seed1",
              "runs/ltsf/ltsf_etth2_s_h96_l512_segrnn_seed2/best"):  # no blend yet
        (tmp_path / d).mkdir(parents=True)
    row("ltsf_etth1_m_h96_l512", [1, 2])  # no seed here: its first seed comes first
    got = _mod().missing(512, results=res, root=tmp_path)
    assert [(j["row"], j["seed"]) for j in got] == [
        ("ltsf_etth1_m_h96_l512", 1), ("ltsf_ettm1_m_h96_l512", 1),  # rows with no seed here
        ("ltsf_etth1_m_h96_l512", 2), ("ltsf_etth2_s_h96_l512", 2), ("ltsf_etth2_s_h96_l512", 3)]
    assert got[3]["out"] == "runs/ltsf/ltsf_etth2_s_h96_l512_segrnn_seed2"
    assert got[3]["blend"] == "runs/ltsf/ltsf_etth2_s_h96_l512_segrnn-ar_seed2"
    assert abs(got[4]["mse"] - 0.3) < 1e-12  # the recorded test MSE, to compare with
    seg = _mod().missing(96, results=res, root=tmp_path)
    assert seg[0]["blend"] == "runs/ltsf/ltsf_etth1_s_h96_l96_segrnn-ar_seg24_seed1"


def test_a_run_that_does_not_reproduce_is_moved_aside_not_blended(tmp_path, monkeypatch):
    """train_and_check: a finished run whose test MSE is not the recorded one is renamed
    ``.bad`` (so that missing() lists it again and neither the screen nor ltsf.py --refresh
    reads it) and never blended; one that reproduces it is blended."""
    import pytest

    import rnnkit.tasks.forecast as fc
    import rnnkit.tasks.forecast_task as ft

    mod = _mod()
    monkeypatch.setattr(mod, "ROOT", tmp_path)
    blended = []
    monkeypatch.setattr(ft, "blend_checkpoint", lambda src, out, data_dir: blended.append(out))
    monkeypatch.setattr(fc, "evaluate_checkpoint",
                        lambda path, data_dir: {"metrics": {"model": {"mse": 0.5}}})
    for name in ("a", "b"):
        (tmp_path / "runs" / name / "best").mkdir(parents=True)  # finished: no training
        (tmp_path / "runs" / name / "summary.json").write_text("{}")
    job = {"row": "r", "seed": 1, "command": "rnnkit forecast train x.yaml", "out": "runs/a",
           "blend": "runs/a-ar", "mse": 0.5 * (1 + 2e-4)}
    with pytest.raises(SystemExit, match="not the recorded"):
        mod.train_and_check(job)
    assert not (tmp_path / "runs" / "a").exists() and (tmp_path / "runs" / "a.bad").is_dir()
    assert blended == []
    got = mod.train_and_check(job | {"out": "runs/b", "blend": "runs/b-ar", "mse": 0.5 * (1 + 5e-5)})
    assert got["test_mse"] == 0.5 and blended == [tmp_path / "runs" / "b-ar"]


def test_decoder_step_batched_trains_on_that_path_and_resumes_only_on_it(tmp_path, monkeypatch):
    """``--decoder-step batched``: a run started here gets ``--set=model.decoder_step=batched``;
    a part-trained run resumes (its saved config carries the step) only when it was started on
    the path asked for, else it is refused, never resumed on the other path."""
    import pytest

    import rnnkit.tasks.forecast as fc
    import rnnkit.tasks.forecast_task as ft

    mod = _mod()
    monkeypatch.setattr(mod, "ROOT", tmp_path)
    ran = []

    def fake_run(cmd, cwd, check):
        ran.append(cmd)
        out = tmp_path / cmd[cmd.index("--out") + 1] if "--out" in cmd else Path(cmd[-1])
        (out / "best").mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text("{}")

    monkeypatch.setattr(mod.subprocess, "run", fake_run)
    monkeypatch.setattr(ft, "blend_checkpoint", lambda src, out, data_dir: None)
    monkeypatch.setattr(fc, "evaluate_checkpoint",
                        lambda path, data_dir: {"metrics": {"model": {"mse": 0.5}}})
    job = {"row": "r", "seed": 1, "command": "rnnkit forecast train x.yaml --out runs/a",
           "out": "runs/a", "blend": "runs/a-ar", "mse": 0.5}
    (tmp_path / "runs" / "a" / "logs").mkdir(parents=True)  # stopped before any checkpoint
    mod.train_and_check(job, "batched")
    assert ran[-1][-1] == "--set=model.decoder_step=batched"
    assert not (tmp_path / "runs" / "a" / "logs").exists()  # removed, then trained afresh

    def part_trained(name, model):
        (tmp_path / "runs" / name / "last").mkdir(parents=True)
        (tmp_path / "runs" / name / "last" / "config.json").write_text(
            json.dumps({"config": {"model": model}}))
        return job | {"command": f"rnnkit forecast train x.yaml --out runs/{name}",
                      "out": f"runs/{name}", "blend": f"runs/{name}-ar"}

    old = part_trained("b", {})  # a config from before the key: the separable ("auto") path
    with pytest.raises(SystemExit, match="started with model.decoder_step 'auto', not 'batched'"):
        mod.train_and_check(old, "batched")
    mod.train_and_check(old)  # resumed as started
    assert ran[-1][-2:] == ["--resume", str(tmp_path / "runs" / "b")]
    new = part_trained("c", {"decoder_step": "batched"})
    mod.train_and_check(new, "batched")
    assert ran[-1][-2:] == ["--resume", str(tmp_path / "runs" / "c")]


def test_same_run_and_the_lock(tmp_path, monkeypatch, capsys):
    """same_run: within 1e-4 of the recorded test MSE is the same run; further only if it
    stopped the same way at the same epoch with the best validation loss within 1e-3 (the
    case met: univariate ETTm1 336, lookback 512, seed 1 on the AMD EPYC, whose validation curve
    matched the Xeon's log at every epoch); a job another live process holds is skipped."""
    import os

    mod = _mod()
    job = {"mse": 0.05334259851818523, "epochs": 14, "stopped": "early_stopping",
           "best_val_loss": 0.0972403883934021}
    here = {"epoch": 14, "stopped": "early_stopping", "best": 0.09722034633159637}
    assert mod.same_run(0.05334259851818523 * (1 + 5e-5), here, job) == "the same"
    assert mod.same_run(0.0533526228226942, here, job).startswith("the same path")
    assert mod.same_run(0.0533526228226942, here | {"epoch": 15}, job) == "DIFFERENT"
    assert mod.same_run(0.0533526228226942, here | {"best": 0.0975}, job) == "DIFFERENT"
    assert mod.same_run(0.0533526228226942, here, {"mse": job["mse"]}) == "DIFFERENT"
    assert "test MSE within 2.0e-03" in mod.same_run(job["mse"] * 1.002, here, job)
    assert mod.same_run(job["mse"] * 1.002, here | {"stopped": "budget"}, job) == "DIFFERENT"
    # the lock: a job a live process holds is left to it
    res = tmp_path / "results"
    res.mkdir()
    cmd = "rnnkit forecast train x.yaml --set=trainer.seed=1 --out runs/ltsf/ltsf_etth1_m_h96_l512_segrnn_seed1"
    (res / "ltsf_etth1_m_h96_l512.json").write_text(json.dumps(
        {"runs": {"segrnn": [{"command": cmd, "mse": 0.3}]}}))
    monkeypatch.setattr(mod, "ROOT", tmp_path)
    monkeypatch.setattr(mod, "RESULTS", res)
    (tmp_path / "runs" / "ltsf").mkdir(parents=True)
    lock = tmp_path / "runs" / "ltsf" / "ltsf_etth1_m_h96_l512_segrnn_seed1.lock"
    lock.write_text(str(os.getpid()))
    trained = []
    monkeypatch.setattr(mod, "train_and_check", lambda job, step=None: trained.append(job))
    assert mod.main(["--lookback", "512"]) == 0
    assert trained == [] and "another process has it" in capsys.readouterr().out
    lock.write_text("999999999")  # its holder is gone: taken over, and released after
    assert mod.main(["--lookback", "512"]) == 0
    assert [j["seed"] for j in trained] == [1] and not lock.exists()
    # --seed: only those seeds (multivariate ETTm2 192's seed 1 predates the separable step,
    # its seeds 2 and 3 do not)
    cmd2 = cmd.replace("seed=1", "seed=2").replace("seed1", "seed2")
    (res / "ltsf_etth1_m_h96_l512.json").write_text(json.dumps(
        {"runs": {"segrnn": [{"command": cmd, "mse": 0.3}, {"command": cmd2, "mse": 0.3}]}}))
    trained.clear()
    assert mod.main(["--lookback", "512", "--seed", "2"]) == 0
    assert [j["seed"] for j in trained] == [2]
    trained.clear()
    assert mod.main(["--lookback", "512", "--seed", "1", "--seed", "2"]) == 0
    assert [j["seed"] for j in trained] == [1, 2]
