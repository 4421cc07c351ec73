#include "formats/dataset.h"

#include <climits>
#include <cstdio>
#include <sstream>

#include <nlohmann/json.hpp>

#include "formats/input_file.h"
#include "formats/strict_json.h"
#include "formats/tokenizer.h"
#include "formats/utf8.h"
#include "kernels/error.h"

namespace illm::formats {

namespace {

using nlohmann::json;
using formats::StrictJsonProblem;

[[noreturn]] void fail(const std::filesystem::path& file, const std::string& why) {
  throw Error(file.string() + ": " + why);
}

bool is_blank(std::string_view line) {
  return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

// Appends the windows of `ids` (split into seq_len pieces when given); one-token windows predict nothing.
void append_windows(const std::vector<int32_t>& ids, std::optional<int64_t> seq_len,
                    std::vector<std::vector<int32_t>>* out) {
  const size_t step = seq_len ? static_cast<size_t>(*seq_len) : ids.size();
  for (size_t begin = 0; begin < ids.size(); begin += step) {
    const size_t end = std::min(ids.size(), begin + step);
    if (end - begin >= 2) out->emplace_back(ids.begin() + begin, ids.begin() + end);
  }
}

std::vector<std::vector<int32_t>> load_jsonl(const std::filesystem::path& file, const std::string& text,
                                             std::optional<int64_t> seq_len, int64_t vocab_size,
                                             int64_t max_positions, int64_t* lines_used) {
  std::vector<std::vector<int32_t>> windows;
  std::istringstream lines(text);
  std::string line;
  int64_t line_number = 0;
  *lines_used = 0;
  while (std::getline(lines, line)) {
    ++line_number;
    if (is_blank(line)) continue;
    const std::string where = "line " + std::to_string(line_number);
    json j;
    StrictJsonProblem problem;
    try {
      j = parse_json_strictly(line, &problem);
    } catch (const json::exception& e) {
      fail(file, where + ": malformed JSON: " + e.what());
    }
    if (!problem.duplicate_key.empty()) fail(file, where + ": key \"" + problem.duplicate_key + "\" appears twice");
    if (problem.too_deep) fail(file, where + ": nested too deeply");
    if (!j.is_object() || !j.contains("input_ids") || !j["input_ids"].is_array())
      fail(file, where + ": expected an object {\"input_ids\": [...]}");
    const json& array = j["input_ids"];
    if (array.empty()) fail(file, where + ": 'input_ids' is empty");
    std::vector<int32_t> ids;
    ids.reserve(array.size());
    for (size_t pos = 0; pos < array.size(); ++pos) {
      const json& v = array[pos];
      if (!v.is_number_integer())
        fail(file, where + ", position " + std::to_string(pos) + ": token id " + v.dump() + " is not an integer");
      const int64_t id = v.is_number_unsigned() && v.get<uint64_t>() > INT64_MAX ? -1 : v.get<int64_t>();
      if (id < 0 || id >= vocab_size)
        fail(file, where + ", position " + std::to_string(pos) + ": token id " + v.dump() +
                       " outside the vocabulary [0, " + std::to_string(vocab_size) + ")");
      ids.push_back(static_cast<int32_t>(id));
    }
    if (!seq_len && static_cast<int64_t>(ids.size()) > max_positions)
      fail(file, where + ": sequence of " + std::to_string(ids.size()) +
                     " tokens exceeds max_position_embeddings " + std::to_string(max_positions) +
                     " (give a seq_len to split it)");
    ++*lines_used;
    append_windows(ids, seq_len, &windows);
  }
  if (*lines_used == 0) fail(file, "empty dataset: no {\"input_ids\": [...]} lines");
  return windows;
}

}  // namespace

int64_t Windows::predicted_tokens() const {
  int64_t total = 0;
  for (const auto& s : sequences)
    if (!s.empty()) total += static_cast<int64_t>(s.size()) - 1;
  return total;
}

Windows load_windows(const std::filesystem::path& file, const Tokenizer* tokenizer, std::optional<int64_t> seq_len,
                     int64_t vocab_size, int64_t max_positions, std::optional<int64_t> max_samples) {
  return windows_from_bytes(read_input_file(file, "dataset file"), file, tokenizer, seq_len, vocab_size,
                            max_positions, max_samples);
}

Windows windows_from_bytes(const std::string& text, const std::filesystem::path& file, const Tokenizer* tokenizer,
                           std::optional<int64_t> seq_len, int64_t vocab_size, int64_t max_positions,
                           std::optional<int64_t> max_samples) {
  if (seq_len && *seq_len < 2) fail(file, "seq_len " + std::to_string(*seq_len) + " is too small (at least 2)");
  if (seq_len && *seq_len > max_positions)
    fail(file, "seq_len " + std::to_string(*seq_len) + " exceeds the model's max_position_embeddings " +
                   std::to_string(max_positions));
  if (max_samples && *max_samples <= 0) fail(file, "max_samples must be positive");

  if (text.empty()) fail(file, "empty dataset file");

  Windows result;
  std::string format;
  const bool is_jsonl = file.extension() == ".jsonl";
  if (is_jsonl) {
    int64_t lines_used = 0;
    result.sequences = load_jsonl(file, text, seq_len, vocab_size, max_positions, &lines_used);
    format = "token-id JSONL, " + std::to_string(lines_used) + " lines";
  } else {
    if (tokenizer == nullptr)
      fail(file, "plain text needs a tokenizer (the model has no tokenizer.model; give one, or use token-id JSONL)");
    if (const size_t bad = first_non_text_byte(text); bad != std::string_view::npos) {
      char byte[8];
      std::snprintf(byte, sizeof byte, "0x%02X", static_cast<unsigned>(static_cast<unsigned char>(text[bad])));
      fail(file, "not UTF-8 text (byte " + std::string(byte) + " at offset " + std::to_string(bad) +
                     "): a text dataset must be UTF-8 without NUL bytes; token ids go in a *.jsonl file");
    }
    const int64_t window = seq_len.value_or(kDefaultTextSeqLen);
    if (window > max_positions)
      fail(file, "seq_len " + std::to_string(window) + " exceeds the model's max_position_embeddings " +
                     std::to_string(max_positions));
    const std::vector<int32_t> ids = tokenizer->encode(text, /*add_bos=*/true);
    for (size_t pos = 0; pos < ids.size(); ++pos)
      if (ids[pos] < 0 || ids[pos] >= vocab_size)
        fail(file, "token " + std::to_string(pos) + " of the encoded text: id " + std::to_string(ids[pos]) +
                       " outside the model's vocabulary [0, " + std::to_string(vocab_size) +
                       ") (tokenizer of " + std::to_string(tokenizer->vocab_size()) + " pieces)");
    append_windows(ids, window, &result.sequences);
    format = "text, " + std::to_string(ids.size()) + " tokens with BOS, windows of " + std::to_string(window);
  }
  if (max_samples && static_cast<int64_t>(result.sequences.size()) > *max_samples)
    result.sequences.resize(static_cast<size_t>(*max_samples));
  if (result.predicted_tokens() == 0) fail(file, "no window has a token to predict (every sequence has 1 token)");

  result.description = file.filename().string() + " (" + format + "): " + std::to_string(result.sequences.size()) +
                       " windows, " + std::to_string(result.predicted_tokens()) + " predicted tokens";
  return result;
}

}  // namespace illm::formats
