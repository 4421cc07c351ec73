#include "onnx/support/onnx_runtime_runner.h"

#include <sys/wait.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace illm::testing {
namespace {

constexpr char kMagic[] = "ILLMTNS1";
const std::string kNodeBinary = ILLM_NODE_BINARY;
const std::filesystem::path kHarness = std::filesystem::path(ILLM_SOURCE_DIR) / "tests" / "onnx" / "run_onnx.js";
const std::filesystem::path kOrtPackage =
    std::filesystem::path(ILLM_SOURCE_DIR) / "tests" / "onnx" / "node_modules" / "onnxruntime-node" / "package.json";

int element_bytes(int32_t type) {
  switch (type) {
    case kPackInt32: return 4;
    case kPackInt64: return 8;
    case kPackBool: return 1;
  }
  throw std::runtime_error("tensor pack: unsupported element type " + std::to_string(type));
}

void put_u32(std::string& out, uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); }
void put_i64(std::string& out, int64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); }

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error(p.string() + ": cannot read");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string quoted(const std::string& s) { return "'" + s + "'"; }

}  // namespace

void write_tensor_pack(const std::filesystem::path& file, const TensorPack& tensors) {
  std::string out(kMagic, 8);
  put_u32(out, static_cast<uint32_t>(tensors.size()));
  for (const HostTensor& t : tensors) {
    put_u32(out, static_cast<uint32_t>(t.name.size()));
    out += t.name;
    put_u32(out, static_cast<uint32_t>(t.type));
    put_u32(out, static_cast<uint32_t>(t.dims.size()));
    size_t count = 1;
    for (const int64_t d : t.dims) put_i64(out, d), count *= static_cast<size_t>(d);
    if (count != t.values.size()) throw std::runtime_error("tensor pack: " + t.name + " has the wrong element count");
    for (const int64_t v : t.values) {
      if (t.type == kPackInt64) {
        put_i64(out, v);
      } else if (t.type == kPackInt32) {
        const int32_t narrow = static_cast<int32_t>(v);
        out.append(reinterpret_cast<const char*>(&narrow), 4);
      } else {
        out.push_back(static_cast<char>(v != 0));
      }
    }
  }
  std::ofstream f(file, std::ios::binary);
  f.write(out.data(), static_cast<std::streamsize>(out.size()));
  if (!f) throw std::runtime_error(file.string() + ": cannot write");
}

TensorPack read_tensor_pack(const std::filesystem::path& file) {
  const std::string buf = read_file(file);
  size_t at = 0;
  const auto need = [&](size_t n) {
    if (at + n > buf.size()) throw std::runtime_error(file.string() + ": truncated tensor pack");
  };
  const auto u32 = [&] {
    need(4);
    uint32_t v;
    std::memcpy(&v, buf.data() + at, 4);
    at += 4;
    return v;
  };
  need(8);
  if (buf.compare(0, 8, kMagic) != 0) throw std::runtime_error(file.string() + ": not a tensor pack");
  at = 8;
  TensorPack pack(u32());
  for (HostTensor& t : pack) {
    const uint32_t name_length = u32();
    need(name_length);
    t.name = buf.substr(at, name_length);
    at += name_length;
    t.type = static_cast<int32_t>(u32());
    const int bytes = element_bytes(t.type);
    size_t count = 1;
    for (uint32_t r = u32(); r > 0; --r) {
      need(8);
      int64_t d;
      std::memcpy(&d, buf.data() + at, 8);
      at += 8;
      t.dims.push_back(d);
      count *= static_cast<size_t>(d);
    }
    need(count * static_cast<size_t>(bytes));
    t.values.resize(count);
    for (size_t i = 0; i < count; ++i, at += static_cast<size_t>(bytes)) {
      if (bytes == 8) {
        std::memcpy(&t.values[i], buf.data() + at, 8);
      } else if (bytes == 4) {
        int32_t v;
        std::memcpy(&v, buf.data() + at, 4);
        t.values[i] = v;
      } else {
        t.values[i] = buf[at] != 0;
      }
    }
  }
  return pack;
}

const HostTensor& tensor_named(const TensorPack& pack, const std::string& name) {
  for (const HostTensor& t : pack)
    if (t.name == name) return t;
  throw std::runtime_error("tensor pack has no tensor " + name);
}

std::string onnx_runtime_problem() {
  if (kNodeBinary.empty() || !std::filesystem::exists(kNodeBinary))
    return "node (Node.js) was not found when the build was configured: run scripts/setup.sh";
  if (!std::filesystem::exists(kOrtPackage))
    return "onnxruntime-node is not installed in tests/onnx/node_modules: run scripts/setup.sh (npm ci)";
  return {};
}

OnnxRuntimeRun run_onnx_runtime(const std::filesystem::path& model, const std::vector<TensorPack>& inputs,
                                const std::filesystem::path& scratch, int threads, int repeat) {
  if (const std::string problem = onnx_runtime_problem(); !problem.empty()) throw std::runtime_error(problem);
  std::filesystem::create_directories(scratch);
  std::string command = quoted(kNodeBinary) + " " + quoted(kHarness.string()) + " " + quoted(model.string()) +
                        " --threads " + std::to_string(threads) + " --repeat " + std::to_string(repeat);
  std::vector<std::filesystem::path> outputs;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto in = scratch / ("in" + std::to_string(i) + ".tensors");
    const auto out = scratch / ("out" + std::to_string(i) + ".tensors");
    write_tensor_pack(in, inputs[i]);
    std::filesystem::remove(out);
    outputs.push_back(out);
    command.append(" ").append(quoted(in.string())).append(" ").append(quoted(out.string()));
  }
  const auto stdout_file = scratch / "ort.stdout", stderr_file = scratch / "ort.stderr";
  command += " >" + quoted(stdout_file.string()) + " 2>" + quoted(stderr_file.string()) + " </dev/null";
  const int status = std::system(command.c_str());
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    // The harness's own line ("run_onnx.js: …") carries the reason; ONNX Runtime may log lines before it.
    std::string message = read_file(stderr_file);
    if (const size_t at = message.find("run_onnx.js: "); at != std::string::npos) message.erase(0, at);
    if (const size_t nl = message.find('\n'); nl != std::string::npos) message.resize(nl);
    throw std::runtime_error("ONNX Runtime run failed (exit status " + std::to_string(status) + "): " + message);
  }
  const nlohmann::json report = nlohmann::json::parse(read_file(stdout_file));
  OnnxRuntimeRun run;
  run.version = report.at("onnxruntime").get<std::string>();
  run.node_version = report.at("node").get<std::string>();
  run.session_ms = report.at("session_ms").get<double>();
  for (const auto& r : report.at("runs")) run.run_ms.push_back(r.at("ms").get<std::vector<double>>());
  for (const auto& out : outputs) {
    run.outputs.push_back(read_tensor_pack(out));
    std::filesystem::remove(out);
  }
  for (size_t i = 0; i < inputs.size(); ++i) std::filesystem::remove(scratch / ("in" + std::to_string(i) + ".tensors"));
  return run;
}

}  // namespace illm::testing
