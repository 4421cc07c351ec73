#pragma once
// Runs ONNX models with ONNX Runtime (onnxruntime-node, via tests/onnx/run_onnx.js) for the tests and the benchmark:
// inputs and outputs travel as "tensor pack" files (format in run_onnx.js).
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace illm::testing {

inline constexpr int32_t kPackInt32 = 6;  // ONNX TensorProto element type codes
inline constexpr int32_t kPackInt64 = 7;
inline constexpr int32_t kPackBool = 9;

struct HostTensor {
  std::string name;
  int32_t type = kPackInt64;
  std::vector<int64_t> dims;
  std::vector<int64_t> values;  // every element widened to int64 (bool as 0/1)
};
using TensorPack = std::vector<HostTensor>;

void write_tensor_pack(const std::filesystem::path& file, const TensorPack& tensors);
TensorPack read_tensor_pack(const std::filesystem::path& file);
const HostTensor& tensor_named(const TensorPack& pack, const std::string& name);  // throws if absent

struct OnnxRuntimeRun {
  std::vector<TensorPack> outputs;          // one pack per input pack
  double session_ms = 0;                    // InferenceSession.create
  std::vector<std::vector<double>> run_ms;  // per input pack, per repetition
  std::string version;                      // onnxruntime-node version
  std::string node_version;
};

// Runs `model` on every input pack, `repeat` times each (every run timed; the outputs of the last are kept), with
// `threads` intra-op threads, in one ONNX Runtime session. Files go to `scratch`. Throws std::runtime_error with the harness's message on failure
// (node missing, onnxruntime-node not installed, ONNX Runtime error).
OnnxRuntimeRun run_onnx_runtime(const std::filesystem::path& model, const std::vector<TensorPack>& inputs,
                                const std::filesystem::path& scratch, int threads = 1, int repeat = 1);

// Whether node and the installed onnxruntime-node package are present (for a clear failure message).
std::string onnx_runtime_problem();

}  // namespace illm::testing
