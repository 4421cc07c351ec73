#include "kernels/optimized/requant_rows.h"

#include <limits>

namespace illm::optimized {
namespace {

constexpr int64_t kFastLimit = int64_t{1} << 62;

void codes(const RowKernels& k, const int64_t* v, int32_t n, const RequantElements& e, uint8_t* out) {
  k.requant_u8(v, n, e, out);
}
void codes(const RowKernels& k, const int64_t* v, int32_t n, const RequantElements& e, uint16_t* out) {
  k.requant_u16(v, n, e, out);
}
void codes(const RowKernels& k, const int64_t* v, int32_t n, const RequantElements& e, int16_t* out) {
  k.requant_i16(v, n, e, out);
}
void codes(const RowKernels& k, const int64_t* v, int32_t n, const RequantElements& e, int32_t* out) {
  k.requant_i32(v, n, e, out);
}

template <typename Code>
void convert(const RowKernels& k, const int64_t* v, int32_t n, const RequantPlan& plan, bool fast, Code* out) {
  if (fast) {
    codes(k, v, n, requant_elements(plan), out);
    return;
  }
  for (int32_t j = 0; j < n; ++j) out[j] = static_cast<Code>(plan.code(v[j]));
}

}  // namespace

RequantElements requant_elements(const RequantPlan& plan) {
  RequantElements e;
  e.normalize = plan.normalize;
  e.fraction_bits = plan.fraction_bits > 0 ? plan.fraction_bits : 1;  // an all-zero row (multiplier 0) codes 0
  e.multiplier = plan.multiplier;
  e.zero_point = plan.zero_point;
  e.code_min = plan.code_min;
  e.code_max = plan.code_max;
  e.clamp_input = plan.input_min != std::numeric_limits<int64_t>::min() || plan.input_max != std::numeric_limits<int64_t>::max();
  e.input_min = plan.input_min;
  e.input_max = plan.input_max;
  return e;
}

template <typename Code>
DiRequantResult requant_row(const RowKernels& k, const int64_t* v, int32_t n, int64_t m_in, int32_t k_in, int out_bits,
                            int mantissa_bits, Code* out, RequantClip clip) {
  int64_t lo = 0, hi = 0;
  k.range(v, n, &lo, &hi);
  const RequantPlan plan = plan_requant(lo, hi, m_in, k_in, out_bits, mantissa_bits, clip);
  convert(k, v, n, plan, lo > -kFastLimit && hi < kFastLimit, out);
  return DiRequantResult{plan.zero_point, plan.scale};
}

template <typename Code>
DiRequantResult requant_row_symmetric(const RowKernels& k, const int64_t* v, int32_t n, int64_t m_in, int32_t k_in,
                                      int out_bits, int mantissa_bits, Code* out) {
  const uint64_t max_abs = k.max_abs(v, n);
  const RequantPlan plan = plan_requant_symmetric(max_abs, m_in, k_in, out_bits, mantissa_bits);
  convert(k, v, n, plan, max_abs < static_cast<uint64_t>(kFastLimit), out);
  return DiRequantResult{0, plan.scale};
}

template DiRequantResult requant_row<uint8_t>(const RowKernels&, const int64_t*, int32_t, int64_t, int32_t, int, int,
                                              uint8_t*, RequantClip);
template DiRequantResult requant_row<uint16_t>(const RowKernels&, const int64_t*, int32_t, int64_t, int32_t, int, int,
                                               uint16_t*, RequantClip);
template DiRequantResult requant_row<int32_t>(const RowKernels&, const int64_t*, int32_t, int64_t, int32_t, int, int,
                                              int32_t*, RequantClip);
template DiRequantResult requant_row_symmetric<int16_t>(const RowKernels&, const int64_t*, int32_t, int64_t, int32_t,
                                                        int, int, int16_t*);
template DiRequantResult requant_row_symmetric<int32_t>(const RowKernels&, const int64_t*, int32_t, int64_t, int32_t,
                                                        int, int, int32_t*);

}  // namespace illm::optimized
