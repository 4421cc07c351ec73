// The generic row kernels (row_kernels.inc) compiled for avx2 (-mavx2; called only when the CPU has AVX2).
#include "kernels/optimized/row_kernels.h"

#define ILLM_ROW_KERNELS_TABLE kRowsAvx2
#define ILLM_ROW_KERNELS_NAME "avx2"
#include "kernels/optimized/row_kernels.inc"
