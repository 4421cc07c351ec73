#include "kernels/optimized/softmax.h"

#include "kernels/integer_math.h"
#include "kernels/optimized/requant_rows.h"
#include "kernels/reference/di_exp.h"
#include "kernels/reference/di_softmax.h"
#include "kernels/requant.h"

namespace illm::optimized {
namespace {
constexpr int64_t kMinT = int64_t{1} << 13, kMaxT = int64_t{1} << 16;  // |t| range of the fast DI-Exp loop
constexpr int32_t kMaxPromote = 40, kMinPromote = -40;
constexpr int64_t kMaxSum = int64_t{1} << 47;
}  // namespace

void clipped_softmax_row(const RowKernels& k, const int64_t* logits, int32_t valid, int64_t m_in, int32_t k_in,
                         Dyadic clip, const IntegerSettings& settings, int32_t* probs, int64_t* scratch) {
  int64_t v_max = logits[0], v_min = logits[0];
  for (int32_t j = 1; j < valid; ++j) {
    v_max = logits[j] > v_max ? logits[j] : v_max;
    v_min = logits[j] < v_min ? logits[j] : v_min;
  }
  // Clip range [lo, v_max] (|v| < 2^62 and c^I <= 2^62, so v_max − c^I fits int64).
  const int64_t floor = v_max - softmax_clip_in_logit_units(clip, m_in, k_in);
  const int64_t lo = floor > v_min ? floor : v_min;
  for (int32_t j = 0; j < valid; ++j) scratch[j] = (logits[j] > lo ? logits[j] : lo) - v_max;  // d_j ∈ [lo − v_max, 0]

  // DI_REQUANT of d to n_s bits: its range is [lo − v_max, 0] (d = 0 at the maximum).
  const RequantPlan plan = plan_requant(lo - v_max, 0, m_in, k_in, settings.softmax_in_bits, settings.mantissa_bits);
  const DiExpFrame frame = di_exp_frame(plan.scale.m, plan.scale.k);
  const int64_t abs_t = -frame.t;
  int64_t sum = 0;
  if (abs_t >= kMinT && abs_t < kMaxT && frame.promote <= kMaxPromote && frame.promote >= kMinPromote) {
    SoftmaxExpElements e;
    e.requant = requant_elements(plan);
    e.promote = frame.promote;
    e.abs_t = abs_t;
    e.quadratic = settings.exp_quadratic;
    sum = k.softmax_exp(scratch, valid, e, probs);
  } else {  // outside the fast loop's bounds: the reference's element formula
    for (int32_t j = 0; j < valid; ++j) {
      const int64_t x = plan.code(scratch[j]) - plan.zero_point;
      const int64_t value = di_exp(di_exp_promote(x, frame), frame.t, settings.exp_quadratic);
      probs[j] = static_cast<int32_t>(value);
      sum += value;
    }
  }
  if (sum >= kMinT && sum < kMaxSum) {
    k.softmax_divide(probs, valid, sum, settings.prob_bits);
    return;
  }
  const int64_t one = int64_t{1} << (settings.prob_bits - 1);
  for (int32_t j = 0; j < valid; ++j) probs[j] = static_cast<int32_t>(fdiv(int64_t{probs[j]} * one, sum));
}

}  // namespace illm::optimized
