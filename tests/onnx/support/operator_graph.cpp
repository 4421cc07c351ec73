#include "onnx/support/operator_graph.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include "formats/onnx/onnx_export.h"

namespace illm::testing {

namespace ox = formats::onnx_export;

namespace {
std::vector<ox::Dim> fixed_dims(const std::vector<int64_t>& dims) {
  std::vector<ox::Dim> out;
  for (const int64_t d : dims) out.push_back(ox::Dim::fixed(d));
  return out;
}
}  // namespace

OperatorGraph::OperatorGraph(const IntegerSettings& settings) {
  model_.set_ir_version(formats::kOnnxIrVersion);
  model_.set_producer_name("illm-operator-test");
  onnx::OperatorSetIdProto* opset = model_.add_opset_import();
  opset->set_domain("");
  opset->set_version(formats::kOnnxOpset);
  model_.mutable_graph()->set_name("operator");
  builder_ = std::make_unique<ox::GraphBuilder>(*model_.mutable_graph());
  primitives_ = std::make_unique<ox::IntegerPrimitives>(*builder_);
  operators_ = std::make_unique<ox::DiOperators>(*primitives_, settings);
}

ox::Value OperatorGraph::input(const std::string& name, const std::vector<int64_t>& dims,
                               const std::vector<int64_t>& values) {
  inputs_.push_back(HostTensor{name, kPackInt64, dims, values});
  return builder_->input(name, ox::ElementType::kInt64, fixed_dims(dims));
}

ox::Value OperatorGraph::input_bool(const std::string& name, const std::vector<int64_t>& dims,
                                    const std::vector<int64_t>& values) {
  inputs_.push_back(HostTensor{name, kPackBool, dims, values});
  return builder_->input(name, ox::ElementType::kBool, fixed_dims(dims));
}

void OperatorGraph::output(const ox::Value& v, const std::string& name, const std::vector<int64_t>& dims) {
  builder_->output(v, name, ox::ElementType::kInt64, fixed_dims(dims));
}

TensorPack OperatorGraph::run(const std::filesystem::path& scratch) {
  formats::check_onnx_model(model_);
  const auto file = scratch / "operator.onnx";
  formats::write_onnx_model(model_, file);
  OnnxRuntimeRun r = run_onnx_runtime(file, {inputs_}, scratch);
  return r.outputs.at(0);
}

std::filesystem::path test_scratch_dir(const std::string& prefix) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = prefix + "_" + info->test_suite_name() + "_" + info->name() + "_" + std::to_string(::getpid());
  for (char& c : name)
    if (c == '/') c = '_';
  const auto dir = std::filesystem::temp_directory_path() / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace illm::testing
