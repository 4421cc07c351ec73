#include "formats/sentencepiece_model.h"

#include <bit>
#include <cstring>

#include "kernels/error.h"

namespace illm::formats {
namespace {

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

const char* wire_type_name(uint32_t wire_type) {
  switch (wire_type) {
    case kVarint: return "varint";
    case kFixed64: return "fixed64";
    case kLengthDelimited: return "length-delimited";
    case 3: return "start-group";
    case 4: return "end-group";
    case kFixed32: return "fixed32";
    default: return "invalid";
  }
}

// Cursor over one protobuf message. `base` is the offset of the message inside the whole file, so that
// errors point at an absolute byte position.
class WireReader {
 public:
  WireReader(std::string_view bytes, size_t base, const std::string& origin, const char* message)
      : bytes_(bytes), base_(base), origin_(origin), message_(message) {}

  bool done() const { return pos_ >= bytes_.size(); }

  struct Tag {
    uint32_t field;
    uint32_t wire_type;
  };

  Tag read_tag() {
    const size_t at = pos_;
    const uint64_t key = read_varint("field key");
    const uint64_t field = key >> 3;
    if (field == 0 || field > 0x1FFFFFFF) fail(at, "invalid field number " + std::to_string(field));
    return Tag{static_cast<uint32_t>(field), static_cast<uint32_t>(key & 7)};
  }

  uint64_t read_varint(const char* what) {
    const size_t at = pos_;
    uint64_t value = 0;
    for (int shift = 0; shift < 70; shift += 7) {
      if (pos_ >= bytes_.size()) fail(at, std::string("truncated varint (") + what + ")");
      const auto byte = static_cast<uint8_t>(bytes_[pos_++]);
      if (shift == 63 && byte > 1) fail(at, std::string("varint longer than 64 bits (") + what + ")");
      value |= static_cast<uint64_t>(byte & 0x7F) << shift;
      if (byte < 0x80) return value;
    }
    fail(at, std::string("varint longer than 10 bytes (") + what + ")");
  }

  uint32_t read_fixed32(const char* what) {
    if (bytes_.size() - pos_ < 4) fail(pos_, std::string("truncated fixed32 (") + what + ")");
    uint32_t value = 0;
    for (int i = 0; i < 4; ++i) value |= static_cast<uint32_t>(static_cast<uint8_t>(bytes_[pos_ + i])) << (8 * i);
    pos_ += 4;
    return value;
  }

  // Returns the payload of a length-delimited field and its absolute offset.
  std::pair<std::string_view, size_t> read_length_delimited(const char* what) {
    const size_t at = pos_;
    const uint64_t length = read_varint(what);
    if (length > bytes_.size() - pos_) {
      fail(at, std::string("length ") + std::to_string(length) + " of " + what + " runs past the end (" +
                   std::to_string(bytes_.size() - pos_) + " bytes left): file truncated or corrupt");
    }
    const std::string_view payload = bytes_.substr(pos_, length);
    const size_t payload_base = base_ + pos_;
    pos_ += length;
    return {payload, payload_base};
  }

  void skip(const Tag& tag) {
    switch (tag.wire_type) {
      case kVarint: read_varint("skipped field"); return;
      case kFixed64:
        if (bytes_.size() - pos_ < 8) fail(pos_, "truncated fixed64 field " + std::to_string(tag.field));
        pos_ += 8;
        return;
      case kLengthDelimited: read_length_delimited("skipped field"); return;
      case kFixed32: read_fixed32("skipped field"); return;
      default:
        fail(pos_, "unsupported wire type " + std::string(wire_type_name(tag.wire_type)) + " for field " +
                       std::to_string(tag.field));
    }
  }

  void expect(const Tag& tag, uint32_t wire_type, const char* field_name) {
    if (tag.wire_type != wire_type) {
      fail(pos_, std::string("field ") + field_name + " (" + std::to_string(tag.field) + ") has wire type " +
                     wire_type_name(tag.wire_type) + ", expected " + wire_type_name(wire_type));
    }
  }

  // Typed reads that check the wire type first.
  std::string read_string(const Tag& tag, const char* field_name) {
    expect(tag, kLengthDelimited, field_name);
    return std::string(read_length_delimited(field_name).first);
  }
  bool read_bool(const Tag& tag, const char* field_name) {
    expect(tag, kVarint, field_name);
    return read_varint(field_name) != 0;
  }
  int32_t read_int32(const Tag& tag, const char* field_name) {
    expect(tag, kVarint, field_name);
    // int32 is sign-extended to 64 bits on the wire; the low 32 bits are the value.
    return static_cast<int32_t>(static_cast<uint32_t>(read_varint(field_name)));
  }
  float read_float(const Tag& tag, const char* field_name) {
    expect(tag, kFixed32, field_name);
    return std::bit_cast<float>(read_fixed32(field_name));
  }

  [[noreturn]] void fail(size_t at, const std::string& reason) const {
    throw Error("tokenizer '" + origin_ + "': corrupt SentencePiece model (" + message_ + " at byte " +
                std::to_string(base_ + at) + "): " + reason);
  }

 private:
  std::string_view bytes_;
  size_t pos_ = 0;
  size_t base_;
  const std::string& origin_;
  const char* message_;
};

SentencePieceEntry parse_piece(std::string_view bytes, size_t base, const std::string& origin) {
  WireReader reader(bytes, base, origin, "ModelProto.SentencePiece");
  SentencePieceEntry entry;
  while (!reader.done()) {
    const auto tag = reader.read_tag();
    switch (tag.field) {
      case 1: entry.piece = reader.read_string(tag, "piece"); break;
      case 2: entry.score = reader.read_float(tag, "score"); break;
      case 3: {
        const int32_t type = reader.read_int32(tag, "type");
        if (type < static_cast<int32_t>(PieceType::kNormal) || type > static_cast<int32_t>(PieceType::kByte)) {
          reader.fail(0, "unknown piece type " + std::to_string(type));
        }
        entry.type = static_cast<PieceType>(type);
        break;
      }
      default: reader.skip(tag);
    }
  }
  return entry;
}

// Repeated occurrences of an embedded message merge into the same object (protobuf semantics), hence `into`.
void parse_trainer_spec(std::string_view bytes, size_t base, const std::string& origin, SentencePieceModel& into) {
  WireReader reader(bytes, base, origin, "TrainerSpec");
  while (!reader.done()) {
    const auto tag = reader.read_tag();
    switch (tag.field) {
      case 3: into.model_type = reader.read_int32(tag, "model_type"); break;
      case 24: into.treat_whitespace_as_suffix = reader.read_bool(tag, "treat_whitespace_as_suffix"); break;
      case 35: into.byte_fallback = reader.read_bool(tag, "byte_fallback"); break;
      case 40: into.unk_id = reader.read_int32(tag, "unk_id"); break;
      case 41: into.bos_id = reader.read_int32(tag, "bos_id"); break;
      case 42: into.eos_id = reader.read_int32(tag, "eos_id"); break;
      case 43: into.pad_id = reader.read_int32(tag, "pad_id"); break;
      case 44: into.unk_surface = reader.read_string(tag, "unk_surface"); break;
      case 45: into.unk_piece = reader.read_string(tag, "unk_piece"); break;
      case 46: into.bos_piece = reader.read_string(tag, "bos_piece"); break;
      case 47: into.eos_piece = reader.read_string(tag, "eos_piece"); break;
      case 48: into.pad_piece = reader.read_string(tag, "pad_piece"); break;
      default: reader.skip(tag);
    }
  }
}

void parse_normalizer_spec(std::string_view bytes, size_t base, const std::string& origin, const char* message,
                           SentencePieceNormalizerSpec& into) {
  WireReader reader(bytes, base, origin, message);
  into.present = true;
  while (!reader.done()) {
    const auto tag = reader.read_tag();
    switch (tag.field) {
      case 1: into.name = reader.read_string(tag, "name"); break;
      case 2: into.precompiled_charsmap = reader.read_string(tag, "precompiled_charsmap"); break;
      case 3: into.add_dummy_prefix = reader.read_bool(tag, "add_dummy_prefix"); break;
      case 4: into.remove_extra_whitespaces = reader.read_bool(tag, "remove_extra_whitespaces"); break;
      case 5: into.escape_whitespaces = reader.read_bool(tag, "escape_whitespaces"); break;
      default: reader.skip(tag);
    }
  }
}

}  // namespace

const char* model_type_name(SentencePieceModelType type) {
  switch (type) {
    case SentencePieceModelType::kUnigram: return "UNIGRAM";
    case SentencePieceModelType::kBpe: return "BPE";
    case SentencePieceModelType::kWord: return "WORD";
    case SentencePieceModelType::kChar: return "CHAR";
  }
  return "unknown";
}

SentencePieceModel parse_sentencepiece_model(std::string_view bytes, const std::string& origin) {
  WireReader reader(bytes, 0, origin, "ModelProto");
  SentencePieceModel model;
  while (!reader.done()) {
    const auto tag = reader.read_tag();
    switch (tag.field) {
      case 1: {
        reader.expect(tag, kLengthDelimited, "pieces");
        const auto [payload, base] = reader.read_length_delimited("pieces");
        model.pieces.push_back(parse_piece(payload, base, origin));
        break;
      }
      case 2: {
        reader.expect(tag, kLengthDelimited, "trainer_spec");
        const auto [payload, base] = reader.read_length_delimited("trainer_spec");
        parse_trainer_spec(payload, base, origin, model);
        break;
      }
      case 3: {
        reader.expect(tag, kLengthDelimited, "normalizer_spec");
        const auto [payload, base] = reader.read_length_delimited("normalizer_spec");
        parse_normalizer_spec(payload, base, origin, "NormalizerSpec", model.normalizer);
        break;
      }
      case 5: {
        reader.expect(tag, kLengthDelimited, "denormalizer_spec");
        const auto [payload, base] = reader.read_length_delimited("denormalizer_spec");
        parse_normalizer_spec(payload, base, origin, "denormalizer NormalizerSpec", model.denormalizer);
        break;
      }
      default: reader.skip(tag);
    }
  }
  return model;
}

}  // namespace illm::formats
