// The --kernels option and ILLM_KERNELS (converter/kernel_option.h): every path this CPU supports replays the golden
// vectors of a shared test model bit for bit through `illm verify` and is named in --json; generate names its path;
// an unknown path, a path this CPU lacks, or --kernels on an FP model is a one-line error with exit code 1;
// --version and inspect list the paths.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/wait.h>

#include <cstdlib>
#include <string>

#include "kernels/kernel_set.h"
#include "tests/converter/cli_runner.h"

namespace illm {
namespace {

using testing::fresh_test_dir;
using testing::run_illm_in;

const std::string kModel = std::string(ILLM_TEST_MODELS_DIR) + "/tinybible-w4a8.illm";

bool one_line(const std::string& text) { return !text.empty() && text.find('\n') == text.size() - 1; }

TEST(KernelsCli, EverySupportedPathReplaysTheGoldenVectors) {
  const auto dir = fresh_test_dir("kernels_cli");
  for (const KernelPath path : all_kernel_paths()) {
    const std::string name = kernel_path_name(path);
    if (!cpu_supports(path)) {
      std::printf("kernel path %s not verified here: the CPU lacks %s\n", name.c_str(),
                  missing_cpu_features(path).c_str());
      continue;
    }
    const auto r = run_illm_in(dir, "verify '" + kModel + "' --kernels " + name + " --json");
    ASSERT_EQ(r.exit_code, 0) << name << ": " << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j.at("kernels"), name);
    EXPECT_TRUE(j.at("ok").get<bool>()) << name << ": " << r.out;
  }
  // The environment variable selects the path when --kernels is absent.
  const auto env = run_illm_in(dir, "verify '" + kModel + "' --json");  // default: the fastest path
  ASSERT_EQ(env.exit_code, 0) << env.err;
  EXPECT_EQ(nlohmann::json::parse(env.out).at("kernels"), optimized_kernels().name);
  const int status = std::system(("ILLM_KERNELS=reference '" + testing::kIllmBinary + "' verify '" + kModel +
                                  "' --json > '" + (dir / "env.json").string() + "' 2>/dev/null")
                                     .c_str());
  ASSERT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(nlohmann::json::parse(testing::read_whole_file(dir / "env.json")).at("kernels"), "reference");
}

// The per-group test model (tinybible W4A4, G = 32): its golden vectors (recorded by `illm quantize`) replay on the
// fastest path (every path against the reference: WholeModel.* in kernel_paths_test), and `illm inspect` shows G per
// linear (text and JSON); the LM head stays per row.
TEST(KernelsCli, PerGroupModelReplaysAndInspectShowsTheGroupSize) {
  const auto dir = fresh_test_dir("kernels_cli");
  const std::string model = std::string(ILLM_TEST_MODELS_DIR) + "/tinybible-w4a4-g32.illm";
  const auto r = run_illm_in(dir, "verify '" + model + "' --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(nlohmann::json::parse(r.out).at("ok").get<bool>()) << r.out;
  const auto json = run_illm_in(dir, "inspect '" + model + "' --json");
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const auto j = nlohmann::json::parse(json.out);
  for (const auto& layer : j.at("layers"))
    for (const auto& lin : layer.at("linears")) {
      EXPECT_EQ(lin.at("group_size").get<int>(), 32);
      EXPECT_TRUE(lin.at("per_group").get<bool>());
      EXPECT_EQ(lin.at("accumulator"), "int32");
    }
  EXPECT_FALSE(j.at("lm_head").at("per_group").get<bool>());
  EXPECT_EQ(j.at("lm_head").at("group_size").get<int>(), 192);  // one group of in_features = hidden
  const auto text = run_illm_in(dir, "inspect '" + model + "'");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find(" G32 "), std::string::npos) << text.out;
  EXPECT_NE(text.out.find(" row "), std::string::npos) << text.out;  // the LM head
}

TEST(KernelsCli, GenerateNamesItsPath) {
  const auto dir = fresh_test_dir("kernels_cli");
  const auto r = run_illm_in(dir, "generate --model '" + kModel + "' --max-tokens 4 --kernels portable --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out).at("kernels"), "portable");
}

TEST(KernelsCli, BadPathsAreOneLineErrors) {
  const auto dir = fresh_test_dir("kernels_cli");
  const auto unknown = run_illm_in(dir, "verify '" + kModel + "' --kernels amx");
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_TRUE(one_line(unknown.err)) << unknown.err;
  EXPECT_NE(unknown.err.find("unknown kernel path 'amx'"), std::string::npos) << unknown.err;
  EXPECT_TRUE(unknown.out.empty());
  const auto fp = run_illm_in(dir, "eval --model '" + testing::kSourceDir + "/models/tinybible' --kernels portable");
  EXPECT_EQ(fp.exit_code, 1);
  EXPECT_NE(fp.err.find("--kernels applies to an .illm model"), std::string::npos) << fp.err;
  for (const KernelPath path : all_kernel_paths()) {
    if (cpu_supports(path)) continue;  // only testable where a path is missing
    const auto missing = run_illm_in(dir, "verify '" + kModel + "' --kernels " + kernel_path_name(path));
    EXPECT_EQ(missing.exit_code, 1);
    EXPECT_NE(missing.err.find("which this CPU lacks"), std::string::npos) << missing.err;
  }
}

TEST(KernelsCli, VersionAndInspectListThePaths) {
  const auto dir = fresh_test_dir("kernels_cli");
  const auto version = run_illm_in(dir, "--version");
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_NE(version.out.find("integer kernels: " + std::string(optimized_kernels().name)), std::string::npos)
      << version.out;
  const auto inspect = run_illm_in(dir, "inspect '" + kModel + "' --json");
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  const auto j = nlohmann::json::parse(inspect.out).at("kernels");
  EXPECT_EQ(j.at("default"), optimized_kernels().name);
  for (const KernelPath path : all_kernel_paths())
    EXPECT_EQ(j.at("paths").at(kernel_path_name(path)) == "available", cpu_supports(path)) << kernel_path_name(path);
}

}  // namespace
}  // namespace illm
