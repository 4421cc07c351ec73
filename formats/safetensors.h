#pragma once
// Hugging Face safetensors reader: one .safetensors file, or a model directory holding model.safetensors or a
// sharded model.safetensors.index.json. Files are memory-mapped once and shared by every copy of the store;
// tensor data is only touched when read. Every header is validated on open (header length bound, JSON,
// dtypes, shapes vs byte lengths, offsets inside the data area and non-overlapping, unique names); an index may
// only name shards below its own directory, and every tensor of a shard must be listed in the index. Each
// failure is an illm::Error naming the file, the tensor and the reason. (Weight values: check_weight_values in
// formats/llama_config.h.)
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace illm::formats {

enum class DType { F32, F16, BF16, F64, I8, U8, I16, I32, I64 };

const char* to_string(DType dtype);      // the safetensors spelling: "F32", "BF16", ...
size_t dtype_size(DType dtype);          // bytes per element

// IEEE binary16 / bfloat16 bit patterns to float32 (exact: every such value is a float32).
float half_to_float(uint16_t bits);
float bfloat16_to_float(uint16_t bits);

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::filesystem::path file;
  uint64_t offset = 0;  // absolute byte offset of the data in `file`
  uint64_t nbytes = 0;
  int64_t numel() const;
};

class TensorStore {
 public:
  static TensorStore open(const std::filesystem::path& dir_or_file);

  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // throws illm::Error "...: tensor 'x' not found"
  std::vector<std::string> names() const;                 // sorted
  // F32/F16/BF16/F64 converted to float32 (F64 rounds to nearest); integer dtypes are refused.
  std::vector<float> read_f32(const std::string& name) const;
  // F32/F16/BF16/F64 widened exactly to float64 (for float64 reference paths).
  std::vector<double> read_f64(const std::string& name) const;
  // The tensor's bytes in the mapped file, little-endian, not necessarily aligned.
  std::span<const std::byte> raw(const std::string& name) const;
  std::vector<std::filesystem::path> files() const;
  // Where the store was opened from (file or directory), for messages.
  const std::filesystem::path& source() const;

  struct State;  // shared, immutable after open

 private:
  explicit TensorStore(std::shared_ptr<const State> state) : state_(std::move(state)) {}
  std::shared_ptr<const State> state_;
};

// What TensorStore::open checks in one safetensors file, done on its bytes (no file needed): header length,
// JSON, dtypes, shapes vs byte lengths, offsets, overlaps, unique names. `file` names it in messages and infos.
std::vector<TensorInfo> parse_safetensors_bytes(std::span<const std::byte> file_bytes,
                                               const std::filesystem::path& file);

// The weight_map of a model.safetensors.index.json: (tensor name, shard path relative to the index's directory),
// in the index's order. Refuses malformed JSON, repeated keys, non-string values, an empty map, and shard paths
// that are absolute or contain "..".
std::vector<std::pair<std::string, std::filesystem::path>> parse_safetensors_index(
    std::string_view text, const std::filesystem::path& index_file);

}  // namespace illm::formats
