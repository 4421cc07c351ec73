// Whole-model speed of per-group models (docs/results.md "Per-group weight scales in the integer path"): prefill
// (256 tokens in one call) and decode (one token per call, positions 1…255) tokens/s of .illm models, each with the
// kernel path's one-pass per-group DI-MatMul (kernels/optimized/grouped_dot.h) and, side by side in the same run,
// with the previous one-dot-block-per-group kernel (the same path with kGroupedDotNone). A per-row model of the
// same shape gives the per-channel speed to compare with. 1 thread: thread CPU time; 2 threads: wall time (the
// machine may be shared). Checks that both kernels give identical logits. Prints a markdown table.
//
// Usage: group_model_speed --models DIR [--reps N] [--kernels PATH] MODEL [MODEL…]   (MODEL: DIR/MODEL.illm)
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/bench_timing.h"
#include "bench/previous_group_kernel.h"
#include "formats/illm_file.h"
#include "kernels/error.h"
#include "kernels/executor.h"
#include "kernels/optimized/linear.h"

namespace {

// The path's kernels without the one-pass per-group kernel (set by main before any call).
illm::KernelPath previous_path = illm::KernelPath::kPortable;

void previous_linear(const illm::QuantizedActivation& x, const illm::PreparedLinear& w, illm::AlignedAccumulator& out) {
  illm::optimized::linear_accumulate(illm::bench::isa_without_one_pass(previous_path), x, w, out);
}

struct Speed {
  double prefill = 0, decode = 0;  // tokens/s
};

Speed measure(illm::Executor& executor, const std::vector<int32_t>& ids, int threads, int reps) {
  omp_set_num_threads(threads);
  const bool cpu_time = threads == 1;
  const auto now = [&] { return cpu_time ? illm::bench::thread_cpu_seconds() : illm::bench::wall_seconds(); };
  double prefill = 1e30, decode = 1e30;
  for (int r = 0; r < reps; ++r) {
    executor.reset();
    double start = now();
    executor.forward(ids);
    prefill = std::min(prefill, now() - start);
    executor.reset();
    executor.forward(std::span<const int32_t>(ids.data(), 1));
    start = now();
    for (size_t t = 1; t < ids.size(); ++t) executor.forward(std::span<const int32_t>(&ids[t], 1));
    decode = std::min(decode, now() - start);
  }
  return Speed{static_cast<double>(ids.size()) / prefill, static_cast<double>(ids.size() - 1) / decode};
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 3;
  std::string kernels = "auto", models;
  std::vector<std::string> names;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--kernels") && i + 1 < argc) kernels = argv[++i];
    else if (!std::strcmp(argv[i], "--models") && i + 1 < argc) models = argv[++i];
    else if (argv[i][0] != '-') names.push_back(argv[i]);
    else names.clear(), models.clear(), i = argc;
  }
  if (models.empty() || names.empty()) {
    std::fprintf(stderr, "usage: group_model_speed --models DIR [--reps N] [--kernels PATH] MODEL [MODEL...]\n");
    return 1;
  }
  try {
    const illm::KernelSet& set = illm::kernels_by_name(kernels);
    if (set.path == illm::KernelPath::kReference) throw illm::Error("the reference path has no optimized kernels");
    previous_path = set.path;
    illm::KernelSet previous = set;
    previous.linear = previous_linear;
    std::printf("kernel path %s, 256-token prefill, 255 one-token decode calls, best of %d runs\n\n", set.name, reps);
    std::printf("| model | threads | clock | prefill tok/s previous | prefill tok/s one-pass | speed-up | decode tok/s "
                "previous | decode tok/s one-pass | speed-up |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (const std::string& name : names) {
      const illm::formats::LoadedIllm loaded = illm::formats::read_illm(models + "/" + name + ".illm");
      std::vector<int32_t> ids;
      illm::bench::Random rng{7};
      for (int t = 0; t < 256; ++t) ids.push_back(static_cast<int32_t>(rng.next() % loaded.model.shape.vocab));
      illm::Executor fast(loaded.model, set), slow(loaded.model, previous);
      const illm::IntegerLogits a = fast.forward(ids), b = slow.forward(ids);
      if (a.values != b.values) throw illm::Error(name + ": the two kernels give different logits");
      for (const int threads : {1, 2}) {
        const Speed old_speed = measure(slow, ids, threads, reps), new_speed = measure(fast, ids, threads, reps);
        std::printf("| %s | %d | %s | %.0f | %.0f | %.2f× | %.0f | %.0f | %.2f× |\n", name.c_str(), threads,
                    threads == 1 ? "thread CPU" : "wall", old_speed.prefill, new_speed.prefill,
                    new_speed.prefill / old_speed.prefill, old_speed.decode, new_speed.decode,
                    new_speed.decode / old_speed.decode);
        std::fflush(stdout);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "group_model_speed: %s\n", e.what());
    return 1;
  }
  return 0;
}
