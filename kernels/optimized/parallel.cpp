#include "kernels/optimized/parallel.h"

#include <atomic>

namespace illm {
namespace {
std::atomic<int64_t> g_parallel_work_threshold{int64_t{1} << 22};
}  // namespace

void set_parallel_work_threshold(int64_t work) { g_parallel_work_threshold = work < 0 ? 0 : work; }
int64_t parallel_work_threshold() { return g_parallel_work_threshold; }

}  // namespace illm
