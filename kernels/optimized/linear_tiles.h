#pragma once
// The task grid every optimized DI-MatMul runs on: tiles of up to kRowBlock activation rows × kColBlock weight rows,
// column blocks outermost, one OpenMP item per tile (kernels/optimized/parallel.h: results do not depend on threads).
#include <algorithm>
#include <cstdint>

#include "kernels/optimized/parallel.h"

namespace illm::optimized {

// Measured on Zen 4 (1 thread, 256×4096×4096): 128 × 32 tasks beat 64-row or 64-column tasks by 5–20 % (the
// horizontal reduction of each tile is amortized over a longer K range). kColBlock is a multiple of the ISA kernels'
// 4-row weight blocks.
inline constexpr int32_t kRowBlock = 128;  // activation rows per task (their K chunk stays in L2)
inline constexpr int32_t kColBlock = 32;   // weight rows per task

// Activation rows [t0, t1) and weight rows [j0, j0 + cols) of one task.
struct TaskTile {
  int32_t t0, t1, j0, cols;
};

// task(tile) for every tile of a rows × n output with inner dimension k, in parallel above the work threshold.
template <typename Task>
void parallel_tiles(int32_t rows, int32_t n, int32_t k, Task&& task) {
  const int32_t row_blocks = (rows + kRowBlock - 1) / kRowBlock, col_blocks = (n + kColBlock - 1) / kColBlock;
  const int64_t work_per_task = int64_t{std::min(rows, kRowBlock)} * std::min(n, kColBlock) * k;
  parallel_for(int64_t{row_blocks} * col_blocks, work_per_task, [&](int64_t index) {
    const int32_t cb = static_cast<int32_t>(index / row_blocks), rb = static_cast<int32_t>(index % row_blocks);
    const int32_t t0 = rb * kRowBlock, j0 = cb * kColBlock;
    task(TaskTile{t0, std::min(rows, t0 + kRowBlock), j0, std::min(n, j0 + kColBlock) - j0});
  });
}

}  // namespace illm::optimized
