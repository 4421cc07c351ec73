#pragma once
// Run-time CPU feature detection for the kernel paths (kernels/kernel_set.h): CPUID and the OS-enabled register
// state (XGETBV), so a path is offered only when both the instructions and their registers are usable.
namespace illm {

struct CpuFeatures {
  bool avx2 = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512vnni = false;
};

// Detected once (thread-safe static); all false on a non-x86 build.
const CpuFeatures& cpu_features();

}  // namespace illm
