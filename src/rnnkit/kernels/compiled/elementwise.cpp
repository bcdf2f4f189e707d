// The elementwise recurrences' whole loops: QRNN pooling (f, fo, ifo), minGRU, minLSTM, SRU
// and IndRNN (the math: kernels/fused/gated.py, elementwise.py; the same inputs, outputs and
// saved buffers as their Python scans).
//
// Their state update is elementwise, so a unit of one row never waits for another: each
// task of at::parallel_for takes a block of rows (or, with few rows, of one row's units) and
// runs the whole time loop on it, step-major (a step's numbers of a row are contiguous),
// forward, and backward from each row's last step, with the gates recomputed from the
// pre-activations (nothing but the states is saved) and no temporaries. The Python
// scans instead run one op per step over all units, and compute the gates a chunk of steps
// at a time (docs/kernels.md, "The zoo cells").
#include "scans.h"

namespace rnnkit {

namespace {

// f(r0, r1, j0, j1) over blocks of rows and units that cover the (B, H) state, split among
// torch's threads: each call runs its own whole time loop. Whole rows where there are rows
// enough for every thread (a step's numbers of one row are contiguous: the loads stream),
// else blocks of at least 16 units.
template <typename F>
inline void for_blocks(int64_t B, int64_t H, const F& f) {
  const int64_t nt = at::get_num_threads();
  const int64_t per_row = std::min<int64_t>(std::max<int64_t>(1, (4 * nt + B - 1) / B),
                                            std::max<int64_t>(1, H / 16));
  const int64_t width = (H + per_row - 1) / per_row;
  const int64_t nb = (H + width - 1) / width;
  // rows per task: about 4 tasks per thread
  const int64_t rows = nb > 1 ? 1 : std::max<int64_t>(1, B / (4 * nt));
  const int64_t nr = (B + rows - 1) / rows;
  at::parallel_for(0, nr * nb, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      const int64_t q = i / nb, j0 = (i - q * nb) * width;
      f(q * rows, std::min(B, (q + 1) * rows), j0, std::min(H, j0 + width));
    }
  });
}

// Row r's number of steps: its last step + 1 (`last` empty: every row has all T).
inline int64_t steps_of(const Sizes& last, int64_t r, int64_t T_) {
  return last.empty() ? T_ : last[r] + 1;
}

// minGRU/minLSTM's g: x + 1/2 for x >= 0, sigmoid(x) below, and its derivative.
template <typename T> inline T gmin(T x) { return x >= T(0) ? x + T(0.5) : sigmoid_(x); }
template <typename T> inline T gmin_grad(T x) {
  const T s = sigmoid_(x);
  return x >= T(0) ? T(1) : s * (T(1) - s);
}

enum Kind : int64_t { MINGRU = 0, MINLSTM = 1, QRNN_F = 2, QRNN_FO = 3, QRNN_IFO = 4 };

constexpr int64_t gates_of(int64_t kind) {
  return kind == MINGRU || kind == QRNN_F ? 2 : (kind == QRNN_IFO ? 4 : 3);
}
constexpr bool has_out(int64_t kind) { return kind == QRNN_FO || kind == QRNN_IFO; }

// The coefficients of s_t = a s_{t-1} + b (and QRNN's output gate o) from unit j's
// pre-activations u[j], u[H + j], ... (kernels/fused/gated.py's table).
template <int64_t K, typename T>
inline void coeffs(const T* RS_ u, int64_t H, int64_t j, T& a, T& b, T& o) {
  if constexpr (K == MINGRU) {
    const T z = sigmoid_(u[j]);
    a = T(1) - z;
    b = z * gmin(u[H + j]);
    o = T(1);
  } else if constexpr (K == MINLSTM) {
    const T f = sigmoid_(u[j]), i = sigmoid_(u[H + j]), s = f + i;
    a = f / s;
    b = i / s * gmin(u[2 * H + j]);
    o = T(1);
  } else {
    const T z = tanh_(u[j]), f = sigmoid_(u[H + j]);
    a = f;
    o = K == QRNN_F ? T(1) : sigmoid_(u[2 * H + j]);
    b = K == QRNN_IFO ? sigmoid_(u[3 * H + j]) * z : (T(1) - f) * z;
  }
}

// Unit j's gradients of the pre-activations from those of a, b (and o), into du.
template <int64_t K, typename T>
inline void coeffs_grad(const T* RS_ u, int64_t H, int64_t j, T da, T db, T dout,
                        T* RS_ du) {
  if constexpr (K == MINGRU) {
    const T z = sigmoid_(u[j]), x = u[H + j], g = gmin(x);
    du[j] = (db * g - da) * (z * (T(1) - z));
    du[H + j] = db * z * gmin_grad(x);
  } else if constexpr (K == MINLSTM) {
    const T f = sigmoid_(u[j]), i = sigmoid_(u[H + j]), s = f + i;
    const T x = u[2 * H + j], g = gmin(x), q = (db * g - da) / (s * s);
    du[j] = -(q * i) * (f * (T(1) - f));
    du[H + j] = q * f * (i * (T(1) - i));
    du[2 * H + j] = db * i / s * gmin_grad(x);
  } else {
    const T z = tanh_(u[j]), f = sigmoid_(u[H + j]);
    T df, dz;
    if constexpr (K == QRNN_IFO) {
      const T i = sigmoid_(u[3 * H + j]);
      df = da;
      dz = db * i;
      du[3 * H + j] = db * z * (i * (T(1) - i));
    } else {
      df = da - db * z;
      dz = (T(1) - f) * db;
    }
    du[j] = dz * (T(1) - z * z);
    du[H + j] = df * (f * (T(1) - f));
    if constexpr (has_out(K)) {
      const T o = sigmoid_(u[2 * H + j]);
      du[2 * H + j] = dout * (o * (T(1) - o));
    }
  }
}

// Forward: states Hs (T, B, H) and, with an output gate, outputs Y = o * c~_t where
// c~_t = a c_{t-1} + b is the un-zoned new state (zoneout: a' = a + k (1 - a), b' = (1-k) b).
template <int64_t K, typename T>
void gated_fwd(const Tensor& u, const Tensor& s0, const Zone<T>& zk, const Sizes& last,
               Tensor& Hs, Tensor& Y) {
  const int64_t T_ = u.size(0), B = u.size(1), H = s0.size(1), GH = gates_of(K) * H;
  const T *u0 = ptr<T>(u), *s00 = ptr<T>(s0);
  T *hs0 = ptr<T>(Hs), *y0 = has_out(K) ? ptr<T>(Y) : nullptr;
  const T zoned = zk.on();
  for_blocks(B, H, [&](int64_t r0, int64_t r1, int64_t j0, int64_t j1) {
    // step-major over the block's rows, sorted by length: at step t rows r0.. until the
    // first that has ended
    const int64_t tn = steps_of(last, r0, T_);
    for (int64_t t = 0; t < tn; t++)
      for (int64_t r = r0; r < r1 && t < steps_of(last, r, T_); r++) {
        const T* RS_ ut = u0 + (t * B + r) * GH;
        const T* RS_ sp = t ? hs0 + ((t - 1) * B + r) * H : s00 + r * H;
        const T* RS_ k = zk.row(t, r, B, H);
        T* RS_ hs = hs0 + (t * B + r) * H;
#pragma omp simd
        for (int64_t j = j0; j < j1; j++) {
          T a, b, o;
          coeffs<K>(ut, H, j, a, b, o);
          const T kk = k[j], sn = (a + kk * (T(1) - a)) * sp[j] + (T(1) - kk) * b;
          hs[j] = sn;
          if constexpr (has_out(K))
            y0[(t * B + r) * H + j] = o * (zoned != T(0) ? a * sp[j] + b : sn);
        }
      }
  });
}

// Backward from each row's last step (the batch is sorted by length, longest first): ds
// (B, H) enters with the final states' gradients and leaves with s0's; du (T, B, G*H) gets
// every step's (0 past a row's end).
template <int64_t K, typename T>
void gated_bwd(const Tensor& u, const Tensor& s0, const Zone<T>& zk, const Sizes& last,
               const Tensor& Hs, const OptT& dY, Tensor& du, Tensor& ds) {
  const int64_t T_ = u.size(0), B = u.size(1), H = s0.size(1), GH = gates_of(K) * H;
  const T *u0 = ptr<T>(u), *s00 = ptr<T>(s0), *hs0 = ptr<T>(Hs), *dy0 = optr<T>(dY);
  T *du0 = ptr<T>(du), *ds0 = ptr<T>(ds);
  const std::vector<T> zero(H, T(0));
  const T zoned = zk.on();
  for_blocks(B, H, [&](int64_t r0, int64_t r1, int64_t j0, int64_t j1) {
    for (int64_t r = r0; r < r1; r++)
      for (int64_t t = steps_of(last, r, T_); t < T_; t++)
        for (int64_t g = 0; g < gates_of(K); g++)
          std::fill(du0 + (t * B + r) * GH + g * H + j0, du0 + (t * B + r) * GH + g * H + j1,
                    T(0));
    const int64_t tn = steps_of(last, r0, T_);
    for (int64_t t = tn - 1; t >= 0; t--)
      for (int64_t r = r0; r < r1 && t < steps_of(last, r, T_); r++) {
        T* RS_ cr = ds0 + r * H;  // the gradient reaching s_t from the steps after it
        const T* RS_ ut = u0 + (t * B + r) * GH;
        const T* RS_ sp = t ? hs0 + ((t - 1) * B + r) * H : s00 + r * H;
        const T* RS_ hs = hs0 + (t * B + r) * H;
        const T* RS_ gy = dy0 ? dy0 + (t * B + r) * H : zero.data();
        const T* RS_ k = zk.row(t, r, B, H);
        T* RS_ dut = du0 + (t * B + r) * GH;
#pragma omp simd
        for (int64_t j = j0; j < j1; j++) {
          T a, b, o;
          coeffs<K>(ut, H, j, a, b, o);
          const T kk = k[j], one_k = T(1) - kk, g = gy[j];
          T direct = g, q = T(0), dax = T(0), dbx = T(0), dout = T(0);
          if constexpr (has_out(K)) {  // y = o c~, c~ = s_t unless zoned
            const T cn = zoned != T(0) ? a * sp[j] + b : hs[j], dc = g * o;
            dout = g * cn;
            direct = zoned != T(0) ? T(0) : dc;
            q = zoned != T(0) ? a * dc : T(0);
            dax = zoned != T(0) ? dc * sp[j] : T(0);
            dbx = zoned != T(0) ? dc : T(0);
          }
          const T dS = direct + cr[j];
          cr[j] = (a + kk * (T(1) - a)) * dS + q;
          coeffs_grad<K>(ut, H, j, dS * sp[j] * one_k + dax, dS * one_k + dbx, dout, dut);
        }
      }
  });
}

// SRU over xp = [x~, a_f, a_r, x^] (T, B, 4H), v = [v_f, v_r] (2H):
//   f = sigmoid(a_f + v_f c_{t-1}), c~ = lerp(x~, c_{t-1}, f), c_t = lerp(c~, c_{t-1}, k),
//   r = sigmoid(a_r + v_r c_{t-1}), h = lerp(x^, c~, r).
template <typename T>
void sru_fwd(const Tensor& xp, const Tensor& v, const Tensor& c0, const Zone<T>& zk,
             const Sizes& last, Tensor& C, Tensor& Y) {
  const int64_t T_ = xp.size(0), B = xp.size(1), H = c0.size(1);
  const T *x0 = ptr<T>(xp), *vp = ptr<T>(v), *c00 = ptr<T>(c0);
  T *C0 = ptr<T>(C), *y0 = ptr<T>(Y);
  for_blocks(B, H, [&](int64_t r0, int64_t r1, int64_t j0, int64_t j1) {
    // step-major over the block's rows, sorted by length: at step t rows r0.. until the
    // first that has ended
    const int64_t tn = steps_of(last, r0, T_);
    for (int64_t t = 0; t < tn; t++)
      for (int64_t r = r0; r < r1 && t < steps_of(last, r, T_); r++) {
        const T* RS_ x = x0 + (t * B + r) * 4 * H;
        const T* RS_ cp = t ? C0 + ((t - 1) * B + r) * H : c00 + r * H;
        const T* RS_ k = zk.row(t, r, B, H);
        T *RS_ c = C0 + (t * B + r) * H, *RS_ y = y0 + (t * B + r) * H;
#pragma omp simd
        for (int64_t j = j0; j < j1; j++) {
          const T p = cp[j], f = sigmoid_(x[H + j] + vp[j] * p);
          const T rr = sigmoid_(x[2 * H + j] + vp[H + j] * p), ct = lerp_(x[j], p, f);
          c[j] = lerp_(ct, p, k[j]);
          y[j] = lerp_(x[3 * H + j], ct, rr);
        }
      }
  });
}

// SRU's backward: J~ = d c~ / d c_{t-1} = f + (c_{t-1} - x~) f (1 - f) v_f,
// J = k + (1 - k) J~, and beside the state path the gradient reaching c_{t-1} through r
// (and, zoned, through the output's c~). dv (B, 2H, float64) gets each row's v gradient.
template <typename T>
void sru_bwd(const Tensor& xp, const Tensor& v, const Tensor& c0, const Zone<T>& zk,
             const Sizes& last, const Tensor& C, const OptT& dY, Tensor& dxp, Tensor& dc,
             Tensor& dv) {
  const int64_t T_ = xp.size(0), B = xp.size(1), H = c0.size(1);
  const T *x0 = ptr<T>(xp), *vp = ptr<T>(v), *c00 = ptr<T>(c0), *C0 = ptr<T>(C);
  const T* dy0 = optr<T>(dY);
  T *dx0 = ptr<T>(dxp), *dc0 = ptr<T>(dc);
  double* dv0 = ptr<double>(dv);
  const std::vector<T> zero(H, T(0));
  const T zoned = zk.on();
  for_blocks(B, H, [&](int64_t r0, int64_t r1, int64_t j0, int64_t j1) {
    for (int64_t r = r0; r < r1; r++)
      for (int64_t t = steps_of(last, r, T_); t < T_; t++)
        for (int64_t g = 0; g < 4; g++)
          std::fill(dx0 + (t * B + r) * 4 * H + g * H + j0,
                    dx0 + (t * B + r) * 4 * H + g * H + j1, T(0));
    const int64_t tn = steps_of(last, r0, T_);
    for (int64_t t = tn - 1; t >= 0; t--)
      for (int64_t r = r0; r < r1 && t < steps_of(last, r, T_); r++) {
        T* RS_ cr = dc0 + r * H;
        double *RS_ dvf = dv0 + r * 2 * H, *RS_ dvr = dvf + H;
        const T* RS_ x = x0 + (t * B + r) * 4 * H;
        const T* RS_ cp = t ? C0 + ((t - 1) * B + r) * H : c00 + r * H;
        const T* RS_ gy = dy0 ? dy0 + (t * B + r) * H : zero.data();
        const T* RS_ k = zk.row(t, r, B, H);
        T* RS_ dx = dx0 + (t * B + r) * 4 * H;
#pragma omp simd
        for (int64_t j = j0; j < j1; j++) {
          const T p = cp[j], f = sigmoid_(x[H + j] + vp[j] * p);
          const T rr = sigmoid_(x[2 * H + j] + vp[H + j] * p), ct = lerp_(x[j], p, f);
          const T dfp = (p - x[j]) * (f * (T(1) - f)), Jt = f + dfp * vp[j];
          const T kk = k[j], J = (T(1) - kk) * Jt + kk, dh = gy[j];
          const T dco = dh * rr, dar = (ct - x[3 * H + j]) * dh * (rr * (T(1) - rr));
          const T q = dar * vp[H + j] + (zoned != T(0) ? dco * Jt : T(0));
          const T dS = (zoned != T(0) ? T(0) : dco) + cr[j];
          cr[j] = J * dS + q;
          const T dct = zoned != T(0) ? dS * (T(1) - kk) + dco : dS;
          dx[j] = dct * (T(1) - f);
          dx[H + j] = dct * dfp;
          dx[2 * H + j] = dar;
          dx[3 * H + j] = dh * (T(1) - rr);
          dvf[j] += double(dct * dfp * p);
          dvr[j] += double(dar * p);
        }
      }
  });
}

// IndRNN: a = relu(xp + w h_{t-1}) (A), h_t = lerp(a, h_{t-1}, k) (Y; A is Y unzoned).
// w is (H,) or, with recurrent dropout, (B, H).
template <typename T>
void indrnn_fwd(const Tensor& xp, const Tensor& w, const Tensor& h0, const Zone<T>& zk,
                const Sizes& last, Tensor& A, Tensor& Y) {
  const int64_t T_ = xp.size(0), B = xp.size(1), H = h0.size(1);
  const int64_t ws = w.dim() == 2 ? H : 0;
  const T *x0 = ptr<T>(xp), *wp = ptr<T>(w), *h00 = ptr<T>(h0);
  T *a0 = ptr<T>(A), *y0 = ptr<T>(Y);
  const bool zoned = zk.on();
  for_blocks(B, H, [&](int64_t r0, int64_t r1, int64_t j0, int64_t j1) {
    // step-major over the block's rows, sorted by length: at step t rows r0.. until the
    // first that has ended
    const int64_t tn = steps_of(last, r0, T_);
    for (int64_t t = 0; t < tn; t++)
      for (int64_t r = r0; r < r1 && t < steps_of(last, r, T_); r++) {
        const T* RS_ wr = wp + r * ws;
        const T* RS_ x = x0 + (t * B + r) * H;
        const T* RS_ hp = t ? y0 + ((t - 1) * B + r) * H : h00 + r * H;
        T* RS_ a = a0 + (t * B + r) * H;
#pragma omp simd
        for (int64_t j = j0; j < j1; j++) a[j] = std::max(x[j] + wr[j] * hp[j], T(0));
        if (!zoned) continue;
        const T* RS_ k = zk.row(t, r, B, H);
        T* RS_ y = y0 + (t * B + r) * H;
#pragma omp simd
        for (int64_t j = j0; j < j1; j++) y[j] = lerp_(a[j], hp[j], k[j]);
      }
  });
}

// IndRNN's backward: J = k + (1 - k) [a > 0] w; dxp = (1 - k) [a > 0] dS; dw (B, H,
// float64) gets sum_t dxp h_{t-1} per row.
template <typename T>
void indrnn_bwd(const Tensor& w, const Tensor& h0, const Zone<T>& zk, const Sizes& last,
                const Tensor& A, const Tensor& Y, const OptT& dY, Tensor& dxp, Tensor& dh,
                Tensor& dw) {
  const int64_t T_ = A.size(0), B = A.size(1), H = h0.size(1);
  const int64_t ws = w.dim() == 2 ? H : 0;
  const T *wp = ptr<T>(w), *h00 = ptr<T>(h0), *a0 = ptr<T>(A), *y0 = ptr<T>(Y);
  const T* dy0 = optr<T>(dY);
  T *dx0 = ptr<T>(dxp), *dh0 = ptr<T>(dh);
  double* dw0 = ptr<double>(dw);
  const std::vector<T> zero(H, T(0));
  for_blocks(B, H, [&](int64_t r0, int64_t r1, int64_t j0, int64_t j1) {
    for (int64_t r = r0; r < r1; r++)
      for (int64_t t = steps_of(last, r, T_); t < T_; t++)
        std::fill(dx0 + (t * B + r) * H + j0, dx0 + (t * B + r) * H + j1, T(0));
    const int64_t tn = steps_of(last, r0, T_);
    for (int64_t t = tn - 1; t >= 0; t--)
      for (int64_t r = r0; r < r1 && t < steps_of(last, r, T_); r++) {
        const T* RS_ wr = wp + r * ws;
        T* RS_ cr = dh0 + r * H;
        double* RS_ dwr = dw0 + r * H;
        const T* RS_ a = a0 + (t * B + r) * H;
        const T* RS_ hp = t ? y0 + ((t - 1) * B + r) * H : h00 + r * H;
        const T* RS_ gy = dy0 ? dy0 + (t * B + r) * H : zero.data();
        const T* RS_ k = zk.row(t, r, B, H);
        T* RS_ dx = dx0 + (t * B + r) * H;
#pragma omp simd
        for (int64_t j = j0; j < j1; j++) {
          const T one_k = T(1) - k[j], pos = a[j] > T(0) ? one_k : T(0);
          const T dS = gy[j] + cr[j], dpre = dS * pos;
          cr[j] = (pos * wr[j] + k[j]) * dS;
          dx[j] = dpre;
          dwr[j] += double(dpre * hp[j]);
        }
      }
  });
}

}  // namespace

// ------------------------------------------------------------------ entry points
void gated_forward(int64_t kind, const Tensor& u, const Tensor& s0, const OptT& Z, double rate,
                   const Sizes& last, Tensor Hs, Tensor Y) {
  RECORD_FUNCTION("rnnkit::compiled::gated_forward", std::vector<c10::IValue>());
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "gated_forward", [&] {
    using T = scalar_t;
    const Zone<T> zk(optr<T>(Z), rate, s0.size(1));
    switch (kind) {
      case MINGRU: gated_fwd<MINGRU, T>(u, s0, zk, last, Hs, Y); break;
      case MINLSTM: gated_fwd<MINLSTM, T>(u, s0, zk, last, Hs, Y); break;
      case QRNN_F: gated_fwd<QRNN_F, T>(u, s0, zk, last, Hs, Y); break;
      case QRNN_FO: gated_fwd<QRNN_FO, T>(u, s0, zk, last, Hs, Y); break;
      case QRNN_IFO: gated_fwd<QRNN_IFO, T>(u, s0, zk, last, Hs, Y); break;
      default: TORCH_CHECK(false, "gated_forward: unknown kind ", kind);
    }
  });
}

void gated_backward(int64_t kind, const Tensor& u, const Tensor& s0, const OptT& Z, double rate,
                    const Sizes& last, const Tensor& Hs, const OptT& dY, Tensor du, Tensor ds) {
  RECORD_FUNCTION("rnnkit::compiled::gated_backward", std::vector<c10::IValue>());
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "gated_backward", [&] {
    using T = scalar_t;
    const Zone<T> zk(optr<T>(Z), rate, s0.size(1));
    switch (kind) {
      case MINGRU: gated_bwd<MINGRU, T>(u, s0, zk, last, Hs, dY, du, ds); break;
      case MINLSTM: gated_bwd<MINLSTM, T>(u, s0, zk, last, Hs, dY, du, ds); break;
      case QRNN_F: gated_bwd<QRNN_F, T>(u, s0, zk, last, Hs, dY, du, ds); break;
      case QRNN_FO: gated_bwd<QRNN_FO, T>(u, s0, zk, last, Hs, dY, du, ds); break;
      case QRNN_IFO: gated_bwd<QRNN_IFO, T>(u, s0, zk, last, Hs, dY, du, ds); break;
      default: TORCH_CHECK(false, "gated_backward: unknown kind ", kind);
    }
  });
}

void sru_forward(const Tensor& xp, const Tensor& v, const Tensor& c0, const OptT& Z,
                 double rate, const Sizes& last, Tensor C, Tensor Y) {
  RECORD_FUNCTION("rnnkit::compiled::sru_forward", std::vector<c10::IValue>());
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "sru_forward", [&] {
    sru_fwd<scalar_t>(xp, v, c0, Zone<scalar_t>(optr<scalar_t>(Z), rate, c0.size(1)), last,
                      C, Y);
  });
}

void sru_backward(const Tensor& xp, const Tensor& v, const Tensor& c0, const OptT& Z,
                  double rate, const Sizes& last, const Tensor& C, const OptT& dY, Tensor dxp,
                  Tensor dc, Tensor dv) {
  RECORD_FUNCTION("rnnkit::compiled::sru_backward", std::vector<c10::IValue>());
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "sru_backward", [&] {
    sru_bwd<scalar_t>(xp, v, c0, Zone<scalar_t>(optr<scalar_t>(Z), rate, c0.size(1)), last,
                      C, dY, dxp, dc, dv);
  });
}

void indrnn_forward(const Tensor& xp, const Tensor& w, const Tensor& h0, const OptT& Z,
                    double rate, const Sizes& last, Tensor A, Tensor Y) {
  RECORD_FUNCTION("rnnkit::compiled::indrnn_forward", std::vector<c10::IValue>());
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "indrnn_forward", [&] {
    indrnn_fwd<scalar_t>(xp, w, h0, Zone<scalar_t>(optr<scalar_t>(Z), rate, h0.size(1)), last,
                         A, Y);
  });
}

void indrnn_backward(const Tensor& w, const Tensor& h0, const OptT& Z, double rate,
                     const Sizes& last, const Tensor& A, const Tensor& Y, const OptT& dY,
                     Tensor dxp, Tensor dh, Tensor dw) {
  RECORD_FUNCTION("rnnkit::compiled::indrnn_backward", std::vector<c10::IValue>());
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "indrnn_backward", [&] {
    indrnn_bwd<scalar_t>(w, h0, Zone<scalar_t>(optr<scalar_t>(Z), rate, h0.size(1)), last, A,
                         Y, dY, dxp, dh, dw);
  });
}

}  // namespace rnnkit
