"""One family of LTSF rows, one recipe change, chosen on that family's validation split.

The rule (written before the screen's first score) is in
``experiments/forecast/ltsf_ettm2_s_l96_screen_rule.md``: SegRNN at seed 1 over the four
horizons, one candidate change at a time; a candidate's score is the geometric mean of its best
validation MSE over the horizons, and the lowest replaces the table's recipe for the family only
if it is lower than the recipe's by more than :data:`MARGIN`.  The recipe's own score comes from
the table's cached seed-1 runs, and ``seg48``'s from the runs made before the lookback-96
segment choice (the same recipe at the recipes' 48).  The other candidates are trained by
``experiments/forecast/family_screen_runs.sh`` (``rnnkit forecast train``, 1 thread each;
:func:`screen_command` is the command it runs)::

    python experiments/forecast/family_screen.py            # decide, once every run is in
    python experiments/forecast/family_screen.py --status   # validation scores so far
    python experiments/forecast/family_screen.py --test     # after it: test, for the record

It writes the decision to ``ltsf_family_recipes.json`` (``ltsf.py`` reads it: the family's
SegRNN runs get the chosen ``--set``s and carry the name in their files), and moves the
chosen candidate's seed-1 runs to the table's run directories, where the driver takes them once
it has checked that their configuration is the one it would train.  The test split is read
only after the decision is written, for the record.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import shlex
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the table driver, beside it
import ltsf  # noqa: E402

ROOT = ltsf.ROOT
MARGIN = 0.01  # what one seed moves validation MSE here: 0.8% and 0.9% (horizons 336, 720)
RULE = "experiments/forecast/ltsf_ettm2_s_l96_screen_rule.md"
FAMILY = ("ETTm2", "univariate", 96)
SCREEN = ROOT / "runs" / "screen_ltsf" / "ettm2_s_l96"
# candidate -> (the --sets it adds to the table's SegRNN recipe, why)
CANDIDATES = {
    "seg48": (["model.segment_length=48"], "SegRNN's own ETTm segment length"),
    "width512": (["model.hidden_size=512"], "SegRNN's own width"),
    "stride1": (["data.train_stride=1"], "every training window (the stride was a time budget)"),
    "revin": (["model.norm=revin"], "window mean and std instead of the last value"),
}


def _cached(H: int, label: str) -> dict | None:
    name = ltsf.job_name(*FAMILY[:2], H, FAMILY[2])
    f = ltsf.LOGS / f"{name}_{label}_seed1.json"
    if not f.is_file():
        return None
    r = json.loads(f.read_text())
    return {"val_mse": r["best_val_loss"], "epochs": r["epochs"], "stopped": r["stopped"],
            "command": r["command"], "wall_seconds": r["wall_seconds"], "from": str(
                f.relative_to(ROOT))}


def screen_command(cand: str, H: int) -> str:
    """The ``rnnkit forecast train`` command ``family_screen_runs.sh`` runs for one candidate
    and horizon: the table's SegRNN command for the row at seed 1, plus the candidate's sets."""
    ds, variables, L = FAMILY
    sets = ltsf._overrides(ds, variables, H, L, 1, "segrnn", 24) + CANDIDATES[cand][0]
    cmd = ["rnnkit", "forecast", "train", f"configs/ltsf_{ltsf.DATASETS[ds]['family']}_segrnn.yaml",
           *[f"--set={s}" for s in sets], "--out", f"runs/screen_ltsf/ettm2_s_l96/{cand}_h{H}_seed1"]
    return " ".join(shlex.quote(c) for c in cmd)


def _screened(H: int, cand: str) -> dict | None:
    run = SCREEN / f"{cand}_h{H}_seed1"
    if not (run / "summary.json").is_file():
        return None
    s = json.loads((run / "summary.json").read_text())
    cfg = json.loads((run / "best" / "config.json").read_text())["config"]
    return {"val_mse": s["best"], "epochs": s["epoch"], "stopped": s["stopped"],
            "wall_seconds": s.get("wall_seconds"), "device": s.get("device"),
            "command": screen_command(cand, H), "run": str(run.relative_to(ROOT)), "config": cfg}


def scores() -> dict:
    """Every candidate's seed-1 validation MSE per horizon, and its geometric mean where all
    four are in."""
    S = ltsf.segment_for(FAMILY[2])
    out: dict = {"recipe": {H: _cached(H, ltsf.tag("segrnn", S)) for H in ltsf.HORIZONS}}
    for cand in CANDIDATES:
        if cand == "seg48":
            out[cand] = {H: _cached(H, ltsf.tag("segrnn", 48)) for H in ltsf.HORIZONS}
        else:
            out[cand] = {H: _screened(H, cand) for H in ltsf.HORIZONS}
    for rows in out.values():
        vals = [r["val_mse"] for r in rows.values() if r]
        rows["score"] = (math.exp(sum(map(math.log, vals)) / len(vals))
                         if len(vals) == len(ltsf.HORIZONS) else None)
    return out


def decide(got: dict) -> str | None:
    """The rule: the lowest score, if lower than the recipe's by more than MARGIN."""
    if any(rows["score"] is None for rows in got.values()):
        missing = [c for c, rows in got.items() if rows["score"] is None]
        raise SystemExit(f"not every candidate has all four horizons yet: {', '.join(missing)}")
    best = min(CANDIDATES, key=lambda c: got[c]["score"])
    return best if got[best]["score"] < got["recipe"]["score"] * (1 - MARGIN) else None


def _adopt(cand: str) -> list[str]:
    """Move the chosen candidate's seed-1 runs to the table's directories (the driver checks
    their configuration before it takes them)."""
    L = FAMILY[2]
    sets = CANDIDATES[cand][0]
    S = ltsf.segment_for(L, sets)
    moved = []
    for H in ltsf.HORIZONS:
        src = SCREEN / f"{cand}_h{H}_seed1"
        dst = ltsf.RUNS / f"{ltsf.job_name(*FAMILY[:2], H, L)}_{ltsf.tag('segrnn', S, cand)}_seed1"
        if src.is_dir() and not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(src), str(dst))
            moved.append(str(dst.relative_to(ROOT)))
    return moved


def record_test() -> dict:
    """Once the family is decided: each candidate's seed-1 test MSE per horizon (SegRNN alone,
    the runs' own reports), added to the screen's record for the record only."""
    key = " ".join(map(str, FAMILY))
    rec = json.loads(ltsf.FAMILY_FILE.read_text()) if ltsf.FAMILY_FILE.is_file() else {}
    sc = rec.get("screens", {}).get(key)
    if sc is None:
        raise SystemExit(f"{key} is not decided yet: its test scores stay unread")
    S = ltsf.segment_for(FAMILY[2])
    test: dict = {}
    for cand in ["recipe", *CANDIDATES]:
        for H in ltsf.HORIZONS:
            job = ltsf.job_name(*FAMILY[:2], H, FAMILY[2])
            if cand in ("recipe", "seg48"):
                label = ltsf.tag("segrnn", S if cand == "recipe" else 48)
                f = ltsf.LOGS / f"{job}_{label}_seed1.json"
                mse = json.loads(f.read_text())["report"]["metrics"]["model"]["mse"]
            else:
                run = (ltsf.RUNS / f"{job}_{ltsf.tag('segrnn', S, cand)}_seed1"
                       if cand == sc["chosen"] else SCREEN / f"{cand}_h{H}_seed1")
                mse = json.loads((run / "report.json").read_text())["metrics"]["model"]["mse"]
            test.setdefault(cand, {})[H] = mse
    sc["test_mse_seed1"] = {"what": "SegRNN alone, seed 1, read after the decision, for the "
                                    "record only", **test}
    tmp = ltsf.FAMILY_FILE.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec, indent=2) + "\n")
    tmp.replace(ltsf.FAMILY_FILE)
    return test


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--status", action="store_true", help="validation scores so far; no choice")
    p.add_argument("--test", action="store_true",
                   help="after the decision: every candidate's seed-1 test MSE, for the record")
    a = p.parse_args(argv)
    if a.test:
        for cand, per_h in record_test().items():
            print(f"{cand:9s} " + " ".join(f"{H}: {v:.4f}" for H, v in per_h.items()))
        return 0
    got = scores()
    for cand, rows in got.items():
        vals = " ".join(f"{H}: {rows[H]['val_mse']:.4f}" if rows[H] else f"{H}: -"
                        for H in ltsf.HORIZONS)
        score = f"{rows['score']:.4f}" if rows["score"] else "-"
        print(f"{cand:9s} {vals}  score {score}")
    if a.status:
        return 0
    key = " ".join(map(str, FAMILY))
    rec = json.loads(ltsf.FAMILY_FILE.read_text()) if ltsf.FAMILY_FILE.is_file() else {
        "what": "changes to the SegRNN recipe chosen for one family of LTSF rows on that "
                "family's validation split (family_screen.py); ltsf.py applies them",
        "chosen": {}, "screens": {}}
    if key in rec["screens"]:
        raise SystemExit(f"{ltsf.FAMILY_FILE}: {key} was decided on {rec['screens'][key]['date']}"
                         "; a decision stands")
    chosen = decide(got)
    strip = {c: {H: ({k: v for k, v in r.items() if k != "config"} if r else None)
                 for H, r in rows.items() if H != "score"} | {"score": rows["score"]}
             for c, rows in got.items()}
    rec["screens"][key] = {
        "rule": RULE, "margin": MARGIN,
        "candidates": {c: {"sets": s, "why": w} for c, (s, w) in CANDIDATES.items()},
        "validation": strip, "chosen": chosen or "recipe",
        "ratio": (got[chosen]["score"] / got["recipe"]["score"]) if chosen else None,
        "command": "python experiments/forecast/family_screen.py",
        "device": ltsf._device(), "date": _dt.datetime.now(_dt.timezone.utc).isoformat(
            timespec="minutes")}
    if chosen:
        rec["chosen"][key] = {"name": chosen, "sets": CANDIDATES[chosen][0]}
        # the runs first: no driver looks for them under the table's names before the file
        for d in _adopt(chosen):
            print(f"  moved to {d}")
    tmp = ltsf.FAMILY_FILE.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec, indent=2) + "\n")
    tmp.replace(ltsf.FAMILY_FILE)
    print(f"{key}: {chosen or 'the recipe stays'}"
          + (f" (score {rec['screens'][key]['ratio']:.3f} of the recipe's)" if chosen else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
