"""Speed of the Triton GPU kernels against cuDNN and the rnnkit loop, side by side.

Two groups, one layer, unidirectional, training mode, each in float32, bfloat16 and float16:

- **matrix** (B=32, T=100, I=128, H=256 by default): ``torch.nn.LSTM``/``GRU``
  (cuDNN) against LayerNorm-LSTM/-GRU and LSTM with zoneout 0.1 or recurrent
  dropout 0.25 run by :func:`rnnkit.kernels.triton.triton_scan`, and the same
  through the rnnkit loop (``backend="loop"``) for reference. The issue's target:
  LayerNorm-LSTM within 1.5x of cuDNN LSTM (forward+backward).
- **elementwise** (B=32, T=1024, I=H=512 by default): IndRNN, QRNN (fo), SRU,
  minGRU, minLSTM by the Triton scan, by the rnnkit loop (``backend="loop"``:
  the step loop, or the cell's own log-space parallel scan for minGRU/minLSTM;
  ``steps:`` runs those two one step at a time, ``mode="sequential"``) and
  ``torch.nn.LSTM`` (cuDNN) at the same H. Targets: at least 10x faster than
  the loop and faster than cuDNN LSTM.

The Triton contenders call the kernels directly (``cell.project`` then
``triton_scan`` with the layer's own parameters), so the script does not depend
on how ``backend="triton"`` is wired into the layers. Before timing, each
Triton contender is checked against the loop at the benchmark shape (forward
and the input gradient, against the loop in float32 whatever the dtype) and the
largest relative difference is recorded. The matrix scans replay CUDA graphs after
their second call with a shape (``kernels/triton/_graphs.py``): the warm-up covers it.
Timing: :func:`rnnkit.bench.measure.interleave` (warm-up, then rounds in
rotated order, medians), forward under ``no_grad`` and forward+backward
(``out.float().sum().backward()``), peak memory from the CUDA allocator.

Usage (GPU)::

    python benchmarks/bench_triton.py --json benchmarks/results/triton_gpu.json
    python benchmarks/bench_triton.py --quick          # one dtype, fewer repeats

Smoke run on a CPU (Triton's interpreter, tiny shapes; numbers meaningless)::

    TRITON_INTERPRET=1 python benchmarks/bench_triton.py --device cpu --smoke
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time

import torch
from torch import nn

import rnnkit
from rnnkit.bench.machine import machine_info
from rnnkit.bench.measure import Task, interleave, peak_bytes, summarize
from rnnkit.kernels.triton import triton_scan, triton_unsupported

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class TritonLayer(nn.Module):
    """A one-layer, one-direction rnnkit layer whose scan is :func:`triton_scan`."""

    def __init__(self, layer: rnnkit.Recurrent):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        layer = self.layer
        cell, reg = layer.cells[0], layer.regularizers
        p = reg.weights(cell, layer._params(0, 0), layer.training)
        state = tuple(x.new_zeros(x.shape[1], s) for s in cell.state_sizes)
        xp = cell.project(reg.drop_input(x, layer.training), p)  # (T, B, G)
        return triton_scan(cell, p, xp, state, None,
                           **reg.step_inputs(state, x.shape[0], layer.training))


def _build(name: str, I: int, H: int, device, dtype):
    """(module, kind) for a contender name like 'triton:ln_lstm' or 'cudnn:lstm'."""
    backend, cell = name.split(":")
    if backend == "cudnn":
        cls = nn.LSTM if cell == "lstm" else nn.GRU
        return cls(I, H).to(device, dtype)
    kw = {}
    if cell.startswith("lstm_"):
        kw = {"lstm_zoneout": {"zoneout": 0.1},
              "lstm_recdrop": {"recurrent_dropout": 0.25}}[cell]
        cell = "lstm"
    cls = {"ln_lstm": rnnkit.LayerNormLSTM, "ln_gru": rnnkit.LayerNormGRU, "lstm": rnnkit.LSTM,
           "indrnn": rnnkit.IndRNN, "qrnn": rnnkit.QRNN, "sru": rnnkit.SRU,
           "mingru": rnnkit.MinGRU, "minlstm": rnnkit.MinLSTM}[cell]
    if backend == "steps":  # minGRU/minLSTM one step at a time (the loop reference)
        kw["mode"] = "sequential"
    layer = cls(I, H, backend="loop", **kw).to(device, dtype)
    return TritonLayer(layer) if backend == "triton" else layer


def _check(model, ref, x) -> float:
    """Largest relative difference of the output and input gradient, model against ref.

    ``ref`` runs in float32 whatever ``x``'s dtype: a bfloat16 loop rounds its state at
    every step and drifts far more than the kernels, which keep the state in float32.
    """
    res = []
    ref = copy.deepcopy(ref).float()
    for m in (model, ref):
        torch.manual_seed(0)
        xi = x.detach().clone().float().requires_grad_() if m is ref else \
            x.detach().clone().requires_grad_()
        y = m(xi)[0]
        y.float().square().sum().backward()
        res.append((y.detach().float(), xi.grad.float()))
    return max(((a - b).abs().max() / b.abs().max().clamp_min(1e-6)).item()
               for a, b in zip(*res))


def _tasks(model, x):
    def fwd():
        with torch.no_grad():
            model(x)

    xg = x.detach().clone().requires_grad_()

    def fwd_bwd():
        model(xg)[0].float().sum().backward()

    def zero():
        model.zero_grad(set_to_none=True)
        xg.grad = None

    return Task(fwd), Task(fwd_bwd, setup=zero)


def run_group(names, B, T, I, H, dtype, device, repeats, warmup, log):
    """Time every contender of one group at one shape and dtype; returns a result dict."""
    torch.manual_seed(0)
    x = torch.randn(T, B, I, device=device, dtype=dtype)
    models, checks = {}, {}
    for name in names:
        m = _build(name, I, H, device, dtype).train()
        reason = triton_unsupported(getattr(m, "layer", m).cells[0], x) \
            if name.startswith("triton:") else None
        if reason:
            log(f"  skip {name}: {reason}")
            continue
        models[name] = m
    for name, m in models.items():  # the Triton scans against the loop, same weights
        if name.startswith("triton:"):
            ref = models.get("loop:" + name.split(":")[1])
            if ref is not None:
                m.layer.load_state_dict(ref.state_dict())
                checks[name] = _check(m, ref, x)
    fwd = {n: t for n, m in models.items() for t in [_tasks(m, x)[0]]}
    both = {n: t for n, m in models.items() for t in [_tasks(m, x)[1]]}
    progress = lambda s: log(f"  {s}")  # noqa: E731
    t_f = interleave(fwd, repeats=repeats, warmup=warmup, device=device, progress=progress)
    t_b = interleave(both, repeats=repeats, warmup=warmup, device=device, progress=progress)
    out = {}
    for name in models:
        out[name] = {"forward": summarize(t_f[name]["samples_ms"]),
                     "forward_backward": summarize(t_b[name]["samples_ms"]),
                     "peak_bytes_forward_backward": peak_bytes(both[name], device)}
        if name in checks:
            out[name]["max_rel_diff_vs_loop"] = checks[name]
    base = next((n for n in models if n.startswith("cudnn:lstm")), None)
    for name, r in out.items():
        for k in ("forward", "forward_backward"):
            if base:
                r[f"{k}_ratio_to_cudnn_lstm"] = r[k]["median_ms"] / out[base][k]["median_ms"]
            for ref in ("loop", "steps"):
                other = out.get(f"{ref}:" + name.split(":")[1])
                if name.startswith("triton:") and other:
                    r[f"{k}_speedup_vs_{ref}"] = other[k]["median_ms"] / r[k]["median_ms"]
    return {"shape": {"B": B, "T": T, "I": I, "H": H}, "dtype": str(dtype), "results": out,
            "checks": checks}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtypes", default="fp32,bf16,fp16", help="comma list of fp32, bf16, fp16")
    ap.add_argument("--groups", default="matrix,elementwise")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="bf16 only, 5 repeats")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny shapes, 1 repeat: checks that the script runs (CPU interpreter)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench_triton: no CUDA device; run on a GPU, or with --device cpu --smoke under "
              "TRITON_INTERPRET=1", file=sys.stderr)
        return 2
    dtypes = ["bf16"] if args.quick else args.dtypes.split(",")
    repeats = 5 if args.quick else args.repeats
    matrix = dict(B=32, T=100, I=128, H=256)
    elementwise = dict(B=32, T=1024, I=512, H=512)
    if args.smoke:
        matrix, elementwise = dict(B=2, T=3, I=4, H=8), dict(B=2, T=4, I=8, H=8)
        repeats, args.warmup = 1, 0
    groups = {
        "matrix": (matrix, ["cudnn:lstm", "cudnn:gru", "triton:ln_lstm", "loop:ln_lstm",
                            "triton:ln_gru", "loop:ln_gru", "triton:lstm_zoneout",
                            "loop:lstm_zoneout", "triton:lstm_recdrop", "loop:lstm_recdrop"]),
        "elementwise": (elementwise, ["cudnn:lstm"] + [f"{b}:{c}" for c in
                                                       ("indrnn", "qrnn", "sru", "mingru",
                                                        "minlstm") for b in ("triton", "loop")]
                        + ["steps:mingru", "steps:minlstm"]),
    }
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    report = {"environment": machine_info(device), "repeats": repeats, "warmup": args.warmup,
              "mode": "train", "runs": []}
    t0 = time.time()
    for g in args.groups.split(","):
        shape, names = groups[g]
        for d in dtypes:
            log(f"{g} {d} {shape}")
            res = run_group(names, device=device, dtype=DTYPES[d], repeats=repeats,
                            warmup=args.warmup, log=log, **shape)
            res["group"] = g
            report["runs"].append(res)
            for name, r in res["results"].items():
                ratio = r.get("forward_backward_ratio_to_cudnn_lstm")
                speed = r.get("forward_backward_speedup_vs_loop")
                steps = r.get("forward_backward_speedup_vs_steps")
                print(f"{g:11s} {d} {name:22s} fwd {r['forward']['median_ms']:9.3f} ms  "
                      f"fwd+bwd {r['forward_backward']['median_ms']:9.3f} ms"
                      + (f"  x{ratio:.2f} of cuDNN LSTM" if ratio else "")
                      + (f"  {speed:.1f}x vs loop" if speed else "")
                      + (f"  {steps:.1f}x vs step loop" if steps else "")
                      + (f"  (rel diff {r['max_rel_diff_vs_loop']:.1e})"
                         if "max_rel_diff_vs_loop" in r else ""))
    report["wall_seconds"] = round(time.time() - t0, 1)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
