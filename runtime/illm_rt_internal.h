/* Internal helpers shared by the runtime core's files (illm_rt.c, illm_rt_tokenizer.c): one-line error messages
 * without snprintf, little-endian reads, the tensor table. Not part of the public API. */
#ifndef ILLM_RT_INTERNAL_H
#define ILLM_RT_INTERNAL_H

#include "illm_rt.h"
#include "illm_rt_math.h"

/* ============================================================================================================
 * Messages: a tiny formatter (no snprintf, which would pull float formatting into a microcontroller image). */

typedef struct {
  illm_rt_error* err;
  size_t length;
} rt_msg;

static inline rt_msg msg_begin(illm_rt_error* err, int code) {
  rt_msg m;
  m.err = err;
  m.length = 0;
  if (err) {
    err->code = code;
    err->message[0] = '\0';
  }
  return m;
}

static inline void msg_s(rt_msg* m, const char* s) {
  if (!m->err || !s) return;
  while (*s && m->length + 1 < sizeof m->err->message) m->err->message[m->length++] = *s++;
  m->err->message[m->length] = '\0';
}

static inline void msg_i(rt_msg* m, int64_t v) {
  char digits[24];
  int n = 0;
  uint64_t u = rt_abs_u64(v);
  if (!m->err) return;
  do {
    digits[n++] = (char)('0' + (int)(u % 10u));
    u /= 10u;
  } while (u != 0);
  if (v < 0) msg_s(m, "-");
  while (n > 0) {
    char one[2];
    one[0] = digits[--n];
    one[1] = '\0';
    msg_s(m, one);
  }
}

static inline int fail(illm_rt_error* err, int code, const char* text) {
  rt_msg m = msg_begin(err, code);
  msg_s(&m, text);
  return code;
}

/* "<a><v><b>" */
static inline int fail_i(illm_rt_error* err, int code, const char* a, int64_t v, const char* b) {
  rt_msg m = msg_begin(err, code);
  msg_s(&m, a);
  msg_i(&m, v);
  msg_s(&m, b);
  return code;
}

/* "<a><v1><b><v2><c>" */
static inline int fail_ii(illm_rt_error* err, int code, const char* a, int64_t v1, const char* b, int64_t v2, const char* c) {
  rt_msg m = msg_begin(err, code);
  msg_s(&m, a);
  msg_i(&m, v1);
  msg_s(&m, b);
  msg_i(&m, v2);
  msg_s(&m, c);
  return code;
}

static inline int ok(illm_rt_error* err) {
  if (err) {
    err->code = ILLM_RT_OK;
    err->message[0] = '\0';
  }
  return ILLM_RT_OK;
}

/* ============================================================================================================
 * Little-endian reads (byte by byte: any alignment, any host byte order). */

static inline uint16_t rd_u16(const uint8_t* p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t rd_u32(const uint8_t* p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t rd_u64(const uint8_t* p) { return (uint64_t)rd_u32(p) | ((uint64_t)rd_u32(p + 4) << 32); }
static inline int32_t rd_i32(const uint8_t* p) {
  const uint32_t u = rd_u32(p);
  return u <= (uint32_t)INT32_MAX ? (int32_t)u : (int32_t)((int64_t)u - (int64_t)4294967296LL);
}
static inline int16_t rd_i16(const uint8_t* p) {
  const int32_t u = rd_u16(p);
  return (int16_t)(u >= 32768 ? u - 65536 : u);
}
static inline int64_t rd_i64(const uint8_t* p) { return rt_i64_from_bits(rd_u64(p)); }

/* ============================================================================================================
 * Tensor table: the canonical order (illm_rt_format.h) makes every tensor's entry index a formula. */

typedef struct {
  const uint8_t* p;
  uint32_t rows, cols;
  int dtype;
  uint64_t size;
} rt_tensor;

static inline uint32_t global_entry(int kind) { return (uint32_t)(kind - 1); }
static inline uint32_t layer_entry(int32_t layer, int kind) {
  return (uint32_t)ILLM_RT_GLOBAL_TENSORS + (uint32_t)layer * ILLM_RT_LAYER_TENSORS + (uint32_t)(kind - ILLM_RT_T_ATTN_NORM);
}

static inline rt_tensor tensor_at(const illm_rt_model* m, uint32_t index) {
  const uint8_t* e = m->data + (size_t)m->tensor_table + (size_t)index * ILLM_RT_TENSOR_ENTRY_SIZE;
  rt_tensor t;
  t.p = m->data + (size_t)rd_u64(e + ILLM_RT_ENT_OFFSET);
  t.rows = rd_u32(e + ILLM_RT_ENT_ROWS);
  t.cols = rd_u32(e + ILLM_RT_ENT_COLS);
  t.dtype = e[ILLM_RT_ENT_DTYPE];
  t.size = rd_u64(e + ILLM_RT_ENT_SIZE);
  return t;
}

static inline rt_tensor global_tensor(const illm_rt_model* m, int kind) { return tensor_at(m, global_entry(kind)); }
static inline rt_tensor layer_tensor(const illm_rt_model* m, int32_t layer, int kind) {
  return tensor_at(m, layer_entry(layer, kind));
}

static inline rt_tensor tokenizer_tensor(const illm_rt_model* m, int kind) {
  return tensor_at(m, m->tok_first_tensor + (uint32_t)(kind - ILLM_RT_T_TOK_PARAMS));
}

/* Checks the tokenizer tables of a model whose tensor table is already checked and fills model->tok_*
 * (illm_rt_tokenizer.c; called by illm_rt_load). */
int illm_rt_internal_load_tokenizer(illm_rt_model* model, illm_rt_error* err);

/* ============================================================================================================
 * Field names in messages: "layers[3].k_proj.zero_points[7]". */

typedef struct {
  char s[80];
  size_t n;
} rt_name;

static inline void name_add(rt_name* name, const char* text) {
  while (*text && name->n + 1 < sizeof name->s) name->s[name->n++] = *text++;
  name->s[name->n] = '\0';
}

static inline void name_index(rt_name* name, int64_t index) {
  illm_rt_error tmp;
  rt_msg m = msg_begin(&tmp, 0);
  msg_s(&m, "[");
  msg_i(&m, index);
  msg_s(&m, "]");
  name_add(name, tmp.message);
}

static inline rt_name name_of(const char* first) {
  rt_name name;
  name.n = 0;
  name.s[0] = '\0';
  name_add(&name, first);
  return name;
}

static inline rt_name layer_name(int32_t layer, const char* part) {
  rt_name name = name_of("layers");
  name_index(&name, layer);
  name_add(&name, ".");
  name_add(&name, part);
  return name;
}

/* "model.bin: <name><.field>[index] = v outside [lo, hi]" (index < 0: none). */
static inline int fail_range(illm_rt_error* err, int code, const rt_name* name, const char* field, int64_t index, int64_t v,
                      int64_t lo, int64_t hi) {
  rt_msg m = msg_begin(err, code);
  msg_s(&m, "model.bin: ");
  msg_s(&m, name->s);
  msg_s(&m, field);
  if (index >= 0) {
    msg_s(&m, "[");
    msg_i(&m, index);
    msg_s(&m, "]");
  }
  msg_s(&m, " = ");
  msg_i(&m, v);
  msg_s(&m, " outside [");
  msg_i(&m, lo);
  msg_s(&m, ", ");
  msg_i(&m, hi);
  msg_s(&m, "]");
  return code;
}

static inline int check_range(illm_rt_error* err, const char* name, int64_t v, int64_t lo, int64_t hi) {
  rt_name n = name_of(name);
  return (v < lo || v > hi) ? fail_range(err, ILLM_RT_E_INVALID, &n, "", -1, v, lo, hi) : ILLM_RT_OK;
}

#endif /* ILLM_RT_INTERNAL_H */
