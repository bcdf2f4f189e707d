"""Which linear forecaster should SegRNN be blended with?  A held-out validation screen.

SegRNN-AR blends SegRNN with the linear AR baseline (iterated AR(L) with an intercept, fitted
on the training split): ``AR + b_h (SegRNN - AR)``, ``b_h`` fitted on the validation windows.
Iterated over hundreds of steps the AR drifts to the training split's mean, so where the level
moves its long-horizon forecast follows the training months.  The alternative screened here is
a level-free direct linear map (NLinear, Zeng et al. 2023, in closed form): each window minus
its last value, one ridge least-squares map of the L inputs to the H outputs, shared by the
channels and fitted on the training windows SegRNN trained on.  It is an affine map of the window, so it takes
the AR's place in the same blend unchanged.

For each SegRNN-AR checkpoint of the table the screen fits the blend weights on the earlier
validation windows only and scores on the later ones (a gap of ``H`` origins), for both
partners; the test split is not read.  With ``--test`` (after the choice) it also scores the
blend fitted on every validation window on every test window.  Usage::

    python experiments/forecast/blend_partner.py --test --json experiments/forecast/ltsf_blend_partner.json

``--reuse FILE`` takes the rows of an earlier screen whose checkpoint is byte for byte the one
screened then (its ``model.safetensors``' SHA-256, recorded in each row) instead of screening
them again; the rule is then applied to every row, reused or new, at a lookback it has not
decided yet (a decided one stays decided: :func:`keep_decided`).

The JSON's ``"chosen"`` (:func:`decide`) is what ``ltsf.py`` blends each lookback's rows with.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
from blend_holdout import _mse, fit_on, held_out  # the scripts' directory is on sys.path
from ltsf import blend_run

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results"


def screen(run: Path, data_dir: str, test: bool) -> dict:
    from rnnkit.tasks.forecast_task import nlinear_of

    t0 = time.perf_counter()
    model, data, g, early, late = held_out(run, data_dir)
    ar = (model.ar_map.clone(), model.ar_bias.clone())
    A, a = nlinear_of(data).affine()  # what ar_blend_partner: nlinear fits
    nl = (torch.from_numpy(A).to(ar[0]).expand_as(ar[0]).clone(),
          torch.from_numpy(a).to(ar[1])[None].expand_as(ar[1]).clone())
    row: dict = {"run": str(run.relative_to(ROOT) if run.is_relative_to(ROOT) else run),
                 "windows_fit": len(early),
                 "windows_checked": len(late)}
    model.blend.fill_(1.0)
    row["late_segrnn"] = _mse(model, data, late)
    for name, (m, b) in (("ar", ar), ("nlinear", nl)):
        model.ar_map.copy_(m)
        model.ar_bias.copy_(b)
        model.blend.zero_()
        row[f"late_{name}_alone"] = _mse(model, data, late)
        w = fit_on(model, data, early)
        row[f"late_{name}_blend"] = _mse(model, data, late)
        row[f"{name}_weight_early"] = float(w.mean())
        if test:
            w = fit_on(model, data, g)
            row[f"{name}_weight"] = float(w.mean())
            row[f"test_{name}_blend"] = _mse(model, data, data.global_origins("test"))
    row["seconds"] = round(time.perf_counter() - t0, 1)
    return row


def fingerprint(run: Path) -> str:
    """The SHA-256 of a checkpoint's weights (the complete checkpoint ``screen`` loads): a
    reused row must be of these very weights."""
    from rnnkit.train.checkpoint_dirs import resolve_checkpoint

    return hashlib.sha256((resolve_checkpoint(run) / "model.safetensors").read_bytes()).hexdigest()


def reusable(earlier: dict, test: bool) -> dict[str, dict]:
    """An earlier screen's rows by checkpoint (``run``); with ``test``, only rows that were
    scored on test too."""
    return {r["run"]: r for r in earlier.get("rows", [])
            if not test or "test_nlinear_blend" in r}


def keep_decided(got: dict, earlier: dict) -> dict:
    """A lookback is decided once, when every row first has a checkpoint: an earlier screen's
    choice stands (seeds screened later are recorded, and ``by_lookback`` shows the ratio they
    give, but they do not re-decide it)."""
    out = {"chosen": dict(got["chosen"]), "by_lookback": dict(got["by_lookback"])}
    for L, partner in earlier.get("chosen", {}).items():
        then = earlier["by_lookback"][L]
        out["chosen"][L] = partner
        out["by_lookback"][L] = {**out["by_lookback"].get(L, {}), "decided_earlier": partner,
                                 "decided_with": then.get("decided_with", then)}
    return out


def checkpoints() -> list[tuple[str, Path]]:
    """(results file, SegRNN-AR checkpoint) for every seed of every LTSF row: the linear AR
    blend of each seed's SegRNN (``runs/ltsf/<job>_segrnn[_segS]_seed<k>`` ->
    ``..._segrnn-ar[_segS]_seed<k>``), whichever blend the row now reports."""
    out = []
    for f in sorted(RESULTS.glob("ltsf_ett*_h*_l*.json")):
        for r in json.loads(f.read_text())["runs"]["segrnn"]:
            src = re.search(r"--out (\S+)", r["command"]).group(1)
            out.append((f.stem, ROOT / blend_run(src)))
    return out


def decide(rows: list[dict], wanted: dict[int, int]) -> dict:
    """The rule, fixed before any test number of the NLinear blend was computed: at a lookback
    where every row of the table has a checkpoint here (at least one seed's), NLinear is chosen
    iff the geometric mean over the rows (each row's seeds averaged) of
    ``late_nlinear_blend / late_ar_blend`` is below 1.  ``wanted``: lookback -> the table's rows at it.  Returns ``{"chosen": {L:
    partner}, "by_lookback": {L: {...}}}``."""
    by_row: dict[str, list[dict]] = {}
    for r in rows:
        by_row.setdefault(r["row"], []).append(r)
    out: dict = {"chosen": {}, "by_lookback": {}}
    for L, n in sorted(wanted.items()):
        logs = []
        for name, rs in by_row.items():
            if int(name.rsplit("_l", 1)[1]) != L:
                continue
            nl = sum(r["late_nlinear_blend"] for r in rs) / len(rs)
            ar = sum(r["late_ar_blend"] for r in rs) / len(rs)
            logs.append(np.log(nl / ar))
        info = {"rows": len(logs), "rows_in_table": n}
        if logs:
            info |= {"geomean_ratio": float(np.exp(np.mean(logs))),
                     "rows_nlinear_lower": int(sum(v < 0 for v in logs))}
        if len(logs) == n:
            out["chosen"][str(L)] = "nlinear" if info["geomean_ratio"] < 1 else "linear_ar"
        else:
            info["undecided"] = f"checkpoints here for {len(logs)} of the {n} rows"
        out["by_lookback"][str(L)] = info
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "datasets"))
    p.add_argument("--json", default=None)
    p.add_argument("--only", default="", help="a regex on the results file's name")
    p.add_argument("--test", action="store_true", help="also score on the test windows")
    p.add_argument("--reuse", default=None,
                   help="an earlier screen's JSON: its rows of unchanged checkpoints are kept")
    a = p.parse_args(argv)
    from rnnkit.train.run import device_description

    earlier = json.loads(Path(a.reuse).read_text()) if a.reuse else {}
    old = reusable(earlier, a.test)

    torch.set_num_threads(1)
    rows = []
    wanted: dict[int, int] = {}
    for stem, _ in checkpoints():
        wanted.setdefault(int(stem.rsplit("_l", 1)[1]), set()).add(stem)
    wanted = {L: len(v) for L, v in wanted.items()}
    for stem, run in checkpoints():
        if not re.search(a.only, stem):
            continue
        if not run.exists():  # trained on another machine; runs/ is not in the repository
            print(f"skipped {stem}: {run.relative_to(ROOT)} is not on this machine", flush=True)
            continue
        rel, sha = str(run.relative_to(ROOT)), fingerprint(run)
        prev = old.get(rel)
        if prev is not None and prev["row"] == stem and prev.get("sha256") == sha:
            rows.append(prev)
            print(f"reused {stem}: {rel}", flush=True)
            continue
        row = {"row": stem, **screen(run, a.data_dir, a.test), "sha256": sha}
        rows.append(row)
        print(json.dumps(row), flush=True)  # the progress: the file is written once, at the end
    if a.json:  # ltsf.py and the docs read it while drivers run: never half-written or partial
        out = Path(a.json)
        tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({
            "what": " ".join(__doc__.split("\n\n")[1:3]).replace("\n", " "),
            "rule": " ".join(decide.__doc__.split("Returns")[0].split()),
            "command": "python experiments/forecast/blend_partner.py "
                       + " ".join(argv if argv is not None else sys.argv[1:]),
            "device": device_description(), "torch": torch.__version__,
            "date": _dt.date.today().isoformat(), **keep_decided(decide(rows, wanted), earlier),
            "rows": rows}, indent=2) + "\n")
        os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
