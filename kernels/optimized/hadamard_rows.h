#pragma once
// The optimized `hadamard_rows` (kernels/kernel_set.h): rows in parallel (OpenMP), int32 butterflies whose inner
// loops run over contiguous halves (auto-vectorized), the Paley base as whole-slice adds and subtracts. Equal to the
// reference kernel (kernels/reference/hadamard.h) bit for bit: both compute H·x exactly, and the checked range
// precondition keeps every intermediate inside int32.
#include <cstdint>
#include <span>

#include "kernels/reference/hadamard.h"

namespace illm::optimized {

void hadamard_rows(const HadamardPlan& plan, int32_t rows, std::span<int32_t> values);

}  // namespace illm::optimized
