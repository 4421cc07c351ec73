// Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<name>/ (committed; rerun after a format
// change): `illm_fuzz_seeds SOURCE_DIR`. Seeds are small valid inputs of each parser, plus a few near misses; the
// fuzzer mutates from there. Built with the fuzz targets (ILLM_FUZZ=ON), not a test.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/illm_file.h"
#include "kernels/executor.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path g_corpus;

void put(const std::string& target, const std::string& name, const std::string& bytes) {
  const fs::path dir = g_corpus / target;
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary | std::ios::trunc) << bytes;
}

std::string read(const fs::path& p, size_t limit = std::string::npos) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  std::string text = s.str();
  return text.substr(0, limit);
}

std::string safetensors(const json& header, const std::string& data) {
  const std::string text = header.dump();
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((text.size() >> (8 * i)) & 0xFF);
  return bytes + text + data;
}

void safetensors_seeds() {
  json small;
  small["model.norm.weight"] = {{"dtype", "F32"}, {"shape", {2, 2}}, {"data_offsets", {0, 16}}};
  put("safetensors", "f32.safetensors", safetensors(small, std::string(16, '\x01')));
  json mixed;
  mixed["__metadata__"] = {{"format", "pt"}};
  mixed["a"] = {{"dtype", "F16"}, {"shape", {3}}, {"data_offsets", {0, 6}}};
  mixed["b"] = {{"dtype", "BF16"}, {"shape", {1, 2}}, {"data_offsets", {6, 10}}};
  mixed["c"] = {{"dtype", "I8"}, {"shape", {2}}, {"data_offsets", {10, 12}}};
  mixed["d"] = {{"dtype", "F64"}, {"shape", {}}, {"data_offsets", {12, 20}}};
  mixed["e"] = {{"dtype", "U8"}, {"shape", {0, 5}}, {"data_offsets", {20, 20}}};
  put("safetensors", "mixed.safetensors", safetensors(mixed, std::string(20, '\x3c')));
  json layers;  // LLaMA names, tiny shapes
  uint64_t offset = 0;
  for (const char* name : {"model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
                           "model.layers.0.mlp.down_proj.weight", "model.norm.weight"}) {
    layers[name] = {{"dtype", "BF16"}, {"shape", {2, 3}}, {"data_offsets", {offset, offset + 12}}};
    offset += 12;
  }
  put("safetensors", "llama.safetensors", safetensors(layers, std::string(offset, '\x40')));
  put("safetensors", "empty.safetensors", safetensors(json::object(), ""));
}

void index_seeds() {
  json map;
  map["model.embed_tokens.weight"] = "model-00001-of-00002.safetensors";
  map["model.layers.0.self_attn.q_proj.weight"] = "model-00001-of-00002.safetensors";
  map["model.norm.weight"] = "model-00002-of-00002.safetensors";
  map["lm_head.weight"] = "shards/model-00002-of-00002.safetensors";
  put("safetensors_index", "index.json", json{{"metadata", {{"total_size", 1234}}}, {"weight_map", map}}.dump(2));
  put("safetensors_index", "escape.json", R"({"weight_map": {"w": "../x.safetensors", "v": "/abs.safetensors"}})");
}

void config_seeds(const fs::path& source) {
  put("llama_config", "stories260K.json", read(source / "models/stories260K/config.json"));
  put("llama_config", "tinybible.json", read(source / "models/tinybible/config.json"));
  json llama3 = json::parse(read(source / "models/stories260K/config.json"));
  llama3["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                            {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  llama3["eos_token_id"] = {2, 3};
  put("llama_config", "llama3.json", llama3.dump(1));
}

void recipe_seeds(const fs::path& source) {
  for (const char* name : {"w4a4.json", "w8a8.json", "quick-w4a4.json"})
    put("recipe", name, read(source / "configs" / name));
  put("recipe", "all-keys.json",
      R"({"method": "smoothquant", "w_bits": 6, "a_bits": 6, "w_granularity": "per_group", "group_size": 32,)"
      R"( "epochs": 3, "lr_smooth": 0.001, "lr_lwc": 0.01, "samples": 16, "seq_len": 64, "seed": 7, "sq_alpha": 0.8,)"
      R"( "clip_c": "search", "lwc_init": 5.0, "smooth_init": "identity", "tie_rope_pairs": false,)"
      R"( "swiglu_in_bits": 16, "fake_quant_points": "executor", "description": "seed"})");
}

void tokenizer_seeds(const fs::path& source) {
  put("tokenizer", "tinybible.model", read(source / "models/tinybible/tokenizer.model"));
}

void dataset_seeds(const fs::path& source) {
  std::ifstream eval(source / "models/stories260K/eval.jsonl");
  std::string line, two;
  for (int i = 0; i < 2 && std::getline(eval, line); ++i) two += line + "\n";
  put("dataset_jsonl", "whole-lines.jsonl", std::string(1, '\x00') + two);        // first byte < 128: whole lines
  put("dataset_jsonl", "windows-of-8.jsonl", std::string(1, '\x86') + "{\"input_ids\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}\n\n"
                                             "{\"input_ids\": [511, 0]}\n");      // 0x86: windows of 8
  put("dataset_text", "ruth.txt", read(source / "models/tinybible/test.txt", 2000));
  put("dataset_text", "unicode.txt", "Caf\xC3\xA9 \xE2\x98\x95 \xF0\x9F\x98\x80\n\tTabs  and   spaces\r\n<0x0A> <s> </s>");
}

// A tiny model the executor accepts (1 layer, hidden 8, vocab 16), with golden vectors from the executor.
illm::QuantizedModel tiny_model() {
  using namespace illm;
  QuantizedModel m;
  m.shape = ModelShape{.hidden = 8, .intermediate = 16, .n_layers = 1, .n_heads = 2, .n_kv_heads = 1,
                       .head_dim = 4, .vocab = 16, .max_positions = 8, .bos_id = 1, .eos_id = 2};
  m.norm_eps = Dyadic{21475, 31};
  uint32_t state = 12345;
  auto next = [&](uint32_t modulus) {
    state = state * 1664525u + 1013904223u;
    return static_cast<int64_t>((state >> 8) % modulus);
  };
  for (int i = 0; i < 16 * 8; ++i) m.embed_codes.push_back(static_cast<int16_t>(next(60001) - 30000));
  for (int i = 0; i < 16; ++i) m.embed_scales.push_back(Dyadic{30000 + next(1000), 26});
  auto linear = [&](int32_t out, int32_t in, int32_t bits) {
    QuantizedLinear l;
    l.out_features = out;
    l.in_features = in;
    l.bits = bits;
    for (int32_t i = 0; i < out * in; ++i) l.codes.push_back(static_cast<uint8_t>(next(1u << bits)));
    for (int32_t r = 0; r < out; ++r) {
      l.zero_points.push_back(static_cast<int32_t>(next(1u << bits)));
      l.scales.push_back(Dyadic{40000 + next(20000), 22});
    }
    return l;
  };
  auto channels = [&](int32_t n, int64_t low, int64_t span, int32_t exponent) {
    ChannelVector v;
    v.exponent = exponent;
    for (int32_t i = 0; i < n; ++i) v.mantissa.push_back(low + next(static_cast<uint32_t>(span)));
    return v;
  };
  QuantizedLayer layer;
  layer.attn_norm = channels(8, 8000, 9000, 14);
  layer.q_proj = linear(8, 8, 4);
  layer.k_proj = linear(4, 8, 4);
  layer.v_proj = linear(4, 8, 4);
  layer.o_proj = linear(8, 8, 4);
  layer.ffn_norm = channels(8, 8000, 9000, 14);
  layer.gate_proj = linear(16, 8, 4);
  layer.up_proj = linear(16, 8, 4);
  layer.down_proj = linear(8, 16, 4);
  layer.swiglu_inv_alpha = channels(16, 16000, 1000, 14);
  layer.softmax_clip = Dyadic{15, 0};
  m.layers.push_back(layer);
  m.final_norm = channels(8, 8000, 9000, 14);
  m.lm_head = linear(16, 8, 8);
  m.rope_frac_bits = 14;
  for (int p = 0; p < 8; ++p)
    for (int i = 0; i < 2; ++i) {
      m.rope_cos.push_back(static_cast<int16_t>(16384 - 1000 * p * (i + 1) % 30000));
      m.rope_sin.push_back(static_cast<int16_t>(700 * p * (i + 1) % 16000));
    }
  return m;
}

void illm_seeds() {
  const illm::QuantizedModel model = tiny_model();
  illm::formats::IllmMetadata meta;
  meta.tool_version = "seed";
  meta.source_name = "tiny";
  meta.source_sha256 = std::string(64, '0');
  meta.config_json = R"({"hidden_size": 8})";
  meta.recipe_json = R"({"method": "rtn"})";
  meta.calibration_json = "{}";
  illm::Executor executor(model);
  illm::formats::GoldenVector golden;
  golden.input_ids = {1, 5, 9};
  const illm::IntegerLogits logits = executor.forward(golden.input_ids);
  golden.logits = logits.values;
  golden.logit_scales = logits.scales;
  meta.golden.push_back(golden);
  const fs::path file = fs::temp_directory_path() / "illm_seed_tiny.illm";
  illm::formats::write_illm(file, model, meta);
  (void)illm::formats::read_illm(file);  // the seed must be one the reader accepts in full
  const std::string bytes = read(file);
  fs::remove(file);
  put("illm", "tiny.illm", bytes);
  put("illm_hdf5", "tiny.payload", bytes.substr(illm::formats::kIllmUserBlockSize));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: illm_fuzz_seeds SOURCE_DIR\n");
    return 2;
  }
  const fs::path source = argv[1];
  g_corpus = source / "tests" / "fuzz" / "corpus";
  safetensors_seeds();
  index_seeds();
  config_seeds(source);
  recipe_seeds(source);
  tokenizer_seeds(source);
  dataset_seeds(source);
  illm_seeds();
  std::printf("seed corpora written to %s\n", g_corpus.c_str());
  return 0;
}
