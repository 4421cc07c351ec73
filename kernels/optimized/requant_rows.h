#pragma once
// DI_REQUANT of one row through the row kernels: the reference's per-row plan (kernels/requant.h, plan_requant)
// and a vectorized element loop, bit-for-bit equal to di_requant / di_requant_symmetric. Rows with a value beyond
// ±2^62 (never produced by the executor's operators) take the plan's own per-element code().
// Argument checks are not repeated here: the callers pass widths validated with the model.
#include <cstdint>

#include "kernels/optimized/row_kernels.h"
#include "kernels/requant.h"

namespace illm::optimized {

RequantElements requant_elements(const RequantPlan& plan);

template <typename Code>
DiRequantResult requant_row(const RowKernels& k, const int64_t* v, int32_t n, int64_t m_in, int32_t k_in, int out_bits,
                            int mantissa_bits, Code* out, RequantClip clip = {});
template <typename Code>
DiRequantResult requant_row_symmetric(const RowKernels& k, const int64_t* v, int32_t n, int64_t m_in, int32_t k_in,
                                      int out_bits, int mantissa_bits, Code* out);

}  // namespace illm::optimized
