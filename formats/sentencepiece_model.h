#pragma once
// Reader for SentencePiece's `tokenizer.model`: a serialized `sentencepiece.ModelProto`, parsed by hand from
// the protobuf wire format (Debian's libsentencepiece/libprotobuf cannot share a process with LibTorch).
// Only the fields that change encoding or decoding are kept; everything else is skipped.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace illm::formats {

// ModelProto.SentencePiece.Type (values as in sentencepiece_model.proto).
enum class PieceType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// TrainerSpec.ModelType.
enum class SentencePieceModelType : int32_t { kUnigram = 1, kBpe = 2, kWord = 3, kChar = 4 };

const char* model_type_name(SentencePieceModelType type);

struct SentencePieceEntry {
  std::string piece;
  float score = 0.0f;
  PieceType type = PieceType::kNormal;
};

struct SentencePieceNormalizerSpec {
  bool present = false;
  std::string name;
  std::string precompiled_charsmap;
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
};

// Defaults are the proto2 defaults of sentencepiece_model.proto: a field missing from the file takes them.
struct SentencePieceModel {
  std::vector<SentencePieceEntry> pieces;  // ModelProto.pieces (field 1), in id order

  // TrainerSpec (ModelProto field 2).
  int32_t model_type = static_cast<int32_t>(SentencePieceModelType::kUnigram);  // field 3
  bool byte_fallback = false;                                                   // field 35
  bool treat_whitespace_as_suffix = false;                                      // field 24
  int32_t unk_id = 0;                                                           // field 40
  int32_t bos_id = 1;                                                           // field 41
  int32_t eos_id = 2;                                                           // field 42
  int32_t pad_id = -1;                                                          // field 43
  std::string unk_surface = " \xE2\x81\x87 ";                                   // field 44
  std::string unk_piece = "<unk>";                                              // field 45
  std::string bos_piece = "<s>";                                                // field 46
  std::string eos_piece = "</s>";                                               // field 47
  std::string pad_piece = "<pad>";                                              // field 48

  SentencePieceNormalizerSpec normalizer;    // ModelProto field 3
  SentencePieceNormalizerSpec denormalizer;  // ModelProto field 5
};

// Parses the wire format. Throws illm::Error naming `origin` on malformed protobuf (truncated varints or
// fields, lengths past the end, wrong wire types for known fields, unknown piece types).
// Semantic checks (model type, normalizer, vocabulary consistency) are the tokenizer's job.
SentencePieceModel parse_sentencepiece_model(std::string_view bytes, const std::string& origin);

}  // namespace illm::formats
