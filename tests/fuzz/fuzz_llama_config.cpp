// libFuzzer target: config.json text through formats::parse_llama_config, then the RoPE frequencies of an
// accepted config (rope_scaling variants).
#include <cmath>

#include "formats/llama_config.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  illm::fuzz::expect_refusal_or_success([&] {
    const auto config = illm::formats::parse_llama_config(std::string(illm::fuzz::as_text(data, size)), "fuzz/config.json");
    if (config.hidden_size % config.num_attention_heads != 0 || config.head_dim() % 2 != 0) __builtin_trap();
    if (config.head_dim() <= 8192) {  // a huge head_dim is legal JSON and a large allocation, not a bug
      for (const double f : illm::formats::rope_inverse_frequencies(config))
        if (!std::isfinite(f)) __builtin_trap();
    }
  });
  return 0;
}
