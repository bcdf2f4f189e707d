"""experiments/forecast/two_block_screen.py: the score (the geometric mean of 8 cells, 4 horizons
x 2 blocks), the rule (only more than 1% below the recipe), the cells on record checked against
the command the screen would run, the adoption handed to the table driver, and test read only
after the decision (every run and record replaced by small made-up files)."""

from __future__ import annotations

import hashlib
import json
import math
import shlex
import shutil
import subprocess
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEY = "ETTm2 univariate 96"
BASE = {"late": [0.09, 0.15, 0.20, 0.24], "early": [0.10, 0.16, 0.22, 0.27]}


@pytest.fixture()
def screen(ltsf_screen_script, tmp_path, monkeypatch):
    mod = ltsf_screen_script("two_block_screen")
    monkeypatch.setattr(mod, "SCREEN", tmp_path / "runs" / "screen_ltsf" / "ettm2_s_l96_2block")
    monkeypatch.setattr(mod, "RECORD", tmp_path / "two_block.json")
    mod.ltsf.FAMILY_FILE.write_text(json.dumps(
        {"chosen": {KEY: {"name": "stride1", "sets": ["data.train_stride=1"]}}}))
    (tmp_path / mod.RULE).parent.mkdir(parents=True)
    (tmp_path / mod.RULE).write_text("# the rule, made up\nlowest score, if more than 1% below\n")
    return mod


def _run_dir(mod, cand, block, H, v, offset=None):
    d = mod.run_dir(cand, block, H)
    (d / "best").mkdir(parents=True, exist_ok=True)
    (d / "summary.json").write_text(json.dumps(
        {"best": v, "epoch": 30, "stopped": "max_epochs", "wall_seconds": 5.0}))
    cfg = mod._as_dict(mod._load(mod.sets_for(cand, block, H)))  # as the trainer saves it
    if offset is not None:
        cfg["data"]["end_offset"] = offset
    (d / "best" / "config.json").write_text(json.dumps({"config": cfg}))
    (d / "report.json").write_text(json.dumps({"metrics": {"model": {"mse": v / 2}}}))


def _stride2_command(mod, H):
    cmd = mod.command("stride2", "late", H)
    kept = [a for a in cmd if not a.startswith("--set=data.train_stride=")]
    assert len(cmd) - len(kept) == 2  # session 23's recipe run set no stride at all
    return shlex.join(kept)


def _fill(mod, factors: dict[str, float], skip=()) -> None:
    """Every cell of each candidate: BASE times its factor; test MSE half its validation."""
    ltsf, screens = mod.ltsf, {}
    for i, H in enumerate(ltsf.HORIZONS):
        for cand, f in factors.items():
            for block in mod.BLOCKS:
                v = BASE[block][i] * f
                if (cand, block, H) in skip:
                    continue
                if (cand, block) == ("recipe", "late"):
                    cmd = shlex.join(mod.command("recipe", "late", H))
                    assert "--set=trainer.seed=1 " in cmd
                    other = cmd.replace("--set=trainer.seed=1 ", "--set=trainer.seed=2 ")
                    runs = [{"command": c, "best_val_loss": b, "epochs": 30,
                             "stopped": "max_epochs", "wall_seconds": 200.0, "mse": m}
                            for c, b, m in ((other, v * 0.9, 99.0), (cmd, v, v / 2))]
                    (ltsf.RESULTS / f"ltsf_ettm2_s_h{H}_l96.json").write_text(
                        json.dumps({"runs": {"segrnn": runs}}))
                elif (cand, block) == ("stride2", "late"):
                    screens[str(H)] = {"val_mse": v, "epochs": 25, "stopped": "early_stopping",
                                       "wall_seconds": 108.0, "command": _stride2_command(mod, H)}
                    (ltsf.LOGS / f"ltsf_ettm2_s_h{H}_l96_{ltsf.tag('segrnn', 24)}_seed1.json"
                     ).write_text(json.dumps({"report": {"metrics": {"model": {"mse": v / 2}}}}))
                else:
                    _run_dir(mod, cand, block, H, v)
    if screens:
        fam = json.loads(ltsf.FAMILY_FILE.read_text())
        fam["screens"] = {KEY: {"validation": {"recipe": screens}}}
        ltsf.FAMILY_FILE.write_text(json.dumps(fam))


def _gm(values):
    return math.exp(sum(math.log(v) for v in values) / len(values))


def test_the_score_is_the_geometric_mean_and_only_more_than_the_margin_wins(screen):
    _fill(screen, {"recipe": 1.0, "stride2": 1.02, "seg48": 1.1, "revin": 0.995})
    got = screen.cells()
    every = BASE["late"] + BASE["early"]
    assert got["recipe"]["score"] == pytest.approx(math.prod(every) ** (1 / 8))
    assert got["stride2"]["score"] == pytest.approx(1.02 * math.prod(every) ** (1 / 8))
    assert got["recipe"]["cells"]["late 336"]["val_mse"] == 0.20  # the seed-1 run, not seed 2
    assert got["stride2"]["cells"]["late 96"]["from"] == "family.json"
    assert got["seg48"]["cells"]["early 720"]["val_mse"] == pytest.approx(0.27 * 1.1)
    assert screen.decide(got) is None  # revin lowest, but only 0.5% below: the recipe stays
    _fill(screen, {"revin": 0.985})
    got = screen.cells()
    assert got["revin"]["score"] / got["recipe"]["score"] == pytest.approx(0.985)
    assert screen.decide(got) == "revin"
    shutil.rmtree(screen.run_dir("seg48", "early", 192))
    got = screen.cells()
    assert got["seg48"]["score"] is None and got["seg48"]["cells"]["early 192"] is None
    with pytest.raises(SystemExit, match=r"8 cells yet: seg48$"):
        screen.decide(got)


def test_main_records_the_rule_and_a_decision_that_keeps_the_recipe_stands(screen):
    _fill(screen, {"recipe": 1.0, "stride2": 1.0, "seg48": 0.995, "revin": 1.2})
    family = screen.ltsf.FAMILY_FILE.read_text()
    assert screen.main([]) == 0
    rec = json.loads(screen.RECORD.read_text())
    assert rec["chosen"] == "recipe" and "adopted" not in rec
    assert rec["ratios"]["seg48"] == pytest.approx(0.995) and rec["ratios"]["recipe"] == 1.0
    sha = hashlib.sha256((screen.ROOT / screen.RULE).read_bytes()).hexdigest()
    assert rec["rule_sha256"] == sha and rec["margin"] == 0.01 and rec["device"] == "cpu: test"
    assert screen.ltsf.FAMILY_FILE.read_text() == family
    with pytest.raises(SystemExit, match="a decision stands"):
        screen.main([])


def test_adopting_revin_hands_its_runs_to_the_table_and_test_is_read_after(screen):
    _fill(screen, {"recipe": 1.0, "stride2": 1.02, "seg48": 1.1, "revin": 0.985})
    with pytest.raises(SystemExit, match="not decided yet"):  # test stays unread before
        screen.record_test()
    assert screen.main([]) == 0
    ltsf, sets = screen.ltsf, ["data.train_stride=1", "model.norm=revin"]
    rec = json.loads(screen.RECORD.read_text())
    assert rec["chosen"] == "revin" and rec["ratios"]["revin"] == pytest.approx(0.985)
    sha = hashlib.sha256((screen.ROOT / screen.RULE).read_bytes()).hexdigest()
    assert rec["rule_sha256"] == sha and rec["margin"] == 0.01
    fam = json.loads(ltsf.FAMILY_FILE.read_text())
    assert fam["chosen"] == {KEY: {"name": "stride1_revin", "sets": sets, "by": screen.RULE}}
    assert ltsf.variant_for("ETTm2", "univariate", 96) == ("stride1_revin", sets)
    assert ltsf.tag("segrnn", 24, "stride1_revin") == "segrnn_seg24_stride1_revin"
    want = {str(H): f"runs/ltsf/ltsf_ettm2_s_h{H}_l96_segrnn_seg24_stride1_revin_seed1"
            for H in ltsf.HORIZONS}
    assert rec["adopted"] == {"name": "stride1_revin", "sets": sets}
    assert rec["adopted_runs"] == want
    for H, d in zip(ltsf.HORIZONS, want.values()):
        assert (screen.ROOT / d / "summary.json").is_file()
        assert not screen.run_dir("revin", "late", H).exists()
        assert screen.run_dir("revin", "early", H).is_dir()  # the early block stays
    test = screen.record_test()
    for cand, f in {"recipe": 1.0, "stride2": 1.02, "seg48": 1.1, "revin": 0.985}.items():
        assert test[cand] == {str(H): pytest.approx(v * f / 2)
                              for H, v in zip(ltsf.HORIZONS, BASE["late"])}, cand
    nxt = json.loads(screen.RECORD.read_text())["early_block_next_months_mse"]
    assert nxt["revin"] == {str(H): pytest.approx(v * 0.985 / 2)  # the early runs' own report
                            for H, v in zip(ltsf.HORIZONS, BASE["early"])}
    got = json.loads(screen.RECORD.read_text())["test_mse_seed1"]
    assert got["revin"]["720"] == pytest.approx(0.24 * 0.985 / 2)
    assert got["recipe"]["96"] == pytest.approx(0.045)  # the seed-1 run's, not seed 2's 99


def test_after_an_adoption_the_decision_stands(screen, capsys):
    """The family has moved on to stride1_revin: a second decision is refused by the record,
    and --status prints the recorded one."""
    _fill(screen, {"recipe": 1.0, "stride2": 1.02, "seg48": 1.1, "revin": 0.985})
    assert screen.main([]) == 0
    with pytest.raises(SystemExit, match="a decision stands"):
        screen.main([])
    capsys.readouterr()
    assert screen.main(["--status"]) == 0
    assert "revin (scores, of the recipe's: recipe 1.0000, stride2 1.0200" in capsys.readouterr().out


def test_an_adoption_moves_nothing_when_a_table_run_is_there(screen):
    _fill(screen, {"recipe": 1.0, "stride2": 1.02, "seg48": 1.1, "revin": 0.985})
    taken = screen.ltsf.RUNS / "ltsf_ettm2_s_h720_l96_segrnn_seg24_stride1_revin_seed1"
    taken.mkdir(parents=True)
    with pytest.raises(SystemExit, match="already there"):
        screen.main([])
    assert all(screen.run_dir("revin", "late", H).is_dir() for H in screen.ltsf.HORIZONS)
    assert not screen.RECORD.is_file()


def test_adopting_stride2_leaves_the_recipe_file_s_own_stride(screen):
    _fill(screen, {"recipe": 1.0, "stride2": 0.985, "seg48": 1.1, "revin": 1.2})
    assert screen.main([]) == 0
    rec = json.loads(screen.RECORD.read_text())
    assert rec["chosen"] == "stride2"
    assert rec["adopted"] == {"name": "", "sets": []} and rec["adopted_runs"] == {}
    assert KEY not in json.loads(screen.ltsf.FAMILY_FILE.read_text())["chosen"]
    assert screen.ltsf.variant_for("ETTm2", "univariate", 96) == ("", [])


def test_the_cells_on_record_must_be_the_runs_this_screen_would_make(screen):
    _fill(screen, {"recipe": 1.0, "stride2": 1.0, "seg48": 1.0, "revin": 1.0})
    ltsf = screen.ltsf
    f = ltsf.RESULTS / "ltsf_ettm2_s_h192_l96.json"
    rec = json.loads(f.read_text())
    seed1 = rec["runs"]["segrnn"][1]
    parts = shlex.split(seed1["command"])
    sets = [p for p in parts if p.startswith("--set=")]
    assert "--set=optim.lr=0.001" in sets
    # the same --sets in another order (the seed still followed by a space): accepted
    order = sorted(sets, key=lambda s: (s != "--set=trainer.seed=1", s))
    seed1["command"] = shlex.join(parts[:4] + order + parts[-2:])
    f.write_text(json.dumps(rec))
    assert screen.cells()["recipe"]["cells"]["late 192"]["val_mse"] == 0.15
    seed1["command"] = seed1["command"].replace("optim.lr=0.001", "optim.lr=0.002")
    f.write_text(json.dumps(rec))
    with pytest.raises(SystemExit, match="not the run this screen would make"):
        screen.cells()
    _fill(screen, {"recipe": 1.0})
    # stride2's record trained on every window: not session 23's recipe run
    fam = json.loads(ltsf.FAMILY_FILE.read_text())
    cell = fam["screens"][KEY]["validation"]["recipe"]["336"]
    cell["command"] = cell["command"].replace(" --out", " --set=data.train_stride=1 --out")
    ltsf.FAMILY_FILE.write_text(json.dumps(fam))
    with pytest.raises(SystemExit, match="the stride2 run on record for H=336"):
        screen.cells()
    _run_dir(screen, "revin", "early", 96, 0.1, offset=0)  # trained on the late block
    with pytest.raises(SystemExit, match="data.end_offset=0; this cell's command sets 11520"):
        screen._ran("revin", "early", 96)
    # a run of another candidate left in this cell's directory: the last value, not RevIN
    _run_dir(screen, "revin", "early", 192, 0.1)
    cfg_file = screen.run_dir("revin", "early", 192) / "best" / "config.json"
    saved = json.loads(cfg_file.read_text())
    saved["config"]["model"]["norm"] = "last"
    cfg_file.write_text(json.dumps(saved))
    with pytest.raises(SystemExit, match="model.norm='last'; this cell's command sets 'revin'"):
        screen._ran("revin", "early", 192)
    # the same settings through another recipe file are not the run on record
    cell = fam["screens"][KEY]["validation"]["recipe"]["336"]
    cell["command"] = _stride2_command(screen, 336).replace("ltsf_ettm1_segrnn", "ltsf_etth1_segrnn")
    ltsf.FAMILY_FILE.write_text(json.dumps(fam))
    with pytest.raises(SystemExit, match="the stride2 run on record for H=336"):
        screen.cells()


def test_the_command_of_a_cell(screen):
    for cand in screen.CANDIDATES:
        cmd = shlex.join(screen.command(cand, "early", 336))
        assert cmd.startswith("rnnkit forecast train configs/ltsf_ettm1_segrnn.yaml ")
        assert cmd.endswith("--set=data.end_offset=11520 --out runs/screen_ltsf/"
                            f"ettm2_s_l96_2block/{cand}_early_h336_seed1")
        assert "--set=data.train_stride=1" in cmd and "--set=trainer.seed=1 " in cmd
        assert "--set=model.segment_length=24" in cmd and "--set=data.horizon=336 " in cmd
        late = shlex.join(screen.command(cand, "late", 336))
        assert "end_offset" not in late and late.endswith(f"{cand}_late_h336_seed1")
    cmd = screen.command("stride2", "late", 96)
    assert [a for a in cmd if "train_stride" in a] == ["--set=data.train_stride=1",
                                                       "--set=data.train_stride=2"]
    assert cmd[-3] == "--set=data.train_stride=2"
    assert "--set=model.norm=revin" in screen.command("revin", "late", 96)
    assert "--set=model.segment_length=48" == screen.command("seg48", "late", 96)[-3]


def test_run_trains_only_missing_cells_one_thread_and_prints_no_test(screen, monkeypatch,
                                                                     capsys):
    _fill(screen, {"recipe": 1.0, "stride2": 1.0})
    with pytest.raises(SystemExit, match="on record: nothing to run"):
        screen.main(["--run", "recipe", "late"])
    with pytest.raises(SystemExit, match="on record"):
        screen.main(["--run", "stride2", "late"])
    with pytest.raises(SystemExit) as e:
        screen.main(["--run", "bogus", "early"])
    assert e.value.code == 2 and "--run bogus early: expected one of" in capsys.readouterr().err
    calls = []

    def fake_run(cmd, cwd, stdout, stderr, env):
        calls.append((cmd, cwd, env["OMP_NUM_THREADS"]))
        stdout.write("epoch 30 val 0.1\ntest mse 0.1234 mae 0.2\n")  # the trainer's log
        out = Path(cwd) / cmd[cmd.index("--out") + 1]
        out.mkdir(parents=True)
        (out / "summary.json").write_text(json.dumps({"best": 0.1}))
        return types.SimpleNamespace(returncode=0)

    monkeypatch.setattr(screen, "subprocess",
                        types.SimpleNamespace(run=fake_run, STDOUT=subprocess.STDOUT))
    _run_dir(screen, "revin", "early", 192, 0.16)  # finished: skipped
    assert screen.main(["--run", "revin", "early"]) == 0
    assert [c[0] for c in calls] == [screen.command("revin", "early", H) for H in (96, 336, 720)]
    assert all(c[1] == screen.ROOT and c[2] == "1" for c in calls)
    out = capsys.readouterr().out
    assert out.count("done in") == 3 and "H=192" not in out
    assert "mse" not in out.lower() and "0.1234" not in out
    assert "test mse 0.1234" in Path(f"{screen.run_dir('revin', 'early', 96)}.log").read_text()
    screen.run("revin", "early")  # all four finished: nothing runs
    assert len(calls) == 3
