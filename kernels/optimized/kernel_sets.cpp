#include "kernels/optimized/kernel_sets.h"

#include "kernels/error.h"
#include "kernels/optimized/attention.h"
#include "kernels/optimized/hadamard_rows.h"
#include "kernels/optimized/isa.h"
#include "kernels/optimized/linear.h"
#include "kernels/optimized/row_operators.h"
#include "kernels/reference/embedding.h"

namespace illm::optimized {
namespace {

const Isa kPortable{kDotPortable, kRowsPortable, kGroupedDotNone, kActGroupDotNone};
#if defined(__x86_64__)
const Isa kAvx2{kDotAvx2, kRowsAvx2, kGroupedDotAvx2, kActGroupDotAvx2};
const Isa kAvx512Vnni{kDotAvx512Vnni, kRowsAvx512Vnni, kGroupedDotAvx512Vnni, kActGroupDotAvx512Vnni};
#endif

template <const Isa& kIsa>
void linear(const QuantizedActivation& x, const PreparedLinear& w, AlignedAccumulator& out) {
  linear_accumulate(kIsa, x, w, out);
}

template <const Isa& kIsa>
void linear_act_groups(const QuantizedActivation& x, const PreparedLinear& w, AlignedAccumulator& out) {
  linear_act_groups_accumulate(kIsa, x, w, out);
}

template <const Isa& kIsa>
void requantize_op(const AlignedAccumulator& acc, int out_bits, int mantissa_bits, QuantizedActivation& out,
                   RequantClip clip) {
  requantize(kIsa.rows, acc, out_bits, mantissa_bits, out, clip);
}

template <const Isa& kIsa>
void rope_heads_op(const AlignedAccumulator& acc, int32_t heads, int32_t head_dim, int32_t first_position,
                   const RopeTableView& rope, const IntegerSettings& settings, int out_bits, PerHeadActivation& out,
                   RequantClip clip) {
  rope_heads(kIsa.rows, acc, heads, head_dim, first_position, rope, settings, out_bits, out, clip);
}

template <const Isa& kIsa>
void split_heads_op(const AlignedAccumulator& acc, int32_t heads, int32_t head_dim, const IntegerSettings& settings,
                    int out_bits, PerHeadActivation& out, RequantClip clip) {
  split_heads(kIsa.rows, acc, heads, head_dim, settings, out_bits, out, clip);
}

template <const Isa& kIsa>
void rms_norm_op(const ResidualStream& h, const ChannelVector& gamma, Dyadic eps, const IntegerSettings& settings,
                 int out_bits, QuantizedActivation& out, RequantClip clip) {
  rms_norm(kIsa.rows, h, gamma, eps, settings, out_bits, out, clip);
}

template <const Isa& kIsa>
void swiglu_op(const QuantizedActivation& gate, const QuantizedActivation& up, const ChannelVector& inv_alpha,
               const IntegerSettings& settings, int out_bits, QuantizedActivation& out, RequantClip clip) {
  swiglu(kIsa.rows, gate, up, inv_alpha, settings, out_bits, out, clip);
}

template <const Isa& kIsa>
void swiglu_symmetric_op(const QuantizedActivation& gate, const QuantizedActivation& up,
                         const ChannelVector& inv_alpha, const IntegerSettings& settings, WideRows& out) {
  swiglu_symmetric(kIsa.rows, gate, up, inv_alpha, settings, out);
}

template <const Isa& kIsa>
void rope_symmetric_op(const AlignedAccumulator& acc, int32_t heads, int32_t head_dim,
                       std::span<const int32_t> positions, const RopeTableView& rope, const IntegerSettings& settings,
                       WideRows& out) {
  rope_symmetric(kIsa.rows, acc, heads, head_dim, positions, rope, settings, out);
}

template <const Isa& kIsa>
void residual_add_op(const ResidualStream& h, const AlignedAccumulator& delta, int mantissa_bits, int out_bits,
                     ResidualStream& out) {
  residual_add(kIsa.rows, h, delta, mantissa_bits, out_bits, out);
}

template <const Isa& kIsa>
void attention(const PerHeadActivation& query, const KvCache& cache, int32_t layer, int32_t first_position,
               Dyadic clip, const IntegerSettings& settings, int out_bits, QuantizedActivation& out,
               RequantClip out_clip) {
  attention_layer(kIsa, query, cache, layer, first_position, clip, settings, out_bits, out, out_clip, {});
}

template <const Isa& kIsa>
void attention_scored(const PerHeadActivation& query, const KvCache& cache, int32_t layer, int32_t first_position,
                      Dyadic clip, const IntegerSettings& settings, int out_bits, QuantizedActivation& out,
                      RequantClip out_clip, std::span<int64_t> received) {
  attention_layer(kIsa, query, cache, layer, first_position, clip, settings, out_bits, out, out_clip, received);
}

template <const Isa& kIsa>
KernelSet make(KernelPath path, const char* name) {
  KernelSet k;
  k.path = path;
  k.name = name;
  k.embedding = embedding_lookup;  // a copy of table rows: nothing to speed up
  k.rms_norm = rms_norm_op<kIsa>;
  k.linear = linear<kIsa>;
  k.requantize = requantize_op<kIsa>;
  k.rope_heads = rope_heads_op<kIsa>;
  k.split_heads = split_heads_op<kIsa>;
  k.attention = attention<kIsa>;
  k.attention_scored = attention_scored<kIsa>;
  k.swiglu = swiglu_op<kIsa>;
  k.residual_add = residual_add_op<kIsa>;
  k.hadamard_rows = hadamard_rows;  // no ISA-specific code: butterflies the compiler vectorizes
  k.swiglu_symmetric = swiglu_symmetric_op<kIsa>;
  k.rope_symmetric = rope_symmetric_op<kIsa>;
  set_reference_trip_kernels(k);  // no optimized TRIP kernels: the reference is the entry
  k.linear_act_groups = linear_act_groups<kIsa>;
  return k;
}

}  // namespace

const KernelSet& kernel_set(KernelPath path) {
  static const KernelSet portable = make<kPortable>(KernelPath::kPortable, "portable");
#if defined(__x86_64__)
  static const KernelSet avx2 = make<kAvx2>(KernelPath::kAvx2, "avx2");
  static const KernelSet avx512vnni = make<kAvx512Vnni>(KernelPath::kAvx512Vnni, "avx512vnni");
#endif
  switch (path) {
    case KernelPath::kPortable: return portable;
#if defined(__x86_64__)
    case KernelPath::kAvx2: return avx2;
    case KernelPath::kAvx512Vnni: return avx512vnni;
#endif
    default: break;
  }
  throw Error(std::string("kernel path ") + kernel_path_name(path) + " is not built into this binary");
}

}  // namespace illm::optimized
