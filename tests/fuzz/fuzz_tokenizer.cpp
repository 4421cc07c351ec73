// libFuzzer target: tokenizer.model bytes (a serialized SentencePiece ModelProto) through
// formats::Tokenizer::from_bytes; an accepted model then encodes a fixed text and decodes every id it knows.
#include "formats/tokenizer.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  illm::fuzz::expect_refusal_or_success([&] {
    const auto tokenizer =
        illm::formats::Tokenizer::from_bytes(std::string(illm::fuzz::as_text(data, size)), "fuzz/tokenizer.model");
    const auto ids = tokenizer.encode("In the beginning  God\ncreated \xE2\x98\x95 the heaven, 123!", true);
    for (const int32_t id : ids)
      if (id < 0 || id >= tokenizer.vocab_size()) __builtin_trap();
    (void)tokenizer.decode(ids);
    std::vector<int32_t> every;
    for (int32_t id = 0; id < tokenizer.vocab_size() && id < 4096; ++id) every.push_back(id);
    (void)tokenizer.decode(every);
    for (const int32_t id : every) (void)tokenizer.piece_text(id);
  });
  return 0;
}
