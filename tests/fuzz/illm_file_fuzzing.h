#pragma once
// The two .illm targets share this: write the bytes to a file on /dev/shm (HDF5 reads files, not memory), then run
// the readers every command uses: read_illm (user block, HDF5, every tensor's checksum and shape, the executor's
// validation) and verify_illm_integrity.
#include <hdf5.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "formats/illm_file.h"
#include "tests/fuzz/fuzz_support.h"

namespace illm::fuzz {

inline const std::string& scratch_model_path() {
  static const std::string path = (std::filesystem::exists("/dev/shm") ? std::string("/dev/shm") : std::string("/tmp")) +
                                  "/illm_fuzz_" + std::to_string(::getpid()) + ".illm";
  return path;
}

inline void read_model_bytes(const std::string& bytes) {
  const std::string& path = scratch_model_path();
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) __builtin_trap();
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) __builtin_trap();
  std::fclose(f);
  expect_refusal_or_success([&] { (void)formats::read_illm(path); });
  expect_refusal_or_success([&] { formats::verify_illm_integrity(path); });
  // Our side closes every HDF5 object it opened, on every error path (libhdf5's own leaks on malformed metadata
  // are suppressed by tests/fuzz/lsan.supp; this check keeps ours visible).
  if (H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) != 0) __builtin_trap();
}

}  // namespace illm::fuzz
