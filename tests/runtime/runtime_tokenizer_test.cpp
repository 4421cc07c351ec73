// The C99 runtime's tokenizer (runtime/illm_rt_tokenizer.c) against the SentencePiece library's golden outputs
// (tests/fixtures/tokenizer_golden.json: python3-sentencepiece 0.1.97) for the tinybible and LLaMA-2 tokenizers, and
// against the C++ tokenizer (formats/tokenizer.h) on random slices of tinybible's test text and random strings
// (runs of spaces, tabs, newlines, multi-byte characters, malformed UTF-8), encode and decode. A tokenizer with
// pieces the runtime's encoder does not handle is exported decode-only and the runtime says so.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/illm_file.h"
#include "formats/model_bin.h"
#include "formats/tokenizer.h"
#include "tests/runtime/runtime_test_support.h"

namespace illm::rt_testing {
namespace {

std::string read_text(const std::filesystem::path& p) {
  const std::vector<uint8_t> bytes = read_bytes(p);
  return std::string(bytes.begin(), bytes.end());
}

// The smallest shared test model with the given tokenizer (the runtime's tokenizer only reads its own tables).
std::vector<uint8_t> model_bin_with_tokenizer(const std::string& tokenizer_bytes, formats::ModelBinTokenizer* report = nullptr) {
  const formats::LoadedIllm loaded = formats::read_illm(illm_path("stories260K", "w4a4"));
  formats::ModelBin bin = formats::build_model_bin(loaded.model, tokenizer_bytes, {});
  if (report) *report = bin.tokenizer;
  return bin.bytes;
}

std::vector<int32_t> rt_encode(const illm_rt_model& m, const std::string& text, bool add_bos) {
  std::vector<uint8_t> work(illm_rt_encode_work_size(text.size()));
  std::vector<int32_t> ids(text.size() * 4 + 8);
  int32_t n = 0;
  illm_rt_error err;
  const int status = illm_rt_encode(&m, text.data(), text.size(), add_bos ? 1 : 0, ids.data(),
                                    static_cast<int32_t>(ids.size()), &n, work.data(), work.size(), &err);
  EXPECT_EQ(status, ILLM_RT_OK) << err.message;
  ids.resize(static_cast<size_t>(n));
  return ids;
}

std::string rt_decode(const illm_rt_model& m, const std::vector<int32_t>& ids) {
  std::string text(ids.size() * 64 + 64, '\0');
  size_t length = 0;
  illm_rt_error err;
  EXPECT_EQ(illm_rt_decode(&m, ids.data(), static_cast<int32_t>(ids.size()), text.data(), text.size(), &length, &err),
            ILLM_RT_OK)
      << err.message;
  text.resize(length);
  return text;
}

struct TokenizerCase {
  const char* name;
  std::filesystem::path file;
};

const TokenizerCase kTokenizers[] = {{"tinybible", kSourceDir / "models/tinybible/tokenizer.model"},
                                     {"llama2", kSourceDir / "tests/fixtures/llama2-tokenizer.model"}};

TEST(RuntimeTokenizer, MatchesTheSentencePieceGoldenCases) {
  const auto golden = nlohmann::json::parse(read_text(kSourceDir / "tests/fixtures/tokenizer_golden.json"));
  size_t cases = 0;
  for (const TokenizerCase& tc : kTokenizers) {
    Runtime rt(model_bin_with_tokenizer(read_text(tc.file)));
    ASSERT_TRUE(rt.model().has_tokenizer && rt.model().tokenizer_can_encode);
    for (const auto& c : golden["cases"]) {
      if (c["tokenizer"] != tc.name) continue;
      const std::string text = c["text"];
      const std::vector<int32_t> ids = c["ids"].get<std::vector<int32_t>>();
      EXPECT_EQ(rt_encode(rt.model(), text, false), ids) << tc.name << ": \"" << text << "\"";
      EXPECT_EQ(rt_decode(rt.model(), ids), c["decoded"].get<std::string>()) << tc.name << ": \"" << text << "\"";
      ++cases;
    }
  }
  EXPECT_EQ(cases, 22u);
}

// Random text: slices of a corpus, and strings from an alphabet with spaces, control characters, multi-byte
// characters and malformed bytes.
std::string random_string(std::mt19937_64& rng) {
  static const char* const kUnits[] = {" ", "  ", "\t", "\n", "a", "e", "the", "LORD", ",", ".", "'", "\"", "0", "9",
                                       "\xC3\xA9", "\xE6\x9D\xB1", "\xF0\x9F\xA6\x99", "\xE2\x96\x81", "\xFF", "\xC3",
                                       "\xE2\x82", "\x80", "\xED\xA0\x80", "\xC0\xAF", "<s>", "</s>", "<0x41>"};
  std::uniform_int_distribution<size_t> pick(0, sizeof kUnits / sizeof kUnits[0] - 1), length(0, 24);
  std::string s;
  for (size_t i = 0, n = length(rng); i < n; ++i) s += kUnits[pick(rng)];
  return s;
}

TEST(RuntimeTokenizer, MatchesTheCppTokenizerOnRandomText) {
  const std::string corpus = read_text(kSourceDir / "models/tinybible/test.txt");
  for (const TokenizerCase& tc : kTokenizers) {
    const std::string bytes = read_text(tc.file);
    const formats::Tokenizer cpp = formats::Tokenizer::from_bytes(bytes, tc.name);
    Runtime rt(model_bin_with_tokenizer(bytes));
    std::mt19937_64 rng(7);
    std::uniform_int_distribution<size_t> start(0, corpus.size() - 400), span(0, 300);
    std::uniform_int_distribution<int32_t> id(0, cpp.vocab_size() - 1);
    size_t compared = 0;
    for (int i = 0; i < 300; ++i) {
      const std::string text = i % 2 == 0 ? corpus.substr(start(rng), span(rng)) : random_string(rng);
      const bool bos = i % 3 == 0;
      const std::vector<int32_t> ids = cpp.encode(text, bos);
      ASSERT_EQ(rt_encode(rt.model(), text, bos), ids) << tc.name << ": \"" << text << "\"";
      ASSERT_EQ(rt_decode(rt.model(), ids), cpp.decode(ids)) << tc.name << ": \"" << text << "\"";
      // Arbitrary id sequences (byte pieces, control and unknown pieces anywhere) decode alike too.
      std::vector<int32_t> random_ids;
      for (int k = 0; k < 12; ++k) random_ids.push_back(k % 4 == 0 ? id(rng) % 300 : id(rng));
      ASSERT_EQ(rt_decode(rt.model(), random_ids), cpp.decode(random_ids)) << tc.name;
      ++compared;
    }
    EXPECT_EQ(compared, 300u);
  }
}

TEST(RuntimeTokenizer, UnsupportedPiecesExportDecodeOnly) {
  // tinybible's tokenizer with its BOS control piece "<s>" (type 3) turned into a USER_DEFINED piece (type 4):
  // the one-byte varint of its type field changes in place.
  std::string bytes = read_text(kSourceDir / "models/tinybible/tokenizer.model");
  const std::string piece = std::string("\x0a\x03<s>", 5);
  const size_t at = bytes.find(piece);
  ASSERT_NE(at, std::string::npos);
  const size_t type_field = bytes.find('\x18', at + piece.size());  // field 3, varint
  ASSERT_EQ(bytes[type_field + 1], '\x03');
  bytes[type_field + 1] = '\x04';
  formats::ModelBinTokenizer report;
  Runtime rt(model_bin_with_tokenizer(bytes, &report));
  EXPECT_TRUE(report.present);
  EXPECT_FALSE(report.can_encode);
  EXPECT_NE(report.note.find("USER_DEFINED"), std::string::npos) << report.note;
  EXPECT_TRUE(rt.model().has_tokenizer);
  EXPECT_FALSE(rt.model().tokenizer_can_encode);
  std::vector<uint8_t> work(illm_rt_encode_work_size(5));
  int32_t ids[8], n = 0;
  illm_rt_error err;
  EXPECT_EQ(illm_rt_encode(&rt.model(), "Hello", 5, 0, ids, 8, &n, work.data(), work.size(), &err), ILLM_RT_E_TOKENIZER);
  EXPECT_NE(std::string(err.message).find("token ids"), std::string::npos) << err.message;
  EXPECT_EQ(rt_decode(rt.model(), {560, 282, 949, 606, 313}), "Hello world");
}

}  // namespace
}  // namespace illm::rt_testing
