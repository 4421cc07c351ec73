#include "calibration/threads.h"

#include <dlfcn.h>
#include <malloc.h>
#include <omp.h>

#include <algorithm>
#include <thread>

#include <ATen/Parallel.h>

namespace illm::calib {

void set_thread_count(int n) {
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(n);
  omp_set_num_threads(n);
  // LibTorch's BLAS (OpenBLAS, pthreads build on Debian) keeps its own pool that at::set_num_threads does not
  // size; left alone it spins on every core. Looked up at run time so other BLAS builds still link.
  using SetBlasThreads = void (*)(int);
  if (auto set_blas = reinterpret_cast<SetBlasThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    set_blas(n);
}

int thread_count() { return at::get_num_threads(); }

void retain_freed_memory() {
  // Up to 64 MiB per allocation: kept. Larger ones (7B-scale weights and activations, docs/scale.md) are mapped
  // and unmapped by themselves, so what one block frees is returned instead of fragmenting a retained heap.
  mallopt(M_MMAP_THRESHOLD, 1 << 26);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

void release_freed_memory() { malloc_trim(0); }

}  // namespace illm::calib
