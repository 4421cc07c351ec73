#include "calibration/fsbr.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <limits>

#include "calibration/activation_clip.h"
#include "calibration/gptq.h"
#include "calibration/rotation.h"
#include "calibration/threads.h"
#include "calibration/trip.h"
#include "kernels/error.h"

namespace illm::calib {
namespace {

constexpr int64_t kEvalChunk = 8;  // samples per no-grad forward
constexpr int64_t kClipSearchSamples = 32;  // calibration samples of the activation clip search

int group_size_of(const Recipe& r) { return r.w_granularity == WeightGranularity::kPerGroup ? r.group_size : 0; }

// SmoothQuant rule s = max|X|^α / max|W|^(1−α), clamped ≥ 1e-5 (§2.4, Appendix A).
torch::Tensor sq_scale(const torch::Tensor& act_absmax, const torch::Tensor& weight_col_absmax, double alpha) {
  return (act_absmax.clamp_min(1e-5).pow(alpha) / weight_col_absmax.clamp_min(1e-5).pow(1.0 - alpha))
      .clamp_min(1e-5);
}

std::vector<torch::Tensor> clone_all(const std::vector<torch::Tensor>& v) {
  std::vector<torch::Tensor> out;
  for (const auto& t : v) out.push_back(t.detach().clone());
  return out;
}

void copy_into(std::vector<torch::Tensor>& dst, const std::vector<torch::Tensor>& src) {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < dst.size(); ++i) dst[i].copy_(src[i]);
}

}  // namespace

int intra_op_threads(const BlockShape& shape, int64_t seq_len, int requested) {
  const int64_t largest = seq_len * std::max({shape.hidden, shape.intermediate, shape.n_heads * seq_len});
  return largest >= (int64_t{1} << 20) ? requested : 1;
}

FakeQuantSettings training_settings(const Recipe& recipe) {
  FakeQuantSettings s;
  s.quantize_activations = true;
  s.a_bits = recipe.a_bits;
  s.swiglu_in_bits = recipe.swiglu_in_bits;
  s.executor_points = false;
  return s;
}

FakeQuantSettings evaluation_settings(const Recipe& recipe, std::optional<double> clip_c) {
  FakeQuantSettings s = training_settings(recipe);
  s.executor_points = recipe.fake_quant_points == FakeQuantPoints::kExecutor;
  s.clip_c = clip_c;
  return s;
}

ActStats collect_stats(const BlockWeights& fp, const torch::Tensor& fp_in, const RotaryCosSin& rope,
                       const BlockShape& shape) {
  torch::NoGradGuard no_grad;
  ActStats stats;
  FakeQuantSettings off;
  off.quantize_activations = false;
  for (int64_t i = 0; i < fp_in.size(0); i += kEvalChunk) {
    const int64_t n = std::min(kEvalChunk, fp_in.size(0) - i);
    fake_quant_block_forward(fp, {}, fp_in.narrow(0, i, n), rope, shape, off, &stats);
  }
  return stats;
}

SmoothParams smoothquant_init(const BlockWeights& fp, const ActStats& stats, const BlockShape& shape, double alpha,
                              bool tied_rope_pairs) {
  torch::NoGradGuard no_grad;
  SmoothParams s = SmoothParams::identity(shape, tied_rope_pairs);
  s.s1 = sq_scale(stats.attn_in, fp.wq.abs().amax(0), alpha);
  s.s2 = sq_scale(stats.ffn_in, fp.w_up.abs().amax(0), alpha);
  // Site 3 with GQA: both statistics from the first q-head of each group (§2.8, §9 #23).
  const int64_t group = shape.n_heads / shape.n_kv_heads, d = shape.head_dim;
  const torch::Tensor first_q_heads =
      torch::arange(shape.n_kv_heads, torch::kLong).mul(group).unsqueeze(1).mul(d).add(torch::arange(d, torch::kLong))
          .reshape({-1});
  s.s3 = sq_scale(stats.o_in.index_select(0, first_q_heads), fp.wo.abs().amax(0).index_select(0, first_q_heads),
                  alpha);
  s.s6 = sq_scale(stats.down_in, fp.w_down.abs().amax(0), alpha);
  return s;
}

double block_loss(const BlockWeights& weights, const torch::Tensor& alpha, const torch::Tensor& input,
                  const torch::Tensor& target, const RotaryCosSin& rope, const BlockShape& shape,
                  const FakeQuantSettings& settings) {
  torch::NoGradGuard no_grad;
  double total = 0;
  for (int64_t i = 0; i < input.size(0); i += kEvalChunk) {
    const int64_t n = std::min(kEvalChunk, input.size(0) - i);
    const torch::Tensor out = fake_quant_block_forward(weights, alpha, input.narrow(0, i, n), rope, shape, settings);
    // Per-sample MSE summed over the chunk, so the mean equals the mean of batch-1 losses.
    total += (out - target.narrow(0, i, n)).pow(2).mean({1, 2}).sum().item<double>();
  }
  return total / static_cast<double>(input.size(0));
}

BlockCalibration calibrate_block(const BlockWeights& fp, const BlockShape& shape, const RotaryCosSin& rope,
                                 const torch::Tensor& fp_in, const torch::Tensor& q_in, const torch::Tensor& fp_target,
                                 const Recipe& recipe, int layer, int n_layers, bool show_progress) {
  const auto start = std::chrono::steady_clock::now();
  const bool stderr_is_tty = ::isatty(STDERR_FILENO) != 0;
  const int group = group_size_of(recipe);
  FakeQuantSettings train = training_settings(recipe);
  attach_online_hadamards(train, recipe.hadamard_down, recipe.hadamard_qk, shape);
  for (SiteQuant& site : train.sites) site.clip_ratio = recipe.act_clip;

  SmoothParams smooth = SmoothParams::identity(shape, recipe.tie_rope_pairs);
  const bool use_sq_init = recipe.method == QuantMethod::kSmoothQuant ||
                           (recipe.method == QuantMethod::kFsbr && recipe.smooth_init == SmoothInit::kSmoothQuant);
  if (use_sq_init) smooth = smoothquant_init(fp, collect_stats(fp, fp_in, rope, shape), shape, recipe.sq_alpha,
                                             recipe.tie_rope_pairs);
  std::optional<LwcParams> lwc;
  if (recipe.method == QuantMethod::kFsbr) lwc = LwcParams::init(fp, group, recipe.lwc_init);

  auto fold = [&]() {
    FoldedBlock folded = fold_smoothing(fp, smooth, shape);
    if (train.hadamard_down) folded.weights.w_down = fold_online_down(folded.weights.w_down, *train.hadamard_down);
    return folded;
  };
  auto quantized_weights = [&](FoldedBlock& folded_out) {
    folded_out = fold();
    return quantize_block_weights(folded_out.weights, recipe.w_bits, group, lwc ? &*lwc : nullptr);
  };

  BlockCalibration result;
  {
    torch::NoGradGuard no_grad;
    FoldedBlock folded;
    const BlockWeights qw = quantized_weights(folded);
    result.loss_before = block_loss(qw, folded.alpha, q_in, fp_target, rope, shape, train);
  }

  if (recipe.method == QuantMethod::kFsbr && recipe.epochs > 0) {
    std::vector<torch::Tensor> smooth_params = smooth.all();
    std::vector<torch::Tensor> lwc_params = lwc->all();
    for (auto& t : smooth_params) t.set_requires_grad(true);
    for (auto& t : lwc_params) t.set_requires_grad(true);
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(smooth_params, std::make_unique<torch::optim::AdamWOptions>(
                                           torch::optim::AdamWOptions(recipe.lr_smooth).weight_decay(0)));
    groups.emplace_back(lwc_params, std::make_unique<torch::optim::AdamWOptions>(
                                        torch::optim::AdamWOptions(recipe.lr_lwc).weight_decay(0)));
    torch::optim::AdamW optimizer(groups, torch::optim::AdamWOptions(recipe.lr_lwc).weight_decay(0));

    std::vector<torch::Tensor> all_params = smooth_params;
    all_params.insert(all_params.end(), lwc_params.begin(), lwc_params.end());
    std::vector<torch::Tensor> best = clone_all(all_params);
    // The initial parameters compete too: training that never improves on them keeps them (best_epoch −1).
    double best_loss = result.loss_before;
    const int64_t n = q_in.size(0);
    const int outer_threads = thread_count();
    set_thread_count(intra_op_threads(shape, q_in.size(1), outer_threads));
    for (int epoch = 0; epoch < recipe.epochs; ++epoch) {
      double sum = 0;
      for (int64_t i = 0; i < n; ++i) {
        FoldedBlock folded;
        const BlockWeights qw = quantized_weights(folded);
        const torch::Tensor out =
            fake_quant_block_forward(qw, folded.alpha, q_in.narrow(0, i, 1), rope, shape, train);
        const torch::Tensor loss = (out - fp_target.narrow(0, i, 1)).pow(2).mean();
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
        sum += loss.item<double>();
      }
      const double mean = sum / static_cast<double>(n);
      result.epoch_losses.push_back(mean);
      if (std::isfinite(mean) && mean < best_loss) {
        best_loss = mean;
        result.best_epoch = epoch;
        best = clone_all(all_params);
      }
      if (show_progress) {
        // Redrawn in place on a terminal; one line per epoch in logs.
        std::fprintf(stderr, "%s[block %d/%d] epoch %d/%d loss %.6g (best %.6g @%d)%s", stderr_is_tty ? "\r" : "",
                     layer + 1, n_layers, epoch + 1, recipe.epochs, mean, best_loss, result.best_epoch + 1,
                     stderr_is_tty ? "   " : "\n");
        std::fflush(stderr);
      }
      if (!std::isfinite(mean)) break;
    }
    set_thread_count(outer_threads);
    if (show_progress && stderr_is_tty) std::fprintf(stderr, "\n");
    copy_into(all_params, best);
    for (auto& t : all_params) t.set_requires_grad(false);
  }

  torch::NoGradGuard no_grad;
  result.folded = fold();
  result.folded.weights.attn_norm = result.folded.weights.attn_norm.detach();
  const torch::Tensor& alpha = result.folded.alpha;
  if (recipe.trip_shifts > 0) {
    train.trip_max_shift = recipe.trip_shifts;
    train.sites = calibrate_trip(result.folded.weights, alpha, q_in, rope, shape, train, recipe.a_bits,
                                 recipe.trip_shifts);
  }
  if (recipe.gptq) {
    result.quantized = gptq_quantize_block(result.folded.weights, alpha, q_in, rope, shape, train, recipe.w_bits, group,
                                           lwc ? &*lwc : nullptr, {recipe.gptq_damp, recipe.gptq_act_order},
                                           &result.weight_quant);
  } else {
    result.quantized = quantize_block_weights(result.folded.weights, recipe.w_bits, group, lwc ? &*lwc : nullptr,
                                              &result.weight_quant);
  }
  if (recipe.act_clip_search) {
    // On at most kClipSearchSamples samples: 1 + 5 losses per site.
    const int64_t n = std::min<int64_t>(q_in.size(0), kClipSearchSamples);
    const torch::Tensor in = q_in.narrow(0, 0, n), target = fp_target.narrow(0, 0, n);
    const SiteLoss loss = [&](const SiteQuants& sites) {
      FakeQuantSettings s = train;
      s.sites = sites;
      return block_loss(result.quantized, alpha, in, target, rope, shape, s);
    };
    train.sites = search_clip_ratios(loss, train.sites, clip_ratio_grid());
  }
  result.settings = train;
  result.loss_after = block_loss(result.quantized, alpha, q_in, fp_target, rope, shape, train);

  // Softmax clip: fixed by the recipe, or searched per layer on the executor-point simulation.
  result.clip_c = recipe.clip_c;
  if (recipe.clip_search) {
    FakeQuantSettings exec = train;
    exec.executor_points = true;
    exec.clip_c.reset();
    double best = block_loss(result.quantized, result.folded.alpha, q_in, fp_target, rope, shape, exec);
    result.clip_c.reset();
    for (double c : {8.0, 10.0, 12.0, 15.0, 20.0}) {
      exec.clip_c = c;
      const double l = block_loss(result.quantized, result.folded.alpha, q_in, fp_target, rope, shape, exec);
      if (l < best) {
        best = l;
        result.clip_c = c;
      }
    }
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (show_progress)
    std::fprintf(stderr, "[block %d/%d] %s loss %.6g -> %.6g (%.1f s)\n", layer + 1, n_layers,
                 to_string(recipe.method), result.loss_before, result.loss_after, result.seconds);
  return result;
}

}  // namespace illm::calib
