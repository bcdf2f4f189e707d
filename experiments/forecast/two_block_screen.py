"""Univariate ETTm2 at lookback 96: session 23's recipe screen again, scored on two blocks.

The rule, written before any run: ``experiments/forecast/ltsf_two_block_rule.md``.

- **The score:** a candidate's score is the geometric mean of SegRNN's best validation MSE
  (seed 1) over 4 horizons x 2 blocks.
  - The late block is the protocol's own validation months (12-16, trained on months 0-12).
  - The early block is the protocol moved 4 months earlier (``data.end_offset=11520``:
    validation months 8-12, trained on months 0-8).
- **The decision:** the lowest score replaces the recipe for the family only if it is below
  the recipe's by more than :data:`MARGIN`.
- **Cells on record:** the recipe's late block is the table's seed-1 runs. ``stride2``'s late
  block is session 23's recipe runs. Each is checked to be the command this screen would run.

Commands::

    python experiments/forecast/two_block_screen.py --run revin early   # train, 1 thread
    python experiments/forecast/two_block_screen.py --status            # validation so far
    python experiments/forecast/two_block_screen.py                     # decide, once
    python experiments/forecast/two_block_screen.py --test              # after it, the record

- **What ``--run`` prints:** only each run's wall time. The trainer's output, which has the
  run's test scores, goes to a log beside the run.
- **When test is read:** only after the decision is written, for the record.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import functools
import hashlib
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the table driver, beside it
import ltsf  # noqa: E402

ROOT = ltsf.ROOT
MARGIN = 0.01  # session 23's: what one seed moves validation MSE here (0.8-0.9%)
RULE = "experiments/forecast/ltsf_two_block_rule.md"
RECORD = ROOT / "experiments" / "forecast" / "ltsf_two_block.json"
FAMILY = ("ETTm2", "univariate", 96)
FAMILY_KEY = " ".join(map(str, FAMILY))
SCREEN = ROOT / "runs" / "screen_ltsf" / "ettm2_s_l96_2block"
BLOCKS = {"late": 0, "early": 11520}  # data.end_offset: 4 months of 15-minute rows
MONTHS = {"late": "12-16, trained on 0-12", "early": "8-12, trained on 0-8"}
# candidate -> (the --sets it adds to the family's current recipe, why)
CANDIDATES = {
    "recipe": ([], "the table's recipe for the family (every training window)"),
    "stride2": (["data.train_stride=2"], "every second training window (before session 23)"),
    "seg48": (["model.segment_length=48"], "SegRNN's own ETTm segment length"),
    "revin": (["model.norm=revin"], "window mean and std instead of the last value"),
}


def _family_sets() -> tuple[str, list[str]]:
    """The family's recipe variant as session 23 chose it (this screen's starting point)."""
    name, sets = ltsf.variant_for(*FAMILY)
    if (name, sets) != ("stride1", ["data.train_stride=1"]):
        raise SystemExit(f"{ltsf.FAMILY_FILE}: {FAMILY_KEY} is {name or 'the recipe'} {sets}, not "
                         "session 23's stride1: this screen starts from that recipe")
    return name, sets


def sets_for(cand: str, block: str, H: int) -> list[str]:
    """The ``--set``s of one run: the table's SegRNN row at seed 1 (``ltsf.py``'s overrides and
    the family's variant), the candidate's change, and the block's offset."""
    ds, variables, L = FAMILY
    sets = ltsf._overrides(ds, variables, H, L, 1, "segrnn", 24) + _family_sets()[1]
    sets += CANDIDATES[cand][0]
    if BLOCKS[block]:
        sets.append(f"data.end_offset={BLOCKS[block]}")
    return sets


def run_dir(cand: str, block: str, H: int) -> Path:
    return SCREEN / f"{cand}_{block}_h{H}_seed1"


def _recipe() -> str:
    return f"configs/ltsf_{ltsf.DATASETS[FAMILY[0]]['family']}_segrnn.yaml"


def command(cand: str, block: str, H: int) -> list[str]:
    return ["rnnkit", "forecast", "train", _recipe(),
            *[f"--set={s}" for s in sets_for(cand, block, H)],
            "--out", str(run_dir(cand, block, H).relative_to(ROOT))]


def _on_record(cand: str, block: str, H: int) -> dict | None:
    """A cell this screen does not run: the recipe's late block (the table's seed-1 run) and
    stride2's (session 23's recipe run); its recorded command must be the one it would run."""
    ds, variables, L = FAMILY
    if (cand, block) == ("recipe", "late"):
        f = ltsf.RESULTS / f"{ltsf.job_name(ds, variables, H, L)}.json"
        runs = json.loads(f.read_text())["runs"]["segrnn"]
        got = [r for r in runs if "--set=trainer.seed=1 " in r["command"]]
        if len(got) != 1:
            raise SystemExit(f"{f}: expected one seed-1 SegRNN run, found {len(got)}")
        r, src = got[0], str(f.relative_to(ROOT))
        rec = {"val_mse": r["best_val_loss"], "epochs": r["epochs"], "stopped": r["stopped"],
               "wall_seconds": r["wall_seconds"], "command": r["command"]}
    elif (cand, block) == ("stride2", "late"):
        fam = json.loads(ltsf.FAMILY_FILE.read_text())["screens"][FAMILY_KEY]["validation"]
        r, src = fam["recipe"][str(H)], str(ltsf.FAMILY_FILE.relative_to(ROOT))
        rec = {k: r[k] for k in ("val_mse", "epochs", "stopped", "wall_seconds", "command")}
    else:
        return None
    want = sets_for(cand, block, H)
    argv = shlex.split(rec["command"])
    have = [a.removeprefix("--set=") for a in argv if a.startswith("--set=")]
    plain = [a for a in argv[:argv.index("--out")] if not a.startswith("--set=")]
    # the same recipe and settings, whatever their order; stride2's recorded run had no stride
    # set (the recipe file's own), this screen's sets it twice, 1 then 2
    if plain != command(cand, block, H)[:4] or _effective(have) != _effective(want):
        raise SystemExit(f"{src}: the {cand} run on record for H={H} is not the run this screen "
                         f"would make:\n  {rec['command']}\n  {want}")
    return rec | {"from": src}


def _load(sets: list[str]):
    from rnnkit.train.config import load_recipe

    return load_recipe(ltsf.ROOT / _recipe(), sets)


def _as_dict(cfg) -> dict:
    import dataclasses

    return json.loads(json.dumps(dataclasses.asdict(cfg)))  # tuples as lists, as saved


def _get(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = tree[part]
    return tree


@functools.cache
def _recipe_stride() -> str:
    return str(_load([]).data.train_stride)


def _effective(sets: list[str]) -> dict[str, str]:
    """``--set``s as the values they leave, the stride the recipe file's where none is set."""
    out = {"data.train_stride": _recipe_stride()}
    for s in sets:
        k, v = s.split("=", 1)
        out[k] = v
    return out


def _ran(cand: str, block: str, H: int) -> dict | None:
    d = run_dir(cand, block, H)
    if not (d / "summary.json").is_file():
        return None
    s = json.loads((d / "summary.json").read_text())
    saved = json.loads((d / "best" / "config.json").read_text())["config"]
    want = _as_dict(_load(sets_for(cand, block, H)))
    for k in _effective(sets_for(cand, block, H)):  # every setting this cell's command sets
        got, exp = _get(saved, k), _get(want, k)
        if got != exp:
            raise SystemExit(f"{d}: trained with {k}={got!r}; this cell's command sets {exp!r}")
    return {"val_mse": s["best"], "epochs": s["epoch"], "stopped": s["stopped"],
            "wall_seconds": s.get("wall_seconds"), "device": s.get("device"),
            "command": shlex.join(command(cand, block, H))}


def cells() -> dict:
    """Every candidate's 8 cells (None where not run yet) and its score where all are in."""
    out: dict = {}
    for cand in CANDIDATES:
        rows = {f"{b} {H}": _on_record(cand, b, H) or _ran(cand, b, H)
                for b in BLOCKS for H in ltsf.HORIZONS}
        vals = [r["val_mse"] for r in rows.values() if r]
        out[cand] = {"cells": rows, "score": (math.exp(sum(map(math.log, vals)) / len(vals))
                                              if len(vals) == len(rows) else None)}
    return out


def decide(got: dict) -> str | None:
    """The rule: the lowest score, if below the recipe's by more than MARGIN; None keeps it."""
    missing = [c for c, r in got.items() if r["score"] is None]
    if missing:
        raise SystemExit(f"not every candidate has its 8 cells yet: {', '.join(missing)}")
    best = min(CANDIDATES, key=lambda c: got[c]["score"])
    if best != "recipe" and got[best]["score"] < got["recipe"]["score"] * (1 - MARGIN):
        return best
    return None


def run(cand: str, block: str) -> None:
    """Train a candidate's four runs on one block, one thread each; finished runs are skipped.
    Prints only wall times (the trainer's output, test scores included, goes to the log)."""
    if _on_record(cand, block, ltsf.HORIZONS[0]):
        raise SystemExit(f"{cand} on the {block} block is on record: nothing to run")
    for H in ltsf.HORIZONS:
        d = run_dir(cand, block, H)
        if (d / "summary.json").is_file():
            continue
        d.parent.mkdir(parents=True, exist_ok=True)
        print(f"== {_dt.datetime.now(_dt.timezone.utc):%H:%M:%S} {cand} {block} H={H}", flush=True)
        t0 = time.time()
        with open(f"{d}.log", "w") as log:
            rc = subprocess.run(command(cand, block, H), cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT, env={**os.environ,
                                                               "OMP_NUM_THREADS": "1"}).returncode
        if rc:
            raise SystemExit(f"{d}: the trainer exited with {rc}; see {d}.log")
        print(f"   done in {time.time() - t0:.0f} s", flush=True)


def _adopt(cand: str) -> tuple[str, list[str], list[str]]:
    """The family's new variant (``stride1_<cand>``, or the plain recipe for stride2) and its
    late-block runs moved to the table's run directories (the driver checks their settings)."""
    ds, variables, L = FAMILY
    sets = [s for s in _family_sets()[1] + CANDIDATES[cand][0]]
    eff = _effective(sets)
    if eff["data.train_stride"] == "2":  # the recipe file's own stride: no stride variant
        sets = [s for s in sets if not s.startswith("data.train_stride=")]
    name = "_".join(filter(None, ["stride1" if eff["data.train_stride"] == "1" else "",
                                  cand if cand not in ("recipe", "stride2") else ""]))
    S = ltsf.segment_for(L, sets)
    moves = {}
    for H in ltsf.HORIZONS:
        src = run_dir(cand, "late", H)
        dst = ltsf.RUNS / f"{ltsf.job_name(ds, variables, H, L)}_{ltsf.tag('segrnn', S, name)}_seed1"
        if src.is_dir():
            if dst.exists():
                raise SystemExit(f"{dst}: already there; the screen's run {src} is not moved")
            moves[str(H)] = (src, dst)
    for src, dst in moves.values():
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(src), str(dst))
    return name, sets, {H: str(dst.relative_to(ROOT)) for H, (_, dst) in moves.items()}


def record_test() -> dict:
    """After the decision: each candidate's late-block seed-1 test MSE (SegRNN alone, the runs'
    own reports; the early block's "test" is months 12-16, not test), for the record only."""
    if not RECORD.is_file():
        raise SystemExit(f"{RECORD.name}: not decided yet; test stays unread")
    rec = json.loads(RECORD.read_text())
    ds, variables, L = FAMILY
    test: dict = {}
    for cand in CANDIDATES:
        for H in ltsf.HORIZONS:
            cell = rec["cells"][cand][f"late {H}"]
            if cand == "recipe":
                f = ltsf.RESULTS / f"{ltsf.job_name(ds, variables, H, L)}.json"
                runs = json.loads(f.read_text())["runs"]["segrnn"]
                mse = next((r["mse"] for r in runs if r["command"] == cell["command"]), None)
                if mse is None:
                    raise SystemExit(f"{f}: no run with the recipe's recorded command "
                                     f"{cell['command']}")
            elif cand == "stride2":
                name = ltsf.job_name(ds, variables, H, L)
                f = ltsf.LOGS / f"{name}_{ltsf.tag('segrnn', 24)}_seed1.json"
                mse = json.loads(f.read_text())["report"]["metrics"]["model"]["mse"]
            else:
                d = run_dir(cand, "late", H)
                if not d.is_dir():  # adopted: moved to the table's directory
                    d = ROOT / rec["adopted_runs"][str(H)]
                mse = json.loads((d / "report.json").read_text())["metrics"]["model"]["mse"]
            test.setdefault(cand, {})[str(H)] = mse
    rec["test_mse_seed1"] = {"what": "SegRNN alone, seed 1, late block (the protocol), read "
                                     "after the decision, for the record only", **test}
    # the early block's runs scored on the months after their validation (12-16, the
    # protocol's validation months, not test): how much these models differ a block later
    rec["early_block_next_months_mse"] = {
        "what": "SegRNN alone, seed 1, trained on months 0-8 (early block), MSE on months 12-16 "
                "(the runs' own test split under data.end_offset; not the test months)",
        **{c: {str(H): json.loads((run_dir(c, "early", H) / "report.json").read_text())[
            "metrics"]["model"]["mse"] for H in ltsf.HORIZONS} for c in CANDIDATES}}
    _write(RECORD, rec)
    return test


def _write(path: Path, rec: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec, indent=2) + "\n")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", nargs=2, metavar=("CANDIDATE", "BLOCK"),
                   help=f"train: CANDIDATE in {list(CANDIDATES)}, BLOCK in {list(BLOCKS)}")
    p.add_argument("--status", action="store_true", help="validation scores so far; no choice")
    p.add_argument("--test", action="store_true",
                   help="after the decision: the late block's seed-1 test MSE, for the record")
    a = p.parse_args(argv)
    if a.run:
        cand, block = a.run
        if cand not in CANDIDATES or block not in BLOCKS:
            p.error(f"--run {cand} {block}: expected one of {list(CANDIDATES)} and {list(BLOCKS)}")
        run(cand, block)
        return 0
    if a.test:
        for cand, per_h in record_test().items():
            print(f"{cand:8s} " + " ".join(f"{H}: {v:.4f}" for H, v in per_h.items()))
        return 0
    if RECORD.is_file():  # a decision stands (and after an adoption the family has moved on)
        rec = json.loads(RECORD.read_text())
        if a.status:
            print(f"decided on {rec['date']}: {rec['chosen']} (scores, of the recipe's: "
                  + ", ".join(f"{c} {v:.4f}" for c, v in rec["ratios"].items()) + ")")
            return 0
        raise SystemExit(f"{RECORD.name}: decided on {rec['date']}; a decision stands")
    got = cells()
    for cand, r in got.items():
        vals = " ".join(f"{k}: {c['val_mse']:.4f}" if c else f"{k}: -"
                        for k, c in r["cells"].items())
        print(f"{cand:8s} {vals}  score {r['score']:.4f}" if r["score"] else f"{cand:8s} {vals}")
    if a.status:
        return 0
    chosen = decide(got)
    rule = (ROOT / RULE).read_bytes()
    rec = {"what": "session 23's recipe screen of univariate ETTm2 at lookback 96, scored on two "
                   "validation blocks (months 8-12 and 12-16)", "rule": RULE,
           "rule_sha256": hashlib.sha256(rule).hexdigest(), "margin": MARGIN,
           "blocks": {b: {"data.end_offset": k, "validation_months": MONTHS[b]}
                      for b, k in BLOCKS.items()},
           "candidates": {c: {"sets": s, "why": w} for c, (s, w) in CANDIDATES.items()},
           "cells": {c: r["cells"] for c, r in got.items()},
           "scores": {c: r["score"] for c, r in got.items()},
           "ratios": {c: r["score"] / got["recipe"]["score"] for c, r in got.items()},
           "chosen": chosen or "recipe",
           "command": "python experiments/forecast/two_block_screen.py",
           "device": ltsf._device(),
           "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="minutes")}
    if chosen:
        name, sets, moved = _adopt(chosen)
        rec["adopted"] = {"name": name, "sets": sets}
        rec["adopted_runs"] = moved
        fam = json.loads(ltsf.FAMILY_FILE.read_text())
        if name:
            fam["chosen"][FAMILY_KEY] = {"name": name, "sets": sets, "by": RULE}
        else:
            fam["chosen"].pop(FAMILY_KEY)
        _write(ltsf.FAMILY_FILE, fam)
        for d in moved.values():
            print(f"  moved to {d}")
    _write(RECORD, rec)
    print(f"{FAMILY_KEY}: {chosen or 'the recipe stays'} (scores, of the recipe's: "
          + ", ".join(f"{c} {v:.4f}" for c, v in rec["ratios"].items()) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
