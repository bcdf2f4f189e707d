"""SegRNN's decoder step: its products taken once per distinct operand against the batched step.

SegRNN decodes all ``m`` output segments of each of ``N`` sequences in one step of its layer,
from ``m`` position (and ``C`` channel) embeddings and the ``N`` encoder states
(``rnnkit.models.forecast_segrnn``). The batched step multiplies all ``N*m`` rows by ``W_ih``
and ``W_hh``; the separable step (``separable_step``) multiplies the ``m`` (or ``C*m``)
distinct inputs and the ``N`` distinct states once each and sums the gates by broadcasting.

Times one training step of the whole model (forward and backward, MSE loss) and one forward
without gradients (evaluation), for the LTSF recipes' shapes: batch 256 windows of the 7 ETT
channels (N = 1792), d = 256, the GRU on torch's kernel (``model.extras.backend=torch``, as the
table's runs), wall clock, median over interleaved rounds, in one process. Also checks that
both give the same forecast.

    python benchmarks/bench_segrnn_decoder.py --threads 1,2 \\
        --json benchmarks/results/segrnn_decoder_amd2_s18.json
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import rnnkit.models.forecast_segrnn as seg
from rnnkit.bench.machine import write_suite
from rnnkit.models.forecast import ForecastModelConfig
from rnnkit.runtime import tune_malloc

# (lookback, horizon, segment length): the table's lookback-96 rows at the selected 24, and the
# long lookback's (512) at the recipes' 48
SHAPES = [(96, 96, 24), (96, 720, 24), (512, 96, 48), (512, 720, 48)]


def _model(L: int, H: int, w: int, cell: str) -> seg.SegRNN:
    cfg = ForecastModelConfig(arch="segrnn", cell=cell, hidden_size=256, segment_length=w,
                              dropout=0.5, norm="last", channels="independent",
                              channel_embedding=True, extras={"backend": "torch"})
    return seg.SegRNN(cfg, n_targets=7, horizon=H, input_length=L)


def run(L: int, H: int, w: int, cell: str, rounds: int, B: int = 256) -> dict:
    torch.manual_seed(0)
    m = _model(L, H, w, cell)
    x, y = torch.randn(B, L, 7), torch.randn(B, H, 7)
    plain = seg.separable_mode

    def use(separable: bool) -> None:
        seg.separable_mode = plain if separable else (lambda layer: None)

    def train_step() -> None:
        m.train()
        m.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(m(x)[..., 0], y).backward()

    def forward() -> None:
        m.eval()
        with torch.no_grad():
            m(x)

    ts: dict[str, list[float]] = {}
    try:
        with torch.no_grad():
            m.eval()
            use(True)
            a = m(x)
            use(False)
            b = m(x)
        diff = float((a - b).abs().max())
        for name, f in (("train_step", train_step), ("forward", forward)):
            for sep in (True, False):  # warm up
                use(sep)
                f()
            for r in range(rounds):
                for sep in ((True, False) if r % 2 == 0 else (False, True)):
                    use(sep)
                    t0 = time.perf_counter()
                    f()
                    ts.setdefault(f"{name}, {'separable' if sep else 'batched'}", []).append(
                        time.perf_counter() - t0)
    finally:
        seg.separable_mode = plain
    med = {k: round(statistics.median(v) * 1e3, 1) for k, v in ts.items()}
    return {"cell": cell, "shape": {"B": B, "C": 7, "L": L, "H": H, "segment": w, "d": 256,
                                    "m": m.m},
            "ms": med, "max_abs_diff_forecast": diff,
            "speedup_train_step": round(med["train_step, batched"]
                                        / med["train_step, separable"], 2),
            "speedup_forward": round(med["forward, batched"] / med["forward, separable"], 2)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", default="1")
    ap.add_argument("--cells", default="gru")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    tune_malloc()
    rows = []
    for n in [int(t) for t in a.threads.split(",")]:
        torch.set_num_threads(n)
        for cell in a.cells.split(","):
            for L, H, w in SHAPES:
                r = run(L, H, w, cell, a.rounds) | {"threads": n}
                rows.append(r)
                print(r, flush=True)
    return write_suite(a.json, "segrnn_decoder", "bench_segrnn_decoder.py", argv,
                       "wall (time.perf_counter), median of interleaved rounds", rows,
                       torch=torch.__version__)


if __name__ == "__main__":
    main()
