"""experiments/forecast/family_screen.py: the rule (the lowest geometric-mean validation MSE,
only if more than 1% below the recipe's), a decision that stands, and the chosen runs handed to
the table driver under its names (runs replaced by small made-up files)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def screen(ltsf_screen_script, tmp_path, monkeypatch):
    mod = ltsf_screen_script("family_screen")
    monkeypatch.setattr(mod, "SCREEN", tmp_path / "screen")
    return mod


def _fill(mod, vals: dict[str, list[float]]) -> None:
    """Seed-1 runs per candidate (the recipe's and seg48's as the table's cached reports)."""
    for cand, per_h in vals.items():
        for H, v in zip(mod.ltsf.HORIZONS, per_h):
            if cand in ("recipe", "seg48"):
                label = mod.ltsf.tag("segrnn", 24 if cand == "recipe" else 48)
                (mod.ltsf.LOGS / f"ltsf_ettm2_s_h{H}_l96_{label}_seed1.json").write_text(
                    json.dumps({"best_val_loss": v, "epochs": 20, "stopped": "early_stopping",
                                "command": "rnnkit forecast train x", "wall_seconds": 1.0,
                                "report": {"metrics": {"model": {"mse": v / 2}}}}))
                continue
            run = mod.SCREEN / f"{cand}_h{H}_seed1"
            (run / "best").mkdir(parents=True)
            (run / "summary.json").write_text(json.dumps(
                {"best": v, "epoch": 30, "stopped": "max_epochs", "device": "cpu: test"}))
            (run / "best" / "config.json").write_text(json.dumps({"config": {}}))
            (run / "report.json").write_text(json.dumps({"metrics": {"model": {"mse": v / 2}}}))


def test_the_lowest_score_wins_only_by_more_than_the_margin(screen, capsys):
    base = [0.09, 0.15, 0.20, 0.24]
    _fill(screen, {"recipe": base, "seg48": [v * 1.01 for v in base],
                   "width512": [v * 0.995 for v in base],  # 0.5% lower: under the margin
                   "stride1": [v * 0.985 for v in base], "revin": [v * 1.2 for v in base]})
    got = screen.scores()
    assert got["recipe"]["score"] == pytest.approx(math.prod(base) ** 0.25)
    assert screen.decide(got) == "stride1"  # 1.5% lower
    assert screen.main([]) == 0
    rec = json.loads(screen.ltsf.FAMILY_FILE.read_text())
    assert rec["chosen"] == {"ETTm2 univariate 96": {"name": "stride1",
                                                     "sets": ["data.train_stride=1"]}}
    sc = rec["screens"]["ETTm2 univariate 96"]
    assert sc["ratio"] == pytest.approx(0.985) and sc["margin"] == 0.01
    assert "config" not in sc["validation"]["stride1"]["96"]
    cmd = sc["validation"]["stride1"]["96"]["command"]  # what family_screen_runs.sh runs
    assert cmd.startswith("rnnkit forecast train configs/ltsf_ettm1_segrnn.yaml ")
    assert cmd.endswith("--set=model.segment_length=24 --set=data.train_stride=1 --out "
                        "runs/screen_ltsf/ettm2_s_l96/stride1_h96_seed1")
    assert "--set=data.path=ett/ETTm2.csv.gz" in cmd and "--set=trainer.seed=1" in cmd
    assert screen.ltsf.variant_for("ETTm2", "univariate", 96) == ("stride1",
                                                                  ["data.train_stride=1"])
    # its seed-1 runs are where the table driver looks for them
    for H in screen.ltsf.HORIZONS:
        assert (screen.ltsf.RUNS / f"ltsf_ettm2_s_h{H}_l96_segrnn_seg24_stride1_seed1"
                / "summary.json").is_file()
        assert not (screen.SCREEN / f"stride1_h{H}_seed1").exists()
    with pytest.raises(SystemExit, match="a decision stands"):
        screen.main([])
    # test, after the decision, for the record: the chosen one's from the table's directory
    test = screen.record_test()
    assert test["stride1"][336] == pytest.approx(0.20 * 0.985 / 2)
    assert test["recipe"][96] == pytest.approx(0.045) and test["revin"][720] == 0.24 * 1.2 / 2
    rec = json.loads(screen.ltsf.FAMILY_FILE.read_text())["screens"]["ETTm2 univariate 96"]
    assert rec["test_mse_seed1"]["width512"]["192"] == pytest.approx(0.15 * 0.995 / 2)


def test_no_candidate_under_the_margin_keeps_the_recipe(screen):
    base = [0.09, 0.15, 0.20, 0.24]
    _fill(screen, {"recipe": base, "seg48": base, "width512": [v * 0.995 for v in base],
                   "stride1": base, "revin": base})
    assert screen.decide(screen.scores()) is None
    assert screen.main([]) == 0
    rec = json.loads(screen.ltsf.FAMILY_FILE.read_text())
    assert rec["chosen"] == {} and rec["screens"]["ETTm2 univariate 96"]["chosen"] == "recipe"
    assert screen.ltsf.variant_for("ETTm2", "univariate", 96) == ("", [])


def test_no_decision_before_every_run_is_in(screen):
    base = [0.09, 0.15, 0.20, 0.24]
    _fill(screen, {"recipe": base, "seg48": base, "width512": base, "stride1": base})
    with pytest.raises(SystemExit, match="revin"):
        screen.main([])
    assert not screen.ltsf.FAMILY_FILE.exists()
    with pytest.raises(SystemExit, match="not decided yet"):  # test stays unread before
        screen.record_test()
    assert screen.main(["--status"]) == 0


def test_the_runner_script_runs_the_command_the_record_names(screen):
    """family_screen_runs.sh (the screen's runs) and screen_command (their record) agree: every
    --set of the script is in the command, and the command has no other."""
    import re
    import shlex

    script = (ROOT / "experiments/forecast/family_screen_runs.sh").read_text()
    body = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    body = body.replace("\\\n", " ").replace("$H", "336")
    ran = [s.strip("'") for s in re.findall(r"'?--set=[^\s\"]+", body)]
    cmd = shlex.split(screen.screen_command("revin", 336))
    sets = [c for c in cmd if c.startswith("--set=")]
    assert sets == ran + ["--set=model.norm=revin"]  # "$@": the candidate's own, last
    assert cmd[:4] == ["rnnkit", "forecast", "train", "configs/ltsf_ettm1_segrnn.yaml"]
    assert "configs/ltsf_ettm1_segrnn.yaml" in body
