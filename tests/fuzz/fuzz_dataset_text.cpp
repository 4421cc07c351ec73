// libFuzzer target: a text dataset's bytes through formats::windows_from_bytes with the bundled tinybible
// tokenizer (UTF-8 check, SentencePiece encoding with byte fallback, windows of 256 tokens).
#include <memory>

#include "formats/dataset.h"
#include "formats/tokenizer.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto tokenizer = std::make_unique<illm::formats::Tokenizer>(
      illm::formats::Tokenizer::load(std::string(ILLM_SOURCE_DIR) + "/models/tinybible/tokenizer.model"));
  illm::fuzz::expect_refusal_or_success([&] {
    const auto windows = illm::formats::windows_from_bytes(std::string(illm::fuzz::as_text(data, size)), "fuzz.txt",
                                                           tokenizer.get(), std::nullopt, tokenizer->vocab_size(), 512);
    for (const auto& w : windows.sequences)
      for (const int32_t id : w)
        if (id < 0 || id >= tokenizer->vocab_size()) __builtin_trap();
  });
  return 0;
}
