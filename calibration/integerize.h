#pragma once
// Calibrated float model → integer model (torch-free). The last float step of the pipeline: every scale becomes a
// dyadic number, norms and the SwiGLU divisor become integer channel vectors, the embedding and the LM head are
// quantized by their own rules (docs/method.md §7.3, §7.6), 1/√d is folded into q_proj's row scales (§7.4) and the
// RoPE tables are built in float64 (§7.4). After this, nothing float is needed to run the model.
#include <string>

#include "calibration/calibrated_model.h"
#include "formats/recipe.h"
#include "kernels/dyadic.h"
#include "kernels/quantized_model.h"

namespace illm {

// Settings of the integer pipeline for a recipe's bit widths: the project's defaults (§9.1), or the paper's
// literal choices when paper_conformance is set.
IntegerSettings integer_settings_for(int w_bits, int a_bits, bool paper_conformance);

// s ≈ m / 2^k with an m of exactly `mantissa_bits` bits (§1.4: k = b_m − 1 − ⌊log2 s⌋, m = round(s·2^k)).
// s must be finite and > 0 (throws illm::Error naming `what` otherwise).
Dyadic dyadic_from_double(double s, int mantissa_bits, const char* what);

// Values ≈ mantissa / 2^exponent with a common exponent chosen so that max |mantissa| < 2^mantissa_bits.
ChannelVector channel_vector_from_floats(const std::vector<float>& values, int mantissa_bits, const char* what);

// The integer model of a calibrated model. Throws illm::Error for what the integer path does not support
// (per-group weights, online Hadamards, activation clip ratios, TRIP factors: fake-quant only for now).
QuantizedModel integerize(const calib::CalibratedModel& calibrated, const IntegerSettings& settings);

// Throws illm::Error naming `source` and the recipe key when a recipe asks for something integerize() refuses, so
// that `illm quantize` reports it before calibrating.
void require_integer_path(const Recipe& recipe, const std::string& source);

}  // namespace illm
