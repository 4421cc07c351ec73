// FSBR training step time at LLaMA block shapes (docs/scale.md): the fused fold + fake-quant kernel
// (calibration/fused_weight_quant.h) against the unfused torch ops it replaced, side by side in one process on the
// same random block. One step = fold the smoothing + fake-quantize the weights with LWC, the fake-quant block
// forward on one sequence, MSE, backward, AdamW: exactly what calibrate_block does per sample.
//   fsbr_step [--hidden 4096 --intermediate 11008 --heads 32 --kv-heads 32 --seq-len 512 --steps 3 --threads 2]
// Prints a markdown table (seconds per step and its parts, per path) and the ratio.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include "calibration/fake_quant_block.h"
#include "calibration/fsbr.h"
#include "calibration/threads.h"

namespace {

using namespace illm::calib;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

long long peak_rss_mib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) / 1024;
  return 0;
}

struct Timing {
  double step = 0, weights = 0, forward = 0, backward = 0, optimizer = 0;
};

Timing measure(bool fused, const BlockWeights& fp, const BlockShape& shape, const RotaryCosSin& rot,
               const torch::Tensor& x, const torch::Tensor& target, int steps) {
  SmoothParams smooth = SmoothParams::identity(shape, true);
  LwcParams lwc = LwcParams::init(fp, 0, 4.0);
  std::vector<torch::Tensor> params = smooth.all();
  for (const auto& t : lwc.all()) params.push_back(t);
  for (auto& t : params) t.set_requires_grad(true);
  torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(1e-2).weight_decay(0));
  FakeQuantSettings train;
  train.a_bits = 4;
  Timing total;
  for (int s = 0; s <= steps; ++s) {  // step 0 warms up (allocator, thread pools)
    Timing t;
    const auto start = Clock::now();
    auto mark = Clock::now();
    const FoldedBlock qw = fused ? fold_and_fake_quantize(fp, smooth, shape, 4, 0, &lwc)
                                 : fold_and_fake_quantize_unfused(fp, smooth, shape, 4, 0, &lwc);
    t.weights = since(mark);
    mark = Clock::now();
    const torch::Tensor out = fake_quant_block_forward(qw.weights, qw.alpha, x, rot, shape, train);
    const torch::Tensor loss = (out - target).pow(2).mean();
    loss.item<double>();
    t.forward = since(mark);
    mark = Clock::now();
    optimizer.zero_grad();
    loss.backward();
    t.backward = since(mark);
    mark = Clock::now();
    optimizer.step();
    t.optimizer = since(mark);
    t.step = since(start);
    if (s == 0) continue;
    total.step += t.step / steps;
    total.weights += t.weights / steps;
    total.forward += t.forward / steps;
    total.backward += t.backward / steps;
    total.optimizer += t.optimizer / steps;
  }
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"FSBR training step time, fused vs unfused weight fake-quantization"};
  int64_t hidden = 4096, intermediate = 11008, heads = 32, kv_heads = 32, seq_len = 512;
  int steps = 3, threads = 2;
  std::string path = "both";
  app.add_option("--hidden", hidden)->capture_default_str();
  app.add_option("--intermediate", intermediate)->capture_default_str();
  app.add_option("--heads", heads)->capture_default_str();
  app.add_option("--kv-heads", kv_heads)->capture_default_str();
  app.add_option("--seq-len", seq_len)->capture_default_str();
  app.add_option("--steps", steps, "Timed steps per path (after one warm-up step)")->capture_default_str();
  app.add_option("--threads", threads)->capture_default_str();
  app.add_option("--path", path, "both, fused or unfused (one path per process gives its own peak RSS)")
      ->check(CLI::IsMember({"both", "fused", "unfused"}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  retain_freed_memory();
  set_thread_count(threads);
  torch::manual_seed(1);
  const BlockShape shape{hidden, intermediate, heads, kv_heads, hidden / heads, 1e-5};
  const int64_t d = hidden / heads;
  BlockWeights fp;
  fp.attn_norm = torch::rand({hidden}) + 0.3;
  fp.ffn_norm = torch::rand({hidden}) + 0.3;
  fp.wq = torch::randn({heads * d, hidden}) * 0.02;
  fp.wk = torch::randn({kv_heads * d, hidden}) * 0.02;
  fp.wv = torch::randn({kv_heads * d, hidden}) * 0.02;
  fp.wo = torch::randn({hidden, heads * d}) * 0.02;
  fp.w_gate = torch::randn({intermediate, hidden}) * 0.02;
  fp.w_up = torch::randn({intermediate, hidden}) * 0.02;
  fp.w_down = torch::randn({hidden, intermediate}) * 0.02;
  const torch::Tensor x = torch::randn({1, seq_len, hidden});
  const torch::Tensor target = x + 0.01 * torch::randn({1, seq_len, hidden});
  const torch::Tensor angles = torch::outer(torch::arange(seq_len, torch::kFloat64),
                                            torch::pow(10000.0, -torch::arange(0, d, 2, torch::kFloat64) / d));
  const torch::Tensor emb = torch::cat({angles, angles}, -1);
  const RotaryCosSin rot{emb.cos().to(torch::kFloat32), emb.sin().to(torch::kFloat32)};
  const long long weights_mib = peak_rss_mib();

  std::printf("FSBR step, block hidden %lld, intermediate %lld, heads %lld/%lld, %lld tokens, W4A4 + LWC, %d threads, "
              "%d timed steps (after 1 warm-up)\n\n",
              static_cast<long long>(hidden), static_cast<long long>(intermediate), static_cast<long long>(heads),
              static_cast<long long>(kv_heads), static_cast<long long>(seq_len), threads, steps);
  std::printf("| path | s/step | fold+fake-quant weights | block forward + loss | backward | AdamW | peak RSS (MiB) |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  double fused_step = 0, unfused_step = 0;
  for (const bool fused : {true, false}) {
    if ((fused && path == "unfused") || (!fused && path == "fused")) continue;
    const Timing t = measure(fused, fp, shape, rot, x, target, steps);
    (fused ? fused_step : unfused_step) = t.step;
    std::printf("| %s | %.2f | %.2f | %.2f | %.2f | %.3f | %lld |\n", fused ? "fused (this build)" : "unfused torch ops",
                t.step, t.weights, t.forward, t.backward, t.optimizer, peak_rss_mib());
  }
  std::printf("\nblock FP weights alone: %lld MiB resident. ", weights_mib);
  if (fused_step > 0 && unfused_step > 0) std::printf("unfused / fused step time: %.2fx", unfused_step / fused_step);
  std::printf("\n");
  return 0;
}
