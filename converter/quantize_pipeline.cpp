#include "converter/quantize_pipeline.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <algorithm>
#include <array>
#include <fstream>
#include <span>
#include <sstream>
#include <vector>

#include "calibration/integerize.h"
#include "calibration/row_rotation.h"
#include "converter/integer_eval.h"
#include "formats/atomic_file.h"
#include "formats/dataset.h"
#include "formats/llama_config.h"
#include "formats/input_file.h"
#include "formats/sha256.h"
#include "kernels/error.h"
#include <illm/build_info.h>

namespace illm::converter {
namespace fs = std::filesystem;

SourceModel open_source_model(const fs::path& dir) {
  formats::require_directory(dir, "model directory");
  SourceModel model;
  model.dir = dir;
  model.name = fs::absolute(dir).lexically_normal().filename().string();
  if (model.name.empty()) model.name = fs::absolute(dir).lexically_normal().parent_path().filename().string();
  model.config = formats::load_llama_config(dir);
  model.config_json = formats::read_input_file(dir / "config.json", "model config");
  model.store = formats::TensorStore::open(dir);
  formats::check_llama_tensors(model.config, *model.store);
  if (fs::exists(dir / "tokenizer.model")) model.tokenizer = formats::Tokenizer::load(dir / "tokenizer.model");
  return model;
}

std::string checkpoint_sha256(const SourceModel& model) {
  formats::Sha256 hash;
  hash.update(std::string_view("config.json"));
  const formats::Sha256Digest config = formats::sha256(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(model.config_json.data()), model.config_json.size()));
  hash.update(std::span<const uint8_t>(config.data(), config.size()));
  hash.update(std::string_view("safetensors"));
  const std::array<uint8_t, 32> tensors = model.store->content_digest();
  hash.update(std::span<const uint8_t>(tensors.data(), tensors.size()));
  const formats::Sha256Digest digest = hash.finish();
  return formats::to_hex(std::span<const uint8_t>(digest.data(), digest.size()));
}

QuantizedModel assemble_integer_model(const SourceModel& source, const Recipe& recipe,
                                      const calib::CalibratedModel& frame, const IntegerSettings& settings,
                                      const std::function<QuantizedLayer(int layer)>& layer) {
  constexpr int64_t kRows = 1024;  // rows of the embedding / head converted to float at a time
  const formats::TensorStore& store = *source.store;
  const int64_t hidden = source.config.hidden_size;
  // The recipe's offline residual rotation, the one the blocks were calibrated in (none by default): embedding rows
  // E·Q, head rows W·diag(γ)·Q, final norm all ones. A chunk of rows is copied to transform it (kRows·C floats).
  const calib::ResidualRowRotation rotation(recipe, hidden);
  std::vector<float> rotated;
  auto rows_for = [&](std::span<const float> rows, auto&& transform) -> std::span<const float> {
    if (!rotation.enabled()) return rows;
    rotated.assign(rows.begin(), rows.end());
    transform(std::span<float>(rotated));
    return rotated;
  };
  QuantizedModel model = integer_model_frame(frame, settings);
  const formats::TensorInfo& embed = store.info("model.embed_tokens.weight");
  store.read_rows(embed.name, kRows, [&](int64_t first, int64_t count, std::span<const float> rows) {
    formats::check_weight_values(embed, rows, first * hidden);
    const std::span<const float> values =
        rows_for(rows, [&](std::span<float> r) { rotation.rotate_embedding_rows(r); });
    integerize_embedding_rows(model, static_cast<int32_t>(first), static_cast<int32_t>(count), values.data());
  });
  model.layers.reserve(static_cast<size_t>(frame.n_layers));
  for (int l = 0; l < frame.n_layers; ++l) model.layers.push_back(layer(l));
  const std::vector<float> final_norm = store.read_f32("model.norm.weight");
  formats::check_weight_values(store.info("model.norm.weight"), final_norm);
  integerize_final_norm(model, rotation.enabled() ? std::vector<float>(final_norm.size(), 1.0f) : final_norm);
  const std::optional<calib::GptqRowRounder> head_gptq = head_gptq_rounder(frame, frame.head_hessian);
  const formats::TensorInfo& head =
      store.info(source.config.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight");
  store.read_rows(head.name, kRows, [&](int64_t first, int64_t count, std::span<const float> rows) {
    if (!source.config.tie_word_embeddings) formats::check_weight_values(head, rows, first * hidden);  // else: above
    const std::span<const float> values =
        rows_for(rows, [&](std::span<float> r) { rotation.rotate_head_rows(r, final_norm); });
    integerize_head_rows(model, static_cast<int32_t>(first), static_cast<int32_t>(count), values.data(),
                         head_gptq ? &*head_gptq : nullptr);
  });
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
  if (r.qkv_bits != 0) j["qkv_bits"] = r.qkv_bits;  // only when given: recipes without it record what they did before
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
  // The W4A4 lever keys only where they differ from their defaults (off), so that a recipe without them records
  // exactly what it recorded before they existed (model files stay byte-identical).
  const Recipe off;
  const char* rotations[] = {"none", "hadamard", "orthogonal"};
  if (r.rotation != off.rotation) j["rotation"] = rotations[static_cast<int>(r.rotation)];
  if (r.rotation_seed) j["rotation_seed"] = *r.rotation_seed;
  if (r.rotate_heads != off.rotate_heads) j["rotate_heads"] = r.rotate_heads;
  if (r.hadamard_down != off.hadamard_down) j["hadamard_down"] = r.hadamard_down;
  if (r.hadamard_qk != off.hadamard_qk) j["hadamard_qk"] = r.hadamard_qk;
  if (r.gptq != off.gptq) j["gptq"] = r.gptq;
  if (r.gptq_damp != off.gptq_damp) j["gptq_damp"] = r.gptq_damp;
  if (r.gptq_act_order != off.gptq_act_order) j["gptq_act_order"] = r.gptq_act_order;
  if (r.gptq_head != off.gptq_head) j["gptq_head"] = r.gptq_head;
  if (r.head_in_bits != off.head_in_bits) j["head_in_bits"] = r.head_in_bits;
  if (r.head_group_size != off.head_group_size) j["head_group_size"] = r.head_group_size;
  if (r.act_clip_search) {
    j["act_clip"] = "search";
  } else if (r.act_clip != off.act_clip) {
    j["act_clip"] = r.act_clip;
  }
  if (r.trip_shifts != off.trip_shifts) j["trip_shifts"] = r.trip_shifts;
  if (r.act_group_size != off.act_group_size) j["act_group_size"] = r.act_group_size;
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
  formats::write_file_atomically(path, text);
}

}  // namespace illm::converter
