#include "formats/onnx/onnx_export.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <onnx/checker.h>
#include <onnx/shape_inference/implementation.h>

#include <illm/build_info.h>
#include "formats/onnx/graph_builder.h"
#include "formats/onnx/llama_graph.h"
#include "kernels/error.h"

namespace illm::formats {
namespace {

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

void add_metadata(onnx::ModelProto& model, const std::string& key, const std::string& value) {
  onnx::StringStringEntryProto* entry = model.add_metadata_props();
  entry->set_key(key);
  entry->set_value(value);
}

std::string serialize(const onnx::ModelProto& model) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    if (!model.SerializeToCodedStream(&coded)) throw Error("ONNX export: protobuf serialization failed");
  }
  return bytes;
}

}  // namespace

onnx::ModelProto build_onnx_model(const LoadedIllm& loaded) {
  const QuantizedModel& m = loaded.model;
  onnx::ModelProto model;
  model.set_ir_version(kOnnxIrVersion);
  model.set_producer_name("illm");
  model.set_producer_version(build_info::kVersion);
  model.set_model_version(1);
  model.set_doc_string(
      "Integer-only I-LLM forward pass exported by illm (docs/onnx-export.md): prefill of input_ids [1, T] from "
      "position 0 with causal attention; logits [1, T, vocab] is the LM head's int64 aligned accumulator, real logit "
      "= logits * logits_scale_mantissa / 2^logits_scale_exponent.");
  onnx::OperatorSetIdProto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);
  add_metadata(model, "illm.source", loaded.meta.source_name);
  add_metadata(model, "illm.source_sha256", loaded.meta.source_sha256);
  add_metadata(model, "illm.max_positions", std::to_string(m.shape.max_positions));
  add_metadata(model, "illm.vocab", std::to_string(m.shape.vocab));

  onnx::GraphProto* graph = model.mutable_graph();
  graph->set_name(loaded.meta.source_name.empty() ? "illm" : "illm_" + loaded.meta.source_name);
  onnx_export::GraphBuilder builder(*graph);
  onnx_export::build_llama_graph(builder, m);
  return model;
}

void check_onnx_model(const onnx::ModelProto& model) {
  try {
    onnx::checker::check_model(model);
    onnx::ModelProto inferred = model;
    const onnx::ShapeInferenceOptions strict(/*check_type=*/true, /*error_mode=*/1, /*data_propagation=*/true);
    onnx::shape_inference::InferShapes(inferred, onnx::OpSchemaRegistry::Instance(), strict);
  } catch (const std::exception& e) {
    throw Error("ONNX export: the graph fails onnx::checker: " + first_line(e.what()));
  }
}

uint64_t write_onnx_model(const onnx::ModelProto& model, const std::filesystem::path& out) {
  const std::string bytes = serialize(model);
  const std::filesystem::path temporary = out.string() + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    throw Error(out.string() + ": cannot create the temporary file " + temporary.string() + ": " + std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  // fsync before the rename, so that after a crash the final name never points at unwritten data.
  const bool ok = done == bytes.size() && ::fsync(fd) == 0;
  const int saved_errno = errno;
  ::close(fd);
  std::error_code ec;
  if (ok) std::filesystem::rename(temporary, out, ec);
  if (!ok || ec) {
    std::filesystem::remove(temporary, ec);
    throw Error(out.string() + ": cannot write the ONNX model: " + (ok ? ec.message() : std::strerror(saved_errno)));
  }
  return bytes.size();
}

OnnxExportSummary summarize_onnx_model(const onnx::ModelProto& model) {
  OnnxExportSummary s;
  const onnx::GraphProto& graph = model.graph();
  s.nodes = graph.node_size();
  s.initializers = graph.initializer_size();
  for (const onnx::TensorProto& t : graph.initializer()) s.initializer_bytes += t.raw_data().size();
  for (const onnx::NodeProto& n : graph.node()) ++s.operator_counts[n.op_type()];
  return s;
}

OnnxExportSummary export_onnx(const LoadedIllm& loaded, const std::filesystem::path& out,
                              const OnnxExportOptions& options) {
  const onnx::ModelProto model = build_onnx_model(loaded);
  if (options.check) check_onnx_model(model);
  OnnxExportSummary summary = summarize_onnx_model(model);
  summary.bytes = write_onnx_model(model, out);
  summary.file = out;
  return summary;
}

}  // namespace illm::formats
