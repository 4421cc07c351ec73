// The generic row kernels (row_kernels.inc) compiled for avx512vnni (the AVX-512 flags of CMakeLists.txt; called only when the CPU has them).
#include "kernels/optimized/row_kernels.h"

#define ILLM_ROW_KERNELS_TABLE kRowsAvx512Vnni
#define ILLM_ROW_KERNELS_NAME "avx512vnni"
#include "kernels/optimized/row_kernels.inc"
