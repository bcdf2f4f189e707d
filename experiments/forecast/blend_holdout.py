"""Would a choice made on held-out validation windows have dropped the blend where it loses?

For each given SegRNN-AR checkpoint (``runs/ltsf/<job>_segrnn-ar..._seed<k>``): fit the blend's
weights on the earlier validation windows only, then score the blend, SegRNN alone and the AR
alone on the later ones (a gap of ``H`` origins between the two parts, so that no fitted
window's target reaches a checked window's origin).  The test split is not read.  Writes one
JSON with a row per checkpoint::

    python experiments/forecast/blend_holdout.py runs/ltsf/ltsf_etth1_m_h336_l96_segrnn-ar_seg24_seed1 \\
        --json experiments/forecast/ltsf_blend_holdout.json
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def _mse(model: torch.nn.Module, data, origins: list, bs: int = 512) -> float:
    se, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(origins), bs):
            x, y = data.batch(origins[i:i + bs])[0::2]
            f = model(x)[..., 0].double()
            se += float(((f - y.double()) ** 2).sum())
            n += y.numel()
    return se / n


def fit_on(model: torch.nn.Module, data, origins: list, weights: str | None = None
           ) -> torch.Tensor:
    """Fit the blend's weights on ``origins`` (``SegRNN.fit_ar_blend``, in batches of 512)."""
    return model.fit_ar_blend((data.batch(origins[i:i + 512])[0::2]
                               for i in range(0, len(origins), 512)), weights=weights)


def held_out(run: str | Path, data_dir: str | None) -> tuple:
    """A SegRNN-AR checkpoint (eval mode) and its data, with the validation origins split as
    every screen here splits them: ``(model, data, valid, early, late)``, ``early`` the
    earlier half less a gap of ``H`` origins (no fitted window's target reaches a checked
    window's origin), ``late`` the later half."""
    from rnnkit.tasks.forecast_data import ForecastData
    from rnnkit.tasks.forecast_task import load_forecast_checkpoint

    model, state, cfg = load_forecast_checkpoint(run)
    if not cfg.model.ar_blend:
        raise SystemExit(f"{run}: not a SegRNN-AR checkpoint (model.ar_blend is false)")
    model.eval()
    data = ForecastData(cfg.data, data_dir=data_dir, state=state)
    g, H = list(data.global_origins("valid")), data.H
    half = len(g) // 2
    early, late = g[:half - H], g[half:]
    if len(early) < 1:
        raise SystemExit(f"{run}: too few validation windows ({len(g)}) for horizon {H}")
    return model, data, g, early, late


def holdout(run: str | Path, data_dir: str) -> dict:
    """One checkpoint's row: the weights fitted on the earlier validation windows and the MSE of
    the blend, SegRNN alone and the AR on the later ones (the model's standardised space)."""
    model, data, _, early, late = held_out(run, data_dir)
    b = fit_on(model, data, early)
    row = {"run": str(run), "windows_fit": len(early), "windows_checked": len(late),
           "blend_weight_mean": float(b.mean()), "late_mse_blend": _mse(model, data, late)}
    model.blend.fill_(1.0)
    row["late_mse_segrnn_alone"] = _mse(model, data, late)
    model.blend.zero_()
    row["late_mse_ar"] = _mse(model, data, late)
    row["held_out_prefers"] = ("blend" if row["late_mse_blend"] < row["late_mse_segrnn_alone"]
                               else "SegRNN alone")
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "datasets"))
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    from rnnkit.train.run import device_description

    torch.set_num_threads(1)
    rows = []
    for run in a.runs:
        rows.append(holdout(run, a.data_dir))
        print(json.dumps(rows[-1]), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps({
            "what": "blend weights fitted on the earlier validation windows, scored with SegRNN "
                    "alone and the AR on the later ones (a gap of H origins); the test split is "
                    "not read",
            "command": "python experiments/forecast/blend_holdout.py " + " ".join(a.runs),
            "device": device_description(), "torch": torch.__version__,
            "date": _dt.date.today().isoformat(), "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
