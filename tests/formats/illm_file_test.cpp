// The .illm model file: round trip, determinism, the documented on-disk layout (read back with the plain
// HDF5 C API, not through our reader), and the bad-input cases of issue #5 (corruption, wrong version,
// truncation, missing dataset, unwritable output).
#include "formats/illm_file.h"

#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <random>
#include <string>

#include "formats/sha256.h"
#include "kernels/error.h"
#include "kernels/model_validation.h"
#include "kernels/weight_codes.h"

namespace illm::formats {
namespace {

namespace fs = std::filesystem;

// ----------------------------------------------------------------------------------------- synthetic model

class Generator {
 public:
  explicit Generator(uint32_t seed) : engine_(seed) {}
  int64_t uniform(int64_t low, int64_t high) { return std::uniform_int_distribution<int64_t>(low, high)(engine_); }
  Dyadic dyadic() { return Dyadic{uniform(1, int64_t{1} << 40), static_cast<int32_t>(uniform(-20, 60))}; }

  QuantizedLinear linear(int32_t out, int32_t in, int32_t bits) {
    QuantizedLinear l;
    l.out_features = out;
    l.in_features = in;
    l.bits = bits;
    std::vector<uint8_t> codes;
    for (int32_t i = 0; i < out * in; ++i) codes.push_back(static_cast<uint8_t>(uniform(0, (1 << bits) - 1)));
    l.codes = pack_weight_codes(bits, out, in, codes);  // the in-memory storage layout (kernels/quantized_model.h)
    for (int32_t r = 0; r < out; ++r) {
      l.zero_points.push_back(static_cast<int32_t>(uniform(0, (1 << bits) - 1)));
      l.scales.push_back(dyadic());
    }
    return l;
  }

  ChannelVector channels(int32_t n) {
    ChannelVector v;
    v.exponent = static_cast<int32_t>(uniform(-5, 30));
    for (int32_t i = 0; i < n; ++i) v.mantissa.push_back(uniform(-(int64_t{1} << 45), int64_t{1} << 45));
    return v;
  }

 private:
  std::mt19937_64 engine_;
};

// 2 layers, hidden 8, int4 (and int3) weights in layer 0, int8 in layer 1; intermediate 11 and vocab 13
// give odd row lengths (padded nibbles) for down_proj and odd packed sizes.
QuantizedModel make_model(uint32_t seed = 7) {
  Generator g(seed);
  QuantizedModel m;
  m.shape = ModelShape{.hidden = 8, .intermediate = 11, .n_layers = 2, .n_heads = 2, .n_kv_heads = 1,
                       .head_dim = 4, .vocab = 13, .max_positions = 6, .bos_id = 1, .eos_id = 2};
  m.settings.w_bits = 4;
  m.settings.paper_conformance = true;
  m.settings.exp_quadratic = false;
  m.settings.mantissa_bits = 8;
  m.norm_eps = Dyadic{687, 30};
  for (int i = 0; i < 13 * 8; ++i) m.embed_codes.push_back(static_cast<int16_t>(g.uniform(-32768, 32767)));
  for (int i = 0; i < 13; ++i) m.embed_scales.push_back(g.dyadic());
  for (int layer = 0; layer < 2; ++layer) {
    const int32_t bits = layer == 0 ? 4 : 8;
    QuantizedLayer l;
    l.attn_norm = g.channels(8);
    l.q_proj = g.linear(8, 8, bits);
    l.k_proj = g.linear(4, 8, layer == 0 ? 3 : 6);
    l.v_proj = g.linear(4, 8, bits);
    l.o_proj = g.linear(8, 8, bits);
    l.ffn_norm = g.channels(8);
    l.gate_proj = g.linear(11, 8, bits);
    l.up_proj = g.linear(11, 8, bits);
    l.down_proj = g.linear(8, 11, bits);
    l.swiglu_inv_alpha = g.channels(11);
    l.softmax_clip = layer == 0 ? Dyadic{15, 0} : Dyadic{0, 0};
    m.layers.push_back(l);
  }
  m.final_norm = g.channels(8);
  m.lm_head = g.linear(13, 8, 8);
  m.rope_frac_bits = 14;
  for (int i = 0; i < 6 * 2; ++i) {
    m.rope_cos.push_back(static_cast<int16_t>(g.uniform(-16384, 16384)));
    m.rope_sin.push_back(static_cast<int16_t>(g.uniform(-16384, 16384)));
  }
  return m;
}

IllmMetadata make_meta() {
  IllmMetadata meta;
  meta.tool_version = "0.1.0";
  meta.source_name = "tinybible";
  meta.source_sha256 = sha256_hex(std::string_view("source"));
  meta.config_json = R"({"hidden_size": 8, "name": "caf\u00e9 ☕"})";
  meta.recipe_json = R"({"bits":"w4a4","clip_c":15})";
  meta.calibration_json = R"({"layers":[{"c":15.0},{"c":null}]})";
  meta.tokenizer_model = std::string("\x0a\x00\x01\xff tokenizer bytes\x00", 22);
  meta.golden.push_back(GoldenVector{{1, 5, 7}, {-5, 1LL << 40, 3}, {{12345, 20}}});
  meta.golden.push_back(GoldenVector{{1}, {0, -1}, {{1, 0}, {99, -3}}});
  return meta;
}

// ----------------------------------------------------------------------------------------------- helpers

class IllmFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("illm_file_test_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (std::getenv("ILLM_KEEP_TEST_FILES") == nullptr) fs::remove_all(dir_);  // keep them to inspect by hand
  }

  fs::path write_sample(const std::string& name = "model.illm") {
    const fs::path path = dir_ / name;
    write_illm(path, make_model(), make_meta());
    return path;
  }

  fs::path dir_;
};

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void overwrite(const fs::path& path, uint64_t offset, const std::string& bytes) {
  std::fstream io(path, std::ios::binary | std::ios::in | std::ios::out);
  io.seekp(static_cast<std::streamoff>(offset));
  io.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void flip_byte(const fs::path& path, uint64_t offset) {
  std::string file = read_all(path);
  ASSERT_LT(offset, file.size());
  overwrite(path, offset, std::string(1, static_cast<char>(file[offset] ^ 0x5A)));
}

// The user block as docs/model-format.md specifies it, written independently of the library: three text
// lines, NUL-padded to 512 bytes. Used to simulate a corruption that also fixed up the whole-file hash.
void write_header(const fs::path& path, const std::string& version, const std::string& payload_hash) {
  std::string header = "ILLM-MODEL-FILE\nformat_version " + version + "\npayload_sha256 " + payload_hash + "\n";
  header.resize(512, '\0');
  overwrite(path, 0, header);
}
void reseal(const fs::path& path) { write_header(path, "2", to_hex(sha256_of_file(path, 512))); }

// Overwrites /meta/format_version and reseals the header (at version 2).
void set_meta_format_version(const fs::path& path, int64_t version) {
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  const hid_t meta = H5Gopen2(file, "/meta", H5P_DEFAULT);
  const hid_t attribute = H5Aopen(meta, "format_version", H5P_DEFAULT);
  EXPECT_GE(H5Awrite(attribute, H5T_NATIVE_INT64, &version), 0);
  H5Aclose(attribute);
  H5Gclose(meta);
  H5Fclose(file);
  reseal(path);
}

// Absolute file offset of a contiguous dataset's bytes (H5Dget_offset already counts the user block).
uint64_t dataset_file_offset(const fs::path& path, const std::string& dataset) {
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t d = H5Dopen2(file, dataset.c_str(), H5P_DEFAULT);
  const haddr_t address = H5Dget_offset(d);
  H5Dclose(d);
  H5Fclose(file);
  EXPECT_NE(address, HADDR_UNDEF);
  return address;
}

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

void expect_linear_eq(const QuantizedLinear& a, const QuantizedLinear& b, const std::string& what) {
  EXPECT_EQ(a.out_features, b.out_features) << what;
  EXPECT_EQ(a.in_features, b.in_features) << what;
  EXPECT_EQ(a.bits, b.bits) << what;
  EXPECT_EQ(a.group_size, b.group_size) << what;
  EXPECT_EQ(a.codes, b.codes) << what;
  EXPECT_EQ(a.zero_points, b.zero_points) << what;
  EXPECT_EQ(a.scales, b.scales) << what;
}

void expect_channels_eq(const ChannelVector& a, const ChannelVector& b, const std::string& what) {
  EXPECT_EQ(a.mantissa, b.mantissa) << what;
  EXPECT_EQ(a.exponent, b.exponent) << what;
}

void expect_model_eq(const QuantizedModel& a, const QuantizedModel& b) {
  EXPECT_EQ(a.shape, b.shape);
  EXPECT_EQ(a.settings, b.settings);
  EXPECT_EQ(a.norm_eps, b.norm_eps);
  EXPECT_EQ(a.embed_codes, b.embed_codes);
  EXPECT_EQ(a.embed_scales, b.embed_scales);
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t i = 0; i < a.layers.size(); ++i) {
    const std::string at = "layer " + std::to_string(i);
    const QuantizedLayer &x = a.layers[i], &y = b.layers[i];
    expect_channels_eq(x.attn_norm, y.attn_norm, at + " attn_norm");
    expect_linear_eq(x.q_proj, y.q_proj, at + " q_proj");
    expect_linear_eq(x.k_proj, y.k_proj, at + " k_proj");
    expect_linear_eq(x.v_proj, y.v_proj, at + " v_proj");
    expect_linear_eq(x.o_proj, y.o_proj, at + " o_proj");
    expect_channels_eq(x.ffn_norm, y.ffn_norm, at + " ffn_norm");
    expect_linear_eq(x.gate_proj, y.gate_proj, at + " gate_proj");
    expect_linear_eq(x.up_proj, y.up_proj, at + " up_proj");
    expect_linear_eq(x.down_proj, y.down_proj, at + " down_proj");
    expect_channels_eq(x.swiglu_inv_alpha, y.swiglu_inv_alpha, at + " swiglu_inv_alpha");
    EXPECT_EQ(x.softmax_clip, y.softmax_clip) << at;
    EXPECT_EQ(x.act_clip, y.act_clip) << at;
    EXPECT_EQ(x.trip_max_shift, y.trip_max_shift) << at;
    EXPECT_EQ(x.trip_alpha, y.trip_alpha) << at;
  }
  expect_channels_eq(a.final_norm, b.final_norm, "final_norm");
  expect_linear_eq(a.lm_head, b.lm_head, "lm_head");
  EXPECT_EQ(a.rope_frac_bits, b.rope_frac_bits);
  EXPECT_EQ(a.rope_cos, b.rope_cos);
  EXPECT_EQ(a.rope_sin, b.rope_sin);
  EXPECT_EQ(a.hadamard_down, b.hadamard_down);
  EXPECT_EQ(a.hadamard_qk, b.hadamard_qk);
  EXPECT_EQ(a.act_group_size, b.act_group_size);
}

// --------------------------------------------------------------------------------------------------- tests

TEST_F(IllmFileTest, RoundTripIsEqualFieldByField) {
  const fs::path path = write_sample();
  const QuantizedModel model = make_model();
  const IllmMetadata meta = make_meta();
  const LoadedIllm loaded = read_illm(path, ModelCheck::kNone);  // extreme values no executor would run
  expect_model_eq(loaded.model, model);
  EXPECT_EQ(loaded.meta, meta);
  EXPECT_NO_THROW(verify_illm_integrity(path));
}

// Version 2, clipped requantization: the per-layer ratios round-trip; a layer without clipping has no dataset.
TEST_F(IllmFileTest, ActivationClipRatiosRoundTripAndAreAbsentWhenOff) {
  QuantizedModel model = make_model(5);
  ASSERT_GE(model.layers.size(), 2u);
  model.layers[0].act_clip = {RequantClip{15, 4}, RequantClip{}, RequantClip{13, 4}, RequantClip{52429, 16},
                              RequantClip{10, 4}, RequantClip{16, 4}, RequantClip{1, 0}};
  const fs::path path = dir_ / "act_clip.illm";
  write_illm(path, model, make_meta());
  const LoadedIllm loaded = read_illm(path, ModelCheck::kNone);
  expect_model_eq(loaded.model, model);
  EXPECT_TRUE(loaded.model.layers[0].has_act_clip());
  EXPECT_FALSE(loaded.model.layers[1].has_act_clip());
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  EXPECT_GT(H5Lexists(file, "/model/layers/00/act_clip_m", H5P_DEFAULT), 0);
  EXPECT_EQ(H5Lexists(file, "/model/layers/01/act_clip_m", H5P_DEFAULT), 0);
  H5Fclose(file);
}

// Version 2, per-group weight scales: the optional `group_size` attribute and [out][in/G] scales and zero points
// round-trip; a per-row linear has no attribute; a group size outside {32, 64, 128, in} is refused by name.
TEST_F(IllmFileTest, PerGroupLinearsRoundTripAndBadGroupSizesAreRefused) {
  Generator g(11);
  QuantizedModel model = make_model();
  QuantizedLinear grouped = g.linear(3, 64, 4);
  grouped.group_size = 32;
  grouped.zero_points.clear();
  grouped.scales.clear();
  for (int i = 0; i < 3 * 2; ++i) {
    grouped.zero_points.push_back(static_cast<int32_t>(g.uniform(0, 15)));
    grouped.scales.push_back(g.dyadic());
  }
  model.layers[0].q_proj = grouped;
  model.layers[1].v_proj.group_size = 8;  // = in_features: one group per row, stored [out][1]
  const fs::path path = dir_ / "grouped.illm";
  write_illm(path, model, make_meta());
  const LoadedIllm loaded = read_illm(path, ModelCheck::kNone);
  expect_model_eq(loaded.model, model);
  EXPECT_EQ(loaded.model.layers[0].q_proj.scales.size(), 6u);
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  EXPECT_GT(H5Aexists_by_name(file, "/model/layers/00/q_proj", "group_size", H5P_DEFAULT), 0);
  EXPECT_EQ(H5Aexists_by_name(file, "/model/layers/00/k_proj", "group_size", H5P_DEFAULT), 0);  // per row: as v1
  H5Fclose(file);
  model.layers[0].q_proj.group_size = 16;
  const std::string message = error_of([&] { write_illm(dir_ / "bad.illm", model, make_meta()); });
  EXPECT_NE(message.find("q_proj"), std::string::npos) << message;
  EXPECT_NE(message.find("group_size = 16"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(dir_ / "bad.illm"));
}

// Version 2, online Walsh–Hadamard transforms: the flags round-trip with the plans' construction strings (C_f = 11:
// weighted blocks, d = 4: Sylvester); a file without them has no such attribute; a wrong plan string is refused.
// Per-group activations are format version 3: the header and /meta say 3, act_group_size reads back; a model without
// them is still written at version 2 (readable by the builds before version 3), with no act_group_size attribute.
TEST_F(IllmFileTest, ActGroupSizeIsVersion3AndAbsentOtherwise) {
  const fs::path plain = write_sample("plain.illm");
  QuantizedModel model = make_model();
  model.act_group_size = 32;
  const fs::path path = dir_ / "act_groups.illm";
  write_illm(path, model, make_meta());
  const LoadedIllm loaded = read_illm(path, ModelCheck::kNone);
  expect_model_eq(loaded.model, model);
  EXPECT_EQ(loaded.meta.format_version, 3);
  EXPECT_EQ(read_all(path).substr(0, 33), "ILLM-MODEL-FILE\nformat_version 3\n");
  const LoadedIllm old = read_illm(plain, ModelCheck::kNone);
  EXPECT_EQ(old.model.act_group_size, 0);
  EXPECT_EQ(old.meta.format_version, 2);
  EXPECT_EQ(read_all(plain).substr(0, 33), "ILLM-MODEL-FILE\nformat_version 2\n");
  const hid_t f = H5Fopen(plain.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t g = H5Gopen2(f, "/model", H5P_DEFAULT);
  EXPECT_EQ(H5Aexists(g, "act_group_size"), 0);
  H5Gclose(g);
  H5Fclose(f);
  // G = 8, the smallest (a width it does not divide ends in a short group: nothing more is stored), reads back.
  model.act_group_size = 8;
  write_illm(path, model, make_meta());
  EXPECT_EQ(read_illm(path, ModelCheck::kNone).model.act_group_size, 8);
}

// An optional /model/settings attribute of a later format version: a model with it writes that version and reads back
// equal; the plain sample carries no such attribute and stays version 2.
void expect_settings_field_round_trip(const fs::path& path, const QuantizedModel& model, const QuantizedModel& plain_model,
                                      const char* attribute, int64_t version) {
  write_illm(path, model, make_meta());
  const LoadedIllm loaded = read_illm(path, ModelCheck::kNone);
  expect_model_eq(loaded.model, model);
  EXPECT_EQ(loaded.meta.format_version, version);
  EXPECT_EQ(read_all(path).substr(0, 33), "ILLM-MODEL-FILE\nformat_version " + std::to_string(version) + "\n");
  const fs::path plain = path.parent_path() / "plain.illm";
  write_illm(plain, plain_model, make_meta());
  const hid_t f = H5Fopen(plain.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t g = H5Gopen2(f, "/model/settings", H5P_DEFAULT);
  EXPECT_EQ(H5Aexists(g, attribute), 0) << attribute;
  H5Gclose(g);
  H5Fclose(f);
  EXPECT_EQ(read_illm(plain, ModelCheck::kNone).meta.format_version, 2);
}

// A wide LM head input (settings head_in_bits) is format version 4 (so are per-group LM head weights: too wide for
// this sample, tested on stories260K in levers_test).
TEST_F(IllmFileTest, WideLmHeadInputIsVersion4) {
  QuantizedModel wide = make_model();
  wide.settings.head_in_bits = 16;
  expect_settings_field_round_trip(dir_ / "wide.illm", wide, make_model(), "head_in_bits", 4);
}

// Q/K/V codes of their own width (settings qkv_bits) are format version 5.
TEST_F(IllmFileTest, QkvBitsAreVersion5) {
  QuantizedModel kv8 = make_model();
  kv8.settings.qkv_bits = 8;
  expect_settings_field_round_trip(dir_ / "kv8.illm", kv8, make_model(), "qkv_bits", 5);
  EXPECT_EQ(read_illm(dir_ / "kv8.illm", ModelCheck::kNone).model.settings.qkv_bits, 8);
}

TEST_F(IllmFileTest, OnlineHadamardFlagsRoundTripAndTheirPlansAreChecked) {
  const fs::path plain = write_sample("plain.illm");
  QuantizedModel model = make_model();
  model.hadamard_down = model.hadamard_qk = true;
  const fs::path path = dir_ / "hadamard.illm";
  write_illm(path, model, make_meta());
  const LoadedIllm loaded = read_illm(path, ModelCheck::kNone);
  expect_model_eq(loaded.model, model);
  EXPECT_FALSE(read_illm(plain, ModelCheck::kNone).model.hadamard_down);
  const auto attribute = [](const fs::path& file, const char* name) {
    const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    const hid_t g = H5Gopen2(f, "/model", H5P_DEFAULT);
    std::string value = "<absent>";
    if (H5Aexists(g, name) > 0) {
      const hid_t a = H5Aopen(g, name, H5P_DEFAULT);
      const hid_t type = H5Aget_type(a);
      if (H5Tget_class(type) == H5T_STRING) {
        value.assign(H5Tget_size(type), '\0');
        H5Aread(a, type, value.data());
        value.resize(value.find('\0') == std::string::npos ? value.size() : value.find('\0'));
      } else {
        value = "flag";
      }
      H5Tclose(type);
      H5Aclose(a);
    }
    H5Gclose(g);
    H5Fclose(f);
    return value;
  };
  EXPECT_EQ(attribute(path, "hadamard_down_plan"), "blocks(4 + 4 + 1x2 + 1x2 + 1x2)");  // K = 3, n and K odd: 2
  EXPECT_EQ(attribute(path, "hadamard_qk_plan"), "Sylvester(4)");
  EXPECT_EQ(attribute(plain, "hadamard_down"), "<absent>");
  EXPECT_EQ(attribute(plain, "hadamard_qk_plan"), "<absent>");
  // A different construction string (as a build with another plan would have written) is refused, named.
  {
    const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    const hid_t g = H5Gopen2(f, "/model", H5P_DEFAULT);
    ASSERT_GE(H5Adelete(g, "hadamard_qk_plan"), 0);
    const std::string wrong = "Paley(4) x Sylvester(1)";
    const hid_t space = H5Screate(H5S_SCALAR);
    const hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, wrong.size());
    const hid_t a = H5Acreate2(g, "hadamard_qk_plan", type, space, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(H5Awrite(a, type, wrong.data()), 0);
    H5Aclose(a);
    H5Tclose(type);
    H5Sclose(space);
    H5Gclose(g);
    H5Fclose(f);
  }
  reseal(path);
  const std::string message = error_of([&] { read_illm(path, ModelCheck::kNone); });
  EXPECT_NE(message.find("hadamard_qk_plan"), std::string::npos) << message;
  EXPECT_NE(message.find("Sylvester(4)"), std::string::npos) << message;
}

// Version 2, TRIP channel factors: K and the per-site exponents round-trip; a layer without them has none stored.
TEST_F(IllmFileTest, TripFactorsRoundTripAndAreAbsentWhenOff) {
  QuantizedModel model = make_model(5);
  ASSERT_GE(model.layers.size(), 2u);
  QuantizedLayer& L = model.layers[0];
  L.trip_max_shift = 3;
  L.trip_alpha[kClipAttnIn].resize(static_cast<size_t>(model.shape.hidden));
  for (size_t c = 0; c < L.trip_alpha[kClipAttnIn].size(); ++c) L.trip_alpha[kClipAttnIn][c] = static_cast<int8_t>(c % 4);
  L.trip_alpha[kClipDownIn].assign(static_cast<size_t>(model.shape.intermediate), 3);
  const fs::path path = dir_ / "trip.illm";
  write_illm(path, model, make_meta());
  const LoadedIllm loaded = read_illm(path, ModelCheck::kNone);
  expect_model_eq(loaded.model, model);
  EXPECT_TRUE(loaded.model.layers[0].has_trip());
  EXPECT_TRUE(loaded.model.layers[0].trip_alpha[kClipFfnIn].empty());
  EXPECT_FALSE(loaded.model.layers[1].has_trip());
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  EXPECT_GT(H5Lexists(file, "/model/layers/00/trip_alpha_attn_in", H5P_DEFAULT), 0);
  EXPECT_EQ(H5Lexists(file, "/model/layers/00/trip_alpha_ffn_in", H5P_DEFAULT), 0);
  EXPECT_EQ(H5Lexists(file, "/model/layers/01/trip_alpha_attn_in", H5P_DEFAULT), 0);
  H5Fclose(file);
}

TEST_F(IllmFileTest, RoundTripWithEmptyMetadata) {
  IllmMetadata meta;  // empty strings, no tokenizer, no golden vectors: zero-sized datasets
  const fs::path path = dir_ / "empty_meta.illm";
  write_illm(path, make_model(3), meta);
  const LoadedIllm loaded = read_illm(path, ModelCheck::kNone);
  EXPECT_EQ(loaded.meta, meta);
  expect_model_eq(loaded.model, make_model(3));
}

TEST_F(IllmFileTest, IdenticalInputsGiveByteIdenticalFiles) {
  const std::string first = read_all(write_sample("a.illm"));
  const std::string second = read_all(write_sample("b.illm"));
  ASSERT_GT(first.size(), 512u);
  EXPECT_TRUE(first == second) << "the two files differ";
  EXPECT_EQ(first.find(dir_.string()), std::string::npos) << "the output path leaked into the file";
}

// Two writes within one second would share timestamps, so check directly that no object stores any.
TEST_F(IllmFileTest, NoObjectCarriesATimestamp) {
  const fs::path path = write_sample();
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  struct Seen {
    size_t objects = 0;
    std::vector<std::string> with_times;
  } seen;
  auto visit = [](hid_t, const char* name, const H5O_info_t* info, void* data) -> herr_t {
    auto* s = static_cast<Seen*>(data);
    ++s->objects;
    if (info->atime != 0 || info->mtime != 0 || info->ctime != 0 || info->btime != 0) s->with_times.emplace_back(name);
    return 0;
  };
  ASSERT_GE(H5Ovisit(file, H5_INDEX_NAME, H5_ITER_INC, visit, &seen), 0);
  H5Fclose(file);
  EXPECT_GT(seen.objects, 100u);
  EXPECT_TRUE(seen.with_times.empty()) << "first object with timestamps: " << seen.with_times.front();
}

TEST_F(IllmFileTest, HeaderIsTheDocumentedUserBlock) {
  const fs::path path = write_sample();
  const std::string file = read_all(path);
  std::string expected = "ILLM-MODEL-FILE\nformat_version 2\npayload_sha256 " +
                         sha256_hex(std::string_view(file).substr(512)) + "\n";
  expected.resize(512, '\0');
  EXPECT_TRUE(file.substr(0, 512) == expected);
  EXPECT_EQ(file.substr(512, 8), "\x89HDF\r\n\x1a\n");  // the HDF5 superblock follows the user block
}

TEST_F(IllmFileTest, StoredLayoutIsPackedAndNarrow) {
  const fs::path path = write_sample();
  const QuantizedModel model = make_model();
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  auto stored_type = [&](const char* dataset, size_t* size, H5T_sign_t* sign) {
    const hid_t d = H5Dopen2(file, dataset, H5P_DEFAULT);
    const hid_t t = H5Dget_type(d);
    *size = H5Tget_size(t);
    *sign = H5Tget_sign(t);
    H5Tclose(t);
    H5Dclose(d);
  };
  size_t size = 0;
  H5T_sign_t sign{};
  stored_type("/model/layers/01/q_proj/codes", &size, &sign);  // int8 weights: one uint8 per code
  EXPECT_EQ(size, 1u);
  EXPECT_EQ(sign, H5T_SGN_NONE);
  stored_type("/model/embedding/codes", &size, &sign);  // full int16 range
  EXPECT_EQ(size, 2u);
  stored_type("/model/layers/00/q_proj/scale_k", &size, &sign);  // exponents in [-20, 60]
  EXPECT_EQ(size, 1u);
  EXPECT_EQ(sign, H5T_SGN_2);
  stored_type("/model/layers/00/q_proj/scale_m", &size, &sign);  // mantissas up to 2^40
  EXPECT_EQ(size, 8u);

  // int4 down_proj of layer 0: rows of 11 codes packed into 6 bytes each, element 2i in the low nibble.
  const hid_t d = H5Dopen2(file, "/model/layers/00/down_proj/codes", H5P_DEFAULT);
  const hid_t space = H5Dget_space(d);
  hsize_t dims[2] = {0, 0};
  ASSERT_EQ(H5Sget_simple_extent_ndims(space), 2);
  H5Sget_simple_extent_dims(space, dims, nullptr);
  EXPECT_EQ(dims[0], 8u);
  EXPECT_EQ(dims[1], 6u);
  std::vector<uint8_t> packed(dims[0] * dims[1]);
  H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, packed.data());
  H5Sclose(space);
  H5Dclose(d);
  H5Fclose(file);
  const QuantizedLinear& down = model.layers[0].down_proj;
  for (int32_t r = 0; r < 8; ++r)
    for (int32_t c = 0; c < 11; ++c) {
      const uint8_t byte = packed[r * 6 + c / 2];
      EXPECT_EQ(c % 2 == 0 ? (byte & 0x0F) : (byte >> 4), weight_code(down, r, c)) << "row " << r << " col " << c;
    }
  for (size_t r = 0; r < 8; ++r) EXPECT_EQ(packed[r * 6 + 5] >> 4, 0) << "padding nibble of row " << r;
}

TEST_F(IllmFileTest, FlippedTensorByteIsCaughtAndNamed) {
  const fs::path path = write_sample();
  const std::string tensor = "/model/layers/01/q_proj/codes";
  const uint64_t offset = dataset_file_offset(path, tensor);
  // Sanity: the offset really points at the tensor's bytes (int8 codes are stored one per byte).
  const std::string file = read_all(path);
  const QuantizedModel model = make_model();
  const auto& codes = model.layers[1].q_proj.codes;
  ASSERT_TRUE(std::equal(codes.begin(), codes.end(), file.begin() + static_cast<std::ptrdiff_t>(offset),
                         [](uint8_t a, char b) { return a == static_cast<uint8_t>(b); }));
  flip_byte(path, offset + 3);

  const std::string whole_file = error_of([&] { verify_illm_integrity(path); });
  EXPECT_NE(whole_file.find("SHA-256"), std::string::npos) << whole_file;
  EXPECT_NE(whole_file.find(path.string()), std::string::npos) << whole_file;
  EXPECT_THROW(read_illm(path), Error);

  // A corruption that also fixed up the header hash is still caught, by the tensor's own checksum.
  reseal(path);
  const std::string per_tensor = error_of([&] { verify_illm_integrity(path); });
  EXPECT_NE(per_tensor.find(tensor), std::string::npos) << per_tensor;
  EXPECT_NE(per_tensor.find("checksum"), std::string::npos) << per_tensor;
  const std::string on_read = error_of([&] { read_illm(path); });
  EXPECT_NE(on_read.find(tensor), std::string::npos) << on_read;
}

TEST_F(IllmFileTest, FlippedHeaderByteIsCaught) {
  const fs::path path = write_sample();
  for (uint64_t offset : {0u, 20u, 40u, 100u, 300u, 511u}) {
    const fs::path copy = dir_ / ("copy" + std::to_string(offset) + ".illm");
    fs::copy_file(path, copy);
    flip_byte(copy, offset);
    EXPECT_THROW(verify_illm_integrity(copy), Error) << "offset " << offset;
    EXPECT_THROW(read_illm(copy), Error) << "offset " << offset;
  }
}

TEST_F(IllmFileTest, WrongFormatVersionIsAClearError) {
  const fs::path path = write_sample();
  write_header(path, "6", to_hex(sha256_of_file(path, 512)));
  const std::string message = error_of([&] { read_illm(path); });
  EXPECT_NE(message.find("format version 6"), std::string::npos) << message;
  EXPECT_NE(message.find("not supported"), std::string::npos) << message;

  // A consistent file whose /meta/format_version says 6 (header left at 2) is rejected as well, and so is one
  // whose /meta says 1 under a version-2 header (both readable versions, but they disagree).
  const fs::path inner = write_sample("inner.illm");
  set_meta_format_version(inner, 6);
  const std::string inner_message = error_of([&] { read_illm(inner); });
  EXPECT_NE(inner_message.find("format_version 6"), std::string::npos) << inner_message;
  EXPECT_THROW(verify_illm_integrity(inner), Error);

  const fs::path mixed = write_sample("mixed.illm");
  set_meta_format_version(mixed, 1);
  const std::string mixed_message = error_of([&] { read_illm(mixed); });
  EXPECT_NE(mixed_message.find("differs from the header"), std::string::npos) << mixed_message;
}

TEST_F(IllmFileTest, TruncatedFileIsCaught) {
  const fs::path path = write_sample();
  const auto size = fs::file_size(path);
  fs::resize_file(path, size - 100);
  EXPECT_NE(error_of([&] { read_illm(path); }).find("corrupted or truncated"), std::string::npos);
  fs::resize_file(path, 100);
  EXPECT_NE(error_of([&] { read_illm(path); }).find("shorter than"), std::string::npos);
  fs::resize_file(path, 0);
  EXPECT_THROW(verify_illm_integrity(path), Error);
  EXPECT_NE(error_of([&] { read_illm(dir_ / "absent.illm"); }).find("absent.illm"), std::string::npos);
}

TEST_F(IllmFileTest, MissingDatasetIsNamed) {
  const fs::path path = write_sample();
  {
    const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(H5Ldelete(file, "/model/layers/00/k_proj/zero_points", H5P_DEFAULT), 0);
    H5Fclose(file);
  }
  reseal(path);
  EXPECT_NO_THROW(verify_illm_integrity(path));  // every remaining dataset is intact
  const std::string message = error_of([&] { read_illm(path); });
  EXPECT_NE(message.find("/model/layers/00/k_proj/zero_points"), std::string::npos) << message;
  EXPECT_NE(message.find("missing dataset"), std::string::npos) << message;
}

TEST_F(IllmFileTest, UnwritableOutputLeavesNothing) {
  // A directory that does not exist: the temporary file cannot even be created.
  const std::string missing = error_of([&] { write_illm(dir_ / "no_such_dir" / "m.illm", make_model(), make_meta()); });
  EXPECT_NE(missing.find("no_such_dir"), std::string::npos) << missing;
  // The output path is an existing directory: writing succeeds, the final rename fails.
  fs::create_directories(dir_ / "taken.illm");
  EXPECT_THROW(write_illm(dir_ / "taken.illm", make_model(), make_meta()), Error);
  // Invalid content fails part-way through writing.
  QuantizedModel bad = make_model();
  bad.layers[1].down_proj.codes.pop_back();
  const std::string invalid = error_of([&] { write_illm(dir_ / "bad.illm", bad, make_meta()); });
  EXPECT_NE(invalid.find("down_proj"), std::string::npos) << invalid;
  IllmMetadata with_path = make_meta();
  with_path.source_name = "/home/user/tinybible";
  EXPECT_THROW(write_illm(dir_ / "path.illm", make_model(), with_path), Error);

  std::vector<std::string> left;
  for (const auto& entry : fs::directory_iterator(dir_)) left.push_back(entry.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"taken.illm"});
}

TEST_F(IllmFileTest, H5dumpListsTheSchema) {
  if (std::system("command -v h5dump > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "h5dump is not installed (Debian package hdf5-tools)";
  const fs::path path = write_sample();
  const std::string command = "h5dump -H '" + path.string() + "' 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  ASSERT_EQ(::pclose(pipe), 0) << output;
  for (const char* expected :
       {"GROUP \"meta\"", "ATTRIBUTE \"format_version\"", "DATASET \"config_json\"", "GROUP \"tokenizer\"",
        "GROUP \"model\"", "GROUP \"shape\"", "GROUP \"settings\"", "GROUP \"embedding\"", "GROUP \"layers\"",
        "GROUP \"00\"", "GROUP \"q_proj\"", "DATASET \"codes\"", "DATASET \"scale_m\"", "GROUP \"final_norm\"",
        "GROUP \"lm_head\"", "GROUP \"rope\"", "GROUP \"golden\"", "ATTRIBUTE \"sha256\""})
    EXPECT_NE(output.find(expected), std::string::npos) << expected;
  EXPECT_EQ(output.find("FLOAT"), std::string::npos) << "no float datasets";
}


// issue #8: read_illm runs the executor's validation, so no reader (eval, generate, verify, inspect, exporters)
// hands a model the executor would refuse to parallel code. The synthetic model above holds values no
// calibration produces (e.g. an embedding scale mantissa of 2^38).
TEST_F(IllmFileTest, ReaderRefusesWhatTheExecutorWouldRefuse) {
  const fs::path path = write_sample();
  const std::string message = error_of([&] { read_illm(path); });
  EXPECT_NE(message.find(path.string() + ": QuantizedModel: "), std::string::npos) << message;
  QuantizedModel model = make_model();
  std::string reference;
  try {
    validate_quantized_model(model);
  } catch (const Error& e) {
    reference = e.what();
  }
  ASSERT_FALSE(reference.empty());
  EXPECT_EQ(message, path.string() + ": " + reference);  // the executor's own message, with the file named
}


// Issue #8: payloads the fuzzer (fuzz_illm_hdf5) found to crash libhdf5 itself once the header SHA-256 is
// recomputed over them (tests/fuzz/corpus/illm_hdf5/libhdf5-crash-*.payload; without AddressSanitizer the last two
// crash with SIGSEGV). Every reader rehearses its reading in a child process first, so these are errors here.
TEST_F(IllmFileTest, PayloadsThatCrashLibhdf5AreErrors) {
  const fs::path corpus = fs::path(ILLM_SOURCE_DIR) / "tests" / "fuzz" / "corpus" / "illm_hdf5";
  int files = 0;
  for (const auto& entry : fs::directory_iterator(corpus)) {
    if (entry.path().filename().string().rfind("libhdf5-crash-", 0) != 0) continue;
    ++files;
    const std::string payload = read_all(entry.path());
    const fs::path forged = dir_ / (entry.path().stem().string() + ".illm");
    {
      std::ofstream out(forged, std::ios::binary);
      out << std::string(512, '\0') << payload;
    }
    reseal(forged);
    EXPECT_THROW(verify_illm_integrity(forged), Error) << entry.path();
    EXPECT_THROW(read_illm(forged), Error) << entry.path();
  }
  EXPECT_EQ(files, 4);
}

}  // namespace
}  // namespace illm::formats
