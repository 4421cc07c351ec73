#include "converter/output_check.h"

#include <cstdio>
#include <string>

#include "formats/atomic_file.h"
#include "kernels/error.h"

namespace illm::converter {

void check_output_writable(const std::filesystem::path& out) {
  namespace fs = std::filesystem;
  const fs::path dir = out.has_parent_path() ? out.parent_path() : fs::path(".");
  if (!fs::is_directory(dir)) throw Error("output " + out.string() + ": directory " + dir.string() + " does not exist");
  if (fs::is_directory(out)) throw Error("output " + out.string() + " is a directory");
  // access(W_OK) says yes to root everywhere; creating a file is the real test (the AtomicFile removes it).
  formats::AtomicFile probe(out);
  std::FILE* f = std::fopen(probe.temporary().c_str(), "wb");
  if (f == nullptr) throw Error("output " + out.string() + ": directory " + dir.string() + " is not writable");
  std::fclose(f);
}

}  // namespace illm::converter
