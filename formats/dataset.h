#pragma once
// Evaluation/calibration datasets as windows of token ids.
//   *.jsonl  : one {"input_ids": [...]} per line, used verbatim (no BOS added); each line is one sequence,
//              split into non-overlapping windows of seq_len when given (last partial window kept).
//   otherwise: plain text (UTF-8 without NUL bytes: binary data is refused), the whole file verbatim, encoded
//              once with BOS, non-overlapping windows of seq_len (default 256), the last partial window kept.
// Windows of one token predict nothing and are dropped. Errors (illm::Error) name the file, the line and
// position where it applies, and the reason.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace illm::formats {

class Tokenizer;  // formats/tokenizer.h

struct Windows {
  std::vector<std::vector<int32_t>> sequences;
  std::string description;           // one line: file, format, windows, predicted tokens
  int64_t predicted_tokens() const;  // sum of (len - 1)
};

inline constexpr int64_t kDefaultTextSeqLen = 256;

// vocab_size: ids must lie in [0, vocab_size). max_positions: no window may be longer (the model's
// max_position_embeddings). max_samples: keep only the first N windows.
Windows load_windows(const std::filesystem::path& file, const Tokenizer* tokenizer, std::optional<int64_t> seq_len,
                     int64_t vocab_size, int64_t max_positions, std::optional<int64_t> max_samples = std::nullopt);

// The same on the file's bytes (the format follows `file`'s extension; `file` names it in messages).
Windows windows_from_bytes(const std::string& bytes, const std::filesystem::path& file, const Tokenizer* tokenizer,
                           std::optional<int64_t> seq_len, int64_t vocab_size, int64_t max_positions,
                           std::optional<int64_t> max_samples = std::nullopt);

}  // namespace illm::formats
