// Full-sequence prefill speed of the exported ONNX graph under ONNX Runtime (onnxruntime-node, CPU) next to the
// integer executor, measured in one run on the same token ids, one thread each; the outputs are compared bit for
// bit as well. Prints a markdown table (docs/onnx-export.md).
// Usage: build/bench/onnx_prefill_speed [--repeat N] [--tokens T] MODEL.illm...
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "formats/illm_file.h"
#include "formats/onnx/llama_graph.h"
#include "formats/onnx/onnx_export.h"
#include "kernels/executor.h"
#include "onnx/support/onnx_runtime_runner.h"

namespace {

namespace fs = std::filesystem;
using namespace illm;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int repeat = 3, tokens = 0;
  std::vector<std::string> models;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--repeat" || a == "--tokens") && i + 1 < argc)
      (a == "--repeat" ? repeat : tokens) = std::atoi(argv[++i]);
    else
      models.push_back(a);
  }
  if (models.empty() || repeat < 1) {
    std::fprintf(stderr, "usage: onnx_prefill_speed [--repeat N] [--tokens T] MODEL.illm...\n");
    return 1;
  }
  omp_set_num_threads(1);
  const fs::path scratch = fs::temp_directory_path() / ("illm_onnx_prefill_speed_" + std::to_string(::getpid()));
  fs::create_directories(scratch);
  std::printf("| model | tokens | executor tok/s | ONNX Runtime tok/s | ONNX Runtime / executor | ORT session set-up s | "
              "bit-exact |\n| --- | --- | --- | --- | --- | --- | --- |\n");
  std::string versions;
  for (const std::string& path : models) {
    const formats::LoadedIllm loaded = formats::read_illm(path);
    const int32_t t = tokens > 0 ? tokens : loaded.model.shape.max_positions;
    std::vector<int32_t> ids(static_cast<size_t>(t));
    for (int32_t i = 0; i < t; ++i) ids[i] = i == 0 ? loaded.model.shape.bos_id : (i * 7919 + 13) % loaded.model.shape.vocab;

    Executor executor(loaded.model);
    std::vector<double> executor_s;
    IntegerLogits expected;
    for (int r = 0; r < repeat; ++r) {
      executor.reset();
      const auto start = std::chrono::steady_clock::now();
      expected = executor.forward(ids);
      executor_s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }

    const fs::path onnx_file = scratch / "model.onnx";
    formats::export_onnx(loaded, onnx_file);
    testing::HostTensor input{formats::onnx_export::kInputIds, testing::kPackInt64, {1, t}, {}};
    input.values.assign(ids.begin(), ids.end());
    const testing::OnnxRuntimeRun run = testing::run_onnx_runtime(onnx_file, {{input}}, scratch, 1, repeat);
    const std::vector<int64_t>& got = testing::tensor_named(run.outputs[0], formats::onnx_export::kLogits).values;
    const bool exact = got == expected.values;
    versions = "onnxruntime-node " + run.version + ", node " + run.node_version;

    const double exec_tps = t / median(executor_s), ort_tps = t / (median(run.run_ms[0]) / 1000.0);
    std::printf("| %s | %d | %.0f | %.0f | %.3f | %.2f | %s |\n", fs::path(path).stem().c_str(), t, exec_tps, ort_tps,
                ort_tps / exec_tps, run.session_ms / 1000.0, exact ? "yes" : "NO");
    std::fflush(stdout);
  }
  std::printf("\nmedian of %d runs each, 1 thread each (%s)\n", repeat, versions.c_str());
  fs::remove_all(scratch);
  return 0;
}
