"""Train again, on this machine, the LTSF table's SegRNN checkpoints that are not here.

``runs/`` is not in the repository, and the table's runs were trained on two machines, so the
blend-partner screen (``blend_partner.py``) can read only some rows' checkpoints; its rule
decides a lookback only when every row has one.  This runs each missing seed's recorded
``rnnkit forecast train`` command again (its ``runs`` entry in the row's results file; same
recipe, overrides, seed and output directory), resuming a run that was stopped, then blends it
with the linear AR (``rnnkit forecast blend``: the ``..._segrnn-ar..`` checkpoint the screen
reads) and checks that it reproduces the test MSE the table recorded for that seed
(:func:`same_run`: to 1e-4, or a run that stopped at the recorded epoch with its best
validation loss within 1e-3, whose test gap is then reported; a run that is neither is moved
aside, never blended).  The table's
files are not changed.  One seed of each row with none here first, ETTh rows (cheaper)
first; one process per call::

    nohup python experiments/forecast/ltsf_checkpoints.py --lookback 512 --part 0/2 > a.log 2>&1 &
    nohup python experiments/forecast/ltsf_checkpoints.py --lookback 512 --part 1/2 > b.log 2>&1 &
    python experiments/forecast/ltsf_checkpoints.py --lookback 512 --list

(The same seed trained on the 2-core Xeon and the 2-core AMD EPYC gave the same test MSE to
about 1e-6: ETTh1 multivariate, horizon 720, lookback 512, seeds 1 and 2.)  A run recorded before
the decoder's separable step (2026-12-06) needs ``--decoder-step batched`` to follow its own
path over ETTm's thousand-odd steps: multivariate ETTm2 192 at lookback 512, seed 1, trained with
it reproduced its recorded test MSE to every digit, and without it missed by 7e-4.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the table driver, beside it
from ltsf import _claim, blend_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results"
DATA = ROOT.parent / "shared" / "datasets"
TOLERANCE = 1e-4  # relative: the same run on another CPU (float32 sums in another order)
SAME_PATH = 1e-3  # relative, the best validation loss of a run that stopped where it did


def missing(lookback: int, results: Path | None = None, root: Path | None = None,
            only: str = "") -> list[dict]:
    """Every seed of every row at ``lookback`` whose SegRNN checkpoint (``.../best``) or its
    linear AR blend is not under ``root``: ``{"row", "seed", "command", "out", "mse"}``.

    First one seed of each row that has none here (the screen's rule decides a lookback once
    every row has one), then the other seeds; ETTh rows (cheaper) first within each.  ``only``:
    a regex the results file's name must match (``_s_``: the univariate rows)."""
    results, root = results or RESULTS, root or ROOT
    first, rest = [], []
    for f in sorted(results.glob(f"ltsf_ett*_h*_l{lookback}.json"),
                    key=lambda p: (not p.name.startswith("ltsf_etth"), p.name)):
        if not re.search(only, f.name):
            continue
        todo, have = [], False
        for r in json.loads(f.read_text())["runs"]["segrnn"]:
            out = re.search(r"--out (\S+)", r["command"]).group(1)
            blend = blend_run(out)
            if (root / out / "best").is_dir() and (root / blend).is_dir():
                have = True
                continue
            seed = int(re.search(r"trainer\.seed=(\d+)", r["command"]).group(1))
            todo.append({"row": f.stem, "seed": seed, "command": r["command"], "out": out,
                         "blend": blend, "mse": r["mse"],
                         **{k: r[k] for k in ("epochs", "stopped", "best_val_loss") if k in r}})
        if todo and not have:
            first.append(todo.pop(0))
        rest.extend(todo)
    return first + rest


def same_run(mse: float, summary: dict, job: dict) -> str:
    """Whether a run trained here is the recorded one: its test MSE within ``TOLERANCE``
    ("the same"); or a run that stopped the same way at the same epoch with its best validation
    loss within ``SAME_PATH`` ("the same path", its test MSE's gap reported: the float32 sums of
    hundreds of steps on another CPU; univariate ETTm1 at lookback 512 followed the Xeon's
    validation curve to the third decimal at every epoch and stopped at the same step, yet its
    test MSE moved by 0.02-0.3%); else "DIFFERENT"."""
    rel = abs(mse - job["mse"]) / job["mse"]
    if rel <= TOLERANCE:
        return "the same"
    path = (summary.get("epoch") == job.get("epochs") and summary.get("stopped") == job.get(
        "stopped") and abs(summary["best"] - job["best_val_loss"]) <= SAME_PATH
        * job["best_val_loss"]) if "best_val_loss" in job else False
    return (f"the same path: stopped at epoch {summary['epoch']} as recorded, best validation "
            f"loss within {abs(summary['best'] / job['best_val_loss'] - 1):.1e}, test MSE "
            f"within {rel:.1e}" if path else "DIFFERENT")


def decoder_step_of(run: Path) -> str:
    """The ``model.decoder_step`` a (part-trained) run was started with: ``auto`` where its
    saved config predates the key."""
    cfg = json.loads((run / "last" / "config.json").read_text())["config"]
    return cfg.get("model", {}).get("decoder_step", "auto")


def train_and_check(job: dict, decoder_step: str | None = None) -> dict:
    """Train (or resume) one run, blend it, and compare its test MSE with the recorded one.

    ``decoder_step``: ``batched`` trains with ``--set=model.decoder_step=batched`` (the
    decoder's step as every SegRNN run before 2026-12-06 took it: such a run is then trained
    again on its own path); None runs the recorded command as it is.  A part-trained run is
    resumed only on the path it was started on."""
    from rnnkit.tasks.forecast import evaluate_checkpoint
    from rnnkit.tasks.forecast_task import blend_checkpoint

    out = ROOT / job["out"]
    if not (out / "best").is_dir() or not (out / "summary.json").is_file():
        cmd = shlex.split(job["command"])
        if (out / "last").is_dir():  # stopped part-way: continue from its last checkpoint
            started = decoder_step_of(out)
            if started != (decoder_step or "auto"):
                raise SystemExit(f"{out}: started with model.decoder_step {started!r}, not "
                                 f"{decoder_step or 'auto'!r}; move it aside to train it again")
            cmd = [*cmd[:cmd.index("train") + 1], "--resume", str(out)]
        else:
            if out.is_dir():  # stopped before its first checkpoint: nothing to keep
                shutil.rmtree(out)
            if decoder_step:
                cmd.append(f"--set=model.decoder_step={decoder_step}")
        subprocess.run(cmd, cwd=ROOT, check=True)
    got = evaluate_checkpoint(out / "best", data_dir=str(DATA))["metrics"]["model"]["mse"]
    summary = json.loads((out / "summary.json").read_text())
    verdict = same_run(got, summary, job)
    same = verdict != "DIFFERENT"
    print(f"{job['row']} seed {job['seed']}: test MSE {got:.6f}, recorded {job['mse']:.6f} "
          f"({verdict})", flush=True)
    if not same:  # moved aside, so that neither the screen nor ltsf.py --refresh reads it
        bad = out.with_name(out.name + ".bad")
        shutil.rmtree(bad, ignore_errors=True)
        out.rename(bad)
        raise SystemExit(f"{out}: test MSE {got} is not the recorded {job['mse']}; moved to "
                         f"{bad.name}, not blended: the screen must not read it as the table's")
    blend_checkpoint(out / "best", ROOT / job["blend"], data_dir=str(DATA))
    return {**job, "test_mse": got}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lookback", type=int, default=512)
    p.add_argument("--part", default="0/1", help="k/n: every n-th missing run from the k-th")
    p.add_argument("--only", default="", help="a regex on the results file's name")
    p.add_argument("--seed", type=int, action="append", default=None,
                   help="only these seeds (repeatable): a row's seeds may have been recorded "
                        "on different decoder paths")
    p.add_argument("--list", action="store_true")
    p.add_argument("--decoder-step", choices=["batched"], default=None,
                   help="train with SegRNN's batched decoder step (runs recorded before "
                        "2026-12-06); default: the recorded command as it is")
    a = p.parse_args(argv)
    k, n = map(int, a.part.split("/"))
    todo = [j for j in missing(a.lookback, only=a.only)
            if a.seed is None or j["seed"] in a.seed][k::n]
    for job in todo:
        if a.list:
            print(f"{job['row']} seed {job['seed']}: {job['out']}")
            continue
        lock = ROOT / f"{job['out']}.lock"  # two parts never train one run (lists can shift)
        if not _claim(lock):
            print(f"{job['row']} seed {job['seed']}: another process has it", flush=True)
            continue
        try:
            if not any(j["out"] == job["out"] for j in missing(a.lookback, only=a.only)):
                continue  # finished by another process since this list was made
            train_and_check(job, a.decoder_step)
        finally:
            lock.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
