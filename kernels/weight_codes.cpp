#include "kernels/weight_codes.h"

#include <algorithm>

#include "kernels/error.h"
#include "kernels/int4_pack.h"

namespace illm {

std::vector<uint8_t> pack_weight_codes(int32_t bits, int32_t out_features, int32_t in_features,
                                       std::span<const uint8_t> codes, const char* what) {
  if (bits < 1 || bits > 8) throw Error(std::string(what) + ": width " + std::to_string(bits) + " outside [1, 8]");
  if (out_features < 0 || in_features < 0) throw Error(std::string(what) + ": negative shape");
  const size_t out = static_cast<size_t>(out_features), in = static_cast<size_t>(in_features);
  if (codes.size() != out * in)
    throw Error(std::string(what) + ": " + std::to_string(codes.size()) + " codes for shape " +
                std::to_string(out) + "x" + std::to_string(in));
  const unsigned max_code = (1u << bits) - 1;
  for (size_t i = 0; i < codes.size(); ++i)
    if (codes[i] > max_code)
      throw Error(std::string(what) + ": code " + std::to_string(codes[i]) + " at index " + std::to_string(i) +
                  " exceeds " + std::to_string(max_code));
  if (!weight_codes_packed(bits)) return std::vector<uint8_t>(codes.begin(), codes.end());
  const size_t row_bytes = weight_row_bytes(bits, in_features);
  std::vector<uint8_t> packed;
  packed.reserve(out * row_bytes);
  for (size_t r = 0; r < out; ++r) {  // each row on its own (kernels/int4_pack.h: code 2i in the low nibble)
    const std::vector<uint8_t> row = pack_int4_unsigned(codes.subspan(r * in, in), what);
    packed.insert(packed.end(), row.begin(), row.end());
  }
  return packed;
}

QuantizedLinear make_quantized_linear(int32_t out_features, int32_t in_features, int32_t bits,
                                      std::span<const uint8_t> codes, std::vector<int32_t> zero_points,
                                      std::vector<Dyadic> scales, int32_t group_size) {
  QuantizedLinear w;
  w.group_size = group_size;
  w.out_features = out_features;
  w.in_features = in_features;
  w.bits = bits;
  w.codes = pack_weight_codes(bits, out_features, in_features, codes);
  w.zero_points = std::move(zero_points);
  w.scales = std::move(scales);
  return w;
}

void unpack_weight_row(const QuantizedLinear& w, int32_t row, std::span<uint8_t> out) {
  if (row < 0 || row >= w.out_features || out.size() != static_cast<size_t>(w.in_features))
    throw Error("unpack_weight_row: row " + std::to_string(row) + " of " + std::to_string(w.out_features) +
                " into " + std::to_string(out.size()) + " codes (in_features " + std::to_string(w.in_features) + ")");
  const size_t row_bytes = weight_row_bytes(w);
  const uint8_t* bytes = w.codes.data() + static_cast<size_t>(row) * row_bytes;
  if (!weight_codes_packed(w.bits)) {
    std::copy_n(bytes, out.size(), out.begin());
    return;
  }
  for (size_t c = 0; c < out.size(); ++c)
    out[c] = c % 2 == 0 ? static_cast<uint8_t>(bytes[c / 2] & 0x0F) : static_cast<uint8_t>(bytes[c / 2] >> 4);
}

std::vector<uint8_t> unpack_weight_codes(const QuantizedLinear& w) {
  std::vector<uint8_t> codes(static_cast<size_t>(w.out_features) * static_cast<size_t>(w.in_features));
  for (int32_t r = 0; r < w.out_features; ++r)
    unpack_weight_row(w, r, std::span<uint8_t>(codes.data() + static_cast<size_t>(r) * w.in_features,
                                               static_cast<size_t>(w.in_features)));
  return codes;
}

std::optional<std::string> weight_codes_problem(const QuantizedLinear& w) {
  if (w.bits < 1 || w.bits > 8) return "bits = " + std::to_string(w.bits) + " outside [1, 8]";
  if (w.out_features < 0 || w.in_features < 0) return std::string("negative shape");
  const size_t row_bytes = weight_row_bytes(w), rows = static_cast<size_t>(w.out_features);
  if (w.codes.size() != rows * row_bytes)
    return "codes has " + std::to_string(w.codes.size()) + " bytes, expected " + std::to_string(rows * row_bytes) +
           (weight_codes_packed(w.bits) ? " (two codes per byte, rows padded to a byte)" : "");
  const unsigned max_code = (1u << w.bits) - 1;
  const size_t in = static_cast<size_t>(w.in_features);
  if (weight_codes_packed(w.bits)) {
    // Every nibble of a packed row is a code or the padding; only widths below 4 bits can exceed the range.
    for (size_t r = 0; r < rows; ++r) {
      const uint8_t* bytes = w.codes.data() + r * row_bytes;
      if (in % 2 == 1 && (bytes[row_bytes - 1] >> 4) != 0)
        return "codes row " + std::to_string(r) + " padding nibble is " + std::to_string(bytes[row_bytes - 1] >> 4) +
               ", expected 0";
      if (w.bits < 4)
        for (size_t c = 0; c < in; ++c) {
          const unsigned code = c % 2 == 0 ? (bytes[c / 2] & 0x0Fu) : (bytes[c / 2] >> 4);
          if (code > max_code)
            return "codes[" + std::to_string(r * in + c) + "] = " + std::to_string(code) + " exceeds " +
                   std::to_string(max_code);
        }
    }
    return std::nullopt;
  }
  if (w.bits < 8)
    for (size_t i = 0; i < w.codes.size(); ++i)
      if (w.codes[i] > max_code)
        return "codes[" + std::to_string(i) + "] = " + std::to_string(w.codes[i]) + " exceeds " +
               std::to_string(max_code);
  return std::nullopt;
}

std::optional<std::string> weight_group_problem(const QuantizedLinear& w) {
  const int32_t g = w.group_size;
  if (g == 0 || g == w.in_features) return std::nullopt;
  if (g != 32 && g != 64 && g != 128)
    return "group_size = " + std::to_string(g) + " is not 0, 32, 64, 128 or in_features = " +
           std::to_string(w.in_features);
  if (w.in_features % g != 0)
    return "group_size = " + std::to_string(g) + " does not divide in_features = " + std::to_string(w.in_features);
  return std::nullopt;
}

}  // namespace illm
