#pragma once
// Deliberate edits of an .illm file for the bad-file tests: change a dataset element or an attribute, re-sign the
// dataset's own checksum, and recompute the 512-byte header's SHA-256 (as docs/model-format.md defines it), so that
// a file whose checksums are all valid carries a value of the test's choosing.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "formats/hdf5_util.h"
#include "formats/sha256.h"

namespace illm::testing {

// Rewrites the 512-byte header with the SHA-256 of the current payload, so that an edit inside the HDF5 part gets
// past the whole-file check.
inline void rewrite_header_hash(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string bytes = ss.str();
  in.close();
  ASSERT_GT(bytes.size(), 512u);
  const std::string hash = formats::sha256_hex(std::string_view(bytes).substr(512));
  std::string header = std::string("ILLM-MODEL-FILE\nformat_version 2\npayload_sha256 ") + hash + "\n";
  header.resize(512, '\0');
  std::memcpy(bytes.data(), header.data(), 512);
  std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
}

// Applies `edit` to the stored bytes of dataset `path`, optionally re-signing its checksum attribute (the header
// hash is left to the caller).
inline void edit_dataset_bytes(const std::filesystem::path& file, const std::string& path,
                               const std::function<void(formats::h5::RawDataset&)>& edit, bool fix_checksum) {
  namespace h5 = formats::h5;
  h5::silence_errors();
  h5::Handle f = h5::checked(H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose, "open for tampering");
  h5::RawDataset raw = h5::read_raw_dataset(f, path);
  ASSERT_FALSE(raw.bytes.empty());
  edit(raw);
  h5::Handle dataset = h5::checked(H5Dopen2(f, path.c_str(), H5P_DEFAULT), H5Dclose, "open dataset");
  h5::Handle type = h5::checked(H5Dget_type(dataset), H5Tclose, "type");
  ASSERT_GE(H5Dwrite(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.bytes.data()), 0);
  if (fix_checksum) {
    ASSERT_GE(H5Adelete(dataset, h5::kChecksumAttribute), 0);
    h5::write_string_attribute(dataset, h5::kChecksumAttribute, formats::sha256_hex(raw.bytes));
  }
  dataset.close();
  ASSERT_GE(f.close(), 0);
}

// Flips the lowest bit of the first element of a dataset.
inline void tamper_dataset(const std::filesystem::path& file, const std::string& path, bool fix_checksum) {
  edit_dataset_bytes(file, path, [](formats::h5::RawDataset& raw) { raw.bytes[0] ^= 1; }, fix_checksum);
}

// Sets element `index` of an integer dataset to `value` (in its stored width), re-signs it and the header.
inline void set_dataset_element(const std::filesystem::path& file, const std::string& path, size_t index,
                                int64_t value) {
  edit_dataset_bytes(
      file, path,
      [&](formats::h5::RawDataset& raw) {
        ASSERT_TRUE(raw.is_integer);
        ASSERT_LT(index * raw.element_size, raw.bytes.size());
        std::memcpy(raw.bytes.data() + index * raw.element_size, &value, raw.element_size);  // little-endian
      },
      /*fix_checksum=*/true);
  rewrite_header_hash(file);
}

// Sets an integer attribute of the object at `object_path` (converted to its stored type) and re-signs the header.
inline void set_int_attribute(const std::filesystem::path& file, const std::string& object_path,
                              const std::string& name, int64_t value) {
  namespace h5 = formats::h5;
  h5::silence_errors();
  {
    h5::Handle f = h5::checked(H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose, "open for tampering");
    h5::Handle object = h5::checked(H5Oopen(f, object_path.c_str(), H5P_DEFAULT), H5Oclose, "open " + object_path);
    h5::Handle attribute = h5::checked(H5Aopen(object, name.c_str(), H5P_DEFAULT), H5Aclose, "attribute " + name);
    ASSERT_GE(H5Awrite(attribute, H5T_NATIVE_INT64, &value), 0) << formats::h5::last_error();
    attribute.close();
    object.close();
    ASSERT_GE(f.close(), 0);
  }
  rewrite_header_hash(file);
}

}  // namespace illm::testing
