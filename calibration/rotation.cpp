// Offline rotations of the FP weights and the online Hadamard folds. See rotation.h.
#include "calibration/rotation.h"

#include <cmath>

#include "kernels/reference/hadamard.h"
#include "calibration/row_rotation.h"
#include "kernels/error.h"

namespace illm::calib {
namespace {

torch::Tensor f64(const torch::Tensor& t) { return t.detach().to(torch::kFloat64); }

// Block-diagonal matrix with `count` copies of m (for per-head transforms of [count·d] vectors).
torch::Tensor block_diagonal(const torch::Tensor& m, int64_t count) {
  std::vector<torch::Tensor> blocks(static_cast<size_t>(count), m);
  return torch::block_diag(blocks);
}

}  // namespace

torch::Tensor normalized_hadamard(int64_t n) {
  const HadamardPlan plan = plan_hadamard(n);
  const std::vector<int32_t> h = hadamard_matrix(plan);
  return torch::from_blob(const_cast<int32_t*>(h.data()), {n, n}, torch::kInt32).to(torch::kFloat64) /
         std::sqrt(static_cast<double>(plan.gain2));
}

torch::Tensor residual_rotation(ResidualRotation kind, int64_t hidden, uint64_t seed) {
  if (kind == ResidualRotation::kNone) return {};
  torch::Generator gen = at::detail::createCPUGenerator(seed);
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  if (kind == ResidualRotation::kHadamard) {
    const torch::Tensor signs = torch::randint(0, 2, {hidden}, gen, opts) * 2 - 1;
    return normalized_hadamard(hidden) * signs.unsqueeze(0);  // Ĥ·diag(±1)
  }
  const torch::Tensor g = torch::randn({hidden, hidden}, gen, opts);
  auto [q, r] = torch::linalg_qr(g);
  const torch::Tensor sign = torch::where(r.diagonal() < 0, -torch::ones({hidden}, opts), torch::ones({hidden}, opts));
  return q * sign.unsqueeze(0);
}

BlockWeights fold_norm_gains(const BlockWeights& fp) {
  BlockWeights w = fp;
  const torch::Tensor g1 = fp.attn_norm.unsqueeze(0), g2 = fp.ffn_norm.unsqueeze(0);
  w.wq = fp.wq * g1;
  w.wk = fp.wk * g1;
  w.wv = fp.wv * g1;
  w.w_gate = fp.w_gate * g2;
  w.w_up = fp.w_up * g2;
  w.attn_norm = torch::ones_like(fp.attn_norm);
  w.ffn_norm = torch::ones_like(fp.ffn_norm);
  return w;
}

BlockWeights rotate_block(const BlockWeights& fp, const torch::Tensor& rotation, bool rotate_heads,
                          const BlockShape& shape) {
  const auto dtype = fp.wq.scalar_type();
  BlockWeights w = rotation.defined() ? fold_norm_gains(fp) : fp;
  torch::Tensor wq = f64(w.wq), wk = f64(w.wk), wv = f64(w.wv), wo = f64(w.wo);
  torch::Tensor w_gate = f64(w.w_gate), w_up = f64(w.w_up), w_down = f64(w.w_down);
  if (rotation.defined()) {
    const torch::Tensor q = f64(rotation).to(wq.device());
    if (q.size(0) != shape.hidden || q.size(1) != shape.hidden)
      throw Error("rotate_block: rotation must be [" + std::to_string(shape.hidden) + ", " +
                  std::to_string(shape.hidden) + "]");
    wq = wq.matmul(q);
    wk = wk.matmul(q);
    wv = wv.matmul(q);
    w_gate = w_gate.matmul(q);
    w_up = w_up.matmul(q);
    wo = q.t().matmul(wo);
    w_down = q.t().matmul(w_down);
  }
  if (rotate_heads) {
    const torch::Tensor hd = normalized_hadamard(shape.head_dim).to(wv.device());
    wv = block_diagonal(hd, shape.n_kv_heads).matmul(wv);          // rows of each KV head: Ĥ·W_v,j
    wo = wo.matmul(block_diagonal(hd, shape.n_heads).t());         // columns of each q head: W_o,h·Ĥᵀ
  }
  w.wq = wq.to(dtype);
  w.wk = wk.to(dtype);
  w.wv = wv.to(dtype);
  w.wo = wo.to(dtype);
  w.w_gate = w_gate.to(dtype);
  w.w_up = w_up.to(dtype);
  w.w_down = w_down.to(dtype);
  return w;
}

torch::Tensor rotate_embedding_rows(const torch::Tensor& rows, const torch::Tensor& rotation) {
  return f64(rows).matmul(f64(rotation).to(rows.device())).to(rows.scalar_type());
}

torch::Tensor rotate_head_rows(const torch::Tensor& rows, const torch::Tensor& final_norm,
                               const torch::Tensor& rotation) {
  return (f64(rows) * f64(final_norm).unsqueeze(0)).matmul(f64(rotation).to(rows.device())).to(rows.scalar_type());
}

void rotate_embedding_and_head(torch::Tensor& embed, torch::Tensor& head, torch::Tensor& final_norm,
                               const torch::Tensor& rotation) {
  const torch::Tensor new_head = rotate_head_rows(head, final_norm, rotation);
  embed = rotate_embedding_rows(embed, rotation);
  head = new_head;
  final_norm = torch::ones_like(final_norm);
}

struct ResidualRowRotation::Impl {
  torch::Tensor q;  // [C, C] float64
};

ResidualRowRotation::ResidualRowRotation(const Recipe& recipe, int64_t hidden) {
  torch::Tensor q = residual_rotation(recipe.rotation, hidden, rotation_seed_of(recipe));
  if (q.defined()) impl_ = std::make_unique<Impl>(Impl{std::move(q)});
}
ResidualRowRotation::~ResidualRowRotation() = default;
ResidualRowRotation::ResidualRowRotation(ResidualRowRotation&&) noexcept = default;
ResidualRowRotation& ResidualRowRotation::operator=(ResidualRowRotation&&) noexcept = default;

namespace {

torch::Tensor row_view(std::span<float> rows, int64_t hidden, const char* what) {
  if (rows.size() % static_cast<size_t>(hidden) != 0)
    throw Error(std::string(what) + ": " + std::to_string(rows.size()) + " values are not rows of " +
                std::to_string(hidden));
  return torch::from_blob(rows.data(), {static_cast<int64_t>(rows.size()) / hidden, hidden}, torch::kFloat32);
}

}  // namespace

void ResidualRowRotation::rotate_embedding_rows(std::span<float> rows) const {
  if (!impl_) return;
  torch::NoGradGuard no_grad;
  torch::Tensor view = row_view(rows, impl_->q.size(0), "rotate_embedding_rows");
  view.copy_(calib::rotate_embedding_rows(view, impl_->q));
}

void ResidualRowRotation::rotate_head_rows(std::span<float> rows, std::span<const float> final_norm) const {
  if (!impl_) return;
  torch::NoGradGuard no_grad;
  const int64_t hidden = impl_->q.size(0);
  if (static_cast<int64_t>(final_norm.size()) != hidden)
    throw Error("rotate_head_rows: final norm has " + std::to_string(final_norm.size()) + " gains, hidden is " +
                std::to_string(hidden));
  torch::Tensor view = row_view(rows, hidden, "rotate_head_rows");
  const torch::Tensor gain = torch::from_blob(const_cast<float*>(final_norm.data()), {hidden}, torch::kFloat32);
  view.copy_(calib::rotate_head_rows(view, gain, impl_->q));
}

void rotate_model(LlamaWeights& w, const Recipe& recipe) {
  const formats::LlamaConfig& c = w.config;
  const BlockShape shape{c.hidden_size, c.intermediate_size, c.num_attention_heads, c.num_key_value_heads,
                         c.head_dim(), c.rms_norm_eps};
  const torch::Tensor q = residual_rotation(recipe.rotation, c.hidden_size, rotation_seed_of(recipe));
  if (!q.defined() && !recipe.rotate_heads) return;
  if (q.defined()) rotate_embedding_and_head(w.embed, w.lm_head, w.final_norm, q);
  for (BlockWeights& block : w.layers) block = rotate_block(block, q, recipe.rotate_heads, shape);
}

torch::Tensor fold_online_down(const torch::Tensor& w_down, const OnlineHadamard& h) {
  if (w_down.size(1) != h.size())
    throw Error("fold_online_down: down_proj has " + std::to_string(w_down.size(1)) + " inputs, Hadamard size " +
                std::to_string(h.size()));
  return torch::matmul(w_down, h.normalized.to(w_down.scalar_type()).t());
}

void attach_online_hadamards(FakeQuantSettings& settings, bool down, bool qk, const BlockShape& shape) {
  settings.hadamard_down = down ? std::make_shared<const OnlineHadamard>(OnlineHadamard::of_size(shape.intermediate))
                                : nullptr;
  settings.hadamard_qk = qk ? std::make_shared<const OnlineHadamard>(OnlineHadamard::of_size(shape.head_dim)) : nullptr;
}

}  // namespace illm::calib
