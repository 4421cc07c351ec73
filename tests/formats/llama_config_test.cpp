// HF config.json parsing, consistency checks, tensor-shape checks against the bundled checkpoints, and RoPE
// inverse frequencies (default, linear, llama3) against values computed by hand / in Python float64.
#include "formats/llama_config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "kernels/error.h"

namespace illm::formats {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kSource = ILLM_SOURCE_DIR;
const fs::path kStories = kSource / "models" / "stories260K";
const fs::path kTinyBible = kSource / "models" / "tinybible";

template <typename Fn>
void expect_error(Fn&& fn, const std::vector<std::string>& fragments) {
  try {
    fn();
    ADD_FAILURE() << "no illm::Error thrown";
  } catch (const Error& e) {
    const std::string message = e.what();
    for (const std::string& f : fragments) EXPECT_NE(message.find(f), std::string::npos) << message << "\nlacks: " << f;
  }
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() / ("illm_llama_config_test_" + std::to_string(::getpid()) + "_" +
                                         std::to_string(counter_++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

json stories_config_json() {
  std::ifstream in(kStories / "config.json");
  return json::parse(in);
}

LlamaConfig parse(const json& j) { return parse_llama_config(j.dump(), "test/config.json"); }

// A tensor to add to a copied store: name, shape and float32 values.
struct ExtraTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
};

// Copies `store` into dir/model.safetensors without the tensors in `drop` and with `extra` added (independent
// minimal writer).
void write_store_without(const TensorStore& store, const fs::path& dir, const std::vector<std::string>& drop,
                         const std::vector<ExtraTensor>& extra = {}) {
  json header = json::object();
  std::string data;
  for (const std::string& name : store.names()) {
    if (std::find(drop.begin(), drop.end(), name) != drop.end()) continue;
    const auto raw = store.raw(name);
    const uint64_t begin = data.size();
    data.append(reinterpret_cast<const char*>(raw.data()), raw.size());
    header[name] = {{"dtype", to_string(store.info(name).dtype)}, {"shape", store.info(name).shape},
                    {"data_offsets", {begin, data.size()}}};
  }
  for (const ExtraTensor& t : extra) {
    const uint64_t begin = data.size();
    data.append(reinterpret_cast<const char*>(t.values.data()), t.values.size() * sizeof(float));
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {begin, data.size()}}};
  }
  const std::string text = header.dump();
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((text.size() >> (8 * i)) & 0xFF);
  std::ofstream out(dir / "model.safetensors", std::ios::binary);
  out << bytes << text << data;
}

TEST(LlamaConfig, Stories260K) {
  const LlamaConfig cfg = load_llama_config(kStories);
  EXPECT_EQ(cfg.hidden_size, 64);
  EXPECT_EQ(cfg.intermediate_size, 172);
  EXPECT_EQ(cfg.num_hidden_layers, 5);
  EXPECT_EQ(cfg.num_attention_heads, 8);
  EXPECT_EQ(cfg.num_key_value_heads, 4);
  EXPECT_EQ(cfg.vocab_size, 512);
  EXPECT_EQ(cfg.max_position_embeddings, 512);
  EXPECT_EQ(cfg.rms_norm_eps, 1e-5);
  EXPECT_EQ(cfg.rope_theta, 10000.0);
  EXPECT_FALSE(cfg.rope_scaling.has_value());
  EXPECT_TRUE(cfg.tie_word_embeddings);
  EXPECT_EQ(cfg.bos_token_id, 1);
  EXPECT_EQ(cfg.eos_token_id, 2);
  EXPECT_EQ(cfg.torch_dtype, "float32");
  EXPECT_EQ(cfg.head_dim(), 8);
  check_llama_tensors(cfg, TensorStore::open(kStories));
}

TEST(LlamaConfig, TinyBibleUntiedBf16) {
  const LlamaConfig cfg = load_llama_config(kTinyBible / "config.json");
  EXPECT_EQ(cfg.hidden_size, 192);
  EXPECT_EQ(cfg.num_key_value_heads, 2);
  EXPECT_EQ(cfg.head_dim(), 32);
  EXPECT_FALSE(cfg.tie_word_embeddings);
  EXPECT_EQ(cfg.torch_dtype, "bfloat16");
  check_llama_tensors(cfg, TensorStore::open(kTinyBible));
}

TEST(LlamaConfig, DefaultsFollowHuggingFace) {
  json j = stories_config_json();
  j.erase("num_key_value_heads");
  j.erase("tie_word_embeddings");
  j.erase("rms_norm_eps");
  j["eos_token_id"] = {2, 7};
  const LlamaConfig cfg = parse(j);
  EXPECT_EQ(cfg.num_key_value_heads, 8);
  EXPECT_FALSE(cfg.tie_word_embeddings);
  EXPECT_EQ(cfg.rms_norm_eps, 1e-6);
  EXPECT_EQ(cfg.eos_token_id, 2);
}

TEST(LlamaConfigBad, HeadsNotDividingHidden) {
  json j = stories_config_json();
  j["num_attention_heads"] = 6;
  j["num_key_value_heads"] = 2;
  expect_error([&] { parse(j); }, {"test/config.json", "num_attention_heads", "6 heads do not divide hidden_size 64"});
}

TEST(LlamaConfigBad, KvHeadsNotDividingHeads) {
  json j = stories_config_json();
  j["num_key_value_heads"] = 3;
  expect_error([&] { parse(j); }, {"test/config.json", "num_key_value_heads", "3 KV heads do not divide"});
}

TEST(LlamaConfigBad, UnsupportedModelTypeAndArchitecture) {
  json j = stories_config_json();
  j["model_type"] = "gpt2";
  expect_error([&] { parse(j); }, {"test/config.json", "model_type", "gpt2", "unsupported"});
  j = stories_config_json();
  j["architectures"] = {"GPT2LMHeadModel"};
  expect_error([&] { parse(j); }, {"test/config.json", "architectures", "GPT2LMHeadModel"});
  j = stories_config_json();
  j["hidden_act"] = "gelu";
  expect_error([&] { parse(j); }, {"hidden_act", "gelu"});
  j = stories_config_json();
  j["attention_bias"] = true;
  expect_error([&] { parse(j); }, {"attention_bias", "not supported"});
}

TEST(LlamaConfigBad, MissingOrMalformedFields) {
  json j = stories_config_json();
  j.erase("hidden_size");
  expect_error([&] { parse(j); }, {"test/config.json", "hidden_size", "missing"});
  j = stories_config_json();
  j["vocab_size"] = -5;
  expect_error([&] { parse(j); }, {"vocab_size", "positive"});
  j = stories_config_json();
  j["head_dim"] = 16;
  expect_error([&] { parse(j); }, {"head_dim", "not supported"});
  expect_error([&] { parse_llama_config("{\"model_type\": ", "test/config.json"); },
               {"test/config.json", "not well-formed JSON"});
  expect_error([&] { load_llama_config(kSource / "no-such-dir"); }, {"no-such-dir", "model config does not exist"});
}

TEST(LlamaConfig, Llama3RopeScalingParsed) {
  json j = stories_config_json();
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  const LlamaConfig cfg = parse(j);
  ASSERT_TRUE(cfg.rope_scaling.has_value());
  EXPECT_EQ(cfg.rope_scaling->type, "llama3");
  EXPECT_EQ(cfg.rope_scaling->factor, 8.0);
  EXPECT_EQ(cfg.rope_scaling->low_freq_factor, 1.0);
  EXPECT_EQ(cfg.rope_scaling->high_freq_factor, 4.0);
  EXPECT_EQ(cfg.rope_scaling->original_max_position_embeddings, 8192);

  j["rope_scaling"].erase("original_max_position_embeddings");
  expect_error([&] { parse(j); }, {"rope_scaling.original_max_position_embeddings", "llama3"});
  j["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}};
  expect_error([&] { parse(j); }, {"rope_scaling", "yarn", "not supported"});
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};  // older "type" spelling
  EXPECT_EQ(parse(j).rope_scaling->type, "linear");
  j["rope_scaling"] = {{"rope_type", "default"}};
  EXPECT_FALSE(parse(j).rope_scaling.has_value());
}

TEST(LlamaTensors, MissingTensorNamesFileAndTensor) {
  TempDir dir;
  const TensorStore full = TensorStore::open(kStories);
  write_store_without(full, dir.path(), {"model.layers.3.mlp.gate_proj.weight"});
  const LlamaConfig cfg = load_llama_config(kStories);
  expect_error([&] { check_llama_tensors(cfg, TensorStore::open(dir.path())); },
               {dir.path().string(), "model.layers.3.mlp.gate_proj.weight", "missing", "[172, 64]"});
}

TEST(LlamaTensors, UntiedConfigNeedsLmHead) {
  json j = stories_config_json();
  j["tie_word_embeddings"] = false;
  expect_error([&] { check_llama_tensors(parse(j), TensorStore::open(kStories)); }, {"lm_head.weight", "missing"});
}

TEST(LlamaTensors, WrongShapeNamesExpectedAndFound) {
  json j = stories_config_json();
  j["intermediate_size"] = 170;
  expect_error([&] { check_llama_tensors(parse(j), TensorStore::open(kStories)); },
               {"model.safetensors", "model.layers.0.mlp.gate_proj.weight", "shape [172, 64]", "implies [170, 64]"});
  j = stories_config_json();
  j["num_key_value_heads"] = 8;  // k_proj would need 64 rows
  expect_error([&] { check_llama_tensors(parse(j), TensorStore::open(kStories)); },
               {"model.layers.0.self_attn.k_proj.weight", "shape [32, 64]", "implies [64, 64]"});
  j = stories_config_json();
  j["num_hidden_layers"] = 4;
  expect_error([&] { check_llama_tensors(parse(j), TensorStore::open(kStories)); },
               {"model.layers.4.input_layernorm.weight", "num_hidden_layers = 4"});
}

TEST(RopeFrequencies, DefaultAndLinear) {
  json j = stories_config_json();  // head_dim 8, theta 10000: theta^(-2i/8) = 1, 0.1, 0.01, 0.001
  std::vector<double> f = rope_inverse_frequencies(parse(j));
  ASSERT_EQ(f.size(), 4u);
  const double expected[4] = {1.0, 0.1, 0.01, 0.001};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(f[i], expected[i], 1e-17) << i;
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}};
  f = rope_inverse_frequencies(parse(j));
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(f[i], expected[i] / 4, 1e-17) << i;
  j["rope_scaling"] = {{"type", "dynamic"}, {"factor", 4.0}};  // unchanged within max_position_embeddings
  f = rope_inverse_frequencies(parse(j));
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(f[i], expected[i], 1e-17) << i;
}

TEST(RopeFrequencies, Llama3Scaling) {
  // head_dim 16 (hidden 64, 4 heads): theta_i = 10000^(-i/8), wavelengths 2*pi/theta_i = 6.3, 19.9, 62.8,
  // 198.7, 628.3, 1986.9, 6283.2, 19869.2. With original context 2048, low/high freq factors 1/4 and factor 8:
  // wavelengths < 512 are kept, > 2048 divided by 8, in between blended with
  // s = (2048/wavelen - 1) / 3: (1 - s) * theta / 8 + s * theta. Values computed in Python float64.
  json j = stories_config_json();
  j["num_attention_heads"] = 4;
  j["num_key_value_heads"] = 4;
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 2048}};
  const std::vector<double> f = rope_inverse_frequencies(parse(j));
  const std::vector<double> expected = {1.0,      0.31622776601683794, 0.1,      0.03162277660168379,
                                        0.007840188600689215, 0.0004236392500408582, 0.000125,
                                        3.952847075210474e-05};
  ASSERT_EQ(f.size(), expected.size());
  for (size_t i = 0; i < f.size(); ++i) EXPECT_NEAR(f[i], expected[i], 1e-15 * expected[i]) << i;
}


// ---- issue #8: nothing in a checkpoint is silently ignored, and nothing in a config wraps around ----

TEST(LlamaTensors, UnusedTensorsAreRefusedByName) {
  const TensorStore full = TensorStore::open(kStories);
  const LlamaConfig cfg = load_llama_config(kStories);
  const std::vector<float> row(64, 0.5f);
  struct Case {
    ExtraTensor tensor;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {{"model.layers.0.self_attn.q_proj.bias", {64}, row}, "a bias"},
      {{"model.layers.5.input_layernorm.weight", {64}, row}, "layer 5 is beyond num_hidden_layers = 5"},
      {{"model.layers.7.mlp.up_proj.weight", {1, 64}, row}, "layer 7 is beyond"},
      {{"transformer.wte.weight", {1, 64}, row}, "not used by LlamaForCausalLM"},
  };
  for (const Case& c : cases) {
    TempDir dir;
    write_store_without(full, dir.path(), {}, {c.tensor});
    expect_error([&] { check_llama_tensors(cfg, TensorStore::open(dir.path())); },
                 {dir.path().string(), c.tensor.name, c.reason, "refusing to ignore it"});
  }
}

TEST(LlamaTensors, TiedHeadMustBeACopyOfTheEmbedding) {
  const TensorStore full = TensorStore::open(kStories);
  const LlamaConfig cfg = load_llama_config(kStories);  // tie_word_embeddings: true
  std::vector<float> embed = full.read_f32("model.embed_tokens.weight");
  {
    TempDir dir;  // an exact copy is what HF uses anyway: accepted
    write_store_without(full, dir.path(), {}, {{"lm_head.weight", {512, 64}, embed}});
    EXPECT_NO_THROW(check_llama_tensors(cfg, TensorStore::open(dir.path())));
  }
  embed[100] += 1.0f;
  TempDir dir;
  write_store_without(full, dir.path(), {}, {{"lm_head.weight", {512, 64}, embed}});
  expect_error([&] { check_llama_tensors(cfg, TensorStore::open(dir.path())); },
               {"lm_head.weight", "differs from model.embed_tokens.weight", "tie_word_embeddings = true"});
}

TEST(LlamaTensors, RotaryBuffersOfOldConversionsAreAccepted) {
  const TensorStore full = TensorStore::open(kStories);
  TempDir dir;
  write_store_without(full, dir.path(), {}, {{"model.layers.0.self_attn.rotary_emb.inv_freq", {4}, {1, 0.1f, 0.01f, 0.001f}}});
  EXPECT_NO_THROW(check_llama_tensors(load_llama_config(kStories), TensorStore::open(dir.path())));
}

TEST(LlamaWeights, NonFiniteAndAbsurdValuesNameTheTensor) {
  TensorInfo info;
  info.name = "model.embed_tokens.weight";
  info.file = "m/model.safetensors";
  std::vector<float> values(10, 0.25f);
  EXPECT_NO_THROW(check_weight_values(info, values));
  values[3] = 65504.0f;  // float16's largest value: still a weight
  EXPECT_NO_THROW(check_weight_values(info, values));
  values[5] = std::nanf("");
  expect_error([&] { check_weight_values(info, values); },
               {"m/model.safetensors", "model.embed_tokens.weight", "element 5 is NaN"});
  values[5] = -INFINITY;
  expect_error([&] { check_weight_values(info, values); }, {"element 5 is -inf", "not a finite number"});
  values[5] = 3e38f;
  expect_error([&] { check_weight_values(info, values); }, {"element 5 is 3e+38", "beyond the ±65504"});
  const std::vector<double> wide = {0.0, -1e300};
  expect_error([&] { check_weight_values(info, std::span<const double>(wide)); }, {"element 1 is -1e+300"});
}

TEST(LlamaConfigBad, IdsAndSizesDoNotWrapAround) {
  json j = stories_config_json();
  j["bos_token_id"] = -1;
  expect_error([&] { parse(j); }, {"bos_token_id", "negative"});
  j = stories_config_json();
  j["eos_token_id"] = 18446744073709551615ull;
  expect_error([&] { parse(j); }, {"eos_token_id", "outside the vocabulary"});
  j = stories_config_json();
  j["hidden_size"] = 18446744073709551615ull;  // read as int64 this was -1: "must be positive, got -1"
  expect_error([&] { parse(j); }, {"hidden_size", "18446744073709551615", "too large"});
  j = stories_config_json();
  j["vocab_size"] = 4294967808ll;  // 2^32 + 512: would wrap to 512 as int32
  expect_error([&] { parse(j); }, {"vocab_size", "too large"});
}

TEST(LlamaConfigBad, RepeatedKeysAndDirectories) {
  const std::string text = R"({"model_type": "llama", "hidden_size": 64, "hidden_size": 128})";
  expect_error([&] { parse_llama_config(text, "test/config.json"); },
               {"test/config.json", "key \"hidden_size\" appears twice"});
  TempDir dir;
  fs::create_directories(dir.path() / "config.json");
  expect_error([&] { load_llama_config(dir.path()); }, {"config.json", "model config is a directory"});
}

}  // namespace
}  // namespace illm::formats
