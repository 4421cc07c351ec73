#pragma once
// Optimized row-wise operators of the kernel set (kernels/kernel_set.h): DI-Norm, DI_REQUANT of accumulators,
// q/k RoPE heads, v heads, DI-SwiGLU and the residual add. Rows (tokens) are independent: OpenMP over rows, each row
// computed by the reference row function (kernels/reference/*) or a faster exact equivalent.
#include <cstdint>

#include "kernels/optimized/row_kernels.h"
#include "kernels/quantized_model.h"
#include "kernels/quantized_tensor.h"
#include "kernels/reference/rope.h"
#include "kernels/requant.h"

namespace illm::optimized {

void rms_norm(const RowKernels& k, const ResidualStream& h, const ChannelVector& gamma, Dyadic eps,
              const IntegerSettings& settings, int out_bits, QuantizedActivation& out, RequantClip clip);
void requantize(const RowKernels& k, const AlignedAccumulator& acc, int out_bits, int mantissa_bits,
                QuantizedActivation& out, RequantClip clip);
void rope_heads(const RowKernels& k, const AlignedAccumulator& acc, int32_t heads, int32_t head_dim,
                int32_t first_position, const RopeTableView& rope, const IntegerSettings& settings, int out_bits,
                PerHeadActivation& out, RequantClip clip);
void split_heads(const RowKernels& k, const AlignedAccumulator& acc, int32_t heads, int32_t head_dim,
                 const IntegerSettings& settings, int out_bits, PerHeadActivation& out, RequantClip clip);
void swiglu(const RowKernels& k, const QuantizedActivation& gate, const QuantizedActivation& up,
            const ChannelVector& inv_alpha, const IntegerSettings& settings, int out_bits, QuantizedActivation& out,
            RequantClip clip);
void residual_add(const RowKernels& k, const ResidualStream& h, const AlignedAccumulator& delta, int mantissa_bits,
                  int out_bits, ResidualStream& out);

}  // namespace illm::optimized
