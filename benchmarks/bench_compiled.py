"""The compiled time loops (``kernels/compiled``) against the Python-loop fused scans and torch.nn.

Per thread count and shape, side by side in one process, interleaved: each layer on the
fused backend with its loop compiled (``RNNKIT_COMPILED_SCANS=1``), the same layer with
the loop in Python (``compiled.disabled()``: per step a oneDNN GEMM and a C step call),
optionally (``--unpacked``) the compiled loop with plain ``at::mm`` per-step products,
and (``--rules``) the compiled loop under each CPU vendor's rule for the training loops'
products (``<cell> packed``: MKL's packed sgemm where it has room, an Intel CPU's default;
``<cell> slices``: oneDNN brgemm slices at every thread count, the default elsewhere), and
(``--pad``) the compiled loop with its copy of W^T dense (``<cell> unpadded``; padded rows are
the default, ``row_stride()``),
``torch.nn.LSTM`` and ``torch.nn.GRU``. Each gets a forward with autograd and
``out.backward(g)`` (weights' gradients, no input gradient), timed by the wall clock;
the median over the rounds after a warm-up, the allocator tuned as the ``rnnkit`` command
does. Ratios are a row's median over torch.nn.LSTM's median in the same run.

Usage::

    python benchmarks/bench_compiled.py --threads 2,1 --rounds 7 \\
        --json benchmarks/results/compiled_scans.json
    python benchmarks/bench_compiled.py --table benchmarks/results/compiled_scans*.json
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

import rnnkit
from rnnkit.bench.machine import cpu_model
from rnnkit.kernels import compiled
from rnnkit.runtime import tune_malloc

LAYERS = {
    "lstm": lambda I, H: rnnkit.LSTM(I, H, backend="fused"),
    "gru": lambda I, H: rnnkit.GRU(I, H, backend="fused"),
    "ln_lstm": lambda I, H: rnnkit.LayerNormLSTM(I, H, backend="fused"),
    "ln_gru": lambda I, H: rnnkit.LayerNormGRU(I, H, backend="fused"),
    "lstm_zoneout": lambda I, H: rnnkit.LSTM(I, H, zoneout=0.1, backend="fused"),
    "lstm_rec_dropout": lambda I, H: rnnkit.LSTM(I, H, recurrent_dropout=0.25, backend="fused"),
    "lstm_proj_zoneout": lambda I, H: rnnkit.LSTM(I, H, proj_size=H // 2, zoneout=0.1,
                                                  backend="fused"),
    "rnn": lambda I, H: rnnkit.RNN(I, H, backend="fused"),
    "indrnn": lambda I, H: rnnkit.IndRNN(I, H, backend="fused"),
    "qrnn": lambda I, H: rnnkit.QRNN(I, H, backend="fused"),
    "sru": lambda I, H: rnnkit.SRU(I, H, backend="fused"),
    "mingru": lambda I, H: rnnkit.MinGRU(I, H, backend="fused"),
    "minlstm": lambda I, H: rnnkit.MinLSTM(I, H, backend="fused"),
}
#: the default --cells: the matrix cells of the first measurements
MATRIX = "lstm,gru,ln_lstm,ln_gru,lstm_zoneout,lstm_rec_dropout"


def _fwd_bwd(mod, x, g, mode: str) -> float:
    """One forward+backward; ``mode``: "compiled", "fused" (the Python loop), "at::mm"
    (compiled, per-step products without MKL's packed weights), "packed" or "slices" (compiled,
    the training loops' products chosen by the Intel or the other vendors' rule), "unpadded"
    (compiled, W^T's copy with dense rows)."""
    mod.zero_grad(set_to_none=True)
    ext = compiled.ext()
    ext.set_packed(mode != "at::mm")
    kept = ext.prefer_slices()
    if mode in ("packed", "slices"):
        ext.set_prefer_slices(mode == "slices")
    ext.set_pad_rows(mode != "unpadded")
    try:
        t0 = time.perf_counter()
        with compiled.disabled() if mode == "fused" else contextlib.nullcontext():
            mod(x)[0].backward(g)
        return time.perf_counter() - t0
    finally:
        ext.set_packed(True)
        ext.set_prefer_slices(kept)
        ext.set_pad_rows(True)



def run_shape(B: int, T: int, I: int, H: int, cells: list[str], rounds: int,
              unpacked: bool = False, rules: bool = False, pad: bool = False) -> dict:
    torch.manual_seed(0)
    x = torch.randn(T, B, I)
    mods = {"torch.nn.LSTM": (torch.nn.LSTM(I, H), "torch"),
            "torch.nn.GRU": (torch.nn.GRU(I, H), "torch")}
    for c in cells:
        layer = LAYERS[c](I, H)
        mods[f"{c} compiled"] = (layer, "compiled")
        if unpacked:
            mods[f"{c} compiled at::mm"] = (layer, "at::mm")
        if rules:
            mods[f"{c} packed"] = (layer, "packed")
            mods[f"{c} slices"] = (layer, "slices")
        if pad:
            mods[f"{c} unpadded"] = (layer, "unpadded")
        mods[f"{c} fused"] = (layer, "fused")
    gs = {}  # the output gradient, by output width (proj_size narrows it)
    times: dict[str, list[float]] = {k: [] for k in mods}
    def grad_for(m):
        O = getattr(m, "proj_size", 0) or H
        return gs.setdefault(O, torch.randn(T, B, O))

    for m, mode in mods.values():  # warm-up (and the extension's first load)
        for _ in range(2):
            _fwd_bwd(m, x, grad_for(m), mode)
    for _ in range(rounds):
        for k, (m, mode) in mods.items():
            times[k].append(_fwd_bwd(m, x, grad_for(m), mode))
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    base = med["torch.nn.LSTM"]
    return {"shape": dict(B=B, T=T, I=I, H=H),
            "ms": {k: round(v, 2) for k, v in med.items()},
            "ms_all": {k: [round(t * 1e3, 2) for t in v] for k, v in times.items()},
            "over_torch_lstm": {k: round(v / base, 3) for k, v in med.items()},
            "gru_over_torch_gru": {k: round(med[k] / med["torch.nn.GRU"], 3)
                                   for k in med if k.startswith("gru ")}}


def _span(vals: list[float]) -> str:
    lo, hi = min(vals), max(vals)
    return f"{lo:.2f}" if f"{lo:.2f}" == f"{hi:.2f}" else f"{lo:.2f}-{hi:.2f}"


def table(results: list[dict]) -> str:
    """The docs' markdown table from result files (ranges over the files): forward+backward
    time over torch.nn.LSTM's, **compiled loop** / Python loop (the GRU's over torch.nn.GRU's
    in brackets), one column per thread count and shape."""
    runs = results[0]["runs"]
    head = [f"{r['threads']} thr, B={r['shape']['B']} H={r['shape']['H']}" for r in runs]
    lines = ["| cell | " + " | ".join(head) + " |", "|---" * (len(runs) + 1) + "|"]
    cells = [k[: -len(" compiled")] for k in runs[0]["ms"] if k.endswith(" compiled")]

    def vals(i, key, what="over_torch_lstm"):
        return [res["runs"][i][what][key] for res in results]

    for c in cells:
        row = []
        for i in range(len(runs)):
            txt = f"**{_span(vals(i, c + ' compiled'))}** / {_span(vals(i, c + ' fused'))}"
            if c == "gru":
                txt += (f" ({_span(vals(i, 'gru compiled', 'gru_over_torch_gru'))} / "
                        f"{_span(vals(i, 'gru fused', 'gru_over_torch_gru'))})")
            row.append(txt)
        lines.append(f"| {c} | " + " | ".join(row) + " |")
    ms = " | ".join(f"{_span(vals(i, 'torch.nn.LSTM', 'ms'))} / {_span(vals(i, 'torch.nn.GRU', 'ms'))}"
                    for i in range(len(runs)))
    lines.append(f"| torch.nn.LSTM / GRU ms | {ms} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", default="2,1", help="thread counts, in order")
    ap.add_argument("--shapes", default="32,100,128,256;128,100,128,512", help="B,T,I,H;...")
    ap.add_argument("--cells", default=MATRIX, help=f"of {','.join(LAYERS)}")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--unpacked", action="store_true",
                    help="also time the compiled loops with plain at::mm per-step products")
    ap.add_argument("--rules", action="store_true",
                    help="also time the compiled loops under each vendor's product rule")
    ap.add_argument("--pad", action="store_true",
                    help="also time the compiled loops with W^T's copy unpadded")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--table", type=Path, nargs="+",
                    help="print the docs' table of these result files (ranges), exit")
    a = ap.parse_args(argv)
    if a.table:
        print(table([json.loads(f.read_text()) for f in a.table]))
        return {}
    os.environ["RNNKIT_COMPILED_SCANS"] = "1"
    tune_malloc()
    assert compiled.ext() is not None, "the extension did not build"
    out = {"command": "python benchmarks/bench_compiled.py " + " ".join(sys.argv[1:]
                                                                       if argv is None else argv),
           "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "platform": platform.platform()},
           "torch": torch.__version__, "clock": "wall (time.perf_counter)",
           "measure": "median forward+backward (weights' gradients), interleaved rounds",
           "prefer_slices_default": bool(compiled.ext().prefer_slices()),
           "load_before": os.getloadavg(), "runs": []}
    for n in [int(t) for t in a.threads.split(",")]:
        torch.set_num_threads(n)
        for s in a.shapes.split(";"):
            B, T, I, H = (int(v) for v in s.split(","))
            r = run_shape(B, T, I, H, a.cells.split(","), a.rounds, a.unpacked, a.rules,
                          a.pad)
            r["threads"] = n
            out["runs"].append(r)
            print(f"threads={n} B={B} T={T} I={I} H={H}")
            for k, v in r["ms"].items():
                print(f"  {k:28s} {v:9.2f} ms  {r['over_torch_lstm'][k]:.3f}x torch.nn.LSTM")
    out["load_after"] = os.getloadavg()
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
