// rnnkit's compiled time loops: shared declarations and the elementwise helpers.
//
// One call runs a whole layer-direction (forward, or backward through time) of an LSTM,
// GRU, LayerNorm-LSTM or LayerNorm-GRU: per step the recurrent GEMM (StepGemm: MKL's packed
// sgemm in float32 where torch has MKL, else at::mm; torch's threads), then the step's elementwise
// work in one pass, parallel over batch rows and hidden units (at::parallel_for, which
// needs -fopenmp to really fork), written straight into the (T, B, .) buffers that the
// Python caller (rnnkit/kernels/fused/*.py) allocated and saves for the backward.
//
// Shapes: T time, B batch, H hidden, G = 4H (LSTM) or 3H (GRU); every buffer is
// contiguous; a step works on the live rows 0..n-1 (lengths: the batch is sorted by
// length, n = sizes[t]). Each entry point is a RECORD_FUNCTION scope, so that torch's
// profiler sees its allocations and their frees (MKL's packed weights die inside it).
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/native/CPUBlas.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <optional>
#include <thread>
#include <type_traits>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace rnnkit {

#define RS_ __restrict__

using at::Tensor;
using OptT = std::optional<Tensor>;
using Sizes = std::vector<int64_t>;

// ------------------------------------------------------------------ activations
// e^x in float for x in [-87, 88] (clamped outside): 2^k e^r, |r| <= ln2/2, degree-6
// Taylor polynomial (relative error < 2e-7), branch-free so that it vectorises (the same
// function as kernels/fused/_csteps.c). float64 uses std::exp.
static inline float exp_(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - k * 0.693145751953125f - k * 1.42860682030941723212e-6f;
  float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666671633720398f +
            r * (0.0416666679084300995f + r * (0.00833333376795053482f +
            r * 0.00138888892251998186f)))));
  union { int32_t i; float f; } scale = {((int32_t)k + 127) << 23};
  return p * scale.f;
}
static inline double exp_(double x) { return std::exp(x); }

template <typename T> static inline T sigmoid_(T x) { return T(1) / (T(1) + exp_(-x)); }
static inline float tanh_(float x) { return 2.0f / (1.0f + exp_(-2.0f * x)) - 1.0f; }
static inline double tanh_(double x) { return std::tanh(x); }

// torch.lerp's formula: exact at w = 0 and w = 1 (a zoneout keep mask gives exactly the
// previous state).
template <typename T> static inline T lerp_(T a, T b, T w) {
  return w < T(0.5) ? a + w * (b - a) : b - (b - a) * (T(1) - w);
}

// ------------------------------------------------------------------ helpers
template <typename T> static inline T* ptr(const Tensor& t) { return t.data_ptr<T>(); }
template <typename T> static inline const T* optr(const OptT& t) {
  return t.has_value() && t->defined() ? t->data_ptr<T>() : nullptr;
}
static inline int64_t live(const Sizes& sizes, int64_t t, int64_t B) {
  return sizes.empty() ? B : sizes[t];
}
static inline bool has(const OptT& t) { return t.has_value() && t->defined(); }

// A backward loop's step t (t falling; rows sorted by length, longest first): the rows alive
// at t, after adding dY[t] into dh for the rows whose last step is t (lv: rows joined so far).
static inline int64_t join_live(const Sizes& sizes, int64_t t, int64_t B, const Tensor& dh,
                                const Tensor& dY, int64_t& lv) {
  const int64_t n = live(sizes, t, B);
  if (n > lv) {
    dh.narrow(0, lv, n - lv).add_(dY[t].narrow(0, lv, n - lv));
    lv = n;
  }
  return n;
}

// Asks for x[0..n-1] in cache (one prefetch a 64-byte line): an inference loop's u_t, read
// after the step's product, which then hides the wait.
template <typename T> static inline void prefetch(const T* x, int64_t n) {
  const char* p = reinterpret_cast<const char*>(x);
  for (int64_t b = 0; b < n * int64_t(sizeof(T)); b += 64) __builtin_prefetch(p + b, 0, 3);
}

// A zoneout setting of one state: the (T, B, S) keep masks, or a rate (0: off). row()
// gives a row's weights either way (the rate as a row of S copies), so that the loops
// read them without a branch and vectorise.
template <typename T> struct Zone {
  const T* w;  // masks or nullptr
  T rate;
  std::vector<T> fill;
  Zone(const T* w_, double rate_, int64_t S) : w(w_), rate(T(rate_)), fill(S, T(rate_)) {}
  bool on() const { return w != nullptr || rate != T(0); }
  const T* row(int64_t t, int64_t r, int64_t B, int64_t S) const {
    return w ? w + (t * B + r) * S : fill.data();
  }
};

// f(r, j0, j1) over the units (row r, hidden units j0..j1-1) of n rows of H units, split
// among torch's threads (at::parallel_for: serial below `grain` units).
template <typename F>
static inline void for_units(int64_t n, int64_t H, int64_t grain, const F& f) {
  at::parallel_for(0, n * H, grain, [&](int64_t b, int64_t e) {
    while (b < e) {
      int64_t r = b / H, j0 = b - r * H, j1 = std::min(H, j0 + (e - b));
      f(r, j0, j1);
      b += j1 - j0;
    }
  });
}

// Rows per chunk of at::parallel_for for rows of `width` numbers.
static inline int64_t row_grain(int64_t width) {
  return std::max<int64_t>(1, 4096 / std::max<int64_t>(1, width));
}

// f(r) for the rows 0..n-1 of `width` numbers each, split among torch's threads.
template <typename F>
static inline void for_rows(int64_t n, int64_t width, const F& f) {
  at::parallel_for(0, n, row_grain(width), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) f(r);
  });
}

// for_rows for steps that also sum K numbers over the rows (the LayerNorm gains' and
// biases' gradients): f(r, tid, part) adds row r's into `part`, its thread's K scratch
// numbers in T, zeroed per chunk and added to the thread's double sums at the chunk's end
// (float32 over a step's rows, float64 over the steps, as kernels/fused/_csteps.c does).
template <typename T, typename F>
static inline void for_rows_summed(int64_t n, int64_t width, int64_t K, T* parts,
                                   double* sums, const F& f) {
  at::parallel_for(0, n, row_grain(width), [&](int64_t b, int64_t e) {
    const int64_t tid = at::get_thread_num();
    T* RS_ part = parts + tid * K;
    double* RS_ acc = sums + tid * K;
    std::fill(part, part + K, T(0));
    for (int64_t r = b; r < e; r++) f(r, tid, part);
#pragma omp simd
    for (int64_t k = 0; k < K; k++) acc[k] += double(part[k]);
  });
}

//: units per thread below which a step's elementwise work stays on one thread
constexpr int64_t GRAIN = 2048;

// sum of x[0..n-1], and of (x - m)^2, in four vectors of partial sums (gcc keeps `part` in
// registers): one accumulator makes a 1024-number sum a chain of 64 dependent adds, whose
// latency was a third of the LayerNorm-LSTM's elementwise step at B=1 (session 12).
template <typename T> static inline T sum_(const T* RS_ x, int64_t n) {
  constexpr int64_t L = 256 / sizeof(T);
  T part[L] = {};
  int64_t j = 0;
  for (; j + L <= n; j += L) {
#pragma omp simd
    for (int64_t l = 0; l < L; l++) part[l] += x[j + l];
  }
  T s = 0;
  for (; j < n; j++) s += x[j];
  for (int64_t l = 0; l < L; l++) s += part[l];
  return s;
}
template <typename T> static inline T sqdev_(const T* RS_ x, int64_t n, T m) {
  constexpr int64_t L = 256 / sizeof(T);
  T part[L] = {};
  int64_t j = 0;
  for (; j + L <= n; j += L) {
#pragma omp simd
    for (int64_t l = 0; l < L; l++) part[l] += (x[j + l] - m) * (x[j + l] - m);
  }
  T s = 0;
  for (; j < n; j++) s += (x[j] - m) * (x[j] - m);
  for (int64_t l = 0; l < L; l++) s += part[l];
  return s;
}

// mean and 1/sqrt(var + eps) of x[0..G-1] (two passes, biased variance, as torch); returned
// by value (a local whose address is taken keeps the loops that read it from vectorising).
template <typename T> struct Moments { T mu, rs; };
template <typename T> static inline Moments<T> moments(const T* x, int64_t G, T eps) {
  const T m = sum_(x, G) / T(G);
  return {m, T(1) / std::sqrt(sqdev_(x, G, m) / T(G) + eps)};
}

// dx = rs (gy - mean(gy) - xh mean(gy xh)), gy = dy gain, xh = (x - mu) rs: the input
// gradient of layer_norm(x) * gain + bias (aten's formula); and this row's part of the
// gain's and bias's gradients added to sg += dy xh, sb += dy.
template <typename T>
static inline void ln_grad(const T* RS_ dy, const T* RS_ x, const T* RS_ gain, T mu, T rs,
                           int64_t G, T* RS_ dx, T* RS_ sg, T* RS_ sb) {
  T a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
  for (int64_t j = 0; j < G; j++) {
    T xh = (x[j] - mu) * rs, gy = dy[j] * gain[j];
    a += gy;
    b += gy * xh;
    sg[j] += dy[j] * xh;
    sb[j] += dy[j];
  }
  a /= T(G);
  b /= T(G);
#pragma omp simd
  for (int64_t j = 0; j < G; j++) {
    T xh = (x[j] - mu) * rs;
    dx[j] = rs * (dy[j] * gain[j] - a - xh * b);
  }
}

//: whether StepGemm may use MKL's packed sgemm (set_packed() from Python, for A/B timings)
extern bool use_packed;
//: whether a training loop packs only where the packed weight has room (pack_fits();
//: set_pack_by_size(false) packs always, as before session 13, for A/B measurements)
extern bool pack_by_size;
//: whether unpacked products may run as brgemm blocks (slice_product(); set_slices(false):
//: BLAS's sgemm everywhere, for A/B measurements)
extern bool use_slices;
//: whether products run as brgemm slices at every thread count instead of MKL's packed sgemm,
//: where the slices take them (slices_take(); set_prefer_slices() from Python). True by
//: default on a CPU that is not Intel's: on the 2-core AMD EPYC (Zen 4, AVX-512) MKL's calls
//: took 1.15-1.84x the time of oneDNN's inner product at 32 and 128 rows, and training loops
//: on brgemm slices 0.66-0.96 of their time on MKL's packed products (docs/kernels.md, "MKL on
//: an AMD CPU"; benchmarks/results/gemm_vendor_amd2_s15.json, prefer_slices_amd2_s15.json)
extern bool prefer_slices;
//: whether a copy of W^T whose rows would lie a multiple of 1 KB apart is padded by 64 bytes
//: a row (row_stride(); set_pad_rows(false): dense, for A/B measurements)
extern bool pad_rows;
//: weights packed by mkl_pack(), and products run as brgemm slices (StepGemm's per product,
//: a team's once per loop) so far (for tests)
extern std::atomic<int64_t> pack_count, slice_count;

// MKL's packed-GEMM interface, which libtorch_cpu exports where torch was built with MKL
// (x86). Weak: where it is absent the addresses are null and StepGemm uses at::mm.
// (LP64 MKL_INT; CBLAS enums as ints.)
extern "C" {
size_t cblas_sgemm_pack_get_size(int identifier, int m, int n, int k) __attribute__((weak));
void cblas_sgemm_pack(int layout, int identifier, int trans, int m, int n, int k, float alpha,
                      const float* src, int ld, float* dest) __attribute__((weak));
void cblas_sgemm_compute(int layout, int transa, int transb, int m, int n, int k,
                         const float* a, int lda, const float* b, int ldb, float beta, float* c,
                         int ldc) __attribute__((weak));
// (BLAS's Fortran sgemm, column-major, every argument by address)
void SGEMM(const char* transa, const char* transb, const int* m, const int* n, const int* k,
           const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
           const float* beta, float* c, const int* ldc) __attribute__((weak));
}
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112, kPacked = 151, kBMatrix = 162;
static inline bool mkl_packed_api() {
  return cblas_sgemm_pack_get_size != nullptr && cblas_sgemm_pack != nullptr &&
         cblas_sgemm_compute != nullptr;
}

// W (N, K) float32 packed by MKL as the B operand of x W^T for B rows. W is contiguous or
// the transpose of a contiguous (K, N) matrix (a backward's W_hh.t(): packed as it lies, no
// copy).
Tensor mkl_pack(const Tensor& W, int64_t B);

// mkl_pack(W, B) from a small cache, for inference (the same weights call after call; at B=1
// packing W cost about as much as a sequence's products; docs/kernels.md, session 10). An
// entry holds a copy of W and is used only when W's bytes equal it (memcmp: exact, so a
// weight updated in place, or a new tensor at a freed address, is packed again). At most
// set_pack_cache_bytes() of copies and packed weights (64 MB unless set; 0: no cache);
// clear_pack_cache() frees them.
Tensor packed_weight(const Tensor& W, int64_t B);
// Cached like packed_weight: spec empty, {mkl_pack(W, B)}; spec = {gates, j_0, ..., j_P}, one
// pack per slice p: the rows [g H + j_p, g H + j_{p+1}) of every gate block g, in order;
// spec = {-1, ld}: {W^T}, (K, N) with rows ld apart (transposed_weight()).
std::vector<Tensor> pack_slices(const Tensor& W, int64_t B, const std::vector<int64_t>& spec);
// W^T (K, N), its rows row_stride(N) apart, from the same cache (float32, for inference: the
// brgemm slices' operand where slices are preferred). Transposing a 1024 x 256 W for each
// call was a tenth of a LayerNorm-LSTM's inference time at B=1, T=100 (perf, session 16).
Tensor transposed_weight(const Tensor& W);
void clear_pack_cache();
int64_t pack_cache_entries();
void set_pack_cache_bytes(int64_t bytes);

// Bytes of MKL's packed form of W (N, K) for B rows: about 7.3 MB plus twice W on torch
// 2.13's MKL, whatever B (7.56 MiB for 256 x 256, 10.06 for 1024 x 256, 15.56 for 512 x 2048;
// docs/kernels.md, "Memory").
static inline int64_t pack_bytes(int64_t B, int64_t N, int64_t K) {
  return int64_t(cblas_sgemm_pack_get_size(kBMatrix, int(B), int(N), int(K)));
}

// Whether a training loop may pack weights of `bytes` in all (pack_bytes()) while it runs:
// only where they fit in `room`, the bytes that its forward+backward allocates at another
// moment on top of what is alive while the loop runs (the caller's buffers, which the Python
// loop allocates too). Then the packed weights never raise the peak above the Python loop's.
// Each loop states its room (the backward's gate gradients, for a forward; the (T, B, .)
// stacks that the caller's weight-gradient GEMMs make after a backward loop). At B=32, T=100,
// H=256 MKL's 7.6-10 MB did not fit in the LSTMs' and the RNN's backward (and the RNN's
// forward), which then run at::mm's products; at B=128, H=512 every loop has room
// (docs/kernels.md, "Memory"; benchmarks/results/memory_cpu_xeon2_s13.json).
static inline bool pack_fits(int64_t bytes, int64_t room) {
  return !pack_by_size || bytes <= room;
}

// Whether a product of B rows by W (N, K) runs as brgemm slices rather than packed, where slices
// are preferred (prefer_slices): slice_product() takes up to 128 rows, and K > 1024 only from
// panels of a W^T that lies row-major (`transposed`: a backward's W_hh.t()). Anywhere else MKL's
// packed product stays (its plain sgemm was slower still on such a CPU: (128, 512) x (512, 1536)
// at 2 threads 1275-1728 against 1497 us packed, gemm_vendor_amd2_s15.json).
static inline bool slices_take(int64_t B, int64_t K, bool transposed) {
  return prefer_slices && use_slices && B <= 128 && (K <= 1024 || transposed);
}

// The row stride of a copy of W^T (K, N) that brgemm slices read: N, or N + 16 where N floats
// are a multiple of 1 KB (N = 4H: the LSTMs' forward; also the GRUs' 3H and the RNN's H where
// H is a multiple of 256, which did not need it). With rows a multiple of 1 KB apart a
// slice's 128 columns of K rows fall in few cache sets. At 1 thread on the 2-core AMD EPYC (x
// W^T for B rows of K, us, dense / padded): B=1, 256 x 1024 21.2 / 11.0; 512 x 2048 83.7 /
// 51.9; B=32, 256 x 1024 155 / 148; B=128, 512 x 2048 2512 / 2363; N = 768 and 1536: no
// change (benchmarks/results/gemm_pad_amd2_s16.json; docs/kernels.md, "Padded rows").
static inline int64_t row_stride(int64_t N) {
  return pad_rows && N % 256 == 0 ? N + 16 : N;
}

// D (K rows, ld apart) = W^T, W (N, K) row-major, in tiles of 16 x 16, the tiles' rows split
// among torch's threads. Tensor's copy_ of W.t() into a padded D took 241 us at 1 thread for a
// 1024 x 256 W and 3122 for 2048 x 512, into a dense one 155 and 621, these tiles 159 and 649
// (2-core AMD EPYC, gemm_pad_amd2_s16.json): once a forward loop, whose 100 steps at B=1 take
// about 1.2 ms (1024 x 256).
static inline void transpose_into(const float* RS_ W, int64_t N, int64_t K, float* RS_ D,
                                  int64_t ld) {
  constexpr int64_t S = 16;
  at::parallel_for(0, (N + S - 1) / S, 4, [&](int64_t b0, int64_t b1) {
    for (int64_t n0 = b0 * S; n0 < std::min(N, b1 * S); n0 += S)
      for (int64_t k0 = 0; k0 < K; k0 += S) {
        const int64_t n1 = std::min(N, n0 + S), k1 = std::min(K, k0 + S);
        for (int64_t k = k0; k < k1; k++)
          for (int64_t n = n0; n < n1; n++) D[k * ld + n] = W[n * K + k];
      }
  });
}

// The per-step product x W^T, (n, K) x (N, K) -> (n, N). float32 with MKL: W packed once per
// loop for B rows (cblas_sgemm_pack; measured faster at B=32, H=256 than an sgemm call,
// which repacks W every step: docs/kernels.md, "The time loop in compiled code"), each step
// one cblas_sgemm_compute straight into a buffer the object owns (or, add_to, into the
// caller's rows), with no tensor op in between. A training loop whose packed weight has no
// room (`room` bytes, pack_fits(); negative: no limit), and every loop whose product the
// slices take on a CPU that prefers them (slices_take(); inference too), reads W^T as a (K, N)
// row-major matrix instead (a backward's W_hh.t() is one as it lies; a forward's W is copied
// once a loop with padded rows, or in inference taken from transposed_weight()'s cache), which
// MKL's sgemm does not repack per call: at 2 or more threads,
// or at any where slices are preferred, oneDNN brgemm on blocks of rows and columns
// (slice_product(); with K > 1024 on a copy of W's columns in panels), else BLAS's sgemm.
// n != B rows (lengths) of a packed product, and float64, use at::mm.
// The result of operator() is valid until its next call.
class StepGemm {
 public:
  // keep: take the packed form from packed_weight()'s cache, or where slices take the product
  // (slices_take()) W^T from transposed_weight()'s (a forward loop whose caller records no
  // gradient, i.e. inference; in training W changes every step)
  StepGemm(const Tensor& W, int64_t B, bool keep = false, int64_t room = -1)
      : W_(plain(W)), B_(B), N_(W_.size(0)), K_(W_.size(1)) {
    if (W_.scalar_type() != at::kFloat || B <= 0) return;
    out_ = at::empty({B_, N_}, W_.options());
    const bool slices = slices_take(B_, K_, W_.t().is_contiguous());
    if (use_packed && mkl_packed_api() && !(keep && slices) &&
        (keep || !pack_by_size ||
         (!slices && (room < 0 || pack_fits(pack_bytes(B_, N_, K_), room))))) {
      packed_ = keep ? packed_weight(W_, B_) : mkl_pack(W_, B_);
      return;
    }
    const bool as_is = W_.t().is_contiguous();  // (a backward's W_hh.t(): no copy below)
    if (as_is) {
      Wt_ = W_.t();  // (K, N) row-major as it lies
    } else if (keep && slices) {
      Wt_ = transposed_weight(W_);  // (inference: kept between calls)
    } else {
      // (K, N) row-major, a copy, its rows row_stride() apart
      const int64_t ld = row_stride(N_);
      Wt_ = at::empty({K_, ld}, W_.options()).narrow(1, 0, N_);
      transpose_into(W_.data_ptr<float>(), N_, K_, Wt_.data_ptr<float>(), ld);
    }
    // W^T's row stride for BLAS and brgemm: at least N (a W of one column, K = 1, is "contiguous"
    // either way round, and its transpose then has stride 1, which sgemm rejects as lda)
    ldw_ = std::max<int64_t>(Wt_.stride(0), N_);
    // K > 1024 at 2 or more threads: brgemm on Wt_'s columns in place was 1.1-3x slower than
    // sgemm, but on a copy of them in contiguous panels of 64 ([N / 64][K][64], the weight's
    // bytes: room that every backward has, pack_fits()) as fast as MKL's packed product
    // (slice_product())
    if (as_is && use_slices && K_ > 1024 && (at::get_num_threads() > 1 || slices)) {
      const int64_t panels = (N_ + kPanel - 1) / kPanel;
      Wp_ = at::empty({panels, K_, kPanel}, W_.options());
      for (int64_t q = 0; q < panels; q++) {
        const int64_t j0 = q * kPanel, w = std::min(kPanel, N_ - j0);
        Wp_[q].narrow(1, 0, w).copy_(Wt_.narrow(1, j0, w));
      }
    }
  }
  Tensor operator()(const Tensor& x) const {
    if (raw(x)) {
      compute(x, 0.0f, out_.data_ptr<float>(), N_);
      return out_;
    }
    if (!plain_rows(x)) return at::mm(x, W_.t());
    Tensor c = x.size(0) == B_ ? out_ : out_.narrow(0, 0, x.size(0));
    if (!slice_product(x, false, c) && !sgemm(x, 0.0f, c)) at::mm_out(c, x, Wt_);
    return c;
  }
  // Whether rows() may run (float32): MKL's packed product of all B rows, or their brgemm
  // slices (slice_product()'s conditions).
  bool direct() const { return packed_.defined() || slices_run(B_); }
  // x (B rows of K, ldx apart) W^T into the object's buffer, returned (B rows of N, which the
  // caller may overwrite until the next call); only where direct(): a forward loop's product
  // without a tensor op per step (forward_product()).
  float* rows(const float* x, int64_t ldx) const {
    float* c = out_.data_ptr<float>();
    if (packed_.defined())
      cblas_sgemm_compute(kRowMajor, kNoTrans, kPacked, int(B_), int(N_), int(K_), x,
                          int(ldx), packed_.data_ptr<float>(), int(K_), 0.0f, c, int(N_));
    else
      slices(x, ldx, B_, false, c, N_);
    return c;
  }
  // out (n, N, rows N apart) += x W^T
  void add_to(const Tensor& x, Tensor& out) const {
    const bool rows_ok = out.stride(0) == N_ && out.stride(1) == 1;
    if (raw(x) && rows_ok) {
      compute(x, 1.0f, out.data_ptr<float>(), N_);
      return;
    }
    if (plain_rows(x) && rows_ok) {
      if (!slice_product(x, true, out) && !sgemm(x, 1.0f, out)) out.addmm_(x, Wt_);
      return;
    }
    out.addmm_(x, W_.t());
  }

 private:
  // W as it is where it or its transpose is contiguous (at::mm and mkl_pack read either), else
  // a contiguous copy
  static Tensor plain(const Tensor& W) {
    return W.is_contiguous() || W.t().is_contiguous() ? W : W.contiguous();
  }
  bool raw(const Tensor& x) const {
    return packed_.defined() && x.size(0) == B_ && x.stride(1) == 1 &&
           x.scalar_type() == at::kFloat;
  }
  // the unpacked float32 product applies (rows of x contiguous)
  bool plain_rows(const Tensor& x) const {
    return Wt_.defined() && x.stride(1) == 1 && x.scalar_type() == at::kFloat;
  }
  void compute(const Tensor& x, float beta, float* c, int64_t ldc) const {
    cblas_sgemm_compute(kRowMajor, kNoTrans, kPacked, int(B_), int(N_), int(K_),
                        x.data_ptr<float>(), int(x.stride(0)), packed_.data_ptr<float>(),
                        int(K_), beta, c, int(ldc));
  }
  // c (n, N, rows N apart) = (or +=, add) x Wt_ as one oneDNN brgemm per block of at most 32
  // rows and slice of about 128 columns (64 from Wp_'s panels), the blocks split among torch's
  // threads (each reads its columns of Wt_ in place or its panels, nothing packed by MKL). Only
  // at 2 or more threads (at any where slices are preferred: prefer_slices), outside a parallel
  // region, and K <= 1024 and up to 128 rows, or with Wp_ up to 64 rows (128 where slices are
  // preferred) (false: not run). Against MKL's packed product and its unpacked sgemm at 2
  // threads (a standalone script, 2-core Xeon, session 13, us): (32, 1024) x (1024, 256)
  // 47-51 / 47-52 / 65-68; (64, 1024) x (1024, 256) 93-95 / 90-96 / 109-115; (48, 1024) x
  // (1024, 256) 70 / 68 / 89; (32, 256) x (256, 1024) 53-57 / 44-48 / 56-59; (32, 256) x (256,
  // 256) 12-13 / 13-14 / 16. With K = 1536 or 2048 brgemm on Wt_ in place was 1.1-3x slower
  // than sgemm; on panels of 64: (32, 2048) x (2048, 512) 215 / 212 / 279, (32, 1536) x (1536,
  // 512) 147 / 152 / 199, (64, 2048) x (2048, 512) 439 / 406 / 467, but at 128 rows 904 / 779
  // / 876. At 1 thread sgemm was as fast as the packed product (82-106 against 82-109 us at
  // (32, 1024) x (1024, 256)) and brgemm no faster.
  bool slice_product(const Tensor& x, bool add, Tensor& c) const {
    if (!slices_run(x.size(0))) return false;
    slices(x.data_ptr<float>(), x.stride(0), x.size(0), add, c.data_ptr<float>(), c.stride(0));
    return true;
  }
  // whether slice_product() runs for n rows
  bool slices_run(int64_t n) const {
    return Wt_.defined() && use_slices && n >= 1 &&
           (at::get_num_threads() >= 2 || prefer_slices) && !at::in_parallel_region() &&
           (Wp_.defined() ? n <= (prefer_slices ? 128 : 64) : (n <= 128 && K_ <= 1024));
  }
  // slice_product()'s blocks on raw pointers: c (n rows, ldc apart) = (+=, add) a (n rows of
  // K, lda apart) Wt_
  void slices(const float* a, int64_t lda, int64_t n, bool add, float* cp, int64_t ldc) const {
    slice_count++;
    const bool panels = Wp_.defined();
    const int64_t parts = (N_ + 127) / 128;
    const int64_t w = panels ? kPanel : ((N_ + parts - 1) / parts + 15) / 16 * 16;
    const int64_t cols = (N_ + w - 1) / w, blocks = (n + 31) / 32, rw = (n + blocks - 1) / blocks;
    const float* b = panels ? Wp_.data_ptr<float>() : Wt_.data_ptr<float>();
    const int64_t ldb = panels ? kPanel : ldw_;
    at::parallel_for(0, blocks * cols, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; p++) {
        const int64_t i0 = p / cols * rw, m = std::min(rw, n - i0), q = p % cols;
        const int64_t j0 = q * w, nn = std::min(w, N_ - j0);
        const float* bq = panels ? b + q * K_ * kPanel : b + j0;
        at::native::cpublas::brgemm(m, nn, K_, lda, ldb, ldc, add, a + i0 * lda, bq,
                                    cp + i0 * ldc + j0, false);
      }
    });
  }
  // c (n, N, rows N apart) = x Wt_ + beta c by BLAS's sgemm called directly (MKL reads Wt_ as
  // it lies; the same kernel as at::mm without a tensor op a step); false where torch's
  // library does not export it
  bool sgemm(const Tensor& x, float beta, Tensor& c) const {
    if (SGEMM == nullptr) return false;
    const int m = int(N_), n = int(x.size(0)), k = int(K_), lda = int(ldw_);
    const int ldb = int(x.stride(0)), ldc = int(c.stride(0));
    const float one = 1.0f;
    SGEMM("N", "N", &m, &n, &k, &one, Wt_.data_ptr<float>(), &lda, x.data_ptr<float>(), &ldb,
          &beta, c.data_ptr<float>(), &ldc);
    return true;
  }
  static constexpr int64_t kPanel = 64;  // columns of a panel of Wp_
  Tensor W_, packed_, out_, Wt_, Wp_;
  int64_t B_, N_, K_, ldw_ = 0;
};

//: at most this many rows run an inference loop on a team of threads (set_team_rows();
//: 0: never)
extern int64_t team_rows;
//: how many loops ran on a team (for tests)
extern std::atomic<int64_t> team_runs;

// Whether a team's products run as brgemm on W^T (TeamGemm) rather than MKL's packed slices:
// where slices are preferred and K <= 1024 (beyond, brgemm on W^T as it lies was 1.1-3x
// slower than packed: slice_product()).
static inline bool team_slices(int64_t K) { return prefer_slices && use_slices && K <= 1024; }

// How many threads an inference loop (no saved activations) at B rows of H units runs on as
// a team (0: none, use the ordinary loop). A team keeps one `omp parallel` region for the
// whole loop, each thread owning a slice of the hidden units, with a barrier per step,
// instead of a fork and join per product: at B=1 the product is one small GEMV (about 9 us
// for 768 x 256), which MKL does not split below 1024 rows, and a fork and join per step
// costs about as much as the half it would save (docs/kernels.md, "Inference at B=1").
// Only float32 with MKL's packed sgemm (or, where slices are preferred, brgemm on W^T with
// K <= 1024), every row live (no lengths), no recurrent mask, outside any parallel region, and
// at least 16 units a thread.
// B <= team_rows (4): at 2 threads the team was faster at B <= 2 for every cell and at B=4
// for the GRUs (the LayerNorm-LSTM within 3% either way), and slower at B=8 for the
// LayerNorm cells (benchmarks/results/streaming_team_xeon2_s11.json).
static inline int64_t team_size(const Tensor& W, int64_t B, int64_t H, bool save_all,
                                bool masked_rows, const Sizes& sizes) {
#ifdef _OPENMP
  const int64_t P = at::get_num_threads();
  if (save_all || masked_rows || !sizes.empty() || B > team_rows || B < 1 || P < 2 ||
      W.scalar_type() != at::kFloat ||
      (!team_slices(W.size(1)) && (!use_packed || !mkl_packed_api())) ||
      at::in_parallel_region() || H < 16 * P)
    return 0;
  return P;
#else
  return 0;
#endif
}

// f(q, nq) on each thread q of a team of (at most) P threads: one parallel region.
template <typename F>
static inline void team_loop(int64_t P, const F& f) {
  team_runs++;
#ifdef _OPENMP
#pragma omp parallel num_threads(int(P))
  f(int64_t(omp_get_thread_num()), int64_t(omp_get_num_threads()));
#else
  f(int64_t(0), int64_t(1));
#endif
}

// A barrier for the n threads of a team_loop: each spins (pause) on a generation count, and
// after a while yields its core, so an oversubscribed machine still makes progress. `omp
// barrier` (libgomp) makes a futex call each time it opens: 0.85 us against 0.09 us for this
// one, 2 threads on the 2-core Xeon VM (session 12), and the LayerNorm-LSTM's team loop
// waits at two barriers a step. Each arrival releases and each departure acquires, so what a
// thread wrote before the barrier is seen by all after it.
class TeamBarrier {
 public:
  // P threads: more than the machine's processors, a waiter yields at once (spinning would
  // hold the core that the thread it waits for needs)
  explicit TeamBarrier(int64_t P) {
#ifdef _OPENMP
    if (P > int64_t(omp_get_num_procs())) spins_ = 0;
#endif
  }
  void wait(int64_t n) {
    const int64_t g = gen_.load(std::memory_order_acquire);
    if (count_.fetch_add(1, std::memory_order_acq_rel) == n - 1) {
      count_.store(0, std::memory_order_relaxed);
      gen_.store(g + 1, std::memory_order_release);
      return;
    }
    for (int64_t i = 0; gen_.load(std::memory_order_acquire) == g; i++) {
      if (i < spins_) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
      } else {
        std::this_thread::yield();
      }
    }
  }

 private:
  alignas(64) std::atomic<int64_t> count_{0};
  alignas(64) std::atomic<int64_t> gen_{0};
  int64_t spins_ = 4096;
};

// The recurrent product of a team's loop: W (gates * H, K) split by hidden units into
// parts() slices; slice p holds units [j0(p), j1(p)) of every gate block, packed by MKL
// for B rows (cached as packed_weight()), or, where slices are preferred (prefer_slices),
// read from one copy of W^T (rows padded as StepGemm's) by a brgemm per gate block.
// product(p, x) computes slice p's columns of x W^T into the object's buffer; each thread
// computes its own slices.
class TeamGemm {
 public:
  TeamGemm(const Tensor& W, int64_t B, int64_t gates, int64_t P)
      : B_(B), K_(W.size(1)), H_(W.size(0) / gates), gates_(gates) {
    const int64_t chunk = (H_ + P - 1) / P, step = (chunk + 15) / 16 * 16;
    for (int64_t j = 0; j < H_; j += step) bounds_.push_back(j);
    bounds_.push_back(H_);
    if (team_slices(K_)) {  // W^T, kept as StepGemm's (transposed_weight())
      Wt_ = transposed_weight(W.contiguous());
      ld_ = Wt_.stride(0);
      slice_count++;
    } else {
      std::vector<int64_t> spec{gates};
      spec.insert(spec.end(), bounds_.begin(), bounds_.end());
      packed_ = pack_slices(W.contiguous(), B, spec);
    }
    for (int64_t p = 0; p < parts(); p++) out_.push_back(at::empty({B, gates * h(p)}, W.options()));
  }
  int64_t parts() const { return int64_t(bounds_.size()) - 1; }
  int64_t j0(int64_t p) const { return bounds_[p]; }
  int64_t j1(int64_t p) const { return bounds_[p + 1]; }
  int64_t h(int64_t p) const { return j1(p) - j0(p); }
  // slice p's product x W_p^T into the object's buffer, returned: B rows of gates * h(p),
  // gate block g's units [j0(p), j1(p)) at g * h(p)
  const float* product(int64_t p, const float* x, int64_t ldx) const {
    const int64_t n = gates_ * h(p);
    float* o = out_[p].data_ptr<float>();
    if (Wt_.defined()) {  // one brgemm per gate block
      for (int64_t g = 0; g < gates_; g++)
        at::native::cpublas::brgemm(B_, h(p), K_, ldx, ld_, n, false, x,
                                    Wt_.data_ptr<float>() + g * H_ + j0(p), o + g * h(p), false);
      return o;
    }
    cblas_sgemm_compute(kRowMajor, kNoTrans, kPacked, int(B_), int(n), int(K_), x, int(ldx),
                        packed_[p].data_ptr<float>(), int(K_), 0.0f, o, int(n));
    return o;
  }
  // what product(p, ...) last returned
  const float* product_buffer(int64_t p) const { return out_[p].data_ptr<float>(); }

 private:
  int64_t B_, K_, H_, gates_, ld_ = 0;
  std::vector<int64_t> bounds_;
  std::vector<Tensor> packed_, out_;
  Tensor Wt_;
};

// Moments of a row (mean, 1/sqrt(var + eps)) from slices' (count, mean, sum of squared
// deviations) in double, combined in slice order (Chan et al.), so every thread gets the
// same numbers. st: parts x (count, mean, m2), `stride` numbers apart.
template <typename T>
static inline Moments<T> combine_moments(const double* st, int64_t parts, T eps,
                                         int64_t stride = 3) {
  double n = 0, mean = 0;
  for (int64_t p = 0; p < parts; p++) {
    n += st[stride * p];
    mean += st[stride * p] * st[stride * p + 1];
  }
  mean /= n;
  double m2 = 0;
  for (int64_t p = 0; p < parts; p++) {
    const double d = st[stride * p + 1] - mean;
    m2 += st[stride * p + 2] + st[stride * p] * d * d;
  }
  return {T(mean), T(1.0 / std::sqrt(m2 / n + double(eps)))};
}

// A team slice's (count, mean, sum of squared deviations) of its n numbers x, into st[0..2]
// (combine_moments() merges the slices'); the sums in float with four accumulators.
static inline void slice_stats(const float* x, int64_t n, double* st) {
  const float m = sum_(x, n) / float(n);
  st[0] = double(n);
  st[1] = double(m);
  st[2] = double(sqdev_(x, n, m));
}

// h (n, H) or m * h into `scratch` (the input of the recurrent GEMM).
static inline Tensor masked(const Tensor& h, const OptT& m, Tensor& scratch, int64_t n) {
  if (!has(m)) return n == h.size(0) ? h : h.narrow(0, 0, n);
  Tensor out = scratch.narrow(0, 0, n);
  at::mul_out(out, h.narrow(0, 0, n), m->narrow(0, 0, n));
  return out;
}

// A forward loop's step-t product (m h_{t-1}) W^T for its n live rows, (n, N) rows N apart,
// valid (and writable) until gemm's next call: h_{t-1} is Y[t-1] (Y (T, B, H) contiguous) or
// h0 (B, H). With no mask, every row live and StepGemm::direct() (float32), by raw pointers
// (StepGemm::rows()); else through gemm's tensor call, its result held in `hold`.
// (At B=1 the tensor path's ops are a few us a step beside a product of about 8-11 us: the
// GRU's whole sequence over 2 layers at 1 thread took 32.4 us a step on the tensor path and
// 29.1 on this one, two runs of the suite: streaming_cpu_amd2_s16.json, _s16b.json.)
template <typename T>
static inline T* forward_product(const StepGemm& gemm, const Tensor& Y, const Tensor& h0,
                                 int64_t t, const OptT& m, Tensor& scratch, int64_t n,
                                 Tensor& hold) {
  const int64_t B = h0.size(0), H = h0.size(1);
  if constexpr (std::is_same_v<T, float>) {
    if (n == B && !has(m) && gemm.direct())
      return gemm.rows(t ? ptr<float>(Y) + (t - 1) * B * H : ptr<float>(h0), H);
  }
  hold = gemm(masked(t ? Y[t - 1] : h0, m, scratch, n));
  return ptr<T>(hold);
}

// dh[:n] += m * (dg W): the recurrent part of h_{t-1}'s gradient (gemm: dg W = dg (W^T)^T).
static inline void add_recur(Tensor& dh, const Tensor& dg, const StepGemm& gemm, const OptT& m,
                             int64_t n) {
  Tensor d = n == dh.size(0) ? dh : dh.narrow(0, 0, n);
  if (has(m))
    d.addcmul_(gemm(dg), m->narrow(0, 0, n));
  else
    gemm.add_to(dg, d);
}

// ------------------------------------------------------------------ entry points
void lstm_forward(const Tensor& xp, const Tensor& h0, const Tensor& c0, const Tensor& W_hh,
                  const OptT& b_hh, const OptT& m, const OptT& ZH, const OptT& ZC,
                  double zh_rate, double zc_rate, const Sizes& sizes, bool keep, Tensor A,
                  Tensor C, Tensor TC, Tensor Y);
void lstm_backward(const Tensor& h0, const Tensor& c0, const Tensor& W_hh, const OptT& m,
                   const OptT& ZH, const OptT& ZC, double zh_rate, double zc_rate,
                   const Sizes& sizes, const Tensor& A, const Tensor& C, const Tensor& TC,
                   const Tensor& dY, Tensor dA, Tensor dh, Tensor dc);
// (the LayerNorm-LSTM's input layer norm runs in its loops: u = W_ih x, b = b_ih + b_hh)
void ln_lstm_forward(const Tensor& u, const Tensor& h0, const Tensor& c0, const Tensor& W_hh,
                     const Tensor& g_ih, const Tensor& b, const Tensor& g_hh, const Tensor& g_c,
                     const Tensor& b_c, const OptT& m, const OptT& ZH, const OptT& ZC,
                     double zh_rate, double zc_rate, double eps, const Sizes& sizes,
                     bool save_all, Tensor V, Tensor A, Tensor MU, Tensor RS, Tensor MUX,
                     Tensor RSX, Tensor CT, Tensor MUC, Tensor RSC, Tensor TC, Tensor C,
                     Tensor Y);
int64_t ln_lstm_backward(const Tensor& c0, const Tensor& W_hh, const Tensor& g_ih,
                         const Tensor& g_hh, const Tensor& g_c, const OptT& m, const OptT& ZH,
                         const OptT& ZC, double zh_rate, double zc_rate, const Sizes& sizes,
                         int64_t b0, int64_t b1, int64_t live_rows, const Tensor& U,
                         const Tensor& MUX, const Tensor& RSX, const Tensor& A,
                         const Tensor& V, const Tensor& MU, const Tensor& RS, const Tensor& CT,
                         const Tensor& MUC, const Tensor& RSC, const Tensor& TC,
                         const Tensor& C, const Tensor& dY, Tensor dU, Tensor dV, Tensor dh,
                         Tensor dc, Tensor acc);
void gru_forward(const Tensor& xp, const Tensor& h0, const Tensor& W_hh, const OptT& b_hh,
                 const OptT& g_hh, const OptT& m, const OptT& ZH, double zh_rate, double eps,
                 const Sizes& sizes, bool save_all, Tensor Ghn, Tensor RZ, Tensor N, Tensor Y,
                 const OptT& V, const OptT& MU, const OptT& RS);
void gru_backward(const Tensor& h0, const Tensor& W_hh, const OptT& g_hh, const OptT& m,
                  const OptT& ZH, double zh_rate, const Sizes& sizes, const Tensor& Ghn,
                  const Tensor& RZ, const Tensor& N, const Tensor& Y, const Tensor& dY,
                  Tensor dGh, Tensor dXn, Tensor dh, const OptT& V, const OptT& MU,
                  const OptT& RS, const OptT& dV, const OptT& acc);
// the GRU's backward (no norm) writing dxp, dgh_n and db_hh (gru.cpp, gru_bwd_dxp)
void gru_backward_dxp(const Tensor& h0, const Tensor& W_hh, const OptT& m, const OptT& ZH,
                      double zh_rate, const Sizes& sizes, const Tensor& Ghn, const Tensor& RZ,
                      const Tensor& N, const Tensor& Y, const Tensor& dY, Tensor dxp, Tensor dGn,
                      Tensor dh, Tensor db);

void lstmp_forward(const Tensor& xp, const Tensor& h0, const Tensor& c0, const Tensor& W_hh,
                   const OptT& b_hh, const Tensor& W_hr, const OptT& m, const OptT& ZH,
                   const OptT& ZC, double zh_rate, double zc_rate, const Sizes& sizes, bool keep,
                   Tensor A, Tensor C, Tensor TC, Tensor R, Tensor Y);
void lstmp_backward(const Tensor& h0, const Tensor& c0, const Tensor& W_hh, const Tensor& W_hr,
                    const OptT& m, const OptT& ZH, const OptT& ZC, double zh_rate,
                    double zc_rate, const Sizes& sizes, const Tensor& A, const Tensor& C,
                    const Tensor& TC, const Tensor& dY, Tensor dA, Tensor dHt, Tensor dh,
                    Tensor dc);
void rnn_forward(const Tensor& xp, const Tensor& h0, const Tensor& W_hh, const OptT& b_hh,
                 const OptT& m, const OptT& ZH, double zh_rate, bool relu, const Sizes& sizes,
                 bool keep, Tensor A, Tensor Y);
void rnn_backward(const Tensor& h0, const Tensor& W_hh, const OptT& m, const OptT& ZH,
                  double zh_rate, bool relu, const Sizes& sizes, const Tensor& A,
                  const Tensor& dY, Tensor dA, Tensor dh);
// the elementwise recurrences (elementwise.cpp): `last` is each row's last step (empty: T-1)
void gated_forward(int64_t kind, const Tensor& u, const Tensor& s0, const OptT& Z, double rate,
                   const Sizes& last, Tensor Hs, Tensor Y);
void gated_backward(int64_t kind, const Tensor& u, const Tensor& s0, const OptT& Z, double rate,
                    const Sizes& last, const Tensor& Hs, const OptT& dY, Tensor du, Tensor ds);
void sru_forward(const Tensor& xp, const Tensor& v, const Tensor& c0, const OptT& Z,
                 double rate, const Sizes& last, Tensor C, Tensor Y);
void sru_backward(const Tensor& xp, const Tensor& v, const Tensor& c0, const OptT& Z,
                  double rate, const Sizes& last, const Tensor& C, const OptT& dY, Tensor dxp,
                  Tensor dc, Tensor dv);
void indrnn_forward(const Tensor& xp, const Tensor& w, const Tensor& h0, const OptT& Z,
                    double rate, const Sizes& last, Tensor A, Tensor Y);
void indrnn_backward(const Tensor& w, const Tensor& h0, const OptT& Z, double rate,
                     const Sizes& last, const Tensor& A, const Tensor& Y, const OptT& dY,
                     Tensor dxp, Tensor dh, Tensor dw);

}  // namespace rnnkit
