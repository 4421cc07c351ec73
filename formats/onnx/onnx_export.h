#pragma once
// Export of an .illm model to an integer-only ONNX model (docs/onnx-export.md): standard-domain operators of opset 17
// (the newest that Debian's libonnx 1.12 knows; ONNX Runtime 1.30 runs it), every tensor an integer or bool,
// bit-exact with the integer executor's logits for a full-sequence prefill. Built with libonnx's protobuf classes
// and checked with onnx::checker plus strict shape inference before anything is written.
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

#include <onnx/onnx_pb.h>

#include "formats/illm_file.h"

namespace illm::formats {

inline constexpr int64_t kOnnxOpset = 17;
inline constexpr int64_t kOnnxIrVersion = 8;

struct OnnxExportOptions {
  bool check = true;  // onnx::checker + strict shape inference before writing (a failure is an illm::Error)
};

struct OnnxExportSummary {
  std::filesystem::path file;
  uint64_t bytes = 0;
  int64_t nodes = 0;
  int64_t initializers = 0;
  uint64_t initializer_bytes = 0;
  std::map<std::string, int64_t> operator_counts;  // op_type → nodes
};

// The model in memory. Throws illm::Error (naming the field and reason) for a model the graph does not support.
onnx::ModelProto build_onnx_model(const LoadedIllm& loaded);

// onnx::checker::check_model, then shape inference with type checks and errors enabled (Python's
// check_model(full_check=True)). Throws illm::Error with the checker's first line.
void check_onnx_model(const onnx::ModelProto& model);

// Deterministic serialization to `out`: written to `<out>.tmp.<pid>` in the same directory, then renamed; on any
// failure nothing is left behind and illm::Error names the file and the reason.
uint64_t write_onnx_model(const onnx::ModelProto& model, const std::filesystem::path& out);

OnnxExportSummary summarize_onnx_model(const onnx::ModelProto& model);

// build_onnx_model → check_onnx_model (unless disabled) → write_onnx_model.
OnnxExportSummary export_onnx(const LoadedIllm& loaded, const std::filesystem::path& out,
                              const OnnxExportOptions& options = {});

}  // namespace illm::formats
