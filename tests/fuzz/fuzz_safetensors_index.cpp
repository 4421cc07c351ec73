// libFuzzer target: model.safetensors.index.json text through formats::parse_safetensors_index (JSON, repeated
// keys, weight_map values, shard paths confined to the model directory).
#include "formats/safetensors.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  illm::fuzz::expect_refusal_or_success([&] {
    const auto map = illm::formats::parse_safetensors_index(illm::fuzz::as_text(data, size), "fuzz/index.json");
    for (const auto& [name, shard] : map) {
      // An accepted shard path stays below the index's directory.
      if (shard.is_absolute() || shard.empty()) __builtin_trap();
      for (const auto& part : shard)
        if (part == "..") __builtin_trap();
    }
  });
  return 0;
}
