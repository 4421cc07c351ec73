// DI-MatMul speed against oneDNN's int8 GEMM and OpenBLAS's fp32 GEMM, side by side in one run (issue #9):
// the three LLaMA-7B prefill shapes (M = 256) and the decode GEMV (M = 1) of the same layers, 1 and 2 threads,
// illm with 8-bit and with packed 4-bit weights. Prints markdown tables: GOPS (2 operations per multiply-add), the
// share of the measured int8 peak (vpdpbusd throughput), and ratios.
//
// What is timed: illm's operator `linear` (packing the activations, the int32 dot blocks, and the epilogue that
// writes P' = μ·Σ(x − z1)(w − z2) as int64); oneDNN's dnnl_gemm_u8s8s32 (u8 activations × s8 weights → int32, no
// per-row zero points: the cheaper problem); OpenBLAS cblas_sgemm (fp32). Best of --reps runs after one warm-up.
// The oneDNN result, zero-point corrected here, is compared with illm's P' entry by entry ("exact"). Each library
// cycles through copies of its weights totalling at least 64 MB (twice the L3), so weights stream from memory as
// in a decode step instead of staying cached between runs.
//
// Usage: gemm_bench [--reps N] [--kernels PATH] [--quick]   (--quick: decode shapes and the first prefill shape)
#include <dnnl.h>
#include <omp.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench/bench_timing.h"
#include "kernels/cpu_features.h"
#include "kernels/kernel_set.h"
#include "kernels/prepared_linear.h"
#include "kernels/weight_codes.h"

extern "C" {
// OpenBLAS (libopenblas0-pthread ships the library without headers): the two functions used here.
void cblas_sgemm(int order, int trans_a, int trans_b, int m, int n, int k, float alpha, const float* a, int lda,
                 const float* b, int ldb, float beta, float* c, int ldc);
void openblas_set_num_threads(int threads);
}

namespace illm::bench {
int64_t vpdpbusd_loop(int64_t iterations);
}

namespace {

using illm::bench::best_seconds;
using illm::bench::Random;
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

struct Shape {
  int m, n, k;
};

// The measured int8 peak of one thread in GOPS (0 when the CPU has no AVX-512 VNNI).
double measured_int8_peak_gops() {
  const illm::CpuFeatures& f = illm::cpu_features();
  if (!(f.avx512f && f.avx512vnni)) return 0;
  const int64_t iterations = 20'000'000;
  volatile int64_t sink = 0;
  const double seconds = best_seconds(3, true, [&] { sink = sink + illm::bench::vpdpbusd_loop(iterations); });
  return static_cast<double>(iterations) * 12 * 64 * 2 / seconds / 1e9;
}

constexpr size_t kRotationBytes = size_t{64} << 20;

struct Operands {
  illm::QuantizedActivation x;
  illm::QuantizedLinear w8, w4;
  std::vector<int8_t> w8_signed;  // w − 128 for oneDNN's s8 operand
  std::vector<float> xf, wf;
};

// Copies of `value` totalling at least kRotationBytes (`bytes` each), and a cursor cycling through them.
template <typename T>
struct Rotation {
  std::vector<T> copies;
  size_t next = 0;
  Rotation(const T& value, size_t bytes) : copies(std::max<size_t>(1, (kRotationBytes + bytes - 1) / bytes), value) {}
  const T& take() { return copies[next++ % copies.size()]; }
};

Operands make_operands(const Shape& s, uint64_t seed) {
  Random rng{seed * 0x9E3779B97F4A7C15ull + 1};
  Operands o;
  o.x.rows = s.m;
  o.x.cols = s.k;
  o.x.bits = 8;
  o.x.codes.resize(static_cast<size_t>(s.m) * s.k);
  for (auto& c : o.x.codes) c = static_cast<uint16_t>(rng.next() % 256);
  for (int t = 0; t < s.m; ++t) {
    o.x.zero_points.push_back(static_cast<int32_t>(rng.next() % 256));
    o.x.scales.push_back(illm::Dyadic{32768 + static_cast<int64_t>(rng.next() % 32768), 20});
  }
  const size_t count = static_cast<size_t>(s.n) * s.k;
  std::vector<uint8_t> codes8(count), codes4(count);
  o.w8_signed.resize(count);
  for (size_t i = 0; i < count; ++i) {
    const uint64_t r = rng.next();
    codes8[i] = static_cast<uint8_t>(r % 256);
    codes4[i] = static_cast<uint8_t>((r >> 8) % 16);
    o.w8_signed[i] = static_cast<int8_t>(static_cast<int>(codes8[i]) - 128);
  }
  std::vector<int32_t> z8(s.n), z4(s.n);
  std::vector<illm::Dyadic> scales(s.n);
  for (int j = 0; j < s.n; ++j) {
    z8[j] = static_cast<int32_t>(rng.next() % 256);
    z4[j] = static_cast<int32_t>(rng.next() % 16);
    scales[j] = illm::Dyadic{32768 + static_cast<int64_t>(rng.next() % 32768), 20 + static_cast<int32_t>(j % 3)};
  }
  o.w8 = illm::make_quantized_linear(s.n, s.k, 8, codes8, z8, scales);
  o.w4 = illm::make_quantized_linear(s.n, s.k, 4, codes4, z4, scales);
  o.xf.resize(o.x.codes.size());
  for (size_t i = 0; i < o.xf.size(); ++i) o.xf[i] = static_cast<float>(o.x.codes[i]);
  o.wf.resize(count);
  for (size_t i = 0; i < count; ++i) o.wf[i] = static_cast<float>(codes8[i]);
  return o;
}

// oneDNN's raw int32 product, corrected with the zero points and aligned like illm's P'.
bool onednn_equals_illm(const Shape& s, const Operands& o, const illm::PreparedLinear& p,
                        const std::vector<int32_t>& c, const illm::AlignedAccumulator& illm_out) {
  std::vector<int64_t> row_sums(s.m, 0);
  for (int t = 0; t < s.m; ++t)
    for (int k = 0; k < s.k; ++k) row_sums[t] += o.x.codes[static_cast<size_t>(t) * s.k + k];
  for (int t = 0; t < s.m; ++t)
    for (int j = 0; j < s.n; ++j) {
      const int64_t z1 = o.x.zero_points[t], z2 = o.w8.zero_points[j];
      const int64_t raw = int64_t{c[static_cast<size_t>(t) * s.n + j]} + 128 * row_sums[t];  // B was w − 128
      const int64_t centered = raw - z2 * row_sums[t] - z1 * p.code_sums[j] + int64_t{s.k} * z1 * z2;
      if (centered * p.alignment.mantissas[j] != illm_out.values[static_cast<size_t>(t) * s.n + j]) return false;
    }
  return true;
}

struct Row {
  Shape shape;
  int threads;
  double illm8, illm4, onednn, sgemm;  // seconds
  bool exact;
};

double gops(const Shape& s, double seconds) { return 2.0 * s.m * s.n * s.k / seconds / 1e9; }

}  // namespace

int main(int argc, char** argv) {
  int reps = 5;
  bool quick = false;
  std::string kernels = "auto";
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--kernels") && i + 1 < argc) kernels = argv[++i];
    else if (!std::strcmp(argv[i], "--quick")) quick = true;
    else {
      std::fprintf(stderr, "usage: gemm_bench [--reps N] [--kernels PATH] [--quick]\n");
      return 1;
    }
  }
  const illm::KernelSet& k = illm::kernels_by_name(kernels);
  const double peak = measured_int8_peak_gops();
  std::printf("illm kernel path: %s; int8 peak measured on one thread (vpdpbusd zmm, 64 multiply-adds each): %.0f GOPS; "
              "best of %d runs; 1-thread rows: thread CPU time, 2-thread rows: wall time\n\n",
              k.name, peak, reps);

  std::vector<Shape> shapes = {{256, 4096, 4096}, {256, 11008, 4096}, {256, 4096, 11008},
                               {1, 4096, 4096},   {1, 11008, 4096},   {1, 4096, 11008}};
  if (quick) shapes = {{256, 4096, 4096}, {1, 4096, 4096}, {1, 11008, 4096}, {1, 4096, 11008}};
  std::vector<Row> rows;
  uint64_t seed = 1;
  for (const Shape& s : shapes) {
    const Operands o = make_operands(s, seed++);
    const size_t count = static_cast<size_t>(s.n) * s.k;
    Rotation<illm::QuantizedLinear> w8(o.w8, count), w4(o.w4, count / 2);
    Rotation<std::vector<int8_t>> b8(o.w8_signed, count);
    Rotation<std::vector<float>> bf(o.wf, count * 4);
    std::vector<illm::PreparedLinear> p8, p4;  // one per copy (each points at its own codes)
    for (const auto& w : w8.copies) p8.push_back(illm::prepare_linear(w, 16));
    for (const auto& w : w4.copies) p4.push_back(illm::prepare_linear(w, 16));
    size_t next8 = 0, next4 = 0;
    illm::AlignedAccumulator out8, out4;
    std::vector<int32_t> c(static_cast<size_t>(s.m) * s.n);
    std::vector<float> cf(c.size());
    const int32_t zero_offset = 0;
    std::vector<uint8_t> a8(o.x.codes.begin(), o.x.codes.end());
    for (const int threads : {1, 2}) {
      omp_set_num_threads(threads);
      openblas_set_num_threads(threads);
      Row r{s, threads, 0, 0, 0, 0, false};
      const bool cpu_time = threads == 1;
      r.illm8 = best_seconds(reps, cpu_time, [&] { k.linear(o.x, p8[next8++ % p8.size()], out8); });
      r.illm4 = best_seconds(reps, cpu_time, [&] { k.linear(o.x, p4[next4++ % p4.size()], out4); });
      r.onednn = best_seconds(reps, cpu_time, [&] {
        dnnl_gemm_u8s8s32('N', 'T', 'F', s.m, s.n, s.k, 1.0f, a8.data(), s.k, 0, b8.take().data(), s.k, 0, 0.0f,
                          c.data(), s.n, &zero_offset);
      });
      r.sgemm = best_seconds(reps, cpu_time, [&] {
        cblas_sgemm(kRowMajor, kNoTrans, kTrans, s.m, s.n, s.k, 1.0f, o.xf.data(), s.k, bf.take().data(), s.k, 0.0f,
                    cf.data(), s.n);
      });
      // The same weights through both libraries, once more, for the exactness check.
      k.linear(o.x, p8[0], out8);
      dnnl_gemm_u8s8s32('N', 'T', 'F', s.m, s.n, s.k, 1.0f, a8.data(), s.k, 0, b8.copies[0].data(), s.k, 0, 0.0f,
                        c.data(), s.n, &zero_offset);
      r.exact = onednn_equals_illm(s, o, p8[0], c, out8);
      rows.push_back(r);
      std::fprintf(stderr, "  %dx%dx%d, %d thread(s) done\n", s.m, s.n, s.k, threads);
    }
  }

  std::printf("| M×N×K | threads | illm W8 GOPS | illm W4 GOPS | oneDNN u8s8s32 GOPS | OpenBLAS fp32 GFLOPS | "
              "illm W8 / oneDNN | illm W4 / oneDNN | illm W4 / W8 | illm W8 / OpenBLAS | illm W8, W4 %% of int8 peak | "
              "oneDNN = illm (exact) |\n");
  std::printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
  for (const Row& r : rows) {
    const double g8 = gops(r.shape, r.illm8), g4 = gops(r.shape, r.illm4), gd = gops(r.shape, r.onednn),
                 gs = gops(r.shape, r.sgemm);
    const double threads_peak = peak * r.threads;
    char peak_text[64] = "n/a";
    if (threads_peak > 0)
      std::snprintf(peak_text, sizeof peak_text, "%.0f %%, %.0f %%", 100 * g8 / threads_peak, 100 * g4 / threads_peak);
    std::printf("| %d×%d×%d | %d | %.1f | %.1f | %.1f | %.1f | %.2f | %.2f | %.2f | %.2f | %s | %s |\n", r.shape.m,
                r.shape.n, r.shape.k, r.threads, g8, g4, gd, gs, g8 / gd, g4 / gd, g4 / g8, g8 / gs, peak_text,
                r.exact ? "yes" : "NO");
  }
  return 0;
}
