#include "formats/safetensors.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "formats/input_file.h"
#include "formats/mapped_file.h"
#include "formats/sha256.h"
#include "formats/strict_json.h"
#include "kernels/error.h"

namespace illm::formats {

namespace {

using nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the safetensors format's own bound (100 MB)
const char* const kIndexName = "model.safetensors.index.json";
const char* const kSingleName = "model.safetensors";

[[noreturn]] void fail_file(const std::filesystem::path& file, const std::string& why) {
  throw Error(file.string() + ": " + why);
}

[[noreturn]] void fail_tensor(const std::filesystem::path& file, const std::string& tensor, const std::string& why) {
  throw Error(file.string() + ": tensor '" + tensor + "': " + why);
}

bool parse_dtype(const std::string& text, DType* out) {
  static const std::map<std::string, DType> kByName = {
      {"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16}, {"F64", DType::F64}, {"I8", DType::I8},
      {"U8", DType::U8},   {"I16", DType::I16}, {"I32", DType::I32},   {"I64", DType::I64}};
  auto it = kByName.find(text);
  if (it == kByName.end()) return false;
  *out = it->second;
  return true;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

uint64_t read_le_u64(const std::byte* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint64_t>(p[i]);
  return v;
}

// JSON of a header or an index; a repeated key names the tensor ("<duplicate_why>").
json parse_json_of(std::string_view text, const std::filesystem::path& path, const std::string& what,
                   const std::string& duplicate_why) {
  StrictJsonProblem problem;
  json value;
  try {
    value = parse_json_strictly(text, &problem);
  } catch (const json::exception& e) {
    fail_file(path, what + "is not well-formed JSON: " + e.what());
  }
  if (problem.too_deep) fail_file(path, what + "nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  if (!problem.duplicate_key.empty()) fail_tensor(path, problem.duplicate_key, duplicate_why);
  return value;
}

struct ParsedFile {
  std::shared_ptr<const MappedFile> mapping;
  std::vector<TensorInfo> tensors;
  Sha256Digest header_digest{};  // of the 8-byte length and the JSON header
};

TensorInfo parse_tensor_entry(const std::filesystem::path& path, const std::string& name, const json& entry,
                              uint64_t data_start, uint64_t data_size) {
  if (!entry.is_object()) fail_tensor(path, name, "header entry is not a JSON object");
  for (const auto& [key, value] : entry.items()) {
    (void)value;
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      fail_tensor(path, name, "unexpected header field '" + key + "'");
  }
  TensorInfo info;
  info.name = name;
  info.file = path;

  if (!entry.contains("dtype") || !entry["dtype"].is_string())
    fail_tensor(path, name, "missing or non-string 'dtype'");
  const std::string dtype_text = entry["dtype"].get<std::string>();
  if (!parse_dtype(dtype_text, &info.dtype)) fail_tensor(path, name, "unsupported dtype '" + dtype_text + "'");

  if (!entry.contains("shape") || !entry["shape"].is_array()) fail_tensor(path, name, "missing or non-array 'shape'");
  uint64_t numel = 1;
  bool numel_overflows = false;
  for (const json& dim : entry["shape"]) {
    if (!dim.is_number_unsigned()) fail_tensor(path, name, "shape entries must be non-negative integers");
    const uint64_t d = dim.get<uint64_t>();
    if (d > static_cast<uint64_t>(INT64_MAX)) fail_tensor(path, name, "shape dimension too large");
    info.shape.push_back(static_cast<int64_t>(d));
    if (__builtin_mul_overflow(numel, d, &numel)) numel_overflows = true;
  }

  if (!entry.contains("data_offsets") || !entry["data_offsets"].is_array() || entry["data_offsets"].size() != 2 ||
      !entry["data_offsets"][0].is_number_unsigned() || !entry["data_offsets"][1].is_number_unsigned())
    fail_tensor(path, name, "'data_offsets' must be two non-negative integers");
  const uint64_t begin = entry["data_offsets"][0].get<uint64_t>();
  const uint64_t end = entry["data_offsets"][1].get<uint64_t>();
  const std::string span_text = "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + ")";
  if (begin > end) fail_tensor(path, name, span_text + " has begin after end");
  if (end > data_size)
    fail_tensor(path, name,
                span_text + " out of range: the data area holds " + std::to_string(data_size) +
                    " bytes (file truncated or offsets wrong)");

  uint64_t expected_bytes = 0;
  if (numel_overflows || __builtin_mul_overflow(numel, dtype_size(info.dtype), &expected_bytes))
    fail_tensor(path, name, "shape " + shape_string(info.shape) + " is too large");
  if (expected_bytes != end - begin)
    fail_tensor(path, name,
                "dtype " + dtype_text + " x shape " + shape_string(info.shape) + " needs " +
                    std::to_string(expected_bytes) + " bytes but " + span_text + " spans " +
                    std::to_string(end - begin));
  info.offset = data_start + begin;
  info.nbytes = end - begin;
  return info;
}

std::vector<TensorInfo> parse_header_and_layout(std::span<const std::byte> bytes, const std::filesystem::path& path) {
  const uint64_t file_size = bytes.size();
  if (file_size < 8)
    fail_file(path, "truncated: " + std::to_string(file_size) + " bytes, shorter than the 8-byte header length");
  const uint64_t header_size = read_le_u64(bytes.data());
  if (header_size > kMaxHeaderBytes)
    fail_file(path, "header length " + std::to_string(header_size) + " exceeds the 100 MB limit");
  if (header_size > file_size - 8)
    fail_file(path, "header length " + std::to_string(header_size) + " is larger than the file allows (" +
                        std::to_string(file_size) + " bytes in all; truncated or not a safetensors file)");
  const uint64_t data_start = 8 + header_size;
  const uint64_t data_size = file_size - data_start;

  const std::string_view header_text(reinterpret_cast<const char*>(bytes.data()) + 8, header_size);
  const json header = parse_json_of(header_text, path, "header ", "duplicate name in the header");
  if (!header.is_object()) fail_file(path, "header is not a JSON object");

  std::vector<TensorInfo> tensors;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail_file(path, "'__metadata__' is not a JSON object");
      for (const auto& [key, value] : entry.items())
        if (!value.is_string()) fail_file(path, "'__metadata__' value '" + key + "' is not a string");
      continue;
    }
    tensors.push_back(parse_tensor_entry(path, name, entry, data_start, data_size));
  }

  // Non-overlap: sort by start; each non-empty tensor must start at or after the previous one's end.
  std::vector<const TensorInfo*> by_offset;
  for (const TensorInfo& t : tensors)
    if (t.nbytes > 0) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo& prev = *by_offset[i - 1];
    const TensorInfo& cur = *by_offset[i];
    if (cur.offset < prev.offset + prev.nbytes)
      fail_tensor(path, cur.name,
                  "data overlaps tensor '" + prev.name + "' (bytes " + std::to_string(cur.offset - data_start) +
                      " < " + std::to_string(prev.offset + prev.nbytes - data_start) + " in the data area)");
  }
  return tensors;
}

ParsedFile parse_safetensors_file(const std::filesystem::path& path) {
  require_regular_file(path, "safetensors file");
  ParsedFile parsed;
  parsed.mapping = MappedFile::open(path);
  const auto bytes = parsed.mapping->bytes();
  parsed.tensors = parse_header_and_layout(bytes, path);
  const uint64_t data_start = 8 + read_le_u64(bytes.data());  // validated by parse_header_and_layout
  parsed.header_digest = sha256(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), data_start));
  return parsed;
}

// A shard name from the index, relative to the index's directory: no absolute path, no "..", nothing empty, so
// that an index can only point at files below its own directory.
std::filesystem::path confined_shard_path(const std::filesystem::path& index_file, const std::string& tensor,
                                          const std::string& shard) {
  const std::filesystem::path relative(shard);
  if (shard.empty()) fail_tensor(index_file, tensor, "weight_map names an empty shard file");
  if (shard.find('\0') != std::string::npos) fail_tensor(index_file, tensor, "shard file name contains a NUL byte");
  if (relative.is_absolute() || relative.has_root_name() || relative.has_root_directory())
    fail_tensor(index_file, tensor,
                "shard file '" + shard + "' is an absolute path; shards must lie in the model directory");
  for (const auto& part : relative)
    if (part == "..")
      fail_tensor(index_file, tensor, "shard file '" + shard + "' leaves the model directory ('..')");
  if (!relative.has_filename()) fail_tensor(index_file, tensor, "shard file '" + shard + "' names a directory");
  return relative;
}

bool is_float_dtype(DType d) { return d == DType::F32 || d == DType::F64 || d == DType::F16 || d == DType::BF16; }

void require_float(const TensorInfo& info) {
  if (!is_float_dtype(info.dtype))
    fail_tensor(info.file, info.name, std::string("dtype ") + to_string(info.dtype) + " is not a floating-point type");
}

// Converts `n` stored elements at `p` (a floating dtype) to Out.
template <typename Out>
void convert_floats(DType dtype, const std::byte* p, size_t n, Out* out) {
  switch (dtype) {
    case DType::F32:
      for (size_t i = 0; i < n; ++i) {
        float v;
        std::memcpy(&v, p + 4 * i, 4);
        out[i] = static_cast<Out>(v);
      }
      break;
    case DType::F64:
      for (size_t i = 0; i < n; ++i) {
        double v;
        std::memcpy(&v, p + 8 * i, 8);
        out[i] = static_cast<Out>(v);
      }
      break;
    case DType::F16:
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t bits;
        std::memcpy(&bits, p + 2 * i, 2);
        out[i] = static_cast<Out>(dtype == DType::F16 ? half_to_float(bits) : bfloat16_to_float(bits));
      }
      break;
    default:
      break;  // refused by require_float before
  }
}

constexpr size_t kChunkBytes = size_t{1} << 20;  // hashed and converted together while in cache

}  // namespace

struct TensorStore::State {
  std::filesystem::path source;
  std::vector<std::shared_ptr<const MappedFile>> mappings;
  struct Entry {
    TensorInfo info;
    size_t mapping_index = 0;
  };
  std::map<std::string, Entry> tensors;
  // Per file (parallel to `mappings`): every tensor it holds, by data offset, and its header hash.
  std::vector<std::vector<TensorInfo>> file_tensors;
  std::vector<Sha256Digest> header_digests;
  // Hashes of tensor bytes taken so far (by read_into or content_digest), by tensor name.
  mutable std::mutex digest_mutex;
  mutable std::map<std::string, Sha256Digest> digests;

  void add_file(ParsedFile parsed) {
    std::sort(parsed.tensors.begin(), parsed.tensors.end(),
              [](const TensorInfo& a, const TensorInfo& b) { return a.offset < b.offset; });
    mappings.push_back(parsed.mapping);
    file_tensors.push_back(std::move(parsed.tensors));
    header_digests.push_back(parsed.header_digest);
  }
};

const char* to_string(DType dtype) {
  switch (dtype) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::F64: return "F64";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
    case DType::I16: return "I16";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
  }
  return "?";
}

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::I8:
    case DType::U8: return 1;
    case DType::F16:
    case DType::BF16:
    case DType::I16: return 2;
    case DType::F32:
    case DType::I32: return 4;
    case DType::F64:
    case DType::I64: return 8;
  }
  return 0;
}

float bfloat16_to_float(uint16_t bits) {
  const uint32_t wide = static_cast<uint32_t>(bits) << 16;  // bfloat16 is the top half of a float32
  float out;
  std::memcpy(&out, &wide, 4);
  return out;
}

float half_to_float(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  uint32_t exponent = (bits >> 10) & 0x1Fu;
  uint32_t mantissa = bits & 0x3FFu;
  uint32_t wide;
  if (exponent == 0x1F) {  // inf / nan: keep the payload
    wide = sign | 0x7F800000u | (mantissa << 13);
  } else if (exponent != 0) {  // normal: rebias 15 -> 127
    wide = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {  // signed zero
    wide = sign;
  } else {  // subnormal half = mantissa * 2^-24: normalise, it is a normal float32
    int shift = 0;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      ++shift;
    }
    mantissa &= 0x3FFu;
    exponent = static_cast<uint32_t>(127 - 15 + 1 - shift);
    wide = sign | (exponent << 23) | (mantissa << 13);
  }
  float out;
  std::memcpy(&out, &wide, 4);
  return out;
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<TensorInfo> parse_safetensors_bytes(std::span<const std::byte> file_bytes,
                                               const std::filesystem::path& file) {
  return parse_header_and_layout(file_bytes, file);
}

std::vector<std::pair<std::string, std::filesystem::path>> parse_safetensors_index(
    std::string_view text, const std::filesystem::path& index_file) {
  const json index = parse_json_of(text, index_file, "", "duplicate key in the index");
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    fail_file(index_file, "no 'weight_map' object");
  std::vector<std::pair<std::string, std::filesystem::path>> weight_map;
  for (const auto& [name, shard_value] : index["weight_map"].items()) {
    if (!shard_value.is_string()) fail_tensor(index_file, name, "weight_map value is not a file name string");
    weight_map.emplace_back(name, confined_shard_path(index_file, name, shard_value.get<std::string>()));
  }
  if (weight_map.empty()) fail_file(index_file, "'weight_map' is empty");
  return weight_map;
}

TensorStore TensorStore::open(const std::filesystem::path& dir_or_file) {
  auto state = std::make_shared<State>();
  state->source = dir_or_file;
  std::error_code ec;
  std::filesystem::path target = dir_or_file;
  if (std::filesystem::is_directory(dir_or_file, ec)) {
    if (std::filesystem::exists(dir_or_file / kIndexName)) {
      target = dir_or_file / kIndexName;
    } else if (std::filesystem::exists(dir_or_file / kSingleName)) {
      target = dir_or_file / kSingleName;
    } else {
      fail_file(dir_or_file, std::string("no ") + kSingleName + " or " + kIndexName + " in this directory");
    }
  } else if (!std::filesystem::exists(dir_or_file, ec)) {
    fail_file(dir_or_file, "no such file or directory");
  }

  const std::string target_name = target.filename().string();
  const bool is_index = target_name.size() >= 11 && target_name.ends_with(".index.json");
  if (!is_index) {
    ParsedFile parsed = parse_safetensors_file(target);
    for (const TensorInfo& t : parsed.tensors) state->tensors[t.name] = State::Entry{t, 0};
    state->add_file(std::move(parsed));
    return TensorStore(std::move(state));
  }

  // Sharded: the index maps each tensor name to the shard file (relative to the index) that holds it.
  const auto weight_map = parse_safetensors_index(read_input_file(target, "safetensors index"), target);
  const std::filesystem::path shard_dir = target.parent_path();
  std::map<std::filesystem::path, ParsedFile> shards;  // by shard path as written in the index
  std::map<std::filesystem::path, size_t> mapping_index_by_shard;
  for (const auto& entry : weight_map) {
    const std::string& name = entry.first;  // not a structured binding: clang 14 cannot capture those
    const std::filesystem::path& shard_name = entry.second;
    auto found = shards.find(shard_name);
    if (found == shards.end()) {
      const std::filesystem::path shard_path = shard_dir / shard_name;
      if (!std::filesystem::exists(shard_path, ec))
        fail_tensor(target, name, "shard file '" + shard_path.string() + "' does not exist");
      found = shards.emplace(shard_name, parse_safetensors_file(shard_path)).first;
      mapping_index_by_shard[shard_name] = state->mappings.size();
      state->add_file(found->second);
    }
    const std::vector<TensorInfo>& in_shard = found->second.tensors;
    auto tensor = std::find_if(in_shard.begin(), in_shard.end(), [&](const TensorInfo& t) { return t.name == name; });
    if (tensor == in_shard.end())
      fail_tensor(target, name, "mapped to shard '" + shard_name.string() + "', which does not contain it");
    state->tensors[name] = State::Entry{*tensor, mapping_index_by_shard[shard_name]};
  }
  // A shard may hold tensors the index does not list: they would be silently out of reach.
  for (const auto& [shard_name, parsed] : shards)
    for (const TensorInfo& t : parsed.tensors)
      if (!state->tensors.count(t.name))
        fail_tensor(shard_dir / shard_name, t.name, "present in the shard but not listed in " + target.string());
  return TensorStore(std::move(state));
}

bool TensorStore::contains(const std::string& name) const { return state_->tensors.count(name) != 0; }

const TensorInfo& TensorStore::info(const std::string& name) const {
  auto it = state_->tensors.find(name);
  if (it == state_->tensors.end()) fail_file(state_->source, "tensor '" + name + "' not found");
  return it->second.info;
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> out;
  out.reserve(state_->tensors.size());
  for (const auto& [name, entry] : state_->tensors) out.push_back(name);
  return out;  // std::map iterates in sorted order
}

std::span<const std::byte> TensorStore::raw(const std::string& name) const {
  const TensorInfo& t = info(name);
  const auto& mapping = state_->mappings[state_->tensors.at(name).mapping_index];
  return mapping->bytes().subspan(t.offset, t.nbytes);
}

namespace {

// Converts a whole tensor into `out`, hashing its bytes chunk by chunk in the same pass.
template <typename Out>
Sha256Digest convert_and_hash(const MappedFile& file, const TensorInfo& info, std::span<Out> out) {
  require_float(info);
  if (out.size() != static_cast<size_t>(info.numel()))
    fail_tensor(info.file, info.name, std::to_string(info.numel()) + " elements, the destination holds " +
                                          std::to_string(out.size()));
  const size_t element = dtype_size(info.dtype);
  Sha256 hasher;
  const std::string what = "tensor '" + info.name + "'";
  file.copy_out(info.offset, info.nbytes, what.c_str(), [&](std::span<const std::byte> bytes) {
    for (size_t begin = 0; begin < bytes.size(); begin += kChunkBytes) {
      const size_t n = std::min(kChunkBytes, bytes.size() - begin);
      hasher.update(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data() + begin), n));
      convert_floats(info.dtype, bytes.data() + begin, n / element, out.data() + begin / element);
    }
  });
  return hasher.finish();
}

Sha256Digest hash_tensor(const MappedFile& file, const TensorInfo& info) {
  Sha256 hasher;
  const std::string what = "tensor '" + info.name + "'";
  file.copy_out(info.offset, info.nbytes, what.c_str(), [&](std::span<const std::byte> bytes) {
    hasher.update(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  });
  file.release(info.offset, info.nbytes);
  return hasher.finish();
}

}  // namespace

namespace {

template <typename Out>
void read_whole(const TensorStore::State& state, const std::string& name, std::span<Out> out) {
  const TensorStore::State::Entry& e = state.tensors.at(name);
  const MappedFile& file = *state.mappings[e.mapping_index];
  const Sha256Digest digest = convert_and_hash(file, e.info, out);
  file.release(e.info.offset, e.info.nbytes);
  std::lock_guard<std::mutex> lock(state.digest_mutex);
  state.digests[name] = digest;
}

}  // namespace

void TensorStore::read_into(const std::string& name, std::span<float> out) const {
  read_whole(*state_, info(name).name, out);
}

void TensorStore::read_into(const std::string& name, std::span<double> out) const {
  read_whole(*state_, info(name).name, out);
}

namespace {

template <typename Out>
void read_range(const TensorStore::State& state, const TensorInfo& info, size_t mapping, int64_t first,
                std::span<Out> out) {
  require_float(info);
  if (first < 0 || static_cast<uint64_t>(first) + out.size() > static_cast<uint64_t>(info.numel()))
    fail_tensor(info.file, info.name, "elements [" + std::to_string(first) + ", " +
                                          std::to_string(first + static_cast<int64_t>(out.size())) +
                                          ") outside its " + std::to_string(info.numel()));
  const size_t element = dtype_size(info.dtype);
  const std::string what = "tensor '" + info.name + "'";
  state.mappings[mapping]->copy_out(
      info.offset + static_cast<uint64_t>(first) * element, out.size() * element, what.c_str(),
      [&](std::span<const std::byte> bytes) { convert_floats(info.dtype, bytes.data(), out.size(), out.data()); });
}

}  // namespace

void TensorStore::read_range_into(const std::string& name, int64_t first, std::span<float> out) const {
  const State::Entry& e = state_->tensors.at(info(name).name);
  read_range(*state_, e.info, e.mapping_index, first, out);
}

void TensorStore::read_range_into(const std::string& name, int64_t first, std::span<double> out) const {
  const State::Entry& e = state_->tensors.at(info(name).name);
  read_range(*state_, e.info, e.mapping_index, first, out);
}

void TensorStore::read_rows(
    const std::string& name, int64_t rows,
    const std::function<void(int64_t first_row, int64_t row_count, std::span<const float> values)>& consume) const {
  const State::Entry& e = state_->tensors.at(info(name).name);
  const TensorInfo& t = e.info;
  require_float(t);
  const MappedFile& file = *state_->mappings[e.mapping_index];
  const int64_t total_rows = t.shape.empty() ? 1 : t.shape[0];
  const int64_t row_elements = total_rows > 0 ? t.numel() / total_rows : 0;
  const size_t element = dtype_size(t.dtype);
  rows = std::max<int64_t>(1, rows);
  std::vector<float> buffer(static_cast<size_t>(std::min(rows, std::max<int64_t>(total_rows, 1)) * row_elements));
  Sha256 hasher;
  const std::string what = "tensor '" + name + "'";
  for (int64_t first = 0; first < total_rows; first += rows) {
    const int64_t count = std::min(rows, total_rows - first);
    const uint64_t offset = t.offset + static_cast<uint64_t>(first * row_elements) * element;
    const uint64_t length = static_cast<uint64_t>(count * row_elements) * element;
    file.copy_out(offset, length, what.c_str(), [&](std::span<const std::byte> bytes) {
      hasher.update(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
      convert_floats(t.dtype, bytes.data(), static_cast<size_t>(count * row_elements), buffer.data());
    });
    file.release(offset, length);
    consume(first, count, std::span<const float>(buffer.data(), static_cast<size_t>(count * row_elements)));
  }
  const Sha256Digest digest = hasher.finish();
  std::lock_guard<std::mutex> lock(state_->digest_mutex);
  state_->digests[name] = digest;
}

void TensorStore::release(const std::string& name) const {
  const State::Entry& e = state_->tensors.at(info(name).name);
  state_->mappings[e.mapping_index]->release(e.info.offset, e.info.nbytes);
}

std::vector<float> TensorStore::read_f32(const std::string& name) const {
  std::vector<float> out(static_cast<size_t>(info(name).numel()));
  read_into(name, out);
  return out;
}

std::vector<double> TensorStore::read_f64(const std::string& name) const {
  std::vector<double> out(static_cast<size_t>(info(name).numel()));
  read_into(name, out);
  return out;
}

std::array<uint8_t, 32> TensorStore::content_digest() const {
  // Tensors not hashed yet, hashed in parallel (each on its own), then everything combined in file order.
  struct Missing {
    size_t file;
    const TensorInfo* info;
    Sha256Digest digest{};
  };
  std::vector<Missing> missing;
  {
    std::lock_guard<std::mutex> lock(state_->digest_mutex);
    for (size_t f = 0; f < state_->file_tensors.size(); ++f)
      for (const TensorInfo& t : state_->file_tensors[f])
        if (!state_->digests.count(t.name) || !state_->tensors.count(t.name)) missing.push_back({f, &t});
  }
  std::string error;
#pragma omp parallel for schedule(dynamic, 1)
  for (size_t i = 0; i < missing.size(); ++i) {
    try {
      missing[i].digest = hash_tensor(*state_->mappings[missing[i].file], *missing[i].info);
    } catch (const std::exception& e) {
#pragma omp critical(illm_content_digest)
      if (error.empty()) error = e.what();
    }
  }
  if (!error.empty()) throw Error(error);

  std::vector<size_t> order(state_->mappings.size());
  for (size_t f = 0; f < order.size(); ++f) order[f] = f;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return state_->mappings[a]->path().filename() < state_->mappings[b]->path().filename();
  });
  std::lock_guard<std::mutex> lock(state_->digest_mutex);
  for (const Missing& m : missing)
    if (state_->tensors.count(m.info->name)) state_->digests[m.info->name] = m.digest;
  Sha256 combined;
  for (size_t f : order) {
    combined.update(state_->mappings[f]->path().filename().string());
    combined.update(std::span<const uint8_t>(state_->header_digests[f].data(), 32));
    for (const TensorInfo& t : state_->file_tensors[f]) {
      const Sha256Digest* d = nullptr;
      if (state_->tensors.count(t.name)) {
        d = &state_->digests.at(t.name);
      } else {  // in the shard file but not in the index: hashed above, not cached
        for (const Missing& m : missing)
          if (m.info == &t) d = &m.digest;
      }
      combined.update(std::span<const uint8_t>(d->data(), 32));
    }
  }
  return combined.finish();
}

std::map<std::string, std::string> TensorStore::tensor_digests() const {
  std::lock_guard<std::mutex> lock(state_->digest_mutex);
  std::map<std::string, std::string> out;
  for (const auto& [name, d] : state_->digests) out[name] = to_hex(std::span<const uint8_t>(d.data(), d.size()));
  return out;
}

void TensorStore::add_tensor_digests(const std::map<std::string, std::string>& hex_digests) const {
  std::lock_guard<std::mutex> lock(state_->digest_mutex);
  for (const auto& [name, hex] : hex_digests) {
    if (!state_->tensors.count(name)) fail_file(state_->source, "tensor '" + name + "' not found");
    Sha256Digest d{};
    if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdef") != std::string::npos)
      fail_tensor(state_->source, name, "'" + hex + "' is not a SHA-256 in hex");
    for (size_t i = 0; i < 32; ++i) d[i] = static_cast<uint8_t>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
    state_->digests[name] = d;
  }
}

std::vector<std::filesystem::path> TensorStore::files() const {
  std::vector<std::filesystem::path> out;
  for (const auto& m : state_->mappings) out.push_back(m->path());
  return out;
}

const std::filesystem::path& TensorStore::source() const { return state_->source; }

}  // namespace illm::formats
