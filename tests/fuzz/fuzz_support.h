#pragma once
// Shared by the C++ fuzz targets. A target calls a parser on the fuzzer's bytes; illm::Error is the expected
// answer to bad input and is swallowed. Anything else escaping (another exception type, a crash, a sanitizer
// report, a leak) is a finding.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "kernels/error.h"

namespace illm::fuzz {

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Runs `parse`; an illm::Error is a refusal, which is what bad input must get.
template <typename Fn>
void expect_refusal_or_success(Fn&& parse) {
  try {
    parse();
  } catch (const illm::Error&) {
  }
}

}  // namespace illm::fuzz
