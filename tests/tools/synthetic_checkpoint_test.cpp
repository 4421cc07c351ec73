// tools/synthetic_checkpoint: the checkpoints it writes are valid LLaMA checkpoints for the project's own readers
// (config, sharded safetensors with the index, every tensor at its shape), have the scales they promise (outlier
// channels), do not depend on the sharding, and store F16/BF16 as the correctly rounded values of the F32 weights
// (checked against the compiler's _Float16 conversion and an exact bfloat16 rounding written here).
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "formats/llama_config.h"
#include "formats/safetensors.h"

namespace {

namespace fs = std::filesystem;
using illm::formats::TensorStore;

const std::string kTool = std::string(ILLM_BINARY_DIR) + "/tools/synthetic_checkpoint";

fs::path scratch() {
  static const fs::path dir = [] {
    const fs::path d = fs::temp_directory_path() / ("illm_synthetic_" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

fs::path generate(const std::string& name, const std::string& args) {
  const fs::path out = scratch() / name;
  const std::string cmd = "'" + kTool + "' -q -o '" + out.string() + "' " + args;
  const int status = std::system(cmd.c_str());
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << cmd;
  return out;
}

// bfloat16 of a float32 by exact round-to-nearest-even of the dropped 16 bits.
float round_to_bfloat16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  const uint32_t low = bits & 0xFFFFu;
  uint32_t high = bits >> 16;
  if (low > 0x8000u || (low == 0x8000u && (high & 1u))) ++high;
  const uint32_t back = high << 16;
  float out;
  std::memcpy(&out, &back, 4);
  return out;
}

TEST(SyntheticCheckpoint, ShardedGqaCheckpointIsValidAndRealistic) {
  const fs::path dir = generate("gqa", "--layers 3 --hidden 128 --intermediate 344 --heads 8 --kv-heads 2 --vocab 600 "
                                       "--shards 3 --outliers 3 --calib-windows 5 --calib-len 40");
  const auto cfg = illm::formats::load_llama_config(dir);
  EXPECT_EQ(cfg.num_hidden_layers, 3);
  EXPECT_EQ(cfg.num_key_value_heads, 2);
  EXPECT_FALSE(cfg.tie_word_embeddings);
  const TensorStore store = TensorStore::open(dir);
  ASSERT_NO_THROW(illm::formats::check_llama_tensors(cfg, store));
  EXPECT_EQ(store.files().size(), 3u);
  EXPECT_TRUE(fs::exists(dir / "model.safetensors.index.json"));
  EXPECT_EQ(store.info("model.layers.1.mlp.up_proj.weight").dtype, illm::formats::DType::BF16);

  // Outlier channels: a few norm gains far above the rest (0.3-1 vs 3-40).
  const std::vector<float> gain = store.read_f32("model.layers.0.input_layernorm.weight");
  const int big = static_cast<int>(std::count_if(gain.begin(), gain.end(), [](float g) { return g > 2.5f; }));
  EXPECT_EQ(big, 3);
  for (float g : gain) EXPECT_GT(g, 0.29f);
  // Projection weights ~N(0, 0.02²) with per-row spread 0.5-1.5x: std within 0.5x..1.5x of 0.02, mean ~0.
  const std::vector<float> q = store.read_f32("model.layers.2.self_attn.q_proj.weight");
  double sum = 0, sum2 = 0;
  for (float v : q) {
    sum += v;
    sum2 += static_cast<double>(v) * v;
  }
  const double mean = sum / q.size(), sd = std::sqrt(sum2 / q.size() - mean * mean);
  EXPECT_NEAR(mean, 0.0, 1e-3);
  EXPECT_GT(sd, 0.01);
  EXPECT_LT(sd, 0.03);

  // Calibration windows: 5 lines of 40 token ids in [0, vocab), starting with BOS.
  std::ifstream calib(dir / "calib.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(calib, line)) {
    const auto ids = nlohmann::json::parse(line).at("input_ids").get<std::vector<int>>();
    EXPECT_EQ(ids.size(), 40u);
    EXPECT_EQ(ids.front(), 1);
    for (int id : ids) EXPECT_TRUE(id >= 0 && id < 600);
    ++lines;
  }
  EXPECT_EQ(lines, 5);
}

TEST(SyntheticCheckpoint, ValuesDoNotDependOnShardingAndFormatsRoundCorrectly) {
  const std::string shape = "--layers 2 --hidden 64 --intermediate 96 --heads 4 --kv-heads 4 --vocab 300 --tied";
  const TensorStore one = TensorStore::open(generate("one", shape + " --shards 1"));
  const TensorStore four = TensorStore::open(generate("four", shape + " --shards 4"));
  const TensorStore f32 = TensorStore::open(generate("f32", shape + " --dtype f32"));
  const TensorStore f16 = TensorStore::open(generate("f16", shape + " --dtype f16"));
  EXPECT_FALSE(one.contains("lm_head.weight")) << "--tied";
  ASSERT_EQ(one.names(), four.names());
  size_t checked = 0;
  for (const std::string& name : one.names()) {
    EXPECT_EQ(one.read_f32(name), four.read_f32(name)) << name;
    const std::vector<float> exact = f32.read_f32(name), bf16 = one.read_f32(name), half = f16.read_f32(name);
    ASSERT_EQ(exact.size(), half.size());
    for (size_t i = 0; i < exact.size(); ++i, ++checked) {
      ASSERT_EQ(bf16[i], round_to_bfloat16(exact[i])) << name << "[" << i << "]";
      ASSERT_EQ(half[i], static_cast<float>(static_cast<_Float16>(exact[i]))) << name << "[" << i << "]";
    }
  }
  EXPECT_GT(checked, 30000u);
}

TEST(SyntheticCheckpoint, PresetsAndBadArguments) {
  // The LLaMA-3 preset's GQA and rope_scaling, cut to one small layer.
  const fs::path dir = generate("llama3", "--preset llama3-8b --layers 1 --hidden 256 --intermediate 512 --vocab 1000 "
                                          "--max-positions 1024 --calib-windows 1 --eval-windows 1");
  const auto cfg = illm::formats::load_llama_config(dir);
  EXPECT_EQ(cfg.num_attention_heads, 32);
  EXPECT_EQ(cfg.num_key_value_heads, 8);
  ASSERT_TRUE(cfg.rope_scaling.has_value());
  EXPECT_EQ(cfg.rope_scaling->type, "llama3");
  EXPECT_EQ(cfg.rope_theta, 500000);
  // The output directory must be new (or empty); shapes must be consistent.
  EXPECT_NE(std::system(("'" + kTool + "' -q -o '" + dir.string() + "' 2>/dev/null").c_str()), 0);
  EXPECT_NE(std::system(("'" + kTool + "' -q -o '" + (scratch() / "bad").string() + "' --hidden 60 --heads 8 2>/dev/null").c_str()), 0);
}

}  // namespace
