#pragma once
// Process settings for the float side, torch-free so converter/ can call them.
// set_thread_count: LibTorch's intra-op pool, OpenMP and OpenBLAS; n <= 0 means all hardware threads.
namespace illm::calib {

void set_thread_count(int n);
// The count last set (or LibTorch's current intra-op count).
int thread_count();

// Process-wide: keeps memory freed by LibTorch in the process instead of returning it to the kernel. Tensor ops
// allocate and free multi-MB buffers; with glibc's defaults each one is mmapped and page-faulted in anew
// (measured: most of the FP eval time on stories260K). Allocations above 64 MiB are still returned at once (a
// retained heap of 7B-scale buffers fragments and grows block after block). Idempotent; FpModel::load and the CLI
// call it.
void retain_freed_memory();
// Returns the heap's free pages to the system (malloc_trim): called between decoder blocks, whose buffers of the
// next block do not reuse all of the previous one's, so that retained free memory does not add up over the layers.
void release_freed_memory();

}  // namespace illm::calib
