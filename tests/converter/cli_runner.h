#pragma once
// Runs the built `illm` binary for the command-line tests and captures its exit code, stdout and stderr.
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace illm::testing {

inline const std::string kIllmBinary = std::string(ILLM_BINARY_DIR) + "/illm";
inline const std::string kSourceDir = ILLM_SOURCE_DIR;

struct CliResult {
  int exit_code = -1;
  std::string out, err;
};

inline std::string read_whole_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A fresh scratch directory per test (removed first if a previous run left it).
inline std::filesystem::path fresh_test_dir(const std::string& prefix) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const auto dir = std::filesystem::temp_directory_path() /
                   (prefix + "_" + info->test_suite_name() + "_" + info->name() + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// `args` is appended to the binary's path verbatim (quote paths yourself).
inline CliResult run_illm_in(const std::filesystem::path& scratch, const std::string& args) {
  const auto out = scratch / "cli.stdout", err = scratch / "cli.stderr";
  const std::string cmd = "'" + kIllmBinary + "' " + args + " >'" + out.string() + "' 2>'" + err.string() + "' </dev/null";
  const int status = std::system(cmd.c_str());
  CliResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  r.out = read_whole_file(out);
  r.err = read_whole_file(err);
  std::filesystem::remove(out);
  std::filesystem::remove(err);
  return r;
}

// Number of keys named `name` anywhere below the top level of `j`.
inline int nested_keys_named(const nlohmann::json& j, const std::string& name, bool top = true) {
  int n = 0;
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) n += (!top && it.key() == name) + nested_keys_named(*it, name, false);
  } else if (j.is_array()) {
    for (const auto& e : j) n += nested_keys_named(e, name, false);
  }
  return n;
}

}  // namespace illm::testing
