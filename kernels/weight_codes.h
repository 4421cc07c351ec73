#pragma once
// Weight codes in their storage layout (kernels/quantized_model.h, docs/model-format.md): conversion from and to
// one code per byte, and the check that a stored code array is well formed. The kernels read the storage layout
// directly; these helpers are for producers (calibration, tests) and readers (exporters, inspection).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kernels/quantized_model.h"

namespace illm {

// One code per byte, row-major [out][in] → the storage layout for `bits` (packs rows for bits <= 4). Throws
// illm::Error (naming `what` and the index) on a code above 2^bits − 1 or a size other than out·in.
std::vector<uint8_t> pack_weight_codes(int32_t bits, int32_t out_features, int32_t in_features,
                                       std::span<const uint8_t> codes, const char* what = "weight codes");

// A QuantizedLinear from one-code-per-byte codes (packing them as the storage layout wants).
QuantizedLinear make_quantized_linear(int32_t out_features, int32_t in_features, int32_t bits,
                                      std::span<const uint8_t> codes, std::vector<int32_t> zero_points,
                                      std::vector<Dyadic> scales, int32_t group_size = 0);

// Codes of row `row`, one per byte, into out (in_features entries).
void unpack_weight_row(const QuantizedLinear& w, int32_t row, std::span<uint8_t> out);
// All codes, one per byte, row-major [out][in].
std::vector<uint8_t> unpack_weight_codes(const QuantizedLinear& w);

// Checks the stored codes of `w` against its shape and width: the byte count, every code <= 2^bits − 1 and, for
// packed rows of odd length, a zero padding nibble. Returns a description of the first problem ("codes has 7
// bytes, expected 8", "codes[5] = 16 exceeds 15" with the code index row·in + col, "codes row 3 padding nibble is 4,
// expected 0"), or nothing when the codes are well formed.
std::optional<std::string> weight_codes_problem(const QuantizedLinear& w);

// Checks group_size against the shape: 0 (per row), or G dividing in_features with G in {32, 64, 128} or G =
// in_features (docs/integer-semantics.md "## Per-group DI-MatMul"). Returns "group_size = 48 does not divide
// in_features = 96" and the like, or nothing.
std::optional<std::string> weight_group_problem(const QuantizedLinear& w);

}  // namespace illm
