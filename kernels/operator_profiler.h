#pragma once
// A hook to time the executor per operator (bench/executor_bench.cpp). kernels/ has no clock: the executor only
// reports where each operator call begins and ends; the profiler (outside kernels/) measures.
namespace illm {

enum class Operator {
  kEmbedding, kRmsNorm, kLinear, kRequantize, kRopeHeads, kSplitHeads, kKvStore, kAttention, kSwiglu, kResidualAdd,
  kHadamard
};
inline constexpr int kOperatorCount = 11;

constexpr const char* operator_name(Operator op) {
  constexpr const char* names[kOperatorCount] = {"embedding",   "rms_norm",  "linear",  "requantize", "rope_heads",
                                                 "split_heads", "kv_store", "attention", "swiglu",    "residual_add",
                                                 "hadamard"};
  return names[static_cast<int>(op)];
}

class OperatorProfiler {
 public:
  virtual ~OperatorProfiler() = default;
  // `detail` names the call site for linears ("q_proj", …, "lm_head"), else nullptr.
  virtual void begin(Operator op, const char* detail) = 0;
  virtual void end(Operator op, const char* detail) = 0;
};

}  // namespace illm
