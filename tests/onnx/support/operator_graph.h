#pragma once
// A one-operator ONNX model for the operator-level tests: fixed-shape int64 inputs with their values, the exporter's
// subgraph builders (IntegerPrimitives, DiOperators) in between, outputs read back from ONNX Runtime.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

#include "formats/onnx/di_operators.h"
#include "kernels/quantized_model.h"
#include "onnx/support/onnx_runtime_runner.h"

namespace illm::testing {

class OperatorGraph {
 public:
  explicit OperatorGraph(const IntegerSettings& settings = {});

  formats::onnx_export::GraphBuilder& g() { return *builder_; }
  formats::onnx_export::IntegerPrimitives& p() { return *primitives_; }
  formats::onnx_export::DiOperators& di() { return *operators_; }

  // An int64 input of shape `dims` holding `values` (row-major).
  formats::onnx_export::Value input(const std::string& name, const std::vector<int64_t>& dims,
                                    const std::vector<int64_t>& values);
  // A bool input.
  formats::onnx_export::Value input_bool(const std::string& name, const std::vector<int64_t>& dims,
                                         const std::vector<int64_t>& values);
  void output(const formats::onnx_export::Value& v, const std::string& name, const std::vector<int64_t>& dims);

  // Checks the model (onnx::checker, strict shape inference), runs it once with ONNX Runtime, returns the outputs.
  TensorPack run(const std::filesystem::path& scratch);

 private:
  onnx::ModelProto model_;
  std::unique_ptr<formats::onnx_export::GraphBuilder> builder_;
  std::unique_ptr<formats::onnx_export::IntegerPrimitives> primitives_;
  std::unique_ptr<formats::onnx_export::DiOperators> operators_;
  TensorPack inputs_;
};

// A fresh scratch directory named after the running test.
std::filesystem::path test_scratch_dir(const std::string& prefix);

}  // namespace illm::testing
