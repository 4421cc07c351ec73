/* illm_rt tokenizer: SentencePiece BPE encoding and decoding over the compact vocabulary of model.bin
 * (docs/model-bin.md), token for token as the C++ formats/tokenizer.cpp (itself matching SentencePiece 0.1.97).
 *
 * The vocabulary: pieces (bytes + type), an integer merge rank per piece (the exporter's order of the float scores,
 * equal scores sharing a rank, so no float is needed here) and the ids sorted by piece bytes for binary search.
 * Encoding: identity normalization (dummy prefix, whitespace escaping and squeezing), then BPE merges, best rank
 * first and leftmost first among equal ranks, then byte fallback or one <unk> per unknown run. Models with
 * USER_DEFINED or UNUSED pieces are exported decode-only (the exporter sets can_encode = 0). */
#include "illm_rt.h"

#include "illm_rt_internal.h"

enum { PIECE_NORMAL = 1, PIECE_UNKNOWN = 2, PIECE_CONTROL = 3, PIECE_USER_DEFINED = 4, PIECE_UNUSED = 5, PIECE_BYTE = 6 };

static const uint8_t kSpaceSymbol[3] = {0xE2, 0x96, 0x81};  /* U+2581 */
static const uint8_t kReplacement[3] = {0xEF, 0xBF, 0xBD};  /* U+FFFD */

typedef struct {
  const uint8_t* offsets; /* u32 [vocab + 1] */
  const uint8_t* bytes;
  const uint8_t* types;
  const uint8_t* ranks;   /* i32 [vocab] */
  const uint8_t* sorted;  /* u32 [vocab] */
  const uint8_t* unk_surface;
  size_t unk_surface_length;
  int32_t vocab;
} rt_vocab;

static rt_vocab vocab_of(const illm_rt_model* m) {
  rt_vocab v;
  const rt_tensor unk = tokenizer_tensor(m, ILLM_RT_T_TOK_UNK_SURFACE);
  v.offsets = tokenizer_tensor(m, ILLM_RT_T_TOK_PIECE_OFFSETS).p;
  v.bytes = tokenizer_tensor(m, ILLM_RT_T_TOK_PIECE_BYTES).p;
  v.types = tokenizer_tensor(m, ILLM_RT_T_TOK_PIECE_TYPES).p;
  v.ranks = tokenizer_tensor(m, ILLM_RT_T_TOK_PIECE_RANKS).p;
  v.sorted = tokenizer_tensor(m, ILLM_RT_T_TOK_SORTED_IDS).p;
  v.unk_surface = unk.p;
  v.unk_surface_length = (size_t)unk.rows;
  v.vocab = m->tok_vocab;
  return v;
}

static const uint8_t* piece_of(const rt_vocab* v, int32_t id, size_t* length) {
  const uint32_t begin = rd_u32(v->offsets + 4 * (size_t)id), end = rd_u32(v->offsets + 4 * (size_t)id + 4);
  *length = end - begin;
  return v->bytes + begin;
}

/* Byte-wise comparison, a shorter prefix first. */
static int compare_bytes(const uint8_t* a, size_t la, const uint8_t* b, size_t lb) {
  size_t i;
  const size_t n = la < lb ? la : lb;
  for (i = 0; i < n; ++i)
    if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
  return la == lb ? 0 : (la < lb ? -1 : 1);
}

/* Id of the piece spelled `text`, or -1. */
static int32_t find_piece(const rt_vocab* v, const uint8_t* text, size_t length) {
  int32_t lo = 0, hi = v->vocab - 1;
  while (lo <= hi) {
    const int32_t mid = lo + (hi - lo) / 2;
    const int32_t id = (int32_t)rd_u32(v->sorted + 4 * (size_t)mid);
    size_t piece_length;
    const uint8_t* piece = piece_of(v, id, &piece_length);
    const int c = compare_bytes(piece, piece_length, text, length);
    if (c == 0) return id;
    if (c < 0) lo = mid + 1; else hi = mid - 1;
  }
  return -1;
}

static int hex_digit(uint8_t c) { return c >= '0' && c <= '9' ? c - '0' : (c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1); }

/* Byte value of a "<0xNN>" piece (upper-case hex, as SentencePiece writes them), or -1. */
static int byte_piece_value(const uint8_t* piece, size_t length) {
  if (length != 6 || piece[0] != '<' || piece[1] != '0' || piece[2] != 'x' || piece[5] != '>') return -1;
  if (hex_digit(piece[3]) < 0 || hex_digit(piece[4]) < 0) return -1;
  return hex_digit(piece[3]) * 16 + hex_digit(piece[4]);
}

static int32_t byte_piece_id(const rt_vocab* v, int byte) {
  static const char kHex[] = "0123456789ABCDEF";
  uint8_t piece[6];
  piece[0] = '<';
  piece[1] = '0';
  piece[2] = 'x';
  piece[3] = (uint8_t)kHex[(byte >> 4) & 15];
  piece[4] = (uint8_t)kHex[byte & 15];
  piece[5] = '>';
  return find_piece(v, piece, 6);
}

int illm_rt_internal_load_tokenizer(illm_rt_model* m, illm_rt_error* err) {
  const rt_tensor params = tokenizer_tensor(m, ILLM_RT_T_TOK_PARAMS);
  const rt_tensor bytes = tokenizer_tensor(m, ILLM_RT_T_TOK_PIECE_BYTES);
  rt_vocab v;
  int32_t id, i;
  uint32_t previous_end = 0;
  m->tok_vocab = rd_i32(params.p);
  m->tok_unk_id = rd_i32(params.p + 4);
  m->tok_bos_id = rd_i32(params.p + 8);
  m->tok_eos_id = rd_i32(params.p + 12);
  m->tok_byte_fallback = rd_i32(params.p + 16);
  m->tok_add_dummy_prefix = rd_i32(params.p + 20);
  m->tok_remove_extra_whitespaces = rd_i32(params.p + 24);
  m->tok_escape_whitespaces = rd_i32(params.p + 28);
  m->tokenizer_can_encode = rd_i32(params.p + 32);
  for (i = 4; i <= 8; ++i)
    if (rd_i32(params.p + 4 * (size_t)i) != 0 && rd_i32(params.p + 4 * (size_t)i) != 1)
      return fail_i(err, ILLM_RT_E_INVALID, "model.bin: tokenizer flag ", i, " is not 0 or 1");
  v = vocab_of(m);
  if (rd_u32(v.offsets) != 0 || rd_u32(v.offsets + 4 * (size_t)v.vocab) != bytes.rows)
    return fail(err, ILLM_RT_E_INVALID, "model.bin: tokenizer piece offsets do not span the piece bytes");
  for (id = 0; id < v.vocab; ++id) {
    const uint32_t end = rd_u32(v.offsets + 4 * (size_t)id + 4);
    const int type = v.types[id];
    if (end <= previous_end) return fail_i(err, ILLM_RT_E_INVALID, "model.bin: tokenizer piece ", id, " is empty or out of order");
    previous_end = end;
    if (type < PIECE_NORMAL || type > PIECE_BYTE) return fail_i(err, ILLM_RT_E_INVALID, "model.bin: tokenizer piece ", id, " has an unknown type");
  }
  for (i = 0; i < v.vocab; ++i) {
    const uint32_t id_i = rd_u32(v.sorted + 4 * (size_t)i);
    if (id_i >= (uint32_t)v.vocab) return fail_i(err, ILLM_RT_E_INVALID, "model.bin: tokenizer sorted id ", i, " outside the vocabulary");
    if (i > 0) {
      size_t la, lb;
      const uint8_t* a = piece_of(&v, (int32_t)rd_u32(v.sorted + 4 * (size_t)i - 4), &la);
      const uint8_t* b = piece_of(&v, (int32_t)id_i, &lb);
      if (compare_bytes(a, la, b, lb) >= 0)
        return fail_i(err, ILLM_RT_E_INVALID, "model.bin: tokenizer sorted ids are not in strictly increasing piece order at ", i, "");
    }
  }
  for (id = 0; id < v.vocab; ++id) {
    size_t length;
    const uint8_t* piece = piece_of(&v, id, &length);
    if (v.types[id] == PIECE_BYTE && byte_piece_value(piece, length) < 0)
      return fail_i(err, ILLM_RT_E_INVALID, "model.bin: tokenizer BYTE piece ", id, " is not of the form <0xNN>");
  }
  if (m->tok_unk_id < 0 || m->tok_unk_id >= v.vocab || v.types[m->tok_unk_id] != PIECE_UNKNOWN)
    return fail_i(err, ILLM_RT_E_INVALID, "model.bin: tokenizer unk id ", m->tok_unk_id, " is not an UNKNOWN piece");
  if (m->tok_bos_id < -1 || m->tok_bos_id >= v.vocab || m->tok_eos_id < -1 || m->tok_eos_id >= v.vocab)
    return fail(err, ILLM_RT_E_INVALID, "model.bin: tokenizer bos/eos id outside the vocabulary");
  if (m->tok_byte_fallback)
    for (i = 0; i < 256; ++i)
      if (byte_piece_id(&v, i) < 0) return fail_i(err, ILLM_RT_E_INVALID, "model.bin: tokenizer byte_fallback is on but byte piece ", i, " is missing");
  m->has_tokenizer = 1;
  return ILLM_RT_OK;
}

/* Length of the well-formed UTF-8 character at s (no overlongs, no surrogates, <= U+10FFFF), 0 when malformed. */
static size_t valid_utf8_length(const uint8_t* s, size_t n) {
  uint32_t cp;
  if (n == 0) return 0;
  if (s[0] < 0x80) return 1;
  if ((s[0] & 0xE0) == 0xC0 && n >= 2 && (s[1] & 0xC0) == 0x80) {
    cp = ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3Fu);
    return cp >= 0x80 ? 2 : 0;
  }
  if ((s[0] & 0xF0) == 0xE0 && n >= 3 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80) {
    cp = ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3Fu);
    return (cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF)) ? 3 : 0;
  }
  if ((s[0] & 0xF8) == 0xF0 && n >= 4 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80) {
    cp = ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) | ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3Fu);
    return (cp >= 0x10000 && cp <= 0x10FFFF) ? 4 : 0;
  }
  return 0;
}

/* ---- Encoding ---- */

typedef struct {
  int32_t prev, next;
  uint32_t begin, length;
  int32_t rank; /* merge rank of (this, next), or kNoMerge */
} rt_symbol;

#define RT_NO_MERGE INT32_MIN
#define RT_WORK_ALIGN 8u

size_t illm_rt_encode_work_size(size_t text_len) {
  const size_t normalized = 3 * text_len + 3;
  if (text_len > ((size_t)-1) / 64) return 0;
  return normalized + RT_WORK_ALIGN + normalized * sizeof(rt_symbol) + RT_WORK_ALIGN;
}

/* Identity normalization (formats/tokenizer.cpp Tokenizer::normalize without user-defined pieces). */
static size_t normalize(const illm_rt_model* m, const uint8_t* in, size_t n, uint8_t* out) {
  const uint8_t* space = m->tok_escape_whitespaces ? kSpaceSymbol : (const uint8_t*)" ";
  const size_t space_length = m->tok_escape_whitespaces ? 3 : 1;
  size_t length = 0, i;
  int previous_is_space;
  if (n == 0) return 0;
  if (m->tok_remove_extra_whitespaces) {
    while (n > 0 && in[0] == ' ') {
      ++in;
      --n;
    }
    if (n == 0) return 0;
  }
  if (m->tok_add_dummy_prefix)
    for (i = 0; i < space_length; ++i) out[length++] = space[i];
  previous_is_space = m->tok_remove_extra_whitespaces;
  while (n > 0) {
    size_t consumed = valid_utf8_length(in, n), unit_length;
    const uint8_t* unit;
    if (consumed == 0) {
      consumed = 1;
      unit = kReplacement;
      unit_length = 3;
    } else {
      unit = in;
      unit_length = consumed;
    }
    if (previous_is_space)
      while (unit_length > 0 && unit[0] == ' ') {
        ++unit;
        --unit_length;
      }
    if (unit_length > 0) {
      for (i = 0; i < unit_length; ++i) {
        if (unit[i] == ' ' && m->tok_escape_whitespaces) {
          out[length++] = kSpaceSymbol[0];
          out[length++] = kSpaceSymbol[1];
          out[length++] = kSpaceSymbol[2];
        } else {
          out[length++] = unit[i];
        }
      }
      previous_is_space = unit[unit_length - 1] == ' ';
    }
    in += consumed;
    n -= consumed;
    if (!m->tok_remove_extra_whitespaces) previous_is_space = 0;
  }
  if (m->tok_remove_extra_whitespaces)
    while (length >= space_length && compare_bytes(out + length - space_length, space_length, space, space_length) == 0)
      length -= space_length;
  return length;
}

/* Byte length of a UTF-8 character judged by its lead byte (SentencePiece's OneCharLen), clipped. */
static size_t one_char_length(const uint8_t* s, size_t n) {
  static const uint8_t kLengths[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  const size_t length = kLengths[s[0] >> 4];
  return length < n ? length : n;
}

static int32_t merge_rank(const rt_vocab* v, const uint8_t* text, const rt_symbol* symbols, int32_t left) {
  const int32_t right = symbols[left].next;
  int32_t id;
  int type;
  if (right < 0) return RT_NO_MERGE;
  id = find_piece(v, text + symbols[left].begin, symbols[left].length + symbols[right].length);
  if (id < 0) return RT_NO_MERGE;
  type = v->types[id];
  if (type != PIECE_NORMAL && type != PIECE_USER_DEFINED && type != PIECE_UNUSED) return RT_NO_MERGE;
  return rd_i32(v->ranks + 4 * (size_t)id);
}

static int push_id(int32_t* ids, int32_t max_ids, int32_t* n, int32_t id, illm_rt_error* err) {
  if (*n >= max_ids) return fail_i(err, ILLM_RT_E_BUFFER, "encode: more than ", max_ids, " ids (the output buffer's size)");
  ids[(*n)++] = id;
  return ILLM_RT_OK;
}

int illm_rt_encode(const illm_rt_model* m, const char* text, size_t text_len, int add_bos, int32_t* ids,
                   int32_t max_ids, int32_t* n_ids, void* work, size_t work_size, illm_rt_error* err) {
  rt_vocab v;
  uint8_t* normalized;
  rt_symbol* symbols;
  size_t length, pos, misalignment;
  int32_t count = 0, i, previous_is_unknown = 0;
  int status;
  if (!m || (!text && text_len > 0) || !ids || !n_ids || !work) return fail(err, ILLM_RT_E_ARGUMENT, "encode: NULL argument");
  *n_ids = 0;
  if (!m->has_tokenizer) return fail(err, ILLM_RT_E_TOKENIZER, "this model.bin has no tokenizer: give the prompt as token ids");
  if (!m->tokenizer_can_encode)
    return fail(err, ILLM_RT_E_TOKENIZER,
                "this model's tokenizer has USER_DEFINED or UNUSED pieces, which the runtime cannot encode: give the prompt as token ids");
  if (work_size < illm_rt_encode_work_size(text_len) || illm_rt_encode_work_size(text_len) == 0)
    return fail_i(err, ILLM_RT_E_ARENA, "encode: work buffer too small (illm_rt_encode_work_size = ",
                  (int64_t)illm_rt_encode_work_size(text_len), ")");
  v = vocab_of(m);
  if (add_bos) {
    if (m->tok_bos_id < 0) return fail(err, ILLM_RT_E_TOKENIZER, "encode: BOS requested but the tokenizer defines no BOS piece");
    status = push_id(ids, max_ids, &count, m->tok_bos_id, err);
    if (status) return status;
  }
  normalized = (uint8_t*)work;
  length = normalize(m, (const uint8_t*)text, text_len, normalized);
  if (length == 0) {
    *n_ids = count;
    return ILLM_RT_OK;
  }
  misalignment = (size_t)(((uintptr_t)(normalized + length)) % RT_WORK_ALIGN);
  symbols = (rt_symbol*)(void*)(normalized + length + (misalignment ? RT_WORK_ALIGN - misalignment : 0));
  for (pos = 0, i = 0; pos < length; ++i) {
    const size_t char_length = one_char_length(normalized + pos, length - pos);
    symbols[i].prev = i - 1;
    symbols[i].next = pos + char_length < length ? i + 1 : -1;
    symbols[i].begin = (uint32_t)pos;
    symbols[i].length = (uint32_t)char_length;
    pos += char_length;
  }
  for (i = 0; i >= 0; i = symbols[i].next) symbols[i].rank = merge_rank(&v, normalized, symbols, i);

  /* Merge the best pair (highest rank, leftmost among equals) until none is left. */
  for (;;) {
    int32_t best = -1, best_rank = RT_NO_MERGE, right;
    for (i = 0; i >= 0; i = symbols[i].next)
      if (symbols[i].rank != RT_NO_MERGE && (best < 0 || symbols[i].rank > best_rank)) {
        best = i;
        best_rank = symbols[i].rank;
      }
    if (best < 0) break;
    right = symbols[best].next;
    symbols[best].length += symbols[right].length;
    symbols[best].next = symbols[right].next;
    if (symbols[right].next >= 0) symbols[symbols[right].next].prev = best;
    symbols[best].rank = merge_rank(&v, normalized, symbols, best);
    if (symbols[best].prev >= 0) symbols[symbols[best].prev].rank = merge_rank(&v, normalized, symbols, symbols[best].prev);
  }

  /* Emit: unknown pieces become their bytes (byte fallback) or one <unk> per run. */
  for (i = 0; i >= 0; i = symbols[i].next) {
    const uint8_t* piece = normalized + symbols[i].begin;
    int32_t id = find_piece(&v, piece, symbols[i].length);
    if (id < 0) id = m->tok_unk_id;
    if (id == m->tok_unk_id) {
      if (m->tok_byte_fallback) {
        uint32_t b;
        for (b = 0; b < symbols[i].length; ++b) {
          status = push_id(ids, max_ids, &count, byte_piece_id(&v, piece[b]), err);
          if (status) return status;
        }
      } else if (!previous_is_unknown) {
        status = push_id(ids, max_ids, &count, id, err);
        if (status) return status;
      }
      previous_is_unknown = 1;
      continue;
    }
    previous_is_unknown = 0;
    status = push_id(ids, max_ids, &count, id, err);
    if (status) return status;
  }
  *n_ids = count;
  return ok(err);
}

/* ---- Decoding ---- */

int illm_rt_token_is_byte(const illm_rt_model* m, int32_t id) {
  if (!m || !m->has_tokenizer || id < 0 || id >= m->tok_vocab) return 0;
  return tokenizer_tensor(m, ILLM_RT_T_TOK_PIECE_TYPES).p[id] == PIECE_BYTE;
}

typedef struct {
  char* text;
  size_t capacity, length;
  int overflow;
} rt_text;

static void text_add(rt_text* t, const uint8_t* bytes, size_t n) {
  size_t i;
  for (i = 0; i < n; ++i) {
    if (t->length >= t->capacity) {
      t->overflow = 1;
      return;
    }
    t->text[t->length++] = (char)bytes[i];
  }
}

static uint8_t run_byte(const rt_vocab* v, const int32_t* ids, int32_t k) {
  size_t length;
  const uint8_t* piece = piece_of(v, ids[k], &length);
  return (uint8_t)byte_piece_value(piece, length);
}

/* The bytes of the BYTE pieces ids[begin, end) as SentencePiece's decoder writes them: well-formed characters as
 * they are, every other byte as U+FFFD. */
static void text_add_byte_run(rt_text* t, const rt_vocab* v, const int32_t* ids, int32_t begin, int32_t end) {
  int32_t k = begin;
  while (k < end) {
    uint8_t window[4];
    size_t n = 0, length;
    while (n < 4 && k + (int32_t)n < end) {
      window[n] = run_byte(v, ids, k + (int32_t)n);
      ++n;
    }
    length = valid_utf8_length(window, n);
    if (length == 0) {
      text_add(t, kReplacement, 3);
      k += 1;
    } else {
      text_add(t, window, length);
      k += (int32_t)length;
    }
  }
}

static void text_add_piece(rt_text* t, const uint8_t* piece, size_t n) {
  size_t pos = 0;
  while (pos < n) {
    if (n - pos >= 3 && compare_bytes(piece + pos, 3, kSpaceSymbol, 3) == 0) {
      text_add(t, (const uint8_t*)" ", 1);
      pos += 3;
    } else {
      text_add(t, piece + pos, 1);
      pos += 1;
    }
  }
}

int illm_rt_decode(const illm_rt_model* m, const int32_t* ids, int32_t n_ids, char* text, size_t capacity,
                   size_t* length, illm_rt_error* err) {
  rt_vocab v;
  rt_text out;
  int expect_leading_space = 1, consumed_leading_space = 0, strip_leading_space;
  int32_t i, run_begin = -1;
  if (!m || (!ids && n_ids > 0) || !text || !length || n_ids < 0) return fail(err, ILLM_RT_E_ARGUMENT, "decode: bad argument");
  *length = 0;
  if (capacity == 0) return fail(err, ILLM_RT_E_BUFFER, "decode: zero capacity");
  text[0] = '\0';
  if (!m->has_tokenizer) return fail(err, ILLM_RT_E_TOKENIZER, "this model.bin has no tokenizer");
  v = vocab_of(m);
  out.text = text;
  out.capacity = capacity - 1;
  out.length = 0;
  out.overflow = 0;
  strip_leading_space = m->tok_add_dummy_prefix || m->tok_remove_extra_whitespaces;
  for (i = 0; i < n_ids; ++i) {
    const int32_t id = ids[i];
    size_t piece_length;
    const uint8_t* piece;
    if (id < 0 || id >= v.vocab)
      return fail_ii(err, ILLM_RT_E_TOKEN, "decode: token id ", id, " out of the tokenizer's range [0, ", v.vocab, ")");
    piece = piece_of(&v, id, &piece_length);
    if (v.types[id] == PIECE_BYTE) { /* byte pieces are gathered and decoded as UTF-8 together */
      if (run_begin < 0) run_begin = i;
      continue;
    }
    if (run_begin >= 0) text_add_byte_run(&out, &v, ids, run_begin, i);
    run_begin = -1;
    if (consumed_leading_space || out.length > 0) expect_leading_space = 0;
    consumed_leading_space = 0;
    switch (v.types[id]) {
      case PIECE_CONTROL: break;
      case PIECE_UNKNOWN: text_add(&out, v.unk_surface, v.unk_surface_length); break;
      default:
        if (expect_leading_space && strip_leading_space && piece_length >= 3 && compare_bytes(piece, 3, kSpaceSymbol, 3) == 0) {
          piece += 3;
          piece_length -= 3;
          consumed_leading_space = !m->tok_remove_extra_whitespaces;
        }
        text_add_piece(&out, piece, piece_length);
    }
  }
  if (run_begin >= 0) text_add_byte_run(&out, &v, ids, run_begin, n_ids);
  text[out.length] = '\0';
  *length = out.length;
  if (out.overflow) return fail_i(err, ILLM_RT_E_BUFFER, "decode: the text needs more than ", (int64_t)capacity - 1, " bytes");
  return ok(err);
}
