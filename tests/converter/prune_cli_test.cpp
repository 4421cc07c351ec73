// `illm eval --prune-rate` and `illm generate --prune-rate` end to end (converter/prune_option.h,
// converter/prefill_decode_eval.h): the JSON of the prefill/decode protocol, its unpruned perplexity against an
// independent computation (one whole-window prefill, no decode), and one-line errors for bad flag values.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "converter/integer_eval.h"
#include "converter/metrics.h"
#include "converter/prune_option.h"
#include "formats/dataset.h"
#include "formats/illm_file.h"
#include "kernels/error.h"
#include "kernels/executor.h"
#include "tests/converter/cli_runner.h"

namespace illm {
namespace {

using testing::expect_cli_error;
using testing::fresh_test_dir;
using testing::run_illm_in;

const std::string kModel = std::string(ILLM_TEST_MODELS_DIR) + "/stories260K-w8a8.illm";
const std::string kData = std::string(ILLM_SOURCE_DIR) + "/models/stories260K/eval.jsonl";
constexpr int kWindows = 1;

// The unpruned protocol's perplexity without the protocol: one prefill of each whole window; row t predicts t + 1,
// and the protocol scores the second half, t + 1 >= T/2.
double second_half_perplexity() {
  const formats::LoadedIllm loaded = formats::read_illm(kModel);
  const auto windows = formats::load_windows(kData, nullptr, std::nullopt, loaded.model.shape.vocab,
                                             loaded.model.shape.max_positions, kWindows);
  Executor executor(loaded.model, reference_kernels());
  converter::PerplexityAccumulator ppl;
  const size_t vocab = static_cast<size_t>(loaded.model.shape.vocab);
  for (const std::vector<int32_t>& ids : windows.sequences) {
    executor.reset();
    const std::vector<float> logits = converter::dequantize_logits(executor.forward(ids));
    const size_t T = ids.size();
    for (size_t t = T / 2 - 1; t + 1 < T; ++t)
      ppl.add_nll(converter::next_token_nll(std::span<const float>(logits.data() + t * vocab, vocab), ids[t + 1]));
  }
  return ppl.perplexity();
}

TEST(PruneCli, EvalReportsThePrunedAndUnprunedProtocol) {
  const auto dir = fresh_test_dir("prune_cli");
  const std::string args = "eval --model '" + kModel + "' --data '" + kData + "' --max-samples " +
                           std::to_string(kWindows) + " --threads 1 --json -q";
  const auto pruned = run_illm_in(dir, args + " --prune-rate 0.3 --prune-from-layer 1");
  ASSERT_EQ(pruned.exit_code, 0) << pruned.err;
  const auto j = nlohmann::json::parse(pruned.out);
  EXPECT_EQ(j.at("prune_rate"), "0.3");
  EXPECT_EQ(j.at("prune_from_layer"), 1);
  EXPECT_EQ(j.at("windows"), kWindows);
  for (const char* key : {"perplexity", "unpruned_perplexity", "prefill_tokens_per_second", "decode_tokens_per_second",
                          "unpruned_prefill_tokens_per_second", "unpruned_decode_tokens_per_second"})
    EXPECT_GT(j.at(key).get<double>(), 0) << key;
  EXPECT_LT(j.at("cache_tokens").get<int64_t>(), j.at("unpruned_cache_tokens").get<int64_t>());
  const double expected = second_half_perplexity();
  EXPECT_NEAR(j.at("unpruned_perplexity").get<double>(), expected, 1e-9 * expected);
  EXPECT_NE(j.at("perplexity").get<double>(), j.at("unpruned_perplexity").get<double>());

  const auto zero = run_illm_in(dir, args + " --prune-rate 0");
  ASSERT_EQ(zero.exit_code, 0) << zero.err;
  const auto z = nlohmann::json::parse(zero.out);
  EXPECT_EQ(z.at("perplexity").get<double>(), j.at("unpruned_perplexity").get<double>());
  EXPECT_EQ(z.at("cache_tokens"), z.at("unpruned_cache_tokens"));
}

TEST(PruneCli, GenerateWithPruning) {
  const auto dir = fresh_test_dir("prune_cli");
  const auto r = run_illm_in(dir, "generate --model '" + kModel +
                                      "' --prompt-ids 1,461,410,306,309,264,304,304,331,340,316,309 --max-tokens 4 "
                                      "--prune-rate 0.5 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("prune_rate"), "0.5");
  EXPECT_EQ(j.at("ids").size(), 4u);
}

// Each flag's errors through both commands (one process start costs ~1 s here, so the string cases of the parser are
// covered by PruneOption below).
TEST(PruneCli, BadValuesAreOneLineErrors) {
  const auto dir = fresh_test_dir("prune_cli");
  const std::string eval = "eval --model '" + kModel + "' --data '" + kData + "' --max-samples 1 ";
  const std::string generate = "generate --model '" + kModel + "' --max-tokens 2 ";
  expect_cli_error(run_illm_in(dir, eval + "--prune-rate 1"), "eval", "--prune-rate '1': must be below 1");
  expect_cli_error(run_illm_in(dir, generate + "--prune-rate abc"), "generate", "--prune-rate 'abc'");
  expect_cli_error(run_illm_in(dir, eval + "--prune-rate 0.2 --prune-from-layer 5"), "eval",
                   "--prune-from-layer 5: outside [0, 4] (the model has 5 layers)");
  expect_cli_error(run_illm_in(dir, generate + "--prune-rate 0.2 --prune-from-layer -1"), "generate",
                   "--prune-from-layer '-1'");
  expect_cli_error(run_illm_in(dir, eval + "--prune-from-layer 1"), "eval", "--prune-from-layer needs --prune-rate");
  expect_cli_error(run_illm_in(dir, "eval --model '" + std::string(ILLM_SOURCE_DIR) + "/models/stories260K' --data '" +
                                        kData + "' --prune-rate 0.2"),
                   "eval", "apply to an .illm model");
  expect_cli_error(run_illm_in(dir, eval + "--prune-rate 0.2 --reference '" + std::string(ILLM_SOURCE_DIR) +
                                        "/models/stories260K'"),
                   "eval", "--reference");
}

TEST(PruneOption, ParsesExactDecimals) {
  const TokenPruning a = converter::parse_prune_rate("0.25");
  EXPECT_EQ(a.rate_numerator, 25);
  EXPECT_EQ(a.rate_denominator, 100);
  EXPECT_EQ(converter::prune_rate_text(a), "0.25");
  const TokenPruning b = converter::parse_prune_rate(".5");
  EXPECT_EQ(b.rate_numerator * 2, b.rate_denominator);
  EXPECT_EQ(converter::parse_prune_rate("0").rate_numerator, 0);
  EXPECT_EQ(converter::prune_rate_text(converter::parse_prune_rate("0.000")), "0");
  EXPECT_EQ(converter::prune_rate_text(converter::parse_prune_rate("0.05")), "0.05");
  EXPECT_EQ(converter::parse_prune_rate("0.999999999").rate_denominator, 1000000000);
  for (const char* bad : {"1", "1.0", "2", "-0.1", "abc", "0.5.5", "1e-1", "", ".", "0.1234567891", "nan", " 0.1"})
    EXPECT_THROW(converter::parse_prune_rate(bad), Error) << "'" << bad << "'";
}

}  // namespace
}  // namespace illm
