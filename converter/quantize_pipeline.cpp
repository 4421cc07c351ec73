#include "converter/quantize_pipeline.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "converter/integer_eval.h"
#include "formats/dataset.h"
#include "formats/sha256.h"
#include "kernels/error.h"
#include <illm/build_info.h>

namespace illm::converter {
namespace fs = std::filesystem;

namespace {

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot be read");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Hash of config.json and every *.safetensors file in name order; each file contributes its name and bytes.
std::string source_hash(const fs::path& dir) {
  std::vector<fs::path> files{dir / "config.json"};
  std::vector<fs::path> tensors;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == ".safetensors") tensors.push_back(entry.path());
  }
  std::sort(tensors.begin(), tensors.end());
  files.insert(files.end(), tensors.begin(), tensors.end());
  formats::Sha256 hash;
  for (const auto& f : files) {
    hash.update(f.filename().string());
    const formats::Sha256Digest d = formats::sha256_of_file(f);
    hash.update(std::span<const uint8_t>(d.data(), d.size()));
  }
  const formats::Sha256Digest digest = hash.finish();
  return formats::to_hex(std::span<const uint8_t>(digest.data(), digest.size()));
}

}  // namespace

SourceModel open_source_model(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw Error("model directory " + dir.string() + " does not exist");
  SourceModel model;
  model.dir = dir;
  model.name = fs::absolute(dir).lexically_normal().filename().string();
  if (model.name.empty()) model.name = fs::absolute(dir).lexically_normal().parent_path().filename().string();
  model.config = formats::load_llama_config(dir);
  model.config_json = read_file(dir / "config.json");
  model.sha256 = source_hash(dir);
  if (fs::exists(dir / "tokenizer.model")) model.tokenizer = formats::Tokenizer::load(dir / "tokenizer.model");
  return model;
}

fs::path bundled_model_dir(const std::string& name) { return fs::path(build_info::kDataDir) / "models" / name; }
fs::path bundled_recipe(const std::string& file_name) { return fs::path(build_info::kDataDir) / "configs" / file_name; }

std::optional<fs::path> find_in_model_dir(const SourceModel& model, std::initializer_list<const char*> candidates) {
  for (const char* name : candidates) {
    if (fs::exists(model.dir / name)) return model.dir / name;
  }
  return std::nullopt;
}

std::vector<std::vector<int32_t>> load_calibration_windows(const SourceModel& model, const fs::path& file,
                                                           const Recipe& recipe) {
  const bool is_jsonl = file.extension() == ".jsonl";
  if (!is_jsonl && !model.tokenizer) {
    throw Error(file.string() + " is text, but " + model.dir.string() + " has no tokenizer.model");
  }
  const formats::Windows windows =
      formats::load_windows(file, model.tokenizer ? &*model.tokenizer : nullptr, recipe.seq_len,
                            model.config.vocab_size, model.config.max_position_embeddings);
  std::vector<std::vector<int32_t>> full;
  for (const auto& w : windows.sequences) {
    if (static_cast<int>(w.size()) == recipe.seq_len) full.push_back(w);
    if (static_cast<int>(full.size()) == recipe.samples) break;
  }
  if (static_cast<int>(full.size()) < recipe.samples) {
    throw Error(file.string() + ": the recipe needs " + std::to_string(recipe.samples) + " calibration windows of " +
                std::to_string(recipe.seq_len) + " tokens, the file has only " + std::to_string(full.size()));
  }
  return full;
}

std::vector<std::vector<int32_t>> load_evaluation_windows(const SourceModel& model, const fs::path& file,
                                                          std::optional<int64_t> max_windows) {
  const bool is_jsonl = file.extension() == ".jsonl";
  if (!is_jsonl && !model.tokenizer) {
    throw Error(file.string() + " is text, but " + model.dir.string() + " has no tokenizer.model");
  }
  formats::Windows windows = formats::load_windows(
      file, model.tokenizer ? &*model.tokenizer : nullptr, std::nullopt, model.config.vocab_size,
      model.config.max_position_embeddings, max_windows);
  if (windows.sequences.empty()) throw Error(file.string() + ": no window with a token to predict");
  return std::move(windows.sequences);
}

nlohmann::ordered_json recipe_to_json(const Recipe& r) {
  nlohmann::ordered_json j;
  if (!r.description.empty()) j["description"] = r.description;
  j["method"] = to_string(r.method);
  j["w_bits"] = r.w_bits;
  j["a_bits"] = r.a_bits;
  j["w_granularity"] = r.w_granularity == WeightGranularity::kPerChannel ? "per_channel" : "per_group";
  j["group_size"] = r.group_size;
  j["epochs"] = r.epochs;
  j["lr_smooth"] = r.lr_smooth;
  j["lr_lwc"] = r.lr_lwc;
  j["samples"] = r.samples;
  j["seq_len"] = r.seq_len;
  j["seed"] = r.seed;
  j["sq_alpha"] = r.sq_alpha;
  if (r.clip_search) {
    j["clip_c"] = "search";
  } else if (r.clip_c) {
    j["clip_c"] = *r.clip_c;
  } else {
    j["clip_c"] = "none";
  }
  j["lwc_init"] = r.lwc_init;
  j["smooth_init"] = r.smooth_init == SmoothInit::kSmoothQuant ? "smoothquant" : "identity";
  j["tie_rope_pairs"] = r.tie_rope_pairs;
  j["swiglu_in_bits"] = r.swiglu_in_bits;
  const char* rotations[] = {"none", "hadamard", "orthogonal"};
  j["rotation"] = rotations[static_cast<int>(r.rotation)];
  j["rotate_heads"] = r.rotate_heads;
  j["hadamard_down"] = r.hadamard_down;
  j["hadamard_qk"] = r.hadamard_qk;
  j["gptq"] = r.gptq;
  j["gptq_damp"] = r.gptq_damp;
  j["gptq_act_order"] = r.gptq_act_order;
  if (r.act_clip_search) {
    j["act_clip"] = "search";
  } else {
    j["act_clip"] = r.act_clip;
  }
  j["trip_shifts"] = r.trip_shifts;
  return j;
}

formats::IllmMetadata model_metadata(const SourceModel& source, const Recipe& recipe, std::string calibration_json) {
  formats::IllmMetadata meta;
  meta.tool_version = build_info::kVersion;
  meta.source_name = source.name;
  meta.source_sha256 = source.sha256;
  meta.config_json = source.config_json;
  meta.recipe_json = recipe_to_json(recipe).dump();
  meta.calibration_json = std::move(calibration_json);
  if (source.tokenizer) meta.tokenizer_model = source.tokenizer->bytes();
  return meta;
}

std::vector<formats::GoldenVector> record_golden_vectors(const QuantizedModel& model,
                                                         const std::vector<std::vector<int32_t>>& windows, int count,
                                                         int length) {
  std::vector<formats::GoldenVector> golden;
  Executor executor(model);
  for (int i = 0; i < count && i < static_cast<int>(windows.size()); ++i) {
    const auto& w = windows[i];
    formats::GoldenVector g;
    g.input_ids.assign(w.begin(), w.begin() + std::min<size_t>(w.size(), static_cast<size_t>(length)));
    executor.reset();
    IntegerLogits logits = executor.forward(g.input_ids);
    g.logits = std::move(logits.values);
    g.logit_scales = std::move(logits.scales);
    golden.push_back(std::move(g));
  }
  return golden;
}

void write_text_atomically(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(path.string() + ": cannot be written (" + tmp.parent_path().string() + " not writable?)");
    out << text;
    out.flush();
    if (!out) {
      out.close();
      std::error_code ec;
      fs::remove(tmp, ec);
      throw Error(path.string() + ": write failed");
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw Error(path.string() + ": cannot be written: " + ec.message());
  }
}

}  // namespace illm::converter
