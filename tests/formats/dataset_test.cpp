// Dataset windows: token-id JSONL (the stories260K fixtures), plain text through the tinybible tokenizer,
// and every bad-input case naming the file, line/position and reason.
#include "formats/dataset.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "formats/tokenizer.h"
#include "kernels/error.h"

namespace illm::formats {
namespace {

namespace fs = std::filesystem;

const fs::path kSource = ILLM_SOURCE_DIR;
const fs::path kStories = kSource / "models" / "stories260K";
const fs::path kTinyBible = kSource / "models" / "tinybible";
constexpr int64_t kStoriesVocab = 512, kStoriesMaxPos = 512;

template <typename Fn>
void expect_error(Fn&& fn, const std::vector<std::string>& fragments) {
  try {
    fn();
    ADD_FAILURE() << "no illm::Error thrown";
  } catch (const Error& e) {
    const std::string message = e.what();
    for (const std::string& f : fragments) EXPECT_NE(message.find(f), std::string::npos) << message << "\nlacks: " << f;
  }
}

class DatasetFiles : public ::testing::Test {
 protected:
  DatasetFiles() {
    dir_ = fs::temp_directory_path() / ("illm_dataset_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  ~DatasetFiles() override { fs::remove_all(dir_); }
  fs::path write(const std::string& name, const std::string& text) {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }
  Windows load_jsonl(const fs::path& p, std::optional<int64_t> seq_len = std::nullopt) {
    return load_windows(p, nullptr, seq_len, kStoriesVocab, kStoriesMaxPos);
  }
  fs::path dir_;
};

TEST(DatasetJsonl, StoriesEvalWholeLines) {
  const Windows w = load_windows(kStories / "eval.jsonl", nullptr, std::nullopt, kStoriesVocab, kStoriesMaxPos);
  ASSERT_EQ(w.sequences.size(), 64u);
  for (const auto& s : w.sequences) EXPECT_EQ(s.size(), 256u);
  EXPECT_EQ(w.predicted_tokens(), 16320);  // fixtures README: 16320 predicted positions
  // The file's first ids, verbatim (its own leading 1 is data, no BOS is added).
  EXPECT_EQ(std::vector<int32_t>(w.sequences[0].begin(), w.sequences[0].begin() + 5),
            (std::vector<int32_t>{1, 461, 410, 306, 309}));
  EXPECT_NE(w.description.find("eval.jsonl"), std::string::npos);
  EXPECT_NE(w.description.find("16320"), std::string::npos);
}

TEST(DatasetJsonl, SeqLenSplitsEachLineAndMaxSamplesCuts) {
  const Windows w = load_windows(kStories / "calib.jsonl", nullptr, 100, kStoriesVocab, kStoriesMaxPos);
  ASSERT_EQ(w.sequences.size(), 128u * 3);  // 256 = 100 + 100 + 56 per line
  EXPECT_EQ(w.sequences[0].size(), 100u);
  EXPECT_EQ(w.sequences[2].size(), 56u);
  EXPECT_EQ(w.predicted_tokens(), 128 * (99 + 99 + 55));
  const Windows whole = load_windows(kStories / "calib.jsonl", nullptr, std::nullopt, kStoriesVocab, kStoriesMaxPos);
  EXPECT_EQ(std::vector<int32_t>(whole.sequences[1].begin() + 200, whole.sequences[1].end()), w.sequences[5]);

  const Windows cut = load_windows(kStories / "eval.jsonl", nullptr, std::nullopt, kStoriesVocab, kStoriesMaxPos, 5);
  EXPECT_EQ(cut.sequences.size(), 5u);
  EXPECT_EQ(cut.predicted_tokens(), 5 * 255);
}

TEST_F(DatasetFiles, OneTokenWindowsAreDropped) {
  const fs::path p = write("short.jsonl", "{\"input_ids\": [5, 6, 7, 8, 9]}\n\n{\"input_ids\": [4]}\n");
  const Windows w = load_jsonl(p, 2);
  EXPECT_EQ(w.sequences, (std::vector<std::vector<int32_t>>{{5, 6}, {7, 8}}));
  EXPECT_EQ(w.predicted_tokens(), 2);
  const fs::path q = write("single.jsonl", "{\"input_ids\": [4]}\n{\"input_ids\": [3]}");
  expect_error([&] { load_jsonl(q); }, {"single.jsonl", "no window has a token to predict"});
}

TEST_F(DatasetFiles, MissingAndEmptyFiles) {
  expect_error([&] { load_jsonl(dir_ / "absent.jsonl"); }, {"absent.jsonl", "does not exist"});
  const fs::path empty = write("empty.jsonl", "");
  expect_error([&] { load_jsonl(empty); }, {"empty.jsonl", "empty"});
  const fs::path blank = write("blank.jsonl", "\n  \n\n");
  expect_error([&] { load_jsonl(blank); }, {"blank.jsonl", "empty dataset"});
  const fs::path text = write("empty.txt", "");
  expect_error([&] { load_windows(text, nullptr, std::nullopt, 512, 512); }, {"empty.txt", "empty"});
}

TEST_F(DatasetFiles, MalformedJsonlNamesTheLine) {
  const fs::path p = write("bad.jsonl", "{\"input_ids\": [1, 2]}\n{\"input_ids\": [3, 4]}\n{\"input_ids\": [1, 2\n");
  expect_error([&] { load_jsonl(p); }, {"bad.jsonl", "line 3", "malformed JSON"});
  const fs::path q = write("noids.jsonl", "{\"tokens\": [1, 2]}\n");
  expect_error([&] { load_jsonl(q); }, {"noids.jsonl", "line 1", "input_ids"});
  const fs::path r = write("emptyids.jsonl", "{\"input_ids\": [1, 2]}\n{\"input_ids\": []}\n");
  expect_error([&] { load_jsonl(r); }, {"emptyids.jsonl", "line 2", "empty"});
  const fs::path s = write("float.jsonl", "{\"input_ids\": [1, 2.5]}\n");
  expect_error([&] { load_jsonl(s); }, {"float.jsonl", "line 1, position 1", "not an integer"});
}

TEST_F(DatasetFiles, TokenIdsOutOfVocabulary) {
  const fs::path p = write("big.jsonl", "{\"input_ids\": [1, 2]}\n{\"input_ids\": [1, 2, 3, 4, 512, 5]}\n");
  expect_error([&] { load_jsonl(p); }, {"big.jsonl", "line 2, position 4", "token id 512", "[0, 512)"});
  const fs::path q = write("neg.jsonl", "{\"input_ids\": [1, -1]}\n");
  expect_error([&] { load_jsonl(q); }, {"neg.jsonl", "line 1, position 1", "token id -1"});
  const fs::path r = write("huge.jsonl", "{\"input_ids\": [1, 99999999999]}\n");
  expect_error([&] { load_jsonl(r); }, {"huge.jsonl", "line 1, position 1", "outside the vocabulary"});
}

TEST_F(DatasetFiles, SequenceLengthLimits) {
  expect_error([&] { load_windows(kStories / "eval.jsonl", nullptr, 513, kStoriesVocab, kStoriesMaxPos); },
               {"eval.jsonl", "seq_len 513", "max_position_embeddings 512"});
  expect_error([&] { load_windows(kStories / "eval.jsonl", nullptr, 1, kStoriesVocab, kStoriesMaxPos); },
               {"eval.jsonl", "seq_len 1"});
  // A whole line longer than the model's positions needs a seq_len.
  expect_error([&] { load_windows(kStories / "eval.jsonl", nullptr, std::nullopt, kStoriesVocab, 128); },
               {"eval.jsonl", "line 1", "256 tokens", "max_position_embeddings 128"});
  expect_error([&] { load_windows(kStories / "eval.jsonl", nullptr, std::nullopt, kStoriesVocab, 512, 0); },
               {"max_samples"});
}

TEST_F(DatasetFiles, TextWithoutTokenizer) {
  const fs::path p = write("story.txt", "Once upon a time\n");
  expect_error([&] { load_windows(p, nullptr, std::nullopt, 512, 512); }, {"story.txt", "needs a tokenizer"});
}

TEST(DatasetText, TinyBibleTestTxtWindows) {
  const Tokenizer tokenizer = Tokenizer::load(kTinyBible / "tokenizer.model");
  const Windows w = load_windows(kTinyBible / "test.txt", &tokenizer, std::nullopt, 1024, 512);
  // tinybible README: 89,405 ids with BOS, 89,055 predicted tokens with 256-token windows (350 windows).
  ASSERT_EQ(w.sequences.size(), 350u);
  EXPECT_EQ(w.predicted_tokens(), 89055);
  EXPECT_EQ(w.sequences.back().size(), 89405u - 349 * 256);
  // README: first ids of [1] + encode(test) (the text starts "Ruth\n\nChapter 1\n").
  EXPECT_EQ(std::vector<int32_t>(w.sequences[0].begin(), w.sequences[0].begin() + 8),
            (std::vector<int32_t>{1, 697, 317, 950, 13, 13, 989, 642}));
  EXPECT_NE(w.sequences[1][0], 1);  // BOS once, not per window
}

TEST_F(DatasetFiles, TextWindowsOfSeqLenAndVocabularyCheck) {
  const Tokenizer tokenizer = Tokenizer::load(kTinyBible / "tokenizer.model");
  std::ifstream in(kTinyBible / "test.txt", std::ios::binary);
  std::string text(6000, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  const fs::path p = write("part.txt", text);
  const std::vector<int32_t> ids = tokenizer.encode(text, true);
  const Windows w = load_windows(p, &tokenizer, 512, 1024, 512, 2);
  ASSERT_EQ(w.sequences.size(), 2u);
  EXPECT_EQ(w.sequences[0], std::vector<int32_t>(ids.begin(), ids.begin() + 512));
  EXPECT_EQ(w.sequences[1], std::vector<int32_t>(ids.begin() + 512, ids.begin() + 1024));
  expect_error([&] { load_windows(p, &tokenizer, std::nullopt, 1024, 128); },
               {"part.txt", "seq_len 256", "max_position_embeddings 128"});
  // A model whose vocabulary is smaller than the tokenizer's: ids out of range are an error.
  expect_error([&] { load_windows(p, &tokenizer, std::nullopt, 512, 512); },
               {"part.txt", "outside the model's vocabulary [0, 512)"});
}


// ---- issue #8: binary data is not text; directories and devices are not datasets ----

TEST_F(DatasetFiles, BinaryDataIsNotReadAsText) {
  const Tokenizer tokenizer = Tokenizer::load(kTinyBible / "tokenizer.model");
  // Before: any bytes were encoded through the tokenizer's byte fallback and evaluated without a word.
  std::string binary;
  for (int i = 0; i < 4096; ++i) binary += static_cast<char>((i * 7919 + 13) & 0xFF);
  const fs::path p = write("random.txt", binary);
  expect_error([&] { load_windows(p, &tokenizer, std::nullopt, 1024, 512); },
               {"random.txt", "not UTF-8 text", "at offset", "*.jsonl"});
  const fs::path nul = write("nul.txt", std::string("In the beginning\0was", 21));
  expect_error([&] { load_windows(nul, &tokenizer, std::nullopt, 1024, 512); }, {"nul.txt", "byte 0x00 at offset 16"});
  const fs::path cut = write("cut.txt", "caf\xC3");  // a character cut at the end of the file
  expect_error([&] { load_windows(cut, &tokenizer, std::nullopt, 1024, 512); }, {"cut.txt", "byte 0xC3 at offset 3"});
  const fs::path overlong = write("overlong.txt", "a\xC0\xAF" "b");  // overlong '/'
  expect_error([&] { load_windows(overlong, &tokenizer, std::nullopt, 1024, 512); }, {"byte 0xC0 at offset 1"});
  // Well-formed multi-byte text (2-, 3- and 4-byte characters) is text.
  const fs::path utf8 = write("utf8.txt", "Caf\xC3\xA9 \xE2\x98\x95 \xF0\x9F\x98\x80 and tabs\tand\r\nlines\n");
  EXPECT_GT(load_windows(utf8, &tokenizer, std::nullopt, 1024, 512).predicted_tokens(), 0);
}

TEST_F(DatasetFiles, DirectoriesDevicesAndRepeatedKeys) {
  expect_error([&] { load_jsonl(dir_); }, {dir_.string(), "dataset file is a directory"});
  expect_error([&] { load_jsonl("/dev/zero"); }, {"/dev/zero", "dataset file is a device"});
  const fs::path p = write("twice.jsonl", "{\"input_ids\": [1, 2], \"input_ids\": [3, 4]}\n");
  expect_error([&] { load_jsonl(p); }, {"twice.jsonl", "line 1", "\"input_ids\" appears twice"});
}

TEST(DatasetBytes, SameRulesWithoutAFile) {
  const Windows w = windows_from_bytes("{\"input_ids\": [1, 2, 3]}\n", "mem.jsonl", nullptr, std::nullopt, 512, 512);
  EXPECT_EQ(w.sequences, (std::vector<std::vector<int32_t>>{{1, 2, 3}}));
  expect_error([] { windows_from_bytes("{\"input_ids\": [1, 600]}", "mem.jsonl", nullptr, std::nullopt, 512, 512); },
               {"mem.jsonl", "token id 600"});
}

}  // namespace
}  // namespace illm::formats
