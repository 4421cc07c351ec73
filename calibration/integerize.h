#pragma once
// Calibrated float model → integer model (torch-free). The last float step of the pipeline: every scale becomes a
// dyadic number, norms and the SwiGLU divisor become integer channel vectors, the embedding and the LM head are
// quantized by their own rules (docs/method.md §7.3, §7.6), 1/√d is folded into q_proj's row scales (§7.4) and the
// RoPE tables are built in float64 (§7.4). After this, nothing float is needed to run the model.
#include <optional>
#include <string>
#include <vector>

#include "calibration/calibrated_model.h"
#include "calibration/gptq_rows.h"
#include "formats/recipe.h"
#include "kernels/dyadic.h"
#include "kernels/quantized_model.h"

namespace illm {

// Settings of the integer pipeline for a recipe's bit widths: the project's defaults (§9.1), or the paper's
// literal choices when paper_conformance is set.
IntegerSettings integer_settings_for(int w_bits, int a_bits, bool paper_conformance);

// IntegerSettings::head_in_bits for a recipe's head_in_bits: 0 (the head's weight width) when they are equal, so that
// a model without a wide head input is written as before.
inline int32_t head_in_bits_setting(int recipe_head_in_bits, int32_t head_bits) {
  return recipe_head_in_bits == head_bits ? 0 : recipe_head_in_bits;
}

// IntegerSettings::qkv_bits for a recipe's qkv_bits: 0 (a_bits) when it is absent or equal to a_bits, so that a model
// without its own Q/K/V width is written as before (format version 4 or lower).
inline int32_t qkv_bits_setting(int recipe_qkv_bits, int a_bits) {
  return recipe_qkv_bits == a_bits ? 0 : recipe_qkv_bits;
}

// s ≈ m / 2^k with an m of exactly `mantissa_bits` bits (§1.4: k = b_m − 1 − ⌊log2 s⌋, m = round(s·2^k)).
// s must be finite and > 0 (throws illm::Error naming `what` otherwise).
Dyadic dyadic_from_double(double s, int mantissa_bits, const char* what);

// Values ≈ mantissa / 2^exponent with a common exponent chosen so that max |mantissa| < 2^mantissa_bits.
ChannelVector channel_vector_from_floats(const std::vector<float>& values, int mantissa_bits, const char* what);

// The integer model of a calibrated model. Throws illm::Error for what the integer path does not support
// (TRIP factors: fake-quant only for now). Composed of the pieces below, which refuse them too (integerize_layer
// the TRIP factors).
QuantizedModel integerize(const calib::CalibratedModel& calibrated, const IntegerSettings& settings);

// The pieces, for block streaming (converter/quantize_pipeline.h): nothing needs the whole float model at once.
// The model-level part: shape, settings, ε, RoPE tables, and the embedding / LM head storage sized for their rows
// (filled by the two row functions); `calibrated` needs its frame only (calib::calibrated_model_frame), no layers.
QuantizedModel integer_model_frame(const calib::CalibratedModel& calibrated, const IntegerSettings& settings);
// One calibrated layer of a model with `settings` and `head_dim` (`index` names it in messages); pass the layer
// with std::move to move its codes instead of copying them.
// `hadamards`: the model's online Walsh–Hadamard transforms (CalibratedModel::hadamard_down / hadamard_qk; the
// calibrated down_proj is then already W·Ĥᵀ): 1/√g goes into down_proj's row scales, 1/g into q_proj's
// (docs/integer-semantics.md "## Walsh–Hadamard transform"). trip_max_shift: the recipe's trip_shifts K (needed when
// the layer has TRIP exponents).
struct OnlineHadamards {
  bool down = false;
  bool qk = false;
};
QuantizedLayer integerize_layer(calib::CalibratedLayer layer, const IntegerSettings& settings, int32_t head_dim,
                                OnlineHadamards hadamards, size_t index, int32_t trip_max_shift = 0);
// An activation clip ratio r ∈ (0, 1] as the site requantization's RequantClip: r = 1 → off (m = 0), the
// calibration grid j/16 exactly (k = 4), other ratios with a 16-bit mantissa (k = 16). Throws naming `what`.
RequantClip requant_clip_from_ratio(double ratio, const std::string& what);
// Embedding rows [first, first + count) from their float values ([count][hidden], row-major).
void integerize_embedding_rows(QuantizedModel& model, int32_t first, int32_t count, const float* rows);
// LM head rows [first, first + count) likewise: per row asymmetric, the range min/max widened to include 0; the codes
// round to nearest, or by GPTQ on that grid when `gptq` is given (recipe key gptq_head; head_gptq_rounder below).
void integerize_head_rows(QuantizedModel& model, int32_t first, int32_t count, const float* rows,
                          const calib::GptqRowRounder* gptq = nullptr);
// The GPTQ rounder of the LM head for a calibrated model that carries a head Hessian (CalibratedModel::head_hessian);
// nullopt when it carries none.
std::optional<calib::GptqRowRounder> head_gptq_rounder(const calib::CalibratedModel& frame,
                                                       const std::vector<double>& head_hessian);
// The final RMSNorm gain.
void integerize_final_norm(QuantizedModel& model, const std::vector<float>& gain);

// Throws illm::Error naming `source` and the recipe key when a recipe asks for something integerize() refuses, so
// that `illm quantize` reports it before calibrating (converter/integer_preflight.h calls it).
void require_integer_path(const Recipe& recipe, const std::string& source);

}  // namespace illm
