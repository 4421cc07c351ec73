// libFuzzer target: one safetensors file's bytes (header length, JSON header, dtypes, shapes, offsets, overlaps)
// through formats::parse_safetensors_bytes, the check TensorStore::open runs on every file it maps.
#include <span>

#include "formats/safetensors.h"
#include "tests/fuzz/fuzz_support.h"

volatile unsigned g_sink;  // the reads are what counts (ASan checks them), not the value

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  illm::fuzz::expect_refusal_or_success([&] {
    const auto bytes = std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), size);
    const auto tensors = illm::formats::parse_safetensors_bytes(bytes, "fuzz.safetensors");
    // Every accepted tensor lies inside the bytes given: touch its first and last byte.
    for (const auto& t : tensors) {
      if (t.nbytes == 0) continue;
      if (t.offset + t.nbytes > size) __builtin_trap();
      g_sink = static_cast<unsigned>(data[t.offset]) + data[t.offset + t.nbytes - 1];
      if (t.numel() < 0) __builtin_trap();
    }
  });
  return 0;
}
