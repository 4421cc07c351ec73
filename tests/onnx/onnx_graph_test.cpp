// Properties of the exported graphs that need no runtime: every tensor is an integer or bool (inputs, outputs,
// initializers, every value after strict shape inference, attribute tensors), only standard-domain operators of the
// pinned opset, every inferred dimension known (a size or T), none of the ONNX Runtime operators with int64
// defects, onnx::checker on the written file, byte-identical output for identical input, and refusals of models the
// graph does not support.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <tuple>

#include <onnx/checker.h>
#include <onnx/defs/schema.h>
#include <onnx/shape_inference/implementation.h>

#include "formats/illm_file.h"
#include "formats/onnx/llama_graph.h"
#include "formats/onnx/onnx_export.h"
#include "kernels/error.h"
#include "kernels/model_validation.h"
#include "onnx/support/operator_graph.h"
#include "tests/runtime/runtime_synthetic_model.h"

namespace illm {
namespace {

namespace fs = std::filesystem;

const fs::path kModels = fs::path(ILLM_BINARY_DIR) / "test_models";
const char* const kAllModels[] = {"stories260K-w4a4", "stories260K-w4a8", "stories260K-w8a8",
                                  "tinybible-w4a4",   "tinybible-w4a8",   "tinybible-w8a8"};

bool integer_or_bool(int32_t type) {
  switch (type) {
    case onnx::TensorProto::BOOL:
    case onnx::TensorProto::INT8:
    case onnx::TensorProto::UINT8:
    case onnx::TensorProto::INT16:
    case onnx::TensorProto::UINT16:
    case onnx::TensorProto::INT32:
    case onnx::TensorProto::UINT32:
    case onnx::TensorProto::INT64:
    case onnx::TensorProto::UINT64:
      return true;
    default:
      return false;
  }
}

// Every problem found in `model` (after strict shape inference), one line each.
std::vector<std::string> graph_problems(const onnx::ModelProto& exported) {
  std::vector<std::string> problems;
  onnx::ModelProto model = exported;
  onnx::shape_inference::InferShapes(model, onnx::OpSchemaRegistry::Instance(),
                                     onnx::ShapeInferenceOptions(true, 1, true));
  if (model.opset_import_size() != 1 || model.opset_import(0).domain() != "" ||
      model.opset_import(0).version() != formats::kOnnxOpset)
    problems.push_back("opset imports are not exactly the standard domain at opset 17");
  const onnx::GraphProto& graph = model.graph();
  std::map<std::string, int32_t> types;
  const auto check_value = [&](const onnx::ValueInfoProto& v, const char* kind) {
    const auto& t = v.type().tensor_type();
    if (!v.type().has_tensor_type() || !integer_or_bool(t.elem_type()))
      problems.push_back(std::string(kind) + " " + v.name() + " has element type " + std::to_string(t.elem_type()));
    if (!t.has_shape()) {
      problems.push_back(std::string(kind) + " " + v.name() + " has no inferred shape");
      return;
    }
    for (const auto& d : t.shape().dim())
      if (!d.has_dim_value() && d.dim_param() != "T")
        problems.push_back(std::string(kind) + " " + v.name() + " has an unknown dimension");
    types[v.name()] = t.elem_type();
  };
  for (const auto& v : graph.input()) check_value(v, "input");
  for (const auto& v : graph.output()) check_value(v, "output");
  for (const auto& v : graph.value_info()) check_value(v, "value");
  for (const auto& t : graph.initializer()) {
    if (!integer_or_bool(t.data_type()))
      problems.push_back("initializer " + t.name() + " has element type " + std::to_string(t.data_type()));
    types[t.name()] = t.data_type();
  }
  const std::set<std::string> defective{"Max", "Min", "Sign", "Clip"};  // int64 defects in ONNX Runtime 1.30
  for (const auto& n : graph.node()) {
    if (!n.domain().empty()) problems.push_back(n.op_type() + " node in domain " + n.domain());
    if (onnx::OpSchemaRegistry::Schema(n.op_type(), static_cast<int>(formats::kOnnxOpset), "") == nullptr)
      problems.push_back(n.op_type() + " is not a standard operator of opset 17");
    if (defective.count(n.op_type()) != 0) problems.push_back(n.op_type() + " node (int64 defect in ONNX Runtime)");
    if ((n.op_type() == "ReduceMax" || n.op_type() == "ReduceMin") && types[n.input(0)] != onnx::TensorProto::INT32)
      problems.push_back(n.op_type() + " on a non-int32 input " + n.input(0));
    for (const auto& o : n.output())
      if (types.count(o) == 0) problems.push_back(n.op_type() + " output " + o + " has no inferred type");
    for (const auto& a : n.attribute()) {
      if (a.has_t() && !integer_or_bool(a.t().data_type()))
        problems.push_back(n.op_type() + " attribute " + a.name() + " holds a non-integer tensor");
      for (const auto& t : a.tensors())
        if (!integer_or_bool(t.data_type()))
          problems.push_back(n.op_type() + " attribute " + a.name() + " holds a non-integer tensor");
      if (a.type() == onnx::AttributeProto::FLOAT || a.type() == onnx::AttributeProto::FLOATS)
        problems.push_back(n.op_type() + " has a float attribute " + a.name());
    }
  }
  return problems;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(OnnxGraph, EveryTensorOfEveryExportedModelIsIntegerWithStandardOperatorsAndKnownShapes) {
  for (const char* name : kAllModels) {
    const formats::LoadedIllm loaded = formats::read_illm(kModels / (std::string(name) + ".illm"));
    const std::vector<std::string> problems = graph_problems(formats::build_onnx_model(loaded));
    EXPECT_TRUE(problems.empty()) << name << ": " << problems.size() << " problems, first: " << problems.front();
  }
}

TEST(OnnxGraph, PerGroupActivationGraphsPassTheWalkAndOtherGraphsKeepTheirNodes) {
  // Per-group activations (act_group_size set in memory; with both online Hadamards where marked; tinybible-w4a4-g32
  // also with per-group weights, G = 32; stories260K with a short last group: 172 = 21·8 + 4, and at 128 also the
  // 64-wide inputs, one group of 64).
  for (const auto& [name, group_size, hadamards] : {std::tuple<const char*, int32_t, bool>{"tinybible-w4a4", 16, false},
                                                    {"tinybible-w8a8", 32, true},
                                                    {"tinybible-w4a4-g32", 16, false},
                                                    {"tinybible-w4a4-g32", 32, true},
                                                    {"tinybible-w4a4-g32", 8, false},
                                                    {"stories260K-w4a4", 8, true},
                                                    {"stories260K-w8a8", 128, false}}) {
    formats::LoadedIllm loaded = formats::read_illm(kModels / (std::string(name) + ".illm"));
    loaded.model.act_group_size = group_size;
    loaded.model.hadamard_down = loaded.model.hadamard_qk = hadamards;
    const std::vector<std::string> problems = graph_problems(formats::build_onnx_model(loaded));
    EXPECT_TRUE(problems.empty()) << name << ": " << problems.size() << " problems, first: " << problems.front();
  }
  // Regression lock: the node counts of the per-token models as the exporter made them before per-group activations
  // (commit fec97aa; its files and this exporter's were also compared byte for byte, identical).
  const int expected_nodes[] = {13796, 13796, 13551, 16501, 16501, 16207};
  for (size_t i = 0; i < std::size(kAllModels); ++i)
    EXPECT_EQ(formats::build_onnx_model(formats::read_illm(kModels / (std::string(kAllModels[i]) + ".illm")))
                  .graph()
                  .node_size(),
              expected_nodes[i])
        << kAllModels[i];
  // And those of per-group-activation graphs without a short group or G = 8 as before both (commit 438562b; files
  // compared byte for byte with this exporter's, identical): the padding adds nodes only where a group is short.
  for (const auto& [name, nodes] : {std::pair<const char*, int>{"tinybible-w4a4", 20947}, {"tinybible-w4a4-g32", 21115}}) {
    formats::LoadedIllm loaded = formats::read_illm(kModels / (std::string(name) + ".illm"));
    loaded.model.act_group_size = 16;
    EXPECT_EQ(formats::build_onnx_model(loaded).graph().node_size(), nodes) << name;
  }
}

TEST(OnnxGraph, HeadOptionGraphsPassTheWalkAndTheirDefaultsKeepTheBytes) {
  // settings.head_in_bits = 16 with an LM head of per-group weights (G = 32; its scales need not be calibrated for
  // the walk: the row's codes, zero point and scale repeated per group).
  const fs::path dir = testing::test_scratch_dir("onnx_graph");
  formats::LoadedIllm loaded = formats::read_illm(kModels / "tinybible-w4a4.illm");
  formats::export_onnx(loaded, dir / "plain.onnx", {.check = false});
  QuantizedLinear& head = loaded.model.lm_head;
  formats::LoadedIllm wide = loaded;
  wide.model.settings.head_in_bits = 16;
  QuantizedLinear& grouped = wide.model.lm_head;
  grouped.group_size = 32;
  grouped.zero_points.clear();
  grouped.scales.clear();
  for (int32_t r = 0; r < head.out_features; ++r)
    for (int32_t g = 0; g < head.in_features / 32; ++g) {
      grouped.zero_points.push_back(head.zero_points[static_cast<size_t>(r)]);
      grouped.scales.push_back(head.scales[static_cast<size_t>(r)]);
    }
  const std::vector<std::string> problems = graph_problems(formats::build_onnx_model(wide));
  EXPECT_TRUE(problems.empty()) << problems.size() << " problems, first: " << problems.front();
  // The options at their defaults written out (head_in_bits = head_bits, one group of in_features columns) change
  // no byte of the export.
  loaded.model.settings.head_in_bits = loaded.model.settings.head_bits;
  head.group_size = head.in_features;
  formats::export_onnx(loaded, dir / "defaults.onnx", {.check = false});
  EXPECT_TRUE(read_bytes(dir / "defaults.onnx") == read_bytes(dir / "plain.onnx"));
  fs::remove_all(dir);
}

TEST(OnnxGraph, QkvBitsGraphsPassTheWalkAndQkvAtABitsKeepsTheBytes) {
  // settings.qkv_bits set in memory: 8 on W4A4 (per token; with act groups of 8 and both online Hadamards) and 4 on
  // W8A8 (with act groups of 16).
  for (const auto& [name, qkv_bits, group_size, hadamards] :
       {std::tuple<const char*, int32_t, int32_t, bool>{"tinybible-w4a4", 8, 0, false},
        {"stories260K-w4a4", 8, 8, true},
        {"tinybible-w8a8", 4, 16, false}}) {
    formats::LoadedIllm loaded = formats::read_illm(kModels / (std::string(name) + ".illm"));
    loaded.model.settings.qkv_bits = qkv_bits;
    loaded.model.act_group_size = group_size;
    loaded.model.hadamard_down = loaded.model.hadamard_qk = hadamards;
    const std::vector<std::string> problems = graph_problems(formats::build_onnx_model(loaded));
    EXPECT_TRUE(problems.empty()) << name << ": " << problems.size() << " problems, first: " << problems.front();
  }
  // qkv_bits = a_bits written out is the model without it: the same bytes; another width changes them.
  const fs::path dir = testing::test_scratch_dir("onnx_graph");
  formats::LoadedIllm loaded = formats::read_illm(kModels / "stories260K-w4a4.illm");
  formats::export_onnx(loaded, dir / "plain.onnx", {.check = false});
  loaded.model.settings.qkv_bits = loaded.model.settings.a_bits;
  formats::export_onnx(loaded, dir / "explicit.onnx", {.check = false});
  loaded.model.settings.qkv_bits = 8;
  formats::export_onnx(loaded, dir / "kv8.onnx", {.check = false});
  EXPECT_TRUE(read_bytes(dir / "explicit.onnx") == read_bytes(dir / "plain.onnx"));
  EXPECT_FALSE(read_bytes(dir / "kv8.onnx") == read_bytes(dir / "plain.onnx"));
  fs::remove_all(dir);
}

TEST(OnnxGraph, TheGraphWalkFindsAFloatTensor) {
  // The walk itself must fail on a float anywhere: an initializer, and an intermediate (a Cast to float).
  const formats::LoadedIllm loaded = formats::read_illm(kModels / "stories260K-w4a4.illm");
  onnx::ModelProto model = formats::build_onnx_model(loaded);
  onnx::TensorProto* t = model.mutable_graph()->add_initializer();
  t->set_name("stray");
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_float_data(1.0f);
  EXPECT_FALSE(graph_problems(model).empty());
  onnx::ModelProto with_cast = formats::build_onnx_model(loaded);
  onnx::NodeProto* n = with_cast.mutable_graph()->add_node();
  n->set_op_type("Cast");
  n->add_input("input_ids");
  n->add_output("as_float");
  onnx::AttributeProto* to = n->add_attribute();
  to->set_name("to");
  to->set_type(onnx::AttributeProto::INT);
  to->set_i(onnx::TensorProto::FLOAT);
  const std::vector<std::string> problems = graph_problems(with_cast);
  ASSERT_FALSE(problems.empty());
  EXPECT_NE(problems.front().find("as_float"), std::string::npos) << problems.front();
}

TEST(OnnxGraph, CheckerAcceptsEveryWrittenFileAndExportsAreByteIdentical) {
  const fs::path dir = testing::test_scratch_dir("onnx_graph");
  for (const char* name : kAllModels) {
    const formats::LoadedIllm loaded = formats::read_illm(kModels / (std::string(name) + ".illm"));
    const fs::path first = dir / "first.onnx", second = dir / "second.onnx";
    const formats::OnnxExportSummary s = formats::export_onnx(loaded, first);
    formats::export_onnx(formats::read_illm(kModels / (std::string(name) + ".illm")), second);
    EXPECT_EQ(s.bytes, fs::file_size(first));
    EXPECT_EQ(read_bytes(first), read_bytes(second)) << name << ": two exports differ";
    EXPECT_NO_THROW(onnx::checker::check_model(first.string())) << name;
    onnx::ModelProto parsed;
    std::ifstream in(first, std::ios::binary);
    ASSERT_TRUE(parsed.ParseFromIstream(&in)) << name;
    EXPECT_NO_THROW(formats::check_onnx_model(parsed)) << name;  // full check incl. strict shape inference
    for (const auto& entry : fs::directory_iterator(dir))  // nothing but the two outputs: no temporary files
      EXPECT_TRUE(entry.path() == first || entry.path() == second) << entry.path();
  }
  fs::remove_all(dir);
}

TEST(OnnxGraph, UnsupportedSettingsAreRefusedWithTheFieldAndNothingIsWritten) {
  const fs::path dir = testing::test_scratch_dir("onnx_graph");
  const fs::path out = dir / "model.onnx";
  formats::LoadedIllm loaded = formats::read_illm(kModels / "stories260K-w4a4.illm");
  loaded.model.settings.mantissa_bits = 2;
  try {
    formats::export_onnx(loaded, out);
    FAIL() << "mantissa_bits = 2 was exported";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("settings.mantissa_bits"), std::string::npos) << e.what();
  }
  loaded = formats::read_illm(kModels / "stories260K-w4a4.illm");
  loaded.model.layers[1].q_proj.bits = 3;  // fails the executor's own validation, which the exporter runs first
  try {
    formats::export_onnx(loaded, out);
    FAIL() << "an invalid model was exported";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layers[1].q_proj.bits"), std::string::npos) << e.what();
  }
  loaded = formats::read_illm(kModels / "stories260K-w4a4.illm");
  loaded.model.settings.qkv_bits = 9;  // beyond the attention's 8-bit codes: model validation refuses it
  try {
    formats::export_onnx(loaded, out);
    FAIL() << "qkv_bits = 9 was exported";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("qkv_bits"), std::string::npos) << e.what();
  }
  // Per-group weights (G = 32) with activation groups that do not divide them (A = 64).
  loaded = formats::read_illm(kModels / "tinybible-w4a4-g32.illm");
  loaded.model.act_group_size = 64;
  try {
    formats::export_onnx(loaded, out);
    FAIL() << "act_group_size 64 with 32-wide weight groups was exported";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layers[0].q_proj.group_size"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::is_empty(dir));
  fs::remove_all(dir);
}

TEST(OnnxGraph, TheLmHeadBoundUsesTheHeadInputWidth) {
  // A layerless synthetic model with hidden 8448 and 8-bit head weights: head_bits-wide (8-bit) head inputs keep the
  // aligned accumulator below 2^61 (8448·255·255·2^24 < 2^53), 16-bit ones do not (8448·65535·255·2^24 > 2^61),
  // though the executor's own bound (2^63) still admits them.
  rt_testing::SyntheticShape shape;
  shape.hidden = 8448;
  shape.layers = 0;
  shape.vocab = 4;
  QuantizedModel model = rt_testing::synthetic_model(shape);
  ASSERT_EQ(model.settings.head_bits, 8);
  EXPECT_NO_THROW(formats::onnx_export::check_exportable(model));
  model.settings.head_in_bits = 12;
  EXPECT_NO_THROW(formats::onnx_export::check_exportable(model));
  model.settings.head_in_bits = 16;
  EXPECT_NO_THROW(validate_quantized_model(model));
  try {
    formats::onnx_export::check_exportable(model);
    FAIL() << "a 16-bit head input over 8448 channels was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lm_head has a reduction length 8448"), std::string::npos) << e.what();
  }
}

TEST(OnnxGraph, AnUnwritablePathGivesOneErrorAndLeavesNothing) {
  const fs::path dir = testing::test_scratch_dir("onnx_graph");
  const fs::path not_a_directory = dir / "file";
  std::ofstream(not_a_directory) << "x";
  const formats::LoadedIllm loaded = formats::read_illm(kModels / "stories260K-w4a4.illm");
  try {
    formats::export_onnx(loaded, not_a_directory / "model.onnx");
    FAIL() << "wrote below a regular file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find((not_a_directory / "model.onnx").string()), std::string::npos) << e.what();
  }
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace illm
