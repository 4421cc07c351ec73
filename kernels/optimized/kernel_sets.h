#pragma once
// The optimized kernel sets (portable, avx2, avx512vnni), assembled from kernels/optimized/*.
#include "kernels/kernel_set.h"

namespace illm::optimized {

// The table of `path` (not kReference). Does not check the CPU: kernels_for() (kernels/kernel_set.h) does.
const KernelSet& kernel_set(KernelPath path);

}  // namespace illm::optimized
