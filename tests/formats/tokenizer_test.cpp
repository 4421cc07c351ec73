// Tokenizer tests: the reference library's golden outputs (tokenizer_golden.json, tinybible's README),
// hand-derived BPE cases on tiny hand-encoded models, and refusal of bad or unsupported files.
#include "formats/tokenizer.h"

#include <gtest/gtest.h>

#include "formats/dataset.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>

#include "kernels/error.h"

namespace illm::formats {
namespace {

const std::filesystem::path kSourceDir = ILLM_SOURCE_DIR;
const std::filesystem::path kTinybibleModel = kSourceDir / "models/tinybible/tokenizer.model";
const std::filesystem::path kLlama2Model = kSourceDir / "tests/fixtures/llama2-tokenizer.model";

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

const Tokenizer& bundled_tokenizer(const std::string& name) {
  static const std::map<std::string, Tokenizer> tokenizers = {
      {"tinybible", Tokenizer::load(kTinybibleModel)},
      {"llama2", Tokenizer::load(kLlama2Model)},
  };
  return tokenizers.at(name);
}

// Expects `fn` to throw illm::Error whose message contains every one of `needles`.
template <typename Fn>
void expect_error(Fn&& fn, std::initializer_list<std::string> needles) {
  try {
    fn();
    ADD_FAILURE() << "expected illm::Error";
  } catch (const Error& e) {
    const std::string message = e.what();
    for (const auto& needle : needles) EXPECT_NE(message.find(needle), std::string::npos) << message;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Golden cases produced with python3-sentencepiece 0.1.97.

struct GoldenCase {
  std::string tokenizer;
  std::string text;
  std::vector<int32_t> ids;
  std::string decoded;
  size_t index;
};

std::vector<GoldenCase> load_golden_cases() {
  const auto json = nlohmann::json::parse(read_file(kSourceDir / "tests/fixtures/tokenizer_golden.json"));
  std::vector<GoldenCase> cases;
  for (const auto& c : json.at("cases")) {
    cases.push_back(GoldenCase{c.at("tokenizer").get<std::string>(), c.at("text").get<std::string>(),
                               c.at("ids").get<std::vector<int32_t>>(), c.at("decoded").get<std::string>(),
                               cases.size()});
  }
  return cases;
}

class TokenizerGolden : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(TokenizerGolden, EncodeAndDecodeMatchSentencePiece) {
  const auto& c = GetParam();
  const Tokenizer& tok = bundled_tokenizer(c.tokenizer);
  EXPECT_EQ(tok.encode(c.text, /*add_bos=*/false), c.ids) << "text: " << c.text;
  EXPECT_EQ(tok.decode(c.ids), c.decoded);
  // With BOS: the same ids after the BOS id, and BOS decodes to nothing.
  std::vector<int32_t> with_bos = {tok.bos_id()};
  with_bos.insert(with_bos.end(), c.ids.begin(), c.ids.end());
  EXPECT_EQ(tok.encode(c.text, /*add_bos=*/true), with_bos);
  EXPECT_EQ(tok.decode(with_bos), c.decoded);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TokenizerGolden, ::testing::ValuesIn(load_golden_cases()),
                         [](const ::testing::TestParamInfo<GoldenCase>& info) {
                           return info.param.tokenizer + "_" + std::to_string(info.param.index);
                         });

TEST(TokenizerGoldenFile, HasTheTwentyTwoCases) { EXPECT_EQ(load_golden_cases().size(), 22u); }

// ---------------------------------------------------------------------------------------------------------
// tinybible's test.txt (models/tinybible/README.md).

TEST(TokenizerTinybible, SpecialIdsAndVocab) {
  const Tokenizer& tok = bundled_tokenizer("tinybible");
  EXPECT_EQ(tok.vocab_size(), 1024);
  EXPECT_EQ(tok.unk_id(), 0);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.bytes(), read_file(kTinybibleModel));
  EXPECT_EQ(bundled_tokenizer("llama2").vocab_size(), 32000);
}

TEST(TokenizerTinybible, WholeTestTextMatchesReadme) {
  const Tokenizer& tok = bundled_tokenizer("tinybible");
  const std::string text = read_file(kSourceDir / "models/tinybible/test.txt");
  ASSERT_EQ(text.size(), 249672u);

  const auto start = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids = tok.encode(text, /*add_bos=*/true);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ timing ] encode of test.txt (%zu bytes -> %zu ids): %.3f s\n", text.size(), ids.size(), seconds);
  // A quadratic merge loop takes minutes here; the priority queue takes ~0.1 s (about 2 s in a Debug
  // ASan/UBSan build), so the bound only catches the wrong algorithm.
  EXPECT_LT(seconds, 10.0);

  EXPECT_EQ(ids.size(), 89405u);
  const std::vector<int32_t> first32 = {1,   697, 317, 950, 13,  13,  989, 642, 369, 945, 1004,
                                        13,  998, 331, 332, 566, 284, 681, 292, 262, 857, 471,
                                        262, 877, 964, 289, 647, 439, 283, 961, 314, 418};
  ASSERT_GE(ids.size(), first32.size());
  EXPECT_EQ(std::vector<int32_t>(ids.begin(), ids.begin() + 32), first32);
  EXPECT_EQ(tok.decode(ids), text);
}

TEST(TokenizerTinybible, TestTextWindowsMatchReadme) {
  // README: 89,405 ids in 256-token windows = 349 full windows + one of 61 tokens; 89,055 predicted tokens.
  const Tokenizer& tok = bundled_tokenizer("tinybible");
  const Windows windows = load_windows(kSourceDir / "models/tinybible/test.txt", &tok, 256, 1024, 512);
  ASSERT_EQ(windows.sequences.size(), 350u);
  for (size_t i = 0; i + 1 < windows.sequences.size(); ++i) ASSERT_EQ(windows.sequences[i].size(), 256u) << i;
  EXPECT_EQ(windows.sequences.back().size(), 61u);
  EXPECT_EQ(windows.predicted_tokens(), 89055);
  EXPECT_EQ(windows.sequences.front().front(), tok.bos_id());
}

TEST(TokenizerTinybible, PieceTextForStreaming) {
  const Tokenizer& tok = bundled_tokenizer("tinybible");
  EXPECT_EQ(tok.piece_text(tok.bos_id()), "");
  EXPECT_EQ(tok.piece_text(tok.eos_id()), "");
  EXPECT_EQ(tok.piece_text(tok.unk_id()), " \xE2\x81\x87 ");
  EXPECT_EQ(tok.piece(13), "<0x0A>");
  EXPECT_EQ(tok.piece_text(13), "\n");
  EXPECT_EQ(tok.piece(3 + 0xC3), "<0xC3>");
  EXPECT_EQ(tok.piece_text(3 + 0xC3), "\xC3");
  EXPECT_EQ(tok.piece(259), "\xE2\x96\x81t");  // "▁t", see the model's piece list
  EXPECT_EQ(tok.piece_text(259), " t");
  // Concatenating piece_text reproduces decode except for the dummy-prefix space at the start.
  const std::string text = "And it came to pass, \xC3\xA9 \xF0\x9F\xA6\x99 done.\n";
  std::string streamed;
  for (const int32_t id : tok.encode(text, true)) streamed += tok.piece_text(id);
  EXPECT_EQ(streamed, " " + text);
}

TEST(TokenizerTinybible, OutOfRangeIdsAreErrors) {
  const Tokenizer& tok = bundled_tokenizer("tinybible");
  expect_error([&] { tok.decode({5, 1024}); }, {"1024", "out of range", "tokenizer.model"});
  expect_error([&] { tok.decode({-1}); }, {"-1", "out of range"});
  expect_error([&] { tok.piece_text(5000); }, {"5000", "out of range"});
}

TEST(TokenizerTinybible, DecodeMalformedBytesAsReplacementCharacter) {
  const Tokenizer& tok = bundled_tokenizer("tinybible");
  // <0xC3> alone is no character: U+FFFD, as the library does; <0xC3><0xA9> is 'é'.
  EXPECT_EQ(tok.decode({3 + 0xC3}), "\xEF\xBF\xBD");
  EXPECT_EQ(tok.decode({3 + 0xC3, 3 + 0xA9}), "\xC3\xA9");
  EXPECT_EQ(tok.decode({3 + 0xA9, 3 + 0xC3, 3 + 0xA9}), "\xEF\xBF\xBD\xC3\xA9");
}

TEST(TokenizerTinybible, MalformedUtf8InputBecomesReplacementCharacter) {
  const Tokenizer& tok = bundled_tokenizer("tinybible");
  // The normalizer maps each byte that starts no well-formed character to U+FFFD (EF BF BD), which this
  // vocabulary has no piece for: three byte pieces after the dummy-prefix space.
  const std::vector<int32_t> ids = tok.encode("\xFF", false);
  ASSERT_EQ(ids.size(), 4u);
  EXPECT_EQ(std::vector<int32_t>(ids.begin() + 1, ids.end()),
            (std::vector<int32_t>{3 + 0xEF, 3 + 0xBF, 3 + 0xBD}));
  EXPECT_EQ(tok.decode(ids), "\xEF\xBF\xBD");
}

// ---------------------------------------------------------------------------------------------------------
// Tiny hand-encoded models: expectations derived by hand from the BPE rules.

std::string varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
  return out;
}
std::string field_varint(uint32_t field, uint64_t v) { return varint(uint64_t{field} << 3 | 0) + varint(v); }
std::string field_bytes(uint32_t field, const std::string& payload) {
  return varint(uint64_t{field} << 3 | 2) + varint(payload.size()) + payload;
}
std::string field_float(uint32_t field, float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  std::string out = varint(uint64_t{field} << 3 | 5);
  for (int i = 0; i < 4; ++i) out += static_cast<char>((bits >> (8 * i)) & 0xFF);
  return out;
}
std::string piece_message(const std::string& piece, float score, PieceType type) {
  return field_bytes(1, field_bytes(1, piece) + field_float(2, score) + field_varint(3, static_cast<int>(type)));
}

struct ModelSpec {
  int model_type = 2;  // BPE
  bool byte_fallback = false;
  bool remove_extra_whitespaces = false;
  std::string normalizer_name = "identity";
  std::string charsmap;
};

ModelSpec with_model_type(int model_type) {
  ModelSpec spec;
  spec.model_type = model_type;
  return spec;
}
ModelSpec with_byte_fallback() {
  ModelSpec spec;
  spec.byte_fallback = true;
  return spec;
}
ModelSpec with_remove_extra_whitespaces() {
  ModelSpec spec;
  spec.remove_extra_whitespaces = true;
  return spec;
}
ModelSpec with_normalizer(const std::string& name, const std::string& charsmap) {
  ModelSpec spec;
  spec.normalizer_name = name;
  spec.charsmap = charsmap;
  return spec;
}

const std::string kSpace = "\xE2\x96\x81";  // U+2581

// ids (without byte fallback): 0 <unk>, 1 <s>, 2 </s>, then 3 ▁, 4 a, 5 b, 6 c, 7 ab, 8 bc, 9 ▁a, 10 ▁ab,
// 11 ca (UNUSED), 12 cab, 13 <x> (USER_DEFINED). With byte fallback, <0x00>..<0xFF> take ids 3..258 and
// the others move up by 256.
std::string tiny_model(const ModelSpec& spec) {
  std::string proto = piece_message("<unk>", 0, PieceType::kUnknown) + piece_message("<s>", 0, PieceType::kControl) +
                      piece_message("</s>", 0, PieceType::kControl);
  if (spec.byte_fallback) {
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      proto += piece_message(name, 0, PieceType::kByte);
    }
  }
  proto += piece_message(kSpace, -3, PieceType::kNormal) + piece_message("a", -3, PieceType::kNormal) +
           piece_message("b", -3, PieceType::kNormal) + piece_message("c", -3, PieceType::kNormal) +
           piece_message("ab", -1, PieceType::kNormal) + piece_message("bc", -1, PieceType::kNormal) +
           piece_message(kSpace + "a", -2, PieceType::kNormal) + piece_message(kSpace + "ab", -0.5f, PieceType::kNormal) +
           piece_message("ca", 0, PieceType::kUnused) + piece_message("cab", -0.1f, PieceType::kNormal) +
           piece_message("<x>", 0, PieceType::kUserDefined);
  proto += field_bytes(2, field_varint(3, spec.model_type) + field_varint(35, spec.byte_fallback ? 1 : 0) +
                              field_varint(43, static_cast<uint64_t>(int64_t{-1})));
  proto += field_bytes(3, field_bytes(1, spec.normalizer_name) + field_bytes(2, spec.charsmap) +
                              field_varint(3, 1) + field_varint(4, spec.remove_extra_whitespaces ? 1 : 0));
  return proto;
}

TEST(TokenizerHandBuilt, MergesByScoreThenLeftmost) {
  const Tokenizer tok = Tokenizer::from_bytes(tiny_model({}), "tiny");
  EXPECT_EQ(tok.vocab_size(), 14);
  // ▁ a b c: ab and bc tie at -1 and the leftmost (ab) wins; then ▁ab (-0.5); the queued ▁a (-2) and bc
  // are stale by then. (Had bc won: ▁ a bc -> ▁a bc = {9, 8}.)
  EXPECT_EQ(tok.encode("abc", false), (std::vector<int32_t>{10, 6}));
  // ▁ b c b: only bc is a piece.
  EXPECT_EQ(tok.encode("bcb", false), (std::vector<int32_t>{3, 8, 5}));
  EXPECT_EQ(tok.encode("a", true), (std::vector<int32_t>{1, 9}));
  EXPECT_EQ(tok.decode({1, 10, 6}), "abc");
  EXPECT_EQ(tok.decode({1, 3, 8, 5}), "bcb");
}

TEST(TokenizerHandBuilt, UnusedPiecesAreMergedThenSplitBack) {
  const Tokenizer tok = Tokenizer::from_bytes(tiny_model({}), "tiny");
  // ca (UNUSED, score 0) merges first and is split back into c a at the end ...
  EXPECT_EQ(tok.encode("ca", false), (std::vector<int32_t>{3, 6, 4}));
  // ... unless it was merged further into a used piece: ca + b -> cab.
  EXPECT_EQ(tok.encode("cab", false), (std::vector<int32_t>{3, 12}));
}

TEST(TokenizerHandBuilt, UserDefinedPiecesAreMatchedWholeAndNeverMerged) {
  const Tokenizer tok = Tokenizer::from_bytes(tiny_model({}), "tiny");
  EXPECT_EQ(tok.encode("a<x>b", false), (std::vector<int32_t>{9, 13, 5}));
  EXPECT_EQ(tok.decode({9, 13, 5}), "a<x>b");
}

TEST(TokenizerHandBuilt, UnknownRunsBecomeOneUnkWithoutByteFallback) {
  const Tokenizer tok = Tokenizer::from_bytes(tiny_model({}), "tiny");
  EXPECT_EQ(tok.encode("xa", false), (std::vector<int32_t>{3, 0, 4}));
  EXPECT_EQ(tok.encode("xyza", false), (std::vector<int32_t>{3, 0, 4}));
  EXPECT_EQ(tok.encode("<x", false), (std::vector<int32_t>{3, 0}));
  EXPECT_EQ(tok.decode({3, 0, 4}), " \xE2\x81\x87 a");
}

TEST(TokenizerHandBuilt, ByteFallbackSpellsUnknownCharactersAsBytes) {
  const Tokenizer tok = Tokenizer::from_bytes(tiny_model(with_byte_fallback()), "tiny");
  const int32_t space = 259, a = 260;
  EXPECT_EQ(tok.encode("xa", false), (std::vector<int32_t>{space, 3 + 'x', a}));
  EXPECT_EQ(tok.encode("\xC3\xA9", false), (std::vector<int32_t>{space, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(tok.decode({space, 3 + 0xC3, 3 + 0xA9, a}), "\xC3\xA9" "a");
}

TEST(TokenizerHandBuilt, RemoveExtraWhitespacesSqueezesRuns) {
  const Tokenizer tok = Tokenizer::from_bytes(tiny_model(with_remove_extra_whitespaces()), "tiny");
  // "  a   b  " normalizes to ▁a▁b.
  EXPECT_EQ(tok.encode("  a   b  ", false), (std::vector<int32_t>{9, 3, 5}));
  EXPECT_EQ(tok.encode("   ", false), std::vector<int32_t>{});
  EXPECT_EQ(tok.decode({9, 3, 5}), "a b");
}

TEST(TokenizerHandBuilt, EmptyTextGivesNoIds) {
  const Tokenizer tok = Tokenizer::from_bytes(tiny_model({}), "tiny");
  EXPECT_EQ(tok.encode("", false), std::vector<int32_t>{});
  EXPECT_EQ(tok.encode("", true), std::vector<int32_t>{1});
}

// ---------------------------------------------------------------------------------------------------------
// Refusals.

TEST(TokenizerRefuses, NonBpeModels) {
  expect_error([] { Tokenizer::from_bytes(tiny_model(with_model_type(1)), "uni.model"); },
               {"uni.model", "UNIGRAM", "only BPE"});
  expect_error([] { Tokenizer::from_bytes(tiny_model(with_model_type(3)), "word.model"); }, {"word.model", "WORD"});
  expect_error([] { Tokenizer::from_bytes(tiny_model(with_model_type(4)), "char.model"); }, {"char.model", "CHAR"});
  // A model without trainer_spec is UNIGRAM by the proto default.
  expect_error([] { Tokenizer::from_bytes(piece_message("<unk>", 0, PieceType::kUnknown), "bare.model"); },
               {"bare.model", "UNIGRAM"});
}

TEST(TokenizerRefuses, UnknownNormalizers) {
  expect_error(
      [] { Tokenizer::from_bytes(tiny_model(with_normalizer("nmt_nfkc", "\x01\x02\x03")), "n.model"); },
      {"n.model", "normalizer", "nmt_nfkc"});
  expect_error([] { Tokenizer::from_bytes(tiny_model(with_normalizer("nfkc_cf", "")), "n.model"); },
               {"n.model", "nfkc_cf"});
}

TEST(TokenizerRefuses, InconsistentVocabularies) {
  // Byte pieces without byte_fallback; a duplicate piece; no <unk>.
  std::string with_byte = tiny_model({}) + piece_message("<0x41>", 0, PieceType::kByte);
  expect_error([&] { Tokenizer::from_bytes(with_byte, "m"); }, {"m", "byte_fallback"});
  std::string duplicate = tiny_model({}) + piece_message("ab", 0, PieceType::kNormal);
  expect_error([&] { Tokenizer::from_bytes(duplicate, "m"); }, {"m", "'ab'", "twice"});
  std::string bad_type = tiny_model({}) + piece_message("zz", 0, static_cast<PieceType>(9));
  expect_error([&] { Tokenizer::from_bytes(bad_type, "m"); }, {"m", "piece type 9"});
}

TEST(TokenizerRefuses, TruncatedFilesNameTheFile) {
  const std::string bytes = read_file(kTinybibleModel);
  for (const size_t keep : {size_t{0}, size_t{1}, size_t{2}, size_t{100}, bytes.size() / 2, bytes.size() - 40,
                            bytes.size() - 1}) {
    SCOPED_TRACE(keep);
    expect_error([&] { Tokenizer::from_bytes(bytes.substr(0, keep), "cut.model"); }, {"tokenizer 'cut.model'"});
  }
  const auto path = std::filesystem::temp_directory_path() / "illm_tokenizer_test_truncated.model";
  {
    std::ofstream out(path, std::ios::binary);
    out << bytes.substr(0, bytes.size() - 1);
  }
  expect_error([&] { Tokenizer::load(path); }, {path.string(), "truncated"});
  std::filesystem::remove(path);
}

TEST(TokenizerRefuses, GarbageAndMissingFiles) {
  expect_error([] { Tokenizer::from_bytes(std::string("\x0A\xFF\xFF\xFF\xFF\x0F", 6), "g.model"); },
               {"g.model", "runs past the end"});
  expect_error([] { Tokenizer::from_bytes(std::string(12, '\xFF'), "g.model"); }, {"g.model", "varint"});
  expect_error([] { Tokenizer::from_bytes("hello world, not a model", "g.model"); }, {"g.model"});
  expect_error([] { Tokenizer::load(kSourceDir / "no/such/tokenizer.model"); },
               {"no/such/tokenizer.model", "tokenizer does not exist"});
}

}  // namespace
}  // namespace illm::formats
