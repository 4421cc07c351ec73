#include "converter/integer_preflight.h"

#include <climits>

#include "calibration/integerize.h"
#include "kernels/error.h"
#include "kernels/model_validation.h"

namespace illm::converter {

ModelShape integer_shape_for(const formats::LlamaConfig& config) {
  // Config integers are at most INT32_MAX (formats/llama_config.cpp), so these narrowings are exact.
  ModelShape shape;
  shape.hidden = static_cast<int32_t>(config.hidden_size);
  shape.intermediate = static_cast<int32_t>(config.intermediate_size);
  shape.n_layers = static_cast<int32_t>(config.num_hidden_layers);
  shape.n_heads = static_cast<int32_t>(config.num_attention_heads);
  shape.n_kv_heads = static_cast<int32_t>(config.num_key_value_heads);
  shape.head_dim = static_cast<int32_t>(config.head_dim());
  shape.vocab = static_cast<int32_t>(config.vocab_size);
  shape.max_positions = static_cast<int32_t>(config.max_position_embeddings);
  shape.bos_id = static_cast<int32_t>(config.bos_token_id);
  shape.eos_id = static_cast<int32_t>(config.eos_token_id);
  return shape;
}

namespace {

// G divides the input width of every block linear (hidden for q/k/v/gate/up, heads·head_dim for o_proj,
// intermediate for down_proj).
void check_linear_input_widths(int64_t g, const char* key, const std::string& where,
                               const formats::LlamaConfig& config) {
  const std::pair<const char*, int64_t> widths[] = {
      {"hidden_size", config.hidden_size},
      {"num_attention_heads * head_dim", config.num_attention_heads * config.head_dim()},
      {"intermediate_size", config.intermediate_size}};
  for (const auto& [name, width] : widths)
    if (width % g != 0)
      throw Error(where + "key \"" + key + "\": " + std::to_string(g) + " does not divide " + name + " = " +
                  std::to_string(width) + " (every block linear's input width must be a multiple of G" +
                  (key == std::string("group_size")
                       ? "; \"w_granularity\": \"per_channel\" takes any width, as configs/w4a4-g8.json does)"
                       : ")"));
}

// Per-group weights (docs/integer-semantics.md "## Per-group DI-MatMul"): G in {32, 64, 128}.
void check_group_size_for_integer_model(const Recipe& recipe, const std::string& where,
                                        const formats::LlamaConfig& config) {
  const int64_t g = recipe.group_size;
  if (g != 32 && g != 64 && g != 128)
    throw Error(where + "key \"group_size\": " + std::to_string(g) +
                " is not one the integer per-group DI-MatMul supports (32, 64 or 128)");
  check_linear_input_widths(g, "group_size", where, config);
}

}  // namespace

void check_recipe_for_integer_model(const Recipe& recipe, const std::string& recipe_name,
                                    const formats::LlamaConfig& config, bool paper_conformance) {
  const std::string where = "recipe " + recipe_name + " for " + config.source.string() + ": ";
  if (recipe.w_granularity == WeightGranularity::kPerGroup) check_group_size_for_integer_model(recipe, where, config);
  if (recipe.head_group_size > 0 && config.hidden_size % recipe.head_group_size != 0)
    throw Error(where + "key \"head_group_size\": " + std::to_string(recipe.head_group_size) +
                " does not divide hidden_size = " + std::to_string(config.hidden_size) + " (the LM head's input width)");
  if (recipe.swiglu_in_bits > 8)
    throw Error(where + "key \"swiglu_in_bits\": " + std::to_string(recipe.swiglu_in_bits) +
                " (no SwiGLU input quantization) is a fake-quant experiment; the integer executor needs 2..8");
  require_integer_path(recipe, recipe_name);  // the W4A4 levers that are fake-quant only
  IntegerSettings settings = integer_settings_for(recipe.w_bits, recipe.a_bits, paper_conformance);
  settings.swiglu_in_bits = recipe.swiglu_in_bits;  // as integerize() sets it
  settings.head_in_bits = head_in_bits_setting(recipe.head_in_bits, settings.head_bits);
  settings.qkv_bits = qkv_bits_setting(recipe.qkv_bits, recipe.a_bits);
  try {
    validate_model_settings(integer_shape_for(config), settings);
  } catch (const Error& e) {
    throw Error(where + "the integer model would be refused: " + e.what());
  }
}

}  // namespace illm::converter
