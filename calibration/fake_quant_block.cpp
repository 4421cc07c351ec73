#include "calibration/fake_quant_block.h"

#include <cmath>

#include "calibration/fused_weight_quant.h"
#include "kernels/error.h"

namespace illm::calib {
namespace {

// Repeats a per-KV-channel vector [H_kv·d] over the GQA group to the q-head layout [H·d] (q-head h uses
// kv-head ⌊h/g⌋, §2.2 site 3/4).
torch::Tensor expand_kv_to_q(const torch::Tensor& v, const BlockShape& shape) {
  const int64_t group = shape.n_heads / shape.n_kv_heads;
  return v.reshape({shape.n_kv_heads, shape.head_dim}).repeat_interleave(group, 0).reshape({-1});
}

// Site-4 vector in the per-KV-channel layout [H_kv·d]; tied vectors hold the first half of each head's pairs.
torch::Tensor expand_s4(const torch::Tensor& s4, const BlockShape& shape, bool tied) {
  if (!tied) return s4;
  const torch::Tensor half = s4.reshape({shape.n_kv_heads, shape.head_dim / 2});
  return torch::cat({half, half}, 1).reshape({-1});
}

torch::Tensor update_absmax(const torch::Tensor& current, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  const torch::Tensor m = x.detach().abs().reshape({-1, x.size(-1)}).amax(0);
  return current.defined() ? torch::maximum(current, m) : m;
}

}  // namespace

const char* linear_name(int index) {
  static const char* names[kNumLinears] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                           "down_proj"};
  return names[index];
}

torch::Tensor& linear_weight(BlockWeights& w, int index) {
  torch::Tensor* all[kNumLinears] = {&w.wq, &w.wk, &w.wv, &w.wo, &w.w_gate, &w.w_up, &w.w_down};
  return *all[index];
}
const torch::Tensor& linear_weight(const BlockWeights& w, int index) {
  return linear_weight(const_cast<BlockWeights&>(w), index);
}

SmoothParams SmoothParams::identity(const BlockShape& shape, bool tied_rope_pairs, torch::Device device) {
  SmoothParams s;
  const auto ones = [&](int64_t n) { return torch::ones({n}, torch::TensorOptions(torch::kFloat32).device(device)); };
  const int64_t kv = shape.n_kv_heads * shape.head_dim;
  s.s1 = ones(shape.hidden);
  s.s2 = ones(shape.hidden);
  s.s3 = ones(kv);
  s.s4 = ones(tied_rope_pairs ? kv / 2 : kv);
  s.s5 = ones(shape.intermediate);
  s.s6 = ones(shape.intermediate);
  s.tied_rope_pairs = tied_rope_pairs;
  return s;
}

torch::Tensor guard_smooth(const torch::Tensor& s) {
  torch::Tensor guarded;
  {
    torch::NoGradGuard no_grad;
    const torch::Tensor sign = torch::where(s < 0, -torch::ones_like(s), torch::ones_like(s));
    guarded = torch::where(s.abs() < 1e-2, sign * 1e-2, s);
  }
  return s + (guarded - s).detach();
}

FoldedBlock fold_smoothing(const BlockWeights& fp, const SmoothParams& smooth, const BlockShape& shape) {
  const torch::Tensor s1 = guard_smooth(smooth.s1), s2 = guard_smooth(smooth.s2), s3 = guard_smooth(smooth.s3);
  const torch::Tensor s4 = expand_s4(guard_smooth(smooth.s4), shape, smooth.tied_rope_pairs);
  const torch::Tensor s5 = guard_smooth(smooth.s5), s6 = guard_smooth(smooth.s6);
  const torch::Tensor s3_q = expand_kv_to_q(s3, shape), s4_q = expand_kv_to_q(s4, shape);

  FoldedBlock out;
  BlockWeights& w = out.weights;
  // Site 1: γ1 ⊘ s1, input columns of q/k/v ⊙ s1. Site 4: rows of k ⊙ s4, rows of q ⊘ s4 (per KV channel).
  w.attn_norm = fp.attn_norm / s1;
  w.wq = fp.wq * s1.unsqueeze(0) / s4_q.unsqueeze(1);
  w.wk = fp.wk * s1.unsqueeze(0) * s4.unsqueeze(1);
  // Site 3: rows of v ⊘ s3, input columns of o ⊙ s3 (GQA-expanded).
  w.wv = fp.wv * s1.unsqueeze(0) / s3.unsqueeze(1);
  w.wo = fp.wo * s3_q.unsqueeze(0);
  // Site 2: γ2 ⊘ s2, input columns of gate/up ⊙ s2. Site 5: gate rows ⊙ s5, up rows ⊘ s5. Site 6: up rows ⊘ s6,
  // down input columns ⊙ s6.
  w.ffn_norm = fp.ffn_norm / s2;
  w.w_gate = fp.w_gate * s2.unsqueeze(0) * s5.unsqueeze(1);
  w.w_up = fp.w_up * s2.unsqueeze(0) / (s5 * s6).unsqueeze(1);
  w.w_down = fp.w_down * s6.unsqueeze(0);
  out.alpha = s5;
  return out;
}

LwcParams LwcParams::init(const BlockWeights& w, int group_size, double logit) {
  LwcParams p;
  for (int i = 0; i < kNumLinears; ++i) {
    const torch::Tensor& weight = linear_weight(w, i);
    const int64_t groups = group_size <= 0 ? 1 : weight.size(1) / group_size;
    const auto options = torch::TensorOptions(torch::kFloat32).device(weight.device());
    p.upper[i] = torch::full({weight.size(0), groups}, logit, options);
    p.lower[i] = torch::full({weight.size(0), groups}, logit, options);
  }
  return p;
}

std::vector<torch::Tensor> LwcParams::all() const {
  std::vector<torch::Tensor> v;
  for (int i = 0; i < kNumLinears; ++i) {
    if (upper[i].defined()) v.push_back(upper[i]);
    if (lower[i].defined()) v.push_back(lower[i]);
  }
  return v;
}

BlockWeights quantize_block_weights(const BlockWeights& folded, int w_bits, int group_size, const LwcParams* lwc,
                                    std::array<WeightQuant, kNumLinears>* integer_out) {
  BlockWeights q = folded;
  for (int i = 0; i < kNumLinears; ++i) {
    const torch::Tensor upper = lwc ? lwc->upper[i] : torch::Tensor();
    const torch::Tensor lower = lwc ? lwc->lower[i] : torch::Tensor();
    WeightQuant wq = quantize_weight(linear_weight(folded, i), w_bits, group_size, upper, lower);
    linear_weight(q, i) = wq.dequantized;
    if (integer_out) (*integer_out)[i] = std::move(wq);
  }
  return q;
}

FoldedBlock fold_and_fake_quantize_unfused(const BlockWeights& fp, const SmoothParams& smooth, const BlockShape& shape,
                                           int w_bits, int group_size, const LwcParams* lwc,
                                           std::array<WeightQuant, kNumLinears>* integer_out) {
  FoldedBlock folded = fold_smoothing(fp, smooth, shape);
  FoldedBlock out;
  out.weights = quantize_block_weights(folded.weights, w_bits, group_size, lwc, integer_out);
  out.alpha = folded.alpha;
  return out;
}

FoldedBlock fold_and_fake_quantize(const BlockWeights& fp, const SmoothParams& smooth, const BlockShape& shape,
                                   int w_bits, int group_size, const LwcParams* lwc,
                                   std::array<WeightQuant, kNumLinears>* integer_out) {
  if (!fp.wq.device().is_cpu() || fp.wq.scalar_type() != torch::kFloat32)
    return fold_and_fake_quantize_unfused(fp, smooth, shape, w_bits, group_size, lwc, integer_out);
  // The factor vectors exactly as fold_smoothing builds them (small torch ops; autograd tracks them).
  const torch::Tensor s1 = guard_smooth(smooth.s1), s2 = guard_smooth(smooth.s2), s3 = guard_smooth(smooth.s3);
  const torch::Tensor s4 = expand_s4(guard_smooth(smooth.s4), shape, smooth.tied_rope_pairs);
  const torch::Tensor s5 = guard_smooth(smooth.s5), s6 = guard_smooth(smooth.s6);
  const torch::Tensor s3_q = expand_kv_to_q(s3, shape), s4_q = expand_kv_to_q(s4, shape);
  FoldedBlock out;
  out.weights.attn_norm = fp.attn_norm / s1;
  out.weights.ffn_norm = fp.ffn_norm / s2;
  out.alpha = s5;
  // Per linear: column factor, row factor and how the row factor applies (the order of fold_smoothing's ops).
  struct Fold {
    torch::Tensor col, row;
    RowFactor mode;
  };
  const Fold folds[kNumLinears] = {{s1, s4_q, RowFactor::kDivide},   {s1, s4, RowFactor::kMultiply},
                                   {s1, s3, RowFactor::kDivide},     {s3_q, {}, RowFactor::kNone},
                                   {s2, s5, RowFactor::kMultiply},   {s2, s5 * s6, RowFactor::kDivide},
                                   {s6, {}, RowFactor::kNone}};
  for (int i = 0; i < kNumLinears; ++i) {
    const torch::Tensor hi = lwc && lwc->upper[i].defined() ? torch::sigmoid(lwc->upper[i]) : torch::Tensor();
    const torch::Tensor lo = lwc && lwc->lower[i].defined() ? torch::sigmoid(lwc->lower[i]) : torch::Tensor();
    linear_weight(out.weights, i) = fused_fold_fake_quant(linear_weight(fp, i), folds[i].col, folds[i].row,
                                                          folds[i].mode, hi, lo, w_bits, group_size,
                                                          integer_out ? &(*integer_out)[i] : nullptr);
  }
  return out;
}

void ActStats::update(const char* which, const torch::Tensor& x) {
  const std::string name = which;
  if (name == "attn_in") attn_in = update_absmax(attn_in, x);
  else if (name == "ffn_in") ffn_in = update_absmax(ffn_in, x);
  else if (name == "o_in") o_in = update_absmax(o_in, x);
  else if (name == "down_in") down_in = update_absmax(down_in, x);
  else throw Error(std::string("ActStats: unknown site ") + which);
}

BlockObserver ActStats::observer() {
  return [this](BlockTap tap, const torch::Tensor& x) {
    switch (tap) {
      case BlockTap::attn_input: update("attn_in", x); break;
      case BlockTap::attn_context: update("o_in", x); break;
      case BlockTap::ffn_input: update("ffn_in", x); break;
      case BlockTap::ffn_hidden: update("down_in", x); break;
      default: break;
    }
  };
}

torch::Tensor fake_quant_block_forward(const BlockWeights& w, const torch::Tensor& alpha, const torch::Tensor& x,
                                       const RotaryCosSin& rope, const BlockShape& shape, const FakeQuantSettings& st,
                                       ActStats* stats, const SiteObserver* observe_sites) {
  const bool q = st.quantize_activations;
  const bool exec = q && st.executor_points;
  const int a_outer = q ? st.a_bits : 16;
  const int sw = q ? st.swiglu_in_bits : 16;
  auto residual_q = [&](const torch::Tensor& t) { return exec ? fake_quant_per_token(t, 16, true) : t; };
  const int qkv = q ? (st.qkv_bits > 0 ? st.qkv_bits : st.a_bits) : 16;
  auto site_q = [&](ActSite site, const torch::Tensor& t) {
    const int a = site == kSiteQ || site == kSiteK || site == kSiteV ? qkv : a_outer;
    const bool linear_input = site == kSiteAttnIn || site == kSiteAttnOut || site == kSiteFfnIn || site == kSiteDownIn;
    torch::Tensor out;
    if (st.act_group_size > 0 && linear_input && a < 16) {
      // Each group of G channels is a row of its own quantizer: [.., C] → [.., C/G, G] and back. When G does not
      // divide C the last C mod G channels are a short group of their own, as in the integer path.
      const int64_t C = t.size(-1), G = st.act_group_size, whole = C / G * G;
      auto quantize_groups = [&](const torch::Tensor& u, int64_t g) {
        std::vector<int64_t> grouped = u.sizes().vec();
        grouped.back() /= g;
        grouped.push_back(g);
        return fake_quant_site(u.reshape(grouped), a, st.sites[site], st.trip_max_shift).reshape(u.sizes());
      };
      if (whole == C)
        out = quantize_groups(t, G);
      else if (whole == 0)
        out = quantize_groups(t, C);
      else
        out = torch::cat({quantize_groups(t.narrow(-1, 0, whole).contiguous(), G),
                          quantize_groups(t.narrow(-1, whole, C - whole).contiguous(), C - whole)},
                         -1);
    } else {
      out = fake_quant_site(t, a, st.sites[site], st.trip_max_shift);
    }
    if (observe_sites) (*observe_sites)(site, t, out);
    return out;
  };
  const int64_t B = x.size(0), T = x.size(1), H = shape.n_heads, Hkv = shape.n_kv_heads, d = shape.head_dim;

  const torch::Tensor x_in = residual_q(x);
  torch::Tensor xn = rms_norm(x_in, w.attn_norm, shape.norm_eps);
  if (stats) stats->update("attn_in", xn);
  xn = site_q(kSiteAttnIn, xn);
  torch::Tensor qh = torch::matmul(xn, w.wq.t()).reshape({B, T, H, d}).transpose(1, 2);
  torch::Tensor kh = torch::matmul(xn, w.wk.t()).reshape({B, T, Hkv, d}).transpose(1, 2);
  torch::Tensor vh = torch::matmul(xn, w.wv.t()).reshape({B, T, Hkv, d}).transpose(1, 2);
  const RotaryCosSin rot{rope.cos.narrow(0, 0, T), rope.sin.narrow(0, 0, T)};
  qh = apply_rotary(qh, rot);
  kh = apply_rotary(kh, rot);
  if (st.hadamard_qk) {
    qh = apply_online_hadamard(qh, *st.hadamard_qk, exec);
    kh = apply_online_hadamard(kh, *st.hadamard_qk, exec);
  }
  qh = site_q(kSiteQ, qh);
  kh = site_q(kSiteK, kh);
  vh = site_q(kSiteV, vh);
  const int64_t group = H / Hkv;
  if (group > 1) {
    kh = kh.repeat_interleave(group, 1);
    vh = vh.repeat_interleave(group, 1);
  }
  torch::Tensor scores = torch::matmul(qh, kh.transpose(-2, -1)) / std::sqrt(static_cast<double>(d));
  const torch::Tensor causal = torch::ones({T, T}, torch::TensorOptions(torch::kBool).device(x.device())).triu(1);
  scores = scores.masked_fill(causal, -std::numeric_limits<float>::infinity());
  torch::Tensor probs;
  if (exec) {
    // DI-ClippedSoftmax simulation: x − rowmax clipped at −c, 16-bit input, probabilities on a 2^−15 grid.
    torch::Tensor shifted = scores - std::get<0>(scores.max(-1, true)).detach();
    if (st.clip_c) shifted = shifted.clamp_min(-*st.clip_c).masked_fill(causal, -1e30);
    const torch::Tensor finite = shifted.masked_fill(causal, 0);
    shifted = torch::where(causal, shifted, fake_quant_per_token(finite, 16));
    probs = torch::softmax(shifted, -1);
    probs = round_ste(probs * 32768.0) / 32768.0;
  } else {
    probs = torch::softmax(scores, -1);
  }
  torch::Tensor attn = torch::matmul(probs, vh).transpose(1, 2).reshape({B, T, H * d});
  if (stats) stats->update("o_in", attn);
  attn = site_q(kSiteAttnOut, attn);
  const torch::Tensor h = residual_q(x_in + torch::matmul(attn, w.wo.t()));

  torch::Tensor hn = rms_norm(h, w.ffn_norm, shape.norm_eps);
  if (stats) stats->update("ffn_in", hn);
  hn = site_q(kSiteFfnIn, hn);
  const torch::Tensor g = fake_quant_per_token(torch::matmul(hn, w.w_gate.t()), sw);
  const torch::Tensor u = fake_quant_per_token(torch::matmul(hn, w.w_up.t()), sw);
  const torch::Tensor gate_arg = alpha.defined() ? g / alpha : g;
  torch::Tensor act = g * torch::sigmoid(gate_arg) * u;
  if (stats) stats->update("down_in", act);
  if (st.hadamard_down) act = apply_online_hadamard(act, *st.hadamard_down, exec);
  act = site_q(kSiteDownIn, act);
  return h + torch::matmul(act, w.w_down.t());
}

}  // namespace illm::calib
