#include "kernels/reference/embedding.h"

#include <algorithm>
#include <string>

#include "kernels/error.h"

namespace illm {

void embedding_lookup(std::span<const int16_t> table_codes, std::span<const Dyadic> row_scales, int32_t hidden,
                      int32_t bits, std::span<const int32_t> token_ids, ResidualStream& out) {
  if (hidden <= 0 || table_codes.size() != row_scales.size() * static_cast<size_t>(hidden))
    throw Error("embedding: table has " + std::to_string(table_codes.size()) + " codes for " +
                std::to_string(row_scales.size()) + " rows of width " + std::to_string(hidden));
  if (bits < 2 || bits > 16) throw Error("embedding: unsupported width " + std::to_string(bits) + " bits");
  const int32_t vocab = static_cast<int32_t>(row_scales.size());
  out.rows = static_cast<int32_t>(token_ids.size());
  out.cols = hidden;
  out.bits = bits;
  out.codes.resize(token_ids.size() * static_cast<size_t>(hidden));
  out.scales.resize(token_ids.size());
  for (size_t t = 0; t < token_ids.size(); ++t) {
    const int32_t id = token_ids[t];
    if (id < 0 || id >= vocab)
      throw Error("embedding: token id " + std::to_string(id) + " at position " + std::to_string(t) +
                  " outside [0, " + std::to_string(vocab) + ")");
    std::copy_n(table_codes.begin() + static_cast<ptrdiff_t>(id) * hidden, hidden,
                out.codes.begin() + static_cast<ptrdiff_t>(t) * hidden);
    out.scales[t] = row_scales[id];
  }
}

ResidualStream embedding_lookup(std::span<const int16_t> table_codes, std::span<const Dyadic> row_scales,
                                int32_t hidden, int32_t bits, std::span<const int32_t> token_ids) {
  ResidualStream out;
  embedding_lookup(table_codes, row_scales, hidden, bits, token_ids, out);
  return out;
}

void embedding_lookup(const QuantizedModel& model, std::span<const int32_t> token_ids, ResidualStream& out) {
  embedding_lookup(model.embed_codes, model.embed_scales, model.shape.hidden, model.settings.embed_bits, token_ids,
                   out);
}

ResidualStream embedding_lookup(const QuantizedModel& model, std::span<const int32_t> token_ids) {
  ResidualStream out;
  embedding_lookup(model, token_ids, out);
  return out;
}

}  // namespace illm
