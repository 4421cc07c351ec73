#pragma once
// What one kernel path's optimized operators run on: its dot blocks, its row kernels, its one-pass per-group
// dot kernel (kGroupedDotNone where it has none) and its one-pass per-group-activation kernel (kActGroupDotNone).
#include "kernels/optimized/act_group_dot.h"
#include "kernels/optimized/dot_block.h"
#include "kernels/optimized/grouped_dot.h"
#include "kernels/optimized/row_kernels.h"

namespace illm::optimized {

struct Isa {
  const DotIsa& dot;
  const RowKernels& rows;
  const GroupedDotIsa& grouped;
  const ActGroupDotIsa& act_groups;
};

}  // namespace illm::optimized
