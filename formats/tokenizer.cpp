#include "formats/tokenizer.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <iterator>
#include <utility>

#include "formats/input_file.h"
#include "formats/utf8.h"
#include "kernels/error.h"

namespace illm::formats {
namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";          // U+2581, SentencePiece's visible space
constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD

// Byte length of a UTF-8 character judged by its lead byte only (SentencePiece's OneCharLen), clipped to
// what is left. Used on normalized text, which is already well-formed.
size_t one_char_length(std::string_view s) {
  static constexpr uint8_t kLengths[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return std::min<size_t>(s.size(), kLengths[static_cast<unsigned char>(s[0]) >> 4]);
}

std::string byte_piece(int byte) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  return std::string("<0x") + kHex[(byte >> 4) & 15] + kHex[byte & 15] + ">";
}

// Appends raw bytes as text the way SentencePiece's decoder does: each well-formed character as is, each
// byte that starts no well-formed character as U+FFFD.
void append_decoded_bytes(std::string_view bytes, std::string& out) {
  size_t offset = 0;
  while (offset < bytes.size()) {
    const size_t length = valid_utf8_length(bytes.substr(offset));
    if (length == 0) {
      out += kReplacementCharacter;
      offset += 1;
    } else {
      out += bytes.substr(offset, length);
      offset += length;
    }
  }
}

std::string replace_space_symbols(std::string_view piece) {
  std::string out;
  out.reserve(piece.size());
  size_t pos = 0;
  while (pos < piece.size()) {
    if (piece.substr(pos, kSpaceSymbol.size()) == kSpaceSymbol) {
      out += ' ';
      pos += kSpaceSymbol.size();
    } else {
      out += piece[pos++];
    }
  }
  return out;
}

}  // namespace

Tokenizer Tokenizer::load(const std::filesystem::path& tokenizer_model) {
  return from_bytes(read_input_file(tokenizer_model, "tokenizer"), tokenizer_model.string());
}

Tokenizer Tokenizer::from_bytes(std::string bytes, const std::string& origin) {
  const std::string where = "tokenizer '" + origin + "': ";
  if (bytes.empty()) throw Error(where + "empty file, not a SentencePiece model");
  SentencePieceModel model = parse_sentencepiece_model(bytes, origin);

  if (model.model_type != static_cast<int32_t>(SentencePieceModelType::kBpe)) {
    const auto type = static_cast<SentencePieceModelType>(model.model_type);
    throw Error(where + "unsupported SentencePiece model type " + model_type_name(type) + " (" +
                std::to_string(model.model_type) + "); only BPE models are supported");
  }
  const auto& norm = model.normalizer;
  const bool identity_name = norm.name == "identity" || norm.name.empty();
  if (!identity_name || !norm.precompiled_charsmap.empty()) {
    throw Error(where + "unsupported normalizer '" + norm.name + "'" +
                (norm.precompiled_charsmap.empty() ? std::string()
                                                   : " with a " + std::to_string(norm.precompiled_charsmap.size()) +
                                                         "-byte character map") +
                "; only the 'identity' normalizer is supported");
  }
  if (model.denormalizer.present && !model.denormalizer.precompiled_charsmap.empty()) {
    throw Error(where + "unsupported denormalizer '" + model.denormalizer.name + "'; only identity is supported");
  }
  if (model.treat_whitespace_as_suffix) {
    throw Error(where + "treat_whitespace_as_suffix=true is not supported");
  }
  if (model.pieces.empty()) throw Error(where + "the model has no pieces");

  Tokenizer tok;
  tok.origin_ = origin;
  tok.byte_fallback_ = model.byte_fallback;
  tok.add_dummy_prefix_ = norm.add_dummy_prefix;
  tok.remove_extra_whitespaces_ = norm.remove_extra_whitespaces;
  tok.escape_whitespaces_ = norm.escape_whitespaces;
  tok.unk_surface_ = model.unk_surface;
  tok.byte_ids_.fill(-1);
  tok.byte_values_.assign(model.pieces.size(), -1);

  std::vector<size_t> user_defined_lengths;
  for (size_t i = 0; i < model.pieces.size(); ++i) {
    const auto& entry = model.pieces[i];
    const auto id = static_cast<int32_t>(i);
    const std::string at = where + "piece " + std::to_string(i) + " ";
    if (entry.piece.empty()) throw Error(at + "is empty");
    const bool mergeable = entry.type == PieceType::kNormal || entry.type == PieceType::kUserDefined ||
                           entry.type == PieceType::kUnused;
    if (tok.mergeable_.count(entry.piece) != 0 || tok.reserved_.count(entry.piece) != 0) {
      throw Error(at + "'" + entry.piece + "' is defined twice");
    }
    (mergeable ? tok.mergeable_ : tok.reserved_).emplace(entry.piece, id);
    switch (entry.type) {
      case PieceType::kUnknown:
        if (tok.unk_id_ >= 0) throw Error(at + "is a second UNKNOWN piece");
        tok.unk_id_ = id;
        break;
      case PieceType::kUserDefined: user_defined_lengths.push_back(entry.piece.size()); break;
      case PieceType::kByte: {
        if (!model.byte_fallback) throw Error(at + "'" + entry.piece + "' is a BYTE piece but byte_fallback is off");
        int value = -1;
        for (int b = 0; b < 256 && value < 0; ++b) {
          if (entry.piece == byte_piece(b)) value = b;
        }
        if (value < 0) throw Error(at + "'" + entry.piece + "' is a BYTE piece but not of the form <0xNN>");
        tok.byte_ids_[value] = id;
        tok.byte_values_[i] = static_cast<int16_t>(value);
        break;
      }
      default: break;
    }
  }
  if (tok.unk_id_ < 0) throw Error(where + "the model defines no UNKNOWN piece");
  if (model.byte_fallback) {
    for (int b = 0; b < 256; ++b) {
      if (tok.byte_ids_[b] < 0) throw Error(where + "byte_fallback is on but byte piece " + byte_piece(b) + " is missing");
    }
  }
  std::sort(user_defined_lengths.begin(), user_defined_lengths.end(), std::greater<>());
  user_defined_lengths.erase(std::unique(user_defined_lengths.begin(), user_defined_lengths.end()),
                             user_defined_lengths.end());
  tok.user_defined_lengths_ = std::move(user_defined_lengths);

  // As SentencePieceProcessor::bos_id()/eos_id(): the id of the named piece, if it is a control piece.
  const auto control_id = [&](const std::string& name) -> int32_t {
    const auto it = tok.reserved_.find(name);
    if (it == tok.reserved_.end() || model.pieces[it->second].type != PieceType::kControl) return -1;
    return it->second;
  };
  tok.bos_id_ = control_id(model.bos_piece);
  tok.eos_id_ = control_id(model.eos_piece);

  tok.pieces_ = std::move(model.pieces);
  tok.bytes_ = std::move(bytes);
  return tok;
}

size_t Tokenizer::match_user_defined(std::string_view text) const {
  for (const size_t length : user_defined_lengths_) {
    if (length > text.size()) continue;
    const auto it = mergeable_.find(text.substr(0, length));
    if (it != mergeable_.end() && pieces_[it->second].type == PieceType::kUserDefined) return length;
  }
  return 0;
}

int32_t Tokenizer::piece_to_id(std::string_view piece) const {
  if (const auto it = reserved_.find(piece); it != reserved_.end()) return it->second;
  if (const auto it = mergeable_.find(piece); it != mergeable_.end()) return it->second;
  return unk_id_;
}

// SentencePiece's Normalizer::Normalize with an identity character map.
std::string Tokenizer::normalize(std::string_view input) const {
  std::string out;
  if (input.empty()) return out;
  const std::string_view space = escape_whitespaces_ ? kSpaceSymbol : std::string_view(" ");
  if (remove_extra_whitespaces_) {
    while (!input.empty() && input.front() == ' ') input.remove_prefix(1);
    if (input.empty()) return out;
  }
  out.reserve(input.size() + input.size() / 2 + space.size());
  if (add_dummy_prefix_) out += space;

  bool previous_is_space = remove_extra_whitespaces_;
  while (!input.empty()) {
    // One normalization unit: a user-defined piece, a well-formed character, or one malformed byte (-> U+FFFD).
    size_t consumed = match_user_defined(input);
    std::string_view unit;
    if (consumed > 0) {
      unit = input.substr(0, consumed);
    } else {
      consumed = valid_utf8_length(input);
      if (consumed == 0) {
        consumed = 1;
        unit = kReplacementCharacter;
      } else {
        unit = input.substr(0, consumed);
      }
    }
    if (previous_is_space) {
      while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
    }
    if (!unit.empty()) {
      for (const char c : unit) {
        if (c == ' ' && escape_whitespaces_) {
          out += kSpaceSymbol;
        } else {
          out += c;
        }
      }
      previous_is_space = unit.back() == ' ';
    }
    input.remove_prefix(consumed);
    if (!remove_extra_whitespaces_) previous_is_space = false;
  }
  if (remove_extra_whitespaces_) {
    while (out.size() >= space.size() && std::string_view(out).substr(out.size() - space.size()) == space) {
      out.resize(out.size() - space.size());
    }
  }
  return out;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos) const {
  std::vector<int32_t> ids;
  if (add_bos) {
    if (bos_id_ < 0) throw Error("tokenizer '" + origin_ + "': BOS requested but the model defines no BOS piece");
    ids.push_back(bos_id_);
  }
  const std::string normalized = normalize(text);
  if (normalized.empty()) return ids;
  if (normalized.size() > 0x7FFFFFFF) throw Error("tokenizer '" + origin_ + "': text longer than 2 GiB");
  const std::string_view norm(normalized);

  // Doubly linked list of symbols over `normalized`; a merged-away symbol has length 0.
  struct Symbol {
    int32_t prev;
    int32_t next;
    uint32_t begin;
    uint32_t length;
    bool frozen;  // user-defined pieces are never merged
  };
  std::vector<Symbol> symbols;
  symbols.reserve(normalized.size());
  for (size_t pos = 0; pos < normalized.size();) {
    size_t length = match_user_defined(norm.substr(pos));
    const bool frozen = length > 0;
    if (!frozen) length = one_char_length(norm.substr(pos));
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back(Symbol{index - 1, pos + length < normalized.size() ? index + 1 : -1,
                             static_cast<uint32_t>(pos), static_cast<uint32_t>(length), frozen});
    pos += length;
  }
  const auto text_of = [&](const Symbol& s) { return norm.substr(s.begin, s.length); };

  // Candidate merges: best score first, leftmost first among equal scores. Entries are never removed;
  // one whose symbols changed since it was pushed is recognised by its length and skipped.
  struct Candidate {
    float score;
    int32_t left;
    int32_t right;
    uint32_t length;
  };
  const auto worse = [](const Candidate& a, const Candidate& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::vector<Candidate> heap;
  heap.reserve(symbols.size());
  // Pieces built by merging UNUSED pieces are split back into their parts at the end.
  std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>> unused_parts;

  const auto consider = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0 || symbols[left].frozen || symbols[right].frozen) return;
    const std::string_view merged = norm.substr(symbols[left].begin, symbols[left].length + symbols[right].length);
    const auto it = mergeable_.find(merged);
    if (it == mergeable_.end()) return;
    heap.push_back(Candidate{pieces_[it->second].score, left, right, static_cast<uint32_t>(merged.size())});
    std::push_heap(heap.begin(), heap.end(), worse);
    if (is_unused(it->second)) unused_parts[merged] = {text_of(symbols[left]), text_of(symbols[right])};
  };

  for (size_t i = 1; i < symbols.size(); ++i) consider(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), worse);
    const Candidate top = heap.back();
    heap.pop_back();
    Symbol& left = symbols[top.left];
    Symbol& right = symbols[top.right];
    if (left.length == 0 || right.length == 0 || left.length + right.length != top.length) continue;  // stale
    left.length += right.length;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.left;
    right.length = 0;
    consider(left.prev, top.left);
    consider(top.left, left.next);
  }

  // Emit pieces; UNUSED pieces are resegmented, unknown ones become bytes (byte fallback) or one <unk> per run.
  bool previous_is_unknown = false;
  const std::function<void(std::string_view)> emit = [&](std::string_view piece) {
    const int32_t id = piece_to_id(piece);
    if (is_unused(id)) {
      if (const auto it = unused_parts.find(piece); it != unused_parts.end()) {
        emit(it->second.first);
        emit(it->second.second);
        return;
      }
    }
    if (id == unk_id_) {
      if (byte_fallback_) {
        for (const char c : piece) ids.push_back(byte_ids_[static_cast<unsigned char>(c)]);
      } else if (!previous_is_unknown) {
        ids.push_back(id);
      }
      previous_is_unknown = true;
      return;
    }
    previous_is_unknown = false;
    ids.push_back(id);
  };
  for (int32_t index = 0; index >= 0; index = symbols[index].next) emit(text_of(symbols[index]));
  return ids;
}

void Tokenizer::check_id(int32_t id) const {
  if (id < 0 || id >= vocab_size()) {
    throw Error("tokenizer '" + origin_ + "': token id " + std::to_string(id) + " out of range [0, " +
                std::to_string(vocab_size()) + ")");
  }
}

const std::string& Tokenizer::piece(int32_t id) const {
  check_id(id);
  return pieces_[id].piece;
}

// SentencePieceProcessor::Decode: byte pieces are gathered and decoded as UTF-8 together; the first space
// symbol of the text (the dummy prefix) is dropped.
std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string text;
  std::string pending_bytes;
  bool expect_leading_space = true;  // the library's is_bos_ws
  bool consumed_leading_space = false;
  const bool strip_leading_space = add_dummy_prefix_ || remove_extra_whitespaces_;
  for (const int32_t id : ids) {
    check_id(id);
    const auto& entry = pieces_[id];
    if (entry.type == PieceType::kByte) {
      pending_bytes += static_cast<char>(byte_values_[id]);
      continue;
    }
    append_decoded_bytes(pending_bytes, text);
    pending_bytes.clear();
    if (consumed_leading_space || !text.empty()) expect_leading_space = false;
    consumed_leading_space = false;
    switch (entry.type) {
      case PieceType::kControl: break;
      case PieceType::kUnknown: text += unk_surface_; break;
      default: {
        std::string_view piece = entry.piece;
        if (expect_leading_space && strip_leading_space && piece.substr(0, kSpaceSymbol.size()) == kSpaceSymbol) {
          piece.remove_prefix(kSpaceSymbol.size());
          // With remove_extra_whitespaces the library keeps stripping until some text appears.
          consumed_leading_space = !remove_extra_whitespaces_;
        }
        text += replace_space_symbols(piece);
      }
    }
  }
  append_decoded_bytes(pending_bytes, text);
  return text;
}

std::string Tokenizer::piece_text(int32_t id) const {
  check_id(id);
  const auto& entry = pieces_[id];
  switch (entry.type) {
    case PieceType::kControl: return {};
    case PieceType::kUnknown: return unk_surface_;
    case PieceType::kByte:
      return std::string(1, static_cast<char>(byte_values_[id]));
    default: return replace_space_symbols(entry.piece);
  }
}

}  // namespace illm::formats
