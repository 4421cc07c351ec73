// `illm export --format FORMAT --model M.illm -o OUT`: writes an integer model for another runtime.
// Formats are a table (kFormats):
//   c99  = OUT/model.bin (formats/model_bin.h, docs/model-bin.md) and the dependency-free C99 runtime's sources
//          (runtime/), checked before anything is written: the written bytes are loaded by the runtime and the file's
//          golden vectors replayed through it bit for bit. Everything goes to a temporary directory beside OUT first
//          and is moved into OUT at the end, so a failed export leaves nothing half-written.
//   onnx = the file OUT, an integer-only ONNX graph (formats/onnx/onnx_export.h, docs/onnx-export.md), checked with
//          onnx::checker and strict shape inference, written to a temporary file beside OUT and renamed.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "converter/commands.h"
#include "converter/output_check.h"
#include "converter/output_guard.h"
#include "converter/runtime_sources.h"
#include "formats/illm_file.h"
#include "formats/model_bin.h"
#include "formats/onnx/onnx_export.h"
#include "formats/sha256.h"
#include "kernels/error.h"
#include "kernels/executor.h"
#include "runtime/illm_rt.h"

namespace illm::converter {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

struct ExportOptions {
  std::string format;
  std::string model;
  std::string output;
  int32_t context = 0;
  bool json = false;
  bool quiet = false;
};

// A directory beside the output that is removed unless release()d.
class StagingDirectory {
 public:
  explicit StagingDirectory(const fs::path& output) {
    const fs::path parent = output.parent_path().empty() ? fs::path(".") : output.parent_path();
    if (!fs::is_directory(parent)) throw Error(output.string() + ": parent directory " + parent.string() + " does not exist");
    path_ = parent / ("." + output.filename().string() + ".tmp." + std::to_string(::getpid()));
    std::error_code ec;
    fs::remove_all(path_, ec);
    if (!fs::create_directory(path_, ec) || ec)
      throw Error(output.string() + ": cannot create a directory in " + parent.string() + ": " +
                  (ec ? ec.message() : std::string("already exists")));
  }
  ~StagingDirectory() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  StagingDirectory(const StagingDirectory&) = delete;
  StagingDirectory& operator=(const StagingDirectory&) = delete;
  const fs::path& path() const { return path_; }

  // Moves the staged files into `output` (created when missing; existing files of the same name are replaced, unless
  // the guard refuses one: then nothing is moved).
  void commit(const fs::path& output, const OutputGuard& guard) {
    std::error_code ec;
    if (fs::exists(output))
      for (const auto& entry : fs::directory_iterator(path_)) guard.check(output / entry.path().filename(), "output");
    if (!fs::exists(output)) {
      fs::rename(path_, output, ec);
      if (ec) throw Error(output.string() + ": cannot create: " + ec.message());
      path_.clear();
      return;
    }
    for (const auto& entry : fs::directory_iterator(path_)) {
      fs::rename(entry.path(), output / entry.path().filename(), ec);
      if (ec) throw Error((output / entry.path().filename()).string() + ": cannot write: " + ec.message());
    }
  }

 private:
  fs::path path_;
};

void write_bytes(const fs::path& path, const void* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error(path.string() + ": cannot open for writing");
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  if (!out) throw Error(path.string() + ": write error");
}

// Runs `ids` token by token through the C runtime and compares every position's logits and scale with `expected`
// ([tokens][vocab] values, one dyadic per token). Throws naming the first difference.
void replay_in_runtime(illm_rt_session& session, const std::vector<int32_t>& ids, const std::vector<int64_t>& expected,
                       const std::vector<Dyadic>& expected_scales, const std::string& what) {
  illm_rt_error err;
  illm_rt_session_reset(&session);
  const size_t vocab = static_cast<size_t>(session.model->shape.vocab);
  for (size_t t = 0; t < ids.size(); ++t) {
    if (illm_rt_forward(&session, ids[t], &err) != ILLM_RT_OK)
      throw Error(fmt::format("{}: the C runtime failed at position {}: {}", what, t, err.message));
    const Dyadic scale = expected_scales[t];
    if (session.logits.scale.m != scale.m || session.logits.scale.k != scale.k)
      throw Error(fmt::format("{}: logit scale at position {} differs: executor {}/2^{}, C runtime {}/2^{}", what, t,
                              scale.m, scale.k, session.logits.scale.m, session.logits.scale.k));
    for (size_t v = 0; v < vocab; ++v)
      if (session.logits.values[v] != expected[t * vocab + v])
        throw Error(fmt::format("{}: logit at position {}, vocab index {} differs: executor {}, C runtime {}", what, t, v,
                                expected[t * vocab + v], session.logits.values[v]));
  }
}

// Loads the written bytes with the C runtime and replays the golden vectors (or, without any, a short sequence
// through the executor) bit for bit. Returns the number of positions compared.
size_t check_with_runtime(const std::vector<uint8_t>& bytes, const formats::LoadedIllm& loaded, int32_t context,
                          size_t& sequences) {
  illm_rt_model model;
  illm_rt_error err;
  if (illm_rt_load(&model, bytes.data(), bytes.size(), &err) != ILLM_RT_OK)
    throw Error(std::string("the C runtime refuses the written model.bin: ") + err.message);
  std::vector<uint8_t> arena(illm_rt_arena_size(&model, context));
  illm_rt_session session;
  if (illm_rt_session_init(&session, &model, arena.data(), arena.size(), context, &err) != ILLM_RT_OK)
    throw Error(std::string("the C runtime cannot start a session: ") + err.message);
  size_t positions = 0;
  sequences = 0;
  for (size_t i = 0; i < loaded.meta.golden.size(); ++i) {
    const formats::GoldenVector& g = loaded.meta.golden[i];
    // Positions past the export's context cannot run there; compare the prefix that fits.
    const size_t n = std::min(g.input_ids.size(), static_cast<size_t>(context));
    const std::vector<int32_t> ids(g.input_ids.begin(), g.input_ids.begin() + static_cast<ptrdiff_t>(n));
    replay_in_runtime(session, ids, g.logits, g.logit_scales, fmt::format("golden vector {:02d}", i));
    positions += n;
    ++sequences;
  }
  if (sequences == 0) {
    std::vector<int32_t> ids;
    for (int32_t t = 0; t < std::min<int32_t>(16, context); ++t)
      ids.push_back(t == 0 ? loaded.model.shape.bos_id : (t * 37) % loaded.model.shape.vocab);
    Executor executor(loaded.model);
    const IntegerLogits logits = executor.forward(ids);
    replay_in_runtime(session, ids, logits.values, logits.scales, "executor check sequence");
    positions += ids.size();
    sequences = 1;
  }
  return positions;
}

Json export_c99(const ExportOptions& opt, const fs::path& staging) {
  const fs::path file = opt.model;
  formats::verify_illm_integrity(file);  // header and tensor checksums, naming the file / tensor
  const formats::LoadedIllm loaded = formats::read_illm(file);
  formats::ModelBinOptions options;
  options.context = opt.context;
  options.source_sha256 = formats::to_hex(formats::sha256_of_file(file, formats::kIllmUserBlockSize));
  const formats::ModelBin bin = formats::build_model_bin(loaded.model, loaded.meta.tokenizer_model, options);
  size_t sequences = 0;
  const size_t positions = check_with_runtime(bin.bytes, loaded, bin.context, sequences);

  write_bytes(staging / "model.bin", bin.bytes.data(), bin.bytes.size());
  Json files = Json::array();
  files.push_back("model.bin");
  for (const EmbeddedFile& f : runtime_source_files()) {
    write_bytes(staging / f.name, f.data, f.size);
    files.push_back(f.name);
  }
  Json j;
  j["format"] = "c99";
  j["model_file"] = opt.model;
  j["output"] = opt.output;
  j["files"] = files;
  j["model_bin_bytes"] = bin.bytes.size();
  j["illm_bytes"] = fs::file_size(file);
  j["context"] = bin.context;
  j["arena_bytes"] = bin.arena_bytes;
  j["tokenizer"] = !bin.tokenizer.present ? "none" : (bin.tokenizer.can_encode ? "encode+decode" : "decode only");
  if (!bin.tokenizer.note.empty()) j["tokenizer_note"] = bin.tokenizer.note;
  j["checked_sequences"] = sequences;
  j["checked_positions"] = positions;
  return j;
}

void print_c99(const ExportOptions& opt, const Json& report) {
  std::printf("%s: wrote %s/model.bin (%s bytes; source %s bytes) and the C99 runtime sources\n", opt.model.c_str(),
              opt.output.c_str(), fmt::format("{}", report["model_bin_bytes"].get<uint64_t>()).c_str(),
              fmt::format("{}", report["illm_bytes"].get<uint64_t>()).c_str());
  std::printf("context %d positions, arena %s bytes, tokenizer: %s\n", report["context"].get<int32_t>(),
              fmt::format("{}", report["arena_bytes"].get<uint64_t>()).c_str(),
              report["tokenizer"].get<std::string>().c_str());
  if (report.contains("tokenizer_note")) std::printf("note: %s\n", report["tokenizer_note"].get<std::string>().c_str());
  std::printf("checked: the C runtime reproduces the executor's logits bit for bit on %zu sequences (%zu positions)\n",
              report["checked_sequences"].get<size_t>(), report["checked_positions"].get<size_t>());
  std::printf("build and run: cd %s && make && ./illm_rt model.bin --max-tokens 32\n", opt.output.c_str());
}

Json export_onnx_file(const ExportOptions& opt, const fs::path& out) {
  if (opt.context != 0) throw Error("--context applies to --format c99 only (the ONNX graph takes any T up to max_positions)");
  const fs::path file = opt.model;
  if (!opt.quiet) std::fprintf(stderr, "export: checking %s\n", file.c_str());
  formats::verify_illm_integrity(file);  // header and tensor checksums, naming the file / tensor
  const formats::LoadedIllm loaded = formats::read_illm(file);
  if (!opt.quiet) std::fprintf(stderr, "export: building the onnx model\n");
  const formats::OnnxExportSummary s = formats::export_onnx(loaded, out);
  Json ops = Json::object();
  for (const auto& [op, count] : s.operator_counts) ops[op] = count;
  Json j;
  j["format"] = "onnx";
  j["model_file"] = opt.model;
  j["output"] = opt.output;
  j["bytes"] = s.bytes;
  j["illm_bytes"] = fs::file_size(file);
  j["opset"] = formats::kOnnxOpset;
  j["ir_version"] = formats::kOnnxIrVersion;
  j["nodes"] = s.nodes;
  j["initializers"] = s.initializers;
  j["initializer_bytes"] = s.initializer_bytes;
  j["operators"] = ops;
  j["max_positions"] = loaded.model.shape.max_positions;
  j["inputs"] = Json::array({"input_ids int64 [1, T]"});
  j["outputs"] = Json::array({"logits int64 [1, T, vocab]", "logits_scale_mantissa int64 [1, T]",
                              "logits_scale_exponent int64 [1, T]"});
  return j;
}

void print_onnx(const ExportOptions& opt, const Json& report) {
  std::string op_list;
  for (const auto& [op, count] : report["operators"].items())
    op_list += fmt::format("{}{} {}", op_list.empty() ? "" : ", ", op, count.get<int64_t>());
  std::printf("%s: wrote %s (%s bytes; source %s bytes)\n", opt.model.c_str(), opt.output.c_str(),
              fmt::format("{}", report["bytes"].get<uint64_t>()).c_str(),
              fmt::format("{}", report["illm_bytes"].get<uint64_t>()).c_str());
  std::printf("ONNX opset %d (IR %d), %s nodes, %s initializers (%s bytes); checked with onnx::checker and strict "
              "shape inference\n",
              report["opset"].get<int>(), report["ir_version"].get<int>(),
              fmt::format("{}", report["nodes"].get<int64_t>()).c_str(),
              fmt::format("{}", report["initializers"].get<int64_t>()).c_str(),
              fmt::format("{}", report["initializer_bytes"].get<uint64_t>()).c_str());
  std::printf("operators: %s\n", op_list.c_str());
  std::printf("input input_ids int64 [1, T], T <= %d; output logits int64 [1, T, vocab] with its per-token scale "
              "logits_scale_mantissa / 2^logits_scale_exponent\n",
              report["max_positions"].get<int32_t>());
}

struct ExportFormat {
  const char* name;
  const char* description;
  bool writes_directory;  // c99: OUT is a directory of files; onnx: OUT is one file
  Json (*run)(const ExportOptions&, const fs::path& destination);  // the staging directory, or the output file
  void (*print)(const ExportOptions&, const Json& report);
};

constexpr ExportFormat kFormats[] = {
    {"c99", "model.bin + the dependency-free C99 integer runtime (runtime/illm_rt.h)", true, export_c99, print_c99},
    {"onnx", "one integer-only ONNX file (opset 17), bit-exact with the executor under ONNX Runtime", false,
     export_onnx_file, print_onnx},
};

std::string format_names() {
  std::string names;
  for (const ExportFormat& f : kFormats) names += std::string(names.empty() ? "" : ", ") + f.name;
  return names;
}

int run_export(const ExportOptions& opt) {
  const ExportFormat* format = nullptr;
  for (const ExportFormat& f : kFormats)
    if (opt.format == f.name) format = &f;
  if (!format) throw Error("unsupported --format '" + opt.format + "' (available: " + format_names() + ")");
  const fs::path output = opt.output;
  OutputGuard guard;  // an export never overwrites the model it reads
  guard.add_input(opt.model, "the model being exported");
  guard.check(output, "output");
  Json report;
  if (format->writes_directory) {
    if (fs::exists(output) && !fs::is_directory(output))
      throw Error(output.string() + ": exists and is not a directory");
    StagingDirectory staging(output);  // probes that the output's directory is writable before any work
    report = format->run(opt, staging.path());
    staging.commit(output, guard);
  } else {
    check_output_writable(output);  // before any work: a path that cannot be written fails at once
    report = format->run(opt, output);  // writes a temporary file beside the output and renames it
  }

  if (opt.json) {
    std::printf("%s\n", report.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    format->print(opt, report);
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace

CommandRun add_export_command(CLI::App& sub) {
  auto opt = std::make_shared<ExportOptions>();
  std::string formats;
  for (const ExportFormat& f : kFormats) formats += fmt::format("\n  {:6} {}", f.name, f.description);
  sub.description(
      "Export an .illm model for another runtime. Verifies the file first (checksums); for c99 writes DIR/model.bin "
      "and the C99 runtime's sources, after checking that the runtime reproduces the file's golden vectors bit for "
      "bit; for onnx writes one integer-only ONNX file, checked with onnx::checker. Nothing is written unless "
      "everything succeeds; identical inputs give byte-identical outputs. Formats:" +
      formats);
  sub.add_option("--format", opt->format, "Export format: " + format_names())->required();
  sub.add_option("--model", opt->model, "Model file (.illm)")->required();
  sub.add_option("-o,--output", opt->output, "Output: a directory for c99 (created when missing), a file for onnx")
      ->required();
  sub.add_option("--context", opt->context,
                 "Default KV-cache positions of a runtime session, stated in the header with its arena size "
                 "(0: the model's max_positions)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub.add_flag("--json", opt->json, "Print one JSON object (files, sizes, checks; onnx: operator counts) on stdout");
  sub.add_flag("-q,--quiet", opt->quiet, "No progress lines on stderr");
  return [opt] { return run_export(*opt); };
}

}  // namespace illm::converter
