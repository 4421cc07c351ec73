// `illm export --format c99` (issue #10): writes model.bin and the runtime's sources, which build with -Werror on the
// host and generate what `illm generate` generates; identical input gives a byte-identical model.bin; a file that
// fails verification, an unsupported format or setting, and an unwritable output give one error line, exit code 1
// and nothing written.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include "formats/illm_file.h"
#include "tests/converter/cli_runner.h"
#include "tests/runtime/runtime_synthetic_model.h"
#include "tests/runtime/runtime_test_support.h"

namespace illm::rt_testing {
namespace {

namespace fs = std::filesystem;
using illm::testing::fresh_test_dir;
using illm::testing::run_illm_in;

std::string quoted(const fs::path& p) { return "'" + p.string() + "'"; }

std::string export_args(const fs::path& model, const fs::path& out, const std::string& extra = "") {
  return "export --format c99 --model " + quoted(model) + " -o " + quoted(out) + " " + extra;
}

// Nothing but `keep` in `dir` (no staging directory or partial output left behind).
void expect_only(const fs::path& dir, const std::vector<std::string>& keep) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  std::vector<std::string> expected = keep;
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(names, expected);
}

void expect_one_error_line(const illm::testing::CliResult& r, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.rfind("illm export: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

TEST(ExportCli, WritesSourcesThatBuildAndGenerateLikeIllmGenerate) {
  const fs::path dir = fresh_test_dir("export");
  const fs::path out = dir / "tinybible";
  const auto r = run_illm_in(dir, export_args(illm_path("tinybible", "w4a8"), out, "--json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto report = nlohmann::json::parse(r.out);
  EXPECT_EQ(report["model_bin_bytes"].get<uint64_t>(), fs::file_size(out / "model.bin"));
  EXPECT_EQ(report["illm_bytes"].get<uint64_t>(), fs::file_size(illm_path("tinybible", "w4a8")));
  EXPECT_EQ(report["tokenizer"], "encode+decode");
  EXPECT_GT(report["checked_positions"].get<int>(), 0);
  for (const char* f : {"model.bin", "illm_rt.h", "illm_rt.c", "illm_rt_tokenizer.c", "main.c", "Makefile", "README.md"})
    EXPECT_TRUE(fs::exists(out / f)) << f;

  // The exported directory is self-contained: it builds warning-free and runs.
  const auto build = run_command("make -C " + quoted(out) + " CC=cc 'CFLAGS=-std=c99 -O2 -Wall -Wextra -pedantic -Werror'", dir);
  ASSERT_EQ(build.exit_code, 0) << build.out << build.err;
  const std::string prompt = "--prompt 'And God said' --max-tokens 12 --json";
  const auto ours = run_command(quoted(out / "illm_rt") + " " + quoted(out / "model.bin") + " " + prompt, dir);
  ASSERT_EQ(ours.exit_code, 0) << ours.err;
  const auto theirs = run_illm_in(dir, "generate --model " + quoted(illm_path("tinybible", "w4a8")) + " --threads 1 " + prompt);
  ASSERT_EQ(theirs.exit_code, 0) << theirs.err;
  const auto a = nlohmann::json::parse(ours.out), b = nlohmann::json::parse(theirs.out);
  EXPECT_EQ(a["prompt_ids"], b["prompt_ids"]);
  EXPECT_EQ(a["ids"], b["ids"]);
  EXPECT_EQ(a["text"], b["text"]);
  EXPECT_EQ(a["stopped_at_eos"], b["stopped_at_eos"]);
  fs::remove_all(dir);
}

TEST(ExportCli, IdenticalInputGivesAByteIdenticalModelBin) {
  const fs::path dir = fresh_test_dir("export");
  for (const char* name : {"one", "two"})
    ASSERT_EQ(run_illm_in(dir, export_args(illm_path("stories260K", "w4a4"), dir / name)).exit_code, 0);
  const std::vector<uint8_t> one = read_bytes(dir / "one" / "model.bin");
  EXPECT_EQ(one, read_bytes(dir / "two" / "model.bin"));
  EXPECT_EQ(one, read_bytes(model_bin_path("stories260K", "w4a4")));  // the fixture's export, another process
  // Exporting again into an existing directory replaces the files there and keeps unrelated ones.
  std::ofstream(dir / "one" / "notes.txt") << "mine";
  ASSERT_EQ(run_illm_in(dir, export_args(illm_path("stories260K", "w4a4"), dir / "one")).exit_code, 0);
  EXPECT_EQ(read_bytes(dir / "one" / "model.bin"), one);
  EXPECT_TRUE(fs::exists(dir / "one" / "notes.txt"));
  expect_only(dir, {"one", "two"});
  fs::remove_all(dir);
}

TEST(ExportCli, AFileThatFailsVerificationWritesNothing) {
  const fs::path dir = fresh_test_dir("export");
  std::vector<uint8_t> bytes = read_bytes(illm_path("stories260K", "w4a4"));
  bytes[bytes.size() / 2] ^= 0x40;
  std::ofstream(dir / "corrupt.illm", std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                              static_cast<std::streamsize>(bytes.size()));
  expect_one_error_line(run_illm_in(dir, export_args(dir / "corrupt.illm", dir / "out")), "corrupt.illm");
  expect_only(dir, {"corrupt.illm"});
  expect_one_error_line(run_illm_in(dir, export_args(dir / "missing.illm", dir / "out")), "missing.illm");
  expect_only(dir, {"corrupt.illm"});
  fs::remove_all(dir);
}

TEST(ExportCli, UnsupportedFormatOrSettingWritesNothing) {
  const fs::path dir = fresh_test_dir("export");
  const fs::path model = illm_path("stories260K", "w4a4");
  expect_one_error_line(run_illm_in(dir, "export --format onnx2 --model " + quoted(model) + " -o " + quoted(dir / "out")),
                        "unsupported --format 'onnx2' (available: c99");
  expect_one_error_line(run_illm_in(dir, export_args(model, dir / "out", "--context 513")),
                        "context 513 outside [1, max_positions = 512]");
  expect_only(dir, {});
  // A smaller context is a supported setting: the header states it and its smaller arena.
  const auto r = run_illm_in(dir, export_args(model, dir / "small", "--context 64 --json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Runtime rt(read_bytes(dir / "small" / "model.bin"));
  EXPECT_EQ(rt.model().default_context, 64);
  EXPECT_EQ(nlohmann::json::parse(r.out)["arena_bytes"].get<uint64_t>(), illm_rt_arena_size(&rt.model(), 64));
  EXPECT_LT(illm_rt_arena_size(&rt.model(), 64), illm_rt_arena_size(&rt.model(), 512));
  fs::remove_all(dir);
}

TEST(ExportCli, UnwritableOutputWritesNothing) {
  const fs::path dir = fresh_test_dir("export");
  const fs::path model = illm_path("stories260K", "w4a4");
  std::ofstream(dir / "a-file") << "x";
  expect_one_error_line(run_illm_in(dir, export_args(model, dir / "a-file")), "exists and is not a directory");
  expect_one_error_line(run_illm_in(dir, export_args(model, dir / "a-file" / "sub")), "does not exist");
  expect_one_error_line(run_illm_in(dir, export_args(model, dir / "no" / "such" / "dir")), "does not exist");
  expect_only(dir, {"a-file"});
  EXPECT_EQ(illm::testing::read_whole_file(dir / "a-file"), "x");
  fs::remove_all(dir);
}

TEST(ExportCli, WithoutGoldenVectorsTheExportIsCheckedAgainstTheExecutor) {
  // A synthetic model (paper-conformance numerics, no tokenizer) in an .illm file that holds no golden vectors: the
  // export's check runs a short sequence through the executor and the runtime instead.
  const fs::path dir = fresh_test_dir("export");
  SyntheticShape shape;
  shape.settings = paper_conformance_settings();
  formats::IllmMetadata meta;
  meta.source_name = "synthetic";
  formats::write_illm(dir / "synthetic.illm", synthetic_model(shape), meta);
  const auto r = run_illm_in(dir, export_args(dir / "synthetic.illm", dir / "out", "--json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto report = nlohmann::json::parse(r.out);
  EXPECT_EQ(report["checked_sequences"], 1);
  EXPECT_EQ(report["checked_positions"], 16);
  EXPECT_EQ(report["tokenizer"], "none");
  Runtime rt(read_bytes(dir / "out" / "model.bin"));
  EXPECT_EQ(rt.model().settings.paper_conformance, 1);
  EXPECT_EQ(rt.model().settings.exp_quadratic, 0);
  fs::remove_all(dir);
}

// A W4A4 model with 8-bit Q/K/V (qkv_bits, .illm version 5) through the whole path: `illm export` checks the
// runtime against the executor and writes required feature 64 and the width; illm_rt --info names the width; the
// runtime generates what `illm generate` generates on the .illm file.
TEST(ExportCli, AModelWithQkvBitsExportsAndGeneratesLikeIllmGenerate) {
  const fs::path dir = fresh_test_dir("export");
  formats::LoadedIllm loaded = formats::read_illm(illm_path("tinybible", "w4a4"));
  loaded.model.settings.qkv_bits = 8;
  loaded.meta.golden.clear();  // they are the a_bits-wide model's: the export checks against the executor instead
  formats::write_illm(dir / "kv8.illm", loaded.model, loaded.meta);
  const auto r = run_illm_in(dir, export_args(dir / "kv8.illm", dir / "out", "--json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GT(nlohmann::json::parse(r.out)["checked_positions"].get<int>(), 0);
  {
    Runtime rt(read_bytes(dir / "out" / "model.bin"));
    EXPECT_EQ(rt.model().required_features, ILLM_RT_REQUIRED_QKV_BITS);
    EXPECT_EQ(rt.model().qkv_bits, 8);
  }
  const std::string program = quoted(kBinaryDir / "runtime" / "illm_rt");
  const auto info = run_command(program + " " + quoted(dir / "out" / "model.bin") + " --info", dir);
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_NE(info.out.find("W4 A4 (Q/K/V 8)"), std::string::npos) << info.out;
  const std::string prompt = "--prompt 'And God said' --max-tokens 12 --json";
  const auto ours = run_command(program + " " + quoted(dir / "out" / "model.bin") + " " + prompt, dir);
  ASSERT_EQ(ours.exit_code, 0) << ours.err;
  const auto theirs = run_illm_in(dir, "generate --model " + quoted(dir / "kv8.illm") + " --threads 1 " + prompt);
  ASSERT_EQ(theirs.exit_code, 0) << theirs.err;
  const auto a = nlohmann::json::parse(ours.out), b = nlohmann::json::parse(theirs.out);
  EXPECT_EQ(a["prompt_ids"], b["prompt_ids"]);
  EXPECT_EQ(a["ids"], b["ids"]);
  EXPECT_EQ(a["text"], b["text"]);
  fs::remove_all(dir);
}

TEST(ExportCli, HelpNamesTheFormats) {
  const fs::path dir = fresh_test_dir("export");
  const auto r = run_illm_in(dir, "export --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("c99"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--context"), std::string::npos) << r.out;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace illm::rt_testing
