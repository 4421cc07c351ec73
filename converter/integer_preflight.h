#pragma once
// What the integer path will accept, checked before calibration starts: a recipe value that calibration takes but
// the integer executor refuses (swiglu_in_bits 16, per-group weights, ...) or a model shape beyond the executor's
// limits would otherwise cost the whole calibration before the model file is refused.
#include <string>

#include "formats/llama_config.h"
#include "formats/recipe.h"
#include "kernels/quantized_model.h"

namespace illm::converter {

// The integer model's shape for a checkpoint's config (as integerize will set it).
ModelShape integer_shape_for(const formats::LlamaConfig& config);

// Throws illm::Error "<recipe_name> for <model>: ..." naming the recipe key or the model field when the integer
// model would be refused: validate_model_settings (kernels/model_validation.h) on the shape and the settings the recipe
// gives, plus the recipe choices integerize cannot convert.
void check_recipe_for_integer_model(const Recipe& recipe, const std::string& recipe_name,
                                    const formats::LlamaConfig& config, bool paper_conformance);

}  // namespace illm::converter
