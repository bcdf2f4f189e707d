"""Why the compiled loops pad the rows of their copy of W^T (``row_stride()`` in
``kernels/compiled/scans.h``; docs/kernels.md, "Padded rows").

The per-step product ``x W^T`` (x: B rows of K, W: N x K) as the loops run it on brgemm slices:
oneDNN's brgemm (``at::native::cpublas::brgemm``) per block of at most 32 rows and slice of
about 128 columns, reading a row-major (K, N) copy of W^T whose rows lie ``N + pad`` floats
apart. With N a multiple of 256 (1 KB: the LSTMs' N = 4H) and no pad, a slice's K rows fall in
few cache sets. Also MKL's packed product of the same shape, and the copy W -> W^T three ways
(``Tensor.copy_`` into a padded and into a dense buffer, and 16 x 16 tiles as the loops do).
One thread, wall clock, the best of 3 batches of calls after a warm-up. A small C++ extension
is built on first use (torch.utils.cpp_extension, the system compiler).

    python benchmarks/bench_gemm_pad.py --json benchmarks/results/gemm_pad.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.utils.cpp_extension import load_inline

from rnnkit.bench.machine import machine_info

SOURCE = r"""
#include <torch/extension.h>
#include <ATen/native/CPUBlas.h>
#include <chrono>
extern "C" {
size_t cblas_sgemm_pack_get_size(int, int, int, int) __attribute__((weak));
void cblas_sgemm_pack(int, int, int, int, int, int, float, const float*, int, float*)
    __attribute__((weak));
void cblas_sgemm_compute(int, int, int, int, int, int, const float*, int, const float*, int,
                         float, float*, int) __attribute__((weak));
}
template <class F> static double us(F f, int64_t n) {
  for (int64_t i = 0; i < 10; i++) f();
  double best = 1e30;
  for (int rep = 0; rep < 3; rep++) {
    auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < n; i++) f();
    best = std::min(best, std::chrono::duration<double, std::micro>(
                              std::chrono::steady_clock::now() - t0).count() / n);
  }
  return best;
}
// microseconds of x W^T on slices of W^T with rows N + pad apart; the largest error against mm
std::vector<double> slices(int64_t B, int64_t K, int64_t N, int64_t pad, int64_t n) {
  auto W = torch::randn({N, K}), x = torch::randn({B, K}), y = torch::empty({B, N});
  auto Wt = torch::zeros({K, N + pad});
  Wt.narrow(1, 0, N).copy_(W.t());
  const float *a = x.data_ptr<float>(), *b = Wt.data_ptr<float>();
  float* c = y.data_ptr<float>();
  const int64_t parts = (N + 127) / 128, w = ((N + parts - 1) / parts + 15) / 16 * 16;
  const int64_t blocks = (B + 31) / 32, rw = (B + blocks - 1) / blocks, ldb = N + pad;
  const double t = us([&] {
    for (int64_t i0 = 0; i0 < B; i0 += rw)
      for (int64_t j0 = 0; j0 < N; j0 += w)
        at::native::cpublas::brgemm(std::min(rw, B - i0), std::min(w, N - j0), K, K, ldb, N,
                                    false, a + i0 * K, b + j0, c + i0 * N + j0, false);
  }, n);
  return {t, (y - torch::mm(x, W.t())).abs().max().item<double>()};
}
double mkl_packed(int64_t B, int64_t K, int64_t N, int64_t n) {
  if (!cblas_sgemm_pack_get_size) return -1;
  auto W = torch::randn({N, K}), x = torch::randn({B, K}), y = torch::empty({B, N});
  std::vector<float> p(cblas_sgemm_pack_get_size(162, B, N, K) / 4 + 16);
  cblas_sgemm_pack(101, 162, 112, B, N, K, 1.0f, W.data_ptr<float>(), K, p.data());
  return us([&] {
    cblas_sgemm_compute(101, 111, 151, B, N, K, x.data_ptr<float>(), K, p.data(), K, 0.f,
                        y.data_ptr<float>(), N);
  }, n);
}
// the loops' transpose_into() at one thread: D (K rows, ld apart) = W^T in 16 x 16 tiles
static void tiles(const float* __restrict__ W, int64_t N, int64_t K, float* __restrict__ D,
                  int64_t ld) {
  for (int64_t n0 = 0; n0 < N; n0 += 16)
    for (int64_t k0 = 0; k0 < K; k0 += 16) {
      const int64_t n1 = std::min(N, n0 + 16), k1 = std::min(K, k0 + 16);
      for (int64_t k = k0; k < k1; k++)
        for (int64_t j = n0; j < n1; j++) D[k * ld + j] = W[j * K + k];
    }
}
// microseconds of W (N, K) -> W^T: copy_ into a padded buffer, into a dense one, 16 x 16 tiles
std::vector<double> transpose(int64_t N, int64_t K, int64_t n) {
  auto W = torch::randn({N, K});
  auto P = torch::empty({K, N + 16}).narrow(1, 0, N), D = torch::empty({K, N});
  return {us([&] { P.copy_(W.t()); }, n), us([&] { D.copy_(W.t()); }, n),
          us([&] { tiles(W.data_ptr<float>(), N, K, P.data_ptr<float>(), N + 16); }, n)};
}
"""
SHAPES = [(1, 256, 1024), (1, 256, 768), (1, 512, 2048), (32, 256, 1024), (32, 256, 768),
          (128, 512, 2048), (128, 512, 1536)]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    ext = load_inline("rnnkit_bench_gemm_pad", cpp_sources=SOURCE,
                      functions=["slices", "mkl_packed", "transpose"],
                      extra_cflags=["-O3", "-march=native"])
    rows = []
    for B, K, N in SHAPES:
        calls = max(20, 3000 // B)
        dense, err0 = ext.slices(B, K, N, 0, calls)
        padded, err1 = ext.slices(B, K, N, 16, calls)
        assert max(err0, err1) < 1e-3 * K ** 0.5, (err0, err1)
        row = {"B": B, "K": K, "N": N, "slices_dense_us": round(dense, 2),
               "slices_padded_us": round(padded, 2),
               "mkl_packed_us": round(ext.mkl_packed(B, K, N, calls), 2)}
        rows.append(row)
        print(row, flush=True)
    copies = []
    for N, K in [(1024, 256), (768, 256), (2048, 512)]:
        p, d, tiles = ext.transpose(N, K, 200)
        copies.append({"N": N, "K": K, "copy_padded_us": round(p, 1),
                       "copy_dense_us": round(d, 1), "tiles_padded_us": round(tiles, 1)})
        print(copies[-1], flush=True)
    out = {"suite": "gemm_pad", "machine": machine_info(), "threads": 1,
           "command": "python benchmarks/bench_gemm_pad.py " + " ".join(
               sys.argv[1:] if argv is None else argv),
           "clock": "wall, best of 3 batches", "products": rows, "transposes": copies}
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
