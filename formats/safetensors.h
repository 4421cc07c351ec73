#pragma once
// Hugging Face safetensors reader: one .safetensors file, or a model directory holding model.safetensors or a
// sharded model.safetensors.index.json. Files are memory-mapped once and shared by every copy of the store;
// tensor data is only touched when read. Every header is validated on open (header length bound, JSON,
// dtypes, shapes vs byte lengths, offsets inside the data area and non-overlapping, unique names); an index may
// only name shards below its own directory, and every tensor of a shard must be listed in the index. Each
// failure is an illm::Error naming the file, the tensor and the reason. (Weight values: check_weight_values in
// formats/llama_config.h.)
//
// Reading at scale (docs/scale.md): `read_into` converts a tensor straight into the caller's buffer, hashes its
// stored bytes in the same pass, then releases its pages from the process's resident memory, so a checkpoint is
// read once and may be larger than the machine's memory. `content_digest` combines those per-tensor hashes into
// the checkpoint's identity without a separate pass over the files.
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
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
  // The same conversions into `out` (exactly numel() elements), hashing the stored bytes on the way (recorded for
  // content_digest) and releasing the tensor's pages afterwards. A file truncated since open is an illm::Error.
  void read_into(const std::string& name, std::span<float> out) const;
  void read_into(const std::string& name, std::span<double> out) const;
  // The tensor as float32 in blocks of at most `rows` rows (first dimension): consume(first_row, row_count, values)
  // per block, in order; hashed like read_into and released block by block (large tables such as the embedding
  // without a float copy of the whole of it).
  void read_rows(const std::string& name, int64_t rows,
                 const std::function<void(int64_t first_row, int64_t row_count, std::span<const float> values)>&
                     consume) const;
  // Elements [first, first + out.size()) (row-major) converted to float32; neither hashed nor released (gathers
  // such as embedding rows; call release() when done).
  void read_range_into(const std::string& name, int64_t first, std::span<float> out) const;
  void read_range_into(const std::string& name, int64_t first, std::span<double> out) const;
  // Drops the tensor's pages from this process's resident memory (they stay in the kernel's page cache).
  void release(const std::string& name) const;

  // Identity of the checkpoint's tensor files: SHA-256 over, for each file in name order, its file name, the
  // SHA-256 of its 8-byte length and JSON header, and the SHA-256 of each tensor's bytes in data-offset order.
  // Tensors not read (by read_into) yet are hashed now; the others reuse the hash taken while reading.
  std::array<uint8_t, 32> content_digest() const;
  // Per-tensor hashes taken so far (hex), and hashes an earlier process took of the same files (a resumed run,
  // after checking that the files did not change); content_digest then does not read those tensors again.
  std::map<std::string, std::string> tensor_digests() const;
  void add_tensor_digests(const std::map<std::string, std::string>& hex_digests) const;
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
