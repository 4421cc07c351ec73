// `illm export --format onnx` as a user runs it: the summary and --json, and bad input (a damaged .illm file, an
// unsupported setting, a path that cannot be written, an unknown format) → exit code 1, one line on stderr naming
// the file and the reason, nothing written.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "converter/cli_runner.h"
#include "formats/illm_file.h"

namespace illm {
namespace {

namespace fs = std::filesystem;
using testing::CliResult;
using testing::fresh_test_dir;
using testing::run_illm_in;

const fs::path kModel = fs::path(ILLM_BINARY_DIR) / "test_models" / "stories260K-w4a4.illm";

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

int entries(const fs::path& dir) {
  return static_cast<int>(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

void expect_one_error_line(const CliResult& r, const std::string& must_contain) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.err.rfind("illm export: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(must_contain), std::string::npos) << r.err;
}

TEST(ExportCli, WritesTheOnnxModelAndDescribesItAsOneJsonObject) {
  const fs::path dir = fresh_test_dir("export_cli");
  const fs::path out = dir / "model.onnx";
  const CliResult r = run_illm_in(dir, "export --format onnx --model " + q(kModel) + " -o " + q(out) + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);  // the whole of stdout is one object
  EXPECT_EQ(j.at("format"), "onnx");
  EXPECT_EQ(j.at("opset"), 17);
  EXPECT_EQ(j.at("bytes").get<uint64_t>(), fs::file_size(out));
  EXPECT_GT(j.at("nodes").get<int64_t>(), 1000);
  EXPECT_GT(j.at("operators").at("MatMul").get<int64_t>(), 0);
  EXPECT_NE(r.err.find("export: building the onnx model"), std::string::npos) << r.err;  // progress on stderr
  EXPECT_EQ(entries(dir), 1);
  const CliResult text = run_illm_in(dir, "export --format onnx --model " + q(kModel) + " -o " + q(out) + " -q");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("wrote " + out.string()), std::string::npos) << text.out;
  EXPECT_TRUE(text.err.empty()) << text.err;
  fs::remove_all(dir);
}

TEST(ExportCli, ADamagedModelFileIsRefusedByName) {
  const fs::path dir = fresh_test_dir("export_cli");
  const fs::path damaged = dir / "damaged.illm", out = dir / "model.onnx";
  fs::copy_file(kModel, damaged);
  {
    std::fstream f(damaged, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(damaged) / 2));
    f.put('\x5a');
  }
  expect_one_error_line(run_illm_in(dir, "export --format onnx --model " + q(damaged) + " -o " + q(out) + " -q"),
                        damaged.string());
  EXPECT_EQ(entries(dir), 1);  // only the damaged input
  fs::remove_all(dir);
}

TEST(ExportCli, AnUnsupportedSettingIsRefusedNamingTheField) {
  const fs::path dir = fresh_test_dir("export_cli");
  const fs::path model = dir / "b_m2.illm", out = dir / "model.onnx";
  formats::LoadedIllm loaded = formats::read_illm(kModel);
  loaded.model.settings.mantissa_bits = 2;  // valid for the executor, beyond the graph's 64-bit DI_REQUANT
  formats::write_illm(model, loaded.model, loaded.meta);
  expect_one_error_line(run_illm_in(dir, "export --format onnx --model " + q(model) + " -o " + q(out) + " -q"),
                        "unsupported model: settings.mantissa_bits = 2");
  EXPECT_EQ(entries(dir), 1);
  fs::remove_all(dir);
}

TEST(ExportCli, UnwritablePathsAndUnknownFormatsGiveOneClearError) {
  const fs::path dir = fresh_test_dir("export_cli");
  const fs::path file = dir / "plain_file";
  std::ofstream(file) << "x";
  expect_one_error_line(run_illm_in(dir, "export --format onnx --model " + q(kModel) + " -o " + q(file / "m.onnx") + " -q"),
                        (file / "m.onnx").string());
  expect_one_error_line(run_illm_in(dir, "export --format onnx --model " + q(kModel) + " -o " + q(dir) + " -q"), "is a directory");
  expect_one_error_line(run_illm_in(dir, "export --format tflite --model " + q(kModel) + " -o " + q(dir / "m") + " -q"),
                        "unsupported --format 'tflite' (available: c99, onnx)");
  EXPECT_EQ(entries(dir), 1);
  const CliResult help = run_illm_in(dir, "export --help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("onnx"), std::string::npos) << help.out;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace illm
