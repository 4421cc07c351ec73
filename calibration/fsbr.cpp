#include "calibration/fsbr.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>

#include "calibration/activation_clip.h"
#include "calibration/gptq.h"
#include "calibration/rotation.h"
#include "calibration/threads.h"
#include "calibration/trip.h"
#include "kernels/error.h"

namespace illm::calib {
namespace {

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

std::string format_duration(double seconds) {
  const auto s = static_cast<long long>(std::max(0.0, seconds) + 0.5);
  char text[32];
  if (s >= 3600) std::snprintf(text, sizeof text, "%lldh%02lldm", s / 3600, (s / 60) % 60);
  else if (s >= 60) std::snprintf(text, sizeof text, "%lldm%02llds", s / 60, s % 60);
  else std::snprintf(text, sizeof text, "%llds", s);
  return text;
}

// Progress inside an FSBR epoch: one line every 10 s in logs, redrawn at most every 0.5 s on a terminal.
class StepProgress {
 public:
  StepProgress(bool enabled, bool tty, int layer, int n_layers, int epochs, int64_t samples)
      : enabled_(enabled), tty_(tty), layer_(layer), n_layers_(n_layers), epochs_(epochs), samples_(samples),
        start_(Clock::now()), last_(start_) {}
  void step(int epoch, int64_t sample, double mean_loss) {
    ++steps_;
    if (!enabled_) return;
    const auto now = Clock::now();
    if (std::chrono::duration<double>(now - last_).count() < (tty_ ? 0.5 : 10.0)) return;
    last_ = now;
    const double per_step = std::chrono::duration<double>(now - start_).count() / static_cast<double>(steps_);
    const int64_t left = static_cast<int64_t>(epochs_) * samples_ - steps_;
    std::fprintf(stderr, "%s[block %d/%d] epoch %d/%d sample %lld/%lld loss %.6g  %.2f s/step  ETA %s%s",
                 tty_ ? "\r" : "", layer_ + 1, n_layers_, epoch + 1, epochs_, static_cast<long long>(sample + 1),
                 static_cast<long long>(samples_), mean_loss, per_step,
                 format_duration(per_step * static_cast<double>(left)).c_str(), tty_ ? "\033[K" : "\n");
    std::fflush(stderr);
  }
  double seconds_per_step() const {
    return steps_ ? std::chrono::duration<double>(Clock::now() - start_).count() / static_cast<double>(steps_) : 0;
  }

 private:
  using Clock = std::chrono::steady_clock;
  bool enabled_, tty_;
  int layer_, n_layers_, epochs_;
  int64_t samples_, steps_ = 0;
  Clock::time_point start_, last_;
};

}  // namespace

int intra_op_threads(const BlockShape& shape, int64_t seq_len, int requested) {
  const int64_t largest = seq_len * std::max({shape.hidden, shape.intermediate, shape.n_heads * seq_len});
  return largest >= (int64_t{1} << 20) ? requested : 1;
}

FakeQuantSettings training_settings(const Recipe& recipe) {
  FakeQuantSettings s;
  s.quantize_activations = true;
  s.a_bits = recipe.a_bits;
  s.qkv_bits = qkv_bits_of(recipe);
  s.swiglu_in_bits = recipe.swiglu_in_bits;
  s.executor_points = false;
  s.act_group_size = recipe.act_group_size;
  return s;
}

FakeQuantSettings evaluation_settings(const Recipe& recipe, std::optional<double> clip_c) {
  FakeQuantSettings s = training_settings(recipe);
  s.executor_points = recipe.fake_quant_points == FakeQuantPoints::kExecutor;
  s.clip_c = clip_c;
  return s;
}

ActStats collect_stats(const BlockWeights& fp, const Activations& fp_in, const RotaryCosSin& rope,
                       const BlockShape& shape) {
  torch::NoGradGuard no_grad;
  ActStats stats;
  FakeQuantSettings off;
  off.quantize_activations = false;
  for (int64_t i = 0; i < fp_in.samples(); i += kEvalChunk) {
    const int64_t n = std::min(kEvalChunk, fp_in.samples() - i);
    fake_quant_block_forward(fp, {}, fp_in.read(i, n).to(fp.wq.device()), rope, shape, off, &stats);
  }
  return stats;
}

SmoothParams smoothquant_init(const BlockWeights& fp, const ActStats& stats, const BlockShape& shape, double alpha,
                              bool tied_rope_pairs) {
  torch::NoGradGuard no_grad;
  SmoothParams s = SmoothParams::identity(shape, tied_rope_pairs, fp.wq.device());
  s.s1 = sq_scale(stats.attn_in, fp.wq.abs().amax(0), alpha);
  s.s2 = sq_scale(stats.ffn_in, fp.w_up.abs().amax(0), alpha);
  // Site 3 with GQA: both statistics from the first q-head of each group (§2.8, §9 #23).
  const int64_t group = shape.n_heads / shape.n_kv_heads, d = shape.head_dim;
  const torch::Tensor first_q_heads =
      torch::arange(shape.n_kv_heads, torch::kLong).mul(group).unsqueeze(1).mul(d).add(torch::arange(d, torch::kLong))
          .reshape({-1})
          .to(fp.wo.device());
  s.s3 = sq_scale(stats.o_in.index_select(0, first_q_heads), fp.wo.abs().amax(0).index_select(0, first_q_heads),
                  alpha);
  s.s6 = sq_scale(stats.down_in, fp.w_down.abs().amax(0), alpha);
  return s;
}

double block_loss(const BlockWeights& weights, const torch::Tensor& alpha, const Activations& input,
                  const Activations& target, const RotaryCosSin& rope, const BlockShape& shape,
                  const FakeQuantSettings& settings, Activations* outputs, int64_t max_samples) {
  torch::NoGradGuard no_grad;
  const torch::Device device = weights.wq.device();
  const int64_t samples = max_samples < 0 ? input.samples() : std::min(max_samples, input.samples());
  double total = 0;
  for (int64_t i = 0; i < samples; i += kEvalChunk) {
    const int64_t n = std::min(kEvalChunk, samples - i);
    const torch::Tensor out =
        fake_quant_block_forward(weights, alpha, input.read(i, n).to(device), rope, shape, settings);
    // Per-sample MSE summed over the chunk, so the mean equals the mean of batch-1 losses.
    total += (out - target.read(i, n).to(device)).pow(2).mean({1, 2}).sum().item<double>();
    if (outputs) outputs->write(i, out);
  }
  return total / static_cast<double>(samples);
}

BlockCalibration calibrate_block(const BlockWeights& fp, const BlockShape& shape, const RotaryCosSin& rope,
                                 const Activations& fp_in, const Activations& q_in, const Activations& fp_target,
                                 const Recipe& recipe, int layer, int n_layers, bool show_progress,
                                 Activations* q_out) {
  const auto start = std::chrono::steady_clock::now();
  const bool stderr_is_tty = ::isatty(STDERR_FILENO) != 0;
  const int group = group_size_of(recipe);
  const torch::Device device = fp.wq.device();
  FakeQuantSettings train = training_settings(recipe);
  attach_online_hadamards(train, recipe.hadamard_down, recipe.hadamard_qk, shape);
  for (SiteQuant& site : train.sites) site.clip_ratio = recipe.act_clip;

  SmoothParams smooth = SmoothParams::identity(shape, recipe.tie_rope_pairs, device);
  const bool use_sq_init = recipe.method == QuantMethod::kSmoothQuant ||
                           (recipe.method == QuantMethod::kFsbr && recipe.smooth_init == SmoothInit::kSmoothQuant);
  if (use_sq_init) smooth = smoothquant_init(fp, collect_stats(fp, fp_in, rope, shape), shape, recipe.sq_alpha,
                                             recipe.tie_rope_pairs);
  std::optional<LwcParams> lwc;
  if (recipe.method == QuantMethod::kFsbr) lwc = LwcParams::init(fp, group, recipe.lwc_init);
  // The folded FP linears, with the online down_proj Hadamard folded into w_down (W·Ĥᵀ) when the recipe has one.
  auto folded_weights = [&]() {
    FoldedBlock folded = fold_smoothing(fp, smooth, shape);
    if (train.hadamard_down) folded.weights.w_down = fold_online_down(folded.weights.w_down, *train.hadamard_down);
    return folded;
  };
  // Folding and fake quantization fused (the default path). The online down_proj Hadamard changes w_down between
  // the two, so that recipe folds first (torch ops) and then fake-quantizes the folded weights.
  auto quantized_weights = [&](std::array<WeightQuant, kNumLinears>* integer_out = nullptr) {
    if (!train.hadamard_down)
      return fold_and_fake_quantize(fp, smooth, shape, recipe.w_bits, group, lwc ? &*lwc : nullptr, integer_out);
    FoldedBlock folded = folded_weights();
    folded.weights = quantize_block_weights(folded.weights, recipe.w_bits, group, lwc ? &*lwc : nullptr, integer_out);
    return folded;
  };
  const bool trains = recipe.method == QuantMethod::kFsbr && recipe.epochs > 0;

  BlockCalibration result;
  if (trains) {
    // The initial parameters' loss (they compete with the trained ones below).
    torch::NoGradGuard no_grad;
    const FoldedBlock qw = quantized_weights();
    result.loss_before = block_loss(qw.weights, qw.alpha, q_in, fp_target, rope, shape, train);
  }

  if (trains) {
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
    const int64_t n = q_in.samples();
    const int outer_threads = thread_count();
    set_thread_count(intra_op_threads(shape, q_in.seq_len(), outer_threads));
    StepProgress progress(show_progress, stderr_is_tty, layer, n_layers, recipe.epochs, n);
    for (int epoch = 0; epoch < recipe.epochs; ++epoch) {
      double sum = 0;
      for (int64_t i = 0; i < n; ++i) {
        const FoldedBlock qw = quantized_weights();
        const torch::Tensor out =
            fake_quant_block_forward(qw.weights, qw.alpha, q_in.read(i, 1).to(device), rope, shape, train);
        const torch::Tensor loss = (out - fp_target.read(i, 1).to(device)).pow(2).mean();
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
        sum += loss.item<double>();
        progress.step(epoch, i, sum / static_cast<double>(i + 1));
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
        std::fprintf(stderr, "%s[block %d/%d] epoch %d/%d loss %.6g (best %.6g @%d)  %.2f s/step%s",
                     stderr_is_tty ? "\r" : "", layer + 1, n_layers, epoch + 1, recipe.epochs, mean, best_loss,
                     result.best_epoch + 1, progress.seconds_per_step(), stderr_is_tty ? "\033[K" : "\n");
        std::fflush(stderr);
      }
      if (!std::isfinite(mean)) break;
    }
    set_thread_count(outer_threads);
    if (show_progress && stderr_is_tty) std::fprintf(stderr, "\n");
    copy_into(all_params, best);
    for (auto& t : all_params) t.set_requires_grad(false);
    result.seconds_per_step = progress.seconds_per_step();
  }

  torch::NoGradGuard no_grad;
  // TRIP statistics and GPTQ's Hessians need the folded FP weights: fold once, then quantize those. Otherwise the
  // fused path gives the final weights directly.
  if (recipe.trip_shifts > 0 || recipe.gptq) {
    const FoldedBlock folded = folded_weights();
    if (recipe.trip_shifts > 0) {
      train.trip_max_shift = recipe.trip_shifts;
      train.sites = calibrate_trip(folded.weights, folded.alpha, q_in, rope, shape, train, recipe.a_bits,
                                   recipe.trip_shifts);
    }
    if (recipe.gptq) {
      result.quantized = gptq_quantize_block(folded.weights, folded.alpha, q_in, rope, shape, train, recipe.w_bits,
                                             group, lwc ? &*lwc : nullptr, {recipe.gptq_damp, recipe.gptq_act_order},
                                             &result.weight_quant);
    } else {
      result.quantized = quantize_block_weights(folded.weights, recipe.w_bits, group, lwc ? &*lwc : nullptr,
                                                &result.weight_quant);
    }
    result.folded.alpha = folded.alpha;
  } else {
    const FoldedBlock final_weights = quantized_weights(&result.weight_quant);
    result.quantized = final_weights.weights;
    result.folded.alpha = final_weights.alpha;
  }
  result.folded.weights.attn_norm = result.quantized.attn_norm.detach();
  result.folded.weights.ffn_norm = result.quantized.ffn_norm.detach();
  const torch::Tensor& alpha = result.folded.alpha;
  if (recipe.act_clip_search) {
    // On the first kClipSearchSamples samples (read chunk by chunk from the stores: one chunk resident), 1 + 5 losses
    // per site.
    const int64_t n = std::min<int64_t>(q_in.samples(), kClipSearchSamples);
    const SiteLoss loss = [&](const SiteQuants& sites) {
      FakeQuantSettings s = train;
      s.sites = sites;
      return block_loss(result.quantized, alpha, q_in, fp_target, rope, shape, s, nullptr, n);
    };
    train.sites = search_clip_ratios(loss, train.sites, clip_ratio_grid());
  }
  result.settings = train;
  // One pass: the kept parameters' loss and (when asked) the block's outputs for the next block.
  result.loss_after = block_loss(result.quantized, alpha, q_in, fp_target, rope, shape, train, q_out);
  // Without training the initial parameters are the kept ones.
  if (!trains) result.loss_before = result.loss_after;

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
