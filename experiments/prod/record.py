"""Turn the prod experiment outputs into experiments/results/*.json and markdown tables.

Reads (whichever exist): runs/prod_prune_global/pruning.json, runs/prod_prune_layer/pruning.json,
runs/prod_quantize/quantize.json, runs/prod_tune_airline/trials.json, and the queue logs for
wall times; writes experiments/results/prod_*.json and experiments/prod/compress_lm.md.

    python experiments/prod/record.py
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNS, RESULTS = ROOT / "runs", ROOT / "experiments" / "results"
LOGS = Path("/work/queue/logs")
DEVICE = "cpu: AMD EPYC (1 thread, process CPU time; 2 cores shared with other jobs)"
CKPT = "runs/exp_shakespeare_char/best (2x384 char LSTM, tinyshakespeare, best val loss 1.4349)"


#: wall seconds of runs made directly (not through the queue), from /usr/bin/time
DIRECT = {"prod_quantize": 347.1}


def _wall(job: str) -> float | None:
    if job in DIRECT:
        return DIRECT[job]
    for log in sorted(LOGS.glob(f"*-{job}.log")):
        m = re.search(r"rc=0 secs=(\d+)", log.read_text(errors="replace"))
        if m:
            return float(m.group(1))
    return None


def _shipped_airline() -> float | None:
    f = RUNS / "forecast_airline" / "summary.json"
    return round(json.loads(f.read_text())["best"], 3) if f.is_file() else None


def _write(name: str, obj: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(obj, indent=2) + "\n")
    print("wrote", RESULTS / f"{name}.json")


def main() -> None:
    md = ["# Compressing the char-LSTM language model (tinyshakespeare)", "",
          f"Checkpoint: `{CKPT}`; metric: validation cross-entropy (nats/char) on the last 10% of "
          "tinyshakespeare; 1 torch thread.", ""]
    date = time.strftime("%Y-%m-%d")
    from rnnkit.compress.study import table_markdown

    f = RUNS / "prod_prune_nofinetune" / "pruning.json"
    if f.is_file():
        rows = json.loads(f.read_text())["rows"]
        cmd = ("rnnkit prune runs/exp_shakespeare_char/best --amounts 0.3,0.5,0.7,0.8,0.9 --scope global,layer "
               "--out runs/prod_prune_nofinetune")
        md += ["## Magnitude pruning without fine-tuning (input and recurrent weights)", "", f"`{cmd}`", "",
               table_markdown(rows)]
        for r in rows[1:]:
            if round(100 * r["amount"]) not in (50, 70, 90):
                continue
            _write(f"prod_prune_{r['scope']}_{round(100 * r['amount'])}_nofinetune", {
                "task": "language modeling (char), magnitude pruning (no fine-tuning)",
                "dataset": "tinyshakespeare (first 90% train / last 10% valid)", "split": "valid",
                "metric": f"cross-entropy (nats/char) at {r['sparsity']:.3f} sparsity of the LSTM weights "
                          f"({r['scope']})",
                "value": round(r["before"], 4),
                "reference": {"value": round(rows[0]["before"], 4), "source": "the same checkpoint, dense"},
                "command": cmd, "wall_seconds": None, "device": DEVICE, "date": date,
                "notes": "pruned weights: weight_ih_l* and weight_hh_l* of the LSTM; embedding, biases and "
                         "decoder dense"})
    for scope in ("global", "layer"):
        f = RUNS / f"prod_prune_{scope}" / "pruning.json"
        if not f.is_file():
            continue
        rows = json.loads(f.read_text())["rows"]
        md += [f"## Magnitude pruning, {scope} (input and recurrent weights; fine-tuned "
               f"{rows[-1]['finetune_steps']} steps at 0.3 x lr)", "", table_markdown(rows)]
        dense = rows[0]["before"]
        for r in rows[1:]:
            _write(f"prod_prune_{scope}_{int(round(100 * r['amount']))}", {
                "task": "language modeling (char), magnitude pruning + fine-tuning",
                "dataset": "tinyshakespeare (first 90% train / last 10% valid)", "split": "valid",
                "metric": f"cross-entropy (nats/char) at {r['sparsity']:.3f} sparsity of the LSTM weights "
                          f"({scope}), after {r['finetune_steps']} fine-tuning steps",
                "value": round(r["after"], 4),
                "reference": {"value": round(dense, 4), "source": "the same checkpoint, dense"},
                "command": f"bash experiments/prod/compress_lm.sh {scope}",
                "wall_seconds": _wall(f"prod_prune_{scope}"), "device": DEVICE, "date": date,
                "notes": f"right after pruning (before fine-tuning): {r['before']:.4f}; fine-tuning took "
                         f"{r['finetune_seconds']:.0f} s wall"})
    f = RUNS / "prod_quantize" / "quantize.json"
    if f.is_file():
        q = json.loads(f.read_text())
        key, med = q["metric"], q["cpu_seconds_median"]
        md += ["## Dynamic int8 quantisation (LSTM + decoder; CPU, process CPU seconds, median of "
               f"{q['repeats']})", "", (RUNS / "prod_quantize" / "quantize.md").read_text(), "",
               "Speed-up of int8 over the float model as rnnkit runs it: "
               + ", ".join(f"{w} x{v:.2f}" for w, v in q["speedup_vs_float"].items())
               + "; over its float torch.nn twin: "
               + ", ".join(f"{w} x{v:.2f}" for w, v in q["speedup_vs_float_torch_nn"].items())
               + f"; over the float model with oneDNN off (ATen's kernel, the fastest float for batch-1 "
               f"steps): generate_200_tokens x{med['generate_200_tokens']['float_no_onednn'] / med['generate_200_tokens']['int8']:.2f}"
               + f". Change in {key}: {q['metric_change']:+.4f}.", ""]
        _write("prod_quantize_int8", {
            "task": "language modeling (char), dynamic int8 quantisation (CPU)",
            "dataset": "tinyshakespeare (first 90% train / last 10% valid)", "split": "valid",
            "metric": "cross-entropy (nats/char), int8 model", "value": round(q["metrics"]["int8"][key], 4),
            "reference": {"value": round(q["metrics"]["float"][key], 4), "source": "the same checkpoint, float32"},
            "command": "bash experiments/prod/compress_lm.sh quantize", "wall_seconds": _wall("prod_quantize"),
            "device": DEVICE, "date": date,
            "notes": "CPU-second medians: " + json.dumps({w: {k: round(v, 3) for k, v in m.items()}
                                                          for w, m in med.items()})
                     + f"; size {q['bytes']['float'] / 1e6:.2f} MB -> {q['bytes']['int8'] / 1e6:.2f} MB"})
    f = RUNS / "prod_tune_airline" / "trials.json"
    if f.is_file():
        t = json.loads(f.read_text())
        if "best" in t:
            _write("prod_tune_airline", {
                "task": "forecasting, hyperparameter search (grid, median pruning)",
                "dataset": "airline passengers", "split": "valid", "metric": "validation MAE (passengers, thousands)",
                "value": round(t["best"]["value"], 3),
                "reference": {"value": _shipped_airline(), "source": "configs/forecast_airline.yaml (gru 32, "
                              "norm last; best val MAE of runs/forecast_airline)"},
                "command": "rnnkit tune configs/forecast_airline_search.yaml --data-dir ../shared/datasets "
                           "--out runs/prod_tune_airline",
                "wall_seconds": None, "device": DEVICE, "date": date,
                "notes": f"{t['trials']} trials: {t['complete']} complete, {t['pruned']} pruned (median, after 1 "
                         f"validation); best {json.dumps(t['best']['params'])}; run directly (about 25 s wall)"})
    out = ROOT / "experiments" / "prod" / "compress_lm.md"
    out.write_text("\n".join(md) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
