#include "formats/hdf5_util.h"

#include "formats/sha256.h"

namespace illm::formats::h5 {
namespace {

// Property lists that keep object timestamps out of the file (byte-identical output).
Handle group_create_plist() {
  Handle gcpl = checked(H5Pcreate(H5P_GROUP_CREATE), H5Pclose, "H5Pcreate(group)");
  if (H5Pset_obj_track_times(gcpl, 0) < 0) throw Error("H5Pset_obj_track_times(group): " + last_error());
  return gcpl;
}

Handle dataset_create_plist() {
  Handle dcpl = checked(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, "H5Pcreate(dataset)");
  if (H5Pset_obj_track_times(dcpl, 0) < 0) throw Error("H5Pset_obj_track_times(dataset): " + last_error());
  return dcpl;
}

bool link_exists(hid_t location, const std::string& name) {
  return H5Lexists(location, name.c_str(), H5P_DEFAULT) > 0;
}

std::string dims_text(const std::vector<hsize_t>& dims) {
  std::string text = "[";
  for (size_t i = 0; i < dims.size(); ++i)
    text += (i ? ", " : "") + (dims[i] == kAnyExtent ? std::string("any") : std::to_string(dims[i]));
  return text + "]";
}

hsize_t element_count(const std::vector<hsize_t>& dims) {
  hsize_t count = 1;
  for (hsize_t d : dims) count *= d;
  return count;
}

Handle string_type(size_t length) {
  Handle type = checked(H5Tcopy(H5T_C_S1), H5Tclose, "H5Tcopy");
  // HDF5 forbids zero-sized strings: an empty value is stored as one NUL byte.
  if (H5Tset_size(type, std::max<size_t>(length, 1)) < 0 || H5Tset_strpad(type, H5T_STR_NULLPAD) < 0 ||
      H5Tset_cset(type, H5T_CSET_UTF8) < 0)
    throw Error("string type: " + last_error());
  return type;
}

std::string strip_nul_padding(std::string text) {
  while (!text.empty() && text.back() == '\0') text.pop_back();
  return text;
}

Handle open_attribute(hid_t object, const std::string& name) {
  if (H5Aexists(object, name.c_str()) <= 0) throw Error(describe(object) + ": missing attribute '" + name + "'");
  return checked(H5Aopen(object, name.c_str(), H5P_DEFAULT), H5Aclose, describe(object) + ": attribute " + name);
}

// Collects dataset paths; no exception may cross HDF5's C frames, so checking happens afterwards.
herr_t collect_dataset(hid_t, const char* name, const H5O_info_t* info, void* op_data) {
  if (info->type != H5O_TYPE_DATASET) return 0;
  try {
    static_cast<std::vector<std::string>*>(op_data)->emplace_back(name);
  } catch (...) {
    return -1;
  }
  return 0;
}

}  // namespace

void silence_errors() {
  // No HDF5 clean-up at exit: after a failed write (a full disk) libhdf5 1.10 keeps the half-closed file in its
  // tables and its atexit handler then crashes in H5F__close_cb (measured: SIGSEGV after the error was reported).
  // Every file is closed explicitly, so there is nothing left for that handler to do. Effective before the
  // library's first use only, which is why it sits here, in the first call of every reader and writer.
  static const bool once = (H5dont_atexit(), true);
  (void)once;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

std::string last_error() {
  std::string message;
  auto walker = [](unsigned, const H5E_error2_t* error, void* data) -> herr_t {
    auto* out = static_cast<std::string*>(data);
    // Upward walks start at the most specific error: keep the first description.
    if (out->empty() && error->desc != nullptr && *error->desc != '\0') *out = error->desc;
    return 0;
  };
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walker, &message);
  if (message.empty()) return "HDF5 error";
  // A failed system call: "file write failed: time = ..., errno = 27, error message = 'File too large', ..."
  // becomes "file write failed: File too large".
  const std::string key = "error message = '";
  if (const size_t at = message.find(key); at != std::string::npos) {
    const size_t begin = at + key.size(), end = message.find('\'', begin);
    const std::string reason = message.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
    message = message.substr(0, message.find(':')) + ": " + reason;
  }
  return message;
}

Handle checked(hid_t id, Handle::Closer closer, const std::string& what) {
  if (id < 0) throw Error(what + ": " + last_error());
  return Handle(id, closer);
}

std::string describe(hid_t object) {
  std::string file(1024, '\0');
  const ssize_t file_length = H5Fget_name(object, file.data(), file.size());
  file.resize(file_length > 0 ? std::min<size_t>(static_cast<size_t>(file_length), file.size() - 1) : 0);
  std::string path(1024, '\0');
  const ssize_t path_length = H5Iget_name(object, path.data(), path.size());
  path.resize(path_length > 0 ? std::min<size_t>(static_cast<size_t>(path_length), path.size() - 1) : 0);
  return (file.empty() ? std::string("<hdf5>") : file) + ": " + (path.empty() ? std::string("/") : path);
}

std::string describe(hid_t location, const std::string& name) {
  std::string text = describe(location);
  if (text.back() != '/') text += '/';
  return text + name;
}

Handle create_group(hid_t location, const std::string& name) {
  Handle gcpl = group_create_plist();
  return checked(H5Gcreate2(location, name.c_str(), H5P_DEFAULT, gcpl, H5P_DEFAULT), H5Gclose,
                 describe(location, name) + ": cannot create group");
}

Handle open_group(hid_t location, const std::string& name) {
  if (!link_exists(location, name)) throw Error(describe(location, name) + ": missing group");
  return checked(H5Gopen2(location, name.c_str(), H5P_DEFAULT), H5Gclose, describe(location, name) + ": open group");
}

void write_int_attribute(hid_t object, const std::string& name, int64_t value, hid_t file_type) {
  Handle space = checked(H5Screate(H5S_SCALAR), H5Sclose, "H5Screate");
  Handle attribute = checked(H5Acreate2(object, name.c_str(), file_type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
                             describe(object) + ": create attribute " + name);
  // The library converts the int64 in memory to the (possibly narrower) file type; reject overflow first.
  const size_t size = H5Tget_size(file_type);
  if (size < 8) {
    const bool is_signed = H5Tget_sign(file_type) == H5T_SGN_2;
    const int64_t high = is_signed ? (int64_t{1} << (8 * size - 1)) - 1 : (int64_t{1} << (8 * size)) - 1;
    const int64_t low = is_signed ? -(int64_t{1} << (8 * size - 1)) : 0;
    if (value < low || value > high)
      throw Error(describe(object) + ": attribute " + name + " = " + std::to_string(value) + " out of range");
  }
  if (H5Awrite(attribute, H5T_NATIVE_INT64, &value) < 0)
    throw Error(describe(object) + ": write attribute " + name + ": " + last_error());
}

int64_t read_int_attribute(hid_t object, const std::string& name) {
  Handle attribute = open_attribute(object, name);
  Handle type = checked(H5Aget_type(attribute), H5Tclose, "H5Aget_type");
  if (H5Tget_class(type) != H5T_INTEGER) throw Error(describe(object) + ": attribute " + name + " is not an integer");
  int64_t value = 0;
  if (H5Aread(attribute, H5T_NATIVE_INT64, &value) < 0)
    throw Error(describe(object) + ": read attribute " + name + ": " + last_error());
  return value;
}

int64_t read_int_attribute(hid_t object, const std::string& name, int64_t low, int64_t high) {
  const int64_t value = read_int_attribute(object, name);
  if (value < low || value > high)
    throw Error(describe(object) + ": attribute " + name + " = " + std::to_string(value) + " outside [" +
                std::to_string(low) + ", " + std::to_string(high) + "]");
  return value;
}

void write_string_attribute(hid_t object, const std::string& name, const std::string& value) {
  Handle type = string_type(value.size());
  Handle space = checked(H5Screate(H5S_SCALAR), H5Sclose, "H5Screate");
  Handle attribute = checked(H5Acreate2(object, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
                             describe(object) + ": create attribute " + name);
  std::string padded = value;
  padded.resize(std::max<size_t>(value.size(), 1), '\0');
  if (H5Awrite(attribute, type, padded.data()) < 0)
    throw Error(describe(object) + ": write attribute " + name + ": " + last_error());
}

std::string read_string_attribute(hid_t object, const std::string& name) {
  Handle attribute = open_attribute(object, name);
  Handle type = checked(H5Aget_type(attribute), H5Tclose, "H5Aget_type");
  if (H5Tget_class(type) != H5T_STRING || H5Tis_variable_str(type) > 0)
    throw Error(describe(object) + ": attribute " + name + " is not a fixed-length string");
  std::string value(H5Tget_size(type), '\0');
  if (H5Aread(attribute, type, value.data()) < 0)
    throw Error(describe(object) + ": read attribute " + name + ": " + last_error());
  return strip_nul_padding(std::move(value));
}

StoredInt smallest_int_type(int64_t min_value, int64_t max_value) {
  if (min_value >= 0 && max_value <= 255) return StoredInt::kUint8;
  if (min_value >= -128 && max_value <= 127) return StoredInt::kInt8;
  if (min_value >= INT16_MIN && max_value <= INT16_MAX) return StoredInt::kInt16;
  if (min_value >= INT32_MIN && max_value <= INT32_MAX) return StoredInt::kInt32;
  return StoredInt::kInt64;
}

size_t stored_int_size(StoredInt type) {
  switch (type) {
    case StoredInt::kUint8:
    case StoredInt::kInt8: return 1;
    case StoredInt::kInt16: return 2;
    case StoredInt::kInt32: return 4;
    case StoredInt::kInt64: return 8;
  }
  return 8;
}

hid_t stored_int_file_type(StoredInt type) {
  switch (type) {
    case StoredInt::kUint8: return H5T_STD_U8LE;
    case StoredInt::kInt8: return H5T_STD_I8LE;
    case StoredInt::kInt16: return H5T_STD_I16LE;
    case StoredInt::kInt32: return H5T_STD_I32LE;
    case StoredInt::kInt64: return H5T_STD_I64LE;
  }
  return H5T_STD_I64LE;
}

void write_raw_dataset(hid_t location, const std::string& name, hid_t file_type, const std::vector<hsize_t>& dims,
                       std::span<const uint8_t> bytes) {
  const size_t element_size = H5Tget_size(file_type);
  if (element_count(dims) * element_size != bytes.size())
    throw Error(describe(location, name) + ": " + std::to_string(bytes.size()) + " bytes do not match shape " +
                dims_text(dims));
  Handle space = checked(dims.empty() ? H5Screate(H5S_SCALAR)
                                      : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                         H5Sclose, describe(location, name) + ": dataspace");
  Handle dcpl = dataset_create_plist();
  Handle dataset = checked(H5Dcreate2(location, name.c_str(), file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT),
                           H5Dclose, describe(location, name) + ": cannot create dataset");
  if (!bytes.empty() && H5Dwrite(dataset, file_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()) < 0)
    throw Error(describe(location, name) + ": write: " + last_error());
  write_string_attribute(dataset, kChecksumAttribute, sha256_hex(bytes));
}

RawDataset read_raw_dataset(hid_t location, const std::string& name) {
  if (!link_exists(location, name)) throw Error(describe(location, name) + ": missing dataset");
  Handle dataset = checked(H5Dopen2(location, name.c_str(), H5P_DEFAULT), H5Dclose,
                           describe(location, name) + ": open dataset");
  Handle type = checked(H5Dget_type(dataset), H5Tclose, describe(dataset) + ": type");
  Handle space = checked(H5Dget_space(dataset), H5Sclose, describe(dataset) + ": dataspace");
  RawDataset raw;
  const int rank = H5Sget_simple_extent_ndims(space);
  if (rank < 0 || rank > 8) throw Error(describe(dataset) + ": unsupported dataspace");
  raw.dims.resize(static_cast<size_t>(rank));
  if (rank > 0) H5Sget_simple_extent_dims(space, raw.dims.data(), nullptr);
  raw.element_size = H5Tget_size(type);
  raw.is_integer = H5Tget_class(type) == H5T_INTEGER;
  raw.is_signed_integer = raw.is_integer && H5Tget_sign(type) == H5T_SGN_2;
  if (raw.is_integer && H5Tget_order(type) != H5T_ORDER_LE)
    throw Error(describe(dataset) + ": big-endian integers are not part of the format");
  if (H5Tis_variable_str(type) > 0) throw Error(describe(dataset) + ": variable-length data is not part of the format");
  const hssize_t points = H5Sget_simple_extent_npoints(space);
  if (points < 0 || raw.element_size == 0) throw Error(describe(dataset) + ": bad dataspace or type");
  // The format stores plain contiguous bytes inside the file; anything else (chunks, filters such as a deflate
  // bomb, a dataspace larger than the file) is refused before a byte is allocated or decoded.
  {
    Handle plist = checked(H5Dget_create_plist(dataset), H5Pclose, describe(dataset) + ": creation properties");
    const H5D_layout_t layout = H5Pget_layout(plist);
    if ((layout != H5D_CONTIGUOUS && layout != H5D_COMPACT) || H5Pget_nfilters(plist) != 0)
      throw Error(describe(dataset) + ": chunked or filtered storage is not part of the format");
    Handle file = checked(H5Iget_file_id(dataset), H5Fclose, describe(dataset) + ": file");
    hsize_t file_size = 0;
    if (H5Fget_filesize(file, &file_size) < 0 ||
        static_cast<uint64_t>(points) > static_cast<uint64_t>(file_size) / raw.element_size)
      throw Error(describe(dataset) + ": dataspace of " + std::to_string(points) + " elements is larger than the file");
  }
  raw.bytes.resize(static_cast<size_t>(points) * raw.element_size);
  // Reading with the dataset's own type returns the stored bytes unconverted: exactly what was hashed.
  if (!raw.bytes.empty() && H5Dread(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.bytes.data()) < 0)
    throw Error(describe(dataset) + ": read: " + last_error());
  const std::string stored = read_string_attribute(dataset, kChecksumAttribute);
  const std::string computed = sha256_hex(raw.bytes);
  if (stored != computed)
    throw Error(describe(dataset) + ": tensor checksum mismatch (SHA-256 stored " + stored + ", computed " + computed +
                "): the tensor is corrupted");
  return raw;
}

void check_dims(hid_t location, const std::string& name, const std::vector<hsize_t>& dims,
                const std::vector<hsize_t>& expected_dims) {
  bool matches = dims.size() == expected_dims.size();
  for (size_t i = 0; matches && i < dims.size(); ++i)
    matches = expected_dims[i] == kAnyExtent || dims[i] == expected_dims[i];
  if (!matches)
    throw Error(describe(location, name) + ": shape " + dims_text(dims) + ", expected " + dims_text(expected_dims));
}

void write_bytes_dataset(hid_t location, const std::string& name, std::span<const uint8_t> bytes,
                         const std::vector<hsize_t>& dims) {
  write_raw_dataset(location, name, H5T_STD_U8LE, dims, bytes);
}

std::vector<uint8_t> read_bytes_dataset(hid_t location, const std::string& name,
                                        const std::vector<hsize_t>& expected_dims) {
  RawDataset raw = read_raw_dataset(location, name);
  check_dims(location, name, raw.dims, expected_dims);
  if (!raw.is_integer || raw.is_signed_integer || raw.element_size != 1)
    throw Error(describe(location, name) + ": expected a uint8 dataset");
  return std::move(raw.bytes);
}

void write_text_dataset(hid_t location, const std::string& name, const std::string& text) {
  Handle type = string_type(text.size());
  std::string padded = text;
  padded.resize(std::max<size_t>(text.size(), 1), '\0');
  write_raw_dataset(location, name, type, {},
                    std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(padded.data()), padded.size()));
}

std::string read_text_dataset(hid_t location, const std::string& name) {
  RawDataset raw = read_raw_dataset(location, name);
  if (!raw.dims.empty()) throw Error(describe(location, name) + ": expected a scalar string dataset");
  return strip_nul_padding(std::string(raw.bytes.begin(), raw.bytes.end()));
}

size_t verify_all_dataset_checksums(hid_t file) {
  std::vector<std::string> datasets;
  if (H5Ovisit(file, H5_INDEX_NAME, H5_ITER_INC, collect_dataset, &datasets) < 0)
    throw Error(describe(file) + ": cannot walk the file's objects: " + last_error());
  for (const std::string& path : datasets) read_raw_dataset(file, path);  // throws naming the tensor
  return datasets.size();
}

}  // namespace illm::formats::h5
