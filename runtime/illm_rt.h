/* illm_rt: a dependency-free C99 integer runtime for illm models exported as model.bin (docs/model-bin.md).
 *
 * The core (illm_rt.c, illm_rt_tokenizer.c) has no float or double, no libm, no allocation and no library calls:
 * it works on a caller-provided, read-only model buffer (a file read or mmap-ed into memory, or an array linked into
 * flash) and a caller-provided work arena whose size illm_rt_arena_size() computes (the file header also states it
 * for the full context). Its numerics are those of illm's C++ reference executor (kernels/, docs/integer-semantics.md):
 * the int64 logits, their dyadic scales and the greedy tokens are identical, on every target.
 *
 *   illm_rt_model model;  illm_rt_session session;  illm_rt_error err;
 *   if (illm_rt_load(&model, buffer, size, &err) != ILLM_RT_OK) ... err.message ...
 *   size_t need = illm_rt_arena_size(&model, 0);            (0: the header's default context)
 *   illm_rt_session_init(&session, &model, arena, need, 0, &err);
 *   illm_rt_generate(&session, prompt, n_prompt, max_tokens, out_ids, &result, NULL, NULL, &err);
 *
 * Every function returns ILLM_RT_OK (0) or an error code, and fills `err` (when not NULL) with a one-line message.
 * A failed call never reads outside the model buffer or writes outside the arena and the caller's outputs. */
#ifndef ILLM_RT_H
#define ILLM_RT_H

#include <stddef.h>
#include <stdint.h>

#include "illm_rt_format.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ILLM_RT_FORMAT_VERSION 1u /* the model.bin version this runtime reads */
#define ILLM_RT_HEADER_SIZE 256u
#define ILLM_RT_TENSOR_ENTRY_SIZE 32u
#define ILLM_RT_ALIGNMENT 64u /* every tensor starts at a multiple of this offset */

typedef enum {
  ILLM_RT_OK = 0,
  ILLM_RT_E_ARGUMENT = 1,     /* a NULL pointer or an argument outside its documented range */
  ILLM_RT_E_TRUNCATED = 2,    /* the buffer is shorter than the header or than the file the header describes */
  ILLM_RT_E_MAGIC = 3,        /* not a model.bin file */
  ILLM_RT_E_VERSION = 4,      /* a format version this runtime does not read */
  ILLM_RT_E_CHECKSUM = 5,     /* CRC-32 of the file does not match its header */
  ILLM_RT_E_LAYOUT = 6,       /* tensor table or a tensor outside the file, misaligned, of the wrong type or size */
  ILLM_RT_E_UNSUPPORTED = 7,  /* a feature flag or setting this runtime does not implement */
  ILLM_RT_E_INVALID = 8,      /* a value outside the range the integer pipeline allows (shape, bits, codes, scales) */
  ILLM_RT_E_ARENA = 9,        /* the work arena is smaller than illm_rt_arena_size() */
  ILLM_RT_E_CONTEXT = 10,     /* the prompt or the positions pass the context */
  ILLM_RT_E_TOKEN = 11,       /* a token id outside [0, vocab) */
  ILLM_RT_E_NUMERIC = 12,     /* an intermediate value outside the operators' bounds (the reference executor throws) */
  ILLM_RT_E_TOKENIZER = 13,   /* no tokenizer, or text encoding not supported by this model's tokenizer */
  ILLM_RT_E_BUFFER = 14       /* a caller's output buffer is too small */
} illm_rt_status;

typedef struct {
  int code;           /* an illm_rt_status */
  char message[200];  /* one line, NUL-terminated */
} illm_rt_error;

typedef struct {
  int32_t hidden, intermediate, n_layers, n_heads, n_kv_heads, head_dim, vocab, max_positions, bos_id, eos_id;
} illm_rt_shape;

typedef struct {
  int32_t w_bits, a_bits, mantissa_bits, softmax_in_bits, prob_bits, sigmoid_bits, swiglu_in_bits, norm_frac_bits,
      head_bits, embed_bits, exp_quadratic, sigmoid_stable, paper_conformance;
} illm_rt_settings;

/* A dyadic number m / 2^k (every scale of the integer model is one). */
typedef struct {
  int64_t m;
  int32_t k;
} illm_rt_dyadic;

/* A loaded model: views into the caller's buffer, which must stay valid and unchanged while the model is used. */
typedef struct {
  const uint8_t* data;
  uint64_t size;
  illm_rt_shape shape;
  illm_rt_settings settings;
  int32_t rope_frac_bits;
  int32_t final_norm_exponent;
  illm_rt_dyadic norm_eps;
  uint32_t tensor_count;
  uint64_t tensor_table;       /* offset of the tensor table */
  int32_t default_context;     /* the header's session context (<= shape.max_positions) */
  uint64_t header_arena_bytes; /* the header's arena size for that context (checked against illm_rt_arena_size) */
  uint32_t optional_features;
  uint32_t required_features;  /* ILLM_RT_REQUIRED_* / ILLM_RT_FEATURE_* bits of the header (docs/model-bin.md) */
  uint32_t act_clip_tensor;    /* table index of ILLM_RT_T_ACT_CLIP (required_features & ILLM_RT_FEATURE_ACT_CLIP) */
  uint32_t trip_first_tensor;  /* table index of layer 0's ILLM_RT_T_TRIP (required_features & ILLM_RT_REQUIRED_TRIP) */
  uint32_t hadamard_sites;     /* ILLM_RT_HADAMARD_DOWN | ILLM_RT_HADAMARD_QK (illm_rt_format.h), 0: none */
  /* Tokenizer (optional_features & ILLM_RT_FEATURE_TOKENIZER). */
  int has_tokenizer;
  int tokenizer_can_encode;    /* 0: decode only (the exporter found pieces the runtime's encoder does not handle) */
  int32_t tok_vocab, tok_unk_id, tok_bos_id, tok_eos_id;
  int32_t tok_byte_fallback, tok_add_dummy_prefix, tok_remove_extra_whitespaces, tok_escape_whitespaces;
  uint32_t tok_first_tensor;   /* index of the first tokenizer tensor in the table */
  int32_t act_group_size;      /* G of per-group activations (required_features & ILLM_RT_REQUIRED_ACT_GROUPS), 0: none */
  int32_t head_input_bits;     /* width of the LM head's input codes (2..16): the header's value with
                                  ILLM_RT_REQUIRED_HEAD_INPUT, else settings.head_bits */
  int32_t qkv_bits;            /* width of the Q, K and V codes (2..8; the KV cache holds them): the header's value with
                                  ILLM_RT_REQUIRED_QKV_BITS, else settings.a_bits */
} illm_rt_model;

#define ILLM_RT_FEATURE_TOKENIZER 1u /* optional_features: the file carries a tokenizer */
#define ILLM_RT_FEATURE_ACT_CLIP 4u  /* required_features bit 2: clipped activation requantization (ILLM_RT_T_ACT_CLIP) */

/* One forward pass's output: logit[v] = values[v] * scale.m / 2^scale.k (values live in the session's arena and
 * are overwritten by the next forward call). */
typedef struct {
  const int64_t* values; /* [vocab] */
  illm_rt_dyadic scale;
  int32_t vocab;
} illm_rt_logits;

/* A session: the KV cache and scratch of one sequence, carved from the caller's arena. */
typedef struct {
  const illm_rt_model* model;
  uint8_t* arena;
  size_t arena_size;
  int32_t context;   /* positions this session holds (<= shape.max_positions) */
  int32_t position;  /* tokens in the cache */
  illm_rt_logits logits;
  size_t region[32];  /* byte offsets of the arena regions (illm_rt.c) */
} illm_rt_session;

/* Validates a model.bin buffer: header (magic, version, sizes, feature flags), CRC-32 of the file, the tensor table
 * (every tensor inside the buffer, 64-byte aligned, of the expected type and size), then every value the integer
 * pipeline bounds (the checks of the C++ validate_quantized_model) and the tokenizer tables. */
int illm_rt_load(illm_rt_model* model, const void* buffer, size_t size, illm_rt_error* err);

/* Bytes of arena a session of `context` positions needs (0: the header's default context); 0 when context is outside [1, max_positions]. */
size_t illm_rt_arena_size(const illm_rt_model* model, int32_t context);

/* The same from the shape alone, for a model without per-group activations (what the exporter writes into the
 * header), and from the shape and the act group size G (0: none; G > 0 adds its per-group zero points and scales,
 * ceil(widest block linear input / G) of each: G need not divide the widths). */
size_t illm_rt_arena_size_for_shape(const illm_rt_shape* shape, int32_t context);
size_t illm_rt_arena_size_for_groups(const illm_rt_shape* shape, int32_t act_group_size, int32_t context);

/* Carves a session from the arena (at least illm_rt_arena_size(model, context) bytes; any alignment). */
int illm_rt_session_init(illm_rt_session* session, const illm_rt_model* model, void* arena, size_t arena_size,
                         int32_t context, illm_rt_error* err);

/* Empties the KV cache: the next forward runs at position 0. */
void illm_rt_session_reset(illm_rt_session* session);

/* Runs one token at position session->position, appends its keys and values to the cache and sets
 * session->logits. Errors (token outside the vocabulary, context full, a numeric bound) leave the cache as it was.
 * A prompt of T tokens is T calls: the reference executor's prefill gives identical logits. */
int illm_rt_forward(illm_rt_session* session, int32_t token, illm_rt_error* err);

/* Integer argmax of logits, ties -> lowest id. */
int32_t illm_rt_argmax(const illm_rt_logits* logits);

typedef struct {
  int32_t generated;      /* ids written to out_ids */
  int32_t prompt_tokens;
  int stopped_at_eos;
} illm_rt_generation;

/* Called with each generated id as soon as it is known; return non-zero to stop. */
typedef int (*illm_rt_token_callback)(void* user, int32_t id);

/* Greedy generation as `illm generate` does it: resets the session, runs the prompt (1 <= n_prompt < context),
 * then up to max_tokens greedy ids; an EOS id ends generation (and is not output); generation also ends when the
 * context is full. session->logits then holds the last logits computed (the ones the last id was chosen from). */
int illm_rt_generate(illm_rt_session* session, const int32_t* prompt, int32_t n_prompt, int32_t max_tokens,
                     int32_t* out_ids, illm_rt_generation* result, illm_rt_token_callback callback, void* user,
                     illm_rt_error* err);

/* ---- Tokenizer (illm_rt_tokenizer.c): SentencePiece BPE as the C++ formats/tokenizer.h, token for token ---- */

/* Bytes of work memory illm_rt_encode needs for a text of text_len bytes. */
size_t illm_rt_encode_work_size(size_t text_len);

/* Text -> ids (BOS first when add_bos). Needs a tokenizer that can encode; at most max_ids ids. */
int illm_rt_encode(const illm_rt_model* model, const char* text, size_t text_len, int add_bos, int32_t* ids,
                   int32_t max_ids, int32_t* n_ids, void* work, size_t work_size, illm_rt_error* err);

/* Ids -> UTF-8 text as SentencePiece decodes them; writes at most capacity bytes plus a NUL
 * (ILLM_RT_E_BUFFER when the text does not fit); *length = text bytes. */
int illm_rt_decode(const illm_rt_model* model, const int32_t* ids, int32_t n_ids, char* text, size_t capacity,
                   size_t* length, illm_rt_error* err);

/* 1 when id is a BYTE piece (<0xNN>) of the tokenizer: its text may be part of a multi-byte character. */
int illm_rt_token_is_byte(const illm_rt_model* model, int32_t id);

/* ---- Helpers ---- */

/* CRC-32 (IEEE 802.3, reflected, as zlib's crc32), continued from `crc` (start with 0). */
uint32_t illm_rt_crc32(uint32_t crc, const void* data, size_t size);

/* Name of a status code ("checksum", "arena", ...). */
const char* illm_rt_status_name(int status);

#ifdef __cplusplus
}
#endif

#endif /* ILLM_RT_H */
