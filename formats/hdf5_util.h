#pragma once
// Thin helpers over the HDF5 C API for the model file: RAII handles for hid_t, attributes, and integer,
// byte and text datasets that each carry a SHA-256 attribute of their stored bytes (checked on read, so a
// corrupted tensor is reported by name). Errors are illm::Error naming the file, the object and the reason.
#include <hdf5.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "kernels/error.h"

namespace illm::formats::h5 {

static_assert(std::endian::native == std::endian::little,
              "the model file stores little-endian integers and hashes them as laid out in memory");

// Name of the per-dataset checksum attribute: lower-case hex SHA-256 of the dataset's stored bytes.
inline constexpr const char* kChecksumAttribute = "sha256";

// Turn off HDF5's printing of its error stack (we report errors ourselves).
void silence_errors();
// The innermost message of HDF5's current error stack ("" when empty): added to our error messages.
std::string last_error();

// Owns one hid_t and closes it with the matching H5?close on destruction.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& other) noexcept : id_(std::exchange(other.id_, -1)), closer_(other.closer_) {}
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, -1);
      closer_ = other.closer_;
    }
    return *this;
  }
  ~Handle() { reset(); }

  hid_t get() const { return id_; }
  operator hid_t() const { return id_; }  // NOLINT: handles are passed straight to the C API
  // Closes now and returns the status (for the file, whose close flushes and may fail).
  herr_t close() {
    herr_t status = 0;
    if (id_ >= 0 && closer_ != nullptr) status = closer_(id_);
    id_ = -1;
    return status;
  }

 private:
  void reset() { close(); }
  hid_t id_ = -1;
  Closer closer_ = nullptr;
};

// Wraps `id` in a Handle, or throws illm::Error("<what>: <HDF5 message>") when id < 0.
Handle checked(hid_t id, Handle::Closer closer, const std::string& what);

// "<file>: <object path>" for messages.
std::string describe(hid_t object);
std::string describe(hid_t location, const std::string& name);

// Groups (created without timestamps, so that identical content gives identical bytes).
Handle create_group(hid_t location, const std::string& name);
Handle open_group(hid_t location, const std::string& name);  // throws "missing group" when absent

// Scalar attributes. Integers are stored as little-endian int64 unless a narrower `file_type` is given.
void write_int_attribute(hid_t object, const std::string& name, int64_t value, hid_t file_type = H5T_STD_I64LE);
int64_t read_int_attribute(hid_t object, const std::string& name);
// Reads and checks that the value fits [low, high].
int64_t read_int_attribute(hid_t object, const std::string& name, int64_t low, int64_t high);
void write_string_attribute(hid_t object, const std::string& name, const std::string& value);
std::string read_string_attribute(hid_t object, const std::string& name);

// Integer widths a dataset may be stored with; `smallest_int_type` picks the first that holds [min, max].
enum class StoredInt { kUint8, kInt8, kInt16, kInt32, kInt64 };
StoredInt smallest_int_type(int64_t min_value, int64_t max_value);

// Raw dataset I/O: writes `bytes` (already in the stored type's little-endian layout) with a checksum;
// reads a dataset's stored bytes and verifies its checksum (throws naming the dataset on mismatch).
struct RawDataset {
  std::vector<uint8_t> bytes;
  std::vector<hsize_t> dims;
  size_t element_size = 0;
  bool is_signed_integer = false;
  bool is_integer = false;
};
void write_raw_dataset(hid_t location, const std::string& name, hid_t file_type, const std::vector<hsize_t>& dims,
                       std::span<const uint8_t> bytes);
RawDataset read_raw_dataset(hid_t location, const std::string& name);
// An expected extent that accepts any length (e.g. {kAnyExtent} for a 1-D array of any size).
inline constexpr hsize_t kAnyExtent = ~hsize_t{0};
// Throws "<file>: <path>: shape [..], expected [..]" when the dims differ (kAnyExtent matches any extent).
void check_dims(hid_t location, const std::string& name, const std::vector<hsize_t>& dims,
                const std::vector<hsize_t>& expected_dims);

// Byte size and HDF5 file type of a stored integer width.
size_t stored_int_size(StoredInt type);
hid_t stored_int_file_type(StoredInt type);

// An integer array stored with the smallest fitting type; `dims` must multiply to values.size().
template <typename T>
void write_int_dataset(hid_t location, const std::string& name, std::span<const T> values,
                       const std::vector<hsize_t>& dims) {
  int64_t min_value = 0, max_value = 0;
  for (const T v : values) {
    min_value = std::min<int64_t>(min_value, static_cast<int64_t>(v));
    max_value = std::max<int64_t>(max_value, static_cast<int64_t>(v));
  }
  const StoredInt type = smallest_int_type(min_value, max_value);
  const size_t size = stored_int_size(type);
  std::vector<uint8_t> bytes(values.size() * size);
  for (size_t i = 0; i < values.size(); ++i) {
    const int64_t v = static_cast<int64_t>(values[i]);
    std::memcpy(bytes.data() + i * size, &v, size);  // little-endian: the low bytes are the narrowed value
  }
  write_raw_dataset(location, name, stored_int_file_type(type), dims, bytes);
}

// Reads an integer dataset (any stored integer width), checks its checksum, that its dims equal
// `expected_dims`, and that every value fits T.
template <typename T>
std::vector<T> read_int_dataset(hid_t location, const std::string& name, const std::vector<hsize_t>& expected_dims) {
  const RawDataset raw = read_raw_dataset(location, name);
  check_dims(location, name, raw.dims, expected_dims);
  if (!raw.is_integer || raw.element_size > 8)
    throw Error(describe(location, name) + ": expected an integer dataset");
  const size_t count = raw.bytes.size() / raw.element_size;
  std::vector<T> values(count);
  for (size_t i = 0; i < count; ++i) {
    uint64_t bits = 0;
    std::memcpy(&bits, raw.bytes.data() + i * raw.element_size, raw.element_size);
    const int shift = 64 - 8 * static_cast<int>(raw.element_size);
    // Sign- or zero-extend the stored width to 64 bits.
    const int64_t v = raw.is_signed_integer ? (static_cast<int64_t>(bits << shift) >> shift)
                                            : static_cast<int64_t>(bits);
    if (!raw.is_signed_integer && raw.element_size == 8 && static_cast<int64_t>(bits) < 0)
      throw Error(describe(location, name) + ": unsigned 64-bit value out of range at index " + std::to_string(i));
    if (v < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
        (v > 0 && static_cast<uint64_t>(v) > static_cast<uint64_t>(std::numeric_limits<T>::max())))
      throw Error(describe(location, name) + ": value " + std::to_string(v) + " at index " + std::to_string(i) +
                  " does not fit the expected integer type");
    values[i] = static_cast<T>(v);
  }
  return values;
}

// Byte strings (tokenizer bytes, packed codes): 1-D or 2-D uint8 datasets.
void write_bytes_dataset(hid_t location, const std::string& name, std::span<const uint8_t> bytes,
                         const std::vector<hsize_t>& dims);
std::vector<uint8_t> read_bytes_dataset(hid_t location, const std::string& name,
                                        const std::vector<hsize_t>& expected_dims);

// Text (JSON): a scalar fixed-length, NUL-padded UTF-8 string dataset (h5py reads it as bytes).
void write_text_dataset(hid_t location, const std::string& name, const std::string& text);
std::string read_text_dataset(hid_t location, const std::string& name);

// Re-reads every dataset in the file and checks its checksum attribute (a missing attribute is an error).
// Returns the number of datasets checked.
size_t verify_all_dataset_checksums(hid_t file);

}  // namespace illm::formats::h5
