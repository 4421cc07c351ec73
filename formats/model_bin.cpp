#include "formats/model_bin.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>
#include <string>

#include "formats/sentencepiece_model.h"
#include "formats/tokenizer.h"
#include "kernels/error.h"
#include "kernels/executor.h"
#include "runtime/illm_rt.h"

namespace illm::formats {
namespace {

constexpr uint16_t kNoLayer = ILLM_RT_NO_LAYER;

void put_u16(std::vector<uint8_t>& out, size_t at, uint16_t v) {
  out[at] = static_cast<uint8_t>(v);
  out[at + 1] = static_cast<uint8_t>(v >> 8);
}
void put_u32(std::vector<uint8_t>& out, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[at + i] = static_cast<uint8_t>(v >> (8 * i));
}
void put_u64(std::vector<uint8_t>& out, size_t at, uint64_t v) {
  for (int i = 0; i < 8; ++i) out[at + i] = static_cast<uint8_t>(v >> (8 * i));
}
void put_i32(std::vector<uint8_t>& out, size_t at, int64_t v) { put_u32(out, at, static_cast<uint32_t>(static_cast<int32_t>(v))); }

// Little-endian element payloads.
struct Payload {
  std::vector<uint8_t> bytes;
  void u8(uint8_t v) { bytes.push_back(v); }
  void i16(int64_t v) {
    const auto u = static_cast<uint16_t>(static_cast<int16_t>(v));
    bytes.push_back(static_cast<uint8_t>(u));
    bytes.push_back(static_cast<uint8_t>(u >> 8));
  }
  void u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  void i32(int64_t v) { u32(static_cast<uint32_t>(static_cast<int32_t>(v))); }
  void i64(int64_t v) {
    const auto u = static_cast<uint64_t>(v);
    for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<uint8_t>(u >> (8 * i)));
  }
};

struct Tensor {
  uint16_t kind = 0;
  uint16_t layer = kNoLayer;
  uint8_t dtype = 0;
  uint32_t rows = 0, cols = 0;
  Payload payload;
};

// Checked narrowing: the writer refuses a value the file's type cannot hold (validation normally caught it first).
int64_t checked(int64_t v, int64_t lo, int64_t hi, const std::string& field) {
  if (v < lo || v > hi)
    throw Error("model.bin export: " + field + " = " + std::to_string(v) + " does not fit the file's type [" +
                std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v;
}

Tensor dyadic_tensor(uint16_t kind, uint16_t layer, const std::vector<Dyadic>& scales, const std::string& field) {
  Tensor t{kind, layer, ILLM_RT_DT_I32, static_cast<uint32_t>(scales.size()), 2, {}};
  for (size_t i = 0; i < scales.size(); ++i) {
    t.payload.i32(checked(scales[i].m, 0, INT32_MAX, field + "[" + std::to_string(i) + "].m"));
    t.payload.i32(scales[i].k);
  }
  return t;
}

Tensor mantissa_tensor(uint16_t kind, uint16_t layer, const ChannelVector& v, const std::string& field) {
  Tensor t{kind, layer, ILLM_RT_DT_I32, static_cast<uint32_t>(v.mantissa.size()), 1, {}};
  for (size_t i = 0; i < v.mantissa.size(); ++i)
    t.payload.i32(checked(v.mantissa[i], INT32_MIN, INT32_MAX, field + ".mantissa[" + std::to_string(i) + "]"));
  return t;
}

// Codes of a linear layer: 4-bit codes packed two per byte (each row on its own, low nibble first), else one a byte.
Tensor codes_tensor(uint16_t kind, uint16_t layer, const QuantizedLinear& w) {
  const bool packed = w.bits <= 4;
  Tensor t{kind, layer, static_cast<uint8_t>(packed ? ILLM_RT_DT_U4 : ILLM_RT_DT_U8), static_cast<uint32_t>(w.out_features),
           static_cast<uint32_t>(w.in_features), {}};
  for (int32_t r = 0; r < w.out_features; ++r) {
    if (!packed) {
      for (int32_t c = 0; c < w.in_features; ++c) t.payload.u8(weight_code(w, r, c));
      continue;
    }
    for (int32_t c = 0; c < w.in_features; c += 2) {
      const uint8_t low = weight_code(w, r, c);
      const uint8_t high = c + 1 < w.in_features ? weight_code(w, r, c + 1) : 0;
      t.payload.u8(static_cast<uint8_t>(low | (high << 4)));
    }
  }
  return t;
}

// A linear's codes, zero points and scales as tensor kinds `codes_kind` + 0, 1, 2. Per-group weights (required
// feature bit 0): zero points [out][groups], scales [out·groups][2], row-major (one column / row each per row).
void add_linear(std::vector<Tensor>& tensors, uint16_t codes_kind, uint16_t layer, const QuantizedLinear& w,
                const std::string& field) {
  tensors.push_back(codes_tensor(codes_kind, layer, w));
  Tensor zero_points{static_cast<uint16_t>(codes_kind + 1), layer, ILLM_RT_DT_U8, static_cast<uint32_t>(w.out_features),
                     static_cast<uint32_t>(weight_groups(w)), {}};
  for (size_t j = 0; j < w.zero_points.size(); ++j)
    zero_points.payload.u8(static_cast<uint8_t>(checked(w.zero_points[j], 0, 255, field + ".zero_points[" + std::to_string(j) + "]")));
  tensors.push_back(std::move(zero_points));
  tensors.push_back(dyadic_tensor(static_cast<uint16_t>(codes_kind + 2), layer, w.scales, field + ".scales"));
}

// The compact vocabulary the runtime's tokenizer reads (runtime/illm_rt_tokenizer.c).
std::vector<Tensor> tokenizer_tensors(std::string_view model_bytes, ModelBinTokenizer& report) {
  const std::string origin = "tokenizer.model";
  // The C++ tokenizer's checks (BPE, identity normalizer, byte pieces, …) and its bos/eos/unk ids.
  const Tokenizer tokenizer = Tokenizer::from_bytes(std::string(model_bytes), origin);
  const SentencePieceModel sp = parse_sentencepiece_model(model_bytes, origin);
  const auto vocab = static_cast<int32_t>(sp.pieces.size());
  const SentencePieceNormalizerSpec& norm = sp.normalizer;

  report.present = true;
  report.can_encode = true;
  for (const auto& piece : sp.pieces) {
    if (piece.type == PieceType::kUserDefined || piece.type == PieceType::kUnused) {
      report.can_encode = false;
      report.note = std::string("the tokenizer has ") +
                    (piece.type == PieceType::kUserDefined ? "USER_DEFINED" : "UNUSED") +
                    " pieces, which the C99 runtime's encoder does not handle: it decodes text, prompts must be token ids";
      break;
    }
  }

  // Merge ranks: the order of the float scores (equal scores share a rank), so the runtime compares integers.
  std::vector<float> scores;
  for (int32_t id = 0; id < vocab; ++id) {
    const float score = sp.pieces[id].score;
    if (std::isnan(score)) throw Error(origin + ": piece " + std::to_string(id) + " has a NaN score");
    scores.push_back(score);
  }
  std::vector<float> distinct = scores;
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());

  std::vector<Tensor> tensors;
  Tensor params{ILLM_RT_T_TOK_PARAMS, kNoLayer, ILLM_RT_DT_I32, ILLM_RT_TOK_PARAM_COUNT, 1, {}};
  const int64_t values[ILLM_RT_TOK_PARAM_COUNT] = {vocab,
                                                   tokenizer.unk_id(),
                                                   tokenizer.bos_id(),
                                                   tokenizer.eos_id(),
                                                   sp.byte_fallback ? 1 : 0,
                                                   norm.add_dummy_prefix ? 1 : 0,
                                                   norm.remove_extra_whitespaces ? 1 : 0,
                                                   norm.escape_whitespaces ? 1 : 0,
                                                   report.can_encode ? 1 : 0};
  for (const int64_t v : values) params.payload.i32(v);
  tensors.push_back(std::move(params));

  Tensor offsets{ILLM_RT_T_TOK_PIECE_OFFSETS, kNoLayer, ILLM_RT_DT_U32, static_cast<uint32_t>(vocab + 1), 1, {}};
  Tensor bytes{ILLM_RT_T_TOK_PIECE_BYTES, kNoLayer, ILLM_RT_DT_U8, 0, 1, {}};
  Tensor types{ILLM_RT_T_TOK_PIECE_TYPES, kNoLayer, ILLM_RT_DT_U8, static_cast<uint32_t>(vocab), 1, {}};
  Tensor ranks{ILLM_RT_T_TOK_PIECE_RANKS, kNoLayer, ILLM_RT_DT_I32, static_cast<uint32_t>(vocab), 1, {}};
  offsets.payload.u32(0);
  for (int32_t id = 0; id < vocab; ++id) {
    const std::string& piece = sp.pieces[id].piece;
    bytes.payload.bytes.insert(bytes.payload.bytes.end(), piece.begin(), piece.end());
    offsets.payload.u32(static_cast<uint32_t>(bytes.payload.bytes.size()));
    types.payload.u8(static_cast<uint8_t>(sp.pieces[id].type));
    const auto rank = std::lower_bound(distinct.begin(), distinct.end(), scores[id]) - distinct.begin();
    ranks.payload.i32(rank);
  }
  bytes.rows = static_cast<uint32_t>(bytes.payload.bytes.size());

  // Ids in byte-wise (unsigned) order of their pieces, for the runtime's binary search.
  std::vector<int32_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  const auto unsigned_less = [&](int32_t a, int32_t b) {
    const std::string& x = sp.pieces[a].piece;
    const std::string& y = sp.pieces[b].piece;
    return std::lexicographical_compare(x.begin(), x.end(), y.begin(), y.end(), [](char p, char q) {
      return static_cast<unsigned char>(p) < static_cast<unsigned char>(q);
    });
  };
  std::sort(order.begin(), order.end(), unsigned_less);
  Tensor sorted{ILLM_RT_T_TOK_SORTED_IDS, kNoLayer, ILLM_RT_DT_U32, static_cast<uint32_t>(vocab), 1, {}};
  for (const int32_t id : order) sorted.payload.u32(static_cast<uint32_t>(id));

  Tensor unk{ILLM_RT_T_TOK_UNK_SURFACE, kNoLayer, ILLM_RT_DT_U8, static_cast<uint32_t>(sp.unk_surface.size()), 1, {}};
  unk.payload.bytes.assign(sp.unk_surface.begin(), sp.unk_surface.end());

  tensors.push_back(std::move(offsets));
  tensors.push_back(std::move(bytes));
  tensors.push_back(std::move(types));
  tensors.push_back(std::move(ranks));
  tensors.push_back(std::move(sorted));
  tensors.push_back(std::move(unk));
  return tensors;
}

std::vector<uint8_t> hex_to_bytes(const std::string& hex) {
  if (hex.empty()) return std::vector<uint8_t>(32, 0);
  if (hex.size() != 64) throw Error("model.bin export: source SHA-256 must be 64 hex digits");
  std::vector<uint8_t> out;
  for (size_t i = 0; i < 64; i += 2) {
    const auto digit = [&](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      throw Error("model.bin export: source SHA-256 is not lower-case hex");
    };
    out.push_back(static_cast<uint8_t>(digit(hex[i]) * 16 + digit(hex[i + 1])));
  }
  return out;
}

// TRIP channel factors (required feature bit 3): per layer u8 [5 + 2 hidden + q width + intermediate]: K (0 = none),
// the on/off flags of attn_in, attn_out, ffn_in, down_in, then each site's α_c (zeros for a site that is off).
std::vector<Tensor> trip_tensors(const QuantizedModel& model) {
  static_assert(ILLM_RT_TRIP_SITES == 4, "the runtime's TRIP sites are attn_in, attn_out, ffn_in, down_in");
  const ModelShape& s = model.shape;
  const int sites[ILLM_RT_TRIP_SITES] = {kClipAttnIn, kClipAttnOut, kClipFfnIn, kClipDownIn};
  const size_t widths[ILLM_RT_TRIP_SITES] = {static_cast<size_t>(s.hidden), static_cast<size_t>(s.n_heads) * s.head_dim,
                                             static_cast<size_t>(s.hidden), static_cast<size_t>(s.intermediate)};
  const size_t rows = ILLM_RT_TRIP_HEADER + widths[0] + widths[1] + widths[2] + widths[3];
  std::vector<Tensor> tensors;
  for (size_t l = 0; l < model.layers.size(); ++l) {
    const QuantizedLayer& L = model.layers[l];
    Tensor t{ILLM_RT_T_TRIP, static_cast<uint16_t>(l), ILLM_RT_DT_U8, static_cast<uint32_t>(rows), 1, {}};
    t.payload.u8(L.has_trip() ? static_cast<uint8_t>(checked(L.trip_max_shift, 1, kMaxTripShift, "layers[" + std::to_string(l) + "].trip_max_shift")) : 0);
    for (const int site : sites) t.payload.u8(L.trip_alpha[site].empty() ? 0 : 1);
    for (int i = 0; i < ILLM_RT_TRIP_SITES; ++i) {
      const std::vector<int8_t>& alpha = L.trip_alpha[sites[i]];
      if (!alpha.empty() && alpha.size() != widths[i])
        throw Error("model.bin export: layers[" + std::to_string(l) + "]." + act_clip_site_name(sites[i]) + " has " +
                    std::to_string(alpha.size()) + " TRIP exponents for " + std::to_string(widths[i]) + " channels");
      for (size_t c = 0; c < widths[i]; ++c) t.payload.u8(alpha.empty() ? 0 : static_cast<uint8_t>(alpha[c]));
    }
    tensors.push_back(std::move(t));
  }
  return tensors;
}

size_t align_up(size_t v) { return (v + ILLM_RT_ALIGNMENT - 1) / ILLM_RT_ALIGNMENT * ILLM_RT_ALIGNMENT; }

}  // namespace

ModelBin build_model_bin(const QuantizedModel& model, std::string_view tokenizer_model, const ModelBinOptions& options) {
  validate_quantized_model(model);  // the executor's checks, naming the field (TRIP factors included)
  const ModelShape& s = model.shape;
  const IntegerSettings& st = model.settings;
  ModelBin result;
  result.context = options.context == 0 ? s.max_positions : options.context;
  if (result.context < 1 || result.context > s.max_positions)
    throw Error("model.bin export: context " + std::to_string(options.context) + " outside [1, max_positions = " +
                std::to_string(s.max_positions) + "]");

  std::vector<Tensor> tensors;
  Tensor embed{ILLM_RT_T_EMBED_CODES, kNoLayer, static_cast<uint8_t>(st.embed_bits <= 8 ? ILLM_RT_DT_I8 : ILLM_RT_DT_I16),
               static_cast<uint32_t>(s.vocab), static_cast<uint32_t>(s.hidden), {}};
  for (const int16_t code : model.embed_codes) {
    if (st.embed_bits <= 8)
      embed.payload.u8(static_cast<uint8_t>(static_cast<int8_t>(code)));  // |code| <= 127 (validated)
    else
      embed.payload.i16(code);
  }
  tensors.push_back(std::move(embed));
  tensors.push_back(dyadic_tensor(ILLM_RT_T_EMBED_SCALES, kNoLayer, model.embed_scales, "embed_scales"));
  for (const auto* table : {&model.rope_cos, &model.rope_sin}) {
    Tensor t{static_cast<uint16_t>(table == &model.rope_cos ? ILLM_RT_T_ROPE_COS : ILLM_RT_T_ROPE_SIN), kNoLayer,
             ILLM_RT_DT_I16, static_cast<uint32_t>(s.max_positions), static_cast<uint32_t>(s.head_dim / 2), {}};
    for (const int16_t v : *table) t.payload.i16(v);
    tensors.push_back(std::move(t));
  }
  tensors.push_back(mantissa_tensor(ILLM_RT_T_FINAL_NORM, kNoLayer, model.final_norm, "final_norm"));
  static_assert(ILLM_RT_T_LM_HEAD_ZERO_POINTS == ILLM_RT_T_LM_HEAD_CODES + 1 &&
                ILLM_RT_T_LM_HEAD_SCALES == ILLM_RT_T_LM_HEAD_CODES + 2, "the head's tensors follow its codes");
  add_linear(tensors, ILLM_RT_T_LM_HEAD_CODES, kNoLayer, model.lm_head, "lm_head");
  Tensor scalars{ILLM_RT_T_LAYER_SCALARS, kNoLayer, ILLM_RT_DT_I64, static_cast<uint32_t>(s.n_layers),
                 ILLM_RT_LAYER_SCALAR_COUNT, {}};
  for (const QuantizedLayer& L : model.layers) {
    scalars.payload.i64(L.attn_norm.exponent);
    scalars.payload.i64(L.ffn_norm.exponent);
    scalars.payload.i64(L.swiglu_inv_alpha.exponent);
    scalars.payload.i64(L.softmax_clip.m);
    scalars.payload.i64(L.softmax_clip.k);
  }
  tensors.push_back(std::move(scalars));

  for (size_t l = 0; l < model.layers.size(); ++l) {
    const QuantizedLayer& L = model.layers[l];
    const auto layer = static_cast<uint16_t>(l);
    const std::string prefix = "layers[" + std::to_string(l) + "].";
    tensors.push_back(mantissa_tensor(ILLM_RT_T_ATTN_NORM, layer, L.attn_norm, prefix + "attn_norm"));
    tensors.push_back(mantissa_tensor(ILLM_RT_T_FFN_NORM, layer, L.ffn_norm, prefix + "ffn_norm"));
    tensors.push_back(mantissa_tensor(ILLM_RT_T_SWIGLU_INV_ALPHA, layer, L.swiglu_inv_alpha, prefix + "swiglu_inv_alpha"));
    const QuantizedLinear* linears[ILLM_RT_LINEARS] = {&L.q_proj, &L.k_proj, &L.v_proj, &L.o_proj,
                                                       &L.gate_proj, &L.up_proj, &L.down_proj};
    static const char* const names[ILLM_RT_LINEARS] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                       "gate_proj", "up_proj", "down_proj"};
    for (int j = 0; j < ILLM_RT_LINEARS; ++j)
      add_linear(tensors, static_cast<uint16_t>(ILLM_RT_T_LINEAR_FIRST + 3 * j), layer, *linears[j], prefix + names[j]);
  }
  // Extension tensors (docs/model-bin.md), in required-feature-bit order, only for models that use the feature.
  static_assert(ILLM_RT_ACT_CLIP_SITES == kNumClipSites, "the runtime and the model list the same clip sites");
  uint32_t required_features = weight_groups(model.lm_head) > 1 ? ILLM_RT_REQUIRED_GROUP_SCALES : 0u;
  for (const QuantizedLayer& L : model.layers)
    for (const QuantizedLinear* w : {&L.q_proj, &L.k_proj, &L.v_proj, &L.o_proj, &L.gate_proj, &L.up_proj, &L.down_proj})
      if (weight_groups(*w) > 1) required_features |= ILLM_RT_REQUIRED_GROUP_SCALES;
  bool act_clip = false;
  for (const QuantizedLayer& L : model.layers) act_clip = act_clip || L.has_act_clip();
  if (act_clip) {
    Tensor clips{ILLM_RT_T_ACT_CLIP, kNoLayer, ILLM_RT_DT_I64, static_cast<uint32_t>(s.n_layers),
                 2 * ILLM_RT_ACT_CLIP_SITES, {}};
    for (const QuantizedLayer& L : model.layers)
      for (const RequantClip& c : L.act_clip) {
        clips.payload.i64(c.m);
        clips.payload.i64(c.k);
      }
    tensors.push_back(std::move(clips));
    required_features |= ILLM_RT_FEATURE_ACT_CLIP;
  }
  bool trip = false;
  for (const QuantizedLayer& L : model.layers) trip = trip || L.has_trip();
  if (trip) {
    for (Tensor& t : trip_tensors(model)) tensors.push_back(std::move(t));
    required_features |= ILLM_RT_REQUIRED_TRIP;
  }
  uint32_t optional_features = 0;
  if (!tokenizer_model.empty()) {
    for (Tensor& t : tokenizer_tensors(tokenizer_model, result.tokenizer)) tensors.push_back(std::move(t));
    optional_features |= ILLM_RT_FEATURE_TOKENIZER;
  }

  // Layout: header, table, then every tensor at the next multiple of 64 bytes.
  const size_t table_offset = align_up(ILLM_RT_HEADER_SIZE);
  size_t offset = align_up(table_offset + tensors.size() * ILLM_RT_TENSOR_ENTRY_SIZE);
  std::vector<size_t> offsets;
  for (const Tensor& t : tensors) {
    offsets.push_back(offset);
    offset = align_up(offset + t.payload.bytes.size());
  }
  std::vector<uint8_t>& out = result.bytes;
  out.assign(offset, 0);
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    const size_t e = table_offset + i * ILLM_RT_TENSOR_ENTRY_SIZE;
    put_u16(out, e + ILLM_RT_ENT_KIND, t.kind);
    put_u16(out, e + ILLM_RT_ENT_LAYER, t.layer);
    out[e + ILLM_RT_ENT_DTYPE] = t.dtype;
    put_u32(out, e + ILLM_RT_ENT_ROWS, t.rows);
    put_u32(out, e + ILLM_RT_ENT_COLS, t.cols);
    put_u64(out, e + ILLM_RT_ENT_OFFSET, offsets[i]);
    put_u64(out, e + ILLM_RT_ENT_SIZE, t.payload.bytes.size());
    std::copy(t.payload.bytes.begin(), t.payload.bytes.end(), out.begin() + static_cast<ptrdiff_t>(offsets[i]));
  }

  std::memcpy(out.data() + ILLM_RT_H_MAGIC, ILLM_RT_MAGIC_BYTES, 8);  // 7 letters and the NUL
  put_u32(out, ILLM_RT_H_VERSION, ILLM_RT_FORMAT_VERSION);
  put_u64(out, ILLM_RT_H_FILE_SIZE, out.size());
  put_u32(out, ILLM_RT_H_HEADER_SIZE, ILLM_RT_HEADER_SIZE);
  // Required feature bit 1 (online Walsh–Hadamard) only when the model uses a transform: other files are unchanged.
  const uint32_t hadamard_sites = (model.hadamard_down ? ILLM_RT_HADAMARD_DOWN : 0u) |
                                  (model.hadamard_qk ? ILLM_RT_HADAMARD_QK : 0u);
  if (hadamard_sites != 0) required_features |= ILLM_RT_REQUIRED_HADAMARD;
  // Per-group activations: required feature bit 4 and G in the header (validated above), only when the model has them.
  if (model.act_group_size > 0) required_features |= ILLM_RT_REQUIRED_ACT_GROUPS;
  // The LM head's input width: required feature bit 5 and the width, only when the model sets head_in_bits.
  if (st.head_in_bits != 0) required_features |= ILLM_RT_REQUIRED_HEAD_INPUT;
  // The Q/K/V code width: required feature bit 6 and the width, only when the model sets qkv_bits (a runtime without
  // the feature refuses the bit instead of running a_bits-wide Q/K/V).
  if (st.qkv_bits != 0) required_features |= ILLM_RT_REQUIRED_QKV_BITS;
  put_u32(out, ILLM_RT_H_REQUIRED_FEATURES, required_features);
  put_u32(out, ILLM_RT_H_HADAMARD_SITES, hadamard_sites);
  put_u32(out, ILLM_RT_H_ACT_GROUP_SIZE, static_cast<uint32_t>(model.act_group_size));
  put_u32(out, ILLM_RT_H_HEAD_INPUT_BITS, static_cast<uint32_t>(st.head_in_bits));
  put_u32(out, ILLM_RT_H_QKV_BITS, static_cast<uint32_t>(st.qkv_bits));
  put_u32(out, ILLM_RT_H_OPTIONAL_FEATURES, optional_features);
  put_u32(out, ILLM_RT_H_TENSOR_COUNT, static_cast<uint32_t>(tensors.size()));
  put_u64(out, ILLM_RT_H_TENSOR_TABLE, table_offset);
  const int32_t shape[10] = {s.hidden, s.intermediate, s.n_layers, s.n_heads, s.n_kv_heads,
                             s.head_dim, s.vocab, s.max_positions, s.bos_id, s.eos_id};
  for (int i = 0; i < 10; ++i) put_i32(out, ILLM_RT_H_SHAPE + 4 * i, shape[i]);
  const int32_t settings[13] = {st.w_bits, st.a_bits, st.mantissa_bits, st.softmax_in_bits, st.prob_bits,
                                st.sigmoid_bits, st.swiglu_in_bits, st.norm_frac_bits, st.head_bits, st.embed_bits,
                                st.exp_quadratic ? 1 : 0, st.sigmoid_stable ? 1 : 0, st.paper_conformance ? 1 : 0};
  for (int i = 0; i < 13; ++i) put_i32(out, ILLM_RT_H_SETTINGS + 4 * i, settings[i]);
  put_i32(out, ILLM_RT_H_ROPE_FRAC_BITS, model.rope_frac_bits);
  put_u64(out, ILLM_RT_H_NORM_EPS_M, static_cast<uint64_t>(model.norm_eps.m));
  put_i32(out, ILLM_RT_H_NORM_EPS_K, model.norm_eps.k);
  put_i32(out, ILLM_RT_H_FINAL_NORM_EXPONENT, model.final_norm.exponent);
  put_i32(out, ILLM_RT_H_CONTEXT, result.context);
  illm_rt_shape rt_shape{s.hidden, s.intermediate, s.n_layers, s.n_heads, s.n_kv_heads,
                         s.head_dim, s.vocab, s.max_positions, s.bos_id, s.eos_id};
  result.arena_bytes = illm_rt_arena_size_for_groups(&rt_shape, model.act_group_size, result.context);
  if (result.arena_bytes == 0) throw Error("model.bin export: the arena for context " + std::to_string(result.context) + " overflows");
  put_u64(out, ILLM_RT_H_ARENA_BYTES, result.arena_bytes);
  const std::vector<uint8_t> source = hex_to_bytes(options.source_sha256);
  std::copy(source.begin(), source.end(), out.begin() + ILLM_RT_H_SOURCE_SHA256);
  put_u32(out, ILLM_RT_H_CRC32, illm_rt_crc32(0, out.data() + 16, out.size() - 16));
  return result;
}

}  // namespace illm::formats
