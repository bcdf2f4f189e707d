"""experiments/forecast/ltsf.py: the results file has the issue's keys, resumes, and orders the
queue targets first (training is replaced by fixed reports; the pipeline has its own tests)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def ltsf(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("_ltsf", ROOT / "experiments/forecast/ltsf.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(mod, "LOGS", tmp_path / "logs")
    monkeypatch.setattr(mod, "SEGMENT_FILE", tmp_path / "segment.json")  # no selection yet
    monkeypatch.setattr(mod, "CLOSE_FILE", tmp_path / "close.json")  # no close calls yet
    monkeypatch.setattr(mod, "PARTNER_FILE", tmp_path / "partner.json")  # the linear AR
    monkeypatch.setattr(mod, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(mod, "FAMILY_FILE", tmp_path / "family.json")  # no family variant
    calls = []

    def fake_run_one(ds, variables, H, L, seed, model, extra, S=None, V=""):
        calls.append((model, seed))
        mod.extras_seen = list(extra)
        S = mod.segment_for(L, extra) if S is None else S  # the checkpoint training leaves
        name = f"{mod.job_name(ds, variables, H, L)}_{mod.tag(model, S, V)}_seed{seed}"
        (mod.RUNS / name / "best").mkdir(parents=True, exist_ok=True)
        (mod.RUNS / name / "summary.json").write_text("{}")
        mse = {"segrnn": 0.40 + 0.01 * seed, "dlinear": 0.45}[model]
        m = {"model": {"mse": mse, "mae": mse / 2}, "naive": {"mse": 1.3, "mae": 0.7},
             "seasonal_naive": {"mse": 0.5, "mae": 0.43}, "linear_ar": {"mse": 0.42, "mae": 0.4}}
        return {"command": f"rnnkit forecast train x --set=trainer.seed={seed}",
                "wall_seconds": 10.0, "report": {"metrics": m, "windows": 2785},
                "best_val_loss": 0.7, "stopped": "patience", "epochs": 12}

    def fake_blend_one(ds, variables, H, L, seed, S=None, partner="linear_ar", V=""):
        calls.append((mod.BLENDS[partner][0] + (f"_{V}" if V else ""), seed))
        mse = (0.38 if partner == "linear_ar" else 0.36) + 0.01 * seed
        m = {"model": {"mse": mse, "mae": mse / 2}}
        return {"command": f"rnnkit forecast blend runs/x{seed}/best --out runs/x{seed}_ar",
                "wall_seconds": 2.0, "report": {"metrics": m, "windows": 2785},
                "fitted": {"ar_blend_mean": 0.6 + 0.1 * seed}}

    monkeypatch.setattr(mod, "run_one", fake_run_one)
    monkeypatch.setattr(mod, "blend_one", fake_blend_one)
    monkeypatch.setattr(mod, "_device", lambda: "cpu: test")
    mod.calls = calls
    return mod


def test_results_file_has_the_issue_keys(ltsf):
    path = ltsf.run_job("ETTh1", "multivariate", 96, 720, [1, 2, 3], [])
    r = json.loads(path.read_text())
    assert path.name == "ltsf_etth1_m_h96_l720.json"
    for key in ("dataset", "protocol", "variables", "horizon", "lookback", "metric", "value", "mae",
                "baselines", "command", "wall_seconds", "seeds", "cell"):
        assert key in r, key
    assert ltsf.job_name("ETTm2", "univariate", 720, 96) == "ltsf_ettm2_s_h720_l96"
    assert (r["dataset"], r["protocol"], r["variables"], r["horizon"], r["lookback"], r["metric"]) \
        == ("ETTh1", "ltsf", "multivariate", 96, 720, "mse")
    # the value is SegRNN-AR's seed mean; SegRNN alone is beside it
    assert r["value"] == pytest.approx(0.40) and r["mae"] == pytest.approx(0.20)
    assert r["seeds"]["n"] == 3 and r["seeds"]["mse"]["std"] == pytest.approx(0.008165, abs=1e-5)
    alone = r["recurrent_alone"]
    assert alone["mse"] == pytest.approx(0.42) and alone["seeds"]["mse"]["values"] == \
        pytest.approx([0.41, 0.42, 0.43])
    assert r["model"]["ar_blend_weight_mean"] == pytest.approx([0.7, 0.8, 0.9])
    assert set(r["baselines"]) == {"naive", "seasonal_naive", "linear_ar", "dlinear"}
    assert r["baselines"]["dlinear"]["mse"] == pytest.approx(0.45)
    assert r["beats"]["dlinear"] and r["beats"]["linear_ar"]  # 0.40 < 0.42
    assert alone["beats"]["dlinear"] and not alone["beats"]["linear_ar"]  # 0.42 is not below 0.42
    assert len(r["runs"]["segrnn-ar"]) == 3 and "fitted" in r["runs"]["segrnn-ar"][0]
    assert r["reference"]["value"] == 0.370 and r["status"] == "complete" and r["cell"] == "gru"
    for key in ("task", "split", "reference", "device", "date"):  # experiments/make_table.py's
        assert key in r


def test_the_chosen_blend_partner_reblends_only_its_lookback(ltsf):
    """The partner ltsf_blend_partner.json chooses for a lookback names the row's model and its
    runs, and an earlier file of that lookback (blended with the linear AR) counts as not done,
    so that it is blended again; other lookbacks keep the linear AR."""
    assert ltsf.partner_for(96) == "linear_ar"  # no choice yet
    old = ltsf.run_job("ETTh1", "univariate", 336, 96, [1], [])
    other = ltsf.run_job("ETTh1", "univariate", 336, 512, [1], [])
    assert json.loads(old.read_text())["model"]["ar_blend_partner"] == "linear_ar"
    ltsf.PARTNER_FILE.write_text(json.dumps({"chosen": {"96": "nlinear"}}))
    assert ltsf.partner_for(96) == "nlinear" and ltsf.partner_for(512) == "linear_ar"
    assert ltsf.job_done(old, 96) == 0 and ltsf.job_done(other, 512) == 1
    n = len(ltsf.calls)
    assert ltsf.main(["--refresh"]) == 0  # from the cached runs: blends again where it must
    assert ("segrnn-nl", 1) in ltsf.calls[n:] and ("segrnn-ar", 1) in ltsf.calls[n:]
    r = json.loads(old.read_text())
    assert r["model"]["name"] == "SegRNN-NLinear" and r["model"]["ar_blend_partner"] == "nlinear"
    assert "NLinear" in r["model"]["ar_blend"] and r["value"] == pytest.approx(0.37)
    assert set(r["runs"]) == {"segrnn", "dlinear", "segrnn-nl"}
    assert ltsf.job_done(ltsf.RESULTS / "ltsf_etth1_s_h336_l96.json", 96) == 1
    assert json.loads(other.read_text())["model"]["name"] == "SegRNN-AR"
    n = len(ltsf.calls)
    ltsf.run_job("ETTh1", "univariate", 336, 96, [1], [])  # done: not blended again
    ltsf.run_job("ETTh1", "univariate", 336, 512, [1], [])
    assert len(ltsf.calls) == n


def test_refresh_leaves_a_row_whose_checkpoint_is_on_another_machine(ltsf):
    """A new partner cannot be blended where a seed's SegRNN checkpoint is not here and its
    blend is not cached: --refresh leaves that row (its older blend, not counted by the docs
    table) and re-blends the others."""
    import shutil

    away = ltsf.run_job("ETTh1", "univariate", 336, 96, [1, 2], [])
    here = ltsf.run_job("ETTh1", "univariate", 192, 96, [1], [])
    S = ltsf.segment_for(96)
    shutil.rmtree(ltsf.RUNS / f"ltsf_etth1_s_h336_l96_{ltsf.tag('segrnn', S)}_seed2")
    ltsf.PARTNER_FILE.write_text(json.dumps({"chosen": {"96": "nlinear"}}))
    assert ltsf.unblendable("ETTh1", "univariate", 336, 96, [1, 2], S) == [2]
    assert ltsf.unblendable("ETTh1", "univariate", 192, 96, [1], S) == []
    before = away.read_text()
    n = len(ltsf.calls)
    assert ltsf.main(["--refresh"]) == 0
    assert away.read_text() == before and ltsf.job_done(away, 96) == 0
    assert json.loads(here.read_text())["model"]["ar_blend_partner"] == "nlinear"
    assert ("segrnn-nl", 2) not in ltsf.calls[n:]
    # a run still training (best/ is written at each improvement, summary.json at the end)
    run2 = ltsf.RUNS / f"ltsf_etth1_s_h336_l96_{ltsf.tag('segrnn', S)}_seed2"
    (run2 / "best").mkdir(parents=True)
    assert ltsf.unblendable("ETTh1", "univariate", 336, 96, [1, 2], S) == [2]
    ltsf.main(["--refresh"])
    assert away.read_text() == before
    # finished: the row is re-blended
    (run2 / "summary.json").write_text("{}")
    assert ltsf.unblendable("ETTh1", "univariate", 336, 96, [1, 2], S) == []
    ltsf.main(["--refresh"])
    assert ("segrnn-nl", 2) in ltsf.calls[n:] and ltsf.job_done(away, 96) == 2
    assert json.loads(away.read_text())["model"]["ar_blend_partner"] == "nlinear"


def test_partial_then_complete_and_skip(ltsf):
    ltsf.run_job("ETTm1", "multivariate", 192, 720, [1, 2, 3], [], upto=1)
    path = ltsf.RESULTS / "ltsf_ettm1_m_h192_l720.json"
    assert json.loads(path.read_text())["status"] == "partial (1 of 3 seeds)"
    assert ltsf.calls == [("segrnn", 1), ("dlinear", 1), ("segrnn-ar", 1)]
    ltsf.run_job("ETTm1", "multivariate", 192, 720, [1, 2, 3], [], upto=1)  # done: skipped
    assert len(ltsf.calls) == 3
    ltsf.run_job("ETTm1", "multivariate", 192, 720, [1, 2, 3], [])
    assert json.loads(path.read_text())["status"] == "complete"


def test_a_selected_segment_length_reruns_only_its_lookback(ltsf):
    """select_segment's choice for lookback 96 reaches the recipe's overrides and the runs'
    names there, and a lookback-96 job made at the recipe's length counts as not done."""
    import yaml

    for family in ("etth1", "ettm1"):  # the constant is the recipes' own
        recipe = yaml.safe_load((ROOT / f"configs/ltsf_{family}_segrnn.yaml").read_text())
        assert recipe["model"]["segment_length"] == ltsf.RECIPE_SEGMENT
    assert ltsf.chosen_segment(96) is None and ltsf.segment_for(96) == ltsf.RECIPE_SEGMENT
    old = ltsf.run_job("ETTh1", "univariate", 336, 96, [1], [])
    assert json.loads(old.read_text())["model"]["segment_length"] == ltsf.RECIPE_SEGMENT
    assert ltsf.job_done(old, 96) == 1
    ltsf.SEGMENT_FILE.write_text(json.dumps({"lookback": 96, "chosen": 24}))
    assert ltsf.chosen_segment(96) == 24 and ltsf.chosen_segment(512) is None
    assert ltsf.segment_for(96) == 24 and ltsf.segment_for(512) == ltsf.RECIPE_SEGMENT
    assert ltsf.segment_for(96, ["model.segment_length=12"]) == 12
    assert ltsf.tag("segrnn", 24) == "segrnn_seg24" and ltsf.tag("segrnn-ar", 24) == "segrnn-ar_seg24"
    assert ltsf.tag("dlinear", 24) == "dlinear" and ltsf.tag("segrnn", 48) == "segrnn"
    seg = [s for s in ltsf._overrides("ETTh1", "univariate", 336, 96, 1, "segrnn")
           if s.startswith("model.segment_length")]
    assert seg == ["model.segment_length=24"]
    assert not any("segment_length" in s for s in ltsf._overrides("ETTh1", "univariate", 336, 512,
                                                                   1, "segrnn")
                   + ltsf._overrides("ETTh1", "univariate", 336, 96, 1, "dlinear"))
    assert ltsf.job_done(old, 96) == 0  # made at 48: run again
    n = len(ltsf.calls)
    ltsf.run_job("ETTh1", "univariate", 336, 96, [1], [])
    assert len(ltsf.calls) == n + 3
    assert json.loads(old.read_text())["model"]["segment_length"] == 24
    assert ltsf.job_done(old, 96) == 1
    ltsf.run_job("ETTh1", "univariate", 336, 96, [1], [])  # now done: skipped
    assert len(ltsf.calls) == n + 3


def test_queue_puts_the_targets_first(ltsf):
    q = ltsf.queue()
    # both targets at one seed over every horizon first, then at all three
    assert [j[0] for j in q[:16]] == (["ETTh1"] * 4 + ["ETTm1"] * 4) * 2
    assert [j[5] for j in q[:16]] == [1] * 8 + [3] * 8 and all(j[4] == [1, 2, 3] for j in q[:16])
    assert all(j[4] == [1] for j in q[16:]) and len(q) == 16 + 8 + 16 + 16 + 16
    # then every other row at one seed: both lookbacks, both variable sets, all four sets
    rows = {(j[0], j[1], j[2], j[3]) for j in q}
    assert len(rows) == len(q) - 8 and {(d, v, L) for d, v, _, L in rows} == {
        (d, v, L) for d in ("ETTh1", "ETTh2", "ETTm1", "ETTm2")
        for v in ("multivariate", "univariate") for L in (96, q[0][3])}


def test_close_calls_get_three_seeds_win_or_loss(ltsf, monkeypatch):
    """A one-seed row whose margin over its best baseline, either way, is under what one seed
    moves that margin (per data family and baseline kind, on the three-seed target runs) gets
    seeds 2 and 3, SegRNN and DLinear alike, cheapest first, and is labelled so; the thresholds
    and the marked rows are kept, whatever the three seeds then give."""
    blend, dlin = {}, {}  # (dataset, variables, seed) -> MSE, else the fixture's
    fake_blend, fake_run = ltsf.blend_one, ltsf.run_one

    def blend_one(ds, variables, H, L, seed, S=None, partner="linear_ar", V=""):
        r = fake_blend(ds, variables, H, L, seed, S, partner)
        if (ds, variables, seed) in blend:
            r["report"]["metrics"]["model"]["mse"] = blend[ds, variables, seed]
        return r

    def run_one(ds, variables, H, L, seed, model, extra, S=None, V=""):
        r = fake_run(ds, variables, H, L, seed, model, extra, S)
        if model == "dlinear" and (ds, variables, seed) in dlin:
            r["report"]["metrics"]["model"]["mse"] = dlin[ds, variables, seed]
        return r

    monkeypatch.setattr(ltsf, "blend_one", blend_one)
    monkeypatch.setattr(ltsf, "run_one", run_one)
    M, S = "multivariate", "univariate"
    # the targets: ETTh1 SegRNN-AR 0.39 / 0.40 / 0.41, DLinear 0.45 each (the fixture's);
    # ETTm1 SegRNN-AR 0.40 each, DLinear 0.45 / 0.46 / 0.44; linear AR 0.42 is the best fixed one
    blend.update({("ETTm1", M, s): 0.40 for s in (1, 2, 3)})
    dlin.update({("ETTm1", M, 1): 0.45, ("ETTm1", M, 2): 0.46, ("ETTm1", M, 3): 0.44})
    ltsf.run_job("ETTh1", M, 96, 512, [1, 2, 3], [])
    with pytest.raises(SystemExit, match="ettm1/dlinear, ettm1/fixed"):
        ltsf.mark_close_calls()
    ltsf.run_job("ETTm1", M, 96, 512, [1, 2, 3], [])
    th = ltsf.seed_ranges()
    assert th["etth1/fixed"]["range"] == pytest.approx(0.02 / 0.42)
    assert th["etth1/dlinear"]["range"] == pytest.approx(0.02 / 0.45)
    assert th["ettm1/fixed"]["range"] == pytest.approx(0.0, abs=1e-12)  # its seeds agree
    assert th["ettm1/dlinear"]["range"] == pytest.approx(0.06 / 0.46 - 0.04 / 0.44)  # DLinear's
    assert th["ettm1/dlinear"]["from"] == "ltsf_ettm1_m_h96_l512"
    # one-seed rows (margins against linear AR's 0.42, or DLinear's where it is lower)
    blend.update({("ETTh2", S, 1): 0.41,    # +2.4% against linear AR: under ETTh's 4.8%
                  ("ETTm2", S, 1): 0.415,   # +1.2% against linear AR: over ETTm's 0 (fixed)
                  ("ETTm2", M, 1): 0.42,    # -2.4% against DLinear's 0.41: under ETTm's 4.0%
                  ("ETTh1", S, 1): 0.41})   # a close call, but partial: not looked at
    dlin[("ETTm2", M, 1)] = 0.41
    for ds, var in (("ETTh2", S), ("ETTm2", S), ("ETTm2", M)):
        ltsf.run_job(ds, var, 192, 512, [1], [])
    ltsf.run_job("ETTh1", S, 192, 512, [1, 2, 3], [], upto=1)
    # a lookback-96 row made at the recipes' segment length, before a selection chose 24: not
    # looked at (its one seed is of another model)
    blend[("ETTh2", M, 1)] = 0.41
    ltsf.run_job("ETTh2", M, 192, 96, [1], [])
    ltsf.SEGMENT_FILE.write_text(json.dumps({"lookback": 96, "chosen": 24}))
    rec = ltsf.mark_close_calls()
    assert rec["thresholds"] == th
    assert set(rec["rows"]) == {"ltsf_etth2_s_h192_l512", "ltsf_ettm2_m_h192_l512"}
    got = rec["rows"]["ltsf_ettm2_m_h192_l512"]
    assert got["margin_at_one_seed"] == pytest.approx(-0.01 / 0.41)
    assert (got["best_baseline"], got["threshold"]) == ("dlinear", "ettm1/dlinear")
    assert rec["rows"]["ltsf_etth2_s_h192_l512"]["threshold"] == "etth1/fixed"
    # the queue runs them last, at three seeds, once each
    q = ltsf.queue()
    assert {ltsf.job_name(*j[:4]) for j in q[-2:]} == set(rec["rows"])
    assert all(j[4] == [1, 2, 3] and j[5] == 3 for j in q[-2:]) and len(q) == 16 + 8 + 16 + 16 + 16
    # the cheaper row (by its one seed's time) first
    cheap = ltsf.RESULTS / "ltsf_ettm2_m_h192_l512.json"
    cheap.write_text(json.dumps({**json.loads(cheap.read_text()), "wall_seconds": 1.0}))
    blend.update({("ETTh2", S, 2): 0.30, ("ETTh2", S, 3): 0.30})  # far from the line at 3 seeds
    order, real = [], ltsf.run_job
    monkeypatch.setattr(ltsf, "run_job", lambda *a, **k: (order.append(a[0]), real(*a, **k))[1])

    class Waited(Exception):
        pass

    def sleep(seconds):
        raise Waited

    monkeypatch.setattr(ltsf.time, "sleep", sleep)
    with pytest.raises(Waited):  # both run, then it waits: the rest of the queue is not done
        ltsf.run_close_calls(wait=0)
    assert order == ["ETTm2", "ETTh2"]
    full = ltsf.queue
    monkeypatch.setattr(ltsf, "queue", lambda: [])  # the whole table done: it returns
    assert ltsf.run_close_calls(wait=0) is None and order == ["ETTm2", "ETTh2"]
    monkeypatch.setattr(ltsf, "queue", full)
    for name in rec["rows"]:
        r = json.loads((ltsf.RESULTS / f"{name}.json").read_text())
        assert r["seeds"]["seeds"] == [1, 2, 3] and r["status"] == "complete"
        assert r["seed_label"] == "3 seeds (close call at one seed)"
        assert r["close_call"] == rec["rows"][name]
        assert len(r["baselines"]["dlinear"]["seeds"]["mse"]["values"]) == 3
    # the ETTh2 row's three seeds (mean 0.337) are far past the threshold: still marked and
    # still three seeds, also through --refresh; the target runs keep their label
    assert set(ltsf.mark_close_calls()["rows"]) == set(rec["rows"])
    ltsf.main(["--refresh"])
    r = json.loads((ltsf.RESULTS / "ltsf_etth2_s_h192_l512.json").read_text())
    assert r["seeds"]["n"] == 3 and r["value"] == pytest.approx(1.01 / 3)
    assert json.loads((ltsf.RESULTS / "ltsf_etth1_m_h96_l512.json").read_text())["seed_label"] \
        == "3 seeds (target run)"


def test_locks_let_two_drivers_share_the_table(tmp_path):
    """A lock held by a live process is respected, a dead holder's is taken over, and a run
    that finished after its driver died is taken as it is (no retraining)."""
    import os
    import subprocess
    import sys

    spec = importlib.util.spec_from_file_location("_ltsf2", ROOT / "experiments/forecast/ltsf.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    lock = tmp_path / "x.lock"
    lock.write_text(str(os.getppid()))  # a live process (pytest's parent)
    assert not mod._claim(lock)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    lock.write_text(dead)
    assert mod._claim(lock) and lock.read_text() == str(os.getpid())
    # the driver died after training: report.json and summary.json are there
    mod.ROOT, mod.LOGS, mod.RUNS = tmp_path, tmp_path / "logs", tmp_path / "runs" / "ltsf"
    mod.LOGS.mkdir()
    name = mod.job_name("ETTh1", "multivariate", 96, 512)
    out = tmp_path / "runs" / "ltsf" / f"{name}_segrnn_seed2"
    out.mkdir(parents=True)
    (out / "report.json").write_text(json.dumps({"metrics": {"model": {"mse": 0.36}}}))
    (out / "summary.json").write_text(json.dumps({"best": 0.6, "stopped": "early_stopping",
                                                  "epoch": 9, "step": 300,
                                                  "wall_seconds": 700.0}))
    from rnnkit.train.config import load_recipe, to_dict

    (tmp_path / "configs").symlink_to(ROOT / "configs")
    sets = mod._overrides("ETTh1", "multivariate", 96, 512, 2, "segrnn")
    (out / "best").mkdir()
    cfg = to_dict(load_recipe(ROOT / "configs" / "ltsf_etth1_segrnn.yaml", sets + ["optim.lr=0.5"]))
    (out / "best" / "config.json").write_text(json.dumps({"config": cfg}))
    assert not mod._same_run(out, "configs/ltsf_etth1_segrnn.yaml", sets)  # another recipe
    cfg["optim"]["lr"] = to_dict(load_recipe(ROOT / "configs" / "ltsf_etth1_segrnn.yaml",
                                             sets))["optim"]["lr"]
    del cfg["model"]["ar_blend"]  # a key the run's config predates counts as its default
    (out / "best" / "config.json").write_text(json.dumps({"config": cfg}))
    rec = mod.run_one("ETTh1", "multivariate", 96, 512, 2, "segrnn", [])
    assert rec["report"]["metrics"]["model"]["mse"] == 0.36 and rec["wall_seconds"] == 700.0
    assert (mod.LOGS / f"{name}_segrnn_seed2.json").is_file()
    assert not (mod.LOGS / f"{name}_segrnn_seed2.lock").exists()  # released


def test_a_killed_run_is_resumed_not_restarted(tmp_path, monkeypatch):
    """A run directory with a last/ checkpoint of the same recipe (its driver and trainer were
    killed) is continued with ``--resume``, keeping its log; one from another recipe is deleted
    and trained again."""
    import subprocess

    from rnnkit.train.config import load_recipe, to_dict

    spec = importlib.util.spec_from_file_location("_ltsf3", ROOT / "experiments/forecast/ltsf.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.ROOT, mod.LOGS, mod.RUNS = tmp_path, tmp_path / "logs", tmp_path / "runs" / "ltsf"
    mod.LOGS.mkdir()
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    name = mod.job_name("ETTh1", "multivariate", 96, 512)
    out = tmp_path / "runs" / "ltsf" / f"{name}_segrnn_seed1"
    sets = mod._overrides("ETTh1", "multivariate", 96, 512, 1, "segrnn")
    ran = []

    def fake_run(cmd, cwd, env, stdout, stderr):
        ran.append(cmd)
        stdout.write("second part\n")
        out.mkdir(parents=True, exist_ok=True)  # as the trainer does
        (out / "report.json").write_text(json.dumps({"metrics": {"model": {"mse": 0.36,
                                                                            "mae": 0.4}}}))
        (out / "summary.json").write_text(json.dumps({"best": 0.6, "elapsed_seconds": 900.0}))
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(mod.subprocess, "run", fake_run)
    monkeypatch.setattr(mod, "_wait_for_bench", lambda: None)

    def killed(lr_set):
        out.mkdir(parents=True)
        (out / "last").mkdir()
        cfg = to_dict(load_recipe(ROOT / "configs" / "ltsf_etth1_segrnn.yaml", sets + lr_set))
        (out / "last" / "config.json").write_text(json.dumps({"config": cfg}))
        (mod.LOGS / f"{name}_segrnn_seed1.log").write_text("first part\n")

    killed([])
    rec = mod.run_one("ETTh1", "multivariate", 96, 512, 1, "segrnn", [])
    assert ran[-1][-2:] == ["--resume", f"runs/ltsf/{name}_segrnn_seed1"]
    assert "--resume" not in rec["command"] and rec["resumed"]
    assert rec["wall_seconds"] == 900.0  # the trainer's count over both parts
    assert (mod.LOGS / f"{name}_segrnn_seed1.log").read_text() == "first part\nsecond part\n"
    # another recipe's killed run: deleted, trained from scratch
    import shutil

    shutil.rmtree(out)
    (mod.LOGS / f"{name}_segrnn_seed1.json").unlink()
    killed(["optim.lr=0.5"])
    rec = mod.run_one("ETTh1", "multivariate", 96, 512, 1, "segrnn", [])
    assert "--resume" not in ran[-1] and not rec["resumed"] and not (out / "last").exists()
    assert (mod.LOGS / f"{name}_segrnn_seed1.log").read_text() == "second part\n"


def test_a_selected_segment_names_and_checks_every_file(tmp_path, monkeypatch):
    """At lookback 96 after the selection, the SegRNN run trains with the chosen length under
    ``segrnn_seg24`` names (run directory, log, cache), the blend reads that run's checkpoint
    and caches as ``segrnn-ar_seg24``; DLinear keeps its plain names; a cached report of another
    length under a tagged name raises instead of being taken."""
    import subprocess

    spec = importlib.util.spec_from_file_location("_ltsf4", ROOT / "experiments/forecast/ltsf.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.ROOT, mod.LOGS, mod.RUNS = tmp_path, tmp_path / "logs", tmp_path / "runs" / "ltsf"
    mod.SEGMENT_FILE = tmp_path / "segment.json"
    mod.PARTNER_FILE = tmp_path / "partner.json"  # no partner chosen: the linear AR
    mod.SEGMENT_FILE.write_text(json.dumps({"lookback": 96, "chosen": 24}))
    mod.LOGS.mkdir()
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    name = mod.job_name("ETTh2", "univariate", 192, 96)
    ran = []

    def fake_run(cmd, cwd, env, stdout, stderr):
        ran.append(cmd)
        out = tmp_path / cmd[cmd.index("--out") + 1]
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps({"metrics": {"model": {"mse": 0.2,
                                                                            "mae": 0.3}}}))
        (out / "summary.json").write_text(json.dumps({"best": 0.5}))
        return subprocess.CompletedProcess(cmd, 0)

    blended = []

    def fake_blend(src, out, partner, data_dir):
        blended.append((src, out, partner))
        return {"ar_blend_mean": 0.5}

    import rnnkit.tasks.forecast as fc
    import rnnkit.tasks.forecast_task as ft

    monkeypatch.setattr(mod.subprocess, "run", fake_run)
    monkeypatch.setattr(mod, "_wait_for_bench", lambda: None)
    monkeypatch.setattr(ft, "blend_checkpoint", fake_blend)
    monkeypatch.setattr(fc, "evaluate_checkpoint",
                        lambda out, data_dir: {"metrics": {"model": {"mse": 0.19, "mae": 0.29}}})
    rec = mod.run_one("ETTh2", "univariate", 192, 96, 1, "segrnn", [])
    assert rec["segment_length"] == 24
    assert "--set=model.segment_length=24" in ran[-1]
    assert ran[-1][ran[-1].index("--out") + 1] == f"runs/ltsf/{name}_segrnn_seg24_seed1"
    assert (mod.LOGS / f"{name}_segrnn_seg24_seed1.log").is_file()
    assert (mod.LOGS / f"{name}_segrnn_seg24_seed1.json").is_file()
    mod.run_one("ETTh2", "univariate", 192, 96, 1, "dlinear", [])
    assert not any("segment_length" in c for c in ran[-1])
    assert ran[-1][ran[-1].index("--out") + 1] == f"runs/ltsf/{name}_dlinear_seed1"
    b = mod.blend_one("ETTh2", "univariate", 192, 96, 1)
    assert b["segment_length"] == 24
    assert blended == [(tmp_path / "runs/ltsf" / f"{name}_segrnn_seg24_seed1" / "best",
                        tmp_path / "runs/ltsf" / f"{name}_segrnn-ar_seg24_seed1", "linear_ar")]
    assert (mod.LOGS / f"{name}_segrnn-ar_seg24_seed1.json").is_file()
    # NLinear as the partner: its own checkpoint, cache and command, the same SegRNN
    b = mod.blend_one("ETTh2", "univariate", 192, 96, 1, partner="nlinear")
    assert blended[-1] == (tmp_path / "runs/ltsf" / f"{name}_segrnn_seg24_seed1" / "best",
                           tmp_path / "runs/ltsf" / f"{name}_segrnn-nl_seg24_seed1", "nlinear")
    assert b["partner"] == "nlinear" and b["command"].endswith("--partner nlinear")
    assert (mod.LOGS / f"{name}_segrnn-nl_seg24_seed1.json").is_file()
    # a report from before the field: its name's length counts
    cache = mod.LOGS / f"{name}_segrnn_seg24_seed1.json"
    older = {k: v for k, v in json.loads(cache.read_text()).items() if k != "segment_length"}
    cache.write_text(json.dumps(older))
    n = len(ran)
    assert mod.run_one("ETTh2", "univariate", 192, 96, 1, "segrnn", [])["report"] == older["report"]
    assert len(ran) == n
    # a report of another length cached under the tagged name: an error, not a silent reuse
    cache.write_text(json.dumps({**json.loads(cache.read_text()), "segment_length": 12}))
    with pytest.raises(SystemExit, match="segment length 12"):
        mod.run_one("ETTh2", "univariate", 192, 96, 1, "segrnn", [])
    # an explicit length in the extra settings gets its own names
    rec = mod.run_one("ETTh2", "univariate", 192, 96, 1, "segrnn", ["model.segment_length=12"])
    assert rec["segment_length"] == 12
    assert ran[-1][ran[-1].index("--out") + 1] == f"runs/ltsf/{name}_segrnn_seg12_seed1"


def test_device_names_each_training_runs_machine(ltsf):
    """A run's machines come from the ``device:`` lines of its log (each once, in order: a
    resumed run may have moved); the job's "device" lists its training runs' machines and counts
    those with none (blends, which run where the file is written, are not training runs)."""
    ltsf.LOGS.mkdir(parents=True)
    (ltsf.LOGS / "moved.log").write_text("epoch 1\n  device: cpu: C\nkilled\n  device: cpu: A\n"
                                         "  device: cpu: A\n")
    (ltsf.LOGS / "quiet.log").write_text("epoch 1\n")
    runs = [{"command": "rnnkit forecast train x --out runs/ltsf/moved"},
            {"command": "rnnkit forecast train x --out runs/ltsf/quiet"},
            {"command": "rnnkit forecast train x --out runs/ltsf/gone"}]
    assert [ltsf._run_device(r) for r in runs] == ["cpu: C then cpu: A", None, None]
    listed = {"segrnn": [{"device": "cpu: C then cpu: A"}, {"device": "cpu: B"}, {}],
              "segrnn-ar": [{"fitted": {}}]}
    assert ltsf._devices(listed).startswith("cpu: B; cpu: C then cpu: A; 1 run(s) recorded no")
    # no run recorded one: no machine is named for them (not the writer's)
    assert ltsf._devices({"segrnn": [{}]}).startswith("1 run(s) recorded no machine")


def test_selections_run_apart_from_the_table(tmp_path, monkeypatch):
    """Both selections train short runs under ``select_...`` names (never a table run's) and
    pick the lowest validation MSE; a lookback-96 segment selection reaches no other lookback."""
    spec = importlib.util.spec_from_file_location("_ltsf5", ROOT / "experiments/forecast/ltsf.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.LOGS, mod.LOOKBACK_FILE = tmp_path / "logs", tmp_path / "lookback.json"
    mod.SEGMENT_FILE = tmp_path / "segment.json"
    mod.PARTNER_FILE = tmp_path / "partner.json"  # no partner chosen: the linear AR
    monkeypatch.setattr(mod, "_device", lambda: "cpu: test")
    seen = []
    val = {336: 0.64, 512: 0.63, 720: 0.65, 12: 0.674, 24: 0.663, 48: 0.664}

    def fake(ds, variables, H, L, seed, model, extra, cache, prefix="", S=None, V=""):
        seen.append((L, prefix, cache.name, tuple(extra)))
        seg = [int(e.split("=")[1]) for e in extra if e.startswith("model.segment_length=")]
        key = seg[0] if seg else L
        rec = {"best_val_loss": val[key], "report": {"metrics": {"model": {"mse": 0.4}}},
               "epochs": 10, "command": "c", "wall_seconds": 1.0}
        cache.write_text(json.dumps(rec))
        return rec

    monkeypatch.setattr(mod, "cache_or_train", fake)
    assert mod.select_lookback() == 512
    assert mod.select_segment()["chosen"] == 24
    assert all(p.startswith("select_") and c.startswith(p + "ltsf_etth1_m_h96_") for _, p, c, _ in seen)
    assert all("trainer.max_epochs=10" in e and "trainer.patience=3" in e for *_, e in seen)
    assert [L for L, *_ in seen] == [336, 512, 720, 96, 96, 96]
    assert mod.chosen_segment(96) == 24 and mod.chosen_segment(512) is None
    with pytest.raises(SystemExit, match="not 512's"):
        mod.select_segment(L=512)


def test_a_family_recipe_variant_names_its_runs_and_retrains_only_its_rows(ltsf):
    """A variant chosen for one family (ltsf_family_recipes.json) reaches that family's SegRNN
    runs as overrides, carries its name in their files and in the row's record, makes the
    family's earlier rows count as not done (--refresh leaves them, to be trained), and leaves
    every other row alone; overrides given by hand get a name of their own."""
    ettm2 = ltsf.run_job("ETTm2", "univariate", 336, 96, [1], [])
    other = ltsf.run_job("ETTm1", "univariate", 336, 96, [1], [])
    assert "variant" not in json.loads(ettm2.read_text())["model"]
    ltsf.FAMILY_FILE.write_text(json.dumps({"chosen": {"ETTm2 univariate 96": {
        "name": "stride1", "sets": ["data.train_stride=1"]}}}))
    assert ltsf.variant_for("ETTm2", "univariate", 96) == ("stride1", ["data.train_stride=1"])
    assert ltsf.variant_for("ETTm2", "univariate", 512) == ("", [])
    assert ltsf.variant_for("ETTm2", "multivariate", 96) == ("", [])
    assert ltsf.job_done(ettm2, 96) == 0 and ltsf.job_done(other, 96) == 1
    S = ltsf.segment_for(96)
    assert ltsf.tag("segrnn", S, "stride1") == f"{ltsf.tag('segrnn', S)}_stride1"
    assert ltsf.tag("dlinear", S, "stride1") == "dlinear"
    out = f"runs/ltsf/ltsf_ettm2_s_h336_l96_segrnn_seg{S}_stride1_seed3"
    assert ltsf.blend_run(out, "nlinear") == \
        f"runs/ltsf/ltsf_ettm2_s_h336_l96_segrnn-nl_seg{S}_stride1_seed3"
    assert ltsf.blend_run("runs/ltsf/ltsf_etth1_m_h96_l512_segrnn_seed2") == \
        "runs/ltsf/ltsf_etth1_m_h96_l512_segrnn-ar_seed2"
    with pytest.raises(ValueError, match="not a SegRNN run"):  # never into the run itself
        ltsf.blend_run("runs/ltsf/ltsf_etth1_m_h96_l512_segrnn_seed2/best")
    assert ltsf.family_segment("ETTm2", "univariate", 96) == S
    before = ettm2.read_text()
    n = len(ltsf.calls)
    assert ltsf.main(["--refresh"]) == 0
    assert ettm2.read_text() == before  # its runs are another recipe's: not re-blended
    assert not [c for c in ltsf.calls[n:] if "stride1" in c[0]]
    ltsf.run_job("ETTm2", "univariate", 336, 96, [1], [])
    assert ltsf.extras_seen == []  # the last run is DLinear's, which the variant leaves alone
    assert ("segrnn-ar_stride1", 1) in ltsf.calls[n:]
    r = json.loads(ettm2.read_text())
    assert r["model"]["variant"] == "stride1" and r["model"]["train_stride"] == 1
    assert r["model"]["variant_sets"] == ["data.train_stride=1"]
    assert "--set" not in r["command"]  # the family's file, not the command, carries it
    assert ltsf.job_done(ettm2, 96) == 1
    assert json.loads(other.read_text())["model"]["train_stride"] == 2  # the recipe's
    # by hand: a name of its own, after the family's
    name, sets = ltsf.variant_for("ETTm2", "univariate", 96, ["model.hidden_size=512"])
    assert name.startswith("stride1_set") and len(name) == len("stride1_set") + 8
    assert ltsf.variant_for("ETTh1", "univariate", 96, ["model.segment_length=12"]) == ("", [])
