"""How should SegRNN and NLinear be weighted?  A held-out validation screen of the blend weights.

The table's model is ``NLinear + b_h (SegRNN - NLinear)``, one ``b_h`` per horizon step
fitted by least squares on the validation windows.  The rule
(``ltsf_blend_weights_rule.md``, committed before any of these numbers) compares it with one
weight shared by the steps (pooled least squares) and with equal weights (``b = 0.5``), fitted
on the earlier validation windows and scored on the later ones (a gap of ``H`` origins), over
the 16 univariate rows at lookback 96 (each row's seed-1 checkpoint, trained again by
``ltsf_checkpoints.py`` and checked against the test MSE the table records).  The test split
is not read until the decision is written; ``--test`` then adds each candidate's test MSE
(weights fitted on every validation window) for the record.  Usage::

    python experiments/forecast/blend_weights.py            # the screen and its decision
    python experiments/forecast/blend_weights.py --test     # after it: test, for the record
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
from blend_holdout import _mse, fit_on, held_out  # the scripts' directory is on sys.path
from blend_partner import fingerprint
from ltsf import blend_run, partner_for

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results"
OUT = ROOT / "experiments" / "forecast" / "ltsf_blend_weights.json"
RULE = "experiments/forecast/ltsf_blend_weights_rule.md"
CANDIDATES = ("fitted", "shared", "equal")
WEIGHTS = {"fitted": "per_step", "shared": "shared", "equal": "equal"}  # model.ar_blend_weights
MARGIN = 0.01  # a candidate must be more than 1% better than the fitted weights


def rows_in_scope(results: Path | None = None, n_rows: int = 16) -> list[tuple[str, str]]:
    """(results file's stem, seed-1 SegRNN-AR checkpoint) of the 16 univariate lookback-96
    rows, from each row's recorded seed-1 command; raises unless there are ``n_rows`` rows with
    exactly one seed-1 run each (the rule's scope)."""
    out = []
    files = sorted((results or RESULTS).glob("ltsf_ett*_s_h*_l96.json"))
    for f in files:
        ones = [r["command"] for r in json.loads(f.read_text())["runs"]["segrnn"]
                if re.search(r"trainer\.seed=1(?!\d)", r["command"])]
        if len(ones) != 1:
            raise SystemExit(f"{f}: {len(ones)} seed-1 SegRNN runs; expected one")
        out.append((f.stem, blend_run(re.search(r"--out (\S+)", ones[0]).group(1))))
    if len(out) != n_rows:
        raise SystemExit(f"{len(out)} univariate lookback-96 rows; the rule's scope is {n_rows}")
    return out


def screen(run: Path, data_dir: str, test: bool) -> dict:
    """One checkpoint: each candidate's MSE on the later validation windows (weights from the
    earlier ones); with ``test``, also on every test window (weights from every validation
    window).  The model's standardised space."""
    from rnnkit.tasks.forecast_task import nlinear_of

    t0 = time.perf_counter()
    model, data, g, early, late = held_out(run, data_dir)
    A, a = nlinear_of(data).affine()  # the table's partner (model.ar_blend_partner: nlinear)
    model.set_linear_map(A, a)
    row: dict = {"windows_fit": len(early), "windows_checked": len(late)}
    for how in CANDIDATES:
        fit_on(model, data, early, WEIGHTS[how])
        row[f"late_{how}"] = _mse(model, data, late)
        row[f"weight_{how}_early"] = float(model.blend.mean())
        if test:
            fit_on(model, data, g, WEIGHTS[how])
            row[f"test_{how}"] = _mse(model, data, data.global_origins("test"))
    row["seconds"] = round(time.perf_counter() - t0, 1)
    return row


def decide(rows: list[dict], n_rows: int) -> dict:
    """The rule: each candidate's geometric mean over the rows of ``late / late_fitted``; the
    lowest replaces the fitted weights if below ``1 - MARGIN``.  Undecided until every row in
    scope is screened."""
    scores = {how: float(np.exp(np.mean([np.log(r[f"late_{how}"] / r["late_fitted"])
                                         for r in rows]))) for how in CANDIDATES}
    lower = {how: int(sum(r[f"late_{how}"] < r["late_fitted"] for r in rows))
             for how in CANDIDATES if how != "fitted"}
    out = {"score": scores, "rows_lower_than_fitted": lower, "rows": len(rows),
           "rows_in_scope": n_rows, "margin": MARGIN}
    if len(rows) < n_rows:
        return out | {"chosen": None, "undecided": f"{len(rows)} of {n_rows} rows screened"}
    best = min(CANDIDATES, key=scores.get)
    return out | {"chosen": best if scores[best] < 1 - MARGIN else "fitted"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "datasets"))
    p.add_argument("--json", default=str(OUT))
    p.add_argument("--test", action="store_true",
                   help="after the decision: each candidate's test MSE, for the record")
    a = p.parse_args(argv)
    from rnnkit.train.run import device_description

    out = Path(a.json)
    earlier = json.loads(out.read_text()) if out.is_file() else {}
    decided = (earlier.get("decision") or {}).get("chosen")
    if a.test and not decided:
        raise SystemExit(f"{out}: no decision yet; --test reads the test split only after it")
    if decided and not a.test:
        raise SystemExit(f"{out}: decided ({decided}) on {earlier['date']}; a decision is made "
                         "once (--test adds the test scores)")
    if partner_for(96) != "nlinear":
        raise SystemExit("the table's lookback-96 partner is not NLinear: this screen blends "
                         "with NLinear")
    torch.set_num_threads(1)
    scope = rows_in_scope()
    rows = []
    for stem, rel in scope:
        run = ROOT / rel
        if not run.exists():
            print(f"skipped {stem}: {rel} is not on this machine", flush=True)
            continue
        row = {"row": stem, "run": rel, **screen(run, a.data_dir, a.test),
               "sha256": fingerprint(run)}
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if not k.startswith("test_")}),
              flush=True)  # test numbers go to the file only
    decision = decide(rows, len(scope))
    if a.test:  # the very checkpoints and validation numbers the decision was made on
        then = {r["row"]: r for r in earlier["rows"]}
        changed = [r["row"] for r in rows if r["row"] not in then
                   or r["sha256"] != then[r["row"]]["sha256"]
                   or any(abs(r[f"late_{c}"] - then[r["row"]][f"late_{c}"])
                          > 1e-9 * then[r["row"]][f"late_{c}"] for c in CANDIDATES)]
        if changed or len(rows) != len(then):
            raise SystemExit("not the checkpoints or validation numbers the decision was made "
                             f"on: {', '.join(changed) or 'a row is missing'}")
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({
        "what": " ".join(__doc__.split("\n\n")[1].split()),
        "rule": RULE,
        "command": "python experiments/forecast/blend_weights.py "
                   + " ".join(argv if argv is not None else sys.argv[1:]),
        "device": device_description(), "torch": torch.__version__,
        "date": _dt.date.today().isoformat(),
        "decision": earlier.get("decision") if a.test else decision,
        "rows": rows}, indent=2) + "\n")
    os.replace(tmp, out)
    print(json.dumps(decision), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
