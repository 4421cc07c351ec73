// The integer forward pass, top to bottom (docs/method.md §7.7). Each step names the operator of the kernel set that
// does the work (kernels/kernel_set.h); the numerics live in those operators.
#include "kernels/executor.h"

#include <string>

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
  layers_.reserve(model.layers.size());
  for (size_t l = 0; l < model.layers.size(); ++l) {
    const QuantizedLayer& L = model.layers[l];
    layers_.push_back(PreparedLayer{
        prepare_linear(L.q_proj, b_m, layer_name(l, "q_proj").c_str()),
        prepare_linear(L.k_proj, b_m, layer_name(l, "k_proj").c_str()),
        prepare_linear(L.v_proj, b_m, layer_name(l, "v_proj").c_str()),
        prepare_linear(L.o_proj, b_m, layer_name(l, "o_proj").c_str()),
        prepare_linear(L.gate_proj, b_m, layer_name(l, "gate_proj").c_str()),
        prepare_linear(L.up_proj, b_m, layer_name(l, "up_proj").c_str()),
        prepare_linear(L.down_proj, b_m, layer_name(l, "down_proj").c_str())});
  }
  lm_head_ = prepare_linear(model.lm_head, b_m, "lm_head");
  rope_ = rope_table_view(model);
  cache_ = KvCache(model.shape.n_layers, model.shape.n_kv_heads, model.shape.head_dim, model.shape.max_positions);
}

void Executor::reset() { cache_.reset(); }

template <typename Call>
void Executor::run(Operator op, const char* detail, Call&& call) {
  if (profiler_ != nullptr) profiler_->begin(op, detail);
  call();
  if (profiler_ != nullptr) profiler_->end(op, detail);
}

IntegerLogits Executor::forward(std::span<const int32_t> token_ids) {
  const QuantizedModel& M = model_;
  const ModelShape& S = M.shape;
  const IntegerSettings& settings = M.settings;
  const KernelSet& K = kernels_;
  Workspace& w = ws_;
  const int b_m = settings.mantissa_bits, a_bits = settings.a_bits;
  const int32_t tokens = static_cast<int32_t>(token_ids.size());
  const int32_t first = cache_.length();
  IntegerLogits logits;
  logits.vocab = S.vocab;
  if (tokens == 0) return logits;
  if (int64_t{first} + tokens > S.max_positions)
    throw Error("executor: positions " + std::to_string(first) + ".." + std::to_string(int64_t{first} + tokens - 1) +
                " pass max_positions = " + std::to_string(S.max_positions));

  // DI-Norm of a block input site (attn_in, ffn_in) into w.x: clipped as the layer says, TRIP when it has factors.
  auto norm_site = [&](const QuantizedLayer& L, const ChannelVector& gamma, int site) {
    if (L.trip(site).enabled())
      K.rms_norm_trip(w.h, gamma, M.norm_eps, settings, a_bits, w.x, L.act_clip[site], L.trip(site));
    else
      K.rms_norm(w.h, gamma, M.norm_eps, settings, a_bits, w.x, L.act_clip[site]);
  };

  // Embedding rows are already a per-token quantized int16 residual (§7.3).
  run(Operator::kEmbedding, nullptr, [&] { K.embedding(M, token_ids, w.h); });
  try {
    for (size_t l = 0; l < M.layers.size(); ++l) {
      const QuantizedLayer& L = M.layers[l];
      const PreparedLayer& W = layers_[l];
      const int32_t layer = static_cast<int32_t>(l);

      // Attention half: DI-Norm → q/k/v DI-MatMul → RoPE + per-(token, head) codes → cache → attention.
      run(Operator::kRmsNorm, nullptr, [&] { norm_site(L, L.attn_norm, kClipAttnIn); });
      run(Operator::kLinear, "q_proj", [&] { K.linear(w.x, W.q_proj, w.acc); });
      run(Operator::kRopeHeads, nullptr,
          [&] { K.rope_heads(w.acc, S.n_heads, S.head_dim, first, rope_, settings, a_bits, w.q, L.act_clip[kClipQ]); });
      run(Operator::kLinear, "k_proj", [&] { K.linear(w.x, W.k_proj, w.acc); });
      run(Operator::kRopeHeads, nullptr,
          [&] { K.rope_heads(w.acc, S.n_kv_heads, S.head_dim, first, rope_, settings, a_bits, w.k, L.act_clip[kClipK]); });
      run(Operator::kLinear, "v_proj", [&] { K.linear(w.x, W.v_proj, w.acc); });
      run(Operator::kSplitHeads, nullptr, [&] {
        K.split_heads(w.acc, S.n_kv_heads, S.head_dim, settings, a_bits, w.v, L.act_clip[kClipV]);
      });
      run(Operator::kKvStore, nullptr, [&] {
        for (int32_t t = 0; t < tokens; ++t)
          for (int32_t g = 0; g < S.n_kv_heads; ++g) cache_.store(layer, g, first + t, w.k.head(t, g), w.v.head(t, g));
      });
      run(Operator::kAttention, nullptr,
          [&] {
            if (L.trip(kClipAttnOut).enabled())
              K.attention_trip(w.q, cache_, layer, first, L.softmax_clip, settings, a_bits, w.attended,
                               L.act_clip[kClipAttnOut], L.trip(kClipAttnOut));
            else
              K.attention(w.q, cache_, layer, first, L.softmax_clip, settings, a_bits, w.attended,
                          L.act_clip[kClipAttnOut]);
          });

      // o_proj's aligned accumulator goes straight into the residual add (fused epilogue, §7.2).
      run(Operator::kLinear, "o_proj", [&] { K.linear(w.attended, W.o_proj, w.acc); });
      run(Operator::kResidualAdd, nullptr, [&] { K.residual_add(w.h, w.acc, b_m, kResidualBits, w.h); });

      // MLP half: DI-Norm → gate/up DI-MatMul (8-bit) → DI-SwiGLU → down_proj → fused residual add.
      run(Operator::kRmsNorm, nullptr, [&] { norm_site(L, L.ffn_norm, kClipFfnIn); });
      const int swiglu_bits = settings.swiglu_in_bits;
      run(Operator::kLinear, "gate_proj", [&] { K.linear(w.x, W.gate_proj, w.acc); });
      run(Operator::kRequantize, nullptr, [&] { K.requantize(w.acc, swiglu_bits, b_m, w.gate, RequantClip{}); });
      run(Operator::kLinear, "up_proj", [&] { K.linear(w.x, W.up_proj, w.acc); });
      run(Operator::kRequantize, nullptr, [&] { K.requantize(w.acc, swiglu_bits, b_m, w.up, RequantClip{}); });
      run(Operator::kSwiglu, nullptr,
          [&] {
            if (L.trip(kClipDownIn).enabled())
              K.swiglu_trip(w.gate, w.up, L.swiglu_inv_alpha, settings, a_bits, w.mixed, L.act_clip[kClipDownIn],
                            L.trip(kClipDownIn));
            else
              K.swiglu(w.gate, w.up, L.swiglu_inv_alpha, settings, a_bits, w.mixed, L.act_clip[kClipDownIn]);
          });
      run(Operator::kLinear, "down_proj", [&] { K.linear(w.mixed, W.down_proj, w.acc); });
      run(Operator::kResidualAdd, nullptr, [&] { K.residual_add(w.h, w.acc, b_m, kResidualBits, w.h); });
    }

    // Final DI-Norm to head_bits codes, then the LM head's aligned accumulator = the integer logits (§7.6).
    run(Operator::kRmsNorm, nullptr,
        [&] { K.rms_norm(w.h, M.final_norm, M.norm_eps, settings, settings.head_bits, w.x, RequantClip{}); });
    AlignedAccumulator head;
    run(Operator::kLinear, "lm_head", [&] { K.linear(w.x, lm_head_, head); });
    cache_.commit(first + tokens);
    logits.tokens = tokens;
    logits.values = std::move(head.values);
    logits.scales = std::move(head.scales);
    return logits;
  } catch (...) {
    cache_.rollback();
    throw;
  }
}

}  // namespace illm
