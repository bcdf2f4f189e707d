// The GRU (torch's reset-after form) and LayerNorm-GRU time loops (the math:
// kernels/fused/gru.py, layernorm.py; the same saved buffers as the Python scans).
#include "scans.h"

namespace rnnkit {

// One row's units j0..j1-1 of the GRU step from gh = (m h_{t-1}) W_hh^T + b_hh (or the
// LayerNorm-GRU's gamma LN(v) + b_hh): r, z = sigmoid(xp_rz + gh_rz),
// n = tanh(xp_n + r gh_n), h = lerp(n, h_{t-1}, z), then zoneout. (flatten, here and on the
// two below: gcc's unit growth limit, reached in this file, left exp_ a call and the loops
// scalar, the team's steps 1.3-1.7x slower at B=1-8; session 12.)
template <typename T>
[[gnu::flatten]]
static inline void gru_units(const T* RS_ g, const T* RS_ b, const T* RS_ x, const T* RS_ hp,
                             T* RS_ rz,
                             T* RS_ ghn, T* RS_ nt, T* RS_ y, const T* RS_ w, T zoned,
                             int64_t H, int64_t j0, int64_t j1) {
#pragma omp simd
  for (int64_t j = j0; j < j1; j++) {
    const int64_t jz = H + j, jn = 2 * H + j;
    T r = sigmoid_(x[j] + (g[j] + b[j])), z = sigmoid_(x[jz] + (g[jz] + b[jz])), gn = g[jn] + b[jn];
    T nn = tanh_(x[2 * H + j] + r * gn), hn = lerp_(nn, hp[j], z), hz = lerp_(hn, hp[j], w[j]);
    rz[j] = r;
    rz[H + j] = z;
    ghn[j] = gn;
    nt[j] = nn;
    y[j] = zoned != T(0) ? hz : hn;
  }
}

// The gradients of one unit of gru_units, from d (the gradient of h_t), the step's saved r, z,
// n, gh_n and h_{t-1}, zoneout's weight w, and ky dy (the output's gradient, added to dh).
template <typename T>
struct GruUnitGrad {
  T dr, dz, dgn, dn, dh;  // [dr, dz, dgh_n] (of gh), dxn (of xp_n), dh for step t-1
};
template <typename T>
static inline GruUnitGrad<T> gru_unit_grad(T d, T rr, T z, T nn, T ghn, T hp, T w, T dy, T ky) {
  T kh = d * w;  // (weight 0 without zoneout)
  d -= kh;
  T dn = d * (T(1) - z) * (T(1) - nn * nn);
  return {dn * ghn * (rr - rr * rr), d * (hp - nn) * (z - z * z), dn * rr, dn,
          d * z + kh + ky * dy};
}

// Backward of gru_units: reads dh (gradient of h_t); writes dg = [dr, dz, dgh_n] (the
// gradient of gh), dxn (of xp_n) and dh <- dh~ z + zoneout's kept part + ky dy.
template <typename T>
[[gnu::flatten]]
static inline void gru_units_bwd(const T* RS_ rz, const T* RS_ nt, const T* RS_ ghn,
                                 const T* RS_ hp, const T* RS_ w, const T* RS_ dy, T ky,
                                 T* RS_ dh, T* RS_ dg, T* RS_ dxn, int64_t H, int64_t j0,
                                 int64_t j1) {
#pragma omp simd
  for (int64_t j = j0; j < j1; j++) {
    const GruUnitGrad<T> g =
        gru_unit_grad(dh[j], rz[j], rz[H + j], nt[j], ghn[j], hp[j], w[j], dy[j], ky);
    dxn[j] = g.dn;
    dg[H + j] = g.dz;
    dg[j] = g.dr;
    dg[2 * H + j] = g.dgn;
    dh[j] = g.dh;
  }
}

// gru_units_bwd for the GRU's own loop (gru_backward_dxp; not the LayerNorm-GRU's), the same
// numbers written where the caller wants them: dg = [dr, dz, dgh_n] into the step's scratch row
// `dg` (the recurrent product's input), [dr, dz, dxn] into the row `dx` of dxp (the gradient of
// xp, which needs no cat after the loop), dgh_n into `dgn` (for dW_hh's last H rows), and dg
// added to the thread's float64 sums `db` (db_hh, with no pass over the (T, B, 3H) numbers).
template <typename T>
[[gnu::flatten]]
static inline void gru_units_bwd_dxp(const T* RS_ rz, const T* RS_ nt, const T* RS_ ghn,
                                     const T* RS_ hp, const T* RS_ w, const T* RS_ dy, T ky,
                                     T* RS_ dh, T* RS_ dg, T* RS_ dx, T* RS_ dgn,
                                     double* RS_ db, int64_t H, int64_t j0, int64_t j1) {
#pragma omp simd
  for (int64_t j = j0; j < j1; j++) {
    const GruUnitGrad<T> g =
        gru_unit_grad(dh[j], rz[j], rz[H + j], nt[j], ghn[j], hp[j], w[j], dy[j], ky);
    dg[j] = g.dr;
    dg[H + j] = g.dz;
    dg[2 * H + j] = g.dgn;
    dx[j] = g.dr;
    dx[H + j] = g.dz;
    dx[2 * H + j] = g.dn;
    dgn[j] = g.dgn;
    db[j] += double(g.dr);
    db[H + j] += double(g.dz);
    db[2 * H + j] += double(g.dgn);
    dh[j] = g.dh;
  }
}

// The team's GRU step for units [j0, j0 + n) of one row, from its slice of the product
// v = h_{t-1} W_hh^T (gate block k's units at k * n) and, for the LayerNorm-GRU (LN), the
// row's moments: gh = gamma LN(v) + b_hh, or v + b_hh; then gru_units' math with nothing
// saved (inference). b, gain, x, hp, w, y: at unit j0 (b, gain and x with gate blocks H apart).
template <bool LN>
[[gnu::flatten]]
static inline void gru_team_units(const float* RS_ v, Moments<float> mv, const float* RS_ gain,
                                  const float* RS_ b, const float* RS_ x, const float* RS_ hp,
                                  const float* RS_ w, float zoned, float* RS_ y, int64_t H,
                                  int64_t n) {
#pragma omp simd
  for (int64_t j = 0; j < n; j++) {
    auto gh = [&](int64_t k) {  // gate block k's gh at unit j
      const int64_t i = k * H + j;
      return LN ? (v[k * n + j] - mv.mu) * mv.rs * gain[i] + b[i] : v[k * n + j] + b[i];
    };
    const float r = sigmoid_(x[j] + gh(0)), z = sigmoid_(x[H + j] + gh(1));
    const float nn = tanh_(x[2 * H + j] + r * gh(2)), hn = lerp_(nn, hp[j], z);
    const float hz = lerp_(hn, hp[j], w[j]);
    y[j] = zoned != 0.0f ? hz : hn;
  }
}

// gru_fwd's inference loop on a team of P threads (team_size()): thread q runs the slices
// p = q, q + nq, ... of the units: their product, the LayerNorm-GRU's moments (each slice's,
// then, after a barrier, the row's, combined in the same order on every thread) and the GRU
// step into Y; a barrier ends each step (h_t is whole only then: one a step is the least,
// two with the norm unless every thread redid the row's step, which was slower for the
// LayerNorm-LSTM). The barriers are TeamBarrier's, the products read where MKL writes them
// and nothing is saved: 2 layers at B=1, 2 threads, 2-core Xeon, the omp-barrier build in
// the same process, GRU 20.9 -> 19.7 us a step, LayerNorm-GRU 23.4 -> 21.6; 4 threads on
// the 2 cores 121 -> 35, 201 -> 42 (session 12, docs/kernels.md).
static void gru_team(const Tensor& xp, const Tensor& h0, const Tensor& W_hh, const float* bp,
                     const float* gp, const Zone<float>& zh, float eps, Tensor& Y, int64_t P) {
  const int64_t T_ = xp.size(0), B = xp.size(1), G = xp.size(2), H = G / 3;
  const TeamGemm gemm(W_hh, B, 3, P);
  const int64_t parts = gemm.parts();
  // each (row, slice)'s moments (count, mean, m2) in its own 64 bytes: the threads write them
  // side by side every step
  constexpr int64_t S = 8;
  std::vector<double> st(size_t(B * parts * S));
  float* y = ptr<float>(Y);
  const float *x0 = ptr<float>(xp), *h0p = ptr<float>(h0);
  const float zoned = zh.on();
  TeamBarrier bar(P);
  team_loop(P, [&](int64_t q, int64_t nq) {
    for (int64_t t = 0; t < T_; t++) {
      const float* hp = t ? y + (t - 1) * B * H : h0p;
      for (int64_t p = q; p < parts; p += nq)  // (x_t's slices arrive during the product)
        for (int64_t r = 0; r < B; r++)
          for (int64_t k = 0; k < 3; k++)
            prefetch(x0 + (t * B + r) * G + k * H + gemm.j0(p), gemm.h(p));
      for (int64_t p = q; p < parts; p += nq) {
        const float* v = gemm.product(p, hp, H);
        if (!gp) continue;
        const int64_t n = 3 * gemm.h(p);
        for (int64_t r = 0; r < B; r++)  // slice p of row r: n numbers in a row
          slice_stats(v + r * n, n, &st[(r * parts + p) * S]);
      }
      if (gp) bar.wait(nq);
      for (int64_t p = q; p < parts; p += nq) {
        const int64_t j0 = gemm.j0(p), n = gemm.h(p);
        const float* vp = gemm.product_buffer(p);
        for (int64_t r = 0; r < B; r++) {
          const float *v = vp + r * 3 * n, *x = x0 + (t * B + r) * G + j0;
          const float *hr = hp + r * H + j0, *w = zh.row(t, r, B, H) + j0;
          float* yr = y + (t * B + r) * H + j0;
          if (gp)
            gru_team_units<true>(v, combine_moments(&st[r * parts * S], parts, eps, S), gp + j0,
                                 bp + j0, x, hr, w, zoned, yr, H, n);
          else
            gru_team_units<false>(v, {}, nullptr, bp + j0, x, hr, w, zoned, yr, H, n);
        }
      }
      bar.wait(nq);
    }
  });
}

template <typename T>
static void gru_fwd(const Tensor& xp, const Tensor& h0, const Tensor& W_hh, const OptT& b_hh,
                    const OptT& g_hh, const OptT& m, const Zone<T>& zh, T eps, const Sizes& sizes,
                    bool save_all, Tensor& Ghn, Tensor& RZ, Tensor& N, Tensor& Y,
                    const OptT& V, const OptT& MU, const OptT& RS) {
  const int64_t T_ = xp.size(0), B = xp.size(1), G = xp.size(2), H = G / 3;
  const bool ln = has(g_hh);
  if constexpr (std::is_same_v<T, float>) {
    if (const int64_t P = team_size(W_hh, B, H, save_all, has(m), sizes)) {
      const Tensor bias = has(b_hh) ? *b_hh : at::zeros({G}, xp.options());
      gru_team(xp, h0, W_hh, ptr<float>(bias), ln ? ptr<float>(*g_hh) : nullptr, zh, eps, Y, P);
      return;
    }
  }
  // (m h) W_hh^T; in training packed where it has room beside the backward's dGh (pack_fits()),
  // in inference packed and kept (packed_weight()), except where slices are preferred
  // (slices_take()): there inference multiplies by oneDNN's brgemm slices as training does, on
  // a kept W^T (transposed_weight(); at B=1, 1 thread, 2 layers, on the 2-core AMD EPYC: 30.9
  // against 43.6 us a step packed; docs/kernels.md, "MKL on an AMD CPU",
  // streaming_cpu_amd2_s15b.json)
  const StepGemm gemm(W_hh, B, !save_all, T_ * B * G * int64_t(sizeof(T)));
  Tensor hm = at::empty({B, H}, xp.options()), zero = at::zeros({G}, xp.options());
  const Tensor bias = has(b_hh) ? *b_hh : zero;
  // the bias: in the GRU step, or (LayerNorm-GRU) with the norm's gain, before it
  const T *bp = ptr<T>(bias), *gp = ln ? ptr<T>(*g_hh) : nullptr;
  const T* bu = ln ? ptr<T>(zero) : bp;
  Tensor hold;
  for (int64_t t = 0; t < T_; t++) {
    const int64_t n = live(sizes, t, B);
    if (n == 0) continue;
    const int64_t s = save_all ? t : 0;
    // (n, 3H); LayerNorm-GRU: v, normalised below in place
    T* g0 = forward_product<T>(gemm, Y, h0, t, m, hm, n, hold);
    const T* hpp = t ? ptr<T>(Y) + (t - 1) * B * H : ptr<T>(h0);
    const T* xq = ptr<T>(xp) + t * B * G;
    T *rz0 = ptr<T>(RZ) + s * B * 2 * H, *ghn0 = ptr<T>(Ghn) + s * B * H;
    T *n0 = ptr<T>(N) + s * B * H, *y0 = ptr<T>(Y) + t * B * H;
    const T zoned = zh.on();  // (T, not bool: gcc vectorises)
    auto row = [&](int64_t r, int64_t j0, int64_t j1) {
      gru_units(g0 + r * G, bu, xq + r * G, hpp + r * H, rz0 + r * 2 * H, ghn0 + r * H, n0 + r * H,
                y0 + r * H, zh.row(t, r, B, H), zoned, H, j0, j1);
    };
    if (!ln) {
      for_units(n, H, GRAIN, row);
      continue;
    }
    T *V0 = ptr<T>(*V) + s * B * G, *mu0 = ptr<T>(*MU) + s * B, *rs0 = ptr<T>(*RS) + s * B;
    for_rows(n, G, [&](int64_t r) {
      T* g = g0 + r * G;
      std::copy(g, g + G, V0 + r * G);
      const Moments<T> mv = moments(g, G, eps);
      const T mu = mv.mu, rs = mv.rs;
      mu0[r] = mu;
      rs0[r] = rs;
#pragma omp simd
      for (int64_t j = 0; j < G; j++) g[j] = (g[j] - mu) * rs * gp[j] + bp[j];
      row(r, 0, H);
    });
  }
}

// Step t's saved rows for a GRU backward, (B, .) each: h_{t-1}, [r, z], n, gh_n, and dY[t-1],
// the output gradient that joins dh for step t-1 (at t = 0 none: h0 is read, times ky = 0).
template <typename T>
struct GruSaved {
  const T *hp, *rz, *n, *ghn, *dy;
  T ky;
  GruSaved(int64_t t, int64_t B, int64_t H, const Tensor& h0, const Tensor& Y, const Tensor& RZ,
           const Tensor& N, const Tensor& Ghn, const Tensor& dY)
      : hp(t ? ptr<T>(Y) + (t - 1) * B * H : ptr<T>(h0)),
        rz(ptr<T>(RZ) + t * B * 2 * H),
        n(ptr<T>(N) + t * B * H),
        ghn(ptr<T>(Ghn) + t * B * H),
        dy(t ? ptr<T>(dY) + (t - 1) * B * H : hp),
        ky(t ? T(1) : T(0)) {}
};

template <typename T>
static void gru_bwd(const Tensor& h0, const Tensor& W_hh, const OptT& g_hh, const OptT& m,
                    const Zone<T>& zh, const Sizes& sizes, const Tensor& Ghn, const Tensor& RZ,
                    const Tensor& N, const Tensor& Y, const Tensor& dY, Tensor& dGh,
                    Tensor& dXn, Tensor& dh, const OptT& V, const OptT& MU, const OptT& RS,
                    const OptT& dV, const OptT& acc) {
  const int64_t T_ = N.size(0), B = N.size(1), H = N.size(2), G = 3 * H;
  const bool ln = has(g_hh);
  const int64_t nt = at::get_num_threads();
  Tensor sums = ln ? at::zeros({nt, 2 * G}, N.options().dtype(at::kDouble)) : Tensor();
  Tensor parts = ln ? at::empty({nt, 2 * G}, N.options()) : Tensor();
  // dg W_hh; packed where it has room beside what the caller makes after the loop (pack_fits():
  // dxp, (T, B, 3H), and h_{t-1} stacked for dW_hh's GEMM, then the product and its copy)
  const StepGemm gemm(W_hh.t(), B, false, (T_ * B * 4 * H + 2 * G * H) * int64_t(sizeof(T)));
  int64_t lv = 0;
  for (int64_t t = T_ - 1; t >= 0; t--) {
    const int64_t n = join_live(sizes, t, B, dh, dY, lv);
    if (n == 0) continue;
    const GruSaved<T> sv(t, B, H, h0, Y, RZ, N, Ghn, dY);
    T *dg0 = ptr<T>(dGh) + t * B * G, *dxn0 = ptr<T>(dXn) + t * B * H, *dh0 = ptr<T>(dh);
    auto units = [&](int64_t r, int64_t j0, int64_t j1) {
      gru_units_bwd(sv.rz + r * 2 * H, sv.n + r * H, sv.ghn + r * H, sv.hp + r * H,
                    zh.row(t, r, B, H), sv.dy + r * H, sv.ky, dh0 + r * H, dg0 + r * G,
                    dxn0 + r * H, H, j0, j1);
    };
    if (!ln) {
      for_units(n, H, GRAIN, units);
      add_recur(dh, dGh[t].narrow(0, 0, n), gemm, m, n);
      continue;
    }
    const T *V0 = ptr<T>(*V) + t * B * G, *mu0 = ptr<T>(*MU) + t * B, *rs0 = ptr<T>(*RS) + t * B;
    const T* gp = ptr<T>(*g_hh);
    T* dV0 = ptr<T>(*dV) + t * B * G;
    for_rows_summed(n, G, 2 * G, ptr<T>(parts), ptr<double>(sums),
                    [&](int64_t r, int64_t, T* part) {
                      units(r, 0, H);
                      ln_grad(dg0 + r * G, V0 + r * G, gp, mu0[r], rs0[r], G, dV0 + r * G,
                              part, part + G);
                    });
    add_recur(dh, (*dV)[t].narrow(0, 0, n), gemm, m, n);
  }
  if (ln) acc->add_(sums.sum(0));
}

// The GRU's backward loop (gru_bwd's without the norm) writing dxp (T, B, 3H) = [dr, dz, dxn]
// and dGn (T, B, H) = dgh_n in place of dGh and dXn, and db (3H) = db_hh: what the caller
// used to make after the loop with a cat of dGh's and dXn's columns and a sum over dGh
// (28 ms of a 276 ms forward+backward at B=128, T=100, H=512, 2 threads; session 13). The
// step's [dr, dz, dgh_n] go to a (B, 3H) scratch for the recurrent product. Room for the
// packed weight (pack_fits()): the Python loop's cats, dxp and h_{t-1} (T x B x 4H), which
// this path does not make, less the scratch, plus the product's result and its copy.
template <typename T>
static void gru_bwd_dxp(const Tensor& h0, const Tensor& W_hh, const OptT& m, const Zone<T>& zh,
                        const Sizes& sizes, const Tensor& Ghn, const Tensor& RZ, const Tensor& N,
                        const Tensor& Y, const Tensor& dY, Tensor& dxp, Tensor& dGn, Tensor& dh,
                        Tensor& db) {
  const int64_t T_ = N.size(0), B = N.size(1), H = N.size(2), G = 3 * H;
  const int64_t nt = at::get_num_threads();
  Tensor sums = at::zeros({nt, G}, N.options().dtype(at::kDouble));  // each thread's db
  Tensor dg = at::empty({B, G}, N.options());  // the step's [dr, dz, dgh_n]
  const StepGemm gemm(W_hh.t(), B, false,
                      (T_ * B * 4 * H - B * G + 2 * G * H) * int64_t(sizeof(T)));
  int64_t lv = 0;
  for (int64_t t = T_ - 1; t >= 0; t--) {
    const int64_t n = join_live(sizes, t, B, dh, dY, lv);
    if (n == 0) continue;
    const GruSaved<T> sv(t, B, H, h0, Y, RZ, N, Ghn, dY);
    T *dg0 = ptr<T>(dg), *dx0 = ptr<T>(dxp) + t * B * G, *dgn0 = ptr<T>(dGn) + t * B * H;
    T* dh0 = ptr<T>(dh);
    double* sp = ptr<double>(sums);
    for_units(n, H, GRAIN, [&](int64_t r, int64_t j0, int64_t j1) {
      gru_units_bwd_dxp(sv.rz + r * 2 * H, sv.n + r * H, sv.ghn + r * H, sv.hp + r * H,
                        zh.row(t, r, B, H), sv.dy + r * H, sv.ky, dh0 + r * H, dg0 + r * G,
                        dx0 + r * G, dgn0 + r * H, sp + at::get_thread_num() * G, H, j0, j1);
    });
    add_recur(dh, dg.narrow(0, 0, n), gemm, m, n);
  }
  db.copy_(sums.sum(0));
}

void gru_forward(const Tensor& xp, const Tensor& h0, const Tensor& W_hh, const OptT& b_hh,
                 const OptT& g_hh, const OptT& m, const OptT& ZH, double zh_rate, double eps,
                 const Sizes& sizes, bool save_all, Tensor Ghn, Tensor RZ, Tensor N, Tensor Y,
                 const OptT& V, const OptT& MU, const OptT& RS) {
  RECORD_FUNCTION("rnnkit::compiled::gru_forward", std::vector<c10::IValue>());
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "gru_forward", [&] {
    gru_fwd<scalar_t>(xp, h0, W_hh, b_hh, g_hh, m,
                      Zone<scalar_t>(optr<scalar_t>(ZH), zh_rate, h0.size(1)), scalar_t(eps),
                      sizes, save_all, Ghn, RZ, N, Y, V, MU, RS);
  });
}

void gru_backward(const Tensor& h0, const Tensor& W_hh, const OptT& g_hh, const OptT& m,
                  const OptT& ZH, double zh_rate, const Sizes& sizes, const Tensor& Ghn,
                  const Tensor& RZ, const Tensor& N, const Tensor& Y, const Tensor& dY,
                  Tensor dGh, Tensor dXn, Tensor dh, const OptT& V, const OptT& MU,
                  const OptT& RS, const OptT& dV, const OptT& acc) {
  RECORD_FUNCTION("rnnkit::compiled::gru_backward", std::vector<c10::IValue>());
  AT_DISPATCH_FLOATING_TYPES(N.scalar_type(), "gru_backward", [&] {
    gru_bwd<scalar_t>(h0, W_hh, g_hh, m,
                      Zone<scalar_t>(optr<scalar_t>(ZH), zh_rate, h0.size(1)), sizes, Ghn, RZ,
                      N, Y, dY, dGh, dXn, dh, V, MU, RS, dV, acc);
  });
}

void gru_backward_dxp(const Tensor& h0, const Tensor& W_hh, const OptT& m, const OptT& ZH,
                      double zh_rate, const Sizes& sizes, const Tensor& Ghn, const Tensor& RZ,
                      const Tensor& N, const Tensor& Y, const Tensor& dY, Tensor dxp, Tensor dGn,
                      Tensor dh, Tensor db) {
  RECORD_FUNCTION("rnnkit::compiled::gru_backward_dxp", std::vector<c10::IValue>());
  AT_DISPATCH_FLOATING_TYPES(N.scalar_type(), "gru_backward_dxp", [&] {
    gru_bwd_dxp<scalar_t>(h0, W_hh, m, Zone<scalar_t>(optr<scalar_t>(ZH), zh_rate, h0.size(1)),
                          sizes, Ghn, RZ, N, Y, dY, dxp, dGn, dh, db);
  });
}

}  // namespace rnnkit
