#pragma once
// The integer executor: the whole integer-only forward pass of a LLaMA decoder (docs/method.md §7.7, §9.1), prefill and
// token-by-token decode over an integer KV cache, returning the LM head's aligned accumulator with its per-token
// dyadic scale. The forward pass is a sequence of calls of the kernel set's operators (kernels/kernel_set.h): with
// reference_kernels() it is the specification, with an optimized set the same code path runs fast kernels, bit for
// bit equal. Integer-only (kernels/ audit). Exact definition: docs/integer-semantics.md "## Executor".
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kernels/dyadic.h"
#include "kernels/kernel_set.h"
#include "kernels/kv_cache.h"
#include "kernels/model_validation.h"
#include "kernels/operator_profiler.h"
#include "kernels/prepared_linear.h"
#include "kernels/quantized_model.h"
#include "kernels/quantized_tensor.h"
#include "kernels/reference/hadamard.h"
#include "kernels/reference/hadamard_sites.h"
#include "kernels/reference/rope.h"
#include "kernels/token_pruning.h"

namespace illm {

// Logits of `tokens` positions: real logit[t][v] = values[t·vocab + v] · scales[t].m / 2^scales[t].k.
struct IntegerLogits {
  int32_t tokens = 0;
  int32_t vocab = 0;
  std::vector<int64_t> values;  // [tokens][vocab], the LM head's aligned accumulator P'
  std::vector<Dyadic> scales;   // [tokens]
  std::vector<int32_t> positions;  // [tokens] position of each row: after token pruning, only the kept tokens
};

// Integer argmax of one row (the row's scale is common to the row, so no scale is needed); ties → lowest id.
int32_t argmax_row(const IntegerLogits& logits, int32_t row);

class Executor {
 public:
  // Validates the model once (validate_quantized_model) and prepares its linears (alignment and code sums; the codes
  // stay where they are, in the model's storage layout). `model` must outlive the executor.
  Executor(const QuantizedModel& model, const KernelSet& kernels);
  // With optimized_kernels() (the fastest path of this CPU, or the one ILLM_KERNELS names).
  explicit Executor(const QuantizedModel& model);

  // Runs token_ids at positions position(), position() + 1, … and appends their keys and values to the cache:
  // prefill (many ids) or decode (one id). Prefill of T tokens and T one-token calls give identical logits.
  // Throws illm::Error for an id outside [0, vocab) or when the positions pass shape.max_positions; the cache is
  // then left as it was. With token pruning on (set_token_pruning) a call of T > 1 tokens drops tokens after the
  // attention of the pruned layers (docs/token-pruning.md): the logits hold the kept rows only (`positions`), the
  // later layers' caches the kept tokens; the positions still advance by T. One-token calls never prune.
  IntegerLogits forward(std::span<const int32_t> token_ids);

  void reset();  // empties the KV cache: the next forward starts at position 0
  int32_t position() const { return next_position_; }
  // Prefill option (checked by check_token_pruning; rate 0 = off, the default). Applies to later forward calls.
  void set_token_pruning(const TokenPruning& pruning);
  const TokenPruning& token_pruning() const { return pruning_; }
  const KvCache& cache() const { return cache_; }

  // Greedy decoding: integer argmax of the last row of `logits`, ties → lowest id.
  static int32_t argmax_last(const IntegerLogits& logits);

  const QuantizedModel& model() const { return model_; }
  const KernelSet& kernels() const { return kernels_; }
  // Reports the begin and end of every operator call to `profiler` (nullptr: none). Not thread-safe.
  void set_profiler(OperatorProfiler* profiler) { profiler_ = profiler; }

 private:
  struct PreparedLayer {
    PreparedLinear q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj;
  };
  // Tensors of one forward call, kept between calls so that their storage is reused.
  struct Workspace {
    ResidualStream h;
    QuantizedActivation x, attended, gate, up, mixed;
    AlignedAccumulator acc;
    PerHeadActivation q, k, v;
    std::vector<int32_t> positions;  // of the rows of h
    std::vector<int64_t> received;   // attention received per token (pruned layers)
    AlignedAccumulator run_acc;      // rope_heads_at's scratch
    PerHeadActivation run_heads;
    WideRows wide;  // the int32 rows an online Hadamard transforms
    QuantizedActivation site16;  // a per-group activation site's 16-bit per-row codes (act_group_size > 0)
    AlignedAccumulator site_acc; // the same, centered
  };
  template <typename Call>
  void run(Operator op, const char* detail, Call&& call);
  // q or k of `heads` heads from w.acc at the positions w.positions (consecutive from first_position unless
  // `pruned`): rope_heads, or with hadamard_qk its WHT form (kernels/reference/hadamard_sites.h); `clip` clips the
  // final per-(token, head) requantization.
  void rope_heads_site(int32_t heads, int32_t first_position, bool pruned, RequantClip clip, PerHeadActivation& out);
  // DI-SwiGLU of w.gate and w.up into w.mixed: swiglu, or with hadamard_down its WHT form; the down_in clip applies
  // to the requantization that feeds down_proj (after the transform when there is one).
  void swiglu_site(const QuantizedLayer& layer);
  // Per-group activations (act_group_size > 0): w.site16 → centered → DI_REQUANT per group to a_bits into out.
  void group_site(RequantClip clip, QuantizedActivation& out);
  // A block linear: `linear`, or `linear_act_groups` for per-group activation inputs.
  void block_linear(const QuantizedActivation& x, const PreparedLinear& w, const char* name);

  const QuantizedModel& model_;
  const KernelSet& kernels_;
  std::vector<PreparedLayer> layers_;
  PreparedLinear lm_head_;
  RopeTableView rope_;
  HadamardPlan down_plan_, qk_plan_;  // plan_hadamard(C_f), plan_hadamard(d): used when the model's flags say so
  KvCache cache_;
  int32_t next_position_ = 0;
  TokenPruning pruning_;
  Workspace ws_;
  OperatorProfiler* profiler_ = nullptr;
};

}  // namespace illm
