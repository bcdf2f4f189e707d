// The LSTM with a projection (torch.nn.LSTM's proj_size) time loop: the math of
// kernels/fused/lstm.py with W_hr, and the same saved buffers (A, C, TC, R, Y). Its own file,
// so that the plain and LayerNorm LSTM loops' code generation (lstm.cpp) is left as measured.
//
// Per step: pre = (m h_{t-1}) W_hh^T (n, 4H); the gates, c_t (zoneout), tanh(c~) and
// r = o tanh(c~) (R); h~ = r W_hr^T (n, O); h_t = lerp(h~, h_{t-1}, zh) (Y). H hidden, O the
// projection's size.
#include "scans.h"

namespace rnnkit {

template <typename T>
static void lstmp_fwd(const Tensor& xp, const Tensor& h0, const Tensor& c0, const Tensor& W_hh,
                      const OptT& b_hh, const Tensor& W_hr, const OptT& m, const Zone<T>& zh,
                      const Zone<T>& zc, const Sizes& sizes, bool keep, Tensor& A, Tensor& C,
                      Tensor& TC, Tensor& R, Tensor& Y) {
  const int64_t T_ = xp.size(0), B = xp.size(1), G = xp.size(2), H = G / 4, O = h0.size(1);
  // (m h) W_hh^T, r W_hr^T; packed where each has half the room beside the backward's dA
  const int64_t room = T_ * B * G * int64_t(sizeof(T)) / 2;
  const StepGemm gemm(W_hh, B, keep, room), proj(W_hr, B, keep, room);
  Tensor hm = at::empty({B, O}, xp.options());
  const Tensor bias = has(b_hh) ? *b_hh : at::zeros({G}, xp.options());
  const T* bp = ptr<T>(bias);
  const T zcon = zc.on();  // (T, not bool: gcc vectorises)
  for (int64_t t = 0; t < T_; t++) {
    const int64_t n = live(sizes, t, B);
    if (n == 0) continue;
    const Tensor hp = t ? Y[t - 1] : h0;
    const Tensor pre = gemm(masked(hp, m, hm, n));  // (n, 4H)
    const T *P = ptr<T>(pre), *xq = ptr<T>(xp) + t * B * G;
    const T* cpp = t ? ptr<T>(C) + (t - 1) * B * H : ptr<T>(c0);
    T *a0 = ptr<T>(A) + t * B * G, *c0p = ptr<T>(C) + t * B * H;
    T *tc0 = ptr<T>(TC) + t * B * H, *r0 = ptr<T>(R) + t * B * H;
    for_units(n, H, GRAIN, [&](int64_t r, int64_t j0, int64_t j1) {
      const T *RS_ p = P + r * G, *RS_ x = xq + r * G, *RS_ b = bp, *RS_ cp = cpp + r * H;
      const T* RS_ wc = zc.row(t, r, B, H);
      T *RS_ a = a0 + r * G, *RS_ c = c0p + r * H, *RS_ tc = tc0 + r * H, *RS_ rr = r0 + r * H;
#pragma omp simd
      for (int64_t j = j0; j < j1; j++) {
        const int64_t jf = H + j, jg = 2 * H + j, jo = 3 * H + j;
        T i = sigmoid_(p[j] + x[j] + b[j]), f = sigmoid_(p[jf] + x[jf] + b[jf]);
        T g = tanh_(p[jg] + x[jg] + b[jg]), o = sigmoid_(p[jo] + x[jo] + b[jo]);
        a[j] = i;
        a[jf] = f;
        a[jg] = g;
        a[jo] = o;
        T cn = f * cp[j] + i * g, th = tanh_(cn);
        tc[j] = th;
        c[j] = zcon != T(0) ? lerp_(cn, cp[j], wc[j]) : cn;
        rr[j] = o * th;
      }
    });
    const Tensor hv = proj(R[t].narrow(0, 0, n));  // (n, O) h~
    const T *hv0 = ptr<T>(hv), *hpp = ptr<T>(hp);
    T* y0 = ptr<T>(Y) + t * B * O;
    const T zhon = zh.on();
    for_units(n, O, GRAIN, [&](int64_t r, int64_t j0, int64_t j1) {
      const T *RS_ v = hv0 + r * O, *RS_ h = hpp + r * O, *RS_ w = zh.row(t, r, B, O);
      T* RS_ y = y0 + r * O;
#pragma omp simd
      for (int64_t j = j0; j < j1; j++) y[j] = zhon != T(0) ? lerp_(v[j], h[j], w[j]) : v[j];
    });
  }
}

// dh (B, O) and dc (B, H) enter with the final states' gradients and leave with h0's and
// c0's; dA (T, B, 4H) gets the gates' pre-activation gradients and dHt (T, B, O) that of h~
// (for dW_hr = sum_t dHt^T R after the loop).
template <typename T>
static void lstmp_bwd(const Tensor& h0, const Tensor& c0, const Tensor& W_hh, const Tensor& W_hr,
                      const OptT& m, const Zone<T>& zh, const Zone<T>& zc, const Sizes& sizes,
                      const Tensor& A, const Tensor& C, const Tensor& TC, const Tensor& dY,
                      Tensor& dA, Tensor& dHt, Tensor& dh, Tensor& dc) {
  const int64_t T_ = A.size(0), B = A.size(1), G = A.size(2), H = G / 4, O = h0.size(1);
  // dA W_hh, dh~ W_hr; packed where each has half the room beside the caller's weight
  // gradients after the loop (h_{t-1} stacked, the two products and their copies)
  const int64_t room = (T_ * B * O + 2 * G * O + 2 * O * H) * int64_t(sizeof(T)) / 2;
  const StepGemm gemm(W_hh.t(), B, false, room), proj(W_hr.t(), B, false, room);
  int64_t lv = 0;
  for (int64_t t = T_ - 1; t >= 0; t--) {
    const int64_t n = join_live(sizes, t, B, dh, dY, lv);
    if (n == 0) continue;
    // split dh into h~'s part (dHt[t]) and zoneout's kept part (+ dY[t-1]), left in dh
    const T* dy0 = t ? ptr<T>(dY) + (t - 1) * B * O : nullptr;
    T *dht0 = ptr<T>(dHt) + t * B * O, *dh0 = ptr<T>(dh);
    const T ky = t ? T(1) : T(0);
    for_units(n, O, GRAIN, [&](int64_t r, int64_t j0, int64_t j1) {
      const T *RS_ w = zh.row(t, r, B, O), *RS_ dy = dy0 ? dy0 + r * O : w;
      T *RS_ d = dh0 + r * O, *RS_ dv = dht0 + r * O;
#pragma omp simd
      for (int64_t j = j0; j < j1; j++) {
        const T kh = d[j] * w[j];
        dv[j] = d[j] - kh;
        d[j] = kh + ky * dy[j];
      }
    });
    const Tensor dr = proj(dHt[t].narrow(0, 0, n));  // (n, H) gradient of r = o tanh(c~)
    const T* cpp = t ? ptr<T>(C) + (t - 1) * B * H : ptr<T>(c0);
    const T *a0 = ptr<T>(A) + t * B * G, *tc0 = ptr<T>(TC) + t * B * H, *dr0 = ptr<T>(dr);
    T *da0 = ptr<T>(dA) + t * B * G, *dc0 = ptr<T>(dc);
    for_units(n, H, GRAIN, [&](int64_t r, int64_t j0, int64_t j1) {
      const T *RS_ a = a0 + r * G, *RS_ tc = tc0 + r * H, *RS_ cp = cpp + r * H;
      const T *RS_ g_r = dr0 + r * H, *RS_ wc = zc.row(t, r, B, H);
      T *RS_ da = da0 + r * G, *RS_ dcr = dc0 + r * H;
#pragma omp simd
      for (int64_t j = j0; j < j1; j++) {
        T i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
        T kc = dcr[j] * wc[j], dcv = dcr[j] - kc, drv = g_r[j];
        T d = dcv + drv * (o - o * tc[j] * tc[j]);
        da[3 * H + j] = drv * tc[j] * (o - o * o);
        da[j] = d * g * (i - i * i);
        da[H + j] = d * cp[j] * (f - f * f);
        da[2 * H + j] = d * (i - i * g * g);
        dcr[j] = d * f + kc;
      }
    });
    add_recur(dh, dA[t].narrow(0, 0, n), gemm, m, n);
  }
}

void lstmp_forward(const Tensor& xp, const Tensor& h0, const Tensor& c0, const Tensor& W_hh,
                   const OptT& b_hh, const Tensor& W_hr, const OptT& m, const OptT& ZH,
                   const OptT& ZC, double zh_rate, double zc_rate, const Sizes& sizes, bool keep,
                   Tensor A, Tensor C, Tensor TC, Tensor R, Tensor Y) {
  RECORD_FUNCTION("rnnkit::compiled::lstmp_forward", std::vector<c10::IValue>());
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "lstmp_forward", [&] {
    lstmp_fwd<scalar_t>(xp, h0, c0, W_hh, b_hh, W_hr, m,
                        Zone<scalar_t>(optr<scalar_t>(ZH), zh_rate, h0.size(1)),
                        Zone<scalar_t>(optr<scalar_t>(ZC), zc_rate, c0.size(1)), sizes, keep, A,
                        C, TC, R, Y);
  });
}

void lstmp_backward(const Tensor& h0, const Tensor& c0, const Tensor& W_hh, const Tensor& W_hr,
                    const OptT& m, const OptT& ZH, const OptT& ZC, double zh_rate,
                    double zc_rate, const Sizes& sizes, const Tensor& A, const Tensor& C,
                    const Tensor& TC, const Tensor& dY, Tensor dA, Tensor dHt, Tensor dh,
                    Tensor dc) {
  RECORD_FUNCTION("rnnkit::compiled::lstmp_backward", std::vector<c10::IValue>());
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "lstmp_backward", [&] {
    lstmp_bwd<scalar_t>(h0, c0, W_hh, W_hr, m,
                        Zone<scalar_t>(optr<scalar_t>(ZH), zh_rate, h0.size(1)),
                        Zone<scalar_t>(optr<scalar_t>(ZC), zc_rate, c0.size(1)), sizes, A, C,
                        TC, dY, dA, dHt, dh, dc);
  });
}

}  // namespace rnnkit
