// The Elman RNN time loop, tanh or relu (the math: kernels/fused/rnn.py; the same saved
// buffers as its Python scan): h~ = act(xp_t + b_hh + (m h_{t-1}) W_hh^T) (A),
// h_t = lerp(h~, h_{t-1}, k_t) (Y; A is Y without zoneout).
#include "scans.h"

namespace rnnkit {

template <typename T>
static void rnn_fwd(const Tensor& xp, const Tensor& h0, const Tensor& W_hh, const OptT& b_hh,
                    const OptT& m, const Zone<T>& zh, bool relu, const Sizes& sizes, bool keep,
                    Tensor& A, Tensor& Y) {
  const int64_t T_ = xp.size(0), B = xp.size(1), H = xp.size(2);
  // (m h) W_hh^T; packed where it has room beside the backward's dA (pack_fits())
  const StepGemm gemm(W_hh, B, keep, T_ * B * H * int64_t(sizeof(T)));
  Tensor hm = at::empty({B, H}, xp.options()), zero = at::zeros({H}, xp.options());
  const T* bp = ptr<T>(has(b_hh) ? *b_hh : zero);
  const bool zoned = zh.on();
  const T is_relu = relu;  // (T, not bool: gcc vectorises)
  Tensor hold;
  for (int64_t t = 0; t < T_; t++) {
    const int64_t n = live(sizes, t, B);
    if (n == 0) continue;
    const T* p0 = forward_product<T>(gemm, Y, h0, t, m, hm, n, hold);  // (n, H)
    const T *hpp = t ? ptr<T>(Y) + (t - 1) * B * H : ptr<T>(h0), *x0 = ptr<T>(xp) + t * B * H;
    T *a0 = ptr<T>(A) + t * B * H, *y0 = ptr<T>(Y) + t * B * H;
    for_units(n, H, GRAIN, [&](int64_t r, int64_t j0, int64_t j1) {
      const T *RS_ p = p0 + r * H, *RS_ x = x0 + r * H, *RS_ b = bp;
      T* RS_ a = a0 + r * H;
#pragma omp simd
      for (int64_t j = j0; j < j1; j++) {
        const T v = x[j] + (p[j] + b[j]);
        a[j] = is_relu != T(0) ? std::max(v, T(0)) : tanh_(v);
      }
      if (!zoned) return;
      const T *RS_ h = hpp + r * H, *RS_ k = zh.row(t, r, B, H);
      T* RS_ y = y0 + r * H;
#pragma omp simd
      for (int64_t j = j0; j < j1; j++) y[j] = lerp_(a[j], h[j], k[j]);
    });
  }
}

// dh enters with the final state's gradient and leaves with h0's; dA (T, B, H) gets the
// gradient of the pre-activation (= of xp, of b_hh, and the GEMM's for dW_hh).
template <typename T>
static void rnn_bwd(const Tensor& h0, const Tensor& W_hh, const OptT& m, const Zone<T>& zh,
                    bool relu, const Sizes& sizes, const Tensor& A, const Tensor& dY, Tensor& dA,
                    Tensor& dh) {
  const int64_t T_ = A.size(0), B = A.size(1), H = A.size(2);
  // da W_hh; packed where it has room beside dW_hh's GEMM after the loop (pack_fits())
  const StepGemm gemm(W_hh.t(), B, false, (T_ * B * H + 2 * H * H) * int64_t(sizeof(T)));
  const T is_relu = relu;
  int64_t lv = 0;
  for (int64_t t = T_ - 1; t >= 0; t--) {
    const int64_t n = join_live(sizes, t, B, dh, dY, lv);
    if (n == 0) continue;
    const T* a0 = ptr<T>(A) + t * B * H;
    const T* dy0 = t ? ptr<T>(dY) + (t - 1) * B * H : a0;  // (a0: read, times 0)
    T *da0 = ptr<T>(dA) + t * B * H, *dh0 = ptr<T>(dh);
    const T ky = t ? T(1) : T(0);
    for_units(n, H, GRAIN, [&](int64_t r, int64_t j0, int64_t j1) {
      const T *RS_ a = a0 + r * H, *RS_ k = zh.row(t, r, B, H), *RS_ dy = dy0 + r * H;
      T *RS_ d = dh0 + r * H, *RS_ da = da0 + r * H;
#pragma omp simd
      for (int64_t j = j0; j < j1; j++) {
        const T g = d[j], kh = g * k[j];
        const T act = is_relu != T(0) ? (a[j] > T(0) ? T(1) : T(0)) : T(1) - a[j] * a[j];
        da[j] = (g - kh) * act;
        d[j] = kh + ky * dy[j];
      }
    });
    add_recur(dh, dA[t].narrow(0, 0, n), gemm, m, n);
  }
}

void rnn_forward(const Tensor& xp, const Tensor& h0, const Tensor& W_hh, const OptT& b_hh,
                 const OptT& m, const OptT& ZH, double zh_rate, bool relu, const Sizes& sizes,
                 bool keep, Tensor A, Tensor Y) {
  RECORD_FUNCTION("rnnkit::compiled::rnn_forward", std::vector<c10::IValue>());
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "rnn_forward", [&] {
    rnn_fwd<scalar_t>(xp, h0, W_hh, b_hh, m,
                      Zone<scalar_t>(optr<scalar_t>(ZH), zh_rate, h0.size(1)), relu, sizes, keep,
                      A, Y);
  });
}

void rnn_backward(const Tensor& h0, const Tensor& W_hh, const OptT& m, const OptT& ZH,
                  double zh_rate, bool relu, const Sizes& sizes, const Tensor& A,
                  const Tensor& dY, Tensor dA, Tensor dh) {
  RECORD_FUNCTION("rnnkit::compiled::rnn_backward", std::vector<c10::IValue>());
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "rnn_backward", [&] {
    rnn_bwd<scalar_t>(h0, W_hh, m, Zone<scalar_t>(optr<scalar_t>(ZH), zh_rate, h0.size(1)),
                      relu, sizes, A, dY, dA, dh);
  });
}

}  // namespace rnnkit
