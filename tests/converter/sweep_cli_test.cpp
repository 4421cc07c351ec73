// `illm sweep` end to end on stories260K with a tiny RTN grid (2 bit settings × 2 clip constants): the result
// files, resuming (a rerun skips every point and rebuilds identical results), sharding (two shards into one
// directory give the same points as one run) and bad input.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <utility>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace {

namespace fs = std::filesystem;

const std::string kIllm = std::string(ILLM_BINARY_DIR) + "/illm";
const std::string kStories = std::string(ILLM_SOURCE_DIR) + "/models/stories260K";
const std::string kConfigs = std::string(ILLM_SOURCE_DIR) + "/configs";

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

fs::path scratch_root() {
  static const fs::path root = [] {
    auto dir = fs::temp_directory_path() / ("illm_sweep_cli_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
  }();
  return root;
}

RunResult run_illm(const std::string& args) {
  const auto out = scratch_root() / "stdout", err = scratch_root() / "stderr";
  const std::string cmd = "'" + kIllm + "' " + args + " >'" + out.string() + "' 2>'" + err.string() + "'";
  const int status = std::system(cmd.c_str());
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

// The bundled W8A8 and W4A4 recipes with 4 calibration samples (the --recipe-dir option makes this possible). W4A4
// is w4a4-g8.json: the default w4a4.json's 32-wide weight groups do not divide stories260K's intermediate 172.
fs::path small_recipe_dir() {
  const fs::path dir = scratch_root() / "recipes";
  if (fs::exists(dir)) return dir;
  fs::create_directories(dir);
  for (const auto& [bits, file] : {std::pair{"w8a8", "w8a8.json"}, std::pair{"w4a4", "w4a4-g8.json"}}) {
    auto recipe = nlohmann::ordered_json::parse(slurp(fs::path(kConfigs) / file));
    recipe["samples"] = 4;
    std::ofstream(dir / (std::string(bits) + ".json")) << recipe.dump(2);
  }
  return dir;
}

std::string sweep_args(const fs::path& out_dir, const std::string& extra = "") {
  return "sweep --model '" + kStories + "' --method rtn --bits w8a8,w4a4 --clip 8,none --max-eval-windows 2 "
         "--threads 2 --recipe-dir '" + small_recipe_dir().string() + "' -o '" + out_dir.string() + "' " + extra;
}

size_t count_lines(const std::string& text) { return std::count(text.begin(), text.end(), '\n'); }

// The points of results.json keyed by "<bits>-c<c>", without their timings (which differ between runs).
std::map<std::string, nlohmann::json> points_without_times(const nlohmann::json& results) {
  std::map<std::string, nlohmann::json> points;
  for (auto p : results.at("points")) {
    const std::string c = p.at("c").is_string() ? p.at("c").get<std::string>() : std::to_string(p.at("c").get<int>());
    const std::string key = p.at("bits").get<std::string>() + "-c" + c;
    p.erase("calibration_seconds");
    p.erase("integer_eval_seconds");
    points[key] = p;
  }
  return points;
}

// Counts keys named `name` anywhere in `j`.
int keys_named(const nlohmann::json& j, const std::string& name) {
  int n = 0;
  if (j.is_object())
    for (auto it = j.begin(); it != j.end(); ++it) n += (it.key() == name) + keys_named(*it, name);
  else if (j.is_array())
    for (const auto& e : j) n += keys_named(e, name);
  return n;
}

TEST(SweepCli, GridResumeAndShards) {
  const fs::path dir = scratch_root() / "full";
  const auto first = run_illm(sweep_args(dir));
  ASSERT_EQ(first.exit_code, 0) << first.err;

  // results.csv: a header and one row per grid point.
  const std::string csv = slurp(dir / "results.csv");
  ASSERT_EQ(count_lines(csv), 5u) << csv;
  EXPECT_EQ(csv.rfind("bits,c,method,perplexity,reference_perplexity,kl_mean,top1,model_bytes,", 0), 0u) << csv;
  for (const char* row : {"\nw8a8,8,rtn,", "\nw8a8,none,rtn,", "\nw4a4,8,rtn,", "\nw4a4,none,rtn,"})
    EXPECT_NE(csv.find(row), std::string::npos) << row << " missing from\n" << csv;

  nlohmann::json results;
  ASSERT_NO_THROW(results = nlohmann::json::parse(slurp(dir / "results.json")));
  ASSERT_EQ(results.at("points").size(), 4u);
  const double fp = results.at("fp").at("reference_perplexity").get<double>();
  // Only a point's own integer perplexity is named `perplexity`; FP is reference_perplexity, once.
  EXPECT_EQ(keys_named(results, "perplexity"), 4);
  EXPECT_EQ(keys_named(results, "ppl"), 0);
  EXPECT_EQ(keys_named(results, "reference_perplexity"), 1);

  // FP perplexity agrees with `illm eval` (the FP model's own command) on the same two windows.
  const auto eval = run_illm("eval --model '" + kStories + "' --data '" + kStories +
                             "/eval.jsonl' --max-samples 2 --threads 2 --json --quiet");
  ASSERT_EQ(eval.exit_code, 0) << eval.err;
  EXPECT_NEAR(fp, nlohmann::json::parse(eval.out).at("perplexity").get<double>(), 1e-9 * fp);

  std::map<std::string, int64_t> bytes;
  for (const auto& p : results.at("points")) {
    const double ppl = p.at("perplexity").get<double>();
    EXPECT_GT(ppl, 1.0);
    EXPECT_GE(p.at("kl_mean").get<double>(), 0.0);
    EXPECT_GE(p.at("top1").get<double>(), 0.0);
    EXPECT_LE(p.at("top1").get<double>(), 1.0);
    EXPECT_EQ(p.at("predicted_tokens").get<int64_t>(), 2 * 255);
    EXPECT_GE(p.at("calibration_seconds").get<double>(), 0.0);
    bytes[p.at("bits").get<std::string>()] = p.at("model_bytes").get<int64_t>();
    if (p.at("bits") == "w8a8") {
      EXPECT_LT(ppl, 1.1 * fp) << "W8A8 RTN should be close to FP";
    }
  }
  EXPECT_LT(bytes["w4a4"], bytes["w8a8"]) << "int4 codes are packed two per byte";

  const std::string svg = slurp(dir / "sweep.svg");
  EXPECT_NE(svg.find("<svg"), std::string::npos);
  EXPECT_NE(svg.find("stroke-dasharray"), std::string::npos) << "FP reference line";
  EXPECT_NE(svg.find("W8A8"), std::string::npos);
  EXPECT_NE(svg.find("W4A4"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir / "models")) << "models are kept only with --keep-models";

  // Rerun: every point skipped, results rebuilt identically.
  const auto again = run_illm(sweep_args(dir));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("0 computed, 4 skipped"), std::string::npos) << again.out;
  EXPECT_NE(again.err.find("skipped"), std::string::npos) << again.err;
  EXPECT_EQ(again.err.find("calibrate"), std::string::npos) << "nothing may be recalibrated:\n" << again.err;
  EXPECT_EQ(slurp(dir / "results.csv"), csv);
  EXPECT_EQ(nlohmann::json::parse(slurp(dir / "results.json")), results);
  EXPECT_EQ(slurp(dir / "sweep.svg"), svg);

  // Two shards into a fresh directory: the union is the full grid, with the same numbers.
  const fs::path sharded = scratch_root() / "sharded";
  const auto shard0 = run_illm(sweep_args(sharded, "--shard 0/2"));
  ASSERT_EQ(shard0.exit_code, 0) << shard0.err;
  EXPECT_EQ(count_lines(slurp(sharded / "results.csv")), 3u) << "shard 0/2 holds one whole bit setting";
  const auto shard1 = run_illm(sweep_args(sharded, "--shard 1/2 --json"));
  ASSERT_EQ(shard1.exit_code, 0) << shard1.err;
  const auto merged = nlohmann::json::parse(slurp(sharded / "results.json"));
  EXPECT_EQ(nlohmann::json::parse(shard1.out), merged) << "--json prints results.json";
  EXPECT_EQ(count_lines(slurp(sharded / "results.csv")), 5u);
  EXPECT_EQ(points_without_times(merged), points_without_times(results));
}

void expect_one_line_error(const RunResult& r, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.err.rfind("illm sweep: ", 0), 0u) << r.err;
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

TEST(SweepCli, BadInput) {
  const fs::path dir = scratch_root() / "bad";
  const std::string base = "sweep --model '" + kStories + "' -o '" + dir.string() + "' ";
  expect_one_line_error(run_illm(base + "--bits w4a4,w5a5"), "w5a5");
  expect_one_line_error(run_illm(base + "--bits 4bit"), "4bit");
  expect_one_line_error(run_illm(base + "--clip 8,0"), "c = 0");
  expect_one_line_error(run_illm(base + "--clip -2"), "c = -2");
  expect_one_line_error(run_illm(base + "--clip 8,abc"), "abc");
  expect_one_line_error(run_illm(base + "--clip 8,8"), "twice");
  expect_one_line_error(run_illm(base + "--shard 2/2"), "--shard");
  expect_one_line_error(run_illm(base + "--shard 1"), "--shard");
  expect_one_line_error(run_illm(base + "--eval /nonexistent/illm/eval.jsonl"), "/nonexistent/illm/eval.jsonl");
  EXPECT_FALSE(fs::exists(dir)) << "bad input must leave no output directory";
  EXPECT_NE(run_illm(base + "--method int3").exit_code, 0);
}

}  // namespace
