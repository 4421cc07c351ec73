// libFuzzer target: token-id JSONL bytes through formats::windows_from_bytes (one {"input_ids": [...]} per line;
// ids in [0, 512), at most 512 positions). The first byte picks a window length, as --seq-len would.
#include <optional>

#include "formats/dataset.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::optional<int64_t> seq_len = data[0] < 128 ? std::nullopt : std::optional<int64_t>(data[0] - 126);
  illm::fuzz::expect_refusal_or_success([&] {
    const auto windows = illm::formats::windows_from_bytes(std::string(illm::fuzz::as_text(data + 1, size - 1)),
                                                           "fuzz.jsonl", nullptr, seq_len, 512, 512);
    for (const auto& w : windows.sequences) {
      if (w.size() < 2 || w.size() > 512) __builtin_trap();
      for (const int32_t id : w)
        if (id < 0 || id >= 512) __builtin_trap();
    }
  });
  return 0;
}
