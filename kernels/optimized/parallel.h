#pragma once
// OpenMP helpers of the optimized kernels. Every parallel loop runs over independent items (rows, tiles, heads), no
// reduction is split across threads, so results never depend on the thread count. Errors never leave a parallel
// region: the first one (lowest item) is kept and rethrown after it.
#include <cstdint>
#include <exception>
#include <string>

#include "kernels/error.h"

namespace illm {

// Work (multiply-adds or element operations) below which a kernel stays serial. Default 2^22 (~20–50 µs of one
// thread's work with these kernels): an OpenMP fork/join costs microseconds on a quiet machine and far more on a busy
// one, so tinybible-sized operators stay serial and 7B-sized ones go parallel. 0 forces every OpenMP region on
// (tests of thread-count invariance).
void set_parallel_work_threshold(int64_t work);
int64_t parallel_work_threshold();

namespace optimized {

// item(i) for i in [0, count), in parallel when count > 1 and count · work_per_item exceeds the threshold.
template <typename Item>
void parallel_for(int64_t count, int64_t work_per_item, Item&& item) {
  std::string failure;
  int64_t failed = count;
#pragma omp parallel for schedule(dynamic, 1) if (count > 1 && count * work_per_item > parallel_work_threshold())
  for (int64_t i = 0; i < count; ++i) {
    try {
      item(i);
    } catch (const std::exception& e) {
#pragma omp critical(illm_parallel_failure)
      if (i < failed) {
        failed = i;
        failure = e.what();
      }
    }
  }
  if (failed < count) throw Error(failure);
}

}  // namespace optimized
}  // namespace illm
