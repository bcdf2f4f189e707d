// The LSTM and LayerNorm-LSTM time loops (the math: kernels/fused/lstm.py, layernorm.py;
// the same saved buffers, so the Python backward and this one are interchangeable).
#include "scans.h"

namespace rnnkit {

// ------------------------------------------------------------------ LSTM (no projection)
template <typename T>
static void lstm_fwd(const Tensor& xp, const Tensor& h0, const Tensor& c0, const Tensor& W_hh,
                     const OptT& b_hh, const OptT& m, Zone<T> zh, Zone<T> zc,
                     const Sizes& sizes, Tensor& A, Tensor& C, Tensor& TC, Tensor& Y) {
  const int64_t T_ = xp.size(0), B = xp.size(1), G = xp.size(2), H = G / 4;
  const Tensor Wt = W_hh.t();  // (H, 4H) view: pre = xp_t + (m h) W_hh^T
  Tensor pre = at::empty({B, G}, xp.options()), hm = at::empty({B, H}, xp.options());
  const Tensor bias = has(b_hh) ? *b_hh : at::zeros({G}, xp.options());
  const T* bp = ptr<T>(bias);
  for (int64_t t = 0; t < T_; t++) {
    const int64_t n = live(sizes, t, B);
    if (n == 0) continue;
    const Tensor hp = t ? Y[t - 1] : h0;
    Tensor pn = pre.narrow(0, 0, n);
    at::addmm_out(pn, xp[t].narrow(0, 0, n), masked(hp, m, hm, n), Wt);
    const T *P = ptr<T>(pre), *hpp = ptr<T>(hp);
    const T* cpp = t ? ptr<T>(C) + (t - 1) * B * H : ptr<T>(c0);
    T *a0 = ptr<T>(A) + t * B * G, *c0p = ptr<T>(C) + t * B * H;
    T *tc0 = ptr<T>(TC) + t * B * H, *y0 = ptr<T>(Y) + t * B * H;
    const T *wh = zh.at(t, B, H), *wc = zc.at(t, B, H);
    for_units(n, H, GRAIN, [&](int64_t r, int64_t j0, int64_t j1) {
      const T *p = P + r * G, *cp = cpp + r * H, *hq = hpp + r * H;
      T *a = a0 + r * G, *c = c0p + r * H, *tc = tc0 + r * H, *y = y0 + r * H;
      const T *whr = wh ? wh + r * H : nullptr, *wcr = wc ? wc + r * H : nullptr;
#pragma omp simd
      for (int64_t j = j0; j < j1; j++) {
        T i = sigmoid_(p[j] + bp[j]), f = sigmoid_(p[H + j] + bp[H + j]);
        T g = tanh_(p[2 * H + j] + bp[2 * H + j]), o = sigmoid_(p[3 * H + j] + bp[3 * H + j]);
        a[j] = i;
        a[H + j] = f;
        a[2 * H + j] = g;
        a[3 * H + j] = o;
        T cn = f * cp[j] + i * g, th = tanh_(cn), hn = o * th;
        tc[j] = th;
        c[j] = zc.on() ? lerp_(cn, cp[j], wcr ? wcr[j] : zc.rate) : cn;
        y[j] = zh.on() ? lerp_(hn, hq[j], whr ? whr[j] : zh.rate) : hn;
      }
    });
  }
}

template <typename T>
static void lstm_bwd(const Tensor& h0, const Tensor& c0, const Tensor& W_hh, const OptT& m,
                     Zone<T> zh, Zone<T> zc, const Sizes& sizes, const Tensor& A,
                     const Tensor& C, const Tensor& TC, const Tensor& dY, Tensor& dA,
                     Tensor& dh, Tensor& dc) {
  const int64_t T_ = A.size(0), B = A.size(1), G = A.size(2), H = G / 4;
  Tensor scratch = at::empty({B, H}, A.options());
  int64_t lv = 0;
  for (int64_t t = T_ - 1; t >= 0; t--) {
    const int64_t n = live(sizes, t, B);
    if (n == 0) continue;
    if (n > lv) {  // rows whose last step is t: their output gradient joins here
      dh.narrow(0, lv, n - lv).add_(dY[t].narrow(0, lv, n - lv));
      lv = n;
    }
    const T* cpp = t ? ptr<T>(C) + (t - 1) * B * H : ptr<T>(c0);
    const T *a0 = ptr<T>(A) + t * B * G, *tc0 = ptr<T>(TC) + t * B * H;
    const T* dy0 = t ? ptr<T>(dY) + (t - 1) * B * H : nullptr;
    T *da0 = ptr<T>(dA) + t * B * G, *dh0 = ptr<T>(dh), *dc0 = ptr<T>(dc);
    const T *wh = zh.at(t, B, H), *wc = zc.at(t, B, H);
    const T ky = t ? T(1) : T(0);
    for_units(n, H, GRAIN, [&](int64_t r, int64_t j0, int64_t j1) {
      const T *a = a0 + r * G, *tc = tc0 + r * H, *cp = cpp + r * H;
      const T *dy = dy0 ? dy0 + r * H : tc, *whr = wh ? wh + r * H : nullptr;
      const T* wcr = wc ? wc + r * H : nullptr;
      T *da = da0 + r * G, *dhr = dh0 + r * H, *dcr = dc0 + r * H;
#pragma omp simd
      for (int64_t j = j0; j < j1; j++) {
        T i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
        T dhv = dhr[j], dcv = dcr[j];
        T kh = zh.on() ? dhv * (whr ? whr[j] : zh.rate) : T(0);
        T kc = zc.on() ? dcv * (wcr ? wcr[j] : zc.rate) : T(0);
        dhv -= kh;
        dcv -= kc;
        T d = dcv + dhv * (o - o * tc[j] * tc[j]);
        da[3 * H + j] = dhv * tc[j] * (o - o * o);
        da[j] = d * g * (i - i * i);
        da[H + j] = d * cp[j] * (f - f * f);
        da[2 * H + j] = d * (i - i * g * g);
        dcr[j] = d * f + kc;
        dhr[j] = kh + ky * dy[j];
      }
    });
    add_recur(dh, dA[t].narrow(0, 0, n), W_hh, m, scratch, n);
  }
}

void lstm_forward(const Tensor& xp, const Tensor& h0, const Tensor& c0, const Tensor& W_hh,
                  const OptT& b_hh, const OptT& m, const OptT& ZH, const OptT& ZC,
                  double zh_rate, double zc_rate, const Sizes& sizes, Tensor A, Tensor C,
                  Tensor TC, Tensor Y) {
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "lstm_forward", [&] {
    lstm_fwd<scalar_t>(xp, h0, c0, W_hh, b_hh, m, {optr<scalar_t>(ZH), scalar_t(zh_rate)},
                       {optr<scalar_t>(ZC), scalar_t(zc_rate)}, sizes, A, C, TC, Y);
  });
}

void lstm_backward(const Tensor& h0, const Tensor& c0, const Tensor& W_hh, const OptT& m,
                   const OptT& ZH, const OptT& ZC, double zh_rate, double zc_rate,
                   const Sizes& sizes, const Tensor& A, const Tensor& C, const Tensor& TC,
                   const Tensor& dY, Tensor dA, Tensor dh, Tensor dc) {
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "lstm_backward", [&] {
    lstm_bwd<scalar_t>(h0, c0, W_hh, m, {optr<scalar_t>(ZH), scalar_t(zh_rate)},
                       {optr<scalar_t>(ZC), scalar_t(zc_rate)}, sizes, A, C, TC, dY, dA, dh,
                       dc);
  });
}

// ------------------------------------------------------------------ LayerNorm-LSTM
template <typename T>
static void ln_lstm_fwd(const Tensor& xp, const Tensor& h0, const Tensor& c0,
                        const Tensor& W_hh, const Tensor& b_hh, const Tensor& g_hh,
                        const Tensor& g_c, const Tensor& b_c, const OptT& m, Zone<T> zh,
                        Zone<T> zc, T eps, const Sizes& sizes, bool save_all, Tensor& V,
                        Tensor& A, Tensor& MU, Tensor& RS, Tensor& CT, Tensor& MUC,
                        Tensor& RSC, Tensor& TC, Tensor& C, Tensor& Y) {
  const int64_t T_ = xp.size(0), B = xp.size(1), G = xp.size(2), H = G / 4;
  const Tensor Wt = W_hh.t();
  Tensor v = at::empty({B, G}, xp.options()), hm = at::empty({B, H}, xp.options());
  const T *ghh = ptr<T>(g_hh), *bhh = ptr<T>(b_hh), *gc = ptr<T>(g_c), *bc = ptr<T>(b_c);
  for (int64_t t = 0; t < T_; t++) {
    const int64_t n = live(sizes, t, B);
    if (n == 0) continue;
    const int64_t s = save_all ? t : 0;  // the saved activations' step (one row: inference)
    const Tensor hp = t ? Y[t - 1] : h0;
    Tensor vn = v.narrow(0, 0, n);
    at::mm_out(vn, masked(hp, m, hm, n), Wt);
    const T *vp = ptr<T>(v), *hpp = ptr<T>(hp), *xq = ptr<T>(xp) + t * B * G;
    const T* cpp = t ? ptr<T>(C) + (t - 1) * B * H : ptr<T>(c0);
    T *y0 = ptr<T>(Y) + t * B * H, *c0p = ptr<T>(C) + t * B * H;
    const T *wh = zh.at(t, B, H), *wc = zc.at(t, B, H);
    for_rows(n, G, [&](int64_t r) {
      const T *vr = vp + r * G, *x = xq + r * G, *cp = cpp + r * H, *hq = hpp + r * H;
      const int64_t ss = s * B + r;
      T *Vr = ptr<T>(V) + ss * G, *a = ptr<T>(A) + ss * G;
      std::copy(vr, vr + G, Vr);
      T mu, rs;
      moments(vr, G, eps, &mu, &rs);
      ptr<T>(MU)[ss] = mu;
      ptr<T>(RS)[ss] = rs;
#pragma omp simd
      for (int64_t j = 0; j < H; j++) {
        auto pre = [&](int64_t k) { return (vr[k] - mu) * rs * ghh[k] + bhh[k] + x[k]; };
        T i = sigmoid_(pre(j)), f = sigmoid_(pre(H + j)), g = tanh_(pre(2 * H + j));
        a[j] = i;
        a[H + j] = f;
        a[2 * H + j] = g;
        a[3 * H + j] = sigmoid_(pre(3 * H + j));
      }
      T* ct = ptr<T>(CT) + ss * H;
#pragma omp simd
      for (int64_t j = 0; j < H; j++) ct[j] = a[H + j] * cp[j] + a[j] * a[2 * H + j];
      moments(ct, H, eps, &mu, &rs);
      ptr<T>(MUC)[ss] = mu;
      ptr<T>(RSC)[ss] = rs;
      T *tc = ptr<T>(TC) + ss * H, *y = y0 + r * H, *c = c0p + r * H;
      const T *o = a + 3 * H, *whr = wh ? wh + r * H : nullptr, *wcr = wc ? wc + r * H : nullptr;
#pragma omp simd
      for (int64_t j = 0; j < H; j++) {
        T th = tanh_((ct[j] - mu) * rs * gc[j] + bc[j]), hn = o[j] * th;
        tc[j] = th;
        y[j] = zh.on() ? lerp_(hn, hq[j], whr ? whr[j] : zh.rate) : hn;
      }
      if (c != ct) {  // C is CT (no zoneout, saving all steps): nothing to write
#pragma omp simd
        for (int64_t j = 0; j < H; j++)
          c[j] = zc.on() ? lerp_(ct[j], cp[j], wcr ? wcr[j] : zc.rate) : ct[j];
      }
    });
  }
}

template <typename T>
static int64_t ln_lstm_bwd(const Tensor& c0, const Tensor& W_hh, const Tensor& g_hh,
                           const Tensor& g_c, const OptT& m, Zone<T> zh, Zone<T> zc,
                           const Sizes& sizes, int64_t b0, int64_t b1, int64_t lv,
                           const Tensor& A, const Tensor& V, const Tensor& MU,
                           const Tensor& RS, const Tensor& CT, const Tensor& MUC,
                           const Tensor& RSC, const Tensor& TC, const Tensor& C,
                           const Tensor& dY, Tensor& dA, Tensor& dV, Tensor& dh, Tensor& dc,
                           Tensor& acc) {
  const int64_t B = A.size(1), G = A.size(2), H = G / 4, K = 2 * G + 2 * H;
  const int64_t nt = at::get_num_threads();
  // per thread: the gains' and biases' gradients [g_hh, b_hh, g_c, b_c] in double, and
  // four (H,) scratch rows
  Tensor sums = at::zeros({nt, K}, A.options().dtype(at::kDouble));
  Tensor scratch = at::empty({nt, 4 * H}, A.options()), rec = at::empty({B, H}, A.options());
  const T *ghh = ptr<T>(g_hh), *gc = ptr<T>(g_c);
  for (int64_t t = b1 - 1; t >= b0; t--) {
    const int64_t n = live(sizes, t, B);
    if (n == 0) continue;
    if (n > lv) {
      dh.narrow(0, lv, n - lv).add_(dY[t].narrow(0, lv, n - lv));
      lv = n;
    }
    const T* cpp = t ? ptr<T>(C) + (t - 1) * B * H : ptr<T>(c0);
    const T* dy0 = t ? ptr<T>(dY) + (t - 1) * B * H : nullptr;
    const T *wh = zh.at(t, B, H), *wc = zc.at(t, B, H);
    for_rows(n, G, [&](int64_t r) {
      const int64_t tid = at::get_thread_num(), tt = t * B + r, kk = (t - b0) * B + r;
      double* acc_t = ptr<double>(sums) + tid * K;
      T* sc = ptr<T>(scratch) + tid * 4 * H;
      T *dlc = sc, *dct = sc + H, *kh = sc + 2 * H, *kc = sc + 3 * H;
      const T *a = ptr<T>(A) + tt * G, *tc = ptr<T>(TC) + tt * H, *cp = cpp + r * H;
      const T *whr = wh ? wh + r * H : nullptr, *wcr = wc ? wc + r * H : nullptr;
      T *dhr = ptr<T>(dh) + r * H, *dcr = ptr<T>(dc) + r * H, *da = ptr<T>(dA) + tt * G;
#pragma omp simd
      for (int64_t j = 0; j < H; j++) {
        T o = a[3 * H + j];
        kh[j] = zh.on() ? dhr[j] * (whr ? whr[j] : zh.rate) : T(0);
        kc[j] = zc.on() ? dcr[j] * (wcr ? wcr[j] : zc.rate) : T(0);
        T d = dhr[j] - kh[j];
        dcr[j] -= kc[j];
        da[3 * H + j] = d * tc[j] * (o - o * o);
        dlc[j] = d * (o - o * tc[j] * tc[j]);
      }
      ln_grad(dlc, ptr<T>(CT) + tt * H, gc, ptr<T>(MUC)[tt], ptr<T>(RSC)[tt], H, dct,
              acc_t + 2 * G, acc_t + 2 * G + H);
#pragma omp simd
      for (int64_t j = 0; j < H; j++) {
        T i = a[j], f = a[H + j], g = a[2 * H + j], d = dcr[j] + dct[j];
        da[j] = d * g * (i - i * i);
        da[H + j] = d * cp[j] * (f - f * f);
        da[2 * H + j] = d * (i - i * g * g);
        dcr[j] = d * f + kc[j];
      }
      ln_grad(da, ptr<T>(V) + tt * G, ghh, ptr<T>(MU)[tt], ptr<T>(RS)[tt], G,
              ptr<T>(dV) + kk * G, acc_t, acc_t + G);
      const T* dy = dy0 ? dy0 + r * H : nullptr;
#pragma omp simd
      for (int64_t j = 0; j < H; j++) dhr[j] = kh[j] + (dy ? dy[j] : T(0));
    });
    add_recur(dh, dV[t - b0].narrow(0, 0, n), W_hh, m, rec, n);
  }
  acc.add_(sums.sum(0));
  return lv;
}

void ln_lstm_forward(const Tensor& xp, const Tensor& h0, const Tensor& c0, const Tensor& W_hh,
                     const Tensor& b_hh, const Tensor& g_hh, const Tensor& g_c,
                     const Tensor& b_c, const OptT& m, const OptT& ZH, const OptT& ZC,
                     double zh_rate, double zc_rate, double eps, const Sizes& sizes,
                     bool save_all, Tensor V, Tensor A, Tensor MU, Tensor RS, Tensor CT,
                     Tensor MUC, Tensor RSC, Tensor TC, Tensor C, Tensor Y) {
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "ln_lstm_forward", [&] {
    ln_lstm_fwd<scalar_t>(xp, h0, c0, W_hh, b_hh, g_hh, g_c, b_c, m,
                          {optr<scalar_t>(ZH), scalar_t(zh_rate)},
                          {optr<scalar_t>(ZC), scalar_t(zc_rate)}, scalar_t(eps), sizes,
                          save_all, V, A, MU, RS, CT, MUC, RSC, TC, C, Y);
  });
}

int64_t ln_lstm_backward(const Tensor& c0, const Tensor& W_hh, const Tensor& g_hh,
                         const Tensor& g_c, const OptT& m, const OptT& ZH, const OptT& ZC,
                         double zh_rate, double zc_rate, const Sizes& sizes, int64_t b0,
                         int64_t b1, int64_t live_rows, const Tensor& A, const Tensor& V,
                         const Tensor& MU, const Tensor& RS, const Tensor& CT,
                         const Tensor& MUC, const Tensor& RSC, const Tensor& TC,
                         const Tensor& C, const Tensor& dY, Tensor dA, Tensor dV, Tensor dh,
                         Tensor dc, Tensor acc) {
  int64_t out = 0;
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "ln_lstm_backward", [&] {
    out = ln_lstm_bwd<scalar_t>(c0, W_hh, g_hh, g_c, m, {optr<scalar_t>(ZH), scalar_t(zh_rate)},
                                {optr<scalar_t>(ZC), scalar_t(zc_rate)}, sizes, b0, b1,
                                live_rows, A, V, MU, RS, CT, MUC, RSC, TC, C, dY, dA, dV, dh,
                                dc, acc);
  });
  return out;
}

}  // namespace rnnkit
