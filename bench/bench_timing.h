#pragma once
// Timing and random-number helpers shared by the kernel benchmarks (gemm_bench, group_linear_bench).
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace illm::bench {

// xorshift64: reproducible operands without <random>'s per-library differences.
struct Random {
  uint64_t state;
  uint64_t next() {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  }
};

// Seconds of the calling thread's CPU time: on a shared machine it excludes the time the thread waits for a core.
// Exact for single-thread runs (all work happens in the calling thread); multi-thread runs use wall time.
inline double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}
inline double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The best of `reps` runs of f after one warm-up run, in thread CPU time or wall time.
template <typename F>
double best_seconds(int reps, bool cpu_time, F&& f) {
  f();  // warm-up
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const double start = cpu_time ? thread_cpu_seconds() : wall_seconds();
    f();
    best = std::min(best, (cpu_time ? thread_cpu_seconds() : wall_seconds()) - start);
  }
  return best;
}

}  // namespace illm::bench
