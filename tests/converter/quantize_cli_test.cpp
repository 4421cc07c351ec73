// `illm quantize` end to end on stories260K with a small FSBR recipe: the report, the model file, determinism.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/converter/cli_runner.h"

namespace {

namespace fs = std::filesystem;
using illm::testing::CliResult;
using illm::testing::kSourceDir;
using illm::testing::read_whole_file;
using illm::testing::run_illm_in;

const std::string kStories = kSourceDir + "/models/stories260K";

// One epoch over four windows: seconds, not minutes; the numbers are not the point here.
constexpr const char* kTinyFsbrRecipe =
    R"({"method": "fsbr", "w_bits": 8, "a_bits": 8, "epochs": 1, "samples": 4, "seq_len": 256, "seed": 7, "clip_c": 15})";

// ctest runs every test in its own process, so SetUpTestSuite runs once per test: the two quantize runs are made
// once and kept in the build directory (rebuilt when the illm binary is newer than them).
class QuantizeCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::path(ILLM_BINARY_DIR) / "test-artifacts" / "quantize_cli";
    const bool fresh = fs::exists(dir_ / "b.illm") && fs::exists(dir_ / "a.stdout") &&
                       fs::last_write_time(dir_ / "b.illm") > fs::last_write_time(illm::testing::kIllmBinary);
    if (fresh) {
      for (const char* name : {"a", "b"}) {
        results_[name].exit_code = 0;
        results_[name].out = read_whole_file(dir_ / (std::string(name) + ".stdout"));
      }
      return;
    }
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream(dir_ / "tiny.json") << kTinyFsbrRecipe;
    for (const char* name : {"a", "b"}) {
      results_[name] = run_illm_in(dir_, "quantize --model '" + kStories + "' --recipe '" + (dir_ / "tiny.json").string() +
                                             "' --max-eval-windows 2 --threads 2 --json -o '" +
                                             (dir_ / (std::string(name) + ".illm")).string() + "'");
      if (results_[name].exit_code == 0) std::ofstream(dir_ / (std::string(name) + ".stdout")) << results_[name].out;
    }
  }
  static fs::path dir_;
  static std::map<std::string, CliResult> results_;
};
fs::path QuantizeCli::dir_;
std::map<std::string, CliResult> QuantizeCli::results_;

TEST_F(QuantizeCli, ReportsIntegerAgainstFp) {
  const CliResult& r = results_["a"];
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);  // stdout is exactly one JSON object
  const double fp = j.at("reference_perplexity").get<double>();
  const double integer = j.at("perplexity").get<double>();
  EXPECT_GT(fp, 5.0);
  EXPECT_LT(fp, 40.0);
  // W8A8 on this tiny model costs a few percent of perplexity (llama.cpp's Q8_0: +4.6 %); 25 % would mean a bug.
  EXPECT_GT(integer, fp * 0.95);
  EXPECT_LT(integer, fp * 1.25);
  EXPECT_GT(j.at("top1").get<double>(), 0.6);
  EXPECT_GT(j.at("kl_mean").get<double>(), 0.0);
  EXPECT_EQ(j.at("predicted_tokens").get<int64_t>(), 2 * 255);
  EXPECT_EQ(illm::testing::nested_keys_named(j, "perplexity"), 0);
  EXPECT_EQ(illm::testing::nested_keys_named(j, "ppl"), 0);
  // The same report sits beside the model file.
  const auto beside = nlohmann::json::parse(read_whole_file(dir_ / "a.illm.json"));
  EXPECT_EQ(beside.at("perplexity"), j.at("perplexity"));
}

TEST_F(QuantizeCli, SameInputsGiveByteIdenticalModelFiles) {
  ASSERT_EQ(results_["a"].exit_code, 0) << results_["a"].err;
  ASSERT_EQ(results_["b"].exit_code, 0) << results_["b"].err;
  const std::string a = read_whole_file(dir_ / "a.illm"), b = read_whole_file(dir_ / "b.illm");
  ASSERT_GT(a.size(), 1000u);
  EXPECT_TRUE(a == b) << "two runs with the same inputs, recipe, seed and --threads wrote different files";
}

TEST_F(QuantizeCli, LeavesNoTemporaryFiles) {
  ASSERT_EQ(results_["a"].exit_code, 0) << results_["a"].err;
  for (const auto& entry : fs::directory_iterator(dir_)) {
    EXPECT_EQ(entry.path().filename().string().find(".tmp"), std::string::npos) << entry.path();
  }
}

}  // namespace

namespace {

// `illm eval` of the written file replays the executor on the same windows: the same numbers as the report.
TEST_F(QuantizeCli, EvalOfTheModelFileReproducesTheReport) {
  ASSERT_EQ(results_["a"].exit_code, 0) << results_["a"].err;
  const auto report = nlohmann::json::parse(results_["a"].out);
  const CliResult r = run_illm_in(dir_, "eval --model '" + (dir_ / "a.illm").string() + "' --data '" + kStories +
                                            "/eval.jsonl' --max-samples 2 --reference '" + kStories +
                                            "' --threads 1 --json -q");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("perplexity").get<double>(), report.at("perplexity").get<double>());
  // The FP side is float32 LibTorch at another thread count: equal up to summation order.
  EXPECT_NEAR(j.at("reference_perplexity").get<double>(), report.at("reference_perplexity").get<double>(), 1e-4);
  EXPECT_NEAR(j.at("kl_mean").get<double>(), report.at("kl_mean").get<double>(), 1e-5);
  EXPECT_EQ(j.at("top1").get<double>(), report.at("top1").get<double>());
  EXPECT_EQ(illm::testing::nested_keys_named(j, "perplexity"), 0);
}

}  // namespace
