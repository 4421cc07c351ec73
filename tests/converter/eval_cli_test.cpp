// `illm eval` end to end: runs the built binary, checks its JSON and its error paths.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/converter/cli_runner.h"

namespace {

namespace fs = std::filesystem;

const std::string kStories = std::string(ILLM_SOURCE_DIR) + "/models/stories260K";

using RunResult = illm::testing::CliResult;
using illm::testing::nested_keys_named;

fs::path scratch_dir() {
  auto dir = fs::temp_directory_path() /
             ("illm_eval_cli_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::create_directories(dir);
  return dir;
}

RunResult run_illm(const std::string& args) { return illm::testing::run_illm_in(scratch_dir(), args); }

TEST(EvalCli, JsonOnStories260K) {
  const auto r = run_illm("eval --model '" + kStories + "' --data '" + kStories + "/eval.jsonl' --threads 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j;
  ASSERT_NO_THROW(j = nlohmann::json::parse(r.out)) << "stdout must be exactly one JSON object:\n" << r.out;
  ASSERT_TRUE(j.is_object());
  EXPECT_NEAR(j.at("perplexity").get<double>(), 17.9075, 0.005);  // independent float64 reference
  EXPECT_EQ(j.at("predicted_tokens").get<int64_t>(), 64 * 255);
  EXPECT_EQ(j.at("windows").get<int64_t>(), 64);
  EXPECT_GE(j.at("seconds").get<double>(), 0.0);
  EXPECT_FALSE(j.contains("ppl"));
  EXPECT_EQ(nested_keys_named(j, "perplexity"), 0);
  EXPECT_EQ(nested_keys_named(j, "ppl"), 0);
}

TEST(EvalCli, HumanOutputAndOptions) {
  const auto r = run_illm("eval --model '" + kStories + "' --data '" + kStories +
                          "/eval.jsonl' --seq-len 64 --max-samples 3 --float64 --threads 1 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("perplexity"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("189 in 3 windows"), std::string::npos) << r.out;  // 3 windows of 64 → 3·63
  EXPECT_TRUE(r.err.empty()) << "--quiet must keep stderr silent: " << r.err;
}

TEST(EvalCli, Help) {
  const auto top = run_illm("--help");
  EXPECT_EQ(top.exit_code, 0);
  EXPECT_NE(top.out.find("eval"), std::string::npos) << top.out;
  const auto sub = run_illm("eval --help");
  EXPECT_EQ(sub.exit_code, 0);
  for (const char* opt : {"--model", "--data", "--seq-len", "--max-samples", "--threads", "--json", "--float64"})
    EXPECT_NE(sub.out.find(opt), std::string::npos) << opt << " missing from:\n" << sub.out;
}

void expect_one_line_error(const RunResult& r, const std::string& needle) {
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("illm eval: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST(EvalCli, MissingDataFile) {
  const auto r = run_illm("eval --model '" + kStories + "' --data /nonexistent/illm/eval.jsonl --json");
  expect_one_line_error(r, "/nonexistent/illm/eval.jsonl");
}

TEST(EvalCli, TokenIdOutsideVocabulary) {
  const auto file = scratch_dir() / "bad.jsonl";
  std::ofstream(file) << "{\"input_ids\": [1, 20, 30]}\n{\"input_ids\": [1, 512, 3]}\n";
  const auto r = run_illm("eval --model '" + kStories + "' --data '" + file.string() + "' --quiet");
  expect_one_line_error(r, "512");
  EXPECT_NE(r.err.find("bad.jsonl"), std::string::npos) << r.err;
}

TEST(EvalCli, TextWithoutTokenizer) {
  const auto file = scratch_dir() / "story.txt";
  std::ofstream(file) << "Once upon a time\n";
  const auto r = run_illm("eval --model '" + kStories + "' --data '" + file.string() + "'");
  expect_one_line_error(r, "tokenizer");
}

TEST(EvalCli, MissingModelDirectory) {
  const auto r = run_illm("eval --model /nonexistent/illm-model --data '" + kStories + "/eval.jsonl'");
  expect_one_line_error(r, "/nonexistent/illm-model");
}

// The README: every error exits 1, command-line parse errors included (CLI11's own codes were 104-109).
TEST(EvalCli, UnknownOptionIsAParseError) {
  const auto r = run_illm("eval --no-such-option");
  EXPECT_EQ(r.exit_code, 1);
  expect_one_line_error(r, "--no-such-option");
}

}  // namespace
