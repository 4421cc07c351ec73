#pragma once
// The integer KV cache (docs/method.md §7.5): K and V of every layer and KV head as a_bits-wide unsigned codes with a
// zero point and a dyadic scale per (token, head), quantized once when produced. Every scale is per token, so
// appending never re-quantizes old entries and prefill and token-by-token decode store identical codes.
// Layers may hold different numbers of tokens: token pruning (kernels/token_pruning.h) drops tokens after a layer's
// attention, so the later layers store only the kept ones. Entries are addressed by slot (0, 1, … in the order
// stored), not by position; without pruning the two are the same.
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/dyadic.h"
#include "kernels/quantized_tensor.h"  // HeadCodes

namespace illm {

// Read-only view of the cached keys (or values) of one (layer, KV head): `length` tokens of `head_dim` codes.
struct KvHeadView {
  std::span<const uint8_t> codes;         // [length][head_dim]
  std::span<const int32_t> zero_points;   // [length]
  std::span<const Dyadic> scales;         // [length]
  std::span<const int32_t> code_sums;     // [length]: Σ_c codes of each token (for the optimized Q·Kᵀ)
  std::span<const int64_t> scale_m;       // [length]: scales[t].m, and below scales[t].k, as plain arrays
  std::span<const int32_t> scale_k;       //           (the optimized attention's vectorized alignment reads them)
  int32_t length = 0;
  int32_t head_dim = 0;
  const uint8_t* row(int32_t token) const { return codes.data() + static_cast<size_t>(token) * head_dim; }
};

class KvCache {
 public:
  KvCache() = default;
  // Empty cache for n_layers × n_kv_heads heads of width head_dim holding at most `capacity` tokens.
  KvCache(int32_t n_layers, int32_t n_kv_heads, int32_t head_dim, int32_t capacity);

  // Stores K and V of one token in `slot` of (layer, kv_head). Slots of one (layer, head) are written in order
  // starting at length(layer); any other slot is an error (illm::Error), as is slot >= capacity.
  void store(int32_t layer, int32_t kv_head, int32_t slot, const HeadCodes& key, const HeadCodes& value);

  // Marks tokens [0, new_length) of every layer as committed (after every layer and head stored them).
  void commit(int32_t new_length);
  // Commits what each layer holds (its heads must agree): after a pruned prefill, layers differ in length.
  void commit_stored();
  // Drops everything stored after the last commit (a forward pass that failed half-way).
  void rollback();
  void reset();

  // Committed tokens of layer 0: every token run so far (pruning removes tokens only after a layer's attention).
  int32_t length() const { return length_; }
  // Committed tokens of one layer.
  int32_t length(int32_t layer) const;
  int32_t capacity() const { return capacity_; }
  int32_t head_dim() const { return head_dim_; }
  int32_t n_layers() const { return n_layers_; }
  int32_t n_kv_heads() const { return n_kv_heads_; }

  // Keys / values of (layer, kv_head) over tokens [0, stored), including tokens stored but not yet committed
  // (the current prefill's own tokens, which causal attention needs).
  KvHeadView keys(int32_t layer, int32_t kv_head) const;
  KvHeadView values(int32_t layer, int32_t kv_head) const;

 private:
  struct HeadStore {
    std::vector<uint8_t> codes;
    std::vector<int32_t> zero_points;
    std::vector<Dyadic> scales;
    std::vector<int32_t> code_sums;
    std::vector<int64_t> scale_m;
    std::vector<int32_t> scale_k;
    int32_t length = 0;
  };
  size_t index(int32_t layer, int32_t kv_head) const;  // checks the range
  void append(HeadStore& store, int32_t position, const HeadCodes& entry, const char* which);
  KvHeadView view(const HeadStore& store) const;

  int32_t n_layers_ = 0, n_kv_heads_ = 0, head_dim_ = 0, capacity_ = 0, length_ = 0;
  std::vector<int32_t> layer_lengths_;  // [layer] committed tokens
  std::vector<HeadStore> keys_, values_;  // [layer][kv_head]
};

}  // namespace illm
