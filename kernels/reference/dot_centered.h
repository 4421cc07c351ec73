#pragma once
// The centered dot product of the reference DI-MatMuls (di_matmul.cpp, act_group_matmul.cpp).
#include <cstdint>

namespace illm {

// Σ_k (x_k − z1)(w_k − z2) in Acc (int32_t when the §3.6 bound holds for the shape, else int64_t).
template <typename Acc, typename Code>
Acc dot_centered(const uint16_t* x, int32_t z1, const Code* w, int32_t z2, int32_t length) {
  Acc sum = 0;
  for (int32_t i = 0; i < length; ++i)
    sum += static_cast<Acc>(static_cast<int32_t>(x[i]) - z1) * static_cast<Acc>(static_cast<int32_t>(w[i]) - z2);
  return sum;
}

// The same in int64, summed in int32 when `use_int32` (the caller's §3.6 bound for the length).
template <typename Code>
int64_t dot_centered(bool use_int32, const uint16_t* x, int32_t z1, const Code* w, int32_t z2, int32_t length) {
  return use_int32 ? int64_t{dot_centered<int32_t>(x, z1, w, z2, length)} : dot_centered<int64_t>(x, z1, w, z2, length);
}

}  // namespace illm
