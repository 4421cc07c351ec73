// `illm quantize` end to end on stories260K with a small FSBR recipe: the report, the model file, determinism,
// and `illm eval` of the written file. One test (one process): ctest runs tests in parallel processes, and these
// checks share the two quantize runs.
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

TEST(QuantizeCli, EndToEndOnStories260K) {
  const fs::path dir = illm::testing::fresh_test_dir("illm_quantize_cli");
  std::ofstream(dir / "tiny.json") << kTinyFsbrRecipe;
  auto quantize = [&](const std::string& name) {
    return run_illm_in(dir, "quantize --model '" + kStories + "' --recipe '" + (dir / "tiny.json").string() +
                                "' --max-eval-windows 2 --threads 2 --json -o '" + (dir / (name + ".illm")).string() +
                                "'");
  };
  const CliResult a = quantize("a");
  ASSERT_EQ(a.exit_code, 0) << a.err;

  // The report: stdout is exactly one JSON object, and the same report sits beside the model file.
  const auto report = nlohmann::json::parse(a.out);
  const double fp = report.at("reference_perplexity").get<double>();
  const double integer = report.at("perplexity").get<double>();
  EXPECT_GT(fp, 5.0);
  EXPECT_LT(fp, 40.0);
  // W8A8 on this tiny model costs a few percent of perplexity (llama.cpp's Q8_0: +4.6 %); 25 % would mean a bug.
  EXPECT_GT(integer, fp * 0.95);
  EXPECT_LT(integer, fp * 1.25);
  EXPECT_GT(report.at("top1").get<double>(), 0.6);
  EXPECT_GT(report.at("kl_mean").get<double>(), 0.0);
  EXPECT_EQ(report.at("predicted_tokens").get<int64_t>(), 2 * 255);
  EXPECT_EQ(illm::testing::nested_keys_named(report, "perplexity"), 0);
  EXPECT_EQ(illm::testing::nested_keys_named(report, "ppl"), 0);
  EXPECT_EQ(nlohmann::json::parse(read_whole_file(dir / "a.illm.json")).at("perplexity"), report.at("perplexity"));

  // Determinism: same inputs, recipe, seed and --threads give a byte-identical model file.
  const CliResult b = quantize("b");
  ASSERT_EQ(b.exit_code, 0) << b.err;
  const std::string file_a = read_whole_file(dir / "a.illm"), file_b = read_whole_file(dir / "b.illm");
  ASSERT_GT(file_a.size(), 1000u);
  EXPECT_TRUE(file_a == file_b) << "two runs with the same inputs, recipe, seed and --threads wrote different files";

  // `illm eval` of the written file replays the executor on the same windows: the same integer numbers.
  const CliResult e = run_illm_in(dir, "eval --model '" + (dir / "a.illm").string() + "' --data '" + kStories +
                                           "/eval.jsonl' --max-samples 2 --reference '" + kStories +
                                           "' --threads 1 --json -q");
  ASSERT_EQ(e.exit_code, 0) << e.err;
  const auto j = nlohmann::json::parse(e.out);
  EXPECT_EQ(j.at("perplexity").get<double>(), integer);
  EXPECT_EQ(j.at("top1").get<double>(), report.at("top1").get<double>());
  // The FP side is float32 LibTorch at another thread count: equal up to summation order.
  EXPECT_NEAR(j.at("reference_perplexity").get<double>(), fp, 1e-4);
  EXPECT_NEAR(j.at("kl_mean").get<double>(), report.at("kl_mean").get<double>(), 1e-5);

  // Nothing half-written is left behind.
  for (const auto& entry : fs::directory_iterator(dir)) {
    EXPECT_EQ(entry.path().filename().string().find(".tmp"), std::string::npos) << entry.path();
  }
  fs::remove_all(dir);
}

// Offline rotations (issue #12) through the streaming converter: the blocks are rotated as they are loaded, the
// embedding and head rows as the integer model is assembled (calibration/row_rotation.h). A head or embedding left
// unrotated (or the final norm's gain lost) would wreck the model; rotated consistently, W8A8 RTN + GPTQ keeps its
// quality, and the integer model agrees with the in-memory fake-quant calibration (--fake-quant), which rotates
// the whole model in calibrate().
TEST(QuantizeCli, RotatedModelThroughTheStreamingConverter) {
  const fs::path dir = illm::testing::fresh_test_dir("illm_quantize_cli_rotated");
  std::ofstream(dir / "rot.json") << R"({"method": "rtn", "w_bits": 8, "a_bits": 8, "samples": 4, "seq_len": 256,
      "seed": 7, "clip_c": 15, "rotation": "orthogonal", "rotate_heads": true, "gptq": true})";
  const CliResult r = run_illm_in(dir, "quantize --model '" + kStories + "' --recipe '" + (dir / "rot.json").string() +
                                           "' --max-eval-windows 2 --threads 2 --fake-quant --json -o '" +
                                           (dir / "rot.illm").string() + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto report = nlohmann::json::parse(r.out);
  const double fp = report.at("reference_perplexity").get<double>();
  const double integer = report.at("perplexity").get<double>();
  const double fake = report.at("fake_quant_perplexity_training_points").get<double>();
  EXPECT_GT(integer, fp * 0.95);
  EXPECT_LT(integer, fp * 1.25);
  EXPECT_NEAR(integer / fake, 1.0, 0.05) << "integer " << integer << ", fake-quant " << fake;
  EXPECT_EQ(report.at("recipe").at("rotation").get<std::string>(), "orthogonal");
  fs::remove_all(dir);
}

// The online Walsh–Hadamards (down_proj input, q/k after RoPE) through the streaming converter: the integer model
// (its hadamard_rows operator, 1/√g and 1/g folded into down_proj's and q_proj's scales) agrees with the in-memory
// fake-quant calibration, and `illm inspect` shows both transforms with their plans.
TEST(QuantizeCli, OnlineHadamardModelAgreesWithTheFakeQuantSimulation) {
  const fs::path dir = illm::testing::fresh_test_dir("illm_quantize_cli_hadamard");
  std::ofstream(dir / "had.json") << R"({"method": "rtn", "w_bits": 8, "a_bits": 8, "samples": 4, "seq_len": 256,
      "seed": 7, "clip_c": 15, "rotation": "hadamard", "rotate_heads": true, "hadamard_down": true,
      "hadamard_qk": true})";
  const std::string model = (dir / "had.illm").string();
  const CliResult r = run_illm_in(dir, "quantize --model '" + kStories + "' --recipe '" + (dir / "had.json").string() +
                                           "' --max-eval-windows 2 --threads 2 --fake-quant --json -o '" + model + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto report = nlohmann::json::parse(r.out);
  const double fp = report.at("reference_perplexity").get<double>();
  const double integer = report.at("perplexity").get<double>();
  const double fake = report.at("fake_quant_perplexity_training_points").get<double>();
  EXPECT_LT(integer, fp * 1.25);
  EXPECT_NEAR(integer / fake, 1.0, 0.05) << "integer " << integer << ", fake-quant " << fake;
  const CliResult info = run_illm_in(dir, "inspect '" + model + "' --json");
  ASSERT_EQ(info.exit_code, 0) << info.err;
  const auto inspected = nlohmann::json::parse(info.out);
  EXPECT_EQ(inspected.at("online_hadamard").at("down_proj").at("plan").get<std::string>(),
            "blocks(128 + 32x2 + 8x4 + 2x8 + 2x8)");  // C_f = 172
  EXPECT_EQ(inspected.at("online_hadamard").at("qk").at("plan").get<std::string>(), "Sylvester(8)");
  const CliResult text = run_illm_in(dir, "inspect '" + model + "'");
  EXPECT_NE(text.out.find("hadamard  down_proj input: blocks(128"), std::string::npos) << text.out;
  fs::remove_all(dir);
}

}  // namespace
