// safetensors reader: the bundled F32 (stories260K) and BF16 (tinybible) checkpoints, F16 conversion,
// sharded stores built in a temp dir, and every malformed-file case naming file, tensor and reason.
#include "formats/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
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

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string le_u64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
  return s;
}

// An independent minimal writer: 8-byte little-endian header length, header JSON, data.
std::string make_safetensors(const std::string& header_json, const std::string& data) {
  return le_u64(header_json.size()) + header_json + data;
}

// Runs `fn`, expects illm::Error whose message contains every fragment.
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
    path_ = fs::temp_directory_path() / ("illm_safetensors_test_" + std::to_string(::getpid()) + "_" +
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

TEST(SafetensorsReal, Stories260KShapesMatchConfig) {
  const TensorStore store = TensorStore::open(kStories);
  const json cfg = json::parse(read_bytes(kStories / "config.json"));
  const int64_t hidden = cfg["hidden_size"], inter = cfg["intermediate_size"], vocab = cfg["vocab_size"];
  const int64_t kv_rows = hidden / cfg["num_attention_heads"].get<int64_t>() * cfg["num_key_value_heads"].get<int64_t>();
  const int64_t layers = cfg["num_hidden_layers"];
  EXPECT_EQ(store.names().size(), static_cast<size_t>(9 * layers + 2));  // tied: no lm_head
  EXPECT_EQ(store.info("model.embed_tokens.weight").shape, (std::vector<int64_t>{vocab, hidden}));
  EXPECT_EQ(store.info("model.layers.4.self_attn.k_proj.weight").shape, (std::vector<int64_t>{kv_rows, hidden}));
  EXPECT_EQ(store.info("model.layers.0.mlp.down_proj.weight").shape, (std::vector<int64_t>{hidden, inter}));
  EXPECT_EQ(store.info("model.norm.weight").dtype, DType::F32);
  EXPECT_FALSE(store.contains("lm_head.weight"));
  const auto names = store.names();
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  ASSERT_EQ(store.files().size(), 1u);
  EXPECT_EQ(store.files()[0].filename(), "model.safetensors");
}

TEST(SafetensorsReal, Stories260KValuesMatchIndependentDecode) {
  const TensorStore store = TensorStore::open(kStories / "model.safetensors");
  // Values decoded with Python's struct module from the same file.
  const std::vector<float> norm = store.read_f32("model.norm.weight");
  ASSERT_EQ(norm.size(), 64u);
  EXPECT_EQ(norm[0], 2.4583089351654053f);
  EXPECT_EQ(norm[3], 1.1078318357467651f);
  EXPECT_EQ(norm[63], 1.7077769041061401f);
  const std::vector<double> k = store.read_f64("model.layers.2.self_attn.k_proj.weight");
  ASSERT_EQ(k.size(), 32u * 64u);
  EXPECT_EQ(k[2], static_cast<double>(-0.29813873767852783f));
  EXPECT_EQ(k.back(), static_cast<double>(0.018669389188289642f));

  // And every tensor against this test's own header parse of the raw file.
  const std::string file = read_bytes(kStories / "model.safetensors");
  uint64_t header_len = 0;
  std::memcpy(&header_len, file.data(), 8);
  const json header = json::parse(file.substr(8, header_len));
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    const uint64_t begin = entry["data_offsets"][0], end = entry["data_offsets"][1];
    std::vector<float> expected((end - begin) / 4);
    std::memcpy(expected.data(), file.data() + 8 + header_len + begin, end - begin);
    EXPECT_EQ(store.read_f32(name), expected) << name;
    EXPECT_EQ(store.info(name).offset, 8 + header_len + begin) << name;
  }
}

TEST(SafetensorsReal, TinyBibleBf16IsTheTopHalfOfFloat32) {
  const TensorStore store = TensorStore::open(kTinyBible);
  const json cfg = json::parse(read_bytes(kTinyBible / "config.json"));
  const int64_t hidden = cfg["hidden_size"], vocab = cfg["vocab_size"];
  EXPECT_EQ(store.info("lm_head.weight").shape, (std::vector<int64_t>{vocab, hidden}));
  EXPECT_EQ(store.info("lm_head.weight").dtype, DType::BF16);
  EXPECT_EQ(store.names().size(), static_cast<size_t>(9 * cfg["num_hidden_layers"].get<int64_t>() + 3));

  // Python struct: first bf16 words of lm_head.weight 48752, 15877 -> -0.234375, 0.1298828125.
  const std::vector<float> head = store.read_f32("lm_head.weight");
  EXPECT_EQ(head[0], -0.234375f);
  EXPECT_EQ(head[1], 0.1298828125f);
  EXPECT_EQ(store.read_f32("model.norm.weight")[0], 1.6953125f);

  const auto raw = store.raw("model.layers.3.mlp.up_proj.weight");
  const std::vector<float> up = store.read_f32("model.layers.3.mlp.up_proj.weight");
  ASSERT_EQ(raw.size(), up.size() * 2);
  for (size_t i = 0; i < up.size(); i += 97) {
    uint16_t bits;
    std::memcpy(&bits, raw.data() + 2 * i, 2);
    uint32_t wide;
    std::memcpy(&wide, &up[i], 4);
    EXPECT_EQ(wide, static_cast<uint32_t>(bits) << 16) << i;
  }
  const std::vector<double> up64 = store.read_f64("model.layers.3.mlp.up_proj.weight");
  for (size_t i = 0; i < up.size(); ++i) ASSERT_EQ(up64[i], static_cast<double>(up[i]));
}

TEST(SafetensorsConvert, HalfToFloatCoversSpecialValues) {
  EXPECT_EQ(half_to_float(0x3C00), 1.0f);
  EXPECT_EQ(half_to_float(0xC000), -2.0f);
  EXPECT_EQ(half_to_float(0x3555), 0.333251953125f);
  EXPECT_EQ(half_to_float(0x7BFF), 65504.0f);
  EXPECT_EQ(half_to_float(0x0400), std::ldexp(1.0f, -14));         // smallest normal
  EXPECT_EQ(half_to_float(0x0001), std::ldexp(1.0f, -24));         // smallest subnormal
  EXPECT_EQ(half_to_float(0x03FF), std::ldexp(1023.0f, -24));      // largest subnormal
  EXPECT_EQ(half_to_float(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_EQ(half_to_float(0x0000), 0.0f);
  EXPECT_TRUE(std::signbit(half_to_float(0x8000)));
  EXPECT_EQ(half_to_float(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(half_to_float(0xFC00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(half_to_float(0x7E00)));
  EXPECT_TRUE(std::isnan(half_to_float(0x7C01)));
  EXPECT_EQ(bfloat16_to_float(0x3F80), 1.0f);
  EXPECT_EQ(bfloat16_to_float(0xC040), -3.0f);
  EXPECT_TRUE(std::isnan(bfloat16_to_float(0x7FC0)));
}

TEST(SafetensorsSynthetic, F16AndF64TensorsAndMetadata) {
  TempDir dir;
  const uint16_t halves[4] = {0x3C00, 0x0001, 0xFC00, 0xB800};  // 1, 2^-24, -inf, -0.5
  const double doubles[2] = {0.1, -1e300};
  std::string data(reinterpret_cast<const char*>(halves), 8);
  data += std::string(reinterpret_cast<const char*>(doubles), 16);
  const std::string header = R"({"__metadata__":{"format":"pt"},"h":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]},)"
                             R"("d":{"dtype":"F64","shape":[2],"data_offsets":[8,24]}})";
  write_bytes(dir.path() / "x.safetensors", make_safetensors(header, data));
  const TensorStore store = TensorStore::open(dir.path() / "x.safetensors");
  EXPECT_EQ(store.read_f32("h"), (std::vector<float>{1.0f, std::ldexp(1.0f, -24),
                                                     -std::numeric_limits<float>::infinity(), -0.5f}));
  EXPECT_EQ(store.read_f64("d"), (std::vector<double>{0.1, -1e300}));
  EXPECT_EQ(store.read_f32("d")[0], 0.1f);
  EXPECT_EQ(store.names(), (std::vector<std::string>{"d", "h"}));
  EXPECT_EQ(store.info("h").numel(), 4);
}

TEST(SafetensorsSynthetic, CopiesShareTheMappingAndOutliveTheOriginal) {
  std::optional<TensorStore> copy;
  {
    const TensorStore store = TensorStore::open(kStories);
    copy = store;
  }
  EXPECT_EQ(copy->read_f32("model.norm.weight")[0], 2.4583089351654053f);
}

TEST(SafetensorsSharded, TwoShardsFromStories260K) {
  TempDir dir;
  const TensorStore original = TensorStore::open(kStories);
  // Split the tensors over two shard files, each with its own header and back-to-back data.
  json headers[2] = {json::object(), json::object()};
  std::string datas[2];
  json weight_map = json::object();
  const auto names = original.names();
  for (size_t i = 0; i < names.size(); ++i) {
    const int shard = i % 2;
    const auto raw = original.raw(names[i]);
    const uint64_t begin = datas[shard].size();
    datas[shard].append(reinterpret_cast<const char*>(raw.data()), raw.size());
    headers[shard][names[i]] = {{"dtype", "F32"}, {"shape", original.info(names[i]).shape},
                                {"data_offsets", {begin, datas[shard].size()}}};
    weight_map[names[i]] = "model-0000" + std::to_string(shard + 1) + "-of-00002.safetensors";
  }
  for (int shard = 0; shard < 2; ++shard)
    write_bytes(dir.path() / ("model-0000" + std::to_string(shard + 1) + "-of-00002.safetensors"),
                make_safetensors(headers[shard].dump(), datas[shard]));
  write_bytes(dir.path() / "model.safetensors.index.json",
              json{{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}.dump());

  const TensorStore sharded = TensorStore::open(dir.path());
  EXPECT_EQ(sharded.names(), names);
  EXPECT_EQ(sharded.files().size(), 2u);
  for (const auto& name : names) EXPECT_EQ(sharded.read_f32(name), original.read_f32(name)) << name;
  const size_t norm_index = std::find(names.begin(), names.end(), "model.norm.weight") - names.begin();
  EXPECT_EQ(sharded.info("model.norm.weight").file.filename().string(),
            "model-0000" + std::to_string(norm_index % 2 + 1) + "-of-00002.safetensors");

  // Index pointing at a missing shard file.
  json broken = weight_map;
  broken["model.norm.weight"] = "model-00003-of-00002.safetensors";
  write_bytes(dir.path() / "model.safetensors.index.json", json{{"weight_map", broken}}.dump());
  expect_error([&] { TensorStore::open(dir.path()); },
               {"model.safetensors.index.json", "model.norm.weight", "model-00003-of-00002.safetensors", "does not exist"});

  // Index naming a tensor that its shard does not contain.
  broken = weight_map;
  broken["model.ghost.weight"] = "model-00001-of-00002.safetensors";
  write_bytes(dir.path() / "model.safetensors.index.json", json{{"weight_map", broken}}.dump());
  expect_error([&] { TensorStore::open(dir.path()); },
               {"model.safetensors.index.json", "model.ghost.weight", "does not contain it"});

  // Index without a weight_map / malformed index.
  write_bytes(dir.path() / "model.safetensors.index.json", R"({"metadata": {}})");
  expect_error([&] { TensorStore::open(dir.path()); }, {"model.safetensors.index.json", "weight_map"});
  write_bytes(dir.path() / "model.safetensors.index.json", R"({"weight_map": {"a": )");
  expect_error([&] { TensorStore::open(dir.path()); }, {"model.safetensors.index.json", "JSON"});
}

// ---- bad inputs: each names the file, the tensor (when there is one) and the reason ----

class SafetensorsBad : public ::testing::Test {
 protected:
  fs::path write(const std::string& header, const std::string& data) {
    const fs::path p = dir_.path() / "bad.safetensors";
    write_bytes(p, make_safetensors(header, data));
    return p;
  }
  TempDir dir_;
};

TEST_F(SafetensorsBad, TruncatedRealFile) {
  const std::string full = read_bytes(kStories / "model.safetensors");
  const fs::path p = dir_.path() / "truncated.safetensors";
  write_bytes(p, full.substr(0, full.size() - 1000));
  // The tensor stored last in the file (checked with Python) is the only one running past the end.
  expect_error([&] { TensorStore::open(p); },
               {"truncated.safetensors", "tensor 'model.layers.4.mlp.up_proj.weight'", "out of range", "truncated"});
  write_bytes(p, full.substr(0, 5));
  expect_error([&] { TensorStore::open(p); }, {"truncated.safetensors", "truncated", "5 bytes"});
  write_bytes(p, "");
  expect_error([&] { TensorStore::open(p); }, {"truncated.safetensors", "truncated"});
}

TEST_F(SafetensorsBad, HeaderLengthLargerThanFile) {
  const fs::path p = dir_.path() / "long.safetensors";
  write_bytes(p, le_u64(5000) + R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})" + std::string(4, '\0'));
  expect_error([&] { TensorStore::open(p); }, {"long.safetensors", "header length 5000", "larger than the file"});
  write_bytes(p, le_u64(uint64_t{1} << 40) + "{}");
  expect_error([&] { TensorStore::open(p); }, {"long.safetensors", "100 MB"});
}

TEST_F(SafetensorsBad, MalformedHeaderJson) {
  const fs::path p = write(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})", std::string(4, '\0'));
  expect_error([&] { TensorStore::open(p); }, {"bad.safetensors", "not well-formed JSON"});
  const fs::path q = write(R"([1,2])", "");
  expect_error([&] { TensorStore::open(q); }, {"bad.safetensors", "not a JSON object"});
}

TEST_F(SafetensorsBad, OverlappingOffsets) {
  const fs::path p = write(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                           std::string(12, '\0'));
  expect_error([&] { TensorStore::open(p); }, {"bad.safetensors", "tensor 'b'", "overlaps tensor 'a'"});
}

TEST_F(SafetensorsBad, OffsetsOutOfRange) {
  const fs::path p = write(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(12, '\0'));
  expect_error([&] { TensorStore::open(p); }, {"bad.safetensors", "tensor 'a'", "out of range", "12 bytes"});
  const fs::path q = write(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", std::string(12, '\0'));
  expect_error([&] { TensorStore::open(q); }, {"bad.safetensors", "tensor 'a'", "begin after end"});
  const fs::path r = write(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", std::string(12, '\0'));
  expect_error([&] { TensorStore::open(r); }, {"bad.safetensors", "tensor 'a'", "data_offsets"});
}

TEST_F(SafetensorsBad, DtypeTimesShapeDiffersFromByteLength) {
  const fs::path p = write(R"({"w":{"dtype":"BF16","shape":[3,2],"data_offsets":[0,24]}})", std::string(24, '\0'));
  expect_error([&] { TensorStore::open(p); }, {"bad.safetensors", "tensor 'w'", "BF16", "[3, 2]", "12 bytes", "spans 24"});
  const fs::path q = write(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})",
                           std::string(4, '\0'));
  expect_error([&] { TensorStore::open(q); }, {"bad.safetensors", "tensor 'w'", "too large"});
  const fs::path r = write(R"({"w":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}})", std::string(1, '\0'));
  expect_error([&] { TensorStore::open(r); }, {"bad.safetensors", "tensor 'w'", "unsupported dtype 'Q4'"});
  const fs::path s = write(R"({"w":{"dtype":"F32","shape":[1,-1],"data_offsets":[0,4]}})", std::string(4, '\0'));
  expect_error([&] { TensorStore::open(s); }, {"bad.safetensors", "tensor 'w'", "non-negative"});
}

TEST_F(SafetensorsBad, DuplicateNames) {
  const fs::path p = write(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                           R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                           std::string(8, '\0'));
  expect_error([&] { TensorStore::open(p); }, {"bad.safetensors", "tensor 'w'", "duplicate"});
}

TEST_F(SafetensorsBad, MissingTensorAndIntegerDtype) {
  const fs::path p = write(R"({"i":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})", std::string(8, '\0'));
  const TensorStore store = TensorStore::open(p);
  expect_error([&] { store.info("nope"); }, {"bad.safetensors", "tensor 'nope' not found"});
  expect_error([&] { store.read_f32("i"); }, {"bad.safetensors", "tensor 'i'", "I32", "not a floating-point"});
  EXPECT_EQ(store.raw("i").size(), 8u);
  expect_error([&] { TensorStore::open(dir_.path() / "absent.safetensors"); }, {"absent.safetensors", "no such file"});
  expect_error([&] { TensorStore::open(dir_.path()); }, {dir_.path().string(), "no model.safetensors"});
}


// ---- issue #8: the index may only name shards inside the model directory; nothing is silently out of reach ----

class SafetensorsIndex : public ::testing::Test {
 protected:
  // dir/model/ with an index, and dir/outside.safetensors next to it, both holding tensor "w".
  SafetensorsIndex() {
    fs::create_directories(model_dir());
    fs::create_directories(model_dir() / "sub");
    const std::string file = make_safetensors(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                                              std::string(4, '\0'));
    write_bytes(dir_.path() / "outside.safetensors", file);
    write_bytes(model_dir() / "sub" / "inside.safetensors", file);
  }
  fs::path model_dir() const { return dir_.path() / "model"; }
  void write_index(const json& weight_map) {
    write_bytes(model_dir() / "model.safetensors.index.json", json{{"weight_map", weight_map}}.dump());
  }
  TempDir dir_;
};

TEST_F(SafetensorsIndex, ShardPathsLeavingTheDirectoryAreRefused) {
  write_index({{"w", "../outside.safetensors"}});
  expect_error([&] { TensorStore::open(model_dir()); },
               {"model.safetensors.index.json", "tensor 'w'", "../outside.safetensors", "leaves the model directory"});
  write_index({{"w", (dir_.path() / "outside.safetensors").string()}});
  expect_error([&] { TensorStore::open(model_dir()); }, {"tensor 'w'", "is an absolute path"});
  write_index({{"w", "sub/../../outside.safetensors"}});
  expect_error([&] { TensorStore::open(model_dir()); }, {"tensor 'w'", "leaves the model directory"});
  write_index({{"w", ""}});
  expect_error([&] { TensorStore::open(model_dir()); }, {"tensor 'w'", "empty shard file"});
  write_index(json::object());
  expect_error([&] { TensorStore::open(model_dir()); }, {"model.safetensors.index.json", "'weight_map' is empty"});
}

TEST_F(SafetensorsIndex, ShardsInSubdirectoriesAreFine) {
  write_index({{"w", "sub/inside.safetensors"}});
  const TensorStore store = TensorStore::open(model_dir());
  EXPECT_EQ(store.names(), std::vector<std::string>{"w"});
  EXPECT_EQ(store.info("w").file, model_dir() / "sub" / "inside.safetensors");
}

TEST_F(SafetensorsIndex, ShardTensorsMissingFromTheIndexAreRefused) {
  write_bytes(model_dir() / "two.safetensors",
              make_safetensors(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                               R"("model.layers.0.self_attn.q_proj.bias":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                               std::string(8, '\0')));
  write_index({{"w", "two.safetensors"}});
  expect_error([&] { TensorStore::open(model_dir()); },
               {"two.safetensors", "model.layers.0.self_attn.q_proj.bias", "not listed in"});
}

TEST(SafetensorsParsers, IndexAndHeaderWithoutFiles) {
  const auto map = parse_safetensors_index(R"({"weight_map": {"b": "x.safetensors", "a": "y/z.safetensors"}})",
                                           "idx.json");
  ASSERT_EQ(map.size(), 2u);
  EXPECT_EQ(map[0].first, "a");  // nlohmann orders object keys
  EXPECT_EQ(map[0].second, fs::path("y/z.safetensors"));
  expect_error([] { parse_safetensors_index(R"({"weight_map": {"a": "x", "a": "y"}})", "idx.json"); },
               {"idx.json", "tensor 'a'", "duplicate"});
  const std::string file = make_safetensors(R"({"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", "abcd");
  const auto tensors =
      parse_safetensors_bytes(std::span<const std::byte>(reinterpret_cast<const std::byte*>(file.data()), file.size()),
                              "mem.safetensors");
  ASSERT_EQ(tensors.size(), 1u);
  EXPECT_EQ(tensors[0].offset, file.size() - 4);
  EXPECT_EQ(tensors[0].nbytes, 4u);
}

TEST(SafetensorsParsers, DevicesAndDirectoriesAreNotReadAsFiles) {
  expect_error([] { TensorStore::open("/dev/zero"); }, {"/dev/zero", "safetensors file is a device"});
}

}  // namespace
}  // namespace illm::formats
