"""Are the LTSF table's close rows more than test-sample noise?  Diebold-Mariano per row.

For each given results file (``experiments/results/ltsf_*.json``): the table's model (the
blend, every seed's checkpoint) against DLinear (every seed's) and against the fixed baselines,
on every test window, with :func:`rnnkit.tasks.forecast_compare.compare_checkpoints` (the
seeds' per-window squared errors averaged, lag ``H - 1``).  The checkpoints are read from the
run directories the file's ``runs`` name (``runs/`` is not in the repository: a row whose
checkpoints are not on this machine is reported as such and skipped; ``--make`` first runs
again the row's DLinear and blend commands whose output is missing).  Writes one JSON::

    python experiments/forecast/ltsf_dm.py 'experiments/results/ltsf_ett*_s_h*_l96.json' \\
        --make --json experiments/forecast/ltsf_dm.json
"""

from __future__ import annotations

import argparse
import datetime as _dt
import glob
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "datasets"


def checkpoints(rec: dict) -> tuple[str, list[Path], list[Path]]:
    """The row's blend key and its blend and DLinear checkpoints, seed by seed."""
    key = next(k for k in rec["runs"] if k.startswith("segrnn-"))
    blends = [ROOT / re.search(r"--out (\S+)", r["command"]).group(1) for r in rec["runs"][key]]
    dl = [ROOT / re.search(r"--out (\S+)", r["command"]).group(1) / "best"
          for r in rec["runs"]["dlinear"]]
    return key, blends, dl


# relative: a SegRNN run trained again is accepted by ltsf_checkpoints.py within 1e-4 of its
# recorded test MSE, and its blend carries that float noise on (univariate ETTm2 720 at lookback
# 512: SegRNN 9e-5, its blend 1.2e-4); a checkpoint of another recipe or seed is off by far
# more.  Each row records its own gaps.
TOLERANCE = 1e-3
NULL_REPS = 1000  # draws of each row's simulated null by default (recorded when not this)


def segrnn_verified(rec: dict) -> list[str]:
    """The row's SegRNN runs that are not here as finished runs that ``ltsf_checkpoints.py``
    checked against their recorded test MSE (``best/`` is written at every improvement, so a
    run still training has one; ``summary.json`` comes at the end, and the checked run's linear
    AR blend only after the check)."""
    from ltsf import blend_run

    bad = []
    for r in rec["runs"]["segrnn"]:
        out = re.search(r"--out (\S+)", r["command"]).group(1)
        if not all(p.exists() for p in (ROOT / out / "best", ROOT / out / "summary.json",
                                         ROOT / blend_run(out))):
            bad.append(out)
    return bad


def _run(r: dict, out: Path) -> None:
    """Run one recorded command again into ``out`` (a DLinear training resumes from its
    ``last/``; anything else half-made is removed first)."""
    cmd = shlex.split(r["command"])
    if " train " in r["command"] and (out / "last").is_dir():
        cmd = [*cmd[:cmd.index("train") + 1], "--resume", str(out)]
    elif out.exists():
        shutil.rmtree(out)
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def make_missing(rec: dict) -> list[str]:
    """With ``--make``: run again each recorded DLinear training and blend command whose output
    is not on this machine, once every SegRNN seed of the row is here and checked
    (:func:`segrnn_verified`; else nothing is made and the row is skipped).  Each output made
    is checked against its recorded test MSE (:data:`TOLERANCE`); one that differs is moved
    aside (``.bad``) and raises."""
    from rnnkit.tasks.forecast import evaluate_checkpoint

    if segrnn_verified(rec):
        return []
    key = next(k for k in rec["runs"] if k.startswith("segrnn-"))
    done = []
    for r in [*rec["runs"]["dlinear"], *rec["runs"][key]]:
        out = ROOT / re.search(r"--out (\S+)", r["command"]).group(1)
        train = " train " in r["command"]
        ckpt = out / "best" if train else out
        if (out / "summary.json").is_file() if train else (out / ".checked").is_file():
            continue
        if train or not out.is_dir():
            _run(r, out)
        got = evaluate_checkpoint(ckpt, data_dir=str(DATA))["metrics"]["model"]["mse"]
        if abs(got - r["mse"]) > TOLERANCE * r["mse"]:
            bad = out.with_name(out.name + ".bad")
            shutil.rmtree(bad, ignore_errors=True)
            out.rename(bad)
            raise SystemExit(f"{out}: test MSE {got} is not the recorded {r['mse']}; moved to "
                             f"{bad.name}")
        if not train:
            (out / ".checked").write_text(f"{got!r}\n")  # a blend made and checked here
        done.append(f"{out.relative_to(ROOT)} ({got:.6f}, recorded {r['mse']:.6f})")
    return done


def main(argv: list[str] | None = None) -> int:
    import torch

    from rnnkit.tasks.forecast_compare import compare_checkpoints, null_cutoff
    from rnnkit.train.run import device_description

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="+", type=Path)
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--make", action="store_true",
                   help="first run again the row's missing DLinear and blend commands")
    p.add_argument("--null-reps", type=int, default=NULL_REPS,
                   help="draws of the simulated null behind each row's cut-off (null_cutoff; "
                        "0: none)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    rows, skipped, nulls = {}, {}, {}
    paths = []
    for p in a.results:  # a quoted pattern is expanded here, and recorded as given
        got = sorted(map(Path, glob.glob(str(p)))) if "*" in str(p) else [p]
        if not got:
            raise SystemExit(f"{p}: no results file matches")
        paths += got
    for path in paths:
        rec = json.loads(path.read_text())
        if a.make:
            for made in make_missing(rec):
                print(f"{path.stem}: made {made}", flush=True)
        key, blends, dl = checkpoints(rec)
        away = [str(c.relative_to(ROOT)) for c in [*blends, *dl] if not c.is_dir()]
        if away:
            skipped[path.stem] = f"checkpoints not on this machine: {', '.join(away)}"
            print(f"{path.stem}: skipped ({skipped[path.stem]})", flush=True)
            continue
        t0 = time.time()
        r = compare_checkpoints(blends, dl, split="test", data_dir=str(DATA))
        off = [f"{name} {r['a_vs_b'][name]:.6f} here, {want:.6f} in the file"
               for name, want in (("mean_a", rec["value"]),
                                  ("mean_b", rec["baselines"]["dlinear"]["mse"]))
               if abs(r["a_vs_b"][name] - want) > TOLERANCE * abs(want)]  # its own figures
        if off:
            skipped[path.stem] = "not the table's checkpoints: " + "; ".join(off)
            print(f"{path.stem}: skipped ({skipped[path.stem]})", flush=True)
            continue
        key_null = (r["windows"], r["lag"])
        if a.null_reps and key_null not in nulls:  # one per (windows, lag): the rows share it
            nulls[key_null] = null_cutoff(*key_null, reps=a.null_reps)
        if a.null_reps:
            r["null"] = nulls[key_null]
            for k, v in list(r.items()):
                if k.startswith("a_vs_"):
                    v["holds_at_null_cutoff"] = bool(v["p_value"] < r["null"]["cutoff"])
        gaps = {n: r["a_vs_b"][n] / want - 1 for n, want in (
            ("mean_a", rec["value"]), ("mean_b", rec["baselines"]["dlinear"]["mse"]))}
        rows[path.stem] = {"model": rec["model"]["name"], "seeds": rec["seeds"]["seeds"],
                           "wall_seconds": round(time.time() - t0, 1),
                           "gap_to_table": {"blend": gaps["mean_a"], "dlinear": gaps["mean_b"]},
                           **r}
        dm = r["a_vs_b"]
        print(f"{path.stem}: {rec['model']['name']} {dm['mean_a']:.4f} against DLinear "
              f"{dm['mean_b']:.4f} ({dm['relative_diff']:+.2%}), DM {dm['stat']:+.2f}, "
              f"p {dm['p_value']:.3f} ({r['windows']} windows, lag {r['lag']})", flush=True)
    out = {"what": "Diebold-Mariano tests of the LTSF table's model against DLinear (a: the "
                   "blend, b: DLinear; the seeds' per-window squared errors averaged) and "
                   "against the fixed baselines, on every test window; two-sided, long-run "
                   "variance with equal weights up to lag H - 1 (Bartlett weights where that "
                   "is not positive: each test's kernel), Harvey-Leybourne-Newbold factor, "
                   "Student's t. Each row's null: the test's size and 5% cut-off under a "
                   "simulated null of overlapping windows at its windows and lag "
                   "(rnnkit.tasks.forecast_compare.null_cutoff); holds_at_null_cutoff: p "
                   "below that cut-off",
           "rows": rows, "skipped": skipped,
           "command": "python experiments/forecast/ltsf_dm.py "
                      + " ".join(f"'{p}'" if "*" in str(p) else
                                 str(p.relative_to(ROOT) if p.is_absolute() else p)
                                 for p in a.results)
                      + (" --make" if a.make else "")
                      + (f" --null-reps {a.null_reps}" if a.null_reps != NULL_REPS else "")
                      + f" --json {a.json}",
           "device": device_description(), "torch": torch.__version__,
           "date": _dt.date.today().isoformat()}
    a.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
