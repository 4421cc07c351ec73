#pragma once
// model.bin (docs/model-bin.md): the flat, little-endian, mmap-able file that the dependency-free C99 runtime
// (runtime/illm_rt.h) runs. A 256-byte header (magic, version, CRC-32, shapes, settings, feature bits, default context
// and its arena size), a table of tensor offsets and sizes, every tensor 64-byte aligned, 4-bit codes packed two per
// byte, and optionally a compact tokenizer vocabulary. Integers only; identical input gives identical bytes.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/quantized_model.h"

namespace illm::formats {

struct ModelBinOptions {
  int32_t context = 0;        // default session context written to the header; 0: shape.max_positions
  std::string source_sha256;  // 64 hex digits identifying the source .illm (provenance), or empty
};

// What became of the tokenizer.
struct ModelBinTokenizer {
  bool present = false;
  bool can_encode = false;  // false: the runtime can decode but not encode (pieces its encoder does not handle)
  std::string note;         // why encoding is off
};

struct ModelBin {
  std::vector<uint8_t> bytes;
  ModelBinTokenizer tokenizer;
  int32_t context = 0;
  uint64_t arena_bytes = 0;  // what a session of `context` positions needs (illm_rt_arena_size)
};

// Builds the file. `tokenizer_model` holds the raw tokenizer.model bytes (empty: no tokenizer). Throws illm::Error
// naming the field when the model fails validate_quantized_model, the context is outside [1, max_positions], or the
// tokenizer cannot be represented (not a BPE model the C++ tokenizer accepts, or a NaN score).
ModelBin build_model_bin(const QuantizedModel& model, std::string_view tokenizer_model, const ModelBinOptions& options);

}  // namespace illm::formats
