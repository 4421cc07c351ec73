// Per-group DI-MatMul speed next to the per-row operator (docs/integer-semantics.md "## Per-group DI-MatMul"):
// the operator `linear` of one kernel path on the same codes with one scale per row and with one scale per group of
// G = 128, 64, 32 columns, 4-bit packed and 8-bit weights, a decode GEMV (M = 1) and a prefill GEMM (M = 64) of
// LLaMA-7B's 4096×4096 projection. One thread, thread CPU time (the machine may be shared), best of --reps runs
// after a warm-up. Weights cycle through copies of at least 64 MB so that they stream from memory as in decoding.
// Prints a markdown table with GOPS (2 operations per multiply-add) and the ratio per-group / per-row time, for the
// path's one-pass per-group kernel (kernels/optimized/grouped_dot.h) and, side by side on the same weights, the
// one-dot-block-per-group kernel it replaced (the same path with kGroupedDotNone).
//
// Usage: group_linear_bench [--reps N] [--kernels PATH]
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench/bench_timing.h"
#include "kernels/kernel_set.h"
#include "bench/previous_group_kernel.h"
#include "kernels/optimized/linear.h"
#include "kernels/prepared_linear.h"
#include "kernels/weight_codes.h"

namespace {

using illm::bench::Random;

constexpr size_t kRotationBytes = size_t{64} << 20;

illm::QuantizedLinear make_weight(Random& rng, int32_t n, int32_t k, int32_t bits, int32_t group) {
  const int32_t groups = group == 0 ? 1 : k / group;
  std::vector<uint8_t> codes(static_cast<size_t>(n) * k);
  for (auto& c : codes) c = static_cast<uint8_t>(rng.next() % (1u << bits));
  std::vector<int32_t> zero_points(static_cast<size_t>(n) * groups);
  std::vector<illm::Dyadic> scales(zero_points.size());
  for (size_t i = 0; i < zero_points.size(); ++i) {
    zero_points[i] = static_cast<int32_t>(rng.next() % (1u << bits));
    scales[i] = illm::Dyadic{32768 + static_cast<int64_t>(rng.next() % 32768), 20 + static_cast<int32_t>(i % 3)};
  }
  return illm::make_quantized_linear(n, k, bits, codes, zero_points, scales, group);
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 5;
  std::string kernels = "auto";
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--kernels") && i + 1 < argc) kernels = argv[++i];
    else {
      std::fprintf(stderr, "usage: group_linear_bench [--reps N] [--kernels PATH]\n");
      return 1;
    }
  }
  omp_set_num_threads(1);
  const illm::KernelSet& set = illm::kernels_by_name(kernels);
  if (set.path == illm::KernelPath::kReference) {
    std::fprintf(stderr, "group_linear_bench: the reference path has no optimized kernels to compare\n");
    return 1;
  }
  // The same path without its one-pass per-group kernel: the previous kernel, for the side-by-side column.
  const illm::optimized::Isa previous = illm::bench::isa_without_one_pass(set.path);
  const bool has_one_pass = set.path == illm::KernelPath::kAvx512Vnni;
  std::printf("kernel path %s (one-pass per-group kernel: %s), 1 thread, thread CPU time, best of %d runs\n\n",
              set.name, has_one_pass ? "yes" : "no, both columns run the previous kernel", reps);
  std::printf("| M×N×K | weights | scales | previous GOPS | one-pass GOPS | one-pass speed-up | one-pass time / per-row "
              "time |\n| --- | --- | --- | --- | --- | --- | --- |\n");
  const int32_t n = 4096, k = 4096;
  Random rng{12345};
  for (const int32_t m : {1, 64})
    for (const int32_t bits : {4, 8}) {
      illm::QuantizedActivation x;
      x.rows = m;
      x.cols = k;
      x.bits = 8;
      for (int64_t i = 0; i < int64_t{m} * k; ++i) x.codes.push_back(static_cast<uint16_t>(rng.next() % 256));
      for (int32_t t = 0; t < m; ++t) {
        x.zero_points.push_back(static_cast<int32_t>(rng.next() % 256));
        x.scales.push_back(illm::Dyadic{40000, 20});
      }
      double per_row = 0;
      for (const int32_t group : {0, 128, 64, 32}) {
        const illm::QuantizedLinear w = make_weight(rng, n, k, bits, group);
        const size_t bytes = w.codes.size();
        const size_t copies = std::max<size_t>(1, (kRotationBytes + bytes - 1) / bytes);
        std::vector<illm::QuantizedLinear> weights(copies, w);
        std::vector<illm::PreparedLinear> prepared;
        for (const auto& copy : weights) prepared.push_back(illm::prepare_linear(copy, 16));
        size_t next = 0;
        illm::AlignedAccumulator out, out_previous;
        const double seconds = illm::bench::best_seconds(reps, /*cpu_time=*/true, [&] { set.linear(x, prepared[next++ % copies], out); });
        const double previous_seconds = illm::bench::best_seconds(reps, /*cpu_time=*/true, [&] {
          illm::optimized::linear_accumulate(previous, x, prepared[next++ % copies], out_previous);
        });
        if (out.values != out_previous.values) {  // same weights copy by copy: the kernels must agree
          std::fprintf(stderr, "group_linear_bench: the kernels differ at G = %d, M = %d\n", group, m);
          return 1;
        }
        if (group == 0) per_row = seconds;
        const std::string scales = group == 0 ? "per row" : "G = " + std::to_string(group);
        const double ops = 2.0 * m * n * k;
        std::printf("| %d×%d×%d | W%d | %s | %.1f | %.1f | %.2f× | %.2f |\n", m, n, k, bits, scales.c_str(),
                    ops / previous_seconds / 1e9, ops / seconds / 1e9, previous_seconds / seconds, seconds / per_row);
        std::fflush(stdout);
      }
    }
  return 0;
}
