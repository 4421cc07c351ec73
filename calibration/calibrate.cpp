#include "calibration/calibrate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>

#include <torch/torch.h>

#include "calibration/activations.h"
#include "calibration/fake_quant_block.h"
#include "calibration/fsbr.h"
#include "calibration/gptq.h"
#include "calibration/integerize.h"
#include "calibration/llama_forward.h"
#include "calibration/llama_weights.h"
#include "calibration/rotation.h"
#include "calibration/row_rotation.h"
#include "calibration/threads.h"
#include "formats/llama_config.h"
#include "kernels/error.h"
#include "kernels/quantized_model.h"

namespace illm::calib {
namespace {

constexpr int64_t kChunk = 8;

// Sets the thread count for one call and restores the caller's afterwards (intra_op_threads may lower it).
class ScopedThreadCount {
 public:
  explicit ScopedThreadCount(int n) : previous_(thread_count()) { set_thread_count(n); }
  ~ScopedThreadCount() { set_thread_count(previous_); }
  ScopedThreadCount(const ScopedThreadCount&) = delete;
  ScopedThreadCount& operator=(const ScopedThreadCount&) = delete;

 private:
  int previous_;
};

std::vector<float> to_vector(const torch::Tensor& t) {
  const torch::Tensor c = t.detach().to(torch::kFloat32).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

torch::Tensor from_vector(const std::vector<float>& v, std::vector<int64_t> shape) {
  return torch::from_blob(const_cast<float*>(v.data()), shape, torch::kFloat32).clone();
}

torch::Tensor windows_tensor(const TokenWindows& windows, size_t count, size_t seq_len, const char* what) {
  if (windows.size() < count)
    throw Error(std::string(what) + ": need " + std::to_string(count) + " windows, got " +
                std::to_string(windows.size()));
  torch::Tensor ids = torch::empty({static_cast<int64_t>(count), static_cast<int64_t>(seq_len)}, torch::kLong);
  auto acc = ids.accessor<int64_t, 2>();
  for (size_t i = 0; i < count; ++i) {
    if (windows[i].size() < seq_len)
      throw Error(std::string(what) + ": window " + std::to_string(i) + " has " + std::to_string(windows[i].size()) +
                  " tokens, the recipe's seq_len is " + std::to_string(seq_len));
    for (size_t t = 0; t < seq_len; ++t) acc[i][t] = windows[i][t];
  }
  return ids;
}

BlockShape shape_of(const formats::LlamaConfig& c) {
  return {c.hidden_size, c.intermediate_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim(),
          c.rms_norm_eps};
}

BlockShape shape_of(const CalibratedModel& m) {
  return {m.hidden, m.intermediate, m.n_heads, m.n_kv_heads, m.head_dim, m.rms_norm_eps};
}

CalibratedLinear to_calibrated(const WeightQuant& q, int bits) {
  CalibratedLinear l;
  l.out_features = static_cast<int32_t>(q.codes.size(0));
  l.in_features = static_cast<int32_t>(q.codes.size(1));
  l.bits = bits;
  l.group_size = static_cast<int32_t>(q.codes.size(1) / q.scale.size(1));
  const torch::Tensor codes = q.codes.to(torch::kCPU, torch::kUInt8).contiguous();
  l.codes.assign(codes.data_ptr<uint8_t>(), codes.data_ptr<uint8_t>() + codes.numel());
  l.scales = to_vector(q.scale);
  const torch::Tensor zp = q.zero_point.to(torch::kCPU, torch::kInt32).contiguous();
  l.zero_points.assign(zp.data_ptr<int32_t>(), zp.data_ptr<int32_t>() + zp.numel());
  return l;
}

void store_site_quants(const SiteQuants& sites, CalibratedLayer& layer) {
  bool any_clip = false, any_trip = false;
  for (const SiteQuant& s : sites) {
    any_clip |= s.clip_ratio != 1.0;
    any_trip |= s.trip_shifts.defined();
  }
  if (any_clip)
    for (const SiteQuant& s : sites) layer.act_clip_ratios.push_back(s.clip_ratio);
  if (any_trip)
    for (const SiteQuant& s : sites) {
      std::vector<int8_t> shifts;
      if (s.trip_shifts.defined()) {
        const torch::Tensor t = s.trip_shifts.to(torch::kInt8).contiguous();
        shifts.assign(t.data_ptr<int8_t>(), t.data_ptr<int8_t>() + t.numel());
      }
      layer.trip_shifts.push_back(std::move(shifts));
    }
}

SiteQuants load_site_quants(const CalibratedLayer& layer) {
  SiteQuants sites;
  for (size_t s = 0; s < layer.act_clip_ratios.size() && s < sites.size(); ++s)
    sites[s].clip_ratio = layer.act_clip_ratios[s];
  for (size_t s = 0; s < layer.trip_shifts.size() && s < sites.size(); ++s)
    if (!layer.trip_shifts[s].empty())
      sites[s].trip_shifts =
          torch::from_blob(const_cast<int8_t*>(layer.trip_shifts[s].data()),
                           {static_cast<int64_t>(layer.trip_shifts[s].size())}, torch::kInt8)
              .to(torch::kInt64);
  return sites;
}

CalibratedLayer layer_from(BlockCalibration& bc, const Recipe& recipe) {
  CalibratedLayer layer;
  layer.attn_norm = to_vector(bc.folded.weights.attn_norm);
  layer.ffn_norm = to_vector(bc.folded.weights.ffn_norm);
  CalibratedLinear* linears[kNumLinears] = {&layer.q_proj,    &layer.k_proj,  &layer.v_proj,   &layer.o_proj,
                                            &layer.gate_proj, &layer.up_proj, &layer.down_proj};
  for (int i = 0; i < kNumLinears; ++i) {
    *linears[i] = to_calibrated(bc.weight_quant[i], recipe.w_bits);
    bc.weight_quant[i] = WeightQuant{};  // free as we go
  }
  layer.swiglu_alpha = to_vector(bc.folded.alpha);
  layer.softmax_clip = bc.clip_c;
  store_site_quants(bc.settings.sites, layer);
  layer.loss_before = bc.loss_before;
  layer.loss_after = bc.loss_after;
  return layer;
}

// Every block starts from its own seed, so a resumed run draws what an uninterrupted one draws.
uint64_t block_seed(uint64_t seed, int64_t layer) { return seed * 1000003u + static_cast<uint64_t>(layer); }

torch::Device parse_device(const std::string& device) {
  check_device(device);
  return device == "cuda" ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
}

torch::Tensor dequantized(const CalibratedLinear& l) {
  const int64_t groups = l.in_features / l.group_size;
  torch::Tensor codes = torch::from_blob(const_cast<uint8_t*>(l.codes.data()), {l.out_features, groups, l.group_size},
                                         torch::kUInt8)
                            .to(torch::kFloat32);
  const torch::Tensor scale = from_vector(l.scales, {l.out_features, groups, 1});
  const torch::Tensor zero =
      torch::from_blob(const_cast<int32_t*>(l.zero_points.data()), {l.out_features, groups, 1}, torch::kInt32)
          .to(torch::kFloat32);
  return ((codes - zero) * scale).reshape({l.out_features, l.in_features});
}

// Runs `fn(chunk_ids)` over chunks of windows and returns exp(mean NLL of positions 1..T−1).
double perplexity(const torch::Tensor& ids, const std::function<torch::Tensor(const torch::Tensor&)>& logits_of) {
  torch::NoGradGuard no_grad;
  double nll = 0;
  int64_t count = 0;
  for (int64_t i = 0; i < ids.size(0); i += kChunk) {
    const torch::Tensor chunk = ids.narrow(0, i, std::min(kChunk, ids.size(0) - i));
    const torch::Tensor logits = logits_of(chunk).to(torch::kFloat64);
    const int64_t T = chunk.size(1);
    const torch::Tensor logp = torch::log_softmax(logits.narrow(1, 0, T - 1), -1);
    const torch::Tensor target = chunk.narrow(1, 1, T - 1).unsqueeze(-1);
    nll -= logp.gather(-1, target).sum().item<double>();
    count += chunk.size(0) * (T - 1);
  }
  return std::exp(nll / static_cast<double>(count));
}

size_t common_length(const TokenWindows& w) {
  if (w.empty()) throw Error("perplexity: no evaluation windows");
  size_t n = w[0].size();
  for (const auto& x : w) n = std::min(n, x.size());
  if (n < 2) throw Error("perplexity: windows need at least 2 tokens");
  return n;
}

}  // namespace

void check_device(const std::string& device) {
  if (device == "cpu") return;
  if (device != "cuda") throw Error("--device " + device + ": expected cpu or cuda");
  if (!torch::cuda::is_available()) {
#ifdef ILLM_TORCH_CUDA
    throw Error("--device cuda: this build uses a CUDA-enabled LibTorch, but no CUDA device is visible");
#else
    throw Error("--device cuda: this illm is built against a CPU-only LibTorch; rebuild with "
                "-DILLM_TORCH_CUDA=ON -DTorch_DIR=<a CUDA LibTorch>/share/cmake/Torch (docs/scale.md)");
#endif
  }
}

std::filesystem::path block_inputs_file(const std::filesystem::path& work_dir, int layer, bool quantized) {
  char name[64];
  std::snprintf(name, sizeof name, "inputs-%03d.%s.f32", layer, quantized ? "q" : "fp");
  return work_dir / name;
}

CalibratedModel calibrated_model_frame(const formats::LlamaConfig& cfg, const Recipe& recipe) {
  CalibratedModel out;
  out.hidden = static_cast<int32_t>(cfg.hidden_size);
  out.intermediate = static_cast<int32_t>(cfg.intermediate_size);
  out.n_layers = static_cast<int32_t>(cfg.num_hidden_layers);
  out.n_heads = static_cast<int32_t>(cfg.num_attention_heads);
  out.n_kv_heads = static_cast<int32_t>(cfg.num_key_value_heads);
  out.head_dim = static_cast<int32_t>(cfg.head_dim());
  out.vocab = static_cast<int32_t>(cfg.vocab_size);
  out.max_positions = static_cast<int32_t>(cfg.max_position_embeddings);
  out.bos_id = cfg.bos_token_id;
  out.eos_id = cfg.eos_token_id;
  out.rms_norm_eps = cfg.rms_norm_eps;
  out.rope_inv_freq = formats::rope_inverse_frequencies(cfg);
  out.method = to_string(recipe.method);
  out.w_bits = recipe.w_bits;
  out.a_bits = recipe.a_bits;
  out.qkv_bits = qkv_bits_setting(recipe.qkv_bits, recipe.a_bits);
  out.swiglu_in_bits = recipe.swiglu_in_bits;
  out.hadamard_down = recipe.hadamard_down;
  out.hadamard_qk = recipe.hadamard_qk;
  out.trip_max_shift = recipe.trip_shifts;
  out.act_group_size = recipe.act_group_size;
  out.head_gptq_damp = recipe.gptq_damp;
  out.head_gptq_act_order = recipe.gptq_act_order;
  out.head_in_bits = head_in_bits_setting(recipe.head_in_bits, IntegerSettings{}.head_bits);
  out.head_group_size = recipe.head_group_size;
  // A rotated head is W_head·diag(γ)·Q, no longer the rotated embedding E·Q.
  out.tied_head = cfg.tie_word_embeddings && recipe.rotation == ResidualRotation::kNone;
  return out;
}

namespace {

// Σ x̂ᵀx̂ of the LM head's inputs (recipe key gptq_head): the final RMSNorm of the last block's quantized-trajectory
// outputs (gain γ, or ones when the offline rotation has folded γ into the head rows), quantized per token at the
// head's input width (recipe key head_in_bits) as DI-Norm's output is in the integer executor.
std::vector<double> head_hessian(const formats::TensorStore& store, const Recipe& recipe, const Activations& outputs,
                                 double eps, bool gain_folded) {
  const int64_t C = outputs.hidden();
  const torch::Tensor gain = gain_folded ? torch::ones({C}) : from_vector(store.read_f32("model.norm.weight"), {C});
  HessianAccumulator acc(C);
  for (int64_t i = 0; i < outputs.samples(); i += kEvalChunk) {
    const torch::Tensor h = outputs.read(i, std::min(kEvalChunk, outputs.samples() - i));
    acc.add(fake_quant_per_token(rms_norm(h, gain, eps), recipe.head_in_bits));  // 16: not quantized
  }
  const torch::Tensor sum = acc.sum().contiguous();
  return std::vector<double>(sum.data_ptr<double>(), sum.data_ptr<double>() + sum.numel());
}

}  // namespace

void calibrate_blocks(const formats::LlamaConfig& cfg, const formats::TensorStore& store, const Recipe& recipe,
                      const TokenWindows& calib, const BlockSink& sink, const CalibrateOptions& options) {
  retain_freed_memory();  // training allocates and frees the same buffers every step
  const torch::Device device = parse_device(options.device);
  const BlockShape shape = shape_of(cfg);
  const std::string source = store.source().string();
  if (recipe.w_granularity == WeightGranularity::kPerGroup &&
      (cfg.hidden_size % recipe.group_size != 0 || cfg.intermediate_size % recipe.group_size != 0))
    throw Error("recipe: group_size " + std::to_string(recipe.group_size) + " does not divide hidden " +
                std::to_string(cfg.hidden_size) + " and intermediate " + std::to_string(cfg.intermediate_size) +
                " of " + source);
  if (recipe.head_group_size > 0 && cfg.hidden_size % recipe.head_group_size != 0)
    throw Error("recipe: head_group_size " + std::to_string(recipe.head_group_size) + " does not divide hidden " +
                std::to_string(cfg.hidden_size) + " of " + source);
  if (recipe.seq_len > cfg.max_position_embeddings)
    throw Error("recipe: seq_len " + std::to_string(recipe.seq_len) + " exceeds max_position_embeddings of " + source);
  const int n_layers = static_cast<int>(cfg.num_hidden_layers);
  if (options.first_block < 0 || options.first_block > n_layers)
    throw Error("calibrate: first block " + std::to_string(options.first_block) + " outside [0, " +
                std::to_string(n_layers) + "]");
  const ScopedThreadCount threads(intra_op_threads(shape, recipe.seq_len, options.threads));

  torch::NoGradGuard no_grad;
  const torch::Tensor ids = windows_tensor(calib, static_cast<size_t>(recipe.samples),
                                           static_cast<size_t>(recipe.seq_len), "calibration data");
  const int64_t N = ids.size(0), T = ids.size(1), C = cfg.hidden_size;
  const RotaryCosSin cpu_rot = rotary_cos_sin(cfg, recipe.seq_len, torch::kFloat32);
  const RotaryCosSin rot{cpu_rot.cos.to(device), cpu_rot.sin.to(device)};
  // Offline rotations (calibration/rotation.h; none by default): Q is seeded by the recipe alone, so every block of
  // this run, a resumed run and the converter's embedding / head rows (ResidualRowRotation) use the same matrix.
  // Costs Q's C²·8 bytes (128 MiB at C = 4096) while calibrating.
  const torch::Tensor rotation = residual_rotation(recipe.rotation, C, rotation_seed_of(recipe));
  const bool rotates = rotation.defined() || recipe.rotate_heads;
  const bool in_memory = options.work_dir.empty();
  auto create = [&](int layer, bool quantized) {
    return in_memory ? Activations::in_memory(N, T, C)
                     : Activations::create_file(block_inputs_file(options.work_dir, layer, quantized), N, T, C);
  };

  // Inputs of earlier blocks left by a run killed between its sink and their deletion are not state.
  if (!in_memory)
    for (int l = 0; l < options.first_block; ++l)
      for (bool quantized : {false, true}) {
        std::error_code ignored;
        std::filesystem::remove(block_inputs_file(options.work_dir, l, quantized), ignored);
      }
  // Inputs of the first block: the embeddings (FP and quantized trajectories start equal).
  std::optional<Activations> fp_in, q_in;
  if (options.first_block == 0) {
    fp_in = create(0, false);
    q_in = create(0, true);
    for (int64_t i = 0; i < N; i += kChunk) {
      const int64_t n = std::min(kChunk, N - i);
      torch::Tensor rows = embedding_rows(cfg, store, ids.narrow(0, i, n), torch::kFloat32);
      if (rotation.defined()) rows = rotate_embedding_rows(rows, rotation);
      fp_in->write(i, rows);
      q_in->write(i, rows);
    }
    fp_in->commit();
    q_in->commit();
  } else if (options.first_block < n_layers) {
    fp_in = Activations::open_file(block_inputs_file(options.work_dir, options.first_block, false), N, T, C);
    q_in = Activations::open_file(block_inputs_file(options.work_dir, options.first_block, true), N, T, C);
  }

  for (int l = options.first_block; l < n_layers; ++l) {
    torch::manual_seed(block_seed(recipe.seed, l));
    DecoderBlockWeights fp = load_block_weights(cfg, store, l, torch::kFloat32);
    if (!device.is_cpu())
      for (torch::Tensor* t : {&fp.attn_norm, &fp.wq, &fp.wk, &fp.wv, &fp.wo, &fp.ffn_norm, &fp.w_gate, &fp.w_up,
                               &fp.w_down})
        *t = t->to(device);
    if (rotates) fp = rotate_block(fp, rotation, recipe.rotate_heads, shape);
    const bool last = l + 1 == n_layers;
    // The FP trajectory: block l's FP output is its reconstruction target and block l+1's FP input.
    Activations fp_next = create(l + 1, false);
    for (int64_t i = 0; i < N; i += kChunk) {
      const int64_t n = std::min(kChunk, N - i);
      fp_next.write(i, decoder_block_forward(cfg, fp, fp_in->read(i, n).to(device), rot));
    }
    std::optional<Activations> q_next;
    if (!last || recipe.gptq_head) q_next = create(l + 1, true);  // the last one: the LM head's GPTQ inputs

    BlockCalibration bc;
    {
      torch::AutoGradMode enable_grad(true);
      bc = calibrate_block(fp, shape, rot, *fp_in, *q_in, fp_next, recipe, l, n_layers, options.show_progress,
                           q_next ? &*q_next : nullptr);
    }
    fp = DecoderBlockWeights{};
    if (!last) {
      fp_next.commit();
      q_next->commit();
    }
    CalibratedBlock block;
    if (last && recipe.gptq_head) {
      q_next->commit();
      block.head_hessian = head_hessian(store, recipe, *q_next, cfg.rms_norm_eps, rotation.defined());
      q_next.reset();
      if (!in_memory) {
        std::error_code ignored;
        std::filesystem::remove(block_inputs_file(options.work_dir, l + 1, true), ignored);
      }
    }
    block.index = l;
    block.report = {bc.loss_before, bc.loss_after, bc.seconds, bc.seconds_per_step, bc.best_epoch, bc.epoch_losses,
                    bc.clip_c};
    block.layer = layer_from(bc, recipe);
    bc = BlockCalibration{};
    sink(std::move(block));
    // The sink has persisted the block: its inputs are no longer part of any state.
    fp_in.reset();
    q_in.reset();
    if (!in_memory) {
      std::error_code ignored;
      std::filesystem::remove(block_inputs_file(options.work_dir, l, false), ignored);
      std::filesystem::remove(block_inputs_file(options.work_dir, l, true), ignored);
    }
    if (!last) {
      fp_in = std::move(fp_next);
      q_in = std::move(*q_next);
    }
    release_freed_memory();
  }
}

CalibratedModel calibrate(const std::filesystem::path& model_dir, const Recipe& recipe, const TokenWindows& calib,
                          CalibrationReport* report, const CalibrateOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  const formats::LlamaConfig cfg = formats::load_llama_config(model_dir);
  const formats::TensorStore store = formats::TensorStore::open(model_dir);
  formats::check_llama_tensors(cfg, store);
  CalibratedModel out = calibrated_model_frame(cfg, recipe);
  if (report) {
    *report = CalibrationReport{};
    report->method = out.method;
  }
  CalibrateOptions in_memory = options;
  in_memory.work_dir.clear();
  in_memory.first_block = 0;
  calibrate_blocks(cfg, store, recipe, calib, [&](CalibratedBlock&& block) {
    out.layers.push_back(std::move(block.layer));
    if (!block.head_hessian.empty()) out.head_hessian = std::move(block.head_hessian);
    if (report) report->blocks.push_back(std::move(block.report));
  }, in_memory);
  const int64_t C = cfg.hidden_size, V = cfg.vocab_size;
  out.embed = store.read_f32("model.embed_tokens.weight");
  out.final_norm = store.read_f32("model.norm.weight");
  out.lm_head = cfg.tie_word_embeddings ? out.embed : store.read_f32("lm_head.weight");
  formats::check_weight_values(store.info("model.embed_tokens.weight"), out.embed);
  formats::check_weight_values(store.info("model.norm.weight"), out.final_norm);
  if (!cfg.tie_word_embeddings) formats::check_weight_values(store.info("lm_head.weight"), out.lm_head);
  if (static_cast<int64_t>(out.embed.size()) != V * C || static_cast<int64_t>(out.lm_head.size()) != V * C)
    throw Error(model_dir.string() + ": embedding or LM head does not have the config's shape");
  const ResidualRowRotation rows(recipe, C);  // what the converter does to the streamed rows (row_rotation.h)
  if (rows.enabled()) {
    rows.rotate_embedding_rows(out.embed);
    rows.rotate_head_rows(out.lm_head, out.final_norm);
    std::fill(out.final_norm.begin(), out.final_norm.end(), 1.0f);
  }
  if (report) report->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

namespace {

// The fake-quant model of a CalibratedModel: dequantized block weights, per-layer evaluation settings (online
// Hadamards, site refinements, softmax clip), FP embedding / final norm / head.
class FakeQuantModel {
 public:
  FakeQuantModel(const CalibratedModel& m, FakeQuantPoints points) : m_(m), shape_(shape_of(m)) {
    for (const CalibratedLayer& l : m.layers) {
      BlockWeights b;
      b.attn_norm = from_vector(l.attn_norm, {m.hidden});
      b.ffn_norm = from_vector(l.ffn_norm, {m.hidden});
      b.wq = dequantized(l.q_proj);
      b.wk = dequantized(l.k_proj);
      b.wv = dequantized(l.v_proj);
      b.wo = dequantized(l.o_proj);
      b.w_gate = dequantized(l.gate_proj);
      b.w_up = dequantized(l.up_proj);
      b.w_down = dequantized(l.down_proj);
      blocks_.push_back(b);
      alphas_.push_back(from_vector(l.swiglu_alpha, {m.intermediate}));
    }
    embed_ = from_vector(m.embed, {m.vocab, m.hidden});
    head_ = from_vector(m.lm_head, {m.vocab, m.hidden});
    final_norm_ = from_vector(m.final_norm, {m.hidden});
    Recipe r;
    r.a_bits = m.a_bits;
    r.qkv_bits = m.qkv_bits;
    r.swiglu_in_bits = m.swiglu_in_bits;
    r.act_group_size = m.act_group_size;
    r.fake_quant_points = points;
    FakeQuantSettings online;
    attach_online_hadamards(online, m.hadamard_down, m.hadamard_qk, shape_);
    for (const CalibratedLayer& l : m.layers) {
      FakeQuantSettings s = evaluation_settings(r, l.softmax_clip);
      s.hadamard_down = online.hadamard_down;
      s.hadamard_qk = online.hadamard_qk;
      s.sites = load_site_quants(l);
      s.trip_max_shift = m.trip_max_shift;
      settings_.push_back(s);
    }
  }
  const BlockShape& shape() const { return shape_; }

  // Logits [B, T, V] (float32) of token ids [B, T] at positions 0..T−1.
  torch::Tensor logits(const torch::Tensor& ids) const {
    const int64_t T = ids.size(1);
    auto opts = torch::TensorOptions().dtype(torch::kFloat64);
    const torch::Tensor angles = torch::outer(torch::arange(T, opts), torch::tensor(m_.rope_inv_freq, opts));
    const torch::Tensor emb = torch::cat({angles, angles}, -1);
    const RotaryCosSin rot{emb.cos().to(torch::kFloat32), emb.sin().to(torch::kFloat32)};
    torch::Tensor h = embed_.index_select(0, ids.reshape({-1})).reshape({ids.size(0), T, m_.hidden});
    for (size_t l = 0; l < blocks_.size(); ++l)
      h = fake_quant_block_forward(blocks_[l], alphas_[l], h, rot, shape_, settings_[l]);
    return torch::matmul(rms_norm(h, final_norm_, m_.rms_norm_eps), head_.t());
  }

 private:
  const CalibratedModel& m_;
  BlockShape shape_;
  std::vector<BlockWeights> blocks_;
  std::vector<torch::Tensor> alphas_;
  std::vector<FakeQuantSettings> settings_;
  torch::Tensor embed_, head_, final_norm_;
};

// Calls fn(first index, ids [B, T]) for runs of up to kChunk consecutive windows of equal length.
void for_each_chunk(const TokenWindows& windows, const std::function<void(size_t, const torch::Tensor&)>& fn) {
  for (size_t i = 0; i < windows.size();) {
    size_t j = i + 1;
    while (j < windows.size() && j - i < static_cast<size_t>(kChunk) && windows[j].size() == windows[i].size()) ++j;
    const torch::Tensor ids = windows_tensor(TokenWindows(windows.begin() + i, windows.begin() + j), j - i,
                                             windows[i].size(), "evaluation data");
    fn(i, ids);
    i = j;
  }
}

}  // namespace

double fake_quant_perplexity(const CalibratedModel& m, const TokenWindows& eval, const FakeQuantEvalOptions& options) {
  retain_freed_memory();
  torch::NoGradGuard no_grad;
  const FakeQuantModel model(m, options.points);
  const size_t T = common_length(eval);
  const ScopedThreadCount threads(intra_op_threads(model.shape(), static_cast<int64_t>(T), options.threads));
  double nll = 0;
  int64_t count = 0;
  for_each_chunk(eval, [&](size_t, const torch::Tensor& chunk) {
    const int64_t L = chunk.size(1);
    const torch::Tensor logp = torch::log_softmax(model.logits(chunk).to(torch::kFloat64).narrow(1, 0, L - 1), -1);
    nll -= logp.gather(-1, chunk.narrow(1, 1, L - 1).unsqueeze(-1)).sum().item<double>();
    count += chunk.size(0) * (L - 1);
  });
  return std::exp(nll / static_cast<double>(count));
}

void fake_quant_for_each_logits(const CalibratedModel& m, const TokenWindows& eval, const FakeQuantEvalOptions& options,
                                const LogitsConsumer& consume) {
  retain_freed_memory();
  torch::NoGradGuard no_grad;
  const FakeQuantModel model(m, options.points);
  const size_t T = eval.empty() ? 1 : eval[0].size();
  const ScopedThreadCount threads(intra_op_threads(model.shape(), static_cast<int64_t>(T), options.threads));
  for_each_chunk(eval, [&](size_t first, const torch::Tensor& chunk) {
    const torch::Tensor logits = model.logits(chunk).to(torch::kFloat32).contiguous();
    const int64_t per_window = logits.size(1) * logits.size(2);
    for (int64_t b = 0; b < chunk.size(0); ++b)
      consume(first + static_cast<size_t>(b),
              std::span<const float>(logits.data_ptr<float>() + b * per_window, static_cast<size_t>(per_window)));
  });
}

double fp_perplexity(const std::filesystem::path& model_dir, const TokenWindows& eval, int threads) {
  retain_freed_memory();
  const LlamaWeights w = load_llama_weights(model_dir, torch::kFloat32);
  const size_t T = common_length(eval);
  const ScopedThreadCount scoped(intra_op_threads(shape_of(w.config), static_cast<int64_t>(T), threads));
  const torch::Tensor ids = windows_tensor(eval, eval.size(), T, "evaluation data");
  return perplexity(ids, [&](const torch::Tensor& chunk) { return llama_forward(w, chunk); });
}

}  // namespace illm::calib
