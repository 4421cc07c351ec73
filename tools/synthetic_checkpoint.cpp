// synthetic_checkpoint: writes a Hugging Face LLaMA checkpoint of any shape with random weights, for tests
// (tiny shapes) and for the scale benchmarks (LLaMA-2-7B / 13B / LLaMA-3-8B shapes, docs/scale.md):
//   config.json, model.safetensors or model-0000i-of-0000n.safetensors + model.safetensors.index.json,
//   calib.jsonl and eval.jsonl (random token ids).
// Weights have realistic scales (projections ~N(0, 0.02²) with per-row spread, norm gains ~0.3–1) and a few
// outlier channels (norm gains and embedding columns 10–40x larger), the pattern that makes activation
// quantization hard in real LLaMA checkpoints. Every tensor is drawn from its own seed (the run's seed and the
// tensor name), in fixed 64 Ki-element chunks, so the values do not depend on the sharding or the thread count.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

struct Shape {
  int64_t hidden = 64, intermediate = 172, layers = 2, heads = 8, kv_heads = 4, vocab = 512, max_positions = 512;
  double rope_theta = 10000;
  bool tied = false;
  bool llama3_rope_scaling = false;
};

// The shapes of published checkpoints (config.json of the Hugging Face releases).
bool apply_preset(const std::string& name, Shape* s) {
  if (name == "tiny") {
    *s = Shape{};
  } else if (name == "7b") {
    *s = Shape{4096, 11008, 32, 32, 32, 32000, 4096, 10000, false, false};
  } else if (name == "13b") {
    *s = Shape{5120, 13824, 40, 40, 40, 32000, 4096, 10000, false, false};
  } else if (name == "llama3-8b") {
    *s = Shape{4096, 14336, 32, 32, 8, 128256, 8192, 500000, false, true};
  } else {
    return false;
  }
  return true;
}

// ---- Random numbers: splitmix64 seeding, xoshiro256** stream -------------------------------------------------

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t hash_name(uint64_t seed, const std::string& name) {
  uint64_t h = seed ^ 0xCBF29CE484222325ull;
  for (unsigned char c : name) h = (h ^ c) * 0x100000001B3ull;
  return splitmix64(h);
}

class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (auto& w : s_) w = splitmix64(seed);
  }
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // Approximately standard normal: the sum of four 16-bit uniforms (Irwin-Hall), centred and scaled to unit
  // variance. One 64-bit draw per value keeps 7B checkpoints fast to write.
  float normal() {
    const uint64_t r = next();
    const double sum = static_cast<double>((r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) + (r >> 48));
    return static_cast<float>((sum / 65536.0 - 2.0) * 1.7320508075688772);  // var of U(0,1)·4 = 1/3
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

// ---- Float encodings -----------------------------------------------------------------------------------------

enum class DType { BF16, F16, F32 };

uint16_t to_bfloat16(float f) {  // round to nearest even (the values are finite)
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

uint16_t to_half(float f) {  // IEEE binary16, round to nearest even, subnormals kept, overflow to inf
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs = bits & 0x7FFFFFFFu;
  if (abs >= 0x7F800000u) return static_cast<uint16_t>(sign | 0x7C00u | (abs > 0x7F800000u ? 0x200u : 0));
  const int exponent = static_cast<int>(abs >> 23) - 127;
  if (exponent > 15) return static_cast<uint16_t>(sign | 0x7C00u);
  uint32_t mantissa = (abs & 0x7FFFFFu) | 0x800000u;
  int shift;  // bits dropped from the 24-bit significand
  uint32_t half_exponent;
  if (exponent >= -14) {
    shift = 13;
    half_exponent = static_cast<uint32_t>(exponent + 15);
  } else {
    if (exponent < -25) return sign;  // below half the smallest subnormal: rounds to zero
    shift = 13 + (-14 - exponent);
    half_exponent = 0;
  }
  const uint32_t dropped = mantissa & ((1u << shift) - 1);
  const uint32_t halfway = 1u << (shift - 1);
  mantissa >>= shift;
  if (dropped > halfway || (dropped == halfway && (mantissa & 1u))) ++mantissa;
  // A carry out of the significand moves into the exponent field by itself (also subnormal → normal).
  const uint32_t value = half_exponent == 0 ? mantissa : ((half_exponent << 10) + (mantissa - 0x400u));
  return static_cast<uint16_t>(sign | std::min<uint32_t>(value, 0x7C00u));
}

size_t dtype_bytes(DType d) { return d == DType::F32 ? 4 : 2; }
const char* dtype_name(DType d) { return d == DType::BF16 ? "BF16" : d == DType::F16 ? "F16" : "F32"; }

// ---- Tensors -------------------------------------------------------------------------------------------------

enum class Kind { Embedding, Projection, OutputProjection, Norm, FinalNorm };

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  Kind kind;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

std::vector<TensorSpec> tensor_specs(const Shape& s) {
  const int64_t d = s.hidden / s.heads;
  std::vector<TensorSpec> specs{{"model.embed_tokens.weight", {s.vocab, s.hidden}, Kind::Embedding}};
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    specs.push_back({p + "input_layernorm.weight", {s.hidden}, Kind::Norm});
    specs.push_back({p + "self_attn.q_proj.weight", {s.heads * d, s.hidden}, Kind::Projection});
    specs.push_back({p + "self_attn.k_proj.weight", {s.kv_heads * d, s.hidden}, Kind::Projection});
    specs.push_back({p + "self_attn.v_proj.weight", {s.kv_heads * d, s.hidden}, Kind::Projection});
    specs.push_back({p + "self_attn.o_proj.weight", {s.hidden, s.heads * d}, Kind::OutputProjection});
    specs.push_back({p + "post_attention_layernorm.weight", {s.hidden}, Kind::Norm});
    specs.push_back({p + "mlp.gate_proj.weight", {s.intermediate, s.hidden}, Kind::Projection});
    specs.push_back({p + "mlp.up_proj.weight", {s.intermediate, s.hidden}, Kind::Projection});
    specs.push_back({p + "mlp.down_proj.weight", {s.hidden, s.intermediate}, Kind::OutputProjection});
  }
  specs.push_back({"model.norm.weight", {s.hidden}, Kind::FinalNorm});
  if (!s.tied) specs.push_back({"lm_head.weight", {s.vocab, s.hidden}, Kind::Projection});
  return specs;
}

// Outlier channels of the residual stream: the same few hidden channels in every layer (as in real models).
std::vector<int64_t> outlier_channels(const Shape& s, uint64_t seed, int count) {
  Rng rng(hash_name(seed, "outlier channels"));
  std::vector<int64_t> channels;
  while (static_cast<int>(channels.size()) < std::min<int64_t>(count, s.hidden)) {
    const auto c = static_cast<int64_t>(rng.next() % static_cast<uint64_t>(s.hidden));
    if (std::find(channels.begin(), channels.end(), c) == channels.end()) channels.push_back(c);
  }
  return channels;
}

constexpr int64_t kChunk = 1 << 16;  // elements per independently seeded chunk

// Fills values [begin, end) of one tensor (row-major) in float32; `begin` is a multiple of kChunk.
void generate_values(const TensorSpec& t, const Shape& s, uint64_t seed, const std::vector<int64_t>& outliers,
                     int64_t begin, int64_t end, float* out) {
  const int64_t cols = t.shape.size() == 2 ? t.shape[1] : t.shape[0];
  const uint64_t tensor_seed = hash_name(seed, t.name);
  const double out_scale = 0.02 / std::sqrt(2.0 * static_cast<double>(s.layers));
  int64_t current_row = -1;
  float row_factor = 1;
  for (int64_t chunk = begin / kChunk; chunk * kChunk < end; ++chunk) {
    Rng rng(tensor_seed ^ (static_cast<uint64_t>(chunk) * 0xD1B54A32D192ED03ull));
    const int64_t lo = std::max(begin, chunk * kChunk), hi = std::min(end, chunk * kChunk + kChunk);
    for (int64_t i = lo; i < hi; ++i) {
      const int64_t row = i / cols, col = i % cols;
      auto is_outlier = [&] { return std::find(outliers.begin(), outliers.end(), col) != outliers.end(); };
      float v = 0;
      switch (t.kind) {
        case Kind::Embedding: v = rng.normal() * 0.02f * (is_outlier() ? 20.0f : 1.0f); break;
        case Kind::Projection:
          // Per-row spread 0.5-1.5x (rows of a real projection differ in norm).
          if (row != current_row) {
            uint64_t h = tensor_seed ^ static_cast<uint64_t>(row);
            row_factor = static_cast<float>(0.5 + static_cast<double>(splitmix64(h) >> 11) * 0x1.0p-53);
            current_row = row;
          }
          v = rng.normal() * 0.02f * row_factor;
          break;
        case Kind::OutputProjection: v = rng.normal() * static_cast<float>(out_scale); break;
        case Kind::Norm: {  // gains 0.3-1; outlier channels 10-40x that
          const double u = rng.uniform();
          const double base = 0.3 + 0.7 * u;
          v = static_cast<float>(is_outlier() ? base * (10.0 + 30.0 * std::fmod(u * 7919.0, 1.0)) : base);
          break;
        }
        case Kind::FinalNorm: v = 1.0f + 0.5f * static_cast<float>(rng.uniform()); break;
      }
      out[i - begin] = v;
    }
  }
}

void encode(const float* in, int64_t n, DType dtype, uint8_t* out) {
  for (int64_t i = 0; i < n; ++i) {
    if (dtype == DType::F32) {
      std::memcpy(out + 4 * i, in + i, 4);
    } else {
      const uint16_t h = dtype == DType::BF16 ? to_bfloat16(in[i]) : to_half(in[i]);
      out[2 * i] = static_cast<uint8_t>(h & 0xFF);
      out[2 * i + 1] = static_cast<uint8_t>(h >> 8);
    }
  }
}

[[noreturn]] void fail(const std::string& message) {
  std::fprintf(stderr, "synthetic_checkpoint: %s\n", message.c_str());
  std::exit(1);
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out.flush()) fail(path.string() + ": write failed");
}

// One safetensors shard: 8-byte header length, JSON header (space-padded to 8 bytes), data in spec order.
void write_shard(const fs::path& path, const std::vector<const TensorSpec*>& tensors, const Shape& s, uint64_t seed,
                 const std::vector<int64_t>& outliers, DType dtype, bool progress) {
  Json header = Json::object();
  uint64_t offset = 0;
  for (const TensorSpec* t : tensors) {
    const uint64_t bytes = static_cast<uint64_t>(t->numel()) * dtype_bytes(dtype);
    header[t->name] = {{"dtype", dtype_name(dtype)}, {"shape", t->shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  header["__metadata__"] = {{"format", "pt"}, {"generator", "illm synthetic_checkpoint"}};
  std::string text = header.dump();
  text.resize((text.size() + 7) / 8 * 8, ' ');
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) fail(path.string() + ": cannot create");
  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));
  bool ok = std::fwrite(length, 1, 8, f) == 8 && std::fwrite(text.data(), 1, text.size(), f) == text.size();
  constexpr int64_t kBlock = 64 * kChunk;  // elements generated (in parallel) per write
  std::vector<float> values(kBlock);
  std::vector<uint8_t> bytes(kBlock * dtype_bytes(dtype));
  for (const TensorSpec* t : tensors) {
    const int64_t n = t->numel();
    for (int64_t begin = 0; begin < n && ok; begin += kBlock) {
      const int64_t count = std::min(kBlock, n - begin);
#pragma omp parallel for schedule(static)
      for (int64_t c = 0; c < (count + kChunk - 1) / kChunk; ++c) {
        const int64_t lo = begin + c * kChunk, hi = std::min(begin + count, lo + kChunk);
        generate_values(*t, s, seed, outliers, lo, hi, values.data() + (lo - begin));
        encode(values.data() + (lo - begin), hi - lo, dtype, bytes.data() + (lo - begin) * dtype_bytes(dtype));
      }
      const size_t size = static_cast<size_t>(count) * dtype_bytes(dtype);
      ok = std::fwrite(bytes.data(), 1, size, f) == size;
    }
    if (progress) std::fprintf(stderr, "  %s %s\n", path.filename().c_str(), t->name.c_str());
  }
  ok = std::fclose(f) == 0 && ok;
  if (!ok) fail(path.string() + ": write failed (disk full?)");
}

Json config_json(const Shape& s, DType dtype) {
  Json c;
  c["architectures"] = {"LlamaForCausalLM"};
  c["model_type"] = "llama";
  c["hidden_size"] = s.hidden;
  c["intermediate_size"] = s.intermediate;
  c["num_hidden_layers"] = s.layers;
  c["num_attention_heads"] = s.heads;
  c["num_key_value_heads"] = s.kv_heads;
  c["vocab_size"] = s.vocab;
  c["max_position_embeddings"] = s.max_positions;
  c["rms_norm_eps"] = 1e-5;
  c["rope_theta"] = s.rope_theta;
  if (s.llama3_rope_scaling)
    c["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  c["hidden_act"] = "silu";
  c["tie_word_embeddings"] = s.tied;
  c["bos_token_id"] = 1;
  c["eos_token_id"] = 2;
  c["torch_dtype"] = dtype == DType::BF16 ? "bfloat16" : dtype == DType::F16 ? "float16" : "float32";
  c["attention_bias"] = false;
  return c;
}

// `windows` lines of `length` random ids in [3, vocab), each starting with BOS (1).
void write_token_file(const fs::path& path, int64_t windows, int64_t length, int64_t vocab, uint64_t seed) {
  Rng rng(seed);
  std::string text;
  for (int64_t w = 0; w < windows; ++w) {
    Json ids = Json::array();
    ids.push_back(1);
    for (int64_t t = 1; t < length; ++t) ids.push_back(3 + static_cast<int64_t>(rng.next() % (vocab - 3)));
    text += Json{{"input_ids", ids}}.dump() + "\n";
  }
  write_text(path, text);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Write a synthetic Hugging Face LLaMA checkpoint (random weights of any shape) with calibration "
               "and evaluation token files.",
               "synthetic_checkpoint"};
  std::string out, preset = "tiny", dtype_text = "bf16";
  Shape s;
  int64_t layers = 0, hidden = 0, intermediate = 0, heads = 0, kv_heads = 0, vocab = 0, max_positions = 0;
  bool tied = false, untied = false, quiet = false;
  int shards = 1, outliers = 4;
  uint64_t seed = 1;
  double rope_theta = 0;
  std::string rope_scaling;
  int64_t calib_windows = 16, eval_windows = 8, calib_len = 0, eval_len = 0;
  app.add_option("-o,--out", out, "Output directory (created; must not exist or be empty)")->required();
  app.add_option("--preset", preset, "Shape preset: tiny, 7b (LLaMA-2-7B), 13b (LLaMA-2-13B), llama3-8b (GQA, "
                                     "vocab 128256, llama3 rope_scaling)")
      ->capture_default_str();
  app.add_option("--layers", layers, "num_hidden_layers (overrides the preset; e.g. a 2-layer cut of 7B)");
  app.add_option("--hidden", hidden, "hidden_size");
  app.add_option("--intermediate", intermediate, "intermediate_size");
  app.add_option("--heads", heads, "num_attention_heads");
  app.add_option("--kv-heads", kv_heads, "num_key_value_heads (GQA when below --heads)");
  app.add_option("--vocab", vocab, "vocab_size");
  app.add_option("--max-positions", max_positions, "max_position_embeddings");
  app.add_option("--rope-theta", rope_theta, "rope_theta");
  app.add_option("--rope-scaling", rope_scaling, "none or llama3")->check(CLI::IsMember({"none", "llama3"}));
  app.add_flag("--tied", tied, "Tie the LM head to the embedding (no lm_head.weight)");
  app.add_flag("--untied", untied, "Separate lm_head.weight (the presets' default)");
  app.add_option("--dtype", dtype_text, "bf16, f16 or f32")->check(CLI::IsMember({"bf16", "f16", "f32"}))
      ->capture_default_str();
  app.add_option("--shards", shards, "Number of safetensors shards (> 1 writes model.safetensors.index.json)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--outliers", outliers, "Outlier channels of the residual stream")->capture_default_str();
  app.add_option("--seed", seed, "Random seed")->capture_default_str();
  app.add_option("--calib-windows", calib_windows, "Lines of calib.jsonl")->capture_default_str();
  app.add_option("--calib-len", calib_len, "Tokens per calib.jsonl line (default: min(512, max positions))");
  app.add_option("--eval-windows", eval_windows, "Lines of eval.jsonl")->capture_default_str();
  app.add_option("--eval-len", eval_len, "Tokens per eval.jsonl line (default: min(512, max positions))");
  app.add_flag("-q,--quiet", quiet, "No progress on stderr");
  CLI11_PARSE(app, argc, argv);

  if (!apply_preset(preset, &s)) fail("unknown --preset " + preset);
  const std::initializer_list<std::pair<int64_t, int64_t*>> overrides = {
      {layers, &s.layers}, {hidden, &s.hidden}, {intermediate, &s.intermediate}, {heads, &s.heads},
      {kv_heads, &s.kv_heads}, {vocab, &s.vocab}, {max_positions, &s.max_positions}};
  for (auto [value, field] : overrides)
    if (value > 0) *field = value;
  if (rope_theta > 0) s.rope_theta = rope_theta;
  if (!rope_scaling.empty()) s.llama3_rope_scaling = rope_scaling == "llama3";
  if (tied && untied) fail("--tied and --untied exclude each other");
  if (tied) s.tied = true;
  if (untied) s.tied = false;
  if (s.hidden % s.heads != 0 || s.heads % s.kv_heads != 0 || (s.hidden / s.heads) % 2 != 0)
    fail("heads must divide hidden (even head_dim) and kv-heads must divide heads");
  if (s.vocab < 4) fail("--vocab must be at least 4");
  const DType dtype = dtype_text == "bf16" ? DType::BF16 : dtype_text == "f16" ? DType::F16 : DType::F32;
  if (calib_len <= 0) calib_len = std::min<int64_t>(512, s.max_positions);
  if (eval_len <= 0) eval_len = std::min<int64_t>(512, s.max_positions);

  const fs::path dir = out;
  std::error_code ec;
  if (fs::exists(dir) && !fs::is_empty(dir, ec)) fail(dir.string() + " exists and is not empty");
  fs::create_directories(dir, ec);
  if (ec) fail(dir.string() + ": cannot create: " + ec.message());

  const std::vector<TensorSpec> specs = tensor_specs(s);
  const std::vector<int64_t> channels = outlier_channels(s, seed, outliers);
  uint64_t total = 0;
  for (const auto& t : specs) total += static_cast<uint64_t>(t.numel()) * dtype_bytes(dtype);
  if (shards > static_cast<int>(specs.size())) fail("more shards than tensors");

  // Consecutive tensors fill the shards to about total/shards bytes each (HF's max_shard_size rule).
  std::vector<std::vector<const TensorSpec*>> shard_tensors(shards);
  uint64_t filled = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    const uint64_t bytes = static_cast<uint64_t>(specs[i].numel()) * dtype_bytes(dtype);
    const auto remaining_tensors = specs.size() - i;
    size_t shard = std::min<size_t>(shards - 1, static_cast<size_t>(filled * shards / std::max<uint64_t>(total, 1)));
    // Keep every shard non-empty.
    while (shard + 1 < static_cast<size_t>(shards) && shards - 1 - shard >= remaining_tensors) ++shard;
    shard_tensors[shard].push_back(&specs[i]);
    filled += bytes;
  }
  if (!quiet)
    std::fprintf(stderr, "synthetic_checkpoint: %s, %lld layers, hidden %lld, %s, %.2f GB in %d shard(s)\n",
                 preset.c_str(), static_cast<long long>(s.layers), static_cast<long long>(s.hidden),
                 dtype_name(dtype), static_cast<double>(total) / 1e9, shards);

  write_text(dir / "config.json", config_json(s, dtype).dump(2) + "\n");
  Json weight_map = Json::object();
  for (int k = 0; k < shards; ++k) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", k + 1, shards);
    const fs::path file = shards == 1 ? dir / "model.safetensors" : dir / name;
    write_shard(file, shard_tensors[k], s, seed, channels, dtype, !quiet);
    for (const TensorSpec* t : shard_tensors[k]) weight_map[t->name] = file.filename().string();
  }
  if (shards > 1) {
    Json index{{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    write_text(dir / "model.safetensors.index.json", index.dump(2) + "\n");
  }
  write_token_file(dir / "calib.jsonl", calib_windows, calib_len, s.vocab, hash_name(seed, "calib"));
  write_token_file(dir / "eval.jsonl", eval_windows, eval_len, s.vocab, hash_name(seed, "eval"));
  return 0;
}
