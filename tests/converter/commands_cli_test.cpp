// `illm generate`, `illm inspect`, `illm verify` end to end on a small model quantized once per suite
// (stories260K, RTN W8A8, quick recipe), plus the bad-input paths of those commands and of `illm quantize`.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "formats/hdf5_util.h"
#include "formats/illm_file.h"
#include "formats/sha256.h"
#include "tests/converter/model_tamper.h"

namespace {

namespace fs = std::filesystem;
using illm::testing::rewrite_header_hash;
using illm::testing::tamper_dataset;

const std::string kIllm = std::string(ILLM_BINARY_DIR) + "/illm";
const fs::path kStories = fs::path(ILLM_SOURCE_DIR) / "models" / "stories260K";

struct RunResult {
  int exit_code = -1;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

std::string quote(const fs::path& p) {
  std::string quoted = "'";
  quoted += p.string();
  quoted += "'";
  return quoted;
}

// Runs the built `illm` with `args` (already quoted), capturing stdout and stderr through popen.
RunResult run_illm(const std::string& args) {
  static int counter = 0;
  const fs::path err_file = fs::temp_directory_path() /
                            ("illm_commands_cli_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + ".err");
  const std::string cmd = "'" + kIllm + "' " + args + " 2>" + quote(err_file);
  RunResult r;
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (pipe == nullptr) return r;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) r.out.append(buffer, n);
  const int status = ::pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  r.err = slurp(err_file);
  fs::remove(err_file);
  return r;
}

size_t line_count(const std::string& text) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) + (!text.empty() && text.back() != '\n');
}

// A failed command: exit != 0 and exactly one non-empty line on stderr containing `needle`.
void expect_one_line_error(const RunResult& r, const std::string& needle) {
  EXPECT_NE(r.exit_code, 0) << "stdout:\n" << r.out;
  EXPECT_EQ(line_count(r.err), 1u) << "stderr must be one line:\n" << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr does not mention '" << needle << "':\n" << r.err;
}

std::vector<uint8_t> read_bytes(const fs::path& p) {
  const std::string s = slurp(p);
  return {s.begin(), s.end()};
}

void write_bytes(const fs::path& p, const std::vector<uint8_t>& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// Files in `dir` other than those in `keep`.
std::vector<std::string> leftovers(const fs::path& dir, const std::set<std::string>& keep) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir))
    if (!keep.count(entry.path().filename().string())) names.push_back(entry.path().filename().string());
  return names;
}

class CommandsCli : public ::testing::Test {
 protected:
  // ctest runs every test in its own process: the model is built once per build tree (into the build
  // directory, rebuilt when the illm binary is newer) and shared; each process gets its own scratch directory.
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("illm_commands_cli_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    const fs::path cache = fs::path(ILLM_BINARY_DIR) / "test-artifacts" / "commands_cli";
    fs::create_directories(cache);
    model_ = cache / "stories-w8a8.illm";
    std::error_code ec;
    if (fs::exists(model_) && fs::last_write_time(model_, ec) >= fs::last_write_time(kIllm, ec)) {
      quantize_.exit_code = 0;
      return;
    }
    const fs::path recipe = dir_ / "quick-w8a8.json";
    write_file(recipe, R"({"method":"rtn","w_bits":8,"a_bits":8,"samples":8,"seq_len":256,"epochs":1,"clip_c":15})");
    // Into this process's directory, then renamed: parallel test processes may all be rebuilding the cache.
    const fs::path fresh = dir_ / "stories-w8a8.illm";
    quantize_ = run_illm("quantize --model " + quote(kStories) + " --recipe " + quote(recipe) + " -o " +
                         quote(fresh) + " --no-eval --max-tokens 4 --threads 2 -q");
    if (quantize_.exit_code == 0) fs::rename(fresh, model_, ec);
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  void SetUp() override {
    ASSERT_EQ(quantize_.exit_code, 0) << "illm quantize failed:\n" << quantize_.err;
    ASSERT_TRUE(fs::exists(model_));
  }
  // A fresh copy of the model to corrupt.
  static fs::path copy_model(const std::string& name) {
    const fs::path copy = dir_ / name;
    fs::copy_file(model_, copy, fs::copy_options::overwrite_existing);
    return copy;
  }

  static inline fs::path dir_, model_;
  static inline RunResult quantize_;
};

// ------------------------------------------------------------------------------------------------ generate

TEST_F(CommandsCli, GenerateGreedyIsDeterministic) {
  const std::string args = "generate --model " + quote(model_) + " --prompt-ids 1,20,30 --max-tokens 16";
  const RunResult a = run_illm(args), b = run_illm(args);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_FALSE(a.out.empty());
  // No tokenizer in stories260K: space-separated ids.
  std::istringstream ids(a.out);
  int id, count = 0;
  while (ids >> id) {
    EXPECT_GE(id, 0);
    EXPECT_LT(id, 512);
    ++count;
  }
  EXPECT_GE(count, 1);
  EXPECT_LE(count, 16);
  EXPECT_NE(a.err.find("prompt tokens 3"), std::string::npos) << a.err;
  EXPECT_NE(a.err.find("tokens/s"), std::string::npos) << a.err;
}

// The first greedy token after a golden prompt is the argmax of the golden vector's last row, as stored in the
// file at quantize time (ties → lowest id); EOS would end the generation instead.
TEST_F(CommandsCli, GenerateGreedyMatchesGoldenArgmax) {
  const auto loaded = illm::formats::read_illm(model_);
  ASSERT_FALSE(loaded.meta.golden.empty());
  const auto& g = loaded.meta.golden.front();
  const size_t vocab = static_cast<size_t>(loaded.model.shape.vocab);
  const auto last = g.logits.begin() + static_cast<std::ptrdiff_t>((g.input_ids.size() - 1) * vocab);
  const int expected = static_cast<int>(std::max_element(last, last + static_cast<std::ptrdiff_t>(vocab)) - last);
  std::string ids;
  for (int32_t t : g.input_ids) {
    if (!ids.empty()) ids += ",";
    ids += std::to_string(t);
  }
  const RunResult r = run_illm("generate --model " + quote(model_) + " --prompt-ids " + ids + " --max-tokens 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  if (expected == loaded.model.shape.eos_id) {
    EXPECT_TRUE(j.at("ids").empty());
  } else {
    ASSERT_EQ(j.at("ids").size(), 1u);
    EXPECT_EQ(j.at("ids")[0].get<int>(), expected);
  }
  EXPECT_EQ(j.at("prompt_tokens").get<size_t>(), g.input_ids.size());
}

TEST_F(CommandsCli, GenerateSamplingIsReproducibleWithSeed) {
  auto sample = [&](int seed) {
    const RunResult r = run_illm("generate --model " + quote(model_) +
                                 " --prompt-ids 1,50 --max-tokens 24 --temperature 1.0 --top-p 0.95 --seed " +
                                 std::to_string(seed) + " --json");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(r.out).at("ids").get<std::vector<int>>();
  };
  const auto first = sample(7), again = sample(7);
  EXPECT_EQ(first, again);
  EXPECT_FALSE(first.empty());
  // Other seeds should give some other sequence (24 tokens at T = 1 over 512 ids).
  EXPECT_TRUE(sample(8) != first || sample(9) != first);
}

TEST_F(CommandsCli, GenerateJsonReportsSpeeds) {
  const RunResult r = run_illm("generate --model " + quote(model_) + " --max-tokens 5 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("prompt_ids"), nlohmann::json::array({1}));  // default prompt: BOS
  EXPECT_EQ(j.at("prompt_tokens").get<int>(), 1);
  EXPECT_LE(j.at("generated_tokens").get<int>(), 5);
  EXPECT_GE(j.at("prefill_tokens_per_second").get<double>(), 0.0);
  EXPECT_GE(j.at("decode_tokens_per_second").get<double>(), 0.0);
  EXPECT_FALSE(j.contains("text"));  // no tokenizer in the file
}

TEST_F(CommandsCli, GenerateRejectsBadPrompts) {
  const std::string base = "generate --model " + quote(model_);
  expect_one_line_error(run_illm(base + " --prompt 'Once upon a time'"), "no tokenizer");
  expect_one_line_error(run_illm(base + " --prompt-ids 1,2 --prompt hi"), "not both");
  expect_one_line_error(run_illm(base + " --prompt-ids ''"), "empty");
  expect_one_line_error(run_illm(base + " --prompt-ids 1,512"), "512");
  expect_one_line_error(run_illm(base + " --prompt-ids 1,x"), "not an integer");
}

// ------------------------------------------------------------------------------------------------ inspect

TEST_F(CommandsCli, InspectShowsLayersAndBits) {
  const RunResult r = run_illm("inspect " + quote(model_));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* needle : {"version 2", "stories260K", "q_proj", "down_proj", "lm_head", "W8 A8", "int32",
                             "/2^", " = 15 ", "paper conformance: no", "source checkpoint", "block linear codes"})
    EXPECT_NE(r.out.find(needle), std::string::npos) << "missing '" << needle << "' in:\n" << r.out;
  for (int layer = 0; layer < 5; ++layer) {
    const std::string row = "  0" + std::to_string(layer) + "    q_proj";
    EXPECT_NE(r.out.find(row), std::string::npos) << row << " in:\n" << r.out;
  }
}

// A model with clipped site requantizations (what recipe act_clip produces): inspect names the ratios per site.
TEST_F(CommandsCli, InspectShowsActivationClipRatios) {
  const RunResult plain = run_illm("inspect " + quote(model_) + " --json");
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_FALSE(nlohmann::json::parse(plain.out).at("act_clip").get<bool>());
  EXPECT_EQ(run_illm("inspect " + quote(model_)).out.find("activation clip ratios"), std::string::npos);

  illm::formats::LoadedIllm loaded = illm::formats::read_illm(model_);
  loaded.model.layers[1].act_clip[2] = illm::RequantClip{15, 4};  // layer 1, site k
  loaded.model.layers[4].act_clip[6] = illm::RequantClip{58982, 16};  // layer 4, site down_in
  const fs::path clipped = dir_ / "clipped.illm";
  illm::formats::write_illm(clipped, loaded.model, loaded.meta);
  const RunResult r = run_illm("inspect " + quote(clipped) + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j.at("act_clip").get<bool>());
  const auto& k = j.at("layers")[1].at("act_clip").at("k");
  EXPECT_TRUE(k.at("clipping").get<bool>());
  EXPECT_EQ(k.at("m").get<int64_t>(), 15);
  EXPECT_EQ(k.at("k").get<int>(), 4);
  EXPECT_DOUBLE_EQ(k.at("value").get<double>(), 0.9375);
  EXPECT_FALSE(j.at("layers")[1].at("act_clip").at("q").at("clipping").get<bool>());
  EXPECT_DOUBLE_EQ(j.at("layers")[4].at("act_clip").at("down_in").at("value").get<double>(), 58982.0 / 65536);
  const RunResult text = run_illm("inspect " + quote(clipped));
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("activation clip ratios"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("0.9375"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("0.9000"), std::string::npos) << text.out;
}

// Per-group activations of 8 on stories260K: inspect names the width that ends in a short group (172 = 21·8 + 4),
// and the model written with them runs (`illm generate`).
TEST_F(CommandsCli, InspectShowsActGroupsAndTheirShortGroup) {
  const RunResult plain = run_illm("inspect " + quote(model_) + " --json");
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(nlohmann::json::parse(plain.out).at("act_group_size").get<int>(), 0);
  EXPECT_TRUE(nlohmann::json::parse(plain.out).at("act_group_short_groups").empty());
  illm::formats::LoadedIllm loaded = illm::formats::read_illm(model_);
  loaded.model.act_group_size = 8;
  const fs::path grouped = dir_ / "act8.illm";
  illm::formats::write_illm(grouped, loaded.model, loaded.meta);
  const RunResult r = run_illm("inspect " + quote(grouped) + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("act_group_size").get<int>(), 8);
  EXPECT_EQ(j.at("act_group_short_groups"), (nlohmann::json{{"intermediate", 4}})) << r.out;
  const RunResult text = run_illm("inspect " + quote(grouped));
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("one scale per token and 8 channels; intermediate ends in a group of 4"), std::string::npos)
      << text.out;
  const RunResult gen = run_illm("generate --model " + quote(grouped) + " --prompt-ids 1,20 --max-tokens 4 --json");
  EXPECT_EQ(gen.exit_code, 0) << gen.err;
}

// Q/K/V codes of another width than a_bits (recipe qkv_bits; this test model is W8A8, so 4): inspect shows the
// width, generate runs it.
TEST_F(CommandsCli, InspectShowsQkvBits) {
  illm::formats::LoadedIllm loaded = illm::formats::read_illm(model_);
  const int a_bits = loaded.model.settings.a_bits;
  const RunResult plain = run_illm("inspect " + quote(model_) + " --json");
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(nlohmann::json::parse(plain.out).at("integer_settings").at("qkv_bits").get<int>(), a_bits);
  const int qkv = a_bits == 8 ? 4 : 8;
  loaded.model.settings.qkv_bits = qkv;
  const fs::path other = dir_ / "other.illm";
  illm::formats::write_illm(other, loaded.model, loaded.meta);
  const RunResult r = run_illm("inspect " + quote(other) + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out).at("integer_settings").at("qkv_bits").get<int>(), qkv);
  const RunResult text = run_illm("inspect " + quote(other));
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("A" + std::to_string(a_bits) + " (Q/K/V " + std::to_string(qkv) + ")"), std::string::npos) << text.out;
  const RunResult gen = run_illm("generate --model " + quote(other) + " --prompt-ids 1,20 --max-tokens 4 --json");
  EXPECT_EQ(gen.exit_code, 0) << gen.err;
}

// A model with TRIP channel factors (what recipe trip_shifts produces): inspect shows K and per site the α counts.
TEST_F(CommandsCli, InspectShowsTripFactors) {
  const RunResult plain = run_illm("inspect " + quote(model_) + " --json");
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_FALSE(nlohmann::json::parse(plain.out).at("trip").get<bool>());

  illm::formats::LoadedIllm loaded = illm::formats::read_illm(model_);
  illm::QuantizedLayer& L = loaded.model.layers[2];
  L.trip_max_shift = 3;
  L.trip_alpha[illm::kClipFfnIn].assign(static_cast<size_t>(loaded.model.shape.hidden), 3);
  L.trip_alpha[illm::kClipFfnIn][0] = 1;  // one channel α = 1: E = 2 extra bits
  const fs::path with_trip = dir_ / "trip.illm";
  illm::formats::write_illm(with_trip, loaded.model, loaded.meta);
  const RunResult r = run_illm("inspect " + quote(with_trip) + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j.at("trip").get<bool>());
  const auto& t = j.at("layers")[2].at("trip");
  EXPECT_EQ(t.at("max_shift").get<int>(), 3);
  EXPECT_EQ(t.at("sites").at("ffn_in").at("extra_bits").get<int>(), 2);
  const std::vector<int64_t> histogram = {0, 1, 0, loaded.model.shape.hidden - 1};
  EXPECT_EQ(t.at("sites").at("ffn_in").at("alpha_histogram").get<std::vector<int64_t>>(), histogram);
  EXPECT_FALSE(j.at("layers")[1].contains("trip"));
  const RunResult text = run_illm("inspect " + quote(with_trip));
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("TRIP channel factors"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("ffn_in 0/1/0/" + std::to_string(loaded.model.shape.hidden - 1) + " +2"), std::string::npos)
      << text.out;
}

TEST_F(CommandsCli, InspectJsonMatchesTheSource) {
  const RunResult r = run_illm("inspect " + quote(model_) + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("format_version").get<int>(), 2);
  EXPECT_EQ(j.at("source").at("name"), "stories260K");
  ASSERT_EQ(j.at("layers").size(), 5u);
  for (const auto& layer : j.at("layers")) {
    ASSERT_EQ(layer.at("linears").size(), 7u);
    for (const auto& lin : layer.at("linears")) {
      EXPECT_EQ(lin.at("w_bits").get<int>(), 8);
      EXPECT_EQ(lin.at("a_bits").get<int>(), 8);
      // Worst case |Σ| = in · 255 · 255 < 2^31 for in <= 172: int32.
      EXPECT_EQ(lin.at("accumulator"), "int32");
      EXPECT_FALSE(lin.at("per_group").get<bool>());  // one scale per row
      EXPECT_EQ(lin.at("group_size"), lin.at("in_features"));
      EXPECT_LE(lin.at("scale_m")[0].get<int64_t>(), lin.at("scale_m")[1].get<int64_t>());
    }
    // Recipe clip_c 15 as a dyadic.
    const auto& c = layer.at("softmax_clip");
    ASSERT_TRUE(c.at("clipping").get<bool>());
    EXPECT_DOUBLE_EQ(c.at("value").get<double>(), 15.0);
  }
  EXPECT_EQ(j.at("lm_head").at("w_bits").get<int>(), 8);
  EXPECT_EQ(j.at("integer_settings").at("paper_conformance"), false);
  EXPECT_EQ(j.at("recipe").at("method"), "rtn");

  // Source size: the safetensors payload (file size minus its 8-byte length and JSON header), read here directly.
  const auto st = read_bytes(kStories / "model.safetensors");
  uint64_t header_len = 0;
  std::memcpy(&header_len, st.data(), 8);
  const auto& sizes = j.at("sizes");
  EXPECT_EQ(sizes.at("source_bytes").get<uint64_t>(), st.size() - 8 - header_len);
  EXPECT_EQ(sizes.at("source_parameters").get<int64_t>(), 260032);  // hand count: 5·45440 + 512·64 + 64
  EXPECT_EQ(sizes.at("file_bytes").get<uint64_t>(), fs::file_size(model_));
  uint64_t group_sum = 0;
  for (const auto& g : sizes.at("groups")) group_sum += g.get<uint64_t>();
  EXPECT_EQ(group_sum, fs::file_size(model_));
  EXPECT_GT(sizes.at("groups").at("block linear codes").get<uint64_t>(), 5u * 45000u);  // one byte per W8 code
}

// ------------------------------------------------------------------------------------------------ verify

TEST_F(CommandsCli, VerifyPassesOnFreshFile) {
  const RunResult r = run_illm("verify " + quote(model_));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("golden 00  prefill"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("golden 00  decode"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("MISMATCH"), std::string::npos) << r.out;
  const RunResult json = run_illm("verify " + quote(model_) + " --json");
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const auto j = nlohmann::json::parse(json.out);
  EXPECT_TRUE(j.at("ok").get<bool>());
  EXPECT_GE(j.at("golden").size(), 2u);  // every vector's prefill, plus the first one's decode
}

// A format-version-1 file (tests/fixtures/illm_v1: stories260K W4A4 RTN, written by the version-1 writer before the
// schema bump; a regression lock) still reads: its integrity holds and this build's executor reproduces the golden
// logits the version-1 build stored at quantize time.
TEST_F(CommandsCli, VersionOneFileStillVerifies) {
  const fs::path v1 = fs::path(ILLM_SOURCE_DIR) / "tests" / "fixtures" / "illm_v1" / "stories260K-w4a4-v1.illm";
  const RunResult r = run_illm("verify " + quote(v1) + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j.at("ok").get<bool>());
  EXPECT_GE(j.at("golden").size(), 2u);
  const RunResult info = run_illm("inspect " + quote(v1) + " --json");
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_EQ(nlohmann::json::parse(info.out).at("format_version").get<int>(), 1);
}

TEST_F(CommandsCli, VerifyCatchesFlippedByteInTheMiddle) {
  const fs::path copy = copy_model("flipped.illm");
  auto bytes = read_bytes(copy);
  bytes[bytes.size() / 2] ^= 0x10;
  write_bytes(copy, bytes);
  const RunResult r = run_illm("verify " + quote(copy));
  expect_one_line_error(r, "SHA-256 of the file contents does not match");
  EXPECT_NE(r.err.find("flipped.illm"), std::string::npos) << r.err;
}

TEST_F(CommandsCli, VerifyNamesTheCorruptedTensor) {
  const fs::path copy = copy_model("tensor.illm");
  tamper_dataset(copy, "/model/layers/02/up_proj/codes", /*fix_checksum=*/false);
  rewrite_header_hash(copy);  // past the whole-file check: the tensor's own checksum must catch it
  const RunResult r = run_illm("verify " + quote(copy));
  expect_one_line_error(r, "/model/layers/02/up_proj/codes");
  EXPECT_NE(r.err.find("checksum"), std::string::npos) << r.err;
}

TEST_F(CommandsCli, VerifyReportsGoldenMismatch) {
  const fs::path copy = copy_model("golden.illm");
  // A consistent file (checksums and header re-signed) whose recorded logit 0 is off by one.
  tamper_dataset(copy, "/golden/00/logits", /*fix_checksum=*/true);
  rewrite_header_hash(copy);
  const RunResult r = run_illm("verify " + quote(copy));
  expect_one_line_error(r, "golden vector 00 (prefill)");
  EXPECT_NE(r.err.find("position 0, vocab index 0"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("MISMATCH"), std::string::npos) << r.out;
}

// ------------------------------------------------------------------------------------------------ bad files

TEST_F(CommandsCli, BadFilesGiveOneLineErrors) {
  const fs::path missing = dir_ / "missing.illm";
  const fs::path not_illm = dir_ / "notes.illm";
  write_file(not_illm, std::string(1024, 'x'));
  const fs::path version6 = copy_model("version6.illm");
  {
    auto bytes = read_bytes(version6);
    const std::string key = "format_version 2";
    auto at = std::search(bytes.begin(), bytes.begin() + 512, key.begin(), key.end());
    ASSERT_NE(at, bytes.begin() + 512);
    *(at + static_cast<std::ptrdiff_t>(key.size()) - 1) = '6';
    write_bytes(version6, bytes);
  }
  expect_one_line_error(run_illm("verify " + quote(missing)), "model file does not exist");
  expect_one_line_error(run_illm("verify " + quote(not_illm)), "not an .illm model file");
  expect_one_line_error(run_illm("verify " + quote(version6)), "format version 6 is not supported");
  // inspect and generate read the file through the same checks; one case each (every run costs a process start).
  expect_one_line_error(run_illm("inspect " + quote(version6)), "format version 6 is not supported");
  expect_one_line_error(run_illm("generate --model " + quote(missing)), "model file does not exist");
}

// ------------------------------------------------------------------------------------------------ quantize

// Bad input fails before or during `illm quantize` with one line on stderr, and leaves nothing in the output
// directory: no model, no report, no temporary file.
class QuantizeBadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("illm_quantize_bad_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(dir_, ec);
  }
  fs::path recipe(const std::string& json) {
    const fs::path p = dir_ / "recipe.json";
    write_file(p, json);
    return p;
  }
  RunResult quantize(const fs::path& recipe_path, const std::string& extra = "") {
    return run_illm("quantize --model " + quote(kStories) + " --recipe " + quote(recipe_path) + " -o " +
                    quote(dir_ / "out.illm") + " --max-eval-windows 2 --threads 2 -q " + extra);
  }
  void expect_clean_failure(const RunResult& r, const std::string& needle) {
    expect_one_line_error(r, needle);
    const auto left = leftovers(dir_, {"recipe.json"});
    EXPECT_TRUE(left.empty()) << "left in the output directory: " << left.front();
  }
  fs::path dir_;
};

constexpr const char* kQuickRecipe =
    R"({"method":"rtn","w_bits":8,"a_bits":8,"samples":8,"seq_len":256,"epochs":1,"clip_c":15)";

TEST_F(QuantizeBadInput, UnknownRecipeKey) {
  expect_clean_failure(quantize(recipe(std::string(kQuickRecipe) + R"(,"w_bitz":4})")), "w_bitz");
}

TEST_F(QuantizeBadInput, BitsNine) {
  expect_clean_failure(
      quantize(recipe(R"({"method":"rtn","w_bits":9,"a_bits":8,"samples":8,"seq_len":256,"epochs":1,"clip_c":15})")),
      "w_bits");
}

TEST_F(QuantizeBadInput, ClipConstantZero) {
  expect_clean_failure(
      quantize(recipe(R"({"method":"rtn","w_bits":8,"a_bits":8,"samples":8,"seq_len":256,"epochs":1,"clip_c":0})")),
      "clip_c");
}

TEST_F(QuantizeBadInput, CalibrationDataTooShort) {
  // calib.jsonl holds 128 windows; the recipe asks for 1000.
  expect_clean_failure(
      quantize(recipe(R"({"method":"rtn","w_bits":8,"a_bits":8,"samples":1000,"seq_len":256,"epochs":1,"clip_c":15})")),
      "calib.jsonl");
}

TEST_F(QuantizeBadInput, MissingEvalFile) {
  expect_clean_failure(quantize(recipe(std::string(kQuickRecipe) + "}"), "--eval " + quote(dir_ / "nope.jsonl")),
                       "nope.jsonl");
}

TEST_F(QuantizeBadInput, MissingOutputDirectory) {
  const RunResult r = run_illm("quantize --model " + quote(kStories) + " --recipe " +
                               quote(recipe(std::string(kQuickRecipe) + "}")) + " -o " +
                               quote(dir_ / "absent" / "out.illm") + " -q");
  expect_clean_failure(r, "does not exist");
}

TEST_F(QuantizeBadInput, OutputDirectoryNotWritable) {
  const fs::path recipe_path = recipe(std::string(kQuickRecipe) + "}");
  if (::geteuid() == 0) {
    // Permissions do not stop root; /proc refuses new files to everyone, so the write itself must fail cleanly.
    const RunResult r = run_illm("quantize --model " + quote(kStories) + " --recipe " + quote(recipe_path) +
                                 " -o /proc/illm-commands-cli-test.illm --no-eval --threads 2 -q");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_EQ(line_count(r.err), 1u) << r.err;
    EXPECT_FALSE(fs::exists("/proc/illm-commands-cli-test.illm"));
    return;
  }
  const fs::path locked = dir_ / "locked";
  fs::create_directories(locked);
  fs::permissions(locked, fs::perms::owner_read | fs::perms::owner_exec, fs::perm_options::replace);
  const RunResult r = run_illm("quantize --model " + quote(kStories) + " --recipe " + quote(recipe_path) + " -o " +
                               quote(locked / "out.illm") + " -q");
  expect_one_line_error(r, "not writable");
  EXPECT_TRUE(fs::is_empty(locked));
}

}  // namespace
