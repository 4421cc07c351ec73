#pragma once
// The `.illm` model file (docs/model-format.md): an HDF5 file holding an illm::QuantizedModel (integers only)
// and its metadata, preceded by a 512-byte user block with a magic line, the format version and the
// SHA-256 of every byte after the user block. Every dataset also carries the SHA-256 of its own bytes, so a
// corruption is reported with the tensor's path.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "kernels/quantized_model.h"

namespace illm::formats {

// Version 2 (issue #12 part 2) adds optional per-model and per-layer fields for the W4A4 levers (online Hadamard
// flags, clipped requantization ratios, TRIP factors, per-group weights); a field a file lacks reads as "off", so
// every version-1 file reads unchanged. Version 3 adds /model act_group_size (per-group activations): a build that
// reads only up to version 2 would run such a file with per-token activations, so it must refuse it.
// Version 4 adds /model/settings head_in_bits (the LM head's input width, when it differs from head_bits) and allows
// per-group scales on /model/lm_head: a version-3 build would run the head on head_bits-wide inputs.
// Version 5 adds /model/settings qkv_bits (the Q, K and V code width, when it differs from a_bits): a version-4
// build would run the attention on a_bits-wide codes.
// A file is written at the lowest version that holds its fields (illm_format_version_for): 5 with qkv_bits, 4 with
// a wide or grouped LM head, 3 with per-group activations, else 2.
inline constexpr int64_t kIllmFormatVersion = 5;
inline constexpr int64_t kIllmOldestReadableVersion = 1;
inline constexpr bool illm_format_version_readable(int64_t version) {
  return version >= kIllmOldestReadableVersion && version <= kIllmFormatVersion;
}
inline constexpr int64_t illm_format_version_for(const QuantizedModel& model) {
  if (model.settings.qkv_bits != 0) return 5;
  if (model.settings.head_in_bits != 0 || weight_per_group(model.lm_head)) return 4;
  return model.act_group_size > 0 ? 3 : 2;
}
inline constexpr size_t kIllmUserBlockSize = 512;
// First line of the user block (`head -c 512 model.illm` shows the header as text).
inline constexpr const char* kIllmMagic = "ILLM-MODEL-FILE\n";

// One golden sequence: the integer executor's outputs at quantize time, replayed by `illm verify`.
struct GoldenVector {
  std::vector<int32_t> input_ids;
  std::vector<int64_t> logits;
  std::vector<Dyadic> logit_scales;
  friend bool operator==(const GoldenVector&, const GoldenVector&) = default;
};

// Everything in the file besides the integer model.
struct IllmMetadata {
  // The version a reader found; write_illm writes illm_format_version_for(model) whatever this says (the default is
  // that of a file without version-3 fields).
  int64_t format_version = 2;
  std::string tool_version;      // illm::build_info::kVersion
  std::string source_name;       // directory name only (e.g. "tinybible"): no paths in the file
  std::string source_sha256;     // hash of the source checkpoint (config.json + safetensors, sorted by name)
  std::string config_json;       // the source config.json text
  std::string recipe_json;       // the recipe used (canonical JSON)
  std::string calibration_json;  // chosen values / report as JSON text
  std::string tokenizer_model;   // raw tokenizer.model bytes, empty if none
  std::vector<GoldenVector> golden;
  friend bool operator==(const IllmMetadata&, const IllmMetadata&) = default;
};

// Writes a temporary file beside `out` and renames it to `out` (formats/atomic_file.h); on any failure the
// temporary file is removed and illm::Error is thrown. Identical inputs give byte-identical files.
void write_illm(const std::filesystem::path& out, const QuantizedModel& model, const IllmMetadata& meta);

struct LoadedIllm {
  QuantizedModel model;
  IllmMetadata meta;
};

// One integer decoder layer in a file of its own: the per-block state of a streaming, resumable `illm quantize`
// (converter/quantize_state.h). The layout of /model/layers/NN (group "00" at the root), every dataset
// checksummed; written atomically (temporary file, fsync, rename).
void write_layer_file(const std::filesystem::path& out, const QuantizedLayer& layer);
QuantizedLayer read_layer_file(const std::filesystem::path& file);

// Checks the user block (magic, version, whole-file SHA-256) before opening the file with HDF5, then reads
// every tensor, checking its own SHA-256 and its shape against the model's shape, and finally runs the executor's
// validate_quantized_model (kernels/executor.h) on the result: a file the executor would refuse is refused here.
// kNone reads any model the format can hold (format round-trip tests only).
enum class ModelCheck { kExecutor, kNone };
LoadedIllm read_illm(const std::filesystem::path& file, ModelCheck check = ModelCheck::kExecutor);

// The user-block check followed by the checksum of every dataset in the file; throws illm::Error naming the
// file and, for a tensor checksum failure, the tensor's path.
void verify_illm_integrity(const std::filesystem::path& file);

}  // namespace illm::formats
