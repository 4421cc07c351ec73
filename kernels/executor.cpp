// The integer forward pass, top to bottom (docs/method.md §7.7). Each step names the operator of the kernel set that
// does the work (kernels/kernel_set.h); the numerics live in those operators.
#include "kernels/executor.h"

#include <string>

#include "kernels/activation_groups.h"
#include "kernels/error.h"

namespace illm {
namespace {

constexpr int kResidualBits = 16;  // int16 residual stream (§7.2)

std::string layer_name(size_t l, const char* part) { return "layers[" + std::to_string(l) + "]." + part; }

}  // namespace

int32_t argmax_row(const IntegerLogits& logits, int32_t row) {
  if (row < 0 || row >= logits.tokens || logits.vocab < 1 ||
      logits.values.size() != static_cast<size_t>(logits.tokens) * logits.vocab)
    throw Error("argmax: row " + std::to_string(row) + " outside logits of " + std::to_string(logits.tokens) +
                " tokens (or inconsistent sizes)");
  const int64_t* values = logits.values.data() + static_cast<size_t>(row) * logits.vocab;
  int32_t best = 0;
  for (int32_t v = 1; v < logits.vocab; ++v)
    if (values[v] > values[best]) best = v;  // strict: ties keep the lowest id
  return best;
}

int32_t Executor::argmax_last(const IntegerLogits& logits) { return argmax_row(logits, logits.tokens - 1); }

Executor::Executor(const QuantizedModel& model) : Executor(model, optimized_kernels()) {}

Executor::Executor(const QuantizedModel& model, const KernelSet& kernels) : model_(model), kernels_(kernels) {
  validate_quantized_model(model);
  const int b_m = model.settings.mantissa_bits;
  const int32_t act_group = model.act_group_size;  // the block linears' per-group code sums (LM head: per row)
  layers_.reserve(model.layers.size());
  for (size_t l = 0; l < model.layers.size(); ++l) {
    const QuantizedLayer& L = model.layers[l];
    layers_.push_back(PreparedLayer{
        prepare_linear(L.q_proj, b_m, layer_name(l, "q_proj").c_str(), act_group),
        prepare_linear(L.k_proj, b_m, layer_name(l, "k_proj").c_str(), act_group),
        prepare_linear(L.v_proj, b_m, layer_name(l, "v_proj").c_str(), act_group),
        prepare_linear(L.o_proj, b_m, layer_name(l, "o_proj").c_str(), act_group),
        prepare_linear(L.gate_proj, b_m, layer_name(l, "gate_proj").c_str(), act_group),
        prepare_linear(L.up_proj, b_m, layer_name(l, "up_proj").c_str(), act_group),
        prepare_linear(L.down_proj, b_m, layer_name(l, "down_proj").c_str(), act_group)});
  }
  lm_head_ = prepare_linear(model.lm_head, b_m, "lm_head");
  rope_ = rope_table_view(model);
  if (model.hadamard_down) down_plan_ = plan_hadamard(model.shape.intermediate);
  if (model.hadamard_qk) qk_plan_ = plan_hadamard(model.shape.head_dim);
  cache_ = KvCache(model.shape.n_layers, model.shape.n_kv_heads, model.shape.head_dim, model.shape.max_positions);
}

void Executor::reset() {
  cache_.reset();
  next_position_ = 0;
}

void Executor::set_token_pruning(const TokenPruning& pruning) {
  check_token_pruning(pruning, model_.shape.n_layers);
  pruning_ = pruning;
}

template <typename Call>
void Executor::run(Operator op, const char* detail, Call&& call) {
  if (profiler_ != nullptr) profiler_->begin(op, detail);
  call();
  if (profiler_ != nullptr) profiler_->end(op, detail);
}

void Executor::rope_heads_site(int32_t heads, int32_t first_position, bool pruned, RequantClip clip,
                               PerHeadActivation& out) {
  const ModelShape& S = model_.shape;
  const IntegerSettings& settings = model_.settings;
  Workspace& w = ws_;
  if (!model_.hadamard_qk) {
    run(Operator::kRopeHeads, nullptr, [&] {
      if (!pruned)
        return kernels_.rope_heads(w.acc, heads, S.head_dim, first_position, rope_, settings, qkv_code_bits(settings), out,
                                   clip);
      rope_heads_at(kernels_, w.acc, heads, S.head_dim, w.positions, rope_, settings, qkv_code_bits(settings), out, clip,
                    w.run_acc, w.run_heads);
    });
    return;
  }
  run(Operator::kRopeHeads, "hadamard_qk",
      [&] { kernels_.rope_symmetric(w.acc, heads, S.head_dim, w.positions, rope_, settings, w.wide); });
  run(Operator::kHadamard, "qk", [&] {
    kernels_.hadamard_rows(qk_plan_, w.wide.rows * heads, std::span<int32_t>(w.wide.values));  // one row per head
  });
  run(Operator::kRequantize, "hadamard_qk", [&] {
    widen_rows(w.wide, w.acc);  // w.acc (this projection's P') is consumed
    kernels_.split_heads(w.acc, heads, S.head_dim, settings, qkv_code_bits(settings), out, clip);
  });
}

void Executor::group_site(RequantClip clip, QuantizedActivation& out) {
  Workspace& w = ws_;
  const IntegerSettings& settings = model_.settings;
  run(Operator::kRequantize, "act_groups", [&] {
    center_codes(w.site16, w.site_acc);
    requantize_groups(kernels_.requantize, w.site_acc, model_.act_group_size, settings.a_bits, settings.mantissa_bits,
                      out, clip);
  });
}

void Executor::block_linear(const QuantizedActivation& x, const PreparedLinear& w, const char* name) {
  if (model_.act_group_size > 0)
    return run(Operator::kLinear, name, [&] { kernels_.linear_act_groups(x, w, ws_.acc); });
  run(Operator::kLinear, name, [&] { kernels_.linear(x, w, ws_.acc); });
}

void Executor::swiglu_site(const QuantizedLayer& layer) {
  const IntegerSettings& settings = model_.settings;
  Workspace& w = ws_;
  const RequantClip clip = layer.act_clip[kClipDownIn];
  const TripFactors trip = layer.trip(kClipDownIn);  // never with hadamard_down or act_group_size (model validation)
  const bool grouped = model_.act_group_size > 0;
  if (!model_.hadamard_down) {
    run(Operator::kSwiglu, nullptr, [&] {
      if (trip.enabled())
        return kernels_.swiglu_trip(w.gate, w.up, layer.swiglu_inv_alpha, settings, settings.a_bits, w.mixed, clip,
                                    trip);
      if (grouped)
        return kernels_.swiglu(w.gate, w.up, layer.swiglu_inv_alpha, settings, 16, w.site16, RequantClip{});
      kernels_.swiglu(w.gate, w.up, layer.swiglu_inv_alpha, settings, settings.a_bits, w.mixed, clip);
    });
    if (grouped) group_site(clip, w.mixed);
    return;
  }
  run(Operator::kSwiglu, "hadamard_down",
      [&] { kernels_.swiglu_symmetric(w.gate, w.up, layer.swiglu_inv_alpha, settings, w.wide); });
  run(Operator::kHadamard, "down",
      [&] { kernels_.hadamard_rows(down_plan_, w.wide.rows, std::span<int32_t>(w.wide.values)); });
  run(Operator::kRequantize, "hadamard_down", [&] {
    widen_rows(w.wide, w.acc);  // w.acc (up_proj's P') is consumed
    if (grouped)
      return requantize_groups(kernels_.requantize, w.acc, model_.act_group_size, settings.a_bits,
                               settings.mantissa_bits, w.mixed, clip);
    kernels_.requantize(w.acc, settings.a_bits, settings.mantissa_bits, w.mixed, clip);
  });
}

IntegerLogits Executor::forward(std::span<const int32_t> token_ids) {
  const QuantizedModel& M = model_;
  const ModelShape& S = M.shape;
  const IntegerSettings& settings = M.settings;
  const KernelSet& K = kernels_;
  Workspace& w = ws_;
  const int b_m = settings.mantissa_bits, a_bits = settings.a_bits;
  const int32_t tokens = static_cast<int32_t>(token_ids.size());
  const int32_t first = next_position_;
  IntegerLogits logits;
  logits.vocab = S.vocab;
  if (tokens == 0) return logits;
  if (int64_t{first} + tokens > S.max_positions)
    throw Error("executor: positions " + std::to_string(first) + ".." + std::to_string(int64_t{first} + tokens - 1) +
                " pass max_positions = " + std::to_string(S.max_positions));

  // DI-Norm of a block input site (attn_in, ffn_in) into w.x: clipped as the layer says, TRIP when it has factors,
  // per group (16-bit per-row codes first) with act_group_size.
  const bool grouped = M.act_group_size > 0;
  auto norm_site = [&](const QuantizedLayer& L, const ChannelVector& gamma, int site) {
    if (grouped) {
      run(Operator::kRmsNorm, nullptr,
          [&] { K.rms_norm(w.h, gamma, M.norm_eps, settings, 16, w.site16, RequantClip{}); });
      return group_site(L.act_clip[site], w.x);
    }
    run(Operator::kRmsNorm, nullptr, [&] {
      if (L.trip(site).enabled())
        K.rms_norm_trip(w.h, gamma, M.norm_eps, settings, a_bits, w.x, L.act_clip[site], L.trip(site));
      else
        K.rms_norm(w.h, gamma, M.norm_eps, settings, a_bits, w.x, L.act_clip[site]);
    });
  };

  // Embedding rows are already a per-token quantized int16 residual (§7.3).
  run(Operator::kEmbedding, nullptr, [&] { K.embedding(M, token_ids, w.h); });
  // Token pruning (docs/token-pruning.md): the rows of h are the tokens still present, at w.positions.
  w.positions.resize(static_cast<size_t>(tokens));
  for (int32_t t = 0; t < tokens; ++t) w.positions[t] = first + t;
  bool pruned = false;  // a token of this call was removed (its positions are no longer consecutive)
  try {
    for (size_t l = 0; l < M.layers.size(); ++l) {
      const QuantizedLayer& L = M.layers[l];
      const PreparedLayer& W = layers_[l];
      const int32_t layer = static_cast<int32_t>(l);
      const int32_t slot = cache_.length(layer);  // this layer's first cache slot of the call (= first unpruned)
      const bool prune_here = pruning_.enabled() && tokens > 1 && layer >= pruning_.from_layer;

      // Attention half: DI-Norm → q/k/v DI-MatMul → RoPE + per-(token, head) codes → cache → attention.
      norm_site(L, L.attn_norm, kClipAttnIn);
      block_linear(w.x, W.q_proj, "q_proj");
      rope_heads_site(S.n_heads, first, pruned, L.act_clip[kClipQ], w.q);
      block_linear(w.x, W.k_proj, "k_proj");
      rope_heads_site(S.n_kv_heads, first, pruned, L.act_clip[kClipK], w.k);
      block_linear(w.x, W.v_proj, "v_proj");
      run(Operator::kSplitHeads, nullptr, [&] {
        K.split_heads(w.acc, S.n_kv_heads, S.head_dim, settings, qkv_code_bits(settings), w.v, L.act_clip[kClipV]);
      });
      run(Operator::kKvStore, nullptr, [&] {
        for (int32_t t = 0; t < w.k.rows; ++t)
          for (int32_t g = 0; g < S.n_kv_heads; ++g) cache_.store(layer, g, slot + t, w.k.head(t, g), w.v.head(t, g));
      });
      run(Operator::kAttention, nullptr, [&] {
        // Per-group activations: 16-bit per-row codes here, the site's clip at the per-group requantization.
        const RequantClip out_clip = grouped ? RequantClip{} : L.act_clip[kClipAttnOut];
        const int out_bits = grouped ? 16 : a_bits;
        QuantizedActivation& out = grouped ? w.site16 : w.attended;
        const TripFactors trip = L.trip(kClipAttnOut);
        w.received.resize(prune_here ? static_cast<size_t>(w.q.rows) : 0);
        if (trip.enabled())
          return K.attention_trip(w.q, cache_, layer, slot, L.softmax_clip, settings, out_bits, out, out_clip, trip,
                                  std::span<int64_t>(w.received));
        if (!prune_here)
          return K.attention(w.q, cache_, layer, slot, L.softmax_clip, settings, out_bits, out, out_clip);
        K.attention_scored(w.q, cache_, layer, slot, L.softmax_clip, settings, out_bits, out, out_clip, w.received);
      });
      if (grouped) group_site(L.act_clip[kClipAttnOut], w.attended);

      // o_proj's aligned accumulator goes straight into the residual add (fused epilogue, §7.2).
      block_linear(w.attended, W.o_proj, "o_proj");
      run(Operator::kResidualAdd, nullptr, [&] { K.residual_add(w.h, w.acc, b_m, kResidualBits, w.h); });
      if (prune_here) {
        const std::vector<int32_t> removed =
            tokens_to_prune(w.received, w.positions, pruned_token_count(pruning_, w.h.rows));
        remove_tokens(removed, w.h, w.positions);
        pruned = pruned || !removed.empty();
      }

      // MLP half: DI-Norm → gate/up DI-MatMul (8-bit) → DI-SwiGLU → down_proj → fused residual add.
      norm_site(L, L.ffn_norm, kClipFfnIn);
      const int swiglu_bits = settings.swiglu_in_bits;
      block_linear(w.x, W.gate_proj, "gate_proj");
      run(Operator::kRequantize, nullptr, [&] { K.requantize(w.acc, swiglu_bits, b_m, w.gate, RequantClip{}); });
      block_linear(w.x, W.up_proj, "up_proj");
      run(Operator::kRequantize, nullptr, [&] { K.requantize(w.acc, swiglu_bits, b_m, w.up, RequantClip{}); });
      swiglu_site(L);
      block_linear(w.mixed, W.down_proj, "down_proj");
      run(Operator::kResidualAdd, nullptr, [&] { K.residual_add(w.h, w.acc, b_m, kResidualBits, w.h); });
    }

    // Final DI-Norm to head_in_bits codes (default head_bits), then the LM head's aligned accumulator = the integer
    // logits (§7.6).
    run(Operator::kRmsNorm, nullptr,
        [&] { K.rms_norm(w.h, M.final_norm, M.norm_eps, settings, head_input_bits(settings), w.x, RequantClip{}); });
    AlignedAccumulator head;
    run(Operator::kLinear, "lm_head", [&] { K.linear(w.x, lm_head_, head); });
    cache_.commit_stored();
    next_position_ = first + tokens;
    logits.tokens = head.rows;
    logits.values = std::move(head.values);
    logits.scales = std::move(head.scales);
    logits.positions = w.positions;
    return logits;
  } catch (...) {
    cache_.rollback();
    throw;
  }
}

}  // namespace illm
