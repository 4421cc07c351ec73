#pragma once
// Rotations (QuaRot / SpinQuant family) as exact transforms of the FP weights, applied before any smoothing or
// quantization. Offline (folded into the weights, no new integer operator):
//   fold_norm_gains     RMSNorm gains γ into the following linears' input columns (the norms become 1), so that an
//                       orthogonal matrix commutes with RMSNorm;
//   residual rotation   the residual stream h becomes h·Q (Q orthogonal [C, C], seeded): input linears W·Q, output
//                       linears (o_proj, down_proj) Qᵀ·W, embedding rows E·Q, LM head W_head·diag(γ_final)·Q;
//   head rotation       a Hadamard Ĥ_d per attention head on v: v_proj rows Ĥ_d·W_v,j, o_proj columns W_o,h·Ĥ_dᵀ.
// Online (a transform at run time, simulated by the fake-quant block, calibration/online_hadamard.h):
//   down_proj input     Ĥ_(C_f)·x before its quantizer, w_down ← W·Ĥᵀ (fold_online_down);
//   q and k after RoPE  Ĥ_d on both per head (scores unchanged, no weight change).
// Every function is block-local (one block's weights) or embedding/head-local, for block streaming.
#include <cstdint>

#include <torch/torch.h>

#include "calibration/fake_quant_block.h"
#include "calibration/llama_weights.h"
#include "formats/recipe.h"

namespace illm::calib {

// Normalized Hadamard Ĥ = H/√g of kernels/reference/hadamard.h, [n, n] float64 (orthogonal).
torch::Tensor normalized_hadamard(int64_t n);

// The residual-stream rotation [C, C] float64 for a recipe: kHadamard = Ĥ_C·diag(±1) with seeded random signs
// (QuaRot's randomized Hadamard), kOrthogonal = the Q factor of a seeded Gaussian matrix (signs fixed by R's
// diagonal). Deterministic in `seed`; independent of the global torch RNG. kNone: undefined tensor.
torch::Tensor residual_rotation(ResidualRotation kind, int64_t hidden, uint64_t seed);

// γ1 into q/k/v columns, γ2 into gate/up columns; both norms become ones. Exact in FP.
BlockWeights fold_norm_gains(const BlockWeights& fp);

// One block in the rotated basis: norm gains folded and `rotation` applied when it is defined, per-head Hadamards on
// v/o when `rotate_heads`. Computed in float64, returned in the block's dtype. rotated_block(x·Q) = block(x)·Q.
BlockWeights rotate_block(const BlockWeights& fp, const torch::Tensor& rotation, bool rotate_heads,
                          const BlockShape& shape);

// Rows [n, C] (embedding rows, block 0's inputs) → rows·Q, computed in float64, returned in the rows' dtype.
torch::Tensor rotate_embedding_rows(const torch::Tensor& rows, const torch::Tensor& rotation);
// LM head rows [n, C] → (rows·diag(final_norm))·Q likewise.
torch::Tensor rotate_head_rows(const torch::Tensor& rows, const torch::Tensor& final_norm,
                               const torch::Tensor& rotation);

// Embedding rows E·Q; LM head W_head·diag(γ)·Q with γ (final_norm) set to ones. `head` may share storage with
// `embed` (tied checkpoints): both are replaced by new tensors.
void rotate_embedding_and_head(torch::Tensor& embed, torch::Tensor& head, torch::Tensor& final_norm,
                               const torch::Tensor& rotation);

// The whole model in place for a recipe (offline transforms only): what calibrate() does before the block loop.
void rotate_model(LlamaWeights& weights, const Recipe& recipe);

// w_down ← w_down·Ĥᵀ for an online down_proj Hadamard of the block's intermediate size.
torch::Tensor fold_online_down(const torch::Tensor& w_down, const OnlineHadamard& h);

// Fake-quant settings with the recipe's online Hadamards attached (sizes C_f and d of `shape`).
void attach_online_hadamards(FakeQuantSettings& settings, bool down, bool qk, const BlockShape& shape);

}  // namespace illm::calib
