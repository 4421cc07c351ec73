#include "formats/llama_config.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <set>

#include <nlohmann/json.hpp>

#include "formats/input_file.h"
#include "formats/strict_json.h"
#include "kernels/error.h"

namespace illm::formats {

namespace {

using nlohmann::json;

[[noreturn]] void fail_field(const std::filesystem::path& source, const std::string& field, const std::string& why) {
  throw Error(source.string() + ": field '" + field + "': " + why);
}

int64_t required_positive_int(const json& j, const std::string& field, const std::filesystem::path& source) {
  if (!j.contains(field)) fail_field(source, field, "missing");
  const json& v = j[field];
  if (!v.is_number_integer()) fail_field(source, field, "must be an integer");
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT32_MAX))
    fail_field(source, field, "= " + v.dump() + " is too large (at most " + std::to_string(INT32_MAX) + ")");
  const int64_t value = v.get<int64_t>();
  if (value <= 0) fail_field(source, field, "must be positive, got " + std::to_string(value));
  return value;
}

double number_or(const json& j, const std::string& field, double fallback, const std::filesystem::path& source) {
  if (!j.contains(field) || j[field].is_null()) return fallback;
  if (!j[field].is_number()) fail_field(source, field, "must be a number");
  const double value = j[field].get<double>();
  if (!std::isfinite(value)) fail_field(source, field, "must be a finite number");
  return value;
}

// bos/eos ids: an integer, a list of integers (the first counts) or null (keep the default).
int64_t token_id_or(const json& j, const std::string& field, int64_t fallback, const std::filesystem::path& source) {
  if (!j.contains(field) || j[field].is_null()) return fallback;
  const json& v = j[field];
  const json& first = v.is_array() && !v.empty() ? v[0] : v;
  if (!first.is_number_integer()) fail_field(source, field, "must be an integer or a list of integers");
  if (first.is_number_unsigned() && first.get<uint64_t>() > static_cast<uint64_t>(INT32_MAX))
    fail_field(source, field, "= " + first.dump() + " is outside the vocabulary");
  const int64_t id = first.get<int64_t>();
  if (id < 0) fail_field(source, field, "= " + std::to_string(id) + " is negative");
  return id;
}

void require_false_if_present(const json& j, const std::string& field, const std::filesystem::path& source) {
  if (j.contains(field) && j[field].is_boolean() && j[field].get<bool>())
    fail_field(source, field, "true is not supported (LLaMA projections without biases only)");
}

std::optional<RopeScaling> parse_rope_scaling(const json& j, const std::filesystem::path& source) {
  if (!j.contains("rope_scaling") || j["rope_scaling"].is_null()) return std::nullopt;
  const json& rs = j["rope_scaling"];
  if (!rs.is_object()) fail_field(source, "rope_scaling", "must be an object or null");
  std::string type;
  if (rs.contains("rope_type") && rs["rope_type"].is_string()) type = rs["rope_type"].get<std::string>();
  else if (rs.contains("type") && rs["type"].is_string()) type = rs["type"].get<std::string>();
  else fail_field(source, "rope_scaling", "has no 'rope_type' (or 'type') string");
  if (type == "default") return std::nullopt;
  if (type != "linear" && type != "dynamic" && type != "llama3")
    fail_field(source, "rope_scaling", "type '" + type + "' is not supported (linear, dynamic, llama3)");

  RopeScaling scaling;
  scaling.type = type;
  if (!rs.contains("factor") || !rs["factor"].is_number())
    fail_field(source, "rope_scaling.factor", "missing or not a number");
  scaling.factor = rs["factor"].get<double>();
  if (!(scaling.factor > 0) || !std::isfinite(scaling.factor))
    fail_field(source, "rope_scaling.factor", "must be a positive finite number");
  if (type == "llama3") {
    for (const char* key : {"low_freq_factor", "high_freq_factor", "original_max_position_embeddings"})
      if (!rs.contains(key) || !rs[key].is_number())
        fail_field(source, std::string("rope_scaling.") + key, "missing or not a number (required for llama3)");
    scaling.low_freq_factor = rs["low_freq_factor"].get<double>();
    scaling.high_freq_factor = rs["high_freq_factor"].get<double>();
    if (!rs["original_max_position_embeddings"].is_number_integer())
      fail_field(source, "rope_scaling.original_max_position_embeddings", "must be an integer");
    scaling.original_max_position_embeddings = rs["original_max_position_embeddings"].get<int64_t>();
    if (!(scaling.low_freq_factor > 0) || !(scaling.high_freq_factor > scaling.low_freq_factor) ||
        !std::isfinite(scaling.high_freq_factor))
      fail_field(source, "rope_scaling", "needs 0 < low_freq_factor < high_freq_factor");
    if (scaling.original_max_position_embeddings <= 0)
      fail_field(source, "rope_scaling.original_max_position_embeddings", "must be positive");
  }
  return scaling;
}

// model.layers.N.self_attn.rotary_emb.inv_freq: a buffer of older conversions, derived from the config.
bool is_rotary_buffer(const std::string& name) {
  return name.rfind("model.layers.", 0) == 0 && name.ends_with(".self_attn.rotary_emb.inv_freq");
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

LlamaConfig parse_llama_config(const std::string& json_text, const std::filesystem::path& source) {
  const json j = parse_json_strictly_or_throw(json_text, source.string(), "model config");
  if (!j.is_object()) throw Error(source.string() + ": not a JSON object");

  if (j.contains("model_type")) {
    if (!j["model_type"].is_string() || j["model_type"].get<std::string>() != "llama")
      fail_field(source, "model_type",
                 "unsupported model type " + j["model_type"].dump() + " (only \"llama\" is supported)");
  }
  if (j.contains("architectures")) {
    const json& arch = j["architectures"];
    if (!arch.is_array() || arch.size() != 1 || !arch[0].is_string() ||
        arch[0].get<std::string>() != "LlamaForCausalLM")
      fail_field(source, "architectures",
                 "unsupported architectures " + arch.dump() + " (only [\"LlamaForCausalLM\"] is supported)");
  }
  if (!j.contains("model_type") && !j.contains("architectures"))
    throw Error(source.string() + ": neither 'model_type' nor 'architectures' says this is a LLaMA model");
  if (j.contains("hidden_act") && (!j["hidden_act"].is_string() || j["hidden_act"].get<std::string>() != "silu"))
    fail_field(source, "hidden_act", "unsupported activation " + j["hidden_act"].dump() + " (only \"silu\")");
  require_false_if_present(j, "attention_bias", source);
  require_false_if_present(j, "mlp_bias", source);
  if (j.contains("partial_rotary_factor") && number_or(j, "partial_rotary_factor", 1.0, source) != 1.0)
    fail_field(source, "partial_rotary_factor", "only 1.0 (full rotary) is supported");

  LlamaConfig cfg;
  cfg.source = source;
  cfg.hidden_size = required_positive_int(j, "hidden_size", source);
  cfg.intermediate_size = required_positive_int(j, "intermediate_size", source);
  cfg.num_hidden_layers = required_positive_int(j, "num_hidden_layers", source);
  cfg.num_attention_heads = required_positive_int(j, "num_attention_heads", source);
  cfg.num_key_value_heads = j.contains("num_key_value_heads") && !j["num_key_value_heads"].is_null()
                                ? required_positive_int(j, "num_key_value_heads", source)
                                : cfg.num_attention_heads;  // HF default: plain multi-head attention
  cfg.vocab_size = required_positive_int(j, "vocab_size", source);
  cfg.max_position_embeddings =
      j.contains("max_position_embeddings") ? required_positive_int(j, "max_position_embeddings", source) : 2048;
  cfg.rms_norm_eps = number_or(j, "rms_norm_eps", 1e-6, source);
  cfg.rope_theta = number_or(j, "rope_theta", 10000.0, source);
  cfg.rope_scaling = parse_rope_scaling(j, source);
  if (j.contains("tie_word_embeddings") && !j["tie_word_embeddings"].is_null()) {
    if (!j["tie_word_embeddings"].is_boolean()) fail_field(source, "tie_word_embeddings", "must be true or false");
    cfg.tie_word_embeddings = j["tie_word_embeddings"].get<bool>();
  }
  cfg.bos_token_id = token_id_or(j, "bos_token_id", 1, source);
  cfg.eos_token_id = token_id_or(j, "eos_token_id", 2, source);
  if (j.contains("torch_dtype") && j["torch_dtype"].is_string()) cfg.torch_dtype = j["torch_dtype"].get<std::string>();

  // Consistency of the shapes.
  if (cfg.hidden_size % cfg.num_attention_heads != 0)
    fail_field(source, "num_attention_heads",
               std::to_string(cfg.num_attention_heads) + " heads do not divide hidden_size " +
                   std::to_string(cfg.hidden_size));
  if (cfg.num_attention_heads % cfg.num_key_value_heads != 0)
    fail_field(source, "num_key_value_heads",
               std::to_string(cfg.num_key_value_heads) + " KV heads do not divide num_attention_heads " +
                   std::to_string(cfg.num_attention_heads));
  if (cfg.head_dim() % 2 != 0)
    fail_field(source, "num_attention_heads", "head_dim " + std::to_string(cfg.head_dim()) + " is odd (RoPE needs pairs)");
  if (j.contains("head_dim") && !j["head_dim"].is_null() &&
      (!j["head_dim"].is_number_integer() || j["head_dim"].get<int64_t>() != cfg.head_dim()))
    fail_field(source, "head_dim",
               j["head_dim"].dump() + " differs from hidden_size / num_attention_heads = " +
                   std::to_string(cfg.head_dim()) + " (not supported)");
  if (!(cfg.rms_norm_eps > 0)) fail_field(source, "rms_norm_eps", "must be positive");
  if (!(cfg.rope_theta > 0)) fail_field(source, "rope_theta", "must be positive");
  if (cfg.bos_token_id >= cfg.vocab_size || cfg.eos_token_id >= cfg.vocab_size)
    fail_field(source, cfg.bos_token_id >= cfg.vocab_size ? "bos_token_id" : "eos_token_id",
               "outside the vocabulary of " + std::to_string(cfg.vocab_size));
  return cfg;
}

LlamaConfig load_llama_config(const std::filesystem::path& config_json_or_dir) {
  std::filesystem::path path = config_json_or_dir;
  if (std::filesystem::is_directory(path)) path /= "config.json";
  return parse_llama_config(read_input_file(path, "model config"), path);
}

void check_llama_tensors(const LlamaConfig& cfg, const TensorStore& store) {
  const int64_t hidden = cfg.hidden_size;
  const int64_t q_rows = cfg.num_attention_heads * cfg.head_dim();
  const int64_t kv_rows = cfg.num_key_value_heads * cfg.head_dim();
  const int64_t inter = cfg.intermediate_size;

  auto expect = [&](const std::string& name, const std::vector<int64_t>& shape) {
    if (!store.contains(name))
      throw Error(store.source().string() + ": tensor '" + name + "': missing (expected shape " +
                  shape_string(shape) + " from " + cfg.source.string() + ")");
    const TensorInfo& info = store.info(name);
    if (info.shape != shape)
      throw Error(info.file.string() + ": tensor '" + name + "': shape " + shape_string(info.shape) +
                  " but the config (" + cfg.source.string() + ") implies " + shape_string(shape));
    if (info.dtype != DType::F32 && info.dtype != DType::F16 && info.dtype != DType::BF16 && info.dtype != DType::F64)
      throw Error(info.file.string() + ": tensor '" + name + "': dtype " + to_string(info.dtype) +
                  " is not floating-point");
  };

  std::set<std::string> expected;
  auto expect_named = [&](const std::string& name, const std::vector<int64_t>& shape) {
    expect(name, shape);
    expected.insert(name);
  };
  expect_named("model.embed_tokens.weight", {cfg.vocab_size, hidden});
  for (int64_t layer = 0; layer < cfg.num_hidden_layers; ++layer) {
    const std::string p = "model.layers." + std::to_string(layer) + ".";
    expect_named(p + "input_layernorm.weight", {hidden});
    expect_named(p + "self_attn.q_proj.weight", {q_rows, hidden});
    expect_named(p + "self_attn.k_proj.weight", {kv_rows, hidden});
    expect_named(p + "self_attn.v_proj.weight", {kv_rows, hidden});
    expect_named(p + "self_attn.o_proj.weight", {hidden, q_rows});
    expect_named(p + "post_attention_layernorm.weight", {hidden});
    expect_named(p + "mlp.gate_proj.weight", {inter, hidden});
    expect_named(p + "mlp.up_proj.weight", {inter, hidden});
    expect_named(p + "mlp.down_proj.weight", {hidden, inter});
  }
  expect_named("model.norm.weight", {hidden});
  if (!cfg.tie_word_embeddings) {
    expect_named("lm_head.weight", {cfg.vocab_size, hidden});
  } else if (store.contains("lm_head.weight")) {
    // Tied: Hugging Face uses the embedding as the head and never reads lm_head.weight. A copy of the embedding is
    // harmless; anything else would be silently dropped, so it is refused.
    expect_named("lm_head.weight", {cfg.vocab_size, hidden});
    const TensorInfo& head = store.info("lm_head.weight");
    const TensorInfo& embed = store.info("model.embed_tokens.weight");
    const auto a = store.raw("lm_head.weight"), b = store.raw("model.embed_tokens.weight");
    if (head.dtype != embed.dtype || a.size() != b.size() || !std::equal(a.begin(), a.end(), b.begin()))
      throw Error(head.file.string() + ": tensor 'lm_head.weight': differs from model.embed_tokens.weight, but " +
                  cfg.source.string() + " says tie_word_embeddings = true, so it would be ignored (set "
                  "tie_word_embeddings to false to use it, or remove the tensor)");
  }
  // Anything else would be silently ignored: biases, layers beyond num_hidden_layers, other architectures' tensors.
  // The one exception: old conversions store RoPE's inverse frequencies, which are recomputed from the config.
  for (const std::string& name : store.names()) {
    if (expected.count(name) || is_rotary_buffer(name)) continue;
    const TensorInfo& info = store.info(name);
    std::string why = "not used by LlamaForCausalLM with this config";
    if (name.ends_with(".bias")) why = "a bias, which LLaMA projections do not have";
    const std::string layers = "model.layers.";
    if (name.rfind(layers, 0) == 0) {
      const std::string rest = name.substr(layers.size());
      const size_t dot = rest.find('.');
      const std::string index = rest.substr(0, dot);
      if (!index.empty() && index.size() < 10 && index.find_first_not_of("0123456789") == std::string::npos &&
          std::stoll(index) >= cfg.num_hidden_layers)
        why = "layer " + index + " is beyond num_hidden_layers = " + std::to_string(cfg.num_hidden_layers);
    }
    throw Error(info.file.string() + ": tensor '" + name + "': " + why + " (" + cfg.source.string() +
                "); refusing to ignore it");
  }
}

namespace {

template <typename T>
void check_values(const TensorInfo& info, std::span<const T> values, int64_t first) {
  for (size_t i = 0; i < values.size(); ++i) {
    const double v = values[i];
    if (std::fabs(v) <= kMaxWeightMagnitude) continue;
    char text[48];
    std::snprintf(text, sizeof text, "%.6g", v);
    throw Error(info.file.string() + ": tensor '" + info.name + "': element " + std::to_string(first + static_cast<int64_t>(i)) + " is " +
                (std::isnan(v) ? std::string("NaN") : std::string(text)) +
                (std::isfinite(v) ? ", beyond the ±65504 a model weight may hold" : ", not a finite number") +
                " (corrupted checkpoint?)");
  }
}

}  // namespace

void check_weight_values(const TensorInfo& info, std::span<const float> values, int64_t first) {
  check_values(info, values, first);
}
void check_weight_values(const TensorInfo& info, std::span<const double> values, int64_t first) {
  check_values(info, values, first);
}

std::vector<double> rope_inverse_frequencies(const LlamaConfig& cfg) {
  const int64_t dim = cfg.head_dim();
  std::vector<double> inv_freq(static_cast<size_t>(dim / 2));
  for (int64_t i = 0; i < dim / 2; ++i)
    inv_freq[i] = 1.0 / std::pow(cfg.rope_theta, static_cast<double>(2 * i) / static_cast<double>(dim));
  if (!cfg.rope_scaling) return inv_freq;

  const RopeScaling& rs = *cfg.rope_scaling;
  if (rs.type == "linear") {
    for (double& f : inv_freq) f /= rs.factor;
  } else if (rs.type == "llama3") {
    // transformers' _compute_llama3_parameters: long wavelengths divided by factor, short ones kept,
    // a linear blend (in 1/wavelength) in between.
    const double old_context = static_cast<double>(rs.original_max_position_embeddings);
    const double low_freq_wavelen = old_context / rs.low_freq_factor;
    const double high_freq_wavelen = old_context / rs.high_freq_factor;
    for (double& f : inv_freq) {
      const double wavelen = 2 * std::numbers::pi / f;
      if (wavelen > low_freq_wavelen) {
        f /= rs.factor;
      } else if (wavelen >= high_freq_wavelen) {
        const double smooth = (old_context / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
        f = (1 - smooth) * f / rs.factor + smooth * f;
      }
    }
  }
  // "dynamic": identical to unscaled frequencies up to max_position_embeddings (see RopeScaling).
  return inv_freq;
}

}  // namespace illm::formats
