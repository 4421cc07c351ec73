#pragma once
// The single validation of an integer model (docs/integer-semantics.md "## Executor", Validation). The executor runs
// it once when a model is loaded; the kernels rely on it and do not re-check codes on every call.
#include "kernels/quantized_model.h"

namespace illm {

// Checks everything the executor relies on: shapes, bit widths, table sizes, code and zero-point ranges (weight
// codes in their storage layout, padding nibbles included), scale mantissas, and the §3.6 accumulator bounds.
// Throws illm::Error naming the field (e.g. "layers[1].k_proj.bits").
void validate_quantized_model(const QuantizedModel& model);

// The part of validate_quantized_model that needs no tensors: shape limits (bos_id and eos_id inside the
// vocabulary included), the settings' bit widths and the attention accumulator bounds. Lets a caller refuse a
// recipe for a model before calibrating it (validate_quantized_model starts with this).
void validate_model_settings(const ModelShape& shape, const IntegerSettings& settings);

}  // namespace illm
