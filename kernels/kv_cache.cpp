#include "kernels/kv_cache.h"

#include <algorithm>
#include <string>
#include <utility>

#include "kernels/error.h"

namespace illm {

KvCache::KvCache(int32_t n_layers, int32_t n_kv_heads, int32_t head_dim, int32_t capacity)
    : n_layers_(n_layers), n_kv_heads_(n_kv_heads), head_dim_(head_dim), capacity_(capacity) {
  if (n_layers < 0 || n_kv_heads < 1 || head_dim < 1 || capacity < 0)
    throw Error("KV cache: invalid shape (" + std::to_string(n_layers) + " layers, " + std::to_string(n_kv_heads) +
                " heads, head_dim " + std::to_string(head_dim) + ", capacity " + std::to_string(capacity) + ")");
  keys_.resize(static_cast<size_t>(n_layers) * n_kv_heads);
  layer_lengths_.assign(static_cast<size_t>(n_layers), 0);
  values_.resize(keys_.size());
}

size_t KvCache::index(int32_t layer, int32_t kv_head) const {
  if (layer < 0 || layer >= n_layers_ || kv_head < 0 || kv_head >= n_kv_heads_)
    throw Error("KV cache: (layer " + std::to_string(layer) + ", kv head " + std::to_string(kv_head) +
                ") outside the cache's " + std::to_string(n_layers_) + "x" + std::to_string(n_kv_heads_));
  return static_cast<size_t>(layer) * n_kv_heads_ + kv_head;
}

void KvCache::append(HeadStore& store, int32_t slot, const HeadCodes& entry, const char* which) {
  if (slot != store.length)
    throw Error(std::string("KV cache: ") + which + " of slot " + std::to_string(slot) +
                " stored out of order (next slot is " + std::to_string(store.length) + ")");
  if (slot >= capacity_)
    throw Error(std::string("KV cache: slot ") + std::to_string(slot) + " beyond the capacity " +
                std::to_string(capacity_));
  if (entry.codes.size() != static_cast<size_t>(head_dim_))
    throw Error(std::string("KV cache: ") + which + " has " + std::to_string(entry.codes.size()) +
                " codes, expected head_dim " + std::to_string(head_dim_));
  store.codes.insert(store.codes.end(), entry.codes.begin(), entry.codes.end());
  int32_t sum = 0;
  for (const uint8_t code : entry.codes) sum += code;
  store.code_sums.push_back(sum);
  store.scale_m.push_back(entry.scale.m);
  store.scale_k.push_back(entry.scale.k);
  store.zero_points.push_back(entry.zero_point);
  store.scales.push_back(entry.scale);
  ++store.length;
}

void KvCache::store(int32_t layer, int32_t kv_head, int32_t slot, const HeadCodes& key, const HeadCodes& value) {
  const size_t i = index(layer, kv_head);
  append(keys_[i], slot, key, "key");
  append(values_[i], slot, value, "value");
}

int32_t KvCache::length(int32_t layer) const { return layer_lengths_[index(layer, 0) / n_kv_heads_]; }

void KvCache::commit(int32_t new_length) {
  if (new_length < length_ || new_length > capacity_)
    throw Error("KV cache: commit of length " + std::to_string(new_length) + " (current " + std::to_string(length_) +
                ", capacity " + std::to_string(capacity_) + ")");
  for (const std::vector<HeadStore>* stores : {&keys_, &values_})
    for (const HeadStore& s : *stores)
      if (s.length != new_length)
        throw Error("KV cache: commit of length " + std::to_string(new_length) + " but a head holds " +
                    std::to_string(s.length) + " tokens");
  length_ = new_length;
  layer_lengths_.assign(layer_lengths_.size(), new_length);
}

void KvCache::commit_stored() {
  std::vector<int32_t> lengths(layer_lengths_.size());
  for (int32_t l = 0; l < n_layers_; ++l) {
    const int32_t held = keys_[index(l, 0)].length;
    for (int32_t g = 0; g < n_kv_heads_; ++g)
      if (keys_[index(l, g)].length != held || values_[index(l, g)].length != held)
        throw Error("KV cache: layer " + std::to_string(l) + " has heads of different lengths at commit");
    if (held < layer_lengths_[l])
      throw Error("KV cache: layer " + std::to_string(l) + " holds fewer tokens than it committed");
    lengths[l] = held;
  }
  layer_lengths_ = std::move(lengths);
  length_ = layer_lengths_.empty() ? 0 : layer_lengths_[0];
}

void KvCache::rollback() {
  for (std::vector<HeadStore>* stores : {&keys_, &values_})
    for (size_t i = 0; i < stores->size(); ++i) {
      HeadStore& s = (*stores)[i];
      const int32_t committed = layer_lengths_[i / static_cast<size_t>(n_kv_heads_)];
      s.codes.resize(static_cast<size_t>(committed) * head_dim_);
      s.zero_points.resize(committed);
      s.scales.resize(committed);
      s.code_sums.resize(committed);
      s.scale_m.resize(committed);
      s.scale_k.resize(committed);
      s.length = committed;
    }
}

void KvCache::reset() {
  for (std::vector<HeadStore>* stores : {&keys_, &values_})
    for (HeadStore& s : *stores) {
      s.codes.clear();
      s.zero_points.clear();
      s.scales.clear();
      s.code_sums.clear();
      s.scale_m.clear();
      s.scale_k.clear();
      s.length = 0;
    }
  length_ = 0;
  layer_lengths_.assign(layer_lengths_.size(), 0);
}

KvHeadView KvCache::view(const HeadStore& store) const {
  KvHeadView v;
  v.codes = store.codes;
  v.zero_points = store.zero_points;
  v.scales = store.scales;
  v.code_sums = store.code_sums;
  v.scale_m = store.scale_m;
  v.scale_k = store.scale_k;
  v.length = store.length;
  v.head_dim = head_dim_;
  return v;
}

KvHeadView KvCache::keys(int32_t layer, int32_t kv_head) const { return view(keys_[index(layer, kv_head)]); }
KvHeadView KvCache::values(int32_t layer, int32_t kv_head) const { return view(values_[index(layer, kv_head)]); }

}  // namespace illm
