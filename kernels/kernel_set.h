#pragma once
// The operator set of the integer model, as a table of kernels (docs/integer-semantics.md "## Operator set").
//
// These operators are the whole project's operator set: the executor (kernels/executor.h) is a forward pass written
// as calls of them, the C runtime and the ONNX export implement exactly these. Each kernel path fills the table:
//   reference   kernels/reference/: one serial, readable kernel per operator; the specification
//   portable    kernels/optimized/: blocked, OpenMP-parallel C++ without ISA intrinsics (any CPU)
//   avx2        portable + AVX2 DI-MatMul microkernels (vpmaddubsw only where it provably cannot saturate)
//   avx512vnni  portable + AVX-512 VNNI (vpdpbusd) DI-MatMul microkernels and AVX-512 softmax / requantization rows
// Every path equals the reference bit for bit (tests/kernels/kernel_paths_test.cpp). An AMX-INT8 path is not
// provided (it could not be verified on the development machines).
//
// Adding an operator (e.g. a per-group DI-MatMul, a clipped DI_REQUANT): add a field
// here, its reference kernel under kernels/reference/, the reference entry in kernel_set.cpp, and optionally an
// optimized kernel; a path that has no faster kernel for it uses the reference kernel (a kernel, not a fallback:
// both are bit-identical by definition).
//
// Preconditions common to every operator: the model passed validate_quantized_model once at load, and activations
// come from the operators themselves (codes and zero points in range, scale mantissas as DI_REQUANT emits them).
// Operators do not re-validate codes on every call; shape mismatches still throw illm::Error.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/dyadic.h"
#include "kernels/kv_cache.h"
#include "kernels/prepared_linear.h"
#include "kernels/quantized_model.h"
#include "kernels/quantized_tensor.h"
#include "kernels/reference/hadamard.h"
#include "kernels/reference/hadamard_sites.h"
#include "kernels/reference/rope.h"
#include "kernels/requant.h"
#include "kernels/trip_requant.h"

namespace illm {

enum class KernelPath { kReference, kPortable, kAvx2, kAvx512Vnni };

struct KernelSet {
  KernelPath path = KernelPath::kReference;
  const char* name = "reference";

  // §7.3 Rows of the embedding table for each token id → the int16 residual stream.
  void (*embedding)(const QuantizedModel& model, std::span<const int32_t> token_ids, ResidualStream& out);
  // The asymmetric requantizations of the activation sites take a clip ratio (`RequantClip`, kernels/requant.h;
  // m = 0 is off, the plain DI_REQUANT bit for bit): docs/integer-semantics.md "## Clipped DI_REQUANT".
  // §5.2–5.4 DI-Norm of every row of the residual stream (γ = gamma, ε = eps) → out_bits codes per row.
  void (*rms_norm)(const ResidualStream& h, const ChannelVector& gamma, Dyadic eps, const IntegerSettings& settings,
                   int out_bits, QuantizedActivation& out, RequantClip clip);
  // §3.2–3.6 DI-MatMul x · Wᵀ → the aligned accumulator P' (per-row dyadic (m1_t, k1_t + K2)). x.bits <= 16.
  void (*linear)(const QuantizedActivation& x, const PreparedLinear& w, AlignedAccumulator& out);
  // DI-MatMul of per-group activations x (x.group_size > 0) and a weight per row or in groups of a multiple of
  // x.group_size → P' with per-row dyadic (1, K1_t − b_m + K2) (docs/integer-semantics.md "## Per-group activations",
  // "## Per-group activations with per-group weights"; kernels/reference/act_group_matmul.h).
  // The executor calls it only for models with act_group_size set (the weights prepared with that group size).
  void (*linear_act_groups)(const QuantizedActivation& x, const PreparedLinear& w, AlignedAccumulator& out);
  // §3.4 DI_REQUANT of every row of P' → out_bits codes per row.
  void (*requantize)(const AlignedAccumulator& acc, int out_bits, int mantissa_bits, QuantizedActivation& out,
                     RequantClip clip);
  // §7.4 q/k: P' → DI_REQUANT_SYM to 16 bits → RoPE at first_position + t → DI_REQUANT per (token, head).
  void (*rope_heads)(const AlignedAccumulator& acc, int32_t heads, int32_t head_dim, int32_t first_position,
                     const RopeTableView& rope, const IntegerSettings& settings, int out_bits, PerHeadActivation& out,
                     RequantClip clip);
  // §7.5 v: DI_REQUANT per (token, head) of P'.
  void (*split_heads)(const AlignedAccumulator& acc, int32_t heads, int32_t head_dim, const IntegerSettings& settings,
                      int out_bits, PerHeadActivation& out, RequantClip clip);
  // §7.5 Causal GQA attention of the queries at first_position, … against layer `layer` of the KV cache: Q·Kᵀ,
  // DI-ClippedSoftmax (clip), value-scale folding, P·V, one DI_REQUANT per token over all heads.
  void (*attention)(const PerHeadActivation& query, const KvCache& cache, int32_t layer, int32_t first_position,
                    Dyadic clip, const IntegerSettings& settings, int out_bits, QuantizedActivation& out,
                    RequantClip out_clip);
  // Token pruning (docs/token-pruning.md): `attention`, plus the attention each query token of the call received,
  // received[j] = Σ_h Σ_(t >= j) P^I_h(t, first_position + j) over the DI-ClippedSoftmax outputs (int64,
  // received.size() == query.rows). `first_position` is the first query's cache slot (its position when unpruned).
  void (*attention_scored)(const PerHeadActivation& query, const KvCache& cache, int32_t layer, int32_t first_position,
                           Dyadic clip, const IntegerSettings& settings, int out_bits, QuantizedActivation& out,
                           RequantClip out_clip, std::span<int64_t> received);
  // §6.2 DI-SwiGLU of every row (gate, up: 8-bit codes) → out_bits codes.
  void (*swiglu)(const QuantizedActivation& gate, const QuantizedActivation& up, const ChannelVector& inv_alpha,
                 const IntegerSettings& settings, int out_bits, QuantizedActivation& out, RequantClip clip);
  // §7.2 Residual add of P' (zero point 0), DI_REQUANT_SYM to out_bits; `out` may be `h`.
  void (*residual_add)(const ResidualStream& h, const AlignedAccumulator& delta, int mantissa_bits, int out_bits,
                       ResidualStream& out);
  // Walsh–Hadamard transform x ← H·x (H of `plan`, exact) of each of `rows` rows of plan.n int32 values, in place;
  // every row must satisfy max|x|·plan.row_l1 ≤ 2^31 − 1 (checked before any row changes: illm::Error).
  void (*hadamard_rows)(const HadamardPlan& plan, int32_t rows, std::span<int32_t> values);
  // The online Walsh–Hadamard sites before the transform (kernels/reference/hadamard_sites.h); after it, the executor
  // requantizes with `requantize` (hadamard_down) or `split_heads` (hadamard_qk) as the sites without it do.
  // hadamard_down: DI-SwiGLU products of every row (as `swiglu`) → DI_REQUANT_SYM to 16 bits → int32 rows.
  void (*swiglu_symmetric)(const QuantizedActivation& gate, const QuantizedActivation& up,
                           const ChannelVector& inv_alpha, const IntegerSettings& settings, WideRows& out);
  // hadamard_qk: P' → DI_REQUANT_SYM to 16 bits → RoPE at positions[t] (one per row) → int32 rows.
  void (*rope_symmetric)(const AlignedAccumulator& acc, int32_t heads, int32_t head_dim,
                         std::span<const int32_t> positions, const RopeTableView& rope,
                         const IntegerSettings& settings, WideRows& out);

  // The TRIP sites (docs/integer-semantics.md "## TRIP channel factors"): rms_norm, attention and swiglu whose output
  // DI_REQUANT refines channel c by 2^(K − α_c) (kernels/trip_requant.h); their codes are out_bits +
  // trip_extra_bits(trip) wide and feed the unchanged DI-MatMul. Every path's entry is the reference kernel (no
  // optimized TRIP kernel yet); the executor calls these only for sites whose TRIP factors are on. attention_trip
  // with a non-empty `received` is attention_scored with TRIP (token pruning).
  void (*rms_norm_trip)(const ResidualStream& h, const ChannelVector& gamma, Dyadic eps,
                        const IntegerSettings& settings, int out_bits, QuantizedActivation& out, RequantClip clip,
                        TripFactors trip);
  void (*attention_trip)(const PerHeadActivation& query, const KvCache& cache, int32_t layer, int32_t first_position,
                         Dyadic clip, const IntegerSettings& settings, int out_bits, QuantizedActivation& out,
                         RequantClip out_clip, TripFactors trip,
                         std::span<int64_t> received);
  void (*swiglu_trip)(const QuantizedActivation& gate, const QuantizedActivation& up, const ChannelVector& inv_alpha,
                      const IntegerSettings& settings, int out_bits, QuantizedActivation& out, RequantClip clip,
                      TripFactors trip);
};

// Fills the TRIP entries with the reference kernels (the entries of every path).
void set_reference_trip_kernels(KernelSet& k);
// The serial reference kernels (the specification).
const KernelSet& reference_kernels();
// The kernel set of one path. Throws illm::Error naming the path and the missing CPU features when this CPU
// cannot run it (never a silent substitute).
const KernelSet& kernels_for(KernelPath path);
// The fastest path this CPU supports (avx512vnni > avx2 > portable), unless the environment variable
// ILLM_KERNELS names a path ("reference", "portable", "avx2", "avx512vnni" or "auto"); an unknown or unsupported
// name throws illm::Error.
const KernelSet& optimized_kernels();
// By name: the names above, or "auto" (= optimized_kernels() without the environment variable). Throws on an
// unknown name or a path this CPU lacks.
const KernelSet& kernels_by_name(std::string_view name);

const char* kernel_path_name(KernelPath path);
std::vector<KernelPath> all_kernel_paths();        // every path this build knows
bool cpu_supports(KernelPath path);                // can this CPU run it?
std::string missing_cpu_features(KernelPath path); // e.g. "avx512vnni"; empty when supported

}  // namespace illm
