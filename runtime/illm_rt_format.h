/* The model.bin layout (docs/model-bin.md), shared by the runtime's loader (illm_rt.c) and illm's writer
 * (formats/model_bin.cpp): header field offsets, tensor kinds in their canonical table order, element types and
 * feature bits. Little-endian throughout. */
#ifndef ILLM_RT_FORMAT_H
#define ILLM_RT_FORMAT_H

/* Header (ILLM_RT_HEADER_SIZE = 256 bytes): byte offsets. */
#define ILLM_RT_H_MAGIC 0               /* 8 bytes "ILLMBIN\0" */
#define ILLM_RT_H_VERSION 8             /* u32 format version */
#define ILLM_RT_H_CRC32 12              /* u32 CRC-32 of bytes [16, file_size) */
#define ILLM_RT_H_FILE_SIZE 16          /* u64 */
#define ILLM_RT_H_HEADER_SIZE 24        /* u32, = 256 */
#define ILLM_RT_H_REQUIRED_FEATURES 28  /* u32: a reader refuses any bit it does not implement */
#define ILLM_RT_H_OPTIONAL_FEATURES 32  /* u32: ILLM_RT_FEATURE_TOKENIZER; unknown bits may be ignored */
#define ILLM_RT_H_TENSOR_COUNT 36       /* u32 */
#define ILLM_RT_H_TENSOR_TABLE 40       /* u64 offset of the table (64-byte aligned) */
#define ILLM_RT_H_SHAPE 48              /* 10 x i32: hidden, intermediate, n_layers, n_heads, n_kv_heads, head_dim,
                                           vocab, max_positions, bos_id, eos_id */
#define ILLM_RT_H_SETTINGS 88           /* 13 x i32: w_bits, a_bits, mantissa_bits, softmax_in_bits, prob_bits,
                                           sigmoid_bits, swiglu_in_bits, norm_frac_bits, head_bits, embed_bits,
                                           exp_quadratic, sigmoid_stable, paper_conformance */
#define ILLM_RT_H_ROPE_FRAC_BITS 140    /* i32 */
#define ILLM_RT_H_NORM_EPS_M 144        /* i64 */
#define ILLM_RT_H_NORM_EPS_K 152        /* i32 */
#define ILLM_RT_H_FINAL_NORM_EXPONENT 156 /* i32 */
#define ILLM_RT_H_CONTEXT 160           /* i32: default context of a session (<= max_positions) */
#define ILLM_RT_H_ARENA_BYTES 168       /* u64: illm_rt_arena_size() for that context */
#define ILLM_RT_H_SOURCE_SHA256 176     /* 32 bytes: SHA-256 of the source .illm file's payload (provenance) */
#define ILLM_RT_H_HADAMARD_SITES 208    /* u32: online Walsh-Hadamard sites (ILLM_RT_HADAMARD_*); 0 unless the required
                                           feature ILLM_RT_REQUIRED_HADAMARD is set */
#define ILLM_RT_H_ACT_GROUP_SIZE 212    /* u32: G of per-group activations (8, 16, 32, 64 or 128) when the required feature
                                           ILLM_RT_REQUIRED_ACT_GROUPS is set, else 0 */
#define ILLM_RT_H_HEAD_INPUT_BITS 216   /* u32: width of the LM head's input codes (the final DI-Norm's output), 2..16,
                                           when the required feature ILLM_RT_REQUIRED_HEAD_INPUT is set, else 0 (the
                                           head's input is head_bits wide) */
#define ILLM_RT_H_QKV_BITS 220          /* u32: width of the attention's Q, K and V codes (the KV cache's), 2..8, when the
                                           required feature ILLM_RT_REQUIRED_QKV_BITS is set, else 0 (a_bits wide) */
/* bytes [224, 256): zero */

#define ILLM_RT_MAGIC_BYTES "ILLMBIN"  /* followed by one NUL: 8 bytes */

/* Required feature bits (a runtime refuses every bit it does not implement; this one implements bits 0 to 6; bit 2 is
 * ILLM_RT_FEATURE_ACT_CLIP in illm_rt.h). */
#define ILLM_RT_REQUIRED_GROUP_SCALES 1u    /* per-group weight scales (issue #12): zero points [out][groups] */
#define ILLM_RT_REQUIRED_HADAMARD 2u        /* online Walsh-Hadamard transforms (docs/model-bin.md) */
#define ILLM_RT_REQUIRED_TRIP 8u            /* TRIP channel factors (ILLM_RT_T_TRIP, docs/model-bin.md) */
#define ILLM_RT_REQUIRED_ACT_GROUPS 16u     /* per-group activations: G at ILLM_RT_H_ACT_GROUP_SIZE (docs/model-bin.md) */
#define ILLM_RT_REQUIRED_HEAD_INPUT 32u     /* LM head input width other than head_bits: at ILLM_RT_H_HEAD_INPUT_BITS */
#define ILLM_RT_REQUIRED_QKV_BITS 64u       /* Q/K/V code width other than a_bits (qkv_bits): at ILLM_RT_H_QKV_BITS */
/* The sites of ILLM_RT_H_HADAMARD_SITES (at least one when ILLM_RT_REQUIRED_HADAMARD is set). */
#define ILLM_RT_HADAMARD_DOWN 1u /* down_proj's input, size intermediate */
#define ILLM_RT_HADAMARD_QK 2u   /* every q and k head after RoPE, size head_dim */

/* Tensor table entry (ILLM_RT_TENSOR_ENTRY_SIZE = 32 bytes): byte offsets. */
#define ILLM_RT_ENT_KIND 0    /* u16 */
#define ILLM_RT_ENT_LAYER 2   /* u16: layer index, 0xFFFF for a tensor of the whole model */
#define ILLM_RT_ENT_DTYPE 4   /* u8 */
#define ILLM_RT_ENT_FLAGS 5   /* u8: 0 in version 1 */
#define ILLM_RT_ENT_ROWS 8    /* u32 */
#define ILLM_RT_ENT_COLS 12   /* u32 */
#define ILLM_RT_ENT_OFFSET 16 /* u64, multiple of 64 */
#define ILLM_RT_ENT_SIZE 24   /* u64 bytes */
#define ILLM_RT_NO_LAYER 0xFFFFu

/* Element types. */
#define ILLM_RT_DT_U8 1
#define ILLM_RT_DT_I8 2
#define ILLM_RT_DT_I16 3
#define ILLM_RT_DT_I32 4
#define ILLM_RT_DT_I64 5
#define ILLM_RT_DT_U4 6  /* two 4-bit codes per byte, low nibble first, each row padded to whole bytes */
#define ILLM_RT_DT_U32 7

/* Tensor kinds. The table lists the model tensors in this order, then 24 per layer, then (with a tokenizer) the 7
 * tokenizer tensors. Dyadic vectors are i32 [n][2] (m, k). */
#define ILLM_RT_T_EMBED_CODES 1         /* i16 [vocab][hidden] (i8 when embed_bits <= 8) */
#define ILLM_RT_T_EMBED_SCALES 2        /* i32 [vocab][2] */
#define ILLM_RT_T_ROPE_COS 3            /* i16 [max_positions][head_dim / 2] */
#define ILLM_RT_T_ROPE_SIN 4            /* i16 [max_positions][head_dim / 2] */
#define ILLM_RT_T_FINAL_NORM 5          /* i32 [hidden] gamma mantissas (exponent in the header) */
#define ILLM_RT_T_LM_HEAD_CODES 6       /* u8 / u4 [vocab][hidden] */
#define ILLM_RT_T_LM_HEAD_ZERO_POINTS 7 /* u8 [vocab][groups] (groups = 1 without ILLM_RT_REQUIRED_GROUP_SCALES) */
#define ILLM_RT_T_LM_HEAD_SCALES 8      /* i32 [vocab * groups][2] */
#define ILLM_RT_T_LAYER_SCALARS 9       /* i64 [n_layers][5]: attn_norm, ffn_norm, swiglu_inv_alpha exponents,
                                           softmax clip m, clip k */
#define ILLM_RT_GLOBAL_TENSORS 9
/* Extension tensors (of the required features that have them, in feature-bit order: act_clip one, TRIP one per
 * layer), after the per-layer tensors and before the tokenizer's. */
#define ILLM_RT_T_ACT_CLIP 10           /* i64 [n_layers][14]: clip ratio (m, k) of the 7 activation sites attn_in, q,
                                           k, v, attn_out, ffn_in, down_in (m = 0: off); required feature bit 2 */
#define ILLM_RT_ACT_CLIP_SITES 7
#define ILLM_RT_T_TRIP 11               /* u8 [5 + 2 hidden + n_heads head_dim + intermediate][1], one per layer (layer
                                           index set): K (0: the layer has none), on/off of the sites attn_in,
                                           attn_out, ffn_in, down_in, then their exponents alpha_c in [0, K] in that
                                           order (zeros for a site that is off); required feature bit 3 */
#define ILLM_RT_TRIP_SITES 4
#define ILLM_RT_TRIP_HEADER 5

#define ILLM_RT_T_ATTN_NORM 16          /* i32 [hidden] */
#define ILLM_RT_T_FFN_NORM 17           /* i32 [hidden] */
#define ILLM_RT_T_SWIGLU_INV_ALPHA 18   /* i32 [intermediate] */
#define ILLM_RT_T_LINEAR_FIRST 19       /* 7 linears (q, k, v, o, gate, up, down) x (codes, zero points, scales) */
#define ILLM_RT_LAYER_TENSORS 24

#define ILLM_RT_T_TOK_PARAMS 64         /* i32 [16]: vocab, unk, bos, eos, byte_fallback, add_dummy_prefix,
                                           remove_extra_whitespaces, escape_whitespaces, can_encode, 0... */
#define ILLM_RT_T_TOK_PIECE_OFFSETS 65  /* u32 [vocab + 1] into TOK_PIECE_BYTES */
#define ILLM_RT_T_TOK_PIECE_BYTES 66    /* u8 [n] */
#define ILLM_RT_T_TOK_PIECE_TYPES 67    /* u8 [vocab]: SentencePiece types 1..6 */
#define ILLM_RT_T_TOK_PIECE_RANKS 68    /* i32 [vocab]: merge priority (score order; higher merges first) */
#define ILLM_RT_T_TOK_SORTED_IDS 69     /* u32 [vocab]: ids in byte-wise order of their pieces */
#define ILLM_RT_T_TOK_UNK_SURFACE 70    /* u8 [n]: text of an unknown piece */
#define ILLM_RT_TOKENIZER_TENSORS 7
#define ILLM_RT_TOK_PARAM_COUNT 16

#define ILLM_RT_LINEARS 7 /* q, k, v, o, gate, up, down */
#define ILLM_RT_LAYER_SCALAR_COUNT 5

#endif /* ILLM_RT_FORMAT_H */
