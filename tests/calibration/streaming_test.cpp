// Block streaming (docs/scale.md) on the bundled stories260K: activations spilled to files give the same calibration
// as activations in memory; a run stopped after a block and resumed from the committed inputs gives the same blocks
// as an uninterrupted one; the streaming FP model gives the logits of the whole-model forward bit for bit, however
// its windows are grouped; activation files and the --device check behave.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "calibration/activations.h"
#include "calibration/calibrate.h"
#include "calibration/fp_model.h"
#include "calibration/llama_forward.h"
#include "calibration/llama_weights.h"
#include "formats/dataset.h"
#include "formats/llama_config.h"
#include "kernels/error.h"

namespace {

namespace fs = std::filesystem;
using namespace illm::calib;
const fs::path kModel = fs::path(ILLM_SOURCE_DIR) / "models" / "stories260K";

TokenWindows windows(const char* file) {
  const illm::formats::LlamaConfig cfg = illm::formats::load_llama_config(kModel);
  return illm::formats::load_windows(kModel / file, nullptr, std::nullopt, cfg.vocab_size, cfg.max_position_embeddings)
      .sequences;
}

fs::path scratch(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("illm_streaming_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// FSBR, 1 epoch x 4 samples x 64 tokens (SmoothQuant init: the statistics pass reads fp_in too).
illm::Recipe tiny_fsbr() {
  illm::Recipe r = illm::parse_recipe_json(
      R"({"method": "fsbr", "w_bits": 4, "a_bits": 8, "epochs": 1, "samples": 4, "seq_len": 64, "seed": 5,
          "smooth_init": "smoothquant", "clip_c": "search"})",
      "tiny");
  return r;
}

CalibrateOptions quiet() {
  CalibrateOptions o;
  o.threads = 1;
  o.show_progress = false;
  return o;
}

std::vector<CalibratedBlock> run_blocks(const CalibrateOptions& options, int stop_after = -1) {
  const auto cfg = illm::formats::load_llama_config(kModel);
  const auto store = illm::formats::TensorStore::open(kModel);
  std::vector<CalibratedBlock> blocks;
  struct Stop {};
  try {
    calibrate_blocks(cfg, store, tiny_fsbr(), windows("calib.jsonl"), [&](CalibratedBlock&& b) {
      blocks.push_back(std::move(b));
      if (blocks.back().index == stop_after) throw Stop{};  // "killed" right after this block was handed over
    }, options);
  } catch (const Stop&) {
  }
  return blocks;
}

void expect_same_block(const CalibratedBlock& a, const CalibratedBlock& b) {
  SCOPED_TRACE("block " + std::to_string(a.index));
  EXPECT_EQ(a.index, b.index);
  const CalibratedLinear* la[] = {&a.layer.q_proj, &a.layer.k_proj, &a.layer.v_proj, &a.layer.o_proj,
                                  &a.layer.gate_proj, &a.layer.up_proj, &a.layer.down_proj};
  const CalibratedLinear* lb[] = {&b.layer.q_proj, &b.layer.k_proj, &b.layer.v_proj, &b.layer.o_proj,
                                  &b.layer.gate_proj, &b.layer.up_proj, &b.layer.down_proj};
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(la[i]->codes, lb[i]->codes) << i;
    EXPECT_EQ(la[i]->scales, lb[i]->scales) << i;
    EXPECT_EQ(la[i]->zero_points, lb[i]->zero_points) << i;
  }
  EXPECT_EQ(a.layer.attn_norm, b.layer.attn_norm);
  EXPECT_EQ(a.layer.swiglu_alpha, b.layer.swiglu_alpha);
  EXPECT_EQ(a.layer.softmax_clip, b.layer.softmax_clip);
  EXPECT_EQ(a.report.loss_before, b.report.loss_before);
  EXPECT_EQ(a.report.loss_after, b.report.loss_after);
  EXPECT_EQ(a.report.epoch_losses, b.report.epoch_losses);
}

TEST(Streaming, FileBackedActivationsAndResumeGiveTheSameBlocks) {
  const std::vector<CalibratedBlock> in_memory = run_blocks(quiet());
  ASSERT_EQ(in_memory.size(), 5u);

  const fs::path dir = scratch("resume");
  CalibrateOptions files = quiet();
  files.work_dir = dir;
  const std::vector<CalibratedBlock> first = run_blocks(files, /*stop_after=*/1);
  ASSERT_EQ(first.size(), 2u);
  // "Killed" in the sink of block 1: block 2's inputs are committed, block 1's not yet deleted, no temporary files.
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  std::set<std::string> expected;
  for (int l : {1, 2})
    for (bool q : {false, true}) expected.insert(block_inputs_file(dir, l, q).filename().string());
  EXPECT_EQ(names, expected);

  files.first_block = 2;
  const std::vector<CalibratedBlock> rest = run_blocks(files);
  ASSERT_EQ(rest.size(), 3u);
  for (size_t l = 0; l < 2; ++l) expect_same_block(first[l], in_memory[l]);
  for (size_t l = 0; l < 3; ++l) expect_same_block(rest[l], in_memory[l + 2]);
  EXPECT_TRUE(fs::is_empty(dir)) << "the resumed run deletes the stale inputs and, at the end, its own";
  // Not vacuous: the blocks differ from each other (the comparison above compares real content).
  EXPECT_NE(in_memory[0].layer.q_proj.codes, in_memory[1].layer.q_proj.codes);
  fs::remove_all(dir);
}

TEST(Streaming, FpModelLogitsEqualTheWholeModelForward) {
  auto eval = windows("eval.jsonl");
  eval.resize(5);
  eval[3].resize(100);  // another length: a batch of its own
  const auto whole = load_llama_weights(kModel, torch::kFloat32);
  const auto model = FpModel::load(kModel);
  std::vector<std::vector<float>> budget_default(eval.size()), one_batch_per_group(eval.size());
  model->for_each_logits(eval, 2, [&](size_t i, std::span<const float> l) { budget_default[i].assign(l.begin(), l.end()); });
  model->for_each_logits(eval, 2, [&](size_t i, std::span<const float> l) { one_batch_per_group[i].assign(l.begin(), l.end()); },
                         /*activation_budget_bytes=*/1);
  torch::NoGradGuard no_grad;
  // The whole-model forward on the same batches (pairs of equal-length windows).
  const std::vector<std::pair<size_t, size_t>> batches = {{0, 2}, {2, 3}, {3, 4}, {4, 5}};
  for (auto [begin, end] : batches) {
    std::vector<int64_t> ids;
    for (size_t i = begin; i < end; ++i) ids.insert(ids.end(), eval[i].begin(), eval[i].end());
    const auto T = static_cast<int64_t>(eval[begin].size());
    const torch::Tensor logits =
        llama_forward(whole, torch::tensor(ids).reshape({static_cast<int64_t>(end - begin), T})).contiguous();
    for (size_t i = begin; i < end; ++i) {
      const float* row = logits.data_ptr<float>() + (i - begin) * T * whole.config.vocab_size;
      EXPECT_EQ(budget_default[i], std::vector<float>(row, row + T * whole.config.vocab_size)) << i;
      EXPECT_EQ(one_batch_per_group[i], budget_default[i]) << i;
    }
  }
}

TEST(Streaming, ActivationFiles) {
  const fs::path dir = scratch("activations");
  const fs::path path = dir / "a.f32";
  const torch::Tensor values = torch::randn({3, 4, 5});
  {
    Activations a = Activations::create_file(path, 3, 4, 5);
    a.write(0, values.narrow(0, 0, 2));
    a.write(2, values.narrow(0, 2, 1));
    EXPECT_TRUE(torch::equal(a.read(1, 2), values.narrow(0, 1, 2)));
    EXPECT_FALSE(fs::exists(path)) << "not under the final name before commit";
    a.commit();
  }
  EXPECT_EQ(fs::file_size(path), 3u * 4 * 5 * 4);
  EXPECT_TRUE(torch::equal(Activations::open_file(path, 3, 4, 5).read(0, 3), values));
  EXPECT_THROW(Activations::open_file(path, 3, 4, 6), illm::Error);  // wrong shape: named in the message
  EXPECT_THROW(Activations::open_file(dir / "missing.f32", 3, 4, 5), illm::Error);
  {
    Activations b = Activations::create_file(dir / "b.f32", 1, 1, 1);
    b.write(0, torch::ones({1, 1, 1}));
  }  // never committed: nothing is left
  EXPECT_FALSE(fs::exists(dir / "b.f32"));
  EXPECT_FALSE(fs::exists(dir / "b.f32.tmp"));
  fs::remove_all(dir);
}

TEST(Streaming, DeviceCheck) {
  EXPECT_NO_THROW(check_device("cpu"));
  EXPECT_THROW(check_device("tpu"), illm::Error);
  if (!torch::cuda::is_available()) {
    try {
      check_device("cuda");
      ADD_FAILURE() << "--device cuda accepted without CUDA";
    } catch (const illm::Error& e) {
      EXPECT_NE(std::string(e.what()).find("cuda"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
