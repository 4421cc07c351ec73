// The generic row kernels (row_kernels.inc) compiled for portable (any CPU, baseline ISA).
#include "kernels/optimized/row_kernels.h"

#define ILLM_ROW_KERNELS_TABLE kRowsPortable
#define ILLM_ROW_KERNELS_NAME "portable"
#include "kernels/optimized/row_kernels.inc"
