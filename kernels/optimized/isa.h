#pragma once
// What one kernel path's optimized operators run on: its dot blocks and its row kernels.
#include "kernels/optimized/dot_block.h"
#include "kernels/optimized/row_kernels.h"

namespace illm::optimized {

struct Isa {
  const DotIsa& dot;
  const RowKernels& rows;
};

}  // namespace illm::optimized
