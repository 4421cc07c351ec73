#pragma once
// Runs the built `illm` binary for the command-line tests and captures its exit code, stdout and stderr.
#include <sys/wait.h>

#include <algorithm>
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

// A failed command as the README promises it: exit code 1, exactly one line on stderr that starts with
// "illm <command>: " (`command` may be empty for errors before a command is known) and contains `needle`.
inline void expect_cli_error(const CliResult& r, const std::string& command, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 1) << "stderr:\n" << r.err;
  const std::string prefix = command.empty() ? "illm: " : "illm " + command + ": ";
  EXPECT_EQ(r.err.rfind(prefix, 0), 0u) << "stderr must start with '" << prefix << "':\n" << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "stderr must be one line:\n" << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr does not mention '" << needle << "':\n" << r.err;
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
