// Whole-executor speed (issue #9), printed as markdown tables:
//   1. tinybible `illm eval` with the integer executor against the fp32 LibTorch eval, both --threads 2, same
//      windows, in one run (the `illm` binary is run twice; its --json output gives eval_seconds);
//   2. one LLaMA-7B-shaped decoder layer (C 4096, C_f 11008, 32 heads of 128; random codes and scales built here,
//      W4A4 and W8A8), 256-token prefill, 1 and 2 threads;
//   3. decode tokens/s of both fixtures (the shared test models), one token per forward call;
//   4. per-operator time of the 7B layer prefill, the tinybible 256-token prefill and the tinybible decode
//      (kernels/operator_profiler.h: the executor reports operator boundaries, this program measures);
//   5. the online Walsh–Hadamard transforms (hadamard_down + hadamard_qk) on and off side by side: tinybible W4A4 and
//      the 7B-shaped layer, prefill and decode, 1 thread, and the per-operator time of tinybible with them on
//      (--hadamard-only: these tables alone);
//   6. per-group activations (act_group_size 32) on and off side by side: tinybible W4A4 / W8A8, tinybible W4A4 with
//      32-wide weight groups (act_group_size 16), stories260K / tinybible W4A4 with act_group_size 8 (stories260K: a
//      short last group) and the 7B-shaped layer (--act-groups-only: this table alone).
// Usage: executor_bench [--illm PATH] [--models DIR] [--kernels PATH] [--windows N] [--skip-eval] [--reps N]
//                       [--hadamard-only] [--act-groups-only]
#include <omp.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/illm_file.h"
#include "formats/rope_tables.h"
#include "kernels/executor.h"
#include "kernels/weight_codes.h"

namespace {

using Clock = std::chrono::steady_clock;
using illm::Operator;

// The calling thread's CPU time: on a shared machine it excludes the time spent waiting for a core. Exact for
// single-thread runs (all work happens in the calling thread); multi-thread runs use wall time.
double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}
double wall_seconds() { return std::chrono::duration<double>(Clock::now().time_since_epoch()).count(); }
double now(bool cpu_time) { return cpu_time ? thread_cpu_seconds() : wall_seconds(); }

// Thread CPU time per (operator, detail) of a single-thread run.
class Profile : public illm::OperatorProfiler {
 public:
  void begin(Operator, const char*) override { start_ = thread_cpu_seconds(); }
  void end(Operator op, const char* detail) override {
    const std::string name = std::string(illm::operator_name(op)) + (detail ? std::string(" ") + detail : "");
    totals_[name] += thread_cpu_seconds() - start_;
  }
  void print(const char* title) const {
    double total = 0;
    for (const auto& [name, s] : totals_) total += s;
    std::vector<std::pair<double, std::string>> rows;
    for (const auto& [name, s] : totals_) rows.emplace_back(s, name);
    std::sort(rows.rbegin(), rows.rend());
    std::printf("\n%s (total %.1f ms)\n\n| operator | ms | share |\n| --- | --- | --- |\n", title, 1e3 * total);
    for (const auto& [s, name] : rows) std::printf("| %s | %.2f | %.1f %% |\n", name.c_str(), 1e3 * s, 100 * s / total);
  }

 private:
  double start_ = 0;
  std::map<std::string, double> totals_;
};

// s ≈ m / 2^k with a 16-bit mantissa.
illm::Dyadic to_dyadic(double s) {
  const int k = 15 - static_cast<int>(std::floor(std::log2(s)));
  const int64_t m = std::llround(std::ldexp(s, k));
  return m >= (int64_t{1} << 16) ? illm::Dyadic{m / 2, k - 1} : illm::Dyadic{m, k};
}

// A random model of `layers` LLaMA-7B-shaped layers: uniform codes, random zero points, per-row weight scales
// ~ 1/√fan-in, γ ∈ [0.5, 1.5], α ∈ [0.5, 2]. The integer pipeline requantizes at every step, so any scales run the
// same work; only the shapes matter for speed.
illm::QuantizedModel random_7b_model(int w_bits, int a_bits, int layers, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const int hidden = 4096, intermediate = 11008, heads = 32, head_dim = 128, max_positions = 512;
  illm::QuantizedModel m;
  m.shape = illm::ModelShape{hidden, intermediate, layers, heads, heads, head_dim, vocab, max_positions, 1, 2};
  m.settings.w_bits = w_bits;
  m.settings.a_bits = a_bits;
  m.norm_eps = to_dyadic(1e-5);
  for (int i = 0; i < vocab * hidden; ++i) m.embed_codes.push_back(static_cast<int16_t>(rng() % 65535) - 32767);
  for (int v = 0; v < vocab; ++v) m.embed_scales.push_back(to_dyadic(1.0 / 32767));
  const auto linear = [&](int out, int in, int bits) {
    const int q = (1 << bits) - 1;
    std::vector<uint8_t> codes(static_cast<size_t>(out) * in);
    for (auto& c : codes) c = static_cast<uint8_t>(rng() % (q + 1));
    std::vector<int32_t> zero_points(out);
    std::vector<illm::Dyadic> scales(out);
    for (int r = 0; r < out; ++r) {
      zero_points[r] = static_cast<int32_t>(rng() % (q + 1));
      scales[r] = to_dyadic((0.5 + unit(rng)) * 2.0 / q / std::sqrt(static_cast<double>(in)));
    }
    return illm::make_quantized_linear(out, in, bits, codes, std::move(zero_points), std::move(scales));
  };
  const auto channels = [&](int n, double lo, double hi, int exponent) {
    illm::ChannelVector v;
    v.exponent = exponent;
    for (int c = 0; c < n; ++c) v.mantissa.push_back(std::llround(std::ldexp(lo + (hi - lo) * unit(rng), exponent)));
    return v;
  };
  for (int l = 0; l < layers; ++l) {
    illm::QuantizedLayer L;
    L.attn_norm = channels(hidden, 0.5, 1.5, 14);
    L.ffn_norm = channels(hidden, 0.5, 1.5, 14);
    L.q_proj = linear(hidden, hidden, w_bits);
    L.k_proj = linear(hidden, hidden, w_bits);
    L.v_proj = linear(hidden, hidden, w_bits);
    L.o_proj = linear(hidden, hidden, w_bits);
    L.gate_proj = linear(intermediate, hidden, w_bits);
    L.up_proj = linear(intermediate, hidden, w_bits);
    L.down_proj = linear(hidden, intermediate, w_bits);
    L.swiglu_inv_alpha = channels(intermediate, 0.5, 2.0, 20);
    L.softmax_clip = illm::Dyadic{15 << 11, 11};
    m.layers.push_back(std::move(L));
  }
  m.final_norm = channels(hidden, 0.5, 1.5, 14);
  m.lm_head = linear(vocab, hidden, m.settings.head_bits);
  const illm::RopeTables rope =
      illm::build_rope_tables(illm::rope_default_inv_freq(head_dim, 10000.0), max_positions, 14);
  m.rope_cos = rope.cos;
  m.rope_sin = rope.sin;
  return m;
}

std::vector<int32_t> random_ids(int vocab, int count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> ids(count);
  for (auto& id : ids) id = static_cast<int32_t>(rng() % vocab);
  ids[0] = 1;
  return ids;
}

// Runs `command`, returns its stdout.
std::string run(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return out;
  std::array<char, 4096> buffer{};
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) out.append(buffer.data(), n);
  pclose(pipe);
  return out;
}

}  // namespace

// One thread: the prefill of `ids` into `prefill`, then (from position 0 again) one decode step per id into `decode`.
void profile_prefill_and_decode(illm::Executor& executor, const std::vector<int32_t>& ids, Profile& prefill,
                                Profile& decode) {
  omp_set_num_threads(1);
  executor.reset();
  executor.set_profiler(&prefill);
  executor.forward(ids);
  executor.reset();
  executor.set_profiler(&decode);
  for (size_t t = 0; t < ids.size(); ++t) executor.forward(std::span<const int32_t>(&ids[t], 1));
  executor.set_profiler(nullptr);
}

// Prefill (256 tokens) and decode (255 single steps) tokens/s of `model` with a feature off and on (`set_feature`),
// 1 thread, thread CPU time, best of `reps`, off and on interleaved.
using FeatureSwitch = void (*)(illm::QuantizedModel& model, bool on);
void set_hadamards(illm::QuantizedModel& model, bool on) { model.hadamard_down = model.hadamard_qk = on; }

void side_by_side_speed_row(const char* name, illm::QuantizedModel model, const illm::KernelSet& k, int reps,
                            bool decode_too, FeatureSwitch set_feature) {
  omp_set_num_threads(1);
  const std::vector<int32_t> ids = random_ids(model.shape.vocab, 256, 5);
  double prefill[2] = {1e30, 1e30}, decode[2] = {1e30, 1e30};
  for (int r = 0; r < reps; ++r)
    for (const int on : {0, 1}) {
      set_feature(model, on == 1);
      illm::Executor executor(model, k);
      double start = thread_cpu_seconds();
      executor.forward(ids);
      prefill[on] = std::min(prefill[on], thread_cpu_seconds() - start);
      if (!decode_too) continue;
      executor.reset();
      executor.forward(std::span<const int32_t>(ids.data(), 1));
      start = thread_cpu_seconds();
      for (int t = 1; t < 256; ++t) executor.forward(std::span<const int32_t>(&ids[t], 1));
      decode[on] = std::min(decode[on], thread_cpu_seconds() - start);
    }
  if (decode_too)
    std::printf("| %s | %.0f | %.0f | %.3f | %.0f | %.0f | %.3f |\n", name, 256 / prefill[0], 256 / prefill[1],
                prefill[0] / prefill[1], 255 / decode[0], 255 / decode[1], decode[0] / decode[1]);
  else
    std::printf("| %s | %.0f | %.0f | %.3f | – | – | – |\n", name, 256 / prefill[0], 256 / prefill[1],
                prefill[0] / prefill[1]);
}

void hadamard_speed(const std::string& models, const illm::KernelSet& k, int reps) {
  std::printf("\n| online Hadamards (down + q/k), 1 thread, thread CPU | prefill 256 tok/s, off | on | on/off speed |"
              " decode tok/s, off | on | on/off speed |\n| --- | --- | --- | --- | --- | --- | --- |\n");
  for (const char* name : {"stories260K-w4a4", "tinybible-w4a4"})
    side_by_side_speed_row(name, illm::formats::read_illm(models + "/" + name + ".illm").model, k, reps, true,
                           set_hadamards);
  side_by_side_speed_row("7B-shaped layer W4A4 (C_f 11008, d 128)", random_7b_model(4, 4, 1, 256, 7), k, reps, false,
                         set_hadamards);

  // Where the transforms' time goes: tinybible W4A4 with both on, per operator (the sites' rows are the ones named
  // hadamard_down / hadamard_qk / hadamard down / hadamard qk).
  illm::QuantizedModel model = illm::formats::read_illm(models + "/tinybible-w4a4.illm").model;
  model.hadamard_down = model.hadamard_qk = true;
  const std::vector<int32_t> ids = random_ids(model.shape.vocab, 256, 5);
  illm::Executor executor(model, k);
  Profile prefill, decode;
  profile_prefill_and_decode(executor, ids, prefill, decode);
  prefill.print("Per-operator time, tinybible W4A4 with both online Hadamards, 256-token prefill, 1 thread");
  decode.print("Per-operator time, tinybible W4A4 with both online Hadamards, 256 decode steps, 1 thread");
}

// Per-group activations (act_group_size 32) on and off: the tinybible models and the 7B-shaped layer.
void act_group_speed(const std::string& models, const illm::KernelSet& k, int reps) {
  std::printf("\n| per-group activations (G = 32), 1 thread, thread CPU | prefill 256 tok/s, off | on | on/off speed |"
              " decode tok/s, off | on | on/off speed |\n| --- | --- | --- | --- | --- | --- | --- |\n");
  const FeatureSwitch set_groups = [](illm::QuantizedModel& model, bool on) { model.act_group_size = on ? 32 : 0; };
  for (const char* name : {"tinybible-w4a4", "tinybible-w8a8"})
    side_by_side_speed_row(name, illm::formats::read_illm(models + "/" + name + ".illm").model, k, reps, true,
                           set_groups);
  // With 32-wide weight groups, activation groups of 16 (docs/integer-semantics.md "## Per-group activations with
  // per-group weights"): off is the per-group-weight model with per-token activations.
  const FeatureSwitch set_groups16 = [](illm::QuantizedModel& model, bool on) { model.act_group_size = on ? 16 : 0; };
  side_by_side_speed_row("tinybible-w4a4-g32 (weight groups 32), act groups 16",
                         illm::formats::read_illm(models + "/tinybible-w4a4-g32.illm").model, k, reps, true,
                         set_groups16);
  const FeatureSwitch set_groups8 = [](illm::QuantizedModel& model, bool on) { model.act_group_size = on ? 8 : 0; };
  side_by_side_speed_row("tinybible-w4a4-g32 (weight groups 32), act groups 8",
                         illm::formats::read_illm(models + "/tinybible-w4a4-g32.illm").model, k, reps, true,
                         set_groups8);
  // Activation groups of 8 with a short last group (stories260K's intermediate 172 = 21·8 + 4; tinybible: none).
  for (const char* name : {"stories260K-w4a4", "tinybible-w4a4"})
    side_by_side_speed_row((std::string(name) + ", act groups 8").c_str(),
                           illm::formats::read_illm(models + "/" + name + ".illm").model, k, reps, true, set_groups8);
  side_by_side_speed_row("7B-shaped layer W4A4", random_7b_model(4, 4, 1, 256, 7), k, reps, false, set_groups);
  side_by_side_speed_row("7B-shaped layer W8A8", random_7b_model(8, 8, 1, 256, 7), k, reps, false, set_groups);

  // Where the time goes with groups on: the 7B-shaped layer W4A4, 256-token prefill, per operator.
  illm::QuantizedModel model = random_7b_model(4, 4, 1, 256, 7);
  model.act_group_size = 32;
  illm::Executor executor(model, k);
  Profile prefill;
  omp_set_num_threads(1);
  executor.set_profiler(&prefill);
  executor.forward(random_ids(model.shape.vocab, 256, 5));
  executor.set_profiler(nullptr);
  prefill.print("Per-operator time, 7B-shaped layer W4A4 with act_group_size 32, 256-token prefill, 1 thread");
}

int main(int argc, char** argv) {
  std::string illm_binary = std::string(ILLM_BINARY_DIR) + "/illm", models = ILLM_TEST_MODELS_DIR, kernels = "auto";
  int windows = 100, reps = 2;
  bool skip_eval = false, hadamard_only = false, act_groups_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--illm" && i + 1 < argc) illm_binary = argv[++i];
    else if (a == "--models" && i + 1 < argc) models = argv[++i];
    else if (a == "--kernels" && i + 1 < argc) kernels = argv[++i];
    else if (a == "--windows" && i + 1 < argc) windows = std::atoi(argv[++i]);
    else if (a == "--reps" && i + 1 < argc) reps = std::max(1, std::atoi(argv[++i]));
    else if (a == "--skip-eval") skip_eval = true;
    else if (a == "--hadamard-only") hadamard_only = true;
    else if (a == "--act-groups-only") act_groups_only = true;
    else {
      std::fprintf(stderr, "usage: executor_bench [--illm PATH] [--models DIR] [--kernels PATH] [--windows N] "
                           "[--skip-eval] [--reps N] [--hadamard-only] [--act-groups-only]\n");
      return 1;
    }
  }
  const illm::KernelSet& k = illm::kernels_by_name(kernels);
  std::printf("kernel path: %s; best of %d runs; 1-thread rows and profiles: thread CPU time; 2-thread rows and `illm "
              "eval`: wall time (the machine is shared: 2-thread wall times depend on its load)\n",
              k.name, reps);
  if (hadamard_only) {
    hadamard_speed(models, k, reps);
    return 0;
  }
  if (act_groups_only) {
    act_group_speed(models, k, reps);
    return 0;
  }

  // 1. tinybible eval, integer vs fp32.
  if (!skip_eval) {
    const std::string source = ILLM_SOURCE_DIR;
    const std::string common = " --data " + source + "/models/tinybible/test.txt --tokenizer " + source +
                               "/models/tinybible/tokenizer.model --threads 2 --json -q --max-samples " +
                               std::to_string(windows);
    const auto eval_seconds = [&](const std::string& model, const std::string& extra) {
      double best = 1e30;
      for (int r = 0; r < reps; ++r) {
        const std::string out = run(illm_binary + " eval --model " + model + common + extra);
        try {
          best = std::min(best, nlohmann::json::parse(out).at("eval_seconds").get<double>());
        } catch (const std::exception&) {
          std::fprintf(stderr, "illm eval failed: %s\n", out.c_str());
          return 0.0;
        }
      }
      return best;
    };
    const double fp32 = eval_seconds(source + "/models/tinybible", "");
    std::printf("\n| tinybible eval, %d windows of 256 tokens, --threads 2 | eval seconds | vs fp32 |\n"
                "| --- | --- | --- |\n| fp32 (LibTorch) | %.2f | 1.00 |\n",
                windows, fp32);
    for (const char* bits : {"w4a4", "w8a8"}) {
      const double integer =
          eval_seconds(models + "/tinybible-" + bits + ".illm", std::string(" --kernels ") + k.name);
      std::printf("| integer %s (%s kernels) | %.2f | %.2f× faster |\n", bits, k.name, integer, fp32 / integer);
    }
  }

  // 2. One 7B-shaped layer, 256-token prefill.
  std::printf("\n| 7B-shaped decoder layer, 256-token prefill | threads | clock | seconds | tokens/s |\n"
              "| --- | --- | --- | --- | --- |\n");
  Profile layer_profile;
  for (const auto& [w_bits, a_bits] : {std::pair{4, 4}, std::pair{8, 8}}) {
    const illm::QuantizedModel model = random_7b_model(w_bits, a_bits, 1, 256, 7);
    const std::vector<int32_t> ids = random_ids(256, 256, 3);
    illm::Executor executor(model, k);
    for (const int threads : {1, 2}) {
      omp_set_num_threads(threads);
      double best = 1e30;
      for (int r = 0; r < reps; ++r) {
        executor.reset();
        const double start = now(threads == 1);
        executor.forward(ids);
        best = std::min(best, now(threads == 1) - start);
      }
      std::printf("| W%dA%d | %d | %s | %.3f | %.0f |\n", w_bits, a_bits, threads, threads == 1 ? "thread CPU" : "wall",
                  best, 256 / best);
    }
    if (w_bits == 4) {
      omp_set_num_threads(1);
      executor.reset();
      executor.set_profiler(&layer_profile);
      executor.forward(ids);
      executor.set_profiler(nullptr);
    }
  }

  // 3. Decode tokens/s of both fixtures.
  std::printf("\n| decode (one token per call, positions 1…255) | threads | clock | tokens/s | prefill 256 tokens/s |\n"
              "| --- | --- | --- | --- | --- |\n");
  Profile tinybible_prefill, tinybible_decode;
  for (const char* name : {"stories260K-w4a4", "stories260K-w8a8", "tinybible-w4a4", "tinybible-w8a8"}) {
    const illm::formats::LoadedIllm loaded = illm::formats::read_illm(models + "/" + name + ".illm");
    const std::vector<int32_t> ids = random_ids(loaded.model.shape.vocab, 256, 5);
    illm::Executor executor(loaded.model, k);
    for (const int threads : {1, 2}) {
      omp_set_num_threads(threads);
      double decode = 1e30, prefill = 1e30;
      const bool cpu_time = threads == 1;
      for (int r = 0; r < reps; ++r) {
        executor.reset();
        double start = now(cpu_time);
        executor.forward(ids);
        prefill = std::min(prefill, now(cpu_time) - start);
        executor.reset();
        executor.forward(std::span<const int32_t>(ids.data(), 1));
        start = now(cpu_time);
        for (int t = 1; t < 256; ++t) executor.forward(std::span<const int32_t>(&ids[t], 1));
        decode = std::min(decode, now(cpu_time) - start);
      }
      std::printf("| %s | %d | %s | %.0f | %.0f |\n", name, threads, cpu_time ? "thread CPU" : "wall", 255 / decode,
                  256 / prefill);
    }
    if (std::string(name) == "tinybible-w4a4")
      profile_prefill_and_decode(executor, ids, tinybible_prefill, tinybible_decode);
  }

  layer_profile.print("Per-operator time, 7B-shaped layer W4A4, 256-token prefill, 1 thread");
  tinybible_prefill.print("Per-operator time, tinybible W4A4, 256-token prefill, 1 thread");
  tinybible_decode.print("Per-operator time, tinybible W4A4, 256 decode steps, 1 thread");
  hadamard_speed(models, k, reps);
  act_group_speed(models, k, reps);
  return 0;
}
