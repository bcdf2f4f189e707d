// Python bindings of the compiled time loops (built by kernels/compiled/__init__.py).
#include <torch/extension.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>

#include "scans.h"

namespace rnnkit {
bool use_packed = true;
bool pack_by_size = true;
bool use_slices = true;
bool pad_rows = true;
bool prefer_slices = [] {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return !__builtin_cpu_is("intel");
#else
  return false;  // (no MKL there: the products are at::mm's)
#endif
}();
std::atomic<int64_t> pack_count{0}, slice_count{0};
int64_t team_rows = 4;  // (the rule's measurement: team_size())
std::atomic<int64_t> team_runs{0};

namespace {
struct PackEntry {
  Tensor copy;                // W's bytes when packed
  int64_t B;                  // for B rows
  std::vector<int64_t> spec;  // how W was sliced (pack_slices)
  std::vector<Tensor> packs;  // MKL's packed forms, or W^T (a view of its padded rows)
  int64_t bytes() const {
    int64_t n = copy.nbytes();
    for (const Tensor& p : packs) n += int64_t(p.storage().nbytes());
    return n;
  }
};
std::mutex pack_mutex;
std::vector<PackEntry> pack_cache;  // most recently used first
int64_t pack_cache_bytes = int64_t(64) << 20;

// a's bytes equal b's (same size): memcmp, split among torch's threads above 256 KB. At B=1
// comparing a 1024 x 256 weight (it and its copy: 2 MB read, and the packed form then read
// cold) was a third of a one-step inference call at 1 thread; split over 2 threads a
// LayerNorm-LSTM call of 1 step took 29 us instead of 100 (session 12).
bool same_bytes(const Tensor& a, const Tensor& b) {
  const char* x = static_cast<const char*>(a.data_ptr());
  const char* y = static_cast<const char*>(b.data_ptr());
  const int64_t n = int64_t(a.nbytes()), chunk = int64_t(64) << 10;
  if (n < 4 * chunk || at::get_num_threads() < 2 || at::in_parallel_region())
    return std::memcmp(x, y, size_t(n)) == 0;
  std::atomic<bool> same{true};
  at::parallel_for(0, (n + chunk - 1) / chunk, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t i = b0; i < b1 && same.load(std::memory_order_relaxed); i++) {
      const int64_t off = i * chunk, len = std::min(chunk, n - off);
      if (std::memcmp(x + off, y + off, size_t(len)) != 0) same = false;
    }
  });
  return same.load();
}

std::vector<Tensor> make_packs(const Tensor& W, int64_t B, const std::vector<int64_t>& spec) {
  if (spec.empty()) return {mkl_pack(W, B)};
  if (spec[0] == -1) {  // transposed_weight(): W^T, rows spec[1] apart
    const int64_t N = W.size(0), K = W.size(1), ld = spec[1];
    const Tensor src = W.contiguous();
    Tensor D = at::empty({K, ld}, W.options());
    transpose_into(src.data_ptr<float>(), N, K, D.data_ptr<float>(), ld);
    return {D.narrow(1, 0, N)};
  }
  const int64_t gates = spec[0], H = W.size(0) / gates;
  std::vector<Tensor> packs;
  for (size_t p = 1; p + 1 < spec.size(); p++) {
    std::vector<Tensor> rows;
    for (int64_t g = 0; g < gates; g++)
      rows.push_back(W.narrow(0, g * H + spec[p], spec[p + 1] - spec[p]));
    packs.push_back(mkl_pack(at::cat(rows), B));
  }
  return packs;
}
}  // namespace

Tensor mkl_pack(const Tensor& W, int64_t B) {
  pack_count++;
  const int64_t N = W.size(0), K = W.size(1);
  const size_t bytes = cblas_sgemm_pack_get_size(kBMatrix, int(B), int(N), int(K));
  Tensor packed = at::empty({int64_t((bytes + sizeof(float) - 1) / sizeof(float))},
                            W.options());
  // the B operand W^T: W row-major (transposed), or W = M^T with M (K, N) row-major (as is)
  const bool as_is = !W.is_contiguous() && W.t().is_contiguous();
  const Tensor src = as_is ? W : W.contiguous();
  cblas_sgemm_pack(kRowMajor, kBMatrix, as_is ? kNoTrans : kTrans, int(B), int(N), int(K), 1.0f,
                   src.data_ptr<float>(), int(as_is ? N : K), packed.data_ptr<float>());
  return packed;
}

std::vector<Tensor> pack_slices(const Tensor& W, int64_t B, const std::vector<int64_t>& spec) {
  std::lock_guard<std::mutex> lock(pack_mutex);
  for (size_t i = 0; i < pack_cache.size(); i++) {
    const PackEntry& e = pack_cache[i];
    if (e.B == B && e.spec == spec && e.copy.sizes() == W.sizes() &&
        e.copy.strides() == W.strides() &&
        e.copy.scalar_type() == W.scalar_type() &&
        same_bytes(e.copy, W)) {
      std::rotate(pack_cache.begin(), pack_cache.begin() + i, pack_cache.begin() + i + 1);
      return pack_cache.front().packs;
    }
  }
  PackEntry fresh{W.clone(at::MemoryFormat::Preserve), B, spec, make_packs(W, B, spec)};
  if (fresh.bytes() > pack_cache_bytes) return fresh.packs;  // too big to keep
  pack_cache.insert(pack_cache.begin(), fresh);
  int64_t total = 0;
  for (size_t i = 0; i < pack_cache.size(); i++) {
    total += pack_cache[i].bytes();
    if (total > pack_cache_bytes) {  // drop the least recently used
      pack_cache.resize(i);
      break;
    }
  }
  return pack_cache.front().packs;
}

Tensor packed_weight(const Tensor& W, int64_t B) { return pack_slices(W, B, {})[0]; }

Tensor transposed_weight(const Tensor& W) {
  return pack_slices(W, 0, {-1, row_stride(W.size(0))})[0];
}

void clear_pack_cache() {
  std::lock_guard<std::mutex> lock(pack_mutex);
  pack_cache.clear();
}

void set_pack_cache_bytes(int64_t bytes) {
  std::lock_guard<std::mutex> lock(pack_mutex);
  pack_cache_bytes = std::max<int64_t>(0, bytes);
  pack_cache.clear();
}

int64_t pack_cache_entries() {
  std::lock_guard<std::mutex> lock(pack_mutex);
  return int64_t(pack_cache.size());
}
}  // namespace rnnkit

namespace {

void set_packed(bool on) {
  rnnkit::use_packed = on;
  rnnkit::clear_pack_cache();
}
bool packed() { return rnnkit::use_packed; }

// How many distinct threads at::parallel_for ran `n` one-item chunks on: 1 when the
// extension was built without OpenMP (its pragmas are then ignored and it runs serially).
int64_t threads_used(int64_t n) {
  std::vector<std::atomic<int>> seen(at::get_num_threads() + 1);
  at::parallel_for(0, n, 1, [&](int64_t b, int64_t e) {
    volatile double x = 0;
    for (int64_t i = b; i < e; i++)
      for (int k = 0; k < 200000; k++) x = x + 1e-9 * k;  // long enough for every thread to join
    seen[std::min<int64_t>(at::get_thread_num(), seen.size() - 1)] = 1;
  });
  int64_t count = 0;
  for (auto& s : seen) count += s.load();
  return count;
}

bool openmp() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "rnnkit's compiled time loops (LSTM, GRU, RNN, the LayerNorm cells, the elementwise recurrences)";
  m.def("lstm_forward", &rnnkit::lstm_forward);
  m.def("lstm_backward", &rnnkit::lstm_backward);
  m.def("ln_lstm_forward", &rnnkit::ln_lstm_forward);
  m.def("ln_lstm_backward", &rnnkit::ln_lstm_backward);
  m.def("gru_forward", &rnnkit::gru_forward);
  m.def("gru_backward", &rnnkit::gru_backward);
  m.def("gru_backward_dxp", &rnnkit::gru_backward_dxp);
  m.def("lstmp_forward", &rnnkit::lstmp_forward);
  m.def("lstmp_backward", &rnnkit::lstmp_backward);
  m.def("rnn_forward", &rnnkit::rnn_forward);
  m.def("rnn_backward", &rnnkit::rnn_backward);
  m.def("gated_forward", &rnnkit::gated_forward);
  m.def("gated_backward", &rnnkit::gated_backward);
  m.def("sru_forward", &rnnkit::sru_forward);
  m.def("sru_backward", &rnnkit::sru_backward);
  m.def("indrnn_forward", &rnnkit::indrnn_forward);
  m.def("indrnn_backward", &rnnkit::indrnn_backward);
  m.def("threads_used", &threads_used);
  m.def("openmp", &openmp);
  m.def("set_packed", &set_packed, "use MKL's packed sgemm for the per-step products (float32)");
  m.def("clear_pack_cache", &rnnkit::clear_pack_cache,
        "free the packed weights and W^T copies kept for inference (StepGemm without "
        "gradients)");
  m.def("pack_cache_entries", &rnnkit::pack_cache_entries);
  m.def("set_pack_cache_bytes", &rnnkit::set_pack_cache_bytes,
        "the most bytes of packed weights and W^T copies kept for inference (0: none; "
        "empties the cache)");
  m.def("mkl_packed_api", [] { return rnnkit::mkl_packed_api(); },
        "whether MKL's cblas_sgemm_pack/compute were found (in libtorch_cpu)");
  m.def("set_team_rows", [](int64_t n) { rnnkit::team_rows = n; },
        "inference loops of at most n rows run on a team of threads (0: never; for A/B timings)");
  m.def("team_rows", [] { return rnnkit::team_rows; });
  m.def("team_runs", [] { return rnnkit::team_runs.load(); }, "loops run on a team so far");
  m.def("packed", &packed, "whether the per-step products use MKL's packed sgemm");
  m.def("set_pack_by_size", [](bool on) { rnnkit::pack_by_size = on; },
        "training loops pack only where the packed weight has room (default); false: always "
        "(for A/B timings)");
  m.def("pack_by_size", [] { return rnnkit::pack_by_size; });
  m.def("set_slices", [](bool on) { rnnkit::use_slices = on; },
        "unpacked products may run as oneDNN brgemm blocks at 2+ threads (default); false: "
        "BLAS's sgemm (for A/B timings)");
  m.def("set_prefer_slices", [](bool on) { rnnkit::prefer_slices = on; },
        "products run as oneDNN brgemm slices at every thread count where those take them "
        "(training loops, inference without a team, and a team's slices), not MKL's packed sgemm "
        "(default: on a CPU that is not Intel's; RNNKIT_PREFER_SLICES overrides it)");
  m.def("prefer_slices", [] { return rnnkit::prefer_slices; });
  m.def("set_pad_rows", [](bool on) { rnnkit::pad_rows = on; },
        "copies of W^T whose rows would lie a multiple of 1 KB apart get 64 bytes more per row "
        "(default); false: dense (for A/B timings)");
  m.def("pad_rows", [] { return rnnkit::pad_rows; });
  m.def("pack_count", [] { return rnnkit::pack_count.load(); }, "weights packed so far");
  m.def("slice_count", [] { return rnnkit::slice_count.load(); },
        "per-step products run as brgemm slices so far");
  m.def("pack_bytes", [](int64_t B, int64_t N, int64_t K) {
    return rnnkit::mkl_packed_api() ? rnnkit::pack_bytes(B, N, K) : int64_t(-1);
  }, "bytes of MKL's packed form of an (N, K) weight for B rows (-1: no MKL)");
}
