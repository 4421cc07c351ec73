#pragma once
// The optimized kernels of one path without its one-pass per-group kernels (kernels/optimized/grouped_dot.h,
// act_group_dot.h): the one-dot-block-per-group kernels they replaced, for side-by-side measurements
// (group_linear_bench, group_model_speed).
#include "kernels/kernel_set.h"
#include "kernels/optimized/isa.h"

namespace illm::bench {

inline optimized::Isa isa_without_one_pass(KernelPath path) {
#if defined(__x86_64__)
  if (path == KernelPath::kAvx2)
    return {optimized::kDotAvx2, optimized::kRowsAvx2, optimized::kGroupedDotNone, optimized::kActGroupDotNone};
  if (path == KernelPath::kAvx512Vnni)
    return {optimized::kDotAvx512Vnni, optimized::kRowsAvx512Vnni, optimized::kGroupedDotNone,
            optimized::kActGroupDotNone};
#endif
  return {optimized::kDotPortable, optimized::kRowsPortable, optimized::kGroupedDotNone, optimized::kActGroupDotNone};
}

}  // namespace illm::bench
