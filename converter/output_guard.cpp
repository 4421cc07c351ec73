#include "converter/output_guard.h"

#include <algorithm>

#include "kernels/error.h"

namespace illm::converter {
namespace fs = std::filesystem;

namespace {

// `path` equals `dir` or lies below it (both canonical).
bool is_within(const fs::path& path, const fs::path& dir) {
  auto p = path.begin();
  for (auto d = dir.begin(); d != dir.end(); ++d, ++p)
    if (p == path.end() || *p != *d) return false;
  return true;
}

// The directory an output's final rename happens in, with its symbolic links resolved.
fs::path canonical_parent(const fs::path& output) {
  std::error_code ec;
  const fs::path parent = fs::absolute(output, ec).parent_path();
  const fs::path resolved = fs::weakly_canonical(parent, ec);
  return ec ? parent.lexically_normal() : resolved;
}

}  // namespace

void OutputGuard::add_input(const fs::path& file, std::string what) {
  inputs_.push_back({file, std::move(what)});
}

void OutputGuard::add_model_directory(const fs::path& dir) {
  std::error_code ec;
  const fs::path canonical = fs::canonical(dir, ec);
  if (ec) return;  // a missing directory is reported by whoever opens it
  model_dirs_.push_back(canonical);
  for (const auto& entry : fs::directory_iterator(canonical, ec))
    if (entry.is_regular_file(ec)) add_input(entry.path(), "a file of the source model directory");
}

void OutputGuard::check(const fs::path& output, const std::string& what) const {
  std::error_code ec;
  const bool exists = fs::exists(fs::symlink_status(output, ec)) || fs::exists(output, ec);
  const fs::path target = fs::weakly_canonical(fs::absolute(output, ec), ec);
  for (const Input& input : inputs_) {
    std::error_code equivalent_ec;
    const bool same = exists ? fs::equivalent(output, input.path, equivalent_ec)
                             : target == fs::weakly_canonical(fs::absolute(input.path, ec), ec);
    if (same && !equivalent_ec)
      throw Error(what + " " + output.string() + " is " + input.what + " (" + input.path.string() +
                  "): refusing to overwrite it; choose another output path");
  }
  if (!exists) return;
  const fs::path parent = canonical_parent(output);
  for (const fs::path& dir : model_dirs_)
    if (is_within(parent, dir) || is_within(target, dir))
      throw Error(what + " " + output.string() + " would replace an entry of the source model directory " +
                  dir.string() + ": refusing to overwrite it; choose another output path");
}

}  // namespace illm::converter
