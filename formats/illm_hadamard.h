#pragma once
// The online Walsh–Hadamard flags of a model in the .illm file (docs/model-format.md "Version 2: online
// Walsh–Hadamard transforms"): optional attributes of /model, absent = off, so files without the feature (and
// version-1 files) read unchanged. The matrix is a pure function of its size; its construction string is stored for
// checking only: a reader recomputes the plan and refuses a file whose string differs.
#include <hdf5.h>

#include "kernels/quantized_model.h"

namespace illm::formats {

// Writes hadamard_down / hadamard_qk (uint8 1) and hadamard_down_plan / hadamard_qk_plan (describe() of
// plan_hadamard(C_f) / plan_hadamard(d)) for the transforms the model uses; nothing when it uses none.
void write_online_hadamards(hid_t model_group, const QuantizedModel& model);
// Sets model.hadamard_down / hadamard_qk from those attributes (false when absent); needs model.shape. Throws
// illm::Error naming the attribute for a flag other than 0 or 1, a missing plan string or a plan that differs.
void read_online_hadamards(hid_t model_group, QuantizedModel& model);

}  // namespace illm::formats
