#pragma once
// SentencePiece BPE tokenizer, reimplemented to match the reference library (0.1.97) token for token:
// identity normalizer (' ' -> U+2581, dummy prefix, optional whitespace squeezing), user-defined pieces
// matched before BPE, priority-queue BPE merges, resegmentation of UNUSED pieces, byte fallback.
// Unigram/word/char models and normalizers other than "identity" are refused.
#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "formats/sentencepiece_model.h"

namespace illm::formats {

class Tokenizer {
 public:
  // Throws illm::Error naming the file on unreadable/corrupt files and unsupported models.
  static Tokenizer load(const std::filesystem::path& tokenizer_model);
  // Same from the bytes of a tokenizer.model; `origin` names them in error messages.
  static Tokenizer from_bytes(std::string bytes, const std::string& origin);

  // As SentencePieceProcessor::EncodeAsIds, with BOS prepended when asked.
  std::vector<int32_t> encode(std::string_view text, bool add_bos) const;
  // As SentencePieceProcessor::DecodeIds. Throws illm::Error on ids outside [0, vocab_size).
  std::string decode(const std::vector<int32_t>& ids) const;
  // Surface of one token for streaming output: U+2581 -> ' ', a byte piece -> its raw byte, control -> "",
  // unknown -> the unk surface. Multi-byte characters arrive byte by byte; the caller concatenates.
  std::string piece_text(int32_t id) const;
  // The piece string as stored in the model (e.g. "▁the", "<0x0A>").
  const std::string& piece(int32_t id) const;

  int32_t bos_id() const { return bos_id_; }  // -1 when the model has none
  int32_t eos_id() const { return eos_id_; }  // -1 when the model has none
  int32_t unk_id() const { return unk_id_; }
  int32_t vocab_size() const { return static_cast<int32_t>(pieces_.size()); }
  const std::string& bytes() const { return bytes_; }
  const std::string& origin() const { return origin_; }

 private:
  // Hash/equality usable with std::string_view keys without allocating.
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using PieceIndex = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

  Tokenizer() = default;
  std::string normalize(std::string_view text) const;
  size_t match_user_defined(std::string_view text) const;  // length of the longest user-defined prefix, or 0
  int32_t piece_to_id(std::string_view piece) const;       // as ModelInterface::PieceToId (unk when absent)
  bool is_unused(int32_t id) const { return pieces_[id].type == PieceType::kUnused; }
  void check_id(int32_t id) const;

  std::string bytes_;
  std::string origin_;
  std::vector<SentencePieceEntry> pieces_;
  PieceIndex mergeable_;  // NORMAL, USER_DEFINED and UNUSED pieces: the targets of BPE merges
  PieceIndex reserved_;   // CONTROL, UNKNOWN and BYTE pieces: never produced by merging
  std::vector<size_t> user_defined_lengths_;  // distinct lengths of USER_DEFINED pieces, longest first
  std::array<int32_t, 256> byte_ids_{};       // byte value -> id of its <0xNN> piece (byte fallback)
  std::vector<int16_t> byte_values_;          // id -> byte value of a BYTE piece, -1 for other pieces
  bool byte_fallback_ = false;
  bool add_dummy_prefix_ = true;
  bool remove_extra_whitespaces_ = true;
  bool escape_whitespaces_ = true;
  std::string unk_surface_;
  int32_t unk_id_ = -1;
  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;
};

}  // namespace illm::formats
