// The LSTM and LayerNorm-LSTM time loops (the math: kernels/fused/lstm.py, layernorm.py;
// the same saved buffers, so the Python backward and this one are interchangeable).
#include "scans.h"

namespace rnnkit {

// One row's units j0..j1-1 of the LSTM step from p = (m h) W_hh^T, x = xp_t and b = b_hh:
// the gates into a, c_t (after zoneout) into c, tanh(c~) into tc, h_t into y.
template <typename T>
static inline void lstm_units(const T* RS_ p, const T* RS_ x, const T* RS_ b, const T* RS_ cp,
                              const T* RS_ hq, const T* RS_ wh, const T* RS_ wc, T zhon,
                              T zcon, T* RS_ a, T* RS_ c, T* RS_ tc, T* RS_ y, int64_t H,
                              int64_t j0, int64_t j1) {
#pragma omp simd
  for (int64_t j = j0; j < j1; j++) {
    const int64_t jf = H + j, jg = 2 * H + j, jo = 3 * H + j;
    T i = sigmoid_(p[j] + x[j] + b[j]), f = sigmoid_(p[jf] + x[jf] + b[jf]);
    T g = tanh_(p[jg] + x[jg] + b[jg]), o = sigmoid_(p[jo] + x[jo] + b[jo]);
    a[j] = i;
    a[H + j] = f;
    a[2 * H + j] = g;
    a[3 * H + j] = o;
    T cn = f * cp[j] + i * g, th = tanh_(cn), hn = o * th;
    T cz = lerp_(cn, cp[j], wc[j]), hz = lerp_(hn, hq[j], wh[j]);
    tc[j] = th;
    c[j] = zcon != T(0) ? cz : cn;
    y[j] = zhon != T(0) ? hz : hn;
  }
}

// Backward of lstm_units: reads dh (gradient of h_t), dc; writes da, dc <- d c_{t-1} and
// dh <- zoneout's kept part of d h_{t-1} + ky dy (dY[t-1]); the GEMM's part comes after.
template <typename T>
static inline void lstm_units_bwd(const T* RS_ a, const T* RS_ tc, const T* RS_ cp,
                                  const T* RS_ dy, const T* RS_ wh, const T* RS_ wc, T ky,
                                  T* RS_ da, T* RS_ dh, T* RS_ dc, int64_t H, int64_t j0,
                                  int64_t j1) {
#pragma omp simd
  for (int64_t j = j0; j < j1; j++) {
    T i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
    T kh = dh[j] * wh[j], kc = dc[j] * wc[j];  // (weights 0 without zoneout)
    T dhv = dh[j] - kh, dcv = dc[j] - kc;
    T d = dcv + dhv * (o - o * tc[j] * tc[j]);
    da[3 * H + j] = dhv * tc[j] * (o - o * o);
    da[j] = d * g * (i - i * i);
    da[H + j] = d * cp[j] * (f - f * f);
    da[2 * H + j] = d * (i - i * g * g);
    dc[j] = d * f + kc;
    dh[j] = kh + ky * dy[j];
  }
}

// ------------------------------------------------------------------ LSTM (no projection)
// The team's LSTM step for units [j0, j0 + n) of one row, from its slice of the product
// v = h_{t-1} W_hh^T (gate block k's units at k * n): lstm_units' math with nothing saved
// (inference). b, x: at unit j0 with gate blocks H apart; cp, hp, wh, wc, c, y: at unit j0.
[[gnu::flatten]]
static inline void lstm_team_units(const float* RS_ v, const float* RS_ b, const float* RS_ x,
                                   const float* RS_ cp, const float* RS_ hp,
                                   const float* RS_ wh, const float* RS_ wc, float zhon,
                                   float zcon, float* RS_ c, float* RS_ y, int64_t H,
                                   int64_t n) {
#pragma omp simd
  for (int64_t j = 0; j < n; j++) {
    auto pre = [&](int64_t k) { return v[k * n + j] + x[k * H + j] + b[k * H + j]; };
    const float i = sigmoid_(pre(0)), f = sigmoid_(pre(1)), g = tanh_(pre(2));
    const float o = sigmoid_(pre(3));
    const float cn = f * cp[j] + i * g, hn = o * tanh_(cn);
    const float cz = lerp_(cn, cp[j], wc[j]), hz = lerp_(hn, hp[j], wh[j]);
    c[j] = zcon != 0.0f ? cz : cn;
    y[j] = zhon != 0.0f ? hz : hn;
  }
}

// lstm_fwd's inference loop on a team of P threads (team_size(); as gru_team without the
// norm): thread q runs the unit slices p = q, q + nq, ...: their product, then the LSTM step
// of those units into C and Y (c_t of a unit needs only its own c_{t-1}); one barrier ends
// each step, when h_t is whole. The gates and tanh(c_t) are not written (inference saves
// nothing). Before it the plain LSTM ran its inference steps on one thread: at B=1, 2 threads,
// 2 layers, H=256 on the 2-core AMD EPYC 0.93-1.02 of torch.nn.LSTM's time in session 17's
// runs before the team (files rewritten since); with it 0.89-0.93 (lstm_auto_amd2_s17.json,
// inference_rules_amd2_s17.json; docs/kernels.md, "The LSTM on the compiled loop").
static void lstm_team(const Tensor& xp, const Tensor& h0, const Tensor& c0, const Tensor& W_hh,
                      const float* bp, const Zone<float>& zh, const Zone<float>& zc, Tensor& C,
                      Tensor& Y, int64_t P) {
  const int64_t T_ = xp.size(0), B = xp.size(1), G = xp.size(2), H = G / 4;
  const TeamGemm gemm(W_hh, B, 4, P);
  const int64_t parts = gemm.parts();
  float *y = ptr<float>(Y), *c = ptr<float>(C);
  const float *x0 = ptr<float>(xp), *h0p = ptr<float>(h0), *c0p = ptr<float>(c0);
  const float zhon = zh.on(), zcon = zc.on();
  TeamBarrier bar(P);
  team_loop(P, [&](int64_t q, int64_t nq) {
    for (int64_t t = 0; t < T_; t++) {
      const float *hp = t ? y + (t - 1) * B * H : h0p, *cp = t ? c + (t - 1) * B * H : c0p;
      for (int64_t p = q; p < parts; p += nq)  // (x_t's slices arrive during the product)
        for (int64_t r = 0; r < B; r++)
          for (int64_t k = 0; k < 4; k++)
            prefetch(x0 + (t * B + r) * G + k * H + gemm.j0(p), gemm.h(p));
      for (int64_t p = q; p < parts; p += nq) {
        const int64_t j0 = gemm.j0(p), n = gemm.h(p);
        const float* vp = gemm.product(p, hp, H);
        for (int64_t r = 0; r < B; r++) {
          const int64_t o = (t * B + r) * H + j0;
          lstm_team_units(vp + r * 4 * n, bp + j0, x0 + (t * B + r) * G + j0,
                          cp + r * H + j0, hp + r * H + j0, zh.row(t, r, B, H) + j0,
                          zc.row(t, r, B, H) + j0, zhon, zcon, c + o, y + o, H, n);
        }
      }
      bar.wait(nq);
    }
  });
}

template <typename T>
static void lstm_fwd(const Tensor& xp, const Tensor& h0, const Tensor& c0, const Tensor& W_hh,
                     const OptT& b_hh, const OptT& m, const Zone<T>& zh, const Zone<T>& zc,
                     const Sizes& sizes, bool keep, Tensor& A, Tensor& C, Tensor& TC,
                     Tensor& Y) {
  const int64_t T_ = xp.size(0), B = xp.size(1), G = xp.size(2), H = G / 4;
  const Tensor bias = has(b_hh) ? *b_hh : at::zeros({G}, xp.options());
  if constexpr (std::is_same_v<T, float>) {
    if (const int64_t P = team_size(W_hh, B, H, !keep, has(m), sizes)) {
      lstm_team(xp, h0, c0, W_hh, ptr<float>(bias), zh, zc, C, Y, P);
      return;
    }
  }
  // (m h) W_hh^T; packed where it has room beside the backward's dA (pack_fits())
  const StepGemm gemm(W_hh, B, keep, T_ * B * G * int64_t(sizeof(T)));
  Tensor hm = at::empty({B, H}, xp.options());
  const T* bp = ptr<T>(bias);
  Tensor hold;
  for (int64_t t = 0; t < T_; t++) {
    const int64_t n = live(sizes, t, B);
    if (n == 0) continue;
    const T* P = forward_product<T>(gemm, Y, h0, t, m, hm, n, hold);  // (n, 4H)
    const T *hpp = t ? ptr<T>(Y) + (t - 1) * B * H : ptr<T>(h0), *xq = ptr<T>(xp) + t * B * G;
    const T* cpp = t ? ptr<T>(C) + (t - 1) * B * H : ptr<T>(c0);
    T *a0 = ptr<T>(A) + t * B * G, *c0p = ptr<T>(C) + t * B * H;
    T *tc0 = ptr<T>(TC) + t * B * H, *y0 = ptr<T>(Y) + t * B * H;
    const T zhon = zh.on(), zcon = zc.on();  // (T, not bool: gcc vectorises)
    for_units(n, H, GRAIN, [&](int64_t r, int64_t j0, int64_t j1) {
      lstm_units(P + r * G, xq + r * G, bp, cpp + r * H, hpp + r * H, zh.row(t, r, B, H),
                 zc.row(t, r, B, H), zhon, zcon, a0 + r * G, c0p + r * H, tc0 + r * H,
                 y0 + r * H, H, j0, j1);
    });
  }
}

template <typename T>
static void lstm_bwd(const Tensor& h0, const Tensor& c0, const Tensor& W_hh, const OptT& m,
                     const Zone<T>& zh, const Zone<T>& zc, const Sizes& sizes, const Tensor& A,
                     const Tensor& C, const Tensor& TC, const Tensor& dY, Tensor& dA,
                     Tensor& dh, Tensor& dc) {
  const int64_t T_ = A.size(0), B = A.size(1), G = A.size(2), H = G / 4;
  // dA W_hh; packed where it has room beside dW_hh's GEMM after the loop (the caller stacks
  // h_{t-1} over all T, then the product and its copy: pack_fits()) and beside W_hh^T, which
  // the Python loop copies for its steps and this loop does not (G x H)
  const StepGemm gemm(W_hh.t(), B, false, (T_ * B * H + 3 * G * H) * int64_t(sizeof(T)));
  int64_t lv = 0;
  for (int64_t t = T_ - 1; t >= 0; t--) {
    const int64_t n = join_live(sizes, t, B, dh, dY, lv);
    if (n == 0) continue;
    const T* cpp = t ? ptr<T>(C) + (t - 1) * B * H : ptr<T>(c0);
    const T *a0 = ptr<T>(A) + t * B * G, *tc0 = ptr<T>(TC) + t * B * H;
    const T* dy0 = t ? ptr<T>(dY) + (t - 1) * B * H : nullptr;
    T *da0 = ptr<T>(dA) + t * B * G, *dh0 = ptr<T>(dh), *dc0 = ptr<T>(dc);
    const T ky = t ? T(1) : T(0);
    for_units(n, H, GRAIN, [&](int64_t r, int64_t j0, int64_t j1) {
      lstm_units_bwd(a0 + r * G, tc0 + r * H, cpp + r * H, dy0 ? dy0 + r * H : tc0 + r * H,
                     zh.row(t, r, B, H), zc.row(t, r, B, H), ky, da0 + r * G, dh0 + r * H,
                     dc0 + r * H, H, j0, j1);
    });
    add_recur(dh, dA[t].narrow(0, 0, n), gemm, m, n);
  }
}

void lstm_forward(const Tensor& xp, const Tensor& h0, const Tensor& c0, const Tensor& W_hh,
                  const OptT& b_hh, const OptT& m, const OptT& ZH, const OptT& ZC,
                  double zh_rate, double zc_rate, const Sizes& sizes, bool keep, Tensor A,
                  Tensor C, Tensor TC, Tensor Y) {
  RECORD_FUNCTION("rnnkit::compiled::lstm_forward", std::vector<c10::IValue>());
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "lstm_forward", [&] {
    lstm_fwd<scalar_t>(xp, h0, c0, W_hh, b_hh, m,
                       Zone<scalar_t>(optr<scalar_t>(ZH), zh_rate, c0.size(1)),
                       Zone<scalar_t>(optr<scalar_t>(ZC), zc_rate, c0.size(1)), sizes, keep, A,
                       C, TC, Y);
  });
}

void lstm_backward(const Tensor& h0, const Tensor& c0, const Tensor& W_hh, const OptT& m,
                   const OptT& ZH, const OptT& ZC, double zh_rate, double zc_rate,
                   const Sizes& sizes, const Tensor& A, const Tensor& C, const Tensor& TC,
                   const Tensor& dY, Tensor dA, Tensor dh, Tensor dc) {
  RECORD_FUNCTION("rnnkit::compiled::lstm_backward", std::vector<c10::IValue>());
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "lstm_backward", [&] {
    lstm_bwd<scalar_t>(h0, c0, W_hh, m,
                       Zone<scalar_t>(optr<scalar_t>(ZH), zh_rate, c0.size(1)),
                       Zone<scalar_t>(optr<scalar_t>(ZC), zc_rate, c0.size(1)), sizes, A, C,
                       TC, dY, dA, dh, dc);
  });
}

// ------------------------------------------------------------------ LayerNorm-LSTM
// Pointers of one row of the LayerNorm-LSTM's buffers.
template <typename T> struct LnRow {
  const T *v, *x, *cp, *hq, *wh, *wc;  // v = (m h) W_hh^T, u_t = W_ih x_t, c_{t-1}, h_{t-1}, zoneout
  T *V, *a, *ct, *tc, *c, *y, *mu, *rs, *muc, *rsc, *mux, *rsx, *pre;  // pre: (4H,) scratch
};

// Forward of one row: the layer norms of u = W_ih x and of v, the gates, c~ and its layer
// norm, h, zoneout. b: b_ih + b_hh.
template <typename T>
[[gnu::flatten]]
static inline void ln_lstm_row(const LnRow<T>& q, const T* RS_ gih, const T* RS_ ghh,
                               const T* RS_ b, const T* RS_ gc, const T* RS_ bc, T eps, T zhon,
                               T zcon, int64_t H) {
  const int64_t G = 4 * H;
  const T *RS_ v = q.v, *RS_ x = q.x, *RS_ cp = q.cp, *RS_ hq = q.hq;
  const T *RS_ wh = q.wh, *RS_ wc = q.wc;
  T *RS_ a = q.a, *RS_ ct = q.ct, *RS_ tc = q.tc, *RS_ y = q.y;
  std::copy(v, v + G, q.V);
  const Moments<T> mv = moments(v, G, eps), mx = moments(x, G, eps);
  const T mu = mv.mu, rs = mv.rs, mux = mx.mu, rsx = mx.rs;
  *q.mu = mu;
  *q.rs = rs;
  *q.mux = mux;
  *q.rsx = rsx;
  T* RS_ p = q.pre;  // (scratch: the gates read one array and write another, or gcc
#pragma omp simd     //  does not vectorise them)
  for (int64_t j = 0; j < G; j++)
    p[j] = (v[j] - mu) * rs * ghh[j] + (x[j] - mux) * rsx * gih[j] + b[j];
#pragma omp simd
  for (int64_t j = 0; j < H; j++) {
    T i = sigmoid_(p[j]), f = sigmoid_(p[H + j]), g = tanh_(p[2 * H + j]);
    T o = sigmoid_(p[3 * H + j]);
    a[j] = i;
    a[H + j] = f;
    a[2 * H + j] = g;
    a[3 * H + j] = o;
  }
#pragma omp simd
  for (int64_t j = 0; j < H; j++) ct[j] = a[H + j] * cp[j] + a[j] * a[2 * H + j];
  const Moments<T> mc = moments(ct, H, eps);
  const T muc = mc.mu, rsc = mc.rs;
  *q.muc = muc;
  *q.rsc = rsc;
#pragma omp simd
  for (int64_t j = 0; j < H; j++) {
    T th = tanh_((ct[j] - muc) * rsc * gc[j] + bc[j]), hn = a[3 * H + j] * th;
    T hz = lerp_(hn, hq[j], wh[j]);
    tc[j] = th;
    y[j] = zhon != T(0) ? hz : hn;
  }
  if (q.c != q.ct) {  // C is CT (no zoneout, saving all steps): nothing to write
    T* RS_ c = q.c;
#pragma omp simd
    for (int64_t j = 0; j < H; j++) {
      T cz = lerp_(ct[j], cp[j], wc[j]);
      c[j] = zcon != T(0) ? cz : ct[j];
    }
  }
}

// ln_lstm_row without the saved activations (inference: no copy of v, no gates, moments or
// tanh(c~) written): the gates straight into o and c~ (o, ct: (H,) scratch), c~'s norm, h, c.
// flatten (here and on ln_lstm_row and ln_lstm_row_bwd): gcc's inlining budget for this file
// can run out before exp_ and the moments are inlined into a row function, and then its loops
// do not vectorise. A helper added to scans.h in session 14 did that to this one (-fopt-info-vec
// lost both loops; a B=1 inference step took 46 us instead of 32), and flattening this one
// alone then did it to ln_lstm_row.
template <typename T>
[[gnu::flatten]]
static inline void ln_lstm_row_inf(const T* RS_ v, const T* RS_ x, const T* RS_ cp,
                                   const T* RS_ hq, const T* RS_ wh, const T* RS_ wc,
                                   const T* RS_ gih, const T* RS_ ghh, const T* RS_ b,
                                   const T* RS_ gc, const T* RS_ bc, T eps, T zhon, T zcon,
                                   T* RS_ o, T* RS_ ct, T* RS_ c, T* RS_ y, int64_t H) {
  const int64_t G = 4 * H;
  const Moments<T> mv = moments(v, G, eps), mx = moments(x, G, eps);
  const T mu = mv.mu, rs = mv.rs, mux = mx.mu, rsx = mx.rs;
  auto pre = [&](int64_t i) {
    return (v[i] - mu) * rs * ghh[i] + (x[i] - mux) * rsx * gih[i] + b[i];
  };
#pragma omp simd
  for (int64_t j = 0; j < H; j++) {
    const T ig = sigmoid_(pre(j)), fg = sigmoid_(pre(H + j)), gg = tanh_(pre(2 * H + j));
    o[j] = sigmoid_(pre(3 * H + j));
    ct[j] = fg * cp[j] + ig * gg;
  }
  const Moments<T> mc = moments(ct, H, eps);
  const T muc = mc.mu, rsc = mc.rs;
#pragma omp simd
  for (int64_t j = 0; j < H; j++) {
    const T th = tanh_((ct[j] - muc) * rsc * gc[j] + bc[j]), hn = o[j] * th;
    const T hz = lerp_(hn, hq[j], wh[j]), cz = lerp_(ct[j], cp[j], wc[j]);
    y[j] = zhon != T(0) ? hz : hn;
    c[j] = zcon != T(0) ? cz : ct[j];
  }
}

// ln_lstm_fwd's inference loop on a team of P threads (team_size(); as gru_team): thread q
// runs the unit slices p = q, q + nq, ...: v's slice (TeamGemm's buffer, read in place) and
// its moments; after a barrier the row's (combined in slice order), the gates, c~ and c_t
// and c~'s slice moments; after a barrier every thread runs c~'s norm and h for the whole row
// into its own copy of h (the input of its next product; Y by slices), so that no third
// barrier ends the step: a thread's next writes (v, its moments) are read by no one before the
// next barrier, and the next writes of what it read (o, c~, their moments) come after it.
// The barriers are TeamBarrier's (libgomp's, three a step, cost about 2.5 us of a 9 us step,
// session 12). (Every thread running the whole row's gates instead, to save the middle
// barrier, measured slower: 31.4 against 29.3 us a step in session 11, 8.00 against 7.50 for
// one layer in session 12.) u's moments are taken for all steps first, split among the
// threads; u_t's slices are fetched during the product.
static void ln_lstm_team(const Tensor& xp, const Tensor& h0, const Tensor& c0,
                         const Tensor& W_hh, const float* gih, const float* bp, const float* ghh,
                         const float* gc, const float* bc, const Zone<float>& zh,
                         const Zone<float>& zc, float eps, Tensor& C, Tensor& Y, int64_t P) {
  const int64_t T_ = xp.size(0), B = xp.size(1), G = xp.size(2), H = G / 4;
  const TeamGemm gemm(W_hh, B, 4, P);
  const int64_t parts = gemm.parts();
  Tensor abuf = at::empty({B, 2 * H}, xp.options()), hbuf = at::empty({P, B, H}, xp.options());
  // each (row, slice)'s moments (count, mean, m2) in its own 64 bytes: the threads write them
  // side by side every step
  constexpr int64_t S = 8;
  std::vector<double> sv(size_t(B * parts * S)), sc(size_t(B * parts * S));
  std::vector<Moments<float>> mx(size_t(T_ * B));
  float *a0 = ptr<float>(abuf), *h1 = ptr<float>(hbuf), *y = ptr<float>(Y), *c = ptr<float>(C);
  const float *x0 = ptr<float>(xp), *h0p = ptr<float>(h0), *c0p = ptr<float>(c0);
  const float zhon = zh.on(), zcon = zc.on();
  TeamBarrier bar(P);
  team_loop(P, [&](int64_t q, int64_t nq) {
    for (int64_t r = q; r < T_ * B; r += nq) mx[r] = moments(x0 + r * G, G, eps);
    float* hq = h1 + q * B * H;  // this thread's h_{t-1}, then h_t
    std::copy(h0p, h0p + B * H, hq);
    bar.wait(nq);
    for (int64_t t = 0; t < T_; t++) {
      const float* cp = t ? c + (t - 1) * B * H : c0p;
      for (int64_t p = q; p < parts; p += nq)  // (u_t's slices arrive during the product)
        for (int64_t r = 0; r < B; r++)
          for (int64_t g = 0; g < 4; g++)
            prefetch(x0 + (t * B + r) * G + g * H + gemm.j0(p), gemm.h(p));
      for (int64_t p = q; p < parts; p += nq) {
        const float* v = gemm.product(p, hq, H);
        const int64_t n = 4 * gemm.h(p);
        for (int64_t r = 0; r < B; r++)  // slice p of row r: n numbers in a row
          slice_stats(v + r * n, n, &sv[(r * parts + p) * S]);
      }
      bar.wait(nq);
      for (int64_t p = q; p < parts; p += nq) {
        const int64_t j0 = gemm.j0(p), hp = gemm.h(p);
        const float* vp = gemm.product_buffer(p);
        for (int64_t r = 0; r < B; r++) {
          const Moments<float> mv = combine_moments(&sv[r * parts * S], parts, eps, S);
          const Moments<float> mu = mx[t * B + r];
          const float *RS_ v = vp + r * 4 * hp, *RS_ x = x0 + (t * B + r) * G + j0;
          const float *RS_ gi = gih + j0, *RS_ gh = ghh + j0, *RS_ bb = bp + j0;
          const float *RS_ cpr = cp + r * H + j0, *RS_ wc = zc.row(t, r, B, H) + j0;
          float *RS_ o = a0 + r * 2 * H + j0, *RS_ ct = o + H;
          float* RS_ cr = c + (t * B + r) * H + j0;
          auto pre = [&](int64_t g, int64_t jj) {  // (gate block g, unit j0 + jj)
            const int64_t i = g * H + jj;
            return (v[g * hp + jj] - mv.mu) * mv.rs * gh[i] + (x[i] - mu.mu) * mu.rs * gi[i] +
                   bb[i];
          };
#pragma omp simd
          for (int64_t jj = 0; jj < hp; jj++) {
            const float ig = sigmoid_(pre(0, jj)), fg = sigmoid_(pre(1, jj));
            const float gg = tanh_(pre(2, jj));
            o[jj] = sigmoid_(pre(3, jj));
            const float cn = fg * cpr[jj] + ig * gg, cz = lerp_(cn, cpr[jj], wc[jj]);
            ct[jj] = cn;
            cr[jj] = zcon != 0.0f ? cz : cn;
          }
          double* st = &sc[(r * parts + p) * S];
          const float m = sum_(ct, hp) / float(hp);
          st[0] = double(hp);
          st[1] = double(m);
          st[2] = double(sqdev_(ct, hp, m));
        }
      }
      bar.wait(nq);
      for (int64_t r = 0; r < B; r++) {  // the whole row, on every thread
        const Moments<float> mc = combine_moments(&sc[r * parts * S], parts, eps, S);
        const float *RS_ o = a0 + r * 2 * H, *RS_ ct = o + H, *RS_ wh = zh.row(t, r, B, H);
        float* RS_ hr = hq + r * H;
#pragma omp simd
        for (int64_t j = 0; j < H; j++) {
          const float th = tanh_((ct[j] - mc.mu) * mc.rs * gc[j] + bc[j]);
          const float hn = o[j] * th, hz = lerp_(hn, hr[j], wh[j]);
          hr[j] = zhon != 0.0f ? hz : hn;
        }
      }
      for (int64_t p = q; p < parts; p += nq)  // (Y: each thread its slices)
        for (int64_t r = 0; r < B; r++) {
          const float* hr = hq + r * H;
          std::copy(hr + gemm.j0(p), hr + gemm.j1(p), y + (t * B + r) * H + gemm.j0(p));
        }
    }
  });
}

template <typename T>
static void ln_lstm_fwd(const Tensor& xp, const Tensor& h0, const Tensor& c0,
                        const Tensor& W_hh, const Tensor& g_ih, const Tensor& b,
                        const Tensor& g_hh, const Tensor& g_c, const Tensor& b_c, const OptT& m,
                        const Zone<T>& zh, const Zone<T>& zc, T eps, const Sizes& sizes,
                        bool save_all, Tensor& V, Tensor& A, Tensor& MU, Tensor& RS,
                        Tensor& MUX, Tensor& RSX, Tensor& CT, Tensor& MUC, Tensor& RSC,
                        Tensor& TC, Tensor& C, Tensor& Y) {
  const int64_t T_ = xp.size(0), B = xp.size(1), G = xp.size(2), H = G / 4;
  if constexpr (std::is_same_v<T, float>) {
    if (const int64_t P = team_size(W_hh, B, H, save_all, has(m), sizes)) {
      ln_lstm_team(xp, h0, c0, W_hh, ptr<float>(g_ih), ptr<float>(b), ptr<float>(g_hh),
                   ptr<float>(g_c), ptr<float>(b_c), zh, zc, eps, C, Y, P);
      return;
    }
  }
  // v = (m h) W_hh^T; in training packed where it has room beside the backward's dU, in
  // inference packed and kept (packed_weight()), except where slices are preferred
  // (slices_take()): there both multiply by oneDNN's brgemm slices, in inference on a kept W^T
  // (transposed_weight()) by raw pointers (rows()). At B=1 on the 2-core AMD EPYC MKL's packed
  // product of 1024 x 256 took 17.9 us, the slices on padded rows 11.0
  // (gemm_pad_amd2_s16.json; docs/kernels.md, "Padded rows")
  const StepGemm gemm(W_hh, B, !save_all, T_ * B * G * int64_t(sizeof(T)));
  Tensor hm = at::empty({B, H}, xp.options());
  const T *gih = ptr<T>(g_ih), *ghh = ptr<T>(g_hh), *bp = ptr<T>(b), *gc = ptr<T>(g_c);
  const T* bc = ptr<T>(b_c);
  T *pV = ptr<T>(V), *pA = ptr<T>(A), *pMU = ptr<T>(MU), *pRS = ptr<T>(RS), *pCT = ptr<T>(CT);
  T *pMUC = ptr<T>(MUC), *pRSC = ptr<T>(RSC), *pTC = ptr<T>(TC), *pC = ptr<T>(C);
  T *pY = ptr<T>(Y), *pMUX = ptr<T>(MUX), *pRSX = ptr<T>(RSX);
  Tensor scratch = at::empty({at::get_num_threads(), G}, xp.options());
  T* psc = ptr<T>(scratch);
  const T zhon = zh.on(), zcon = zc.on();  // (T, not bool: gcc vectorises)
  Tensor hold;
  for (int64_t t = 0; t < T_; t++) {
    const int64_t n = live(sizes, t, B);
    if (n == 0) continue;
    const int64_t s = save_all ? t : 0;  // the saved activations' step (one row: inference)
    const T* hpp = t ? pY + (t - 1) * B * H : ptr<T>(h0);
    const T* xq = ptr<T>(xp) + t * B * G;
    if (!save_all && n * G <= 4096) prefetch(xq, n * G);  // (u_t arrives during the product)
    const T* vp = forward_product<T>(gemm, Y, h0, t, m, hm, n, hold);  // v, (n, 4H)
    const T* cpp = t ? pC + (t - 1) * B * H : ptr<T>(c0);
    if (!save_all) {  // inference: nothing saved
      for_rows(n, G, [&](int64_t r) {
        T* o = psc + at::get_thread_num() * G;  // (o and c~: 2H of the thread's G)
        ln_lstm_row_inf(vp + r * G, xq + r * G, cpp + r * H, hpp + r * H, zh.row(t, r, B, H),
                        zc.row(t, r, B, H), gih, ghh, bp, gc, bc, eps, zhon, zcon, o, o + H,
                        pC + (t * B + r) * H, pY + (t * B + r) * H, H);
      });
      continue;
    }
    for_rows(n, G, [&](int64_t r) {
      const int64_t ss = s * B + r, tt = t * B + r;
      LnRow<T> q{vp + r * G, xq + r * G, cpp + r * H, hpp + r * H, zh.row(t, r, B, H),
                 zc.row(t, r, B, H), pV + ss * G, pA + ss * G, pCT + ss * H, pTC + ss * H,
                 pC + tt * H, pY + tt * H, pMU + ss, pRS + ss, pMUC + ss, pRSC + ss,
                 pMUX + ss, pRSX + ss, psc + at::get_thread_num() * G};
      ln_lstm_row(q, gih, ghh, bp, gc, bc, eps, zhon, zcon, H);
    });
  }
}

// Backward of one row at step t: reads dh (gradient of h_t), dc; writes du (through the
// norm of u = W_ih x), dv (through the norm of v), dc <- d c_{t-1}, dh <- zoneout's kept
// part + dy; adds the row's gain and bias gradients to acc = [g_hh, b_hh, g_c, b_c, g_ih,
// b_ih]. sc: four (H,) and one (4H,) scratch rows (the last: the gates' gradient).
template <typename T>
[[gnu::flatten]]
static inline void ln_lstm_row_bwd(const T* RS_ a, const T* RS_ tc, const T* RS_ cp,
                                   const T* RS_ ct, T muc, T rsc, const T* RS_ v, T mu, T rs,
                                   const T* RS_ u, T mux, T rsx, const T* RS_ gih,
                                   const T* RS_ ghh, const T* RS_ gc, const T* RS_ wh,
                                   const T* RS_ wc, const T* RS_ dy, T ky, T* RS_ du,
                                   T* RS_ dv, T* RS_ dh, T* RS_ dc, T* RS_ sc, T* RS_ acc,
                                   int64_t H) {
  const int64_t G = 4 * H;
  T *RS_ dlc = sc, *RS_ dct = sc + H, *RS_ kh = sc + 2 * H, *RS_ kc = sc + 3 * H;
  T* RS_ da = sc + 4 * H;
#pragma omp simd
  for (int64_t j = 0; j < H; j++) {
    T o = a[3 * H + j];
    kh[j] = dh[j] * wh[j];  // (weights 0 without zoneout)
    kc[j] = dc[j] * wc[j];
    T d = dh[j] - kh[j];
    dc[j] -= kc[j];
    da[3 * H + j] = d * tc[j] * (o - o * o);
    dlc[j] = d * (o - o * tc[j] * tc[j]);
  }
  ln_grad(dlc, ct, gc, muc, rsc, H, dct, acc + 2 * G, acc + 2 * G + H);
#pragma omp simd
  for (int64_t j = 0; j < H; j++) {
    T i = a[j], f = a[H + j], g = a[2 * H + j], d = dc[j] + dct[j];
    da[j] = d * g * (i - i * i);
    da[H + j] = d * cp[j] * (f - f * f);
    da[2 * H + j] = d * (i - i * g * g);
    dc[j] = d * f + kc[j];
  }
  ln_grad(da, v, ghh, mu, rs, G, dv, acc, acc + G);
  ln_grad(da, u, gih, mux, rsx, G, du, acc + 2 * G + 2 * H, acc + 3 * G + 2 * H);
#pragma omp simd
  for (int64_t j = 0; j < H; j++) dh[j] = kh[j] + ky * dy[j];
}

template <typename T>
static int64_t ln_lstm_bwd(const Tensor& c0, const Tensor& W_hh, const Tensor& g_ih,
                           const Tensor& g_hh, const Tensor& g_c, const OptT& m,
                           const Zone<T>& zh, const Zone<T>& zc, const Sizes& sizes, int64_t b0,
                           int64_t b1, int64_t lv, const Tensor& U, const Tensor& MUX,
                           const Tensor& RSX, const Tensor& A, const Tensor& V,
                           const Tensor& MU, const Tensor& RS, const Tensor& CT,
                           const Tensor& MUC, const Tensor& RSC, const Tensor& TC,
                           const Tensor& C, const Tensor& dY, Tensor& dU, Tensor& dV, Tensor& dh,
                           Tensor& dc, Tensor& acc) {
  const int64_t B = A.size(1), G = A.size(2), H = G / 4, K = 4 * G + 2 * H;
  const int64_t nt = at::get_num_threads();
  // per thread: the gains' and biases' gradients [g_hh, b_hh, g_c, b_c, g_ih, b_ih] in
  // double, and four (H,) and one (4H,) scratch rows
  Tensor sums = at::zeros({nt, K}, A.options().dtype(at::kDouble));
  Tensor scratch = at::empty({nt, 4 * H + G}, A.options());
  // dv W_hh. Packed where it has room (pack_fits()): beside the block's dW_hh GEMM after the
  // call (h_{t-1} stacked for the block that starts at 0, then the product and its copy), or
  // beside the whole-sequence (T, B, 4H) input layer-norm gradient that the Python loop makes
  // after its loop where this loop has the caller's dV, a block of dV.size(0) steps (less a
  // margin of two weights)
  const int64_t T_ = A.size(0), k = b1 - b0, span = dV.size(0);
  const int64_t room = std::max((b0 == 0 ? k * B * H : 0) + 2 * G * H,
                                (T_ - span) * B * G - 2 * G * H);
  const StepGemm gemm(W_hh.t(), B, false, room * int64_t(sizeof(T)));
  Tensor parts = at::empty({nt, K}, A.options());
  const T *gih = ptr<T>(g_ih), *ghh = ptr<T>(g_hh), *gc = ptr<T>(g_c), *pA = ptr<T>(A);
  const T *pTC = ptr<T>(TC), *pU = ptr<T>(U), *pMUX = ptr<T>(MUX), *pRSX = ptr<T>(RSX);
  const T *pCT = ptr<T>(CT), *pMUC = ptr<T>(MUC), *pRSC = ptr<T>(RSC), *pV = ptr<T>(V);
  const T *pMU = ptr<T>(MU), *pRS = ptr<T>(RS);
  T *pdU = ptr<T>(dU), *pdV = ptr<T>(dV), *pdh = ptr<T>(dh), *pdc = ptr<T>(dc);
  T* psc = ptr<T>(scratch);
  double* psums = ptr<double>(sums);
  for (int64_t t = b1 - 1; t >= b0; t--) {
    const int64_t n = join_live(sizes, t, B, dh, dY, lv);
    if (n == 0) continue;
    const T* cpp = t ? ptr<T>(C) + (t - 1) * B * H : ptr<T>(c0);
    const T* dy0 = t ? ptr<T>(dY) + (t - 1) * B * H : pTC;  // (pTC: read, times 0)
    const T ky = t ? T(1) : T(0);
    for_rows_summed(n, G, K, ptr<T>(parts), psums, [&](int64_t r, int64_t tid, T* part) {
      const int64_t tt = t * B + r, kk = (t - b0) * B + r;
      ln_lstm_row_bwd(pA + tt * G, pTC + tt * H, cpp + r * H, pCT + tt * H, pMUC[tt],
                      pRSC[tt], pV + tt * G, pMU[tt], pRS[tt], pU + tt * G, pMUX[tt],
                      pRSX[tt], gih, ghh, gc, zh.row(t, r, B, H), zc.row(t, r, B, H),
                      dy0 + r * H, ky, pdU + tt * G, pdV + kk * G, pdh + r * H, pdc + r * H,
                      psc + tid * (4 * H + G), part, H);
    });
    add_recur(dh, dV[t - b0].narrow(0, 0, n), gemm, m, n);
  }
  acc.add_(sums.sum(0));
  return lv;
}

void ln_lstm_forward(const Tensor& u, const Tensor& h0, const Tensor& c0, const Tensor& W_hh,
                     const Tensor& g_ih, const Tensor& b, const Tensor& g_hh, const Tensor& g_c,
                     const Tensor& b_c, const OptT& m, const OptT& ZH, const OptT& ZC,
                     double zh_rate, double zc_rate, double eps, const Sizes& sizes,
                     bool save_all, Tensor V, Tensor A, Tensor MU, Tensor RS, Tensor MUX,
                     Tensor RSX, Tensor CT, Tensor MUC, Tensor RSC, Tensor TC, Tensor C,
                     Tensor Y) {
  RECORD_FUNCTION("rnnkit::compiled::ln_lstm_forward", std::vector<c10::IValue>());
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "ln_lstm_forward", [&] {
    ln_lstm_fwd<scalar_t>(u, h0, c0, W_hh, g_ih, b, g_hh, g_c, b_c, m,
                          Zone<scalar_t>(optr<scalar_t>(ZH), zh_rate, c0.size(1)),
                          Zone<scalar_t>(optr<scalar_t>(ZC), zc_rate, c0.size(1)),
                          scalar_t(eps), sizes, save_all, V, A, MU, RS, MUX, RSX, CT, MUC, RSC,
                          TC, C, Y);
  });
}

int64_t ln_lstm_backward(const Tensor& c0, const Tensor& W_hh, const Tensor& g_ih,
                         const Tensor& g_hh, const Tensor& g_c, const OptT& m, const OptT& ZH,
                         const OptT& ZC, double zh_rate, double zc_rate, const Sizes& sizes,
                         int64_t b0, int64_t b1, int64_t live_rows, const Tensor& U,
                         const Tensor& MUX, const Tensor& RSX, const Tensor& A,
                         const Tensor& V, const Tensor& MU, const Tensor& RS, const Tensor& CT,
                         const Tensor& MUC, const Tensor& RSC, const Tensor& TC,
                         const Tensor& C, const Tensor& dY, Tensor dU, Tensor dV, Tensor dh,
                         Tensor dc, Tensor acc) {
  int64_t out = 0;
  RECORD_FUNCTION("rnnkit::compiled::ln_lstm_backward", std::vector<c10::IValue>());
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "ln_lstm_backward", [&] {
    out = ln_lstm_bwd<scalar_t>(c0, W_hh, g_ih, g_hh, g_c, m,
                                Zone<scalar_t>(optr<scalar_t>(ZH), zh_rate, c0.size(1)),
                                Zone<scalar_t>(optr<scalar_t>(ZC), zc_rate, c0.size(1)), sizes,
                                b0, b1, live_rows, U, MUX, RSX, A, V, MU, RS, CT, MUC, RSC, TC,
                                C, dY, dU, dV, dh, dc, acc);
  });
  return out;
}

}  // namespace rnnkit
