// The seed corpus of the loader's fuzz target (tests/fuzz/fuzz_model_bin.c, tests/fuzz/corpus/model_bin/): small
// synthetic models written by build_model_bin, one with a hand-built SentencePiece BPE tokenizer. The committed seeds
// must load in the runtime and run, and equal what this generator writes today (a regression lock on the format:
// a change to the writer must regenerate them, with ILLM_WRITE_FUZZ_SEEDS=1).
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "formats/model_bin.h"
#include "formats/tokenizer.h"
#include "tests/runtime/runtime_synthetic_model.h"
#include "tests/runtime/runtime_test_support.h"

namespace illm::rt_testing {
namespace {

namespace fs = std::filesystem;

// Protobuf wire format, just enough for a sentencepiece.ModelProto.
void varint(std::string& out, uint64_t v) {
  do {
    out += static_cast<char>((v & 0x7F) | (v >= 0x80 ? 0x80 : 0));
    v >>= 7;
  } while (v != 0);
}
void field(std::string& out, int number, const std::string& bytes) {
  varint(out, static_cast<uint64_t>(number) << 3 | 2);
  varint(out, bytes.size());
  out += bytes;
}
void field_varint(std::string& out, int number, uint64_t v) {
  varint(out, static_cast<uint64_t>(number) << 3);
  varint(out, v);
}

// A BPE tokenizer of 12 pieces: <unk>, <s>, </s>, then merges over "a", "b" and the space symbol.
std::string tiny_tokenizer() {
  struct Piece {
    const char* text;
    int type;  // 1 normal, 2 unknown, 3 control
    float score;
  };
  const Piece pieces[] = {{"<unk>", 2, 0}, {"<s>", 3, 0}, {"</s>", 3, 0}, {"\xE2\x96\x81", 1, -1}, {"a", 1, -2},
                          {"b", 1, -3},   {"\xE2\x96\x81" "a", 1, -4},   {"ab", 1, -5},     {"\xE2\x96\x81" "ab", 1, -6},
                          {"ba", 1, -7},  {"\xC3\xA9", 1, -8},           {"bb", 1, -9}};
  std::string model;
  for (const Piece& p : pieces) {
    std::string piece;
    field(piece, 1, p.text);
    uint32_t bits;
    std::memcpy(&bits, &p.score, 4);
    varint(piece, 2 << 3 | 5);
    for (int i = 0; i < 4; ++i) piece += static_cast<char>(bits >> (8 * i));
    if (p.type != 1) field_varint(piece, 3, static_cast<uint64_t>(p.type));
    field(model, 1, piece);
  }
  std::string trainer;
  field_varint(trainer, 3, 2);  // model_type = BPE
  field(model, 2, trainer);
  std::string normalizer;
  field(normalizer, 1, "identity");
  field_varint(normalizer, 3, 1);  // add_dummy_prefix
  field_varint(normalizer, 4, 0);  // remove_extra_whitespaces
  field(model, 3, normalizer);
  return model;
}

struct Seed {
  const char* file;
  SyntheticShape shape;
  bool tokenizer;
  int32_t act_group = 0;  // per-group activations (required feature 16)
};

std::vector<Seed> seeds() {
  SyntheticShape tiny;
  tiny.hidden = 8;
  tiny.intermediate = 12;
  tiny.layers = 1;
  tiny.heads = 2;
  tiny.kv_heads = 1;
  tiny.head_dim = 4;
  tiny.vocab = 16;
  tiny.max_positions = 8;
  SyntheticShape varied = tiny;
  varied.layers = 2;
  varied.intermediate = 7;
  varied.settings = paper_conformance_settings();
  varied.settings.w_bits = varied.settings.a_bits = 8;
  varied.settings.embed_bits = 8;
  varied.settings.head_bits = 4;
  varied.seed = 2;
  // The LM-head options (required features 32 and 1): a 16-bit head input and two head groups of 32.
  SyntheticShape head = tiny;
  head.hidden = 64;
  head.settings.head_in_bits = 16;
  head.head_group_size = 32;
  head.seed = 3;
  // Per-group activations (A 16) with per-group block weights (G 32, two activation groups per weight group).
  SyntheticShape groups = tiny;
  groups.hidden = groups.intermediate = 64;  // two weight groups per row (G = in would be the per-row case)
  groups.head_dim = 32;
  groups.group_size = 32;
  groups.seed = 4;
  // Per-group activations of 8 with a short last group: intermediate 12 is 8 + 4 (the down_proj input), hidden 8 one
  // group.
  SyntheticShape ragged = tiny;
  ragged.seed = 5;
  // 8-bit Q/K/V on W4A4 (required feature 64, the width at offset 220).
  SyntheticShape kv8 = tiny;
  kv8.settings.qkv_bits = 8;
  kv8.seed = 6;
  return {{"tiny-w4a4.bin", tiny, false},
          {"tiny-paper-w8a8-int8-embed-head4.bin", varied, false},
          {"tiny-tokenizer.bin", tiny, true},
          {"tiny-head-in16-group32.bin", head, false},
          {"tiny-act16-group32.bin", groups, false, 16},
          {"tiny-act8-short-group.bin", ragged, false, 8},
          {"tiny-qkv8.bin", kv8, false}};
}

TEST(FuzzSeeds, CommittedSeedsAreTheGeneratorsAndRun) {
  const fs::path corpus = kSourceDir / "tests/fuzz/corpus/model_bin";
  const bool write = std::getenv("ILLM_WRITE_FUZZ_SEEDS") != nullptr;
  for (const Seed& s : seeds()) {
    QuantizedModel model = synthetic_model(s.shape);
    model.act_group_size = s.act_group;
    const std::vector<uint8_t> bytes = formats::build_model_bin(model, s.tokenizer ? tiny_tokenizer() : "", {}).bytes;
    if (write) {
      std::ofstream(corpus / s.file, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                             static_cast<std::streamsize>(bytes.size()));
    }
    EXPECT_EQ(read_bytes(corpus / s.file), bytes) << s.file << ": regenerate with ILLM_WRITE_FUZZ_SEEDS=1";
    Runtime rt(read_bytes(corpus / s.file), 4);
    EXPECT_EQ(rt.model().has_tokenizer, s.tokenizer ? 1 : 0);
    illm_rt_error err;
    for (int32_t t = 0; t < 3; ++t) EXPECT_EQ(illm_rt_forward(&rt.session(), t, &err), ILLM_RT_OK) << s.file << ": " << err.message;
    EXPECT_LT(bytes.size(), 40000u) << s.file << ": seeds stay small so that the fuzzer runs fast";
  }
}

TEST(FuzzSeeds, TheTinyTokenizerEncodesAndDecodes) {
  Runtime rt(formats::build_model_bin(synthetic_model(seeds()[2].shape), tiny_tokenizer(), {}).bytes, 4);
  ASSERT_TRUE(rt.model().tokenizer_can_encode);
  std::vector<uint8_t> work(illm_rt_encode_work_size(16));
  int32_t ids[16], n = 0;
  illm_rt_error err;
  ASSERT_EQ(illm_rt_encode(&rt.model(), "ab ba", 5, 1, ids, 16, &n, work.data(), work.size(), &err), ILLM_RT_OK) << err.message;
  // The C++ tokenizer is the reference for the merge order.
  const formats::Tokenizer cpp = formats::Tokenizer::from_bytes(tiny_tokenizer(), "tiny");
  EXPECT_EQ(std::vector<int32_t>(ids, ids + n), cpp.encode("ab ba", true));
  char text[32];
  size_t length = 0;
  ASSERT_EQ(illm_rt_decode(&rt.model(), ids, n, text, sizeof text, &length, &err), ILLM_RT_OK) << err.message;
  EXPECT_EQ(std::string(text, length), "ab ba");
}

}  // namespace
}  // namespace illm::rt_testing
