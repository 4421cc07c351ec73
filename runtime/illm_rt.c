/* illm_rt core: model.bin loader and validation, the integer operators and the forward pass (one token at a time over
 * an integer KV cache), greedy generation. C99, integer-only, freestanding (no library calls, no allocation).
 *
 * Every operator is the C form of the C++ reference of the same name (kernels/requant.cpp, kernels/reference/,
 * kernels/executor.cpp; docs/integer-semantics.md gives the exact definitions): same integer steps, same rounding,
 * same checks. Where the C++ uses __int128 this file uses the exact helpers of illm_rt_math.h. */
#include "illm_rt.h"

#include "illm_rt_internal.h"
#include "illm_rt_math.h"

const char* illm_rt_status_name(int status) {
  switch (status) {
    case ILLM_RT_OK: return "ok";
    case ILLM_RT_E_ARGUMENT: return "argument";
    case ILLM_RT_E_TRUNCATED: return "truncated";
    case ILLM_RT_E_MAGIC: return "magic";
    case ILLM_RT_E_VERSION: return "version";
    case ILLM_RT_E_CHECKSUM: return "checksum";
    case ILLM_RT_E_LAYOUT: return "layout";
    case ILLM_RT_E_UNSUPPORTED: return "unsupported";
    case ILLM_RT_E_INVALID: return "invalid";
    case ILLM_RT_E_ARENA: return "arena";
    case ILLM_RT_E_CONTEXT: return "context";
    case ILLM_RT_E_TOKEN: return "token";
    case ILLM_RT_E_NUMERIC: return "numeric";
    case ILLM_RT_E_TOKENIZER: return "tokenizer";
    case ILLM_RT_E_BUFFER: return "buffer";
    default: return "unknown";
  }
}

/* ============================================================================================================
 * CRC-32 (reflected polynomial 0xEDB88320, as zlib), one table lookup per byte. */

uint32_t illm_rt_crc32(uint32_t crc, const void* data, size_t size) {
  static const uint32_t table[256] = {
      0x00000000u, 0x77073096u, 0xEE0E612Cu, 0x990951BAu, 0x076DC419u, 0x706AF48Fu,
      0xE963A535u, 0x9E6495A3u, 0x0EDB8832u, 0x79DCB8A4u, 0xE0D5E91Eu, 0x97D2D988u,
      0x09B64C2Bu, 0x7EB17CBDu, 0xE7B82D07u, 0x90BF1D91u, 0x1DB71064u, 0x6AB020F2u,
      0xF3B97148u, 0x84BE41DEu, 0x1ADAD47Du, 0x6DDDE4EBu, 0xF4D4B551u, 0x83D385C7u,
      0x136C9856u, 0x646BA8C0u, 0xFD62F97Au, 0x8A65C9ECu, 0x14015C4Fu, 0x63066CD9u,
      0xFA0F3D63u, 0x8D080DF5u, 0x3B6E20C8u, 0x4C69105Eu, 0xD56041E4u, 0xA2677172u,
      0x3C03E4D1u, 0x4B04D447u, 0xD20D85FDu, 0xA50AB56Bu, 0x35B5A8FAu, 0x42B2986Cu,
      0xDBBBC9D6u, 0xACBCF940u, 0x32D86CE3u, 0x45DF5C75u, 0xDCD60DCFu, 0xABD13D59u,
      0x26D930ACu, 0x51DE003Au, 0xC8D75180u, 0xBFD06116u, 0x21B4F4B5u, 0x56B3C423u,
      0xCFBA9599u, 0xB8BDA50Fu, 0x2802B89Eu, 0x5F058808u, 0xC60CD9B2u, 0xB10BE924u,
      0x2F6F7C87u, 0x58684C11u, 0xC1611DABu, 0xB6662D3Du, 0x76DC4190u, 0x01DB7106u,
      0x98D220BCu, 0xEFD5102Au, 0x71B18589u, 0x06B6B51Fu, 0x9FBFE4A5u, 0xE8B8D433u,
      0x7807C9A2u, 0x0F00F934u, 0x9609A88Eu, 0xE10E9818u, 0x7F6A0DBBu, 0x086D3D2Du,
      0x91646C97u, 0xE6635C01u, 0x6B6B51F4u, 0x1C6C6162u, 0x856530D8u, 0xF262004Eu,
      0x6C0695EDu, 0x1B01A57Bu, 0x8208F4C1u, 0xF50FC457u, 0x65B0D9C6u, 0x12B7E950u,
      0x8BBEB8EAu, 0xFCB9887Cu, 0x62DD1DDFu, 0x15DA2D49u, 0x8CD37CF3u, 0xFBD44C65u,
      0x4DB26158u, 0x3AB551CEu, 0xA3BC0074u, 0xD4BB30E2u, 0x4ADFA541u, 0x3DD895D7u,
      0xA4D1C46Du, 0xD3D6F4FBu, 0x4369E96Au, 0x346ED9FCu, 0xAD678846u, 0xDA60B8D0u,
      0x44042D73u, 0x33031DE5u, 0xAA0A4C5Fu, 0xDD0D7CC9u, 0x5005713Cu, 0x270241AAu,
      0xBE0B1010u, 0xC90C2086u, 0x5768B525u, 0x206F85B3u, 0xB966D409u, 0xCE61E49Fu,
      0x5EDEF90Eu, 0x29D9C998u, 0xB0D09822u, 0xC7D7A8B4u, 0x59B33D17u, 0x2EB40D81u,
      0xB7BD5C3Bu, 0xC0BA6CADu, 0xEDB88320u, 0x9ABFB3B6u, 0x03B6E20Cu, 0x74B1D29Au,
      0xEAD54739u, 0x9DD277AFu, 0x04DB2615u, 0x73DC1683u, 0xE3630B12u, 0x94643B84u,
      0x0D6D6A3Eu, 0x7A6A5AA8u, 0xE40ECF0Bu, 0x9309FF9Du, 0x0A00AE27u, 0x7D079EB1u,
      0xF00F9344u, 0x8708A3D2u, 0x1E01F268u, 0x6906C2FEu, 0xF762575Du, 0x806567CBu,
      0x196C3671u, 0x6E6B06E7u, 0xFED41B76u, 0x89D32BE0u, 0x10DA7A5Au, 0x67DD4ACCu,
      0xF9B9DF6Fu, 0x8EBEEFF9u, 0x17B7BE43u, 0x60B08ED5u, 0xD6D6A3E8u, 0xA1D1937Eu,
      0x38D8C2C4u, 0x4FDFF252u, 0xD1BB67F1u, 0xA6BC5767u, 0x3FB506DDu, 0x48B2364Bu,
      0xD80D2BDAu, 0xAF0A1B4Cu, 0x36034AF6u, 0x41047A60u, 0xDF60EFC3u, 0xA867DF55u,
      0x316E8EEFu, 0x4669BE79u, 0xCB61B38Cu, 0xBC66831Au, 0x256FD2A0u, 0x5268E236u,
      0xCC0C7795u, 0xBB0B4703u, 0x220216B9u, 0x5505262Fu, 0xC5BA3BBEu, 0xB2BD0B28u,
      0x2BB45A92u, 0x5CB36A04u, 0xC2D7FFA7u, 0xB5D0CF31u, 0x2CD99E8Bu, 0x5BDEAE1Du,
      0x9B64C2B0u, 0xEC63F226u, 0x756AA39Cu, 0x026D930Au, 0x9C0906A9u, 0xEB0E363Fu,
      0x72076785u, 0x05005713u, 0x95BF4A82u, 0xE2B87A14u, 0x7BB12BAEu, 0x0CB61B38u,
      0x92D28E9Bu, 0xE5D5BE0Du, 0x7CDCEFB7u, 0x0BDBDF21u, 0x86D3D2D4u, 0xF1D4E242u,
      0x68DDB3F8u, 0x1FDA836Eu, 0x81BE16CDu, 0xF6B9265Bu, 0x6FB077E1u, 0x18B74777u,
      0x88085AE6u, 0xFF0F6A70u, 0x66063BCAu, 0x11010B5Cu, 0x8F659EFFu, 0xF862AE69u,
      0x616BFFD3u, 0x166CCF45u, 0xA00AE278u, 0xD70DD2EEu, 0x4E048354u, 0x3903B3C2u,
      0xA7672661u, 0xD06016F7u, 0x4969474Du, 0x3E6E77DBu, 0xAED16A4Au, 0xD9D65ADCu,
      0x40DF0B66u, 0x37D83BF0u, 0xA9BCAE53u, 0xDEBB9EC5u, 0x47B2CF7Fu, 0x30B5FFE9u,
      0xBDBDF21Cu, 0xCABAC28Au, 0x53B39330u, 0x24B4A3A6u, 0xBAD03605u, 0xCDD70693u,
      0x54DE5729u, 0x23D967BFu, 0xB3667A2Eu, 0xC4614AB8u, 0x5D681B02u, 0x2A6F2B94u,
      0xB40BBE37u, 0xC30C8EA1u, 0x5A05DF1Bu, 0x2D02EF8Du};
  const uint8_t* p = (const uint8_t*)data;
  size_t i;
  crc = ~crc;
  for (i = 0; i < size; ++i) crc = (crc >> 8) ^ table[(crc ^ p[i]) & 0xFFu];
  return ~crc;
}

/* A linear layer's weights (y = x W^T, W[r][c] = scale[r][c/G] (code[r][c] - zero_point[r][c/G])): one zero point
 * and scale per row (groups = 1, G = in), or per group of G consecutive columns (required feature bit 0). */
typedef struct {
  const uint8_t* codes;        /* [out][row_bytes] */
  const uint8_t* zero_points;  /* u8 [out][groups] */
  const uint8_t* scales;       /* i32 [out * groups][2] */
  int32_t out, in, bits;
  int32_t groups, group;       /* groups per row and G = in / groups */
  int packed;                  /* two codes per byte */
  size_t row_bytes;
} rt_linear;

static const char* const kLinearNames[ILLM_RT_LINEARS] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                         "gate_proj", "up_proj", "down_proj"};
enum { LIN_Q = 0, LIN_K, LIN_V, LIN_O, LIN_GATE, LIN_UP, LIN_DOWN };

static rt_linear make_linear(rt_tensor codes, rt_tensor zero_points, rt_tensor scales, int32_t bits) {
  rt_linear w;
  w.codes = codes.p;
  w.zero_points = zero_points.p;
  w.scales = scales.p;
  w.out = (int32_t)codes.rows;
  w.in = (int32_t)codes.cols;
  w.bits = bits;
  w.groups = zero_points.cols >= 1 ? (int32_t)zero_points.cols : 1; /* checked at load (check_table) */
  w.group = w.in / w.groups;
  w.packed = codes.dtype == ILLM_RT_DT_U4;
  w.row_bytes = w.packed ? ((size_t)w.in + 1) / 2 : (size_t)w.in;
  return w;
}

static rt_linear layer_linear(const illm_rt_model* m, int32_t layer, int which) {
  const int base = ILLM_RT_T_LINEAR_FIRST + 3 * which;
  return make_linear(layer_tensor(m, layer, base), layer_tensor(m, layer, base + 1), layer_tensor(m, layer, base + 2),
                     m->settings.w_bits);
}

static rt_linear head_linear(const illm_rt_model* m) {
  return make_linear(global_tensor(m, ILLM_RT_T_LM_HEAD_CODES), global_tensor(m, ILLM_RT_T_LM_HEAD_ZERO_POINTS),
                     global_tensor(m, ILLM_RT_T_LM_HEAD_SCALES), m->settings.head_bits);
}

static int32_t weight_code(const rt_linear* w, int32_t row, int32_t col) {
  const uint8_t* r = w->codes + (size_t)row * w->row_bytes;
  return w->packed ? (r[col >> 1] >> ((col & 1) * 4)) & 15 : r[col];
}

static illm_rt_dyadic dyadic_at(const uint8_t* pairs, size_t i) {
  illm_rt_dyadic d;
  d.m = rd_i32(pairs + 8 * i);
  d.k = rd_i32(pairs + 8 * i + 4);
  return d;
}

/* Layer scalars: attn_norm, ffn_norm and swiglu_inv_alpha exponents, softmax clip (m, k). */
static int64_t layer_scalar(const illm_rt_model* m, int32_t layer, int index) {
  return rd_i64(global_tensor(m, ILLM_RT_T_LAYER_SCALARS).p + 8 * ((size_t)layer * ILLM_RT_LAYER_SCALAR_COUNT + index));
}

/* Activation sites of a layer whose DI_REQUANT may be clipped (kernels/quantized_model.h ActClipSite order). */
enum { SITE_ATTN_IN = 0, SITE_Q, SITE_K, SITE_V, SITE_ATTN_OUT, SITE_FFN_IN, SITE_DOWN_IN };

static const illm_rt_dyadic kNoClip = {0, 0};

/* The clip ratio m / 2^k of one site's requantization (m = 0: off, and always off without the feature). */
static illm_rt_dyadic layer_clip(const illm_rt_model* m, int32_t layer, int site) {
  illm_rt_dyadic c = kNoClip;
  if (m->required_features & ILLM_RT_FEATURE_ACT_CLIP) {
    const uint8_t* p = tensor_at(m, m->act_clip_tensor).p + 8 * (2 * ((size_t)layer * ILLM_RT_ACT_CLIP_SITES + site));
    c.m = rd_i64(p);
    c.k = (int32_t)rd_i64(p + 8);
  }
  return c;
}

/* TRIP channel factors of one site (required feature bit 3): alpha = NULL when the site has none. */
typedef struct {
  const uint8_t* alpha; /* [n] in [0, max_shift] */
  int32_t max_shift;    /* K */
  int32_t extra_bits;   /* E = K - min alpha: the consumer's codes are E bits wider */
} rt_trip;

enum { TRIP_ATTN_IN = 0, TRIP_ATTN_OUT, TRIP_FFN_IN, TRIP_DOWN_IN };
static const rt_trip kNoTrip = {0, 0, 0};

/* Offset of a site's exponents in the layer's ILLM_RT_T_TRIP tensor and its channel count. */
static size_t trip_site_offset(const illm_rt_shape* S, int site, size_t* width) {
  const size_t hidden = (size_t)S->hidden, q_width = (size_t)S->n_heads * (size_t)S->head_dim;
  const size_t widths[ILLM_RT_TRIP_SITES] = {hidden, q_width, hidden, (size_t)S->intermediate};
  size_t offset = ILLM_RT_TRIP_HEADER;
  int i;
  for (i = 0; i < site; ++i) offset += widths[i];
  *width = widths[site];
  return offset;
}

static rt_trip layer_trip(const illm_rt_model* m, int32_t layer, int site) {
  rt_trip t;
  t.alpha = 0;
  t.max_shift = 0;
  t.extra_bits = 0;
  if (m->required_features & ILLM_RT_REQUIRED_TRIP) {
    const uint8_t* p = tensor_at(m, m->trip_first_tensor + (uint32_t)layer).p;
    size_t width, c;
    const size_t offset = trip_site_offset(&m->shape, site, &width);
    if (p[0] != 0 && p[1 + site] != 0) {
      int32_t lowest = p[0];
      t.alpha = p + offset;
      t.max_shift = p[0];
      for (c = 0; c < width; ++c)
        if (t.alpha[c] < lowest) lowest = t.alpha[c];
      t.extra_bits = t.max_shift - lowest;
    }
  }
  return t;
}

/* ============================================================================================================
 * DI_REQUANT (kernels/requant.cpp): dynamic per-row requantization with a dyadic scale found by integer steps. */

typedef enum { CODES_U8, CODES_U16, CODES_I16, CODES_I32 } rt_code_kind;

static void store_code(void* out, rt_code_kind kind, size_t j, int64_t v) {
  switch (kind) {
    case CODES_U8: ((uint8_t*)out)[j] = (uint8_t)v; break;
    case CODES_U16: ((uint16_t*)out)[j] = (uint16_t)v; break;
    case CODES_I16: ((int16_t*)out)[j] = (int16_t)v; break;
    default: ((int32_t*)out)[j] = (int32_t)v; break;
  }
}

typedef struct {
  int64_t zero_point;
  illm_rt_dyadic scale;
} rt_requant;

typedef struct {
  illm_rt_dyadic scale;
  int64_t multiplier;  /* A ~ q_out 2^F / R' */
  int fraction_bits;   /* F */
} rt_conversion;

static int64_t convert(const rt_conversion* c, int64_t x) { return rt_rshr(rt_mul(x, c->multiplier), c->fraction_bits); }

static int requant_fail(illm_rt_error* err) {
  return fail(err, ILLM_RT_E_NUMERIC, "DI_REQUANT: intermediate value outside its bounds");
}

/* plan_row of kernels/requant.cpp. */
static int plan_row(int64_t range, int64_t m_in, int64_t k_shifted, int64_t q_out, int out_bits, int mantissa_bits,
                    rt_conversion* c, illm_rt_error* err) {
  const int64_t scaled_range = m_in * range; /* < 2^31 (2^31 + 1) < 2^62 */
  const int64_t max_mantissa = ((int64_t)1 << mantissa_bits) - 1;
  const int e = rt_flog2_ratio(max_mantissa * q_out, scaled_range);
  const rt_u128 sr = rt_u128_from((uint64_t)scaled_range), q = rt_u128_from((uint64_t)q_out);
  rt_u128 m_y, a, numerator, denominator;
  int shift;
  int64_t k_y;
  /* Ceiling: the emitted scale is >= the exact one, so codes never exceed q_out. */
  m_y = e >= 0 ? rt_u128_cdiv(rt_u128_shl(sr, e), q) : rt_u128_cdiv(sr, rt_u128_shl(q, -e));
  if (!rt_u128_fits_i64(m_y) || rt_u128_is_zero(m_y)) return requant_fail(err);
  k_y = k_shifted + e;
  if (k_y < INT32_MIN || k_y > INT32_MAX) return requant_fail(err);
  c->scale.m = (int64_t)m_y.lo;
  c->scale.k = (int32_t)k_y;
  c->fraction_bits = 61 - out_bits;
  shift = c->fraction_bits + e;
  numerator = rt_u128_from((uint64_t)m_in);
  denominator = m_y;
  if (shift >= 0) {
    if (rt_msb((uint64_t)m_in) + shift > 126) return requant_fail(err);
    numerator = rt_u128_shl(numerator, shift);
  } else {
    if (rt_u128_msb(m_y) - shift > 126) return requant_fail(err);
    denominator = rt_u128_shl(denominator, -shift);
  }
  a = rt_u128_rdiv(numerator, denominator);
  if (!rt_u128_fits_i64(a)) return requant_fail(err);
  c->multiplier = (int64_t)a.lo;
  return ILLM_RT_OK;
}

static int check_requant_arguments(const char* op, int64_t m_in, int out_bits, int min_bits, int max_bits,
                                   int mantissa_bits, illm_rt_error* err) {
  rt_msg m;
  if (out_bits < min_bits || out_bits > max_bits) {
    m = msg_begin(err, ILLM_RT_E_NUMERIC);
    msg_s(&m, op);
    msg_s(&m, ": out_bits ");
    msg_i(&m, out_bits);
    msg_s(&m, " outside its range");
    return ILLM_RT_E_NUMERIC;
  }
  if (mantissa_bits < 1 || mantissa_bits > 24) {
    m = msg_begin(err, ILLM_RT_E_NUMERIC);
    msg_s(&m, op);
    msg_s(&m, ": mantissa_bits outside [1, 24]");
    return ILLM_RT_E_NUMERIC;
  }
  if (m_in < 1 || m_in >= ((int64_t)1 << 31)) {
    m = msg_begin(err, ILLM_RT_E_NUMERIC);
    msg_s(&m, op);
    msg_s(&m, ": input mantissa ");
    msg_i(&m, m_in);
    msg_s(&m, " outside [1, 2^31)");
    return ILLM_RT_E_NUMERIC;
  }
  return ILLM_RT_OK;
}

/* Widest code a code array holds: 8 (uint8 / int8), 16 (uint16 / int16) or 31 (int32). */
static int max_code_bits(rt_code_kind kind) { return kind == CODES_U8 ? 8 : (kind == CODES_I32 ? 31 : 16); }

/* Unsigned per-row codes of a linear's input: one byte each up to 8 bits, else (the LM head's input of up to 16
 * bits) u16 wide codes, which the DI-MatMul reads through wide_products. */
static rt_code_kind input_code_kind(int bits) { return bits > 8 ? CODES_U16 : CODES_U8; }

/* An all-zero row: codes 0, zero point 0, scale (1, 0). */
static int zero_row(void* codes, rt_code_kind kind, size_t n, rt_requant* result) {
  size_t j;
  for (j = 0; j < n; ++j) store_code(codes, kind, j, 0);
  result->zero_point = 0;
  result->scale.m = 1;
  result->scale.k = 0;
  return ILLM_RT_OK;
}

/* rshr(x·m, k) of x <= 2^63 (unsigned) and a ratio m / 2^k <= 1 (m <= 2^30, k <= 30): the 128-bit product rounded
 * half up; the result is <= x. */
static uint64_t scale_by_ratio(uint64_t x, illm_rt_dyadic r) {
  rt_u128 p = rt_u128_mul64(x, (uint64_t)r.m);
  if (r.k > 0) p = rt_u128_shr(rt_u128_add(p, rt_u128_shl(rt_u128_from(1), r.k - 1)), r.k);
  return p.lo;
}

/* The plan of one row's asymmetric DI_REQUANT (plan_requant of kernels/requant.cpp): normalization, conversion,
 * zero point and saturation window; zero_range for an all-zero (range) row. */
typedef struct {
  int zero_range;
  int normalize;
  rt_conversion conv;
  int64_t zero_point, q_out, y_min, y_max;
} rt_requant_plan;

static int plan_requant(const int64_t* v, size_t n, int64_t m_in, int64_t k_in, int out_bits, int mantissa_bits,
                        illm_rt_dyadic clip, rt_requant_plan* p, illm_rt_error* err) {
  int64_t lo = 0, hi = 0, lo_n, hi_n, range_n;
  uint64_t range;
  int status;
  size_t j;
  p->zero_range = 0;
  p->y_min = INT64_MIN;
  p->y_max = INT64_MAX;
  for (j = 0; j < n; ++j) {
    if (v[j] < lo) lo = v[j];
    if (v[j] > hi) hi = v[j];
  }
  if (clip.m != 0) {
    const uint64_t hi_c = scale_by_ratio((uint64_t)hi, clip), neg_lo_c = scale_by_ratio(rt_abs_u64(lo), clip);
    if (hi_c != 0 || neg_lo_c != 0) {
      hi = (int64_t)hi_c;
      lo = rt_i64_from_bits((uint64_t)0 - neg_lo_c);
    } else {
      clip = kNoClip; /* never clip a row to nothing */
    }
  }
  range = (uint64_t)hi - (uint64_t)lo; /* hi >= 0 >= lo */
  if (range == 0) {
    p->zero_range = 1;
    return ILLM_RT_OK;
  }
  p->normalize = rt_msb(range) - 30;
  if (p->normalize < 0) p->normalize = 0;
  lo_n = rt_rshr(lo, p->normalize);
  hi_n = rt_rshr(hi, p->normalize);
  range_n = hi_n - lo_n;
  if (range_n < 1) range_n = 1;
  p->q_out = ((int64_t)1 << out_bits) - 1;
  status = plan_row(range_n, m_in, k_in - p->normalize, p->q_out, out_bits, mantissa_bits, &p->conv, err);
  if (status) return status;
  p->zero_point = -convert(&p->conv, lo_n);
  if (clip.m != 0) {
    const int64_t one = (int64_t)1 << p->conv.fraction_bits, half = one >> 1;
    p->y_max = -rt_fdiv(-((p->q_out - p->zero_point) * one - half), p->conv.multiplier); /* cdiv */
    p->y_min = rt_fdiv((1 - p->zero_point) * one - half - 1, p->conv.multiplier);
  }
  return ILLM_RT_OK;
}

/* Asymmetric DI_REQUANT: row v (real v_j m_in / 2^k_in) -> codes in [0, 2^out_bits - 1], zero point, dyadic. With
 * clip.m != 0 the range [lo, hi] becomes [-rshr(-lo m, k), rshr(hi m, k)] unless that is empty, and every value is
 * first clamped to the saturation window [y_min, y_max] (docs/integer-semantics.md "## Clipped DI_REQUANT"). */
static int di_requant(const int64_t* v, size_t n, int64_t m_in, int64_t k_in, int out_bits, int mantissa_bits,
                      void* codes, rt_code_kind kind, rt_requant* result, illm_rt_error* err, illm_rt_dyadic clip) {
  rt_requant_plan p;
  size_t j;
  int status = check_requant_arguments("DI_REQUANT", m_in, out_bits, 1, max_code_bits(kind), mantissa_bits, err);
  if (!status) status = plan_requant(v, n, m_in, k_in, out_bits, mantissa_bits, clip, &p, err);
  if (status) return status;
  if (p.zero_range) return zero_row(codes, kind, n, result);
  for (j = 0; j < n; ++j)
    store_code(codes, kind, j,
               rt_sat(rt_add(convert(&p.conv, rt_sat(rt_rshr(v[j], p.normalize), p.y_min, p.y_max)), p.zero_point), 0,
                      p.q_out));
  result->zero_point = p.zero_point;
  result->scale = p.conv.scale;
  return ILLM_RT_OK;
}

/* DI_REQUANT with TRIP channel factors (kernels/trip_requant.cpp, docs/integer-semantics.md "## TRIP channel
 * factors"): the row's plan, channel c at a 2^(K - alpha_c) finer step, stored re-aligned as out_bits + E bit codes
 *   X_c = (Y_c - z) 2^(alpha_c - min alpha) + z 2^E,  zero point z 2^E, scale (m_y, k_y + E). */
static int di_requant_trip(const int64_t* v, size_t n, int64_t m_in, int64_t k_in, int out_bits, int mantissa_bits,
                           uint16_t* codes, rt_requant* result, illm_rt_error* err, illm_rt_dyadic clip, rt_trip trip) {
  rt_requant_plan p;
  size_t j;
  const int32_t alpha_min = trip.max_shift - trip.extra_bits;
  int status = check_requant_arguments("DI_REQUANT", m_in, out_bits, 1, 16, mantissa_bits, err);
  if (status) return status;
  if (out_bits + trip.extra_bits > 16) return fail(err, ILLM_RT_E_NUMERIC, "DI_REQUANT: TRIP codes exceed 16 bits");
  status = plan_requant(v, n, m_in, k_in, out_bits, mantissa_bits, clip, &p, err);
  if (status) return status;
  if (p.zero_range) { /* the C++ default plan: codes 0, zero point 0, scale (1, E) */
    for (j = 0; j < n; ++j) codes[j] = 0;
    result->zero_point = 0;
    result->scale.m = 1;
    result->scale.k = trip.extra_bits;
    return ILLM_RT_OK;
  }
  for (j = 0; j < n; ++j) {
    const int refine = trip.max_shift - trip.alpha[j]; /* F - refine >= 61 - 16 - 8 */
    const int64_t y = rt_sat(rt_rshr(v[j], p.normalize), p.y_min, p.y_max);
    const int64_t code =
        rt_sat(rt_add(rt_rshr(rt_mul(y, p.conv.multiplier), p.conv.fraction_bits - refine), p.zero_point), 0, p.q_out);
    codes[j] = (uint16_t)((code - p.zero_point) * ((int64_t)1 << (trip.alpha[j] - alpha_min)) +
                          p.zero_point * ((int64_t)1 << trip.extra_bits));
  }
  result->zero_point = p.zero_point * ((int64_t)1 << trip.extra_bits);
  result->scale.m = p.conv.scale.m;
  result->scale.k = p.conv.scale.k + trip.extra_bits;
  return ILLM_RT_OK;
}

/* Symmetric DI_REQUANT_SYM (section 7.2): codes in [-Q, Q], Q = 2^(out_bits-1) - 1, zero point 0. */
static int di_requant_symmetric(const int64_t* v, size_t n, int64_t m_in, int64_t k_in, int out_bits,
                                int mantissa_bits, void* codes, rt_code_kind kind, rt_requant* result,
                                illm_rt_error* err) {
  uint64_t max_abs = 0, half;
  int64_t range_n, q_out;
  int normalize, status;
  size_t j;
  rt_conversion conv;
  status = check_requant_arguments("DI_REQUANT_SYM", m_in, out_bits, 2, max_code_bits(kind), mantissa_bits, err);
  if (status) return status;
  for (j = 0; j < n; ++j) {
    const uint64_t a = rt_abs_u64(v[j]);
    if (a > max_abs) max_abs = a;
  }
  if (max_abs == 0) return zero_row(codes, kind, n, result);
  normalize = rt_msb(max_abs) - 30;
  if (normalize < 0) normalize = 0;
  half = normalize > 0 ? (uint64_t)1 << (normalize - 1) : 0;
  range_n = (int64_t)((max_abs + half) >> normalize);
  if (range_n < 1) range_n = 1;
  q_out = ((int64_t)1 << (out_bits - 1)) - 1;
  status = plan_row(range_n, m_in, k_in - normalize, q_out, out_bits, mantissa_bits, &conv, err);
  if (status) return status;
  for (j = 0; j < n; ++j) store_code(codes, kind, j, rt_sat(convert(&conv, rt_rshr(v[j], normalize)), -q_out, q_out));
  result->zero_point = 0;
  result->scale = conv.scale;
  return ILLM_RT_OK;
}

/* ============================================================================================================
 * Per-group activations (kernels/activation_groups.cpp, docs/integer-semantics.md "## Per-group activations"): the
 * input of a block linear with one zero point and dyadic per (token, group of G channels). A row of n channels has
 * ceil(n / G) groups, channels g G .. min(g G + G, n) - 1: when G does not divide n the last group is short (n mod G
 * channels) and is quantized and multiplied over its own channels only. The DI-MatMul needs of each group only its
 * zero point z_g and its mantissa aligned to the row's coarsest group, lambda_g = rshr(m_g, k_g - K1) with
 * K1 = min k_g over the groups that are not all-zero (scale (1, 0)), 0 for an all-zero group; the site stores those
 * and K1 (as the row's scale (1, K1)). */

typedef struct {
  int32_t size;         /* G; 0: per-row codes */
  int32_t* zero_points; /* [ceil(n / G)] z_g */
  int32_t* lambdas;     /* [ceil(n / G)] m_g, then lambda_g */
  int32_t* exponents;   /* [ceil(n / G)] k_g, then the DI-MatMul's centered group sums (rt_row.group_sums) */
  int32_t* wide;        /* [n] scratch: the site's 16-bit per-row codes */
} rt_act_groups;

static const rt_act_groups kNoActGroups = {0, 0, 0, 0, 0};

/* Channels of group g of a row of n channels in groups of G (G for all but a short last group). */
static size_t act_group_width(size_t n, size_t G, size_t g) { return n - g * G < G ? n - g * G : G; }

/* DI_REQUANT of every group of v (real v_c m_in / 2^k_in) to out_bits codes with the site's clip, then the alignment
 * above; result = (zero point 0, scale (1, K1)). A short group's DI_REQUANT over its own channels is the executor's
 * over the group padded with its last value (DI_REQUANT depends on the values only through min and max). */
static int di_requant_groups(const int64_t* v, size_t n, int64_t m_in, int64_t k_in, int out_bits, int mantissa_bits,
                             uint8_t* codes, const rt_act_groups* groups, illm_rt_dyadic clip, rt_requant* result,
                             illm_rt_error* err) {
  const size_t G = (size_t)groups->size, count = (n + G - 1) / G;
  int32_t k1 = 0;
  int any = 0, status;
  size_t g;
  for (g = 0; g < count; ++g) {
    rt_requant r;
    status = di_requant(v + g * G, act_group_width(n, G, g), m_in, k_in, out_bits, mantissa_bits, codes + g * G,
                        CODES_U8, &r, err, clip);
    if (status) return status;
    groups->zero_points[g] = (int32_t)r.zero_point;
    groups->lambdas[g] = (int32_t)r.scale.m; /* < 2^mantissa_bits */
    groups->exponents[g] = r.scale.k;
    if (r.scale.m == 1 && r.scale.k == 0) continue; /* all-zero: left out of K1 */
    if (!any || r.scale.k < k1) k1 = r.scale.k;
    any = 1;
  }
  for (g = 0; g < count; ++g) {
    const int64_t shift = (int64_t)groups->exponents[g] - k1; /* >= 0 */
    groups->lambdas[g] = (groups->lambdas[g] == 1 && groups->exponents[g] == 0)
                             ? 0
                             : (int32_t)rt_rshr(groups->lambdas[g], shift > 64 ? 64 : (int)shift);
  }
  result->zero_point = 0;
  result->scale.m = 1;
  result->scale.k = k1;
  return ILLM_RT_OK;
}

/* The requantization that ends a linear's input site (attn_in and ffn_in DI-Norm, the attention output, DI-SwiGLU,
 * the final DI-Norm) of a row v (real v_c m_in / 2^k_in; consumed): per row to out_bits codes (u8, or with TRIP
 * factors or more than 8 bits u16 wide codes); with per-group activations the site's operator at 16 bits without
 * clip, its codes centered, then every group to out_bits (di_requant_groups). */
static int site_requant(int64_t* v, size_t n, int64_t m_in, int64_t k_in, int out_bits, int mantissa_bits, void* codes,
                        rt_requant* result, illm_rt_dyadic clip, rt_trip trip, const rt_act_groups* groups,
                        illm_rt_error* err) {
  rt_requant wide;
  size_t c;
  int status;
  if (trip.alpha) /* never with per-group activations (refused at load) */
    return di_requant_trip(v, n, m_in, k_in, out_bits, mantissa_bits, (uint16_t*)codes, result, err, clip, trip);
  if (groups->size == 0)
    return di_requant(v, n, m_in, k_in, out_bits, mantissa_bits, codes, input_code_kind(out_bits), result, err, clip);
  status = di_requant(v, n, m_in, k_in, 16, mantissa_bits, groups->wide, CODES_I32, &wide, err, kNoClip);
  if (status) return status;
  for (c = 0; c < n; ++c) v[c] = (int64_t)groups->wide[c] - wide.zero_point;
  return di_requant_groups(v, n, wide.scale.m, wide.scale.k, out_bits, mantissa_bits, (uint8_t*)codes, groups, clip,
                           result, err);
}

/* ============================================================================================================
 * Column alignment (kernels/reference/di_matmul.cpp align_columns): K2 = min(max_j k_j, min_j k_j + 24 - b_m),
 * mu_j = shl(m_j, K2 - k_j) or rshr(m_j, k_j - K2); every mu_j < 2^24. */

#define RT_ALIGNED_MANTISSA_BITS 24

/* Scales come either from the model buffer (i32 pairs) or from the KV cache (separate m and k arrays). */
typedef struct {
  const uint8_t* pairs; /* i32 [n][2], or NULL */
  const int32_t* m;
  const int32_t* k;
} rt_scales;

static illm_rt_dyadic scale_at(const rt_scales* s, size_t j) {
  illm_rt_dyadic d;
  if (s->pairs) return dyadic_at(s->pairs, j);
  d.m = s->m[j];
  d.k = s->k[j];
  return d;
}

static int32_t alignment_exponent(const rt_scales* s, size_t n, int mantissa_bits) {
  int32_t k_min, k_max;
  size_t j;
  int64_t capped;
  if (n == 0) return 0;
  k_min = k_max = scale_at(s, 0).k;
  for (j = 1; j < n; ++j) {
    const int32_t k = scale_at(s, j).k;
    if (k < k_min) k_min = k;
    if (k > k_max) k_max = k;
  }
  capped = (int64_t)k_min + RT_ALIGNED_MANTISSA_BITS - mantissa_bits;
  return (int32_t)(k_max < capped ? k_max : capped);
}

/* mu_j for exponent K2; -1 when m_j is outside [0, 2^24) or mu_j reaches 2^24 (the reference throws). */
static int64_t aligned_mantissa(illm_rt_dyadic d, int32_t exponent) {
  const int64_t shift = (int64_t)exponent - d.k;
  int64_t mu;
  if (d.m < 0 || d.m >= ((int64_t)1 << RT_ALIGNED_MANTISSA_BITS)) return -1;
  mu = shift >= 0 ? rt_shl(d.m, shift > 63 ? 64 : (int)shift) : rt_rshr(d.m, (int)(-shift < 64 ? -shift : 64));
  return (mu < 0 || mu >= ((int64_t)1 << RT_ALIGNED_MANTISSA_BITS)) ? -1 : mu;
}

static int alignment_fail(illm_rt_error* err, const char* what, size_t column, int64_t m, int mantissa_bits) {
  rt_msg msg = msg_begin(err, ILLM_RT_E_INVALID);
  msg_s(&msg, what);
  msg_s(&msg, ": column ");
  msg_i(&msg, (int64_t)column);
  msg_s(&msg, " mantissa ");
  msg_i(&msg, m);
  msg_s(&msg, " has more than ");
  msg_i(&msg, mantissa_bits);
  msg_s(&msg, " bits or is outside [0, 2^24): aligned value reaches 2^24");
  return ILLM_RT_E_INVALID;
}

/* ============================================================================================================
 * DI-MatMul of one input row with a linear layer: the aligned accumulator P'_j = P_j mu_j,
 * P_j = sum_c (x_c - z1)(w_jc - z2_j), int32 when the section 3.6 bound holds, else int64 (exact either way). */

typedef struct {
  const uint8_t* codes;       /* [n], or NULL when wide_codes holds the row */
  const uint16_t* wide_codes; /* [n] codes wider than 8 bits (a TRIP site's or a wide LM head input), else NULL */
  int32_t bits;
  int64_t zero_point;
  illm_rt_dyadic scale;       /* per-group activations: (1, K1), the exponent of the row's coarsest group */
  /* Per-group activations (group > 0): zero point z_g and aligned mantissa lambda_g of each group of G codes
   * (di_requant_groups); zero_point is then unused. */
  int32_t group;
  const int32_t* group_zero_points;
  const int32_t* group_lambdas;
  int32_t* group_sums; /* scratch [ceil(n / G)] of the DI-MatMul: sum_(c in g) (x_c - z_g) */
} rt_row;

/* int32 iff K Q1 Q2 <= 2^31 - 1 (accumulator_kind_for_bound). */
static int fits_int32_accumulator(int64_t k, int64_t q1, int64_t q2) {
  const rt_u128 bound = rt_u128_mul64((uint64_t)k * (uint64_t)q1, (uint64_t)q2); /* k q1 < 2^40 */
  return bound.hi == 0 && bound.lo <= 2147483647u;
}

/* The centered input row for linear_accumulate: x_c - z1 as int16 (|x - z| <= 255), for packed weights split into
 * even columns [0, half) and odd columns [half, 2 half) so that the inner loop reads one weight byte per step. */
static int64_t center_input(const rt_row* x, int32_t k, int packed, int16_t* centered) {
  int64_t sum = 0;
  int32_t c;
  const int32_t half = (k + 1) / 2;
  for (c = 0; c < k; ++c) {
    const int16_t v = (int16_t)((int32_t)x->codes[c] - (int32_t)x->zero_point);
    sum += v;
    if (packed)
      centered[(c & 1) ? half + c / 2 : c / 2] = v;
    else
      centered[c] = v;
  }
  if (packed && (k & 1)) centered[half + half - 1] = 0; /* the odd column of the padding nibble */
  return sum;
}

/* Per-group DI-MatMul (docs/integer-semantics.md "Per-group DI-MatMul"): P'_j = sum_g P_(j,g) mu_(j,g) with
 * P_(j,g) = sum_(c in g) (x_c - z1)(w_jc - z_(j,g)), int32 when G Q1 Q2 <= 2^31 - 1 (every partial sum is bounded
 * by it), else int64; the int64 sum over groups is exact (|P'| < 2^63, checked at load). `centered` holds x - z1 in
 * column order. Returns the index (j groups + g) of a failing alignment, or -1. */
static int64_t grouped_products(const rt_linear* w, const int16_t* centered, int64_t q1, int32_t exponent, int64_t* out) {
  const int32_t G = w->group;
  const int use_int32 = fits_int32_accumulator(G, q1, ((int64_t)1 << w->bits) - 1);
  int32_t j, g, c;
  for (j = 0; j < w->out; ++j) {
    const uint8_t* row = w->codes + (size_t)j * w->row_bytes;
    int64_t total = 0;
    for (g = 0; g < w->groups; ++g) {
      const size_t index = (size_t)j * (size_t)w->groups + (size_t)g;
      const int32_t z2 = w->zero_points[index], first = g * G;
      const int64_t mu = aligned_mantissa(dyadic_at(w->scales, index), exponent);
      int64_t p;
      if (mu < 0) return (int64_t)index;
      if (use_int32) {
        int32_t sum = 0;
        if (w->packed) /* G is even: the group starts on a byte */
          for (c = first; c < first + G; c += 2) {
            const int32_t byte = row[c >> 1];
            sum += centered[c] * ((byte & 15) - z2) + centered[c + 1] * ((byte >> 4) - z2);
          }
        else
          for (c = first; c < first + G; ++c) sum += centered[c] * ((int32_t)row[c] - z2);
        p = sum;
      } else {
        int64_t sum = 0;
        for (c = first; c < first + G; ++c) sum += (int64_t)centered[c] * (weight_code(w, j, c) - z2);
        p = sum;
      }
      total += rt_mul(p, mu);
    }
    out[j] = total;
  }
  return -1;
}

/* DI-MatMul of a row of wide (up to 16-bit) codes, a TRIP site's output or the LM head's input of more than 8 bits
 * (per row or per group of weights): per (row, group) the exact int64 sum
 * P_(j,g) = sum (x_c - z1)(w_jc - z_(j,g)) (|x - z1| < 2^16), then P'_j = sum_g P_(j,g) mu_(j,g) as for every input
 * (groups = 1: one group of the whole row). Returns the index of a failing alignment, or -1. */
static int64_t wide_products(const rt_linear* w, const rt_row* x, int32_t exponent, int64_t* out) {
  const int32_t G = w->group;
  int32_t j, g, c;
  for (j = 0; j < w->out; ++j) {
    int64_t total = 0;
    for (g = 0; g < w->groups; ++g) {
      const size_t index = (size_t)j * (size_t)w->groups + (size_t)g;
      const int32_t z2 = w->zero_points[index], first = g * G;
      const int64_t mu = aligned_mantissa(dyadic_at(w->scales, index), exponent);
      int64_t sum = 0;
      if (mu < 0) return (int64_t)index;
      for (c = first; c < first + G; ++c)
        sum += ((int64_t)x->wide_codes[c] - x->zero_point) * (weight_code(w, j, c) - z2);
      total += rt_mul(sum, mu);
    }
    out[j] = total;
  }
  return -1;
}

/* DI-MatMul of per-group activation codes (docs/integer-semantics.md "## Per-group activations" and "## Per-group
 * activations with per-group weights"): weight groups of G_w columns (G_w = in for a per-row weight) each hold
 * G_w / G whole activation groups (G divides G_w, checked at load); a per-row weight's one group holds all
 * ceil(in / G) of them, the last one short when G does not divide in.
 * P_(j,g) = sum_(c in g) (x_c - z_g)(w_jc - z2_(j,h)) in int32 (G Q1 Q2 < 2^31 for codes of at most 8 bits), T_(j,h) = sum_(g in h) P_(j,g) lambda_g exact in int64
 * (|T| < G_w Q1 Q2 2^b_m), P'_j = sum_h rshr(T_(j,h), b_m) mu_(j,h) (|P'| < in Q1 Q2 2^24, checked at load); with one
 * weight group this is rshr(S_j, b_m) mu_j of the per-row operator. Each P is sum_c (x_c - z_g) w_jc
 * - z2 sum_c (x_c - z_g) (every partial sum within G Q1 Q2). A group with lambda_g = 0 (all-zero) adds nothing and
 * is skipped. `centered` gets x_c - z_g in column order, for packed weights each group's even columns then its odd
 * ones (a short group of odd width: its odd half ends with a 0 for the row's padding nibble, which is why `centered`
 * holds in + 1 entries). Returns the index (j groups + h) of a failing alignment, or -1. */
static int64_t act_group_products(const rt_linear* w, const rt_row* x, int mantissa_bits, int32_t exponent,
                                  int16_t* centered, int64_t* out) {
  const int32_t G = x->group, groups = (w->in + G - 1) / G, per_weight_group = w->group / G;
  int32_t j, g, h, c;
  for (g = 0; g < groups; ++g) {
    const int32_t first = g * G, width = (int32_t)act_group_width((size_t)w->in, (size_t)G, (size_t)g);
    const int32_t z = x->group_zero_points[g], half = (width + 1) / 2;
    int32_t sum = 0;
    for (c = 0; c < width; ++c) {
      const int16_t v = (int16_t)((int32_t)x->codes[first + c] - z);
      centered[first + (w->packed ? ((c & 1) ? half + c / 2 : c / 2) : c)] = v;
      sum += v;
    }
    if (w->packed && (width & 1)) centered[first + 2 * half - 1] = 0;
    x->group_sums[g] = sum;
  }
  for (j = 0; j < w->out; ++j) {
    const uint8_t* row = w->codes + (size_t)j * w->row_bytes;
    int64_t total = 0;
    for (h = 0, g = 0; h < w->groups; ++h) {
      const size_t index = (size_t)j * (size_t)w->groups + (size_t)h;
      const int32_t z2 = w->zero_points[index], end = h + 1 == w->groups ? groups : (h + 1) * per_weight_group;
      const int64_t mu = aligned_mantissa(dyadic_at(w->scales, index), exponent);
      int64_t t = 0;
      if (mu < 0) return (int64_t)index;
      for (; g < end; ++g) {
        const int16_t* v = centered + (size_t)g * (size_t)G;
        const int32_t width = (int32_t)act_group_width((size_t)w->in, (size_t)G, (size_t)g);
        int32_t p = 0;
        if (x->group_lambdas[g] == 0) continue;
        if (w->packed) { /* G is even: a group starts on a byte */
          const uint8_t* bytes = row + (size_t)g * (size_t)(G / 2);
          const int32_t half = (width + 1) / 2;
          for (c = 0; c < half; ++c) p += v[c] * (int32_t)(bytes[c] & 15) + v[half + c] * (int32_t)(bytes[c] >> 4);
        } else {
          const uint8_t* codes = row + (size_t)g * (size_t)G;
          for (c = 0; c < width; ++c) p += v[c] * (int32_t)codes[c];
        }
        t += (int64_t)(p - z2 * x->group_sums[g]) * x->group_lambdas[g];
      }
      total += rt_mul(rt_rshr(t, mantissa_bits), mu); /* one rounding per weight group: mu differs between groups */
    }
    out[j] = total;
  }
  return -1;
}

static int linear_accumulate(const rt_linear* w, const rt_row* x, int mantissa_bits, int16_t* centered, int64_t* out,
                             illm_rt_dyadic* out_scale, const char* what, illm_rt_error* err) {
  const int32_t n = w->out, k = w->in, half = (k + 1) / 2;
  const int64_t q1 = ((int64_t)1 << x->bits) - 1, q2 = ((int64_t)1 << w->bits) - 1;
  const int use_int32 = fits_int32_accumulator(k, q1, q2);
  rt_scales scales;
  int32_t exponent, j, c;
  int64_t k_out, centered_sum;
  if (x->scale.m < 1 || x->scale.m >= ((int64_t)1 << 31)) {
    rt_msg m = msg_begin(err, ILLM_RT_E_NUMERIC);
    msg_s(&m, what);
    msg_s(&m, ": input scale mantissa ");
    msg_i(&m, x->scale.m);
    msg_s(&m, " outside [1, 2^31)");
    return ILLM_RT_E_NUMERIC;
  }
  scales.pairs = w->scales;
  scales.m = scales.k = 0;
  exponent = alignment_exponent(&scales, (size_t)n * (size_t)w->groups, mantissa_bits);
  k_out = (int64_t)x->scale.k + exponent - (x->group > 0 ? mantissa_bits : 0); /* groups: (1, K1 - b_m + K2) */
  if (k_out < INT32_MIN || k_out > INT32_MAX) return fail(err, ILLM_RT_E_NUMERIC, "DI-MatMul: output exponent out of range");
  out_scale->m = x->scale.m;
  out_scale->k = (int32_t)k_out;
  if (x->group > 0) { /* per row or per group of weights (their G a multiple of the activations', checked at load) */
    const int64_t failed = act_group_products(w, x, mantissa_bits, exponent, centered, out);
    if (failed >= 0) return alignment_fail(err, what, (size_t)failed, dyadic_at(w->scales, (size_t)failed).m, mantissa_bits);
    return ILLM_RT_OK;
  }
  if (x->wide_codes) {
    const int64_t failed = wide_products(w, x, exponent, out);
    if (failed >= 0) return alignment_fail(err, what, (size_t)failed, dyadic_at(w->scales, (size_t)failed).m, mantissa_bits);
    return ILLM_RT_OK;
  }
  if (w->groups > 1) {
    int64_t failed;
    center_input(x, k, 0, centered);
    failed = grouped_products(w, centered, q1, exponent, out);
    if (failed >= 0) return alignment_fail(err, what, (size_t)failed, dyadic_at(w->scales, (size_t)failed).m, mantissa_bits);
    return ILLM_RT_OK;
  }
  centered_sum = center_input(x, k, use_int32 && w->packed, centered);
  for (j = 0; j < n; ++j) {
    const uint8_t* row = w->codes + (size_t)j * w->row_bytes;
    const int64_t z2 = w->zero_points[j];
    const int64_t mu = aligned_mantissa(dyadic_at(w->scales, (size_t)j), exponent);
    int64_t p;
    if (mu < 0) return alignment_fail(err, what, (size_t)j, dyadic_at(w->scales, (size_t)j).m, mantissa_bits);
    if (use_int32) {
      /* P = sum_c (x_c - z1) w_c - z2 sum_c (x_c - z1): every partial sum is bounded by K Q1 Q2 <= 2^31 - 1. */
      int32_t sum = 0;
      if (w->packed) {
        const int16_t* even = centered;
        const int16_t* odd = centered + half;
        for (c = 0; c < half; ++c) sum += even[c] * (int32_t)(row[c] & 15) + odd[c] * (int32_t)(row[c] >> 4);
      } else {
        for (c = 0; c < k; ++c) sum += centered[c] * (int32_t)row[c];
      }
      p = (int64_t)sum - z2 * centered_sum;
    } else {
      int64_t sum = 0;
      for (c = 0; c < k; ++c) sum += (int64_t)centered[c] * (weight_code(w, j, c) - z2);
      p = sum;
    }
    out[j] = rt_mul(p, mu); /* |P'| < 2^63 (checked at load) */
  }
  out_scale->m = x->scale.m;
  out_scale->k = (int32_t)k_out;
  return ILLM_RT_OK;
}

/* ============================================================================================================
 * DI-Norm (kernels/reference/di_norm.cpp, per-token mode): integer RMSNorm of one residual row -> out_bits codes. */

#define RT_NORMALIZED_MSB 23
#define RT_RINV_FRAC_BITS 30
#define RT_EPS_CAP ((int64_t)1 << 61)

typedef struct {
  const uint8_t* mantissa; /* i32 [n] */
  int64_t exponent;
} rt_channels;

static int di_norm_row(const int16_t* h, size_t n, illm_rt_dyadic s_h, rt_channels gamma, illm_rt_dyadic eps,
                       const illm_rt_settings* st, int out_bits, int64_t* z, void* codes, rt_requant* result,
                       illm_rt_dyadic clip, rt_trip trip, const rt_act_groups* groups, illm_rt_error* err) {
  uint64_t max_abs = 0, rms;
  int64_t k_norm, sum_squares = 0, mean_square, eps_units = 0, inv_rms;
  int sh;
  size_t c;
  const int frac_bits = st->norm_frac_bits;
  if (s_h.m < 1 || s_h.m >= ((int64_t)1 << 32))
    return fail_i(err, ILLM_RT_E_NUMERIC, "DI-Norm: residual scale mantissa ", s_h.m, " outside [1, 2^32)");
  for (c = 0; c < n; ++c) {
    z[c] = (int64_t)h[c] * s_h.m;
    if (rt_abs_u64(z[c]) > max_abs) max_abs = rt_abs_u64(z[c]);
  }
  if (max_abs == 0) { /* per group: the all-zero 16-bit row gives all-zero groups */
    if (groups->size > 0)
      return site_requant(z, n, 1, 0, out_bits, st->mantissa_bits, codes, result, clip, trip, groups, err);
    return zero_row(codes, trip.alpha ? CODES_I16 : input_code_kind(out_bits), n, result);
  }
  sh = rt_msb(max_abs) - RT_NORMALIZED_MSB;
  for (c = 0; c < n; ++c) z[c] = rt_rshr(z[c], sh);
  k_norm = (int64_t)s_h.k - sh;
  for (c = 0; c < n; ++c) sum_squares = rt_add(sum_squares, z[c] * z[c]); /* < 2^48 2^15 */
  mean_square = rt_rdiv(sum_squares, (int64_t)n);
  if (eps.m > 0) {
    const int64_t shift = (int64_t)eps.k - 2 * k_norm;
    if (shift >= 0) {
      eps_units = shift >= 64 ? 0 : rt_rshr(eps.m, (int)shift);
    } else {
      eps_units = (-shift >= 62 || rt_msb((uint64_t)eps.m) - shift >= 61) ? RT_EPS_CAP : rt_shl(eps.m, (int)-shift);
    }
  }
  rms = rt_isqrt((uint64_t)mean_square + (uint64_t)eps_units);
  if (rms == 0) return fail(err, ILLM_RT_E_NUMERIC, "DI-Norm: zero root mean square");
  inv_rms = rt_rdiv((int64_t)1 << (frac_bits + RT_RINV_FRAC_BITS), (int64_t)rms);
  for (c = 0; c < n; ++c) {
    const int64_t normalized = rt_rshr(rt_mul(z[c], inv_rms), RT_RINV_FRAC_BITS);
    z[c] = rt_mul(normalized, rd_i32(gamma.mantissa + 4 * c));
  }
  return site_requant(z, n, 1, frac_bits + gamma.exponent, out_bits, st->mantissa_bits, codes, result, clip, trip,
                      groups, err);
}

/* ============================================================================================================
 * RoPE (kernels/reference/rope.cpp): rotate each head of an int32 row in place at `position`, Q1.F tables. */

static int32_t saturate_i32(int64_t x) { return (int32_t)rt_sat(x, INT32_MIN, INT32_MAX); }

static void rope_rotate_row(int32_t* row, int32_t width, int32_t head_dim, int32_t position, const illm_rt_model* m) {
  const int32_t half = head_dim / 2;
  const uint8_t* cos_row = global_tensor(m, ILLM_RT_T_ROPE_COS).p + 2 * (size_t)position * (size_t)half;
  const uint8_t* sin_row = global_tensor(m, ILLM_RT_T_ROPE_SIN).p + 2 * (size_t)position * (size_t)half;
  const int frac_bits = m->rope_frac_bits;
  int32_t start, i;
  for (start = 0; start < width; start += head_dim) {
    int32_t* head = row + start;
    for (i = 0; i < half; ++i) {
      const int64_t x_lo = head[i], x_hi = head[i + half];
      const int64_t c = rd_i16(cos_row + 2 * i), s = rd_i16(sin_row + 2 * i);
      head[i] = saturate_i32(rt_rshr(x_lo * c - x_hi * s, frac_bits));
      head[i + half] = saturate_i32(rt_rshr(x_hi * c + x_lo * s, frac_bits));
    }
  }
}

/* ============================================================================================================
 * DI-Exp (kernels/reference/di_exp.cpp). */

#define RT_QUAD_A 11017
#define RT_QUAD_B 2821
#define RT_QUAD_FRAC_BITS 14
#define RT_TARGET_MSB 14
#define RT_MIN_MANTISSA_MSB 7

typedef struct {
  int32_t promote;
  int64_t t;
} rt_exp_frame;

/* rdiv(2^e, d) in 128 bits, 0 <= e < 120, d >= 1. */
static rt_u128 rdiv_pow2(int e, int64_t d) {
  const rt_u128 numerator = rt_u128_shl(rt_u128_from(1), e), den = rt_u128_from((uint64_t)d);
  rt_u128 r;
  rt_u128 q = rt_u128_divmod(numerator, den, &r);
  /* (numerator - q d) * 2 >= d */
  if (rt_u128_cmp(rt_u128_shl(r, 1), den) >= 0) q = rt_u128_add(q, rt_u128_from(1));
  return q;
}

static int di_exp_frame(int64_t m, int64_t k, rt_exp_frame* frame, illm_rt_error* err) {
  int64_t m_f, promote;
  rt_u128 steps;
  if (m < 1 || m >= ((int64_t)1 << 40)) return fail_i(err, ILLM_RT_E_NUMERIC, "DI-Exp: scale mantissa ", m, " outside [1, 2^40)");
  if (k < -64 || k >= 100) return fail_i(err, ILLM_RT_E_NUMERIC, "DI-Exp: scale exponent ", k, " outside [-64, 100)");
  if (m < ((int64_t)1 << RT_MIN_MANTISSA_MSB)) {
    const int widen = RT_MIN_MANTISSA_MSB - rt_msb((uint64_t)m);
    m <<= widen;
    k += widen;
  }
  m_f = m + (m >> 1) - (m >> 4);
  steps = k >= 0 ? rdiv_pow2((int)k, m_f) : rt_u128_from(0);
  promote = !rt_u128_is_zero(steps) ? RT_TARGET_MSB - rt_u128_msb(steps) : RT_TARGET_MSB + 1 + rt_msb((uint64_t)m_f) - k;
  if (promote > 40) return fail(err, ILLM_RT_E_NUMERIC, "DI-Exp: input scale too coarse (promotion by more than 40 bits)");
  frame->promote = (int32_t)promote;
  frame->t = -(int64_t)rdiv_pow2((int)(k + promote), m_f).lo;
  return ILLM_RT_OK;
}

static int64_t di_exp_promote(int64_t x, const rt_exp_frame* frame) {
  return frame->promote >= 0 ? rt_shl(x, frame->promote) : rt_rshr(x, -frame->promote);
}

/* E >= 0 with e^(real x) ~ E / |t|, x <= 0 promoted, t < 0. */
static int64_t di_exp(int64_t x, int64_t t, int quadratic) {
  const int64_t abs_t = -t;
  const int64_t q = (int64_t)(rt_abs_u64(x) / (uint64_t)abs_t);
  int64_t r, e0;
  if (q >= 63) return 0;
  r = x + q * abs_t; /* in (t, 0] */
  if (quadratic) {
    e0 = abs_t + rt_rdiv(r * (RT_QUAD_A * abs_t + RT_QUAD_B * r), abs_t << RT_QUAD_FRAC_BITS);
    if (e0 < (abs_t >> 1)) e0 = abs_t >> 1;
  } else {
    e0 = rt_asr(r, 1) + abs_t;
  }
  return rt_asr(e0, (int)q);
}

/* ============================================================================================================
 * DI-ClippedSoftmax (kernels/reference/di_softmax.cpp) of one attention row, all `n` keys valid. */

#define RT_UNBOUNDED_CLIP ((int64_t)1 << 62)
#define RT_LOGIT_LIMIT ((int64_t)1 << 62)

static int64_t softmax_clip_in_logit_units(illm_rt_dyadic clip, int64_t m_in, int32_t k_in) {
  const int64_t e = (int64_t)k_in - clip.k;
  rt_u128 numerator = rt_u128_from((uint64_t)clip.m), denominator = rt_u128_from((uint64_t)m_in), q;
  if (clip.m == 0) return RT_UNBOUNDED_CLIP;
  if (e >= 0) {
    if (e + rt_msb((uint64_t)clip.m) >= 100) return RT_UNBOUNDED_CLIP;
    numerator = rt_u128_shl(numerator, (int)e);
  } else {
    if (-e + rt_msb((uint64_t)m_in) >= 100) return 1; /* a positive clip below one logit unit */
    denominator = rt_u128_shl(denominator, (int)-e);
  }
  q = rt_u128_cdiv(numerator, denominator);
  return (q.hi != 0 || q.lo >= (uint64_t)RT_UNBOUNDED_CLIP) ? RT_UNBOUNDED_CLIP : (int64_t)q.lo;
}

static int di_clipped_softmax_row(const int64_t* logits, int32_t n, int64_t m_in, int32_t k_in, illm_rt_dyadic clip,
                                  const illm_rt_settings* st, int64_t* shifted, int32_t* probs, illm_rt_error* err) {
  int64_t v_max = logits[0], v_min = logits[0], clip_units, lo, sum = 0, one;
  int32_t j;
  rt_requant input;
  rt_exp_frame frame;
  int status;
  for (j = 1; j < n; ++j) {
    if (logits[j] > v_max) v_max = logits[j];
    if (logits[j] < v_min) v_min = logits[j];
  }
  if (v_max >= RT_LOGIT_LIMIT || v_min <= -RT_LOGIT_LIMIT)
    return fail(err, ILLM_RT_E_NUMERIC, "DI-ClippedSoftmax: aligned logits must satisfy |v| < 2^62");
  if (clip.m < 0 || m_in < 1) return fail(err, ILLM_RT_E_NUMERIC, "DI-ClippedSoftmax: clip mantissa must be >= 0 and m_in >= 1");
  clip_units = softmax_clip_in_logit_units(clip, m_in, k_in);
  lo = v_max - clip_units > v_min ? v_max - clip_units : v_min; /* both terms < 2^62: no overflow */
  for (j = 0; j < n; ++j) shifted[j] = (logits[j] > lo ? logits[j] : lo) - v_max;
  status = di_requant(shifted, (size_t)n, m_in, k_in, st->softmax_in_bits, st->mantissa_bits, probs, CODES_I32, &input, err,
                      kNoClip);
  if (status) return status;
  status = di_exp_frame(input.scale.m, input.scale.k, &frame, err);
  if (status) return status;
  for (j = 0; j < n; ++j) {
    const int64_t x = (int64_t)probs[j] - input.zero_point; /* <= 0 */
    const int64_t e = di_exp(di_exp_promote(x, &frame), frame.t, st->exp_quadratic);
    probs[j] = (int32_t)e;
    sum += e;
  }
  one = (int64_t)1 << (st->prob_bits - 1);
  for (j = 0; j < n; ++j) probs[j] = (int32_t)rt_fdiv((int64_t)probs[j] * one, sum);
  return ILLM_RT_OK;
}

/* ============================================================================================================
 * Online Walsh-Hadamard transform (kernels/reference/hadamard.cpp, docs/integer-semantics.md "## Walsh-Hadamard
 * transform"): x <- H.x exactly, H the integer matrix of plan_hadamard(n), recomputed here (a pure function of n):
 * Sylvester for n = 2^k; Paley(m) x Sylvester(2^k) for n = m.2^k with m = p + 1 not a power of two, p prime = 3
 * mod 4, m <= 256, the smallest such m; else weighted blocks of sizes 2^(K-2j) times 2^j. Values in int64; the
 * executor's int32 precondition max|x|.row_l1 <= 2^31 - 1 is checked so that both refuse the same rows. */

#define RT_WHT_MAX_PALEY 256

typedef struct {
  int kind; /* 0 Sylvester, 1 Paley x Sylvester, 2 weighted blocks */
  int32_t base;
  int log2_sylvester; /* kinds 0, 1 */
  int log2_gain;      /* kind 2: K */
  int64_t row_l1;
} rt_wht_plan;

static int rt_is_power_of_two(int64_t n) { return n >= 1 && (n & (n - 1)) == 0; }

static int rt_is_prime(int64_t p) {
  int64_t d;
  if (p < 2) return 0;
  for (d = 2; d * d <= p; ++d)
    if (p % d == 0) return 0;
  return 1;
}

static void wht_plan(int32_t n, rt_wht_plan* plan) {
  int k = 0;
  plan->kind = 0;
  plan->base = 1;
  plan->log2_sylvester = 0;
  plan->log2_gain = 0;
  plan->row_l1 = n;
  if (rt_is_power_of_two(n)) {
    plan->log2_sylvester = rt_msb((uint64_t)n);
    return;
  }
  while (((n >> k) & 1) == 0) ++k; /* trailing zeros */
  for (; k >= 0; --k) {
    const int32_t m = n >> k;
    if (m > RT_WHT_MAX_PALEY) break;
    if (m % 4 == 0 && !rt_is_power_of_two(m) && rt_is_prime(m - 1)) {
      plan->kind = 1;
      plan->base = m;
      plan->log2_sylvester = k;
      return;
    }
  }
  plan->kind = 2;
  plan->log2_gain = rt_msb((uint64_t)n);
  if ((n & 1) && (plan->log2_gain & 1)) --plan->log2_gain; /* an odd n needs blocks of size 1: an even K */
  plan->row_l1 = (int64_t)1 << plan->log2_gain;         /* the first block, of size 2^K and weight 1 */
}

static void wht_butterflies(int64_t* x, int log2_size) {
  const int64_t size = (int64_t)1 << log2_size;
  int64_t half, start, j;
  for (half = 1; half < size; half <<= 1)
    for (start = 0; start < size; start += 2 * half)
      for (j = start; j < start + half; ++j) {
        const int64_t a = x[j], b = x[j + half];
        x[j] = a + b;
        x[j + half] = a - b;
      }
}

/* Paley's matrix I + S, S = [[0, 1^T], [-1, Q]], Q_ij = chi(j - i) modulo p = m - 1: entry (i, j). */
static int paley_entry(const int8_t* chi, int32_t p, int32_t i, int32_t j) {
  if (i == j) return 1;
  if (i == 0) return 1;
  if (j == 0) return -1;
  return chi[((j - i) % p + p) % p];
}

/* x <- H.x for the n values of x; `scratch` holds n int64 (Paley only). */
static int wht_row(int64_t* x, int32_t n, int64_t* scratch, illm_rt_error* err) {
  rt_wht_plan plan;
  int8_t chi[RT_WHT_MAX_PALEY];
  int32_t i;
  int64_t limit;
  if (n < 1) return fail(err, ILLM_RT_E_NUMERIC, "online Hadamard: empty row");
  wht_plan(n, &plan);
  limit = (int64_t)INT32_MAX / plan.row_l1;
  for (i = 0; i < n; ++i)
    if (x[i] > limit || x[i] < -limit)
      return fail_ii(err, ILLM_RT_E_NUMERIC, "online Hadamard: value ", x[i], " outside the int32 range bound ", limit,
                     "");
  if (plan.kind == 2) {
    int64_t offset = 0;
    int j;
    for (j = 0; 2 * j <= plan.log2_gain && offset < n; ++j) {
      const int log2_size = plan.log2_gain - 2 * j;
      const int64_t size = (int64_t)1 << log2_size;
      while (offset + size <= n) {
        int64_t c;
        wht_butterflies(x + offset, log2_size);
        for (c = 0; c < size; ++c) x[offset + c] *= (int64_t)1 << j;
        offset += size;
      }
    }
    return ILLM_RT_OK;
  }
  {
    const int64_t s = (int64_t)1 << plan.log2_sylvester;
    const int32_t m = plan.base, p = m - 1;
    int32_t a, a2;
    int64_t b;
    for (a = 0; a < m; ++a) wht_butterflies(x + (int64_t)a * s, plan.log2_sylvester);
    if (plan.kind != 1) return ILLM_RT_OK;
    for (i = 0; i < p; ++i) chi[i] = -1;
    chi[0] = 0;
    for (i = 1; i < p; ++i) chi[(int64_t)i * i % p] = 1;
    for (a = 0; a < m; ++a)
      for (b = 0; b < s; ++b) {
        int64_t acc = 0;
        for (a2 = 0; a2 < m; ++a2) acc += paley_entry(chi, p, a, a2) * x[(int64_t)a2 * s + b];
        scratch[(int64_t)a * s + b] = acc;
      }
    for (i = 0; i < n; ++i) x[i] = scratch[i];
  }
  return ILLM_RT_OK;
}

/* ============================================================================================================
 * DI-SwiGLU (kernels/reference/di_swiglu.cpp). */

static int64_t promote_signed(int64_t a, const rt_exp_frame* frame) {
  return frame->promote >= 0 ? rt_shl(a, frame->promote) : rt_rshr(a, -frame->promote);
}

static int di_sigmoid_row(const int64_t* a, size_t n, illm_rt_dyadic scale, const illm_rt_settings* st, int32_t* sigma,
                          illm_rt_error* err) {
  rt_exp_frame frame;
  int64_t limit, abs_t, one;
  size_t c;
  int status;
  if (n == 0) return ILLM_RT_OK;
  status = di_exp_frame(scale.m, scale.k, &frame, err);
  if (status) return status;
  limit = (int64_t)1 << (61 - (frame.promote > 0 ? frame.promote : 0));
  for (c = 0; c < n; ++c)
    if (a[c] >= limit || a[c] <= -limit) return fail_i(err, ILLM_RT_E_NUMERIC, "DI-SwiGLU sigmoid: argument ", a[c], " too large to promote");
  abs_t = -frame.t;
  one = (int64_t)1 << (st->sigmoid_bits - 1);
  if (st->sigmoid_stable) {
    for (c = 0; c < n; ++c) {
      const int64_t x = promote_signed(a[c], &frame);
      const int64_t e = di_exp(x < 0 ? x : -x, frame.t, st->exp_quadratic);
      const int64_t numerator = x >= 0 ? abs_t : e;
      sigma[c] = (int32_t)rt_fdiv(numerator * one, abs_t + e);
    }
  } else {
    int64_t shared_max = 0, e_neg_max;
    for (c = 0; c < n; ++c) {
      const int64_t x = promote_signed(a[c], &frame);
      if (x > shared_max) shared_max = x;
    }
    e_neg_max = di_exp(-shared_max, frame.t, st->exp_quadratic);
    for (c = 0; c < n; ++c) {
      const int64_t e = di_exp(promote_signed(a[c], &frame) - shared_max, frame.t, st->exp_quadratic);
      sigma[c] = e + e_neg_max == 0 ? 0 : (int32_t)rt_fdiv(e * one, e + e_neg_max);
    }
  }
  return ILLM_RT_OK;
}

/* The products O_c of DI-SwiGLU into row[] and their scale (m_in, k_in), before the requantization. */
static int di_swiglu_products(const rt_row* gate, const rt_row* up, rt_channels inv_alpha, size_t n,
                              const illm_rt_settings* st, int64_t* row, int32_t* sigma, int64_t* m_in_out,
                              int64_t* k_in_out, illm_rt_error* err) {
  illm_rt_dyadic sigmoid_scale;
  int64_t mantissa_product, m_in, k_in;
  int drop, status;
  size_t c;
  if (gate->scale.m < 1 || gate->scale.m >= ((int64_t)1 << 31) || up->scale.m < 1 || up->scale.m >= ((int64_t)1 << 31))
    return fail(err, ILLM_RT_E_NUMERIC, "DI-SwiGLU: input scale mantissa outside [1, 2^31)");
  for (c = 0; c < n; ++c) row[c] = ((int64_t)gate->codes[c] - gate->zero_point) * rd_i32(inv_alpha.mantissa + 4 * c);
  sigmoid_scale.m = gate->scale.m;
  if ((int64_t)gate->scale.k + inv_alpha.exponent < INT32_MIN || (int64_t)gate->scale.k + inv_alpha.exponent > INT32_MAX)
    return fail(err, ILLM_RT_E_NUMERIC, "DI-SwiGLU: exponent out of range");
  sigmoid_scale.k = (int32_t)(gate->scale.k + inv_alpha.exponent);
  status = di_sigmoid_row(row, n, sigmoid_scale, st, sigma, err);
  if (status) return status;
  for (c = 0; c < n; ++c) {
    const int64_t g = (int64_t)gate->codes[c] - gate->zero_point;
    const int64_t u = (int64_t)up->codes[c] - up->zero_point;
    row[c] = g * sigma[c] * u;
  }
  mantissa_product = gate->scale.m * up->scale.m; /* < 2^62 */
  drop = rt_msb((uint64_t)mantissa_product) + 1 - st->mantissa_bits;
  if (drop < 0) drop = 0;
  m_in = rt_rshr(mantissa_product, drop);
  k_in = (int64_t)gate->scale.k + up->scale.k + st->sigmoid_bits - 1 - drop;
  if (k_in < INT32_MIN || k_in > INT32_MAX) return fail(err, ILLM_RT_E_NUMERIC, "DI-SwiGLU: exponent out of range");
  *m_in_out = m_in;
  *k_in_out = k_in;
  return ILLM_RT_OK;
}

/* DI-SwiGLU of one token to out_bits codes. With the online down_proj Hadamard (`hadamard`): the products are
 * requantized DI_REQUANT_SYM to 16 bits (int32 codes in sigma[], no longer needed), transformed (wht_row, `scratch`
 * of n int64) and then requantized DI_REQUANT to out_bits. `clip` (the down_in ratio) clips the last requantization. */
static int di_swiglu_row(const rt_row* gate, const rt_row* up, rt_channels inv_alpha, size_t n,
                         const illm_rt_settings* st, int out_bits, int64_t* row, int32_t* sigma, void* codes,
                         int hadamard, int64_t* scratch, rt_requant* result, illm_rt_dyadic clip, rt_trip trip,
                         const rt_act_groups* groups, illm_rt_error* err) {
  int64_t m_in = 0, k_in = 0;
  rt_requant wide;
  size_t c;
  int status = di_swiglu_products(gate, up, inv_alpha, n, st, row, sigma, &m_in, &k_in, err);
  if (status) return status;
  if (!hadamard) /* TRIP never with the online down_proj Hadamard (refused at load); sigma[] is free for groups->wide */
    return site_requant(row, n, m_in, k_in, out_bits, st->mantissa_bits, codes, result, clip, trip, groups, err);
  status = di_requant_symmetric(row, n, m_in, k_in, 16, st->mantissa_bits, sigma, CODES_I32, &wide, err);
  if (status) return status;
  for (c = 0; c < n; ++c) row[c] = sigma[c];
  status = wht_row(row, (int32_t)n, scratch, err);
  if (status) return status;
  if (groups->size > 0) /* the transformed row goes to the groups directly (no second 16-bit step) */
    return di_requant_groups(row, n, wide.scale.m, wide.scale.k, out_bits, st->mantissa_bits, (uint8_t*)codes, groups,
                             clip, result, err);
  return di_requant(row, n, wide.scale.m, wide.scale.k, out_bits, st->mantissa_bits, codes, CODES_U8, result, err,
                    clip);
}

/* ============================================================================================================
 * Residual add, fused form (kernels/reference/residual.cpp): h (int16, scale s_h) + aligned accumulator d (scale
 * s_d, zero point 0) -> DI_REQUANT_SYM to 16 bits, in place. */

#define RT_TERM_BITS 61
#define RT_RESIDUAL_BITS 16

static int u128_bit_length(rt_u128 x) { return rt_u128_msb(x) + 1; }

static int clamp_shift(int64_t s) { return (int)(s < -62 ? -62 : (s > 64 ? 64 : s)); }

static int residual_add(int16_t* h, illm_rt_dyadic* s_h, const int64_t* d, illm_rt_dyadic s_d, size_t n,
                        int mantissa_bits, int64_t* sum, illm_rt_error* err) {
  uint64_t d_max = 0;
  int64_t h_max = 0, k_d, k_common;
  int shift_d = 0, headroom_h, headroom_d, shift_h_total, shift_d_total, status;
  size_t c;
  rt_requant r;
  if (s_h->m < 1 || s_h->m >= ((int64_t)1 << 31) || s_d.m < 0 || s_d.m >= ((int64_t)1 << 31))
    return fail(err, ILLM_RT_E_NUMERIC, "residual add: scale mantissa outside [1, 2^31)");
  for (c = 0; c < n; ++c) {
    if (d[c] > ((int64_t)1 << 62) || d[c] < -((int64_t)1 << 62))
      return fail_ii(err, ILLM_RT_E_NUMERIC, "residual add: delta value ", d[c], " at column ", (int64_t)c, " outside +-2^62");
    if (rt_abs_u64(d[c]) > d_max) d_max = rt_abs_u64(d[c]);
  }
  if (d_max > 0) {
    const int by_value = rt_msb(d_max) - 39;
    const int by_product = s_d.m > 0 ? rt_msb(d_max) + rt_msb((uint64_t)s_d.m) - 55 : 0;
    shift_d = by_value > by_product ? by_value : by_product;
    if (shift_d < 0) shift_d = 0;
  }
  k_d = (int64_t)s_d.k - shift_d;
  for (c = 0; c < n; ++c) {
    const int64_t a = h[c] < 0 ? -(int64_t)h[c] : (int64_t)h[c];
    if (a > h_max) h_max = a;
  }
  headroom_h = RT_TERM_BITS - u128_bit_length(rt_u128_mul64((uint64_t)h_max, (uint64_t)s_h->m));
  headroom_d = RT_TERM_BITS - u128_bit_length(rt_u128_mul64((uint64_t)(rt_rshr((int64_t)d_max, shift_d) + 1), (uint64_t)s_d.m));
  k_common = rt_max64(s_h->k, k_d);
  k_common = rt_min64(k_common, (int64_t)s_h->k + headroom_h);
  k_common = rt_min64(k_common, k_d + headroom_d);
  shift_h_total = clamp_shift((int64_t)s_h->k - k_common);
  shift_d_total = clamp_shift(k_d - k_common);
  for (c = 0; c < n; ++c) {
    const int64_t a = rt_rshr((int64_t)h[c] * s_h->m, shift_h_total);
    const int64_t b = rt_rshr(rt_mul(rt_rshr(d[c], shift_d), s_d.m), shift_d_total);
    sum[c] = rt_add(a, b);
  }
  if (k_common < INT32_MIN || k_common > INT32_MAX) return fail(err, ILLM_RT_E_NUMERIC, "residual add: exponent out of range");
  status = di_requant_symmetric(sum, n, 1, k_common, RT_RESIDUAL_BITS, mantissa_bits, h, CODES_I16, &r, err);
  if (status) return status;
  *s_h = r.scale;
  return ILLM_RT_OK;
}

/* ============================================================================================================
 * Attention (kernels/reference/attention.cpp) of one query head at position p over the cached keys 0..p. */

typedef struct {
  const uint8_t* codes;      /* [context][head_dim] */
  const uint8_t* zero_points;/* [context] */
  rt_scales scales;          /* [context] */
} rt_kv_view;

static int attention_head_row(const uint8_t* q, int64_t z_q, illm_rt_dyadic q_scale, const rt_kv_view* keys,
                              const rt_kv_view* values, int32_t valid, int32_t d, illm_rt_dyadic clip,
                              const illm_rt_settings* st, int64_t* logits, int64_t* shifted, int32_t* probs,
                              int32_t* acc, int64_t* out, int32_t* out_exponent, illm_rt_error* err) {
  int32_t key_exponent, value_exponent, j, c;
  int64_t k_in, nu_max = 0, exponent;
  int status;
  if (q_scale.m < 1 || q_scale.m >= ((int64_t)1 << 31))
    return fail_i(err, ILLM_RT_E_NUMERIC, "attention: query scale mantissa ", q_scale.m, " outside [1, 2^31)");
  key_exponent = alignment_exponent(&keys->scales, (size_t)valid, st->mantissa_bits);
  for (j = 0; j < valid; ++j) {
    const uint8_t* k = keys->codes + (size_t)j * (size_t)d;
    const int32_t z_k = keys->zero_points[j];
    const int64_t mu = aligned_mantissa(scale_at(&keys->scales, (size_t)j), key_exponent);
    int32_t dot = 0;
    if (mu < 0) return alignment_fail(err, "attention keys", (size_t)j, scale_at(&keys->scales, (size_t)j).m, st->mantissa_bits);
    for (c = 0; c < d; ++c) dot += ((int32_t)q[c] - (int32_t)z_q) * ((int32_t)k[c] - z_k);
    logits[j] = (int64_t)dot * mu;
  }
  k_in = (int64_t)q_scale.k + key_exponent;
  if (k_in < INT32_MIN || k_in > INT32_MAX) return fail(err, ILLM_RT_E_NUMERIC, "attention: logit exponent out of range");
  status = di_clipped_softmax_row(logits, valid, q_scale.m, (int32_t)k_in, clip, st, shifted, probs, err);
  if (status) return status;

  /* Scale-ratio folding of the values' per-token scales into the probabilities, then the int32 P V. */
  value_exponent = alignment_exponent(&values->scales, (size_t)valid, st->mantissa_bits);
  for (j = 0; j < valid; ++j) {
    const int64_t nu = aligned_mantissa(scale_at(&values->scales, (size_t)j), value_exponent);
    if (nu < 0) return alignment_fail(err, "attention values", (size_t)j, scale_at(&values->scales, (size_t)j).m, st->mantissa_bits);
    if (nu > nu_max) nu_max = nu;
  }
  if (nu_max < 1) return fail(err, ILLM_RT_E_NUMERIC, "attention: value scales have no non-zero mantissa");
  for (c = 0; c < d; ++c) acc[c] = 0;
  for (j = 0; j < valid; ++j) {
    const int64_t nu = aligned_mantissa(scale_at(&values->scales, (size_t)j), value_exponent);
    const int32_t w = (int32_t)rt_rdiv((int64_t)probs[j] * nu, nu_max);
    const uint8_t* v = values->codes + (size_t)j * (size_t)d;
    const int32_t z_v = values->zero_points[j];
    if (w == 0) continue;
    for (c = 0; c < d; ++c) acc[c] += w * ((int32_t)v[c] - z_v);
  }
  for (c = 0; c < d; ++c) out[c] = (int64_t)acc[c] * nu_max;
  exponent = (int64_t)value_exponent + st->prob_bits - 1;
  if (exponent < INT32_MIN || exponent > INT32_MAX) return fail(err, ILLM_RT_E_NUMERIC, "attention: output exponent out of range");
  *out_exponent = (int32_t)exponent;
  return ILLM_RT_OK;
}

/* All heads of one token brought to one exponent and requantized once (requantize_heads). */
static int requantize_heads(const int64_t* values, const int32_t* exponents, int32_t heads, int32_t d, int out_bits,
                            int mantissa_bits, int64_t* aligned, void* codes, rt_requant* result,
                            illm_rt_dyadic clip, rt_trip trip, const rt_act_groups* groups, illm_rt_error* err) {
  int64_t common = INT64_MIN, cap = INT64_MAX;
  int32_t h, c;
  for (h = 0; h < heads; ++h) {
    uint64_t max_abs = 0;
    if (exponents[h] > common) common = exponents[h];
    for (c = 0; c < d; ++c) {
      const int64_t v = values[(size_t)h * (size_t)d + (size_t)c];
      if (v >= ((int64_t)1 << 62) || v <= -((int64_t)1 << 62))
        return fail_i(err, ILLM_RT_E_NUMERIC, "attention head requant: value outside +-2^62 in head ", h, "");
      if (rt_abs_u64(v) > max_abs) max_abs = rt_abs_u64(v);
    }
    if (max_abs != 0) cap = rt_min64(cap, (int64_t)exponents[h] + 62 - rt_bit_length(max_abs));
  }
  common = rt_min64(common, cap);
  if (common < INT32_MIN || common > INT32_MAX) return fail(err, ILLM_RT_E_NUMERIC, "attention head requant: exponent out of range");
  for (h = 0; h < heads; ++h) {
    const int64_t shift = common - exponents[h];
    for (c = 0; c < d; ++c) {
      const size_t i = (size_t)h * (size_t)d + (size_t)c;
      aligned[i] = shift >= 0 ? rt_shl(values[i], shift > 64 ? 64 : (int)shift) : rt_rshr(values[i], (int)(-shift < 64 ? -shift : 64));
    }
  }
  return site_requant(aligned, (size_t)heads * (size_t)d, 1, common, out_bits, mantissa_bits, codes, result, clip, trip,
                      groups, err);
}

/* ============================================================================================================
 * Arena: the KV cache (codes, zero point and dyadic per (layer, KV head, K|V, position)) and the scratch of one
 * token's forward pass. Regions are 16-byte aligned; the arena itself may have any alignment. */

enum {
  R_KV_CODES, R_KV_ZERO_POINTS, R_KV_SCALE_M, R_KV_SCALE_K,
  R_RESIDUAL, R_CODES, R_CENTERED, R_ACC, R_ACC2, R_WORK64, R_WORK32, R_HEAD64,
  R_Q_CODES, R_Q_ZERO_POINTS, R_Q_SCALE_M, R_Q_SCALE_K, R_GATE, R_UP,
  R_ATT_LOGITS, R_ATT_SHIFTED, R_ATT_PROBS, R_ATT_ACC, R_HEAD_VALUES, R_HEAD_EXPONENTS, R_LOGITS,
  /* Only with per-group activations (after every other region, so that the arena of other models is unchanged): the
   * z_g, m_g -> lambda_g and k_g of a linear input's groups (rt_act_groups; its 16-bit codes use R_WORK32, free at
   * every such site). */
  R_GROUP_ZERO_POINTS, R_GROUP_LAMBDAS, R_GROUP_EXPONENTS,
  R_COUNT
};
#define R_COUNT_WITHOUT_GROUPS R_GROUP_ZERO_POINTS

#define RT_REGION_ALIGN 16u

static uint64_t max3(uint64_t a, uint64_t b, uint64_t c) { return a > b ? (a > c ? a : c) : (b > c ? b : c); }

/* Region sizes in bytes; returns 0 when a size does not fit 64 bits (or the shape is not positive). */
static int region_sizes(const illm_rt_shape* s, int32_t act_group_size, int32_t context, uint64_t sizes[R_COUNT]) {
  const uint64_t hidden = (uint64_t)s->hidden, inter = (uint64_t)s->intermediate, d = (uint64_t)s->head_dim;
  const uint64_t q_width = (uint64_t)s->n_heads * d, kv_width = (uint64_t)s->n_kv_heads * d;
  const uint64_t heads = (uint64_t)s->n_heads, ctx = (uint64_t)context, vocab = (uint64_t)s->vocab;
  const uint64_t slots = (uint64_t)s->n_layers * (uint64_t)s->n_kv_heads * 2u;
  const uint64_t max_in = max3(hidden, q_width, inter), max_out = max3(max3(q_width, kv_width, hidden), inter, vocab);
  rt_u128 kv_codes;
  if (s->hidden < 1 || s->intermediate < 1 || s->head_dim < 1 || s->n_heads < 1 || s->n_kv_heads < 1 || s->vocab < 1 ||
      s->n_layers < 0 || context < 1)
    return 0;
  kv_codes = rt_u128_mul64(slots * ctx, d); /* slots, ctx < 2^32 each after validation; checked below */
  if (kv_codes.hi != 0 || (slots >> 32) != 0 || (ctx >> 32) != 0 || kv_codes.lo > ((uint64_t)1 << 60)) return 0;
  sizes[R_KV_CODES] = kv_codes.lo;
  sizes[R_KV_ZERO_POINTS] = slots * ctx;
  sizes[R_KV_SCALE_M] = slots * ctx * 4u;
  sizes[R_KV_SCALE_K] = slots * ctx * 4u;
  sizes[R_RESIDUAL] = hidden * 2u;
  sizes[R_CODES] = max_in;
  sizes[R_CENTERED] = (max_in + 1) * 2u;
  sizes[R_ACC] = max_out * 8u;
  sizes[R_ACC2] = inter * 8u;
  sizes[R_WORK64] = max_in * 8u;
  sizes[R_WORK32] = max_in * 4u;
  sizes[R_HEAD64] = d * 8u;
  sizes[R_Q_CODES] = q_width;
  sizes[R_Q_ZERO_POINTS] = heads * 4u;
  sizes[R_Q_SCALE_M] = heads * 4u;
  sizes[R_Q_SCALE_K] = heads * 4u;
  sizes[R_GATE] = inter;
  sizes[R_UP] = inter;
  sizes[R_ATT_LOGITS] = ctx * 8u;
  sizes[R_ATT_SHIFTED] = ctx * 8u;
  sizes[R_ATT_PROBS] = ctx * 4u;
  sizes[R_ATT_ACC] = d * 4u;
  sizes[R_HEAD_VALUES] = q_width * 8u;
  sizes[R_HEAD_EXPONENTS] = heads * 4u;
  sizes[R_LOGITS] = vocab * 8u;
  sizes[R_GROUP_ZERO_POINTS] = sizes[R_GROUP_LAMBDAS] = sizes[R_GROUP_EXPONENTS] =
      act_group_size > 0 ? (max_in + (uint64_t)act_group_size - 1) / (uint64_t)act_group_size * 4u : 0; /* ceil */
  return 1;
}

/* Offsets (relative to the 16-byte aligned arena start) and the total; 0 on overflow. Without per-group activations
 * the group regions are left out (offset 0, never used). */
static uint64_t plan_regions(const illm_rt_shape* s, int32_t act_group_size, int32_t context, size_t offsets[R_COUNT]) {
  uint64_t sizes[R_COUNT], total = 0;
  const int count = act_group_size > 0 ? R_COUNT : R_COUNT_WITHOUT_GROUPS;
  int r;
  if (!region_sizes(s, act_group_size, context, sizes)) return 0;
  if (offsets)
    for (r = count; r < R_COUNT; ++r) offsets[r] = 0;
  for (r = 0; r < count; ++r) {
    total = (total + RT_REGION_ALIGN - 1) / RT_REGION_ALIGN * RT_REGION_ALIGN;
    if (offsets) offsets[r] = (size_t)total;
    if (sizes[r] > ((uint64_t)1 << 62) || total > ((uint64_t)1 << 62)) return 0;
    total += sizes[r];
  }
  return total + RT_REGION_ALIGN; /* slack to align the caller's arena */
}

size_t illm_rt_arena_size_for_groups(const illm_rt_shape* shape, int32_t act_group_size, int32_t context) {
  uint64_t total;
  if (!shape || context < 1 || context > shape->max_positions || act_group_size < 0) return 0;
  total = plan_regions(shape, act_group_size, context, 0);
  return total > (uint64_t)(size_t)-1 ? 0 : (size_t)total;
}

size_t illm_rt_arena_size_for_shape(const illm_rt_shape* shape, int32_t context) {
  return illm_rt_arena_size_for_groups(shape, 0, context);
}

size_t illm_rt_arena_size(const illm_rt_model* model, int32_t context) {
  if (!model) return 0;
  return illm_rt_arena_size_for_groups(&model->shape, model->act_group_size,
                                       context == 0 ? model->default_context : context);
}

int illm_rt_session_init(illm_rt_session* session, const illm_rt_model* model, void* arena, size_t arena_size,
                         int32_t context, illm_rt_error* err) {
  size_t need, misalignment, r;
  if (!session || !model || !arena) return fail(err, ILLM_RT_E_ARGUMENT, "session_init: NULL argument");
  if (context == 0) context = model->default_context;
  if (context < 1 || context > model->shape.max_positions)
    return fail_ii(err, ILLM_RT_E_CONTEXT, "session context ", context, " outside [1, max_positions = ",
                   model->shape.max_positions, "]");
  need = illm_rt_arena_size(model, context);
  if (need == 0) return fail(err, ILLM_RT_E_ARENA, "the arena size of this model does not fit this machine's size_t");
  if (arena_size < need)
    return fail_ii(err, ILLM_RT_E_ARENA, "arena of ", (int64_t)arena_size, " bytes is too small: this model needs ",
                   (int64_t)need, " bytes (illm_rt_arena_size)");
  session->model = model;
  misalignment = (size_t)((uintptr_t)arena % RT_REGION_ALIGN);
  session->arena = (uint8_t*)arena + (misalignment ? RT_REGION_ALIGN - misalignment : 0);
  session->arena_size = arena_size;
  session->context = context;
  session->position = 0;
  plan_regions(&model->shape, model->act_group_size, context, session->region);
  for (r = R_COUNT; r < sizeof session->region / sizeof session->region[0]; ++r) session->region[r] = 0;
  session->logits.values = (const int64_t*)(void*)(session->arena + session->region[R_LOGITS]);
  session->logits.vocab = model->shape.vocab;
  session->logits.scale.m = 1;
  session->logits.scale.k = 0;
  return ok(err);
}

void illm_rt_session_reset(illm_rt_session* session) {
  if (session) session->position = 0;
}

#define REGION(session, r, type) ((type*)(void*)((session)->arena + (session)->region[r]))

/* KV slot of (layer, KV head, 0 = keys | 1 = values). */
static size_t kv_slot(const illm_rt_shape* s, int32_t layer, int32_t kv_head, int which) {
  return ((size_t)layer * (size_t)s->n_kv_heads + (size_t)kv_head) * 2u + (size_t)which;
}

static rt_kv_view kv_view(const illm_rt_session* session, size_t slot) {
  const size_t base = slot * (size_t)session->context;
  rt_kv_view v;
  v.codes = REGION(session, R_KV_CODES, uint8_t) + base * (size_t)session->model->shape.head_dim;
  v.zero_points = REGION(session, R_KV_ZERO_POINTS, uint8_t) + base;
  v.scales.pairs = 0;
  v.scales.m = REGION(session, R_KV_SCALE_M, int32_t) + base;
  v.scales.k = REGION(session, R_KV_SCALE_K, int32_t) + base;
  return v;
}

/* Writes one quantized head vector (from DI_REQUANT) into a cache slot at `position`. */
static void kv_store_meta(illm_rt_session* session, size_t slot, int32_t position, const rt_requant* r) {
  const size_t i = slot * (size_t)session->context + (size_t)position;
  REGION(session, R_KV_ZERO_POINTS, uint8_t)[i] = (uint8_t)r->zero_point;
  REGION(session, R_KV_SCALE_M, int32_t)[i] = (int32_t)r->scale.m;
  REGION(session, R_KV_SCALE_K, int32_t)[i] = r->scale.k;
}

static uint8_t* kv_codes_at(illm_rt_session* session, size_t slot, int32_t position) {
  return REGION(session, R_KV_CODES, uint8_t) +
         (slot * (size_t)session->context + (size_t)position) * (size_t)session->model->shape.head_dim;
}

/* ============================================================================================================
 * The forward pass of one token (kernels/executor.cpp forward, one row). */

/* q or k: accumulator -> int16 symmetric -> RoPE at `position` -> DI_REQUANT per head to qkv_bits (a_bits unless the
 * model sets qkv_bits).
 * Head h's codes go to codes_of(h), its zero point and scale through store(h). */
typedef struct {
  illm_rt_session* session;
  int32_t layer;
  int is_key;
} rt_head_sink;

static void sink_head(const rt_head_sink* sink, int32_t h, const rt_requant* r) {
  illm_rt_session* s = sink->session;
  if (sink->is_key) {
    kv_store_meta(s, kv_slot(&s->model->shape, sink->layer, h, 0), s->position, r);
  } else {
    REGION(s, R_Q_ZERO_POINTS, int32_t)[h] = (int32_t)r->zero_point;
    REGION(s, R_Q_SCALE_M, int32_t)[h] = (int32_t)r->scale.m;
    REGION(s, R_Q_SCALE_K, int32_t)[h] = r->scale.k;
  }
}

static uint8_t* sink_codes(const rt_head_sink* sink, int32_t h) {
  illm_rt_session* s = sink->session;
  return sink->is_key ? kv_codes_at(s, kv_slot(&s->model->shape, sink->layer, h, 0), s->position)
                      : REGION(s, R_Q_CODES, uint8_t) + (size_t)h * (size_t)s->model->shape.head_dim;
}

static int rope_heads(illm_rt_session* s, const int64_t* acc, illm_rt_dyadic acc_scale, int32_t heads,
                      const rt_head_sink* sink, illm_rt_dyadic clip, illm_rt_error* err) {
  const illm_rt_model* m = s->model;
  const int32_t d = m->shape.head_dim, width = heads * d;
  int32_t* rotated = REGION(s, R_WORK32, int32_t);
  int64_t* head = REGION(s, R_HEAD64, int64_t);
  rt_requant q16, r;
  int32_t h, c;
  int status = di_requant_symmetric(acc, (size_t)width, acc_scale.m, acc_scale.k, 16, m->settings.mantissa_bits,
                                    rotated, CODES_I32, &q16, err);
  if (status) return status;
  rope_rotate_row(rotated, width, d, s->position, m);
  for (h = 0; h < heads; ++h) {
    for (c = 0; c < d; ++c) head[c] = rotated[h * d + c];
    if (m->hadamard_sites & ILLM_RT_HADAMARD_QK) { /* the accumulator is consumed: its region is the scratch */
      status = wht_row(head, d, REGION(s, R_ACC, int64_t), err);
      if (status) return status;
    }
    status = di_requant(head, (size_t)d, q16.scale.m, q16.scale.k, m->qkv_bits, m->settings.mantissa_bits,
                        sink_codes(sink, h), CODES_U8, &r, err, clip);
    if (status) return status;
    sink_head(sink, h, &r);
  }
  return ILLM_RT_OK;
}

static rt_channels layer_channels(const illm_rt_model* m, int32_t layer, int kind, int scalar) {
  rt_channels c;
  c.mantissa = layer_tensor(m, layer, kind).p;
  c.exponent = layer_scalar(m, layer, scalar);
  return c;
}

static rt_row row_of(const uint8_t* codes, int bits, const rt_requant* r) {
  rt_row x;
  x.codes = codes;
  x.wide_codes = 0;
  x.bits = bits;
  x.zero_point = r->zero_point;
  x.scale = r->scale;
  x.group = 0;
  x.group_zero_points = x.group_lambdas = 0;
  x.group_sums = 0;
  return x;
}

/* The per-group buffers of a block linear's input site; kNoActGroups without per-group activations. */
static rt_act_groups act_groups_of(illm_rt_session* s) {
  rt_act_groups g = kNoActGroups;
  if (s->model->act_group_size > 0) {
    g.size = s->model->act_group_size;
    g.zero_points = REGION(s, R_GROUP_ZERO_POINTS, int32_t);
    g.lambdas = REGION(s, R_GROUP_LAMBDAS, int32_t);
    g.exponents = REGION(s, R_GROUP_EXPONENTS, int32_t);
    g.wide = REGION(s, R_WORK32, int32_t);
  }
  return g;
}

/* A site makes u16 wide codes with TRIP factors (bits + E wide) and for more than 8 bits (the LM head's input). */
static int site_is_wide(rt_trip trip, int bits) { return trip.alpha != 0 || bits > 8; }

/* Where a site's output codes go: R_CODES (u8), or wide codes (site_is_wide) in R_CENTERED as u16: the DI-MatMul of
 * wide codes reads them in place and needs no centered copy, so the arena does not grow. */
static void* site_codes(illm_rt_session* s, rt_trip trip, int bits) {
  return site_is_wide(trip, bits) ? (void*)REGION(s, R_CENTERED, uint16_t) : (void*)REGION(s, R_CODES, uint8_t);
}

static rt_row site_row(illm_rt_session* s, int bits, rt_trip trip, const rt_act_groups* groups, const rt_requant* r) {
  rt_row x = row_of(REGION(s, R_CODES, uint8_t), bits + trip.extra_bits, r);
  if (site_is_wide(trip, bits)) {
    x.codes = 0;
    x.wide_codes = REGION(s, R_CENTERED, uint16_t);
  }
  if (groups->size > 0) {
    x.group = groups->size;
    x.group_zero_points = groups->zero_points;
    x.group_lambdas = groups->lambdas;
    x.group_sums = groups->exponents; /* k_g is consumed once lambda_g is made */
  }
  return x;
}

/* x = DI-Norm(h) -> codes of the site (site_codes) with their zero point and scale. */
static int norm_into(illm_rt_session* s, const illm_rt_dyadic* s_h, rt_channels gamma, int bits, rt_row* x,
                     illm_rt_dyadic clip, rt_trip trip, const rt_act_groups* groups, illm_rt_error* err) {
  const illm_rt_model* m = s->model;
  rt_requant r;
  int status = di_norm_row(REGION(s, R_RESIDUAL, int16_t), (size_t)m->shape.hidden, *s_h, gamma, m->norm_eps,
                           &m->settings, bits, REGION(s, R_WORK64, int64_t), site_codes(s, trip, bits), &r, clip, trip,
                           groups, err);
  if (status) return status;
  *x = site_row(s, bits, trip, groups, &r);
  return ILLM_RT_OK;
}

/* y = DI-MatMul(x, layer linear `which`) requantized per row to out_bits codes (gate_proj, up_proj). */
static int linear_to_codes(illm_rt_session* s, int32_t l, int which, const rt_row* x, int out_bits, int64_t* acc,
                           uint8_t* codes, rt_row* y, illm_rt_error* err) {
  const illm_rt_model* m = s->model;
  const rt_linear w = layer_linear(m, l, which);
  illm_rt_dyadic acc_scale;
  rt_requant r;
  int status = linear_accumulate(&w, x, m->settings.mantissa_bits, REGION(s, R_CENTERED, int16_t), acc, &acc_scale,
                                 kLinearNames[which], err);
  if (!status)
    status = di_requant(acc, (size_t)w.out, acc_scale.m, acc_scale.k, out_bits, m->settings.mantissa_bits, codes,
                        CODES_U8, &r, err, kNoClip);
  if (!status) *y = row_of(codes, out_bits, &r);
  return status;
}

/* h += DI-MatMul(x, layer linear `which`): the aligned accumulator goes straight into the residual add (fused
 * epilogue; o_proj, down_proj). */
static int linear_into_residual(illm_rt_session* s, int32_t l, int which, const rt_row* x, illm_rt_dyadic* s_h,
                                illm_rt_error* err) {
  const illm_rt_model* m = s->model;
  const rt_linear w = layer_linear(m, l, which);
  int64_t* acc = REGION(s, R_ACC, int64_t);
  illm_rt_dyadic acc_scale;
  int status = linear_accumulate(&w, x, m->settings.mantissa_bits, REGION(s, R_CENTERED, int16_t), acc, &acc_scale,
                                 kLinearNames[which], err);
  if (!status)
    status = residual_add(REGION(s, R_RESIDUAL, int16_t), s_h, acc, acc_scale, (size_t)m->shape.hidden,
                          m->settings.mantissa_bits, REGION(s, R_WORK64, int64_t), err);
  return status;
}

static int forward_layer(illm_rt_session* s, int32_t l, illm_rt_dyadic* s_h, illm_rt_error* err) {
  const illm_rt_model* m = s->model;
  const illm_rt_shape* S = &m->shape;
  const illm_rt_settings* st = &m->settings;
  const int b_m = st->mantissa_bits, a_bits = st->a_bits;
  const int32_t d = S->head_dim, group = S->n_heads / S->n_kv_heads;
  int64_t* acc = REGION(s, R_ACC, int64_t);
  int16_t* centered = REGION(s, R_CENTERED, int16_t);
  illm_rt_dyadic acc_scale, clip;
  rt_linear w;
  rt_row x, gate, up;
  rt_trip trip;
  rt_requant r;
  rt_head_sink sink;
  const rt_act_groups groups = act_groups_of(s); /* per-group activations at the four linear-input sites */
  int32_t h;
  int status;

  /* Attention half: DI-Norm -> q/k/v DI-MatMul -> RoPE + per-head codes -> cache -> attention. The q, k and v codes
   * are qkv_bits wide (u8 for every allowed width); the linear inputs around them stay a_bits. */
  status = norm_into(s, s_h, layer_channels(m, l, ILLM_RT_T_ATTN_NORM, 0), a_bits, &x, layer_clip(m, l, SITE_ATTN_IN),
                     layer_trip(m, l, TRIP_ATTN_IN), &groups, err);
  if (status) return status;
  sink.session = s;
  sink.layer = l;
  w = layer_linear(m, l, LIN_Q);
  sink.is_key = 0;
  status = linear_accumulate(&w, &x, b_m, centered, acc, &acc_scale, "q_proj", err);
  if (!status) status = rope_heads(s, acc, acc_scale, S->n_heads, &sink, layer_clip(m, l, SITE_Q), err);
  if (status) return status;
  w = layer_linear(m, l, LIN_K);
  sink.is_key = 1;
  status = linear_accumulate(&w, &x, b_m, centered, acc, &acc_scale, "k_proj", err);
  if (!status) status = rope_heads(s, acc, acc_scale, S->n_kv_heads, &sink, layer_clip(m, l, SITE_K), err);
  if (status) return status;
  w = layer_linear(m, l, LIN_V);
  status = linear_accumulate(&w, &x, b_m, centered, acc, &acc_scale, "v_proj", err);
  if (status) return status;
  for (h = 0; h < S->n_kv_heads; ++h) {
    const size_t slot = kv_slot(S, l, h, 1);
    status = di_requant(acc + (size_t)h * (size_t)d, (size_t)d, acc_scale.m, acc_scale.k, m->qkv_bits, b_m,
                        kv_codes_at(s, slot, s->position), CODES_U8, &r, err, layer_clip(m, l, SITE_V));
    if (status) return status;
    kv_store_meta(s, slot, s->position, &r);
  }

  clip.m = layer_scalar(m, l, 3);
  clip.k = (int32_t)layer_scalar(m, l, 4);
  for (h = 0; h < S->n_heads; ++h) {
    const rt_kv_view keys = kv_view(s, kv_slot(S, l, h / group, 0)), values = kv_view(s, kv_slot(S, l, h / group, 1));
    illm_rt_dyadic q_scale;
    q_scale.m = REGION(s, R_Q_SCALE_M, int32_t)[h];
    q_scale.k = REGION(s, R_Q_SCALE_K, int32_t)[h];
    status = attention_head_row(REGION(s, R_Q_CODES, uint8_t) + (size_t)h * (size_t)d,
                                REGION(s, R_Q_ZERO_POINTS, int32_t)[h], q_scale, &keys, &values, s->position + 1, d,
                                clip, st, REGION(s, R_ATT_LOGITS, int64_t), REGION(s, R_ATT_SHIFTED, int64_t),
                                REGION(s, R_ATT_PROBS, int32_t), REGION(s, R_ATT_ACC, int32_t),
                                REGION(s, R_HEAD_VALUES, int64_t) + (size_t)h * (size_t)d,
                                REGION(s, R_HEAD_EXPONENTS, int32_t) + h, err);
    if (status) return status;
  }
  trip = layer_trip(m, l, TRIP_ATTN_OUT);
  status = requantize_heads(REGION(s, R_HEAD_VALUES, int64_t), REGION(s, R_HEAD_EXPONENTS, int32_t), S->n_heads, d,
                            a_bits, b_m, REGION(s, R_WORK64, int64_t), site_codes(s, trip, a_bits), &r,
                            layer_clip(m, l, SITE_ATTN_OUT), trip, &groups, err);
  if (status) return status;
  x = site_row(s, a_bits, trip, &groups, &r);
  status = linear_into_residual(s, l, LIN_O, &x, s_h, err);
  if (status) return status;

  /* MLP half: DI-Norm -> gate/up DI-MatMul (swiglu_in_bits codes) -> DI-SwiGLU -> down_proj -> residual add. */
  status = norm_into(s, s_h, layer_channels(m, l, ILLM_RT_T_FFN_NORM, 1), a_bits, &x, layer_clip(m, l, SITE_FFN_IN),
                     layer_trip(m, l, TRIP_FFN_IN), &groups, err);
  if (!status) status = linear_to_codes(s, l, LIN_GATE, &x, st->swiglu_in_bits, acc, REGION(s, R_GATE, uint8_t), &gate, err);
  if (!status)
    status = linear_to_codes(s, l, LIN_UP, &x, st->swiglu_in_bits, REGION(s, R_ACC2, int64_t), REGION(s, R_UP, uint8_t), &up, err);
  if (status) return status;
  trip = layer_trip(m, l, TRIP_DOWN_IN);
  status = di_swiglu_row(&gate, &up, layer_channels(m, l, ILLM_RT_T_SWIGLU_INV_ALPHA, 2), (size_t)S->intermediate, st,
                         a_bits, REGION(s, R_WORK64, int64_t), REGION(s, R_WORK32, int32_t), site_codes(s, trip, a_bits),
                         (m->hadamard_sites & ILLM_RT_HADAMARD_DOWN) != 0, REGION(s, R_ACC, int64_t), &r,
                         layer_clip(m, l, SITE_DOWN_IN), trip, &groups, err);
  if (status) return status;
  x = site_row(s, a_bits, trip, &groups, &r);
  return linear_into_residual(s, l, LIN_DOWN, &x, s_h, err);
}

int illm_rt_forward(illm_rt_session* s, int32_t token, illm_rt_error* err) {
  const illm_rt_model* m;
  const illm_rt_shape* S;
  rt_tensor embed;
  illm_rt_dyadic s_h, logit_scale;
  rt_row x;
  rt_linear head;
  rt_channels final_norm;
  int16_t* h;
  int32_t l, c;
  int status;
  if (!s || !s->model) return fail(err, ILLM_RT_E_ARGUMENT, "forward: NULL session");
  m = s->model;
  S = &m->shape;
  if (token < 0 || token >= S->vocab)
    return fail_ii(err, ILLM_RT_E_TOKEN, "token id ", token, " outside the model's vocabulary [0, ", S->vocab, ")");
  if (s->position >= s->context)
    return fail_ii(err, ILLM_RT_E_CONTEXT, "position ", s->position, " passes the session's context of ", s->context,
                   " positions");

  /* Embedding rows are already a per-token quantized int16 residual. */
  embed = global_tensor(m, ILLM_RT_T_EMBED_CODES);
  h = REGION(s, R_RESIDUAL, int16_t);
  for (c = 0; c < S->hidden; ++c) {
    const size_t i = (size_t)token * (size_t)S->hidden + (size_t)c;
    h[c] = embed.dtype == ILLM_RT_DT_I8 ? (int16_t)(int8_t)(embed.p[i] >= 128 ? (int)embed.p[i] - 256 : (int)embed.p[i])
                                        : rd_i16(embed.p + 2 * i);
  }
  s_h = dyadic_at(global_tensor(m, ILLM_RT_T_EMBED_SCALES).p, (size_t)token);

  for (l = 0; l < S->n_layers; ++l) {
    status = forward_layer(s, l, &s_h, err);
    if (status) return status;
  }

  /* Final DI-Norm to head_input_bits codes (u16 wide codes above 8 bits), then the LM head's aligned accumulator = the
   * integer logits. */
  final_norm.mantissa = global_tensor(m, ILLM_RT_T_FINAL_NORM).p;
  final_norm.exponent = m->final_norm_exponent;
  status = norm_into(s, &s_h, final_norm, m->head_input_bits, &x, kNoClip, kNoTrip, &kNoActGroups, err);
  if (status) return status;
  head = head_linear(m);
  status = linear_accumulate(&head, &x, m->settings.mantissa_bits, REGION(s, R_CENTERED, int16_t),
                             REGION(s, R_LOGITS, int64_t), &logit_scale, "lm_head", err);
  if (status) return status;
  s->logits.values = REGION(s, R_LOGITS, int64_t);
  s->logits.scale = logit_scale;
  s->logits.vocab = S->vocab;
  s->position += 1;
  return ok(err);
}

int32_t illm_rt_argmax(const illm_rt_logits* logits) {
  int32_t best = 0, v;
  if (!logits || !logits->values || logits->vocab < 1) return -1;
  for (v = 1; v < logits->vocab; ++v)
    if (logits->values[v] > logits->values[best]) best = v; /* strict: ties keep the lowest id */
  return best;
}

int illm_rt_generate(illm_rt_session* s, const int32_t* prompt, int32_t n_prompt, int32_t max_tokens,
                     int32_t* out_ids, illm_rt_generation* result, illm_rt_token_callback callback, void* user,
                     illm_rt_error* err) {
  int32_t i;
  int status;
  if (!s || !s->model || !prompt || !result || (max_tokens > 0 && !out_ids))
    return fail(err, ILLM_RT_E_ARGUMENT, "generate: NULL argument");
  result->generated = 0;
  result->prompt_tokens = n_prompt;
  result->stopped_at_eos = 0;
  if (n_prompt < 1) return fail(err, ILLM_RT_E_ARGUMENT, "generation needs a prompt of at least one token");
  if (max_tokens < 0) return fail(err, ILLM_RT_E_ARGUMENT, "max_tokens must be >= 0");
  if (n_prompt >= s->context)
    return fail_ii(err, ILLM_RT_E_CONTEXT, "the prompt has ", n_prompt, " tokens; the context allows ", s->context,
                   " positions");
  for (i = 0; i < n_prompt; ++i)
    if (prompt[i] < 0 || prompt[i] >= s->model->shape.vocab)
      return fail_ii(err, ILLM_RT_E_TOKEN, "prompt token id ", prompt[i], " is outside the model's vocabulary [0, ",
                     s->model->shape.vocab, ")");
  illm_rt_session_reset(s);
  for (i = 0; i < n_prompt; ++i) {
    status = illm_rt_forward(s, prompt[i], err);
    if (status) return status;
  }
  for (i = 0; i < max_tokens; ++i) {
    const int32_t next = illm_rt_argmax(&s->logits);
    if (next == s->model->shape.eos_id) {
      result->stopped_at_eos = 1;
      break;
    }
    out_ids[result->generated++] = next;
    if (callback && callback(user, next) != 0) break;
    if (i + 1 == max_tokens || s->position >= s->context) break;
    status = illm_rt_forward(s, next, err);
    if (status) return status;
  }
  return ok(err);
}

/* ============================================================================================================
 * Loading: header, checksum, tensor table, then the value checks of validate_quantized_model (kernels/executor.cpp). */

typedef struct {
  int kind;
  uint32_t layer;
  int dtype;
  uint64_t rows, cols;
} rt_expected;

static uint64_t element_bytes(int dtype) {
  switch (dtype) {
    case ILLM_RT_DT_U8: case ILLM_RT_DT_I8: return 1;
    case ILLM_RT_DT_I16: return 2;
    case ILLM_RT_DT_I32: case ILLM_RT_DT_U32: return 4;
    case ILLM_RT_DT_I64: return 8;
    default: return 0;
  }
}

/* Bytes of a [rows][cols] tensor (U4: each row packed on its own); 0 with *overflow set when it passes 2^62. */
static uint64_t tensor_bytes(int dtype, uint64_t rows, uint64_t cols, int* overflow) {
  const uint64_t row_bytes = dtype == ILLM_RT_DT_U4 ? (cols + 1) / 2 : cols * element_bytes(dtype);
  const rt_u128 total = rt_u128_mul64(rows, row_bytes);
  if (total.hi != 0 || total.lo > ((uint64_t)1 << 62) || cols > ((uint64_t)1 << 40)) {
    *overflow = 1;
    return 0;
  }
  return total.lo;
}

static const char* kind_name(int kind) {
  static const char* const globals[ILLM_RT_GLOBAL_TENSORS] = {
      "embed_codes", "embed_scales", "rope_cos", "rope_sin", "final_norm", "lm_head.codes", "lm_head.zero_points",
      "lm_head.scales", "layer_scalars"};
  static const char* const layer_parts[3] = {"attn_norm", "ffn_norm", "swiglu_inv_alpha"};
  static const char* const tokenizer[ILLM_RT_TOKENIZER_TENSORS] = {
      "tokenizer.params", "tokenizer.piece_offsets", "tokenizer.piece_bytes", "tokenizer.piece_types",
      "tokenizer.piece_ranks", "tokenizer.sorted_ids", "tokenizer.unk_surface"};
  if (kind >= 1 && kind <= ILLM_RT_GLOBAL_TENSORS) return globals[kind - 1];
  if (kind >= ILLM_RT_T_ATTN_NORM && kind < ILLM_RT_T_LINEAR_FIRST) return layer_parts[kind - ILLM_RT_T_ATTN_NORM];
  if (kind >= ILLM_RT_T_LINEAR_FIRST && kind < ILLM_RT_T_ATTN_NORM + ILLM_RT_LAYER_TENSORS)
    return kLinearNames[(kind - ILLM_RT_T_LINEAR_FIRST) / 3];
  if (kind >= ILLM_RT_T_TOK_PARAMS && kind < ILLM_RT_T_TOK_PARAMS + ILLM_RT_TOKENIZER_TENSORS)
    return tokenizer[kind - ILLM_RT_T_TOK_PARAMS];
  return "tensor";
}

static int entry_fail(illm_rt_error* err, uint32_t index, const rt_expected* want, const char* what, int64_t got,
                      int64_t expected) {
  rt_msg m = msg_begin(err, ILLM_RT_E_LAYOUT);
  msg_s(&m, "model.bin: tensor ");
  msg_i(&m, index);
  msg_s(&m, " (");
  if (want->layer != ILLM_RT_NO_LAYER) {
    msg_s(&m, "layers[");
    msg_i(&m, want->layer);
    msg_s(&m, "].");
  }
  msg_s(&m, kind_name(want->kind));
  if (want->kind >= ILLM_RT_T_LINEAR_FIRST && want->kind < ILLM_RT_T_ATTN_NORM + ILLM_RT_LAYER_TENSORS) {
    static const char* const parts[3] = {".codes", ".zero_points", ".scales"};
    msg_s(&m, parts[(want->kind - ILLM_RT_T_LINEAR_FIRST) % 3]);
  }
  msg_s(&m, "): ");
  msg_s(&m, what);
  msg_s(&m, " ");
  msg_i(&m, got);
  if (expected >= 0) {
    msg_s(&m, ", expected ");
    msg_i(&m, expected);
  }
  return ILLM_RT_E_LAYOUT;
}

/* Entry `index` must be the expected tensor, inside the file, aligned, and exactly as large as its shape. The
 * tokenizer's byte tensors have a free length (want->rows == UINT64_MAX: any). */
static int check_entry(const illm_rt_model* m, uint32_t index, const rt_expected* want, uint64_t table_end,
                       illm_rt_error* err) {
  const uint8_t* e = m->data + (size_t)m->tensor_table + (size_t)index * ILLM_RT_TENSOR_ENTRY_SIZE;
  const uint64_t offset = rd_u64(e + ILLM_RT_ENT_OFFSET), size = rd_u64(e + ILLM_RT_ENT_SIZE);
  const uint64_t rows = rd_u32(e + ILLM_RT_ENT_ROWS), cols = rd_u32(e + ILLM_RT_ENT_COLS);
  int overflow = 0;
  uint64_t expected_size;
  if (rd_u16(e + ILLM_RT_ENT_KIND) != want->kind) return entry_fail(err, index, want, "has kind", rd_u16(e + ILLM_RT_ENT_KIND), want->kind);
  if (rd_u16(e + ILLM_RT_ENT_LAYER) != want->layer) return entry_fail(err, index, want, "has layer", rd_u16(e + ILLM_RT_ENT_LAYER), want->layer);
  if (e[ILLM_RT_ENT_DTYPE] != want->dtype) return entry_fail(err, index, want, "has element type", e[ILLM_RT_ENT_DTYPE], want->dtype);
  if (e[ILLM_RT_ENT_FLAGS] != 0) return entry_fail(err, index, want, "has unsupported flags", e[ILLM_RT_ENT_FLAGS], 0);
  if (want->rows != UINT64_MAX && rows != want->rows) return entry_fail(err, index, want, "has rows", (int64_t)rows, (int64_t)want->rows);
  if (cols != want->cols) return entry_fail(err, index, want, "has columns", (int64_t)cols, (int64_t)want->cols);
  expected_size = tensor_bytes(want->dtype, rows, cols, &overflow);
  if (overflow || size != expected_size)
    return entry_fail(err, index, want, "has size", (int64_t)(size > (uint64_t)INT64_MAX ? INT64_MAX : size), (int64_t)expected_size);
  if (offset % ILLM_RT_ALIGNMENT != 0) return entry_fail(err, index, want, "offset is not 64-byte aligned:", (int64_t)(offset & 0x7FFFFFFFFFFFFFFFu), -1);
  if (offset < table_end || offset > m->size || size > m->size - offset)
    return entry_fail(err, index, want, "lies outside the file: offset", (int64_t)(offset & 0x7FFFFFFFFFFFFFFFu), -1);
  return ILLM_RT_OK;
}

static rt_expected expected(int kind, uint32_t layer, int dtype, uint64_t rows, uint64_t cols) {
  rt_expected e;
  e.kind = kind;
  e.layer = layer;
  e.dtype = dtype;
  e.rows = rows;
  e.cols = cols;
  return e;
}

/* Groups per row of a block linear or the LM head: the column count of its zero-point tensor. With the per-group
 * feature bit, any count whose G = in / groups is 32, 64 or 128; else (or for any other count) 1, so that
 * check_entry refuses the entry by its columns. */
static uint64_t linear_groups(const illm_rt_model* m, uint32_t zero_point_entry, uint64_t in) {
  const uint8_t* e = m->data + (size_t)m->tensor_table + (size_t)zero_point_entry * ILLM_RT_TENSOR_ENTRY_SIZE;
  const uint64_t groups = rd_u32(e + ILLM_RT_ENT_COLS);
  if (!(m->required_features & ILLM_RT_REQUIRED_GROUP_SCALES) || groups < 2 || in % groups != 0) return 1;
  return (in / groups == 32 || in / groups == 64 || in / groups == 128) ? groups : 1;
}

static int check_table(const illm_rt_model* m, illm_rt_error* err) {
  const illm_rt_shape* S = &m->shape;
  const illm_rt_settings* st = &m->settings;
  const uint64_t table_end = m->tensor_table + (uint64_t)m->tensor_count * ILLM_RT_TENSOR_ENTRY_SIZE;
  const uint64_t q_width = (uint64_t)S->n_heads * (uint64_t)S->head_dim, kv_width = (uint64_t)S->n_kv_heads * (uint64_t)S->head_dim;
  const uint64_t outs[ILLM_RT_LINEARS] = {q_width, kv_width, kv_width, (uint64_t)S->hidden, (uint64_t)S->intermediate,
                                         (uint64_t)S->intermediate, (uint64_t)S->hidden};
  const uint64_t ins[ILLM_RT_LINEARS] = {(uint64_t)S->hidden, (uint64_t)S->hidden, (uint64_t)S->hidden, q_width,
                                        (uint64_t)S->hidden, (uint64_t)S->hidden, (uint64_t)S->intermediate};
  const int w_codes = st->w_bits <= 4 ? ILLM_RT_DT_U4 : ILLM_RT_DT_U8;
  const uint32_t G = ILLM_RT_NO_LAYER;
  rt_expected globals[ILLM_RT_GLOBAL_TENSORS];
  const uint64_t head_groups = linear_groups(m, global_entry(ILLM_RT_T_LM_HEAD_ZERO_POINTS), (uint64_t)S->hidden);
  uint32_t i, l;
  int status, j;
  globals[0] = expected(ILLM_RT_T_EMBED_CODES, G, st->embed_bits <= 8 ? ILLM_RT_DT_I8 : ILLM_RT_DT_I16, (uint64_t)S->vocab, (uint64_t)S->hidden);
  globals[1] = expected(ILLM_RT_T_EMBED_SCALES, G, ILLM_RT_DT_I32, (uint64_t)S->vocab, 2);
  globals[2] = expected(ILLM_RT_T_ROPE_COS, G, ILLM_RT_DT_I16, (uint64_t)S->max_positions, (uint64_t)S->head_dim / 2);
  globals[3] = expected(ILLM_RT_T_ROPE_SIN, G, ILLM_RT_DT_I16, (uint64_t)S->max_positions, (uint64_t)S->head_dim / 2);
  globals[4] = expected(ILLM_RT_T_FINAL_NORM, G, ILLM_RT_DT_I32, (uint64_t)S->hidden, 1);
  globals[5] = expected(ILLM_RT_T_LM_HEAD_CODES, G, st->head_bits <= 4 ? ILLM_RT_DT_U4 : ILLM_RT_DT_U8, (uint64_t)S->vocab, (uint64_t)S->hidden);
  globals[6] = expected(ILLM_RT_T_LM_HEAD_ZERO_POINTS, G, ILLM_RT_DT_U8, (uint64_t)S->vocab, head_groups);
  globals[7] = expected(ILLM_RT_T_LM_HEAD_SCALES, G, ILLM_RT_DT_I32, (uint64_t)S->vocab * head_groups, 2);
  globals[8] = expected(ILLM_RT_T_LAYER_SCALARS, G, ILLM_RT_DT_I64, (uint64_t)S->n_layers, ILLM_RT_LAYER_SCALAR_COUNT);
  for (i = 0; i < ILLM_RT_GLOBAL_TENSORS; ++i) {
    status = check_entry(m, i, &globals[i], table_end, err);
    if (status) return status;
  }
  for (l = 0; l < (uint32_t)S->n_layers; ++l) {
    rt_expected want = expected(ILLM_RT_T_ATTN_NORM, l, ILLM_RT_DT_I32, (uint64_t)S->hidden, 1);
    status = check_entry(m, layer_entry((int32_t)l, ILLM_RT_T_ATTN_NORM), &want, table_end, err);
    if (status) return status;
    want = expected(ILLM_RT_T_FFN_NORM, l, ILLM_RT_DT_I32, (uint64_t)S->hidden, 1);
    status = check_entry(m, layer_entry((int32_t)l, ILLM_RT_T_FFN_NORM), &want, table_end, err);
    if (status) return status;
    want = expected(ILLM_RT_T_SWIGLU_INV_ALPHA, l, ILLM_RT_DT_I32, (uint64_t)S->intermediate, 1);
    status = check_entry(m, layer_entry((int32_t)l, ILLM_RT_T_SWIGLU_INV_ALPHA), &want, table_end, err);
    if (status) return status;
    for (j = 0; j < ILLM_RT_LINEARS; ++j) {
      const int base = ILLM_RT_T_LINEAR_FIRST + 3 * j;
      rt_expected parts[3];
      int part;
      const uint64_t groups = linear_groups(m, layer_entry((int32_t)l, base + 1), ins[j]);
      /* Per-group activations with per-group weights: every weight group must hold whole activation groups. */
      if (groups > 1 && m->act_group_size > 0 && (ins[j] / groups) % (uint64_t)m->act_group_size != 0) {
        const rt_name n = layer_name((int32_t)l, kLinearNames[j]);
        rt_msg msg = msg_begin(err, ILLM_RT_E_INVALID);
        msg_s(&msg, "model.bin: ");
        msg_s(&msg, n.s);
        msg_s(&msg, " has weight groups of ");
        msg_i(&msg, (int64_t)(ins[j] / groups));
        msg_s(&msg, " columns, which act_group_size ");
        msg_i(&msg, m->act_group_size);
        msg_s(&msg, " does not divide");
        return ILLM_RT_E_INVALID;
      }
      parts[0] = expected(base, l, w_codes, outs[j], ins[j]);
      parts[1] = expected(base + 1, l, ILLM_RT_DT_U8, outs[j], groups);
      parts[2] = expected(base + 2, l, ILLM_RT_DT_I32, outs[j] * groups, 2);
      for (part = 0; part < 3; ++part) {
        status = check_entry(m, layer_entry((int32_t)l, base + part), &parts[part], table_end, err);
        if (status) return status;
      }
    }
  }
  if (m->required_features & ILLM_RT_FEATURE_ACT_CLIP) {
    const rt_expected want = expected(ILLM_RT_T_ACT_CLIP, G, ILLM_RT_DT_I64, (uint64_t)S->n_layers, 2 * ILLM_RT_ACT_CLIP_SITES);
    status = check_entry(m, m->act_clip_tensor, &want, table_end, err);
    if (status) return status;
  }
  if (m->required_features & ILLM_RT_REQUIRED_TRIP)
    for (l = 0; l < (uint32_t)S->n_layers; ++l) {
      const uint64_t rows = ILLM_RT_TRIP_HEADER + 2 * (uint64_t)S->hidden + q_width + (uint64_t)S->intermediate;
      const rt_expected want = expected(ILLM_RT_T_TRIP, l, ILLM_RT_DT_U8, rows, 1);
      status = check_entry(m, m->trip_first_tensor + l, &want, table_end, err);
      if (status) return status;
    }
  if (m->optional_features & ILLM_RT_FEATURE_TOKENIZER) {
    const uint32_t first = m->tok_first_tensor;
    rt_tensor params;
    uint64_t vocab;
    rt_expected want = expected(ILLM_RT_T_TOK_PARAMS, G, ILLM_RT_DT_I32, ILLM_RT_TOK_PARAM_COUNT, 1);
    status = check_entry(m, first, &want, table_end, err);
    if (status) return status;
    params = tensor_at(m, first);
    if (rd_i32(params.p) < 1 || rd_i32(params.p) > (1 << 24))
      return fail_i(err, ILLM_RT_E_INVALID, "model.bin: tokenizer vocabulary size ", rd_i32(params.p), " outside [1, 2^24]");
    vocab = (uint64_t)rd_i32(params.p);
    {
      rt_expected tok[ILLM_RT_TOKENIZER_TENSORS - 1];
      tok[0] = expected(ILLM_RT_T_TOK_PIECE_OFFSETS, G, ILLM_RT_DT_U32, vocab + 1, 1);
      tok[1] = expected(ILLM_RT_T_TOK_PIECE_BYTES, G, ILLM_RT_DT_U8, UINT64_MAX, 1);
      tok[2] = expected(ILLM_RT_T_TOK_PIECE_TYPES, G, ILLM_RT_DT_U8, vocab, 1);
      tok[3] = expected(ILLM_RT_T_TOK_PIECE_RANKS, G, ILLM_RT_DT_I32, vocab, 1);
      tok[4] = expected(ILLM_RT_T_TOK_SORTED_IDS, G, ILLM_RT_DT_U32, vocab, 1);
      tok[5] = expected(ILLM_RT_T_TOK_UNK_SURFACE, G, ILLM_RT_DT_U8, UINT64_MAX, 1);
      for (i = 0; i < ILLM_RT_TOKENIZER_TENSORS - 1; ++i) {
        status = check_entry(m, first + 1 + i, &tok[i], table_end, err);
        if (status) return status;
      }
    }
  }
  return ILLM_RT_OK;
}

static int check_shape_and_settings(const illm_rt_model* m, illm_rt_error* err) {
  const illm_rt_shape* s = &m->shape;
  const illm_rt_settings* st = &m->settings;
  int64_t q_a;
  int status;
#define RT_CHECK(name, value, lo, hi) \
  if ((status = check_range(err, name, (value), (lo), (hi))) != ILLM_RT_OK) return status
  RT_CHECK("shape.hidden", s->hidden, 1, 32768);
  RT_CHECK("shape.n_heads", s->n_heads, 1, 4096);
  RT_CHECK("shape.n_kv_heads", s->n_kv_heads, 1, s->n_heads);
  if (s->n_heads % s->n_kv_heads != 0)
    return fail_ii(err, ILLM_RT_E_INVALID, "model.bin: shape.n_kv_heads = ", s->n_kv_heads, " does not divide n_heads = ", s->n_heads, "");
  RT_CHECK("shape.head_dim", s->head_dim, 2, 32768);
  if (s->head_dim % 2 != 0) return fail_i(err, ILLM_RT_E_INVALID, "model.bin: shape.head_dim = ", s->head_dim, " is odd (RoPE pairs channels)");
  RT_CHECK("shape.intermediate", s->intermediate, 1, 1 << 20);
  RT_CHECK("shape.n_layers", s->n_layers, 0, 4096);
  RT_CHECK("shape.vocab", s->vocab, 1, 1 << 24);
  RT_CHECK("shape.max_positions", s->max_positions, 1, 1 << 24);
  RT_CHECK("settings.w_bits", st->w_bits, 2, 8);
  RT_CHECK("settings.a_bits", st->a_bits, 2, 8);
  RT_CHECK("settings.mantissa_bits", st->mantissa_bits, 1, 24);
  RT_CHECK("settings.softmax_in_bits", st->softmax_in_bits, 1, 16);
  RT_CHECK("settings.prob_bits", st->prob_bits, 1, 31);
  RT_CHECK("settings.sigmoid_bits", st->sigmoid_bits, 1, 30);
  RT_CHECK("settings.swiglu_in_bits", st->swiglu_in_bits, 2, 8);
  RT_CHECK("settings.norm_frac_bits", st->norm_frac_bits, 1, 20);
  RT_CHECK("settings.head_bits", st->head_bits, 2, 8);
  RT_CHECK("settings.embed_bits", st->embed_bits, 2, 16);
  RT_CHECK("settings.exp_quadratic", st->exp_quadratic, 0, 1);
  RT_CHECK("settings.sigmoid_stable", st->sigmoid_stable, 0, 1);
  RT_CHECK("settings.paper_conformance", st->paper_conformance, 0, 1);
  /* The attention reads Q, K and V codes of qkv_bits (check_qkv_bits: a_bits, already checked, or a width in [2, 8]). */
  q_a = ((int64_t)1 << m->qkv_bits) - 1;
  if (!fits_int32_accumulator(s->head_dim, q_a, q_a))
    return fail_ii(err, ILLM_RT_E_INVALID, "model.bin: shape.head_dim = ", s->head_dim,
                   " overflows the int32 Q K accumulator at Q/K/V width ", m->qkv_bits, "");
  if (((int64_t)1 << (st->prob_bits - 1)) * q_a > 2147483647)
    return fail_ii(err, ILLM_RT_E_INVALID, "model.bin: settings.prob_bits = ", st->prob_bits,
                   " overflows the int32 P V accumulator at Q/K/V width ", m->qkv_bits, "");
  RT_CHECK("norm_eps.m", m->norm_eps.m, 0, ((int64_t)1 << 40) - 1);
  RT_CHECK("norm_eps.k", m->norm_eps.k, -64, 160);
  RT_CHECK("rope_frac_bits", m->rope_frac_bits, 1, 14);
  RT_CHECK("final_norm.exponent", m->final_norm_exponent, -64, 96);
#undef RT_CHECK
  return ILLM_RT_OK;
}

static int check_channel_vector(const rt_name* name, const uint8_t* mantissa, int32_t n, int64_t exponent, int64_t lo,
                                int64_t hi, illm_rt_error* err) {
  int32_t c;
  for (c = 0; c < n; ++c) {
    const int64_t v = rd_i32(mantissa + 4 * (size_t)c);
    if (v < lo || v > hi) return fail_range(err, ILLM_RT_E_INVALID, name, ".mantissa", c, v, lo, hi);
  }
  if (exponent < -64 || exponent > 96) return fail_range(err, ILLM_RT_E_INVALID, name, ".exponent", -1, exponent, -64, 96);
  return ILLM_RT_OK;
}

static int check_linear_values(const rt_linear* w, const rt_name* name, int32_t input_bits, int mantissa_bits,
                               illm_rt_error* err) {
  const int64_t q = ((int64_t)1 << w->bits) - 1, q_in = ((int64_t)1 << input_bits) - 1;
  rt_scales scales;
  int32_t exponent, j, c;
  rt_u128 worst;
  for (j = 0; j < w->out; ++j) {
    const uint8_t* row = w->codes + (size_t)j * w->row_bytes;
    if (q != (w->packed ? 15 : 255)) /* else every stored value is a valid code */
      for (c = 0; c < w->in; ++c) {
        const int32_t code = weight_code(w, j, c);
        if (code > q) return fail_range(err, ILLM_RT_E_INVALID, name, ".codes", (int64_t)j * w->in + c, code, 0, q);
      }
    if (w->packed && (w->in & 1) && (row[w->row_bytes - 1] >> 4) != 0)
      return fail_range(err, ILLM_RT_E_INVALID, name, ".codes padding nibble of row", j, row[w->row_bytes - 1] >> 4, 0, 0);
  }
  for (j = 0; j < w->out * w->groups; ++j) { /* one zero point and scale per (row, group) */
    const illm_rt_dyadic s = dyadic_at(w->scales, (size_t)j);
    if (w->zero_points[j] > q) return fail_range(err, ILLM_RT_E_INVALID, name, ".zero_points", j, w->zero_points[j], 0, q);
    if (s.m < 1 || s.m > ((int64_t)1 << 24) - 1)
      return fail_range(err, ILLM_RT_E_INVALID, name, ".scales.m", j, s.m, 1, ((int64_t)1 << 24) - 1);
  }
  /* Section 3.6: the aligned accumulator P' = P mu (mu < 2^24) must fit int64 for this reduction length. */
  worst = rt_u128_shl(rt_u128_mul64((uint64_t)w->in * (uint64_t)q_in, (uint64_t)q), RT_ALIGNED_MANTISSA_BITS);
  if (worst.hi != 0 || worst.lo >= ((uint64_t)1 << 63)) {
    rt_msg m = msg_begin(err, ILLM_RT_E_INVALID);
    msg_s(&m, "model.bin: ");
    msg_s(&m, name->s);
    msg_s(&m, ": reduction length ");
    msg_i(&m, w->in);
    msg_s(&m, " can overflow the int64 aligned accumulator");
    return ILLM_RT_E_INVALID;
  }
  /* The column alignment the executor prepares once per weight (prepare_linear). */
  scales.pairs = w->scales;
  scales.m = scales.k = 0;
  exponent = alignment_exponent(&scales, (size_t)w->out * (size_t)w->groups, mantissa_bits);
  for (j = 0; j < w->out * w->groups; ++j)
    if (aligned_mantissa(dyadic_at(w->scales, (size_t)j), exponent) < 0)
      return alignment_fail(err, name->s, (size_t)j, dyadic_at(w->scales, (size_t)j).m, mantissa_bits);
  return ILLM_RT_OK;
}

/* A layer's TRIP tensor (docs/model-bin.md): K in [0, 8], site flags 0/1 (all 0 when K = 0), exponents in [0, K] for a
 * site that is on and 0 otherwise, codes of a_bits + E <= 16 bits, none at down_in with the online down_proj
 * Hadamard (the executor's validate_quantized_model). */
static int check_trip_values(const illm_rt_model* m, int32_t l, illm_rt_error* err) {
  const uint8_t* p;
  rt_name n = layer_name(l, "trip");
  int site;
  if (!(m->required_features & ILLM_RT_REQUIRED_TRIP)) return ILLM_RT_OK;
  p = tensor_at(m, m->trip_first_tensor + (uint32_t)l).p;
  if (p[0] > 8) return fail_range(err, ILLM_RT_E_INVALID, &n, ".max_shift", -1, p[0], 0, 8);
  for (site = 0; site < ILLM_RT_TRIP_SITES; ++site) {
    size_t width, c;
    const size_t offset = trip_site_offset(&m->shape, site, &width);
    const int on = p[1 + site] != 0;
    const int64_t top = on ? p[0] : 0;
    if (p[1 + site] > (p[0] != 0 ? 1 : 0)) return fail_range(err, ILLM_RT_E_INVALID, &n, ".sites", site, p[1 + site], 0, p[0] != 0);
    for (c = 0; c < width; ++c)
      if (p[offset + c] > top) return fail_range(err, ILLM_RT_E_INVALID, &n, ".alpha", (int64_t)(offset + c), p[offset + c], 0, top);
    if (!on) continue;
    if (m->settings.a_bits + layer_trip(m, l, site).extra_bits > 16)
      return fail_range(err, ILLM_RT_E_INVALID, &n, ".code_bits", site, m->settings.a_bits + layer_trip(m, l, site).extra_bits, 1, 16);
    if (site == TRIP_DOWN_IN && (m->hadamard_sites & ILLM_RT_HADAMARD_DOWN))
      return fail(err, ILLM_RT_E_INVALID, "model.bin: TRIP factors at down_in do not compose with the online down_proj Hadamard");
  }
  return ILLM_RT_OK;
}

static int check_values(const illm_rt_model* m, illm_rt_error* err) {
  const illm_rt_shape* S = &m->shape;
  const illm_rt_settings* st = &m->settings;
  const int64_t gamma_limit = ((int64_t)1 << 31) - 1;
  const rt_tensor embed = global_tensor(m, ILLM_RT_T_EMBED_CODES), embed_scales = global_tensor(m, ILLM_RT_T_EMBED_SCALES);
  const int64_t q_embed = ((int64_t)1 << (st->embed_bits - 1)) - 1;
  const size_t table = (size_t)S->vocab * (size_t)S->hidden;
  rt_name name;
  rt_linear head;
  size_t i;
  int32_t l, v;
  int status, j;
  name = name_of("embed_codes");
  for (i = 0; i < table; ++i) {
    const int64_t code = embed.dtype == ILLM_RT_DT_I8 ? (embed.p[i] >= 128 ? (int64_t)embed.p[i] - 256 : (int64_t)embed.p[i])
                                                      : rd_i16(embed.p + 2 * i);
    if (code > q_embed || code < -q_embed) return fail_range(err, ILLM_RT_E_INVALID, &name, "", (int64_t)i, code, -q_embed, q_embed);
  }
  name = name_of("embed_scales");
  for (v = 0; v < S->vocab; ++v) {
    const illm_rt_dyadic s = dyadic_at(embed_scales.p, (size_t)v);
    if (s.m < 1) return fail_range(err, ILLM_RT_E_INVALID, &name, ".m", v, s.m, 1, gamma_limit);
  }
  for (l = 0; l < S->n_layers; ++l) {
    rt_name n = layer_name(l, "attn_norm");
    status = check_channel_vector(&n, layer_tensor(m, l, ILLM_RT_T_ATTN_NORM).p, S->hidden, layer_scalar(m, l, 0), -gamma_limit, gamma_limit, err);
    if (status) return status;
    n = layer_name(l, "ffn_norm");
    status = check_channel_vector(&n, layer_tensor(m, l, ILLM_RT_T_FFN_NORM).p, S->hidden, layer_scalar(m, l, 1), -gamma_limit, gamma_limit, err);
    if (status) return status;
    n = layer_name(l, "swiglu_inv_alpha");
    status = check_channel_vector(&n, layer_tensor(m, l, ILLM_RT_T_SWIGLU_INV_ALPHA).p, S->intermediate, layer_scalar(m, l, 2), 0,
                                  ((int64_t)1 << 24) - 1, err);
    if (status) return status;
    status = check_trip_values(m, l, err);
    if (status) return status;
    for (j = 0; j < ILLM_RT_LINEARS; ++j) {
      /* The input of linear j comes from TRIP site attn_in (q, k, v), attn_out (o), ffn_in (gate, up), down_in. */
      static const int input_site[ILLM_RT_LINEARS] = {TRIP_ATTN_IN, TRIP_ATTN_IN, TRIP_ATTN_IN, TRIP_ATTN_OUT,
                                                      TRIP_FFN_IN,  TRIP_FFN_IN,  TRIP_DOWN_IN};
      const rt_linear w = layer_linear(m, l, j);
      n = layer_name(l, kLinearNames[j]);
      status = check_linear_values(&w, &n, st->a_bits + layer_trip(m, l, input_site[j]).extra_bits, st->mantissa_bits,
                                   err);
      if (status) return status;
    }
    n = layer_name(l, "softmax_clip");
    if (layer_scalar(m, l, 3) < 0 || layer_scalar(m, l, 3) > ((int64_t)1 << 40) - 1)
      return fail_range(err, ILLM_RT_E_INVALID, &n, ".m", -1, layer_scalar(m, l, 3), 0, ((int64_t)1 << 40) - 1);
    if (layer_scalar(m, l, 4) < -64 || layer_scalar(m, l, 4) > 96)
      return fail_range(err, ILLM_RT_E_INVALID, &n, ".k", -1, layer_scalar(m, l, 4), -64, 96);
    n = layer_name(l, "act_clip");
    for (j = 0; j < ILLM_RT_ACT_CLIP_SITES; ++j) {
      const uint8_t* p;
      int64_t cm, ck;
      if (!(m->required_features & ILLM_RT_FEATURE_ACT_CLIP)) break;
      p = tensor_at(m, m->act_clip_tensor).p + 8 * (2 * ((size_t)l * ILLM_RT_ACT_CLIP_SITES + (size_t)j));
      cm = rd_i64(p);
      ck = rd_i64(p + 8);
      if (cm == 0) continue;
      if (ck < 0 || ck > 30) return fail_range(err, ILLM_RT_E_INVALID, &n, ".k", j, ck, 0, 30);
      if (cm < 1 || cm > ((int64_t)1 << ck)) return fail_range(err, ILLM_RT_E_INVALID, &n, ".m", j, cm, 1, (int64_t)1 << ck);
    }
  }
  name = name_of("final_norm");
  status = check_channel_vector(&name, global_tensor(m, ILLM_RT_T_FINAL_NORM).p, S->hidden, m->final_norm_exponent,
                                -gamma_limit, gamma_limit, err);
  if (status) return status;
  head = head_linear(m);
  name = name_of("lm_head");
  return check_linear_values(&head, &name, m->head_input_bits, st->mantissa_bits, err);
}

#define RT_IMPLEMENTED_FEATURES                                                                              \
  (ILLM_RT_REQUIRED_GROUP_SCALES | ILLM_RT_REQUIRED_HADAMARD | ILLM_RT_FEATURE_ACT_CLIP | ILLM_RT_REQUIRED_TRIP | \
   ILLM_RT_REQUIRED_ACT_GROUPS | ILLM_RT_REQUIRED_HEAD_INPUT | ILLM_RT_REQUIRED_QKV_BITS)

/* Per-group activations (required bit 4): G in {8, 16, 32, 64, 128} (a width G does not divide ends in a short
 * group; builds before that rule refuse such a G here), mantissa_bits >= 2 (no group but an all-zero one has the
 * scale (1, 0)), and no TRIP factors (the executor's validate_quantized_model: no operator for the pair). Per-group
 * weights of a block linear need G a multiple of act_group_size (check_table), so they never see a short group; the
 * LM head's groups are independent of it. */
static int check_act_groups(illm_rt_model* m, illm_rt_error* err) {
  const uint32_t G = rd_u32(m->data + ILLM_RT_H_ACT_GROUP_SIZE);
  m->act_group_size = 0;
  if ((m->required_features & ILLM_RT_REQUIRED_ACT_GROUPS) ? (G != 8 && G != 16 && G != 32 && G != 64 && G != 128)
                                                          : G != 0)
    return fail_i(err, ILLM_RT_E_INVALID, "model.bin: act_group_size ", G,
                  " does not match the required feature 16 (8, 16, 32, 64 or 128 with it, else 0)");
  if (G == 0) return ILLM_RT_OK;
  m->act_group_size = (int32_t)G;
  if (m->settings.mantissa_bits < 2)
    return fail(err, ILLM_RT_E_INVALID, "model.bin: per-group activations need settings.mantissa_bits >= 2");
  if (m->required_features & ILLM_RT_REQUIRED_TRIP)
    return fail(err, ILLM_RT_E_INVALID, "model.bin: per-group activations do not compose with TRIP channel factors");
  return ILLM_RT_OK;
}

/* A code width in the header with its required bit: lo..hi at `offset` with the bit, 0 there without it (the width
 * is then `fallback`, as in every file before the feature). */
typedef struct {
  uint32_t offset, bit;
  const char* name;          /* the setting, as the executor names it */
  int32_t lo, hi;
  const char* without_text;  /* what the width is without the bit */
} rt_width_field;

static int check_width_field(const illm_rt_model* m, const rt_width_field* f, int32_t fallback, int32_t* width,
                             illm_rt_error* err) {
  const uint32_t bits = rd_u32(m->data + f->offset);
  const int with_bit = (m->required_features & f->bit) != 0;
  rt_msg msg;
  *width = fallback;
  if (with_bit ? (bits >= (uint32_t)f->lo && bits <= (uint32_t)f->hi) : bits == 0) {
    if (with_bit) *width = (int32_t)bits;
    return ILLM_RT_OK;
  }
  msg = msg_begin(err, ILLM_RT_E_INVALID);
  msg_s(&msg, "model.bin: settings.");
  msg_s(&msg, f->name);
  msg_s(&msg, " = ");
  msg_i(&msg, bits);
  if (with_bit) {
    msg_s(&msg, " outside [");
    msg_i(&msg, f->lo);
    msg_s(&msg, ", ");
    msg_i(&msg, f->hi);
    msg_s(&msg, "] (required feature ");
    msg_i(&msg, f->bit);
    msg_s(&msg, ")");
  } else {
    msg_s(&msg, " without the required feature ");
    msg_i(&msg, f->bit);
    msg_s(&msg, " (0 then: ");
    msg_s(&msg, f->without_text);
    msg_s(&msg, ")");
  }
  return ILLM_RT_E_INVALID;
}

/* The LM head's input width (required bit 5, value 32): 2..16, else head_bits. */
static int check_head_input(illm_rt_model* m, illm_rt_error* err) {
  static const rt_width_field field = {ILLM_RT_H_HEAD_INPUT_BITS, ILLM_RT_REQUIRED_HEAD_INPUT, "head_in_bits", 2, 16,
                                       "the head's input is head_bits wide"};
  return check_width_field(m, &field, m->settings.head_bits, &m->head_input_bits, err);
}

/* The Q/K/V code width (required bit 6, value 64): 2..8, else a_bits. Runs before check_shape_and_settings, whose
 * attention accumulator bounds use the width; without the bit that is a_bits, which it checks first. */
static int check_qkv_bits(illm_rt_model* m, illm_rt_error* err) {
  static const rt_width_field field = {ILLM_RT_H_QKV_BITS, ILLM_RT_REQUIRED_QKV_BITS, "qkv_bits", 2, 8,
                                       "Q, K and V are a_bits wide"};
  return check_width_field(m, &field, m->settings.a_bits, &m->qkv_bits, err);
}

int illm_rt_load(illm_rt_model* model, const void* buffer, size_t size, illm_rt_error* err) {
  const uint8_t* p = (const uint8_t*)buffer;
  uint64_t file_size, table_bytes, expected_count;
  uint32_t version, stored_crc, computed_crc, required;
  int32_t i;
  int status;
  uint64_t arena;
  if (!model || !buffer) return fail(err, ILLM_RT_E_ARGUMENT, "load: NULL argument");
  if (size < ILLM_RT_HEADER_SIZE)
    return fail_i(err, ILLM_RT_E_TRUNCATED, "model.bin: truncated: ", (int64_t)size, " bytes is shorter than the 256-byte header");
  for (i = 0; i < 8; ++i)
    if (p[ILLM_RT_H_MAGIC + i] != (uint8_t)ILLM_RT_MAGIC_BYTES[i])
      return fail(err, ILLM_RT_E_MAGIC, "model.bin: bad magic: not an illm model.bin file");
  version = rd_u32(p + ILLM_RT_H_VERSION);
  if (version != ILLM_RT_FORMAT_VERSION)
    return fail_i(err, ILLM_RT_E_VERSION, "model.bin: format version ", version, " is not supported (this runtime reads version 1)");
  if (rd_u32(p + ILLM_RT_H_HEADER_SIZE) != ILLM_RT_HEADER_SIZE)
    return fail_i(err, ILLM_RT_E_LAYOUT, "model.bin: header size ", rd_u32(p + ILLM_RT_H_HEADER_SIZE), " is not 256");
  file_size = rd_u64(p + ILLM_RT_H_FILE_SIZE);
  if (file_size < ILLM_RT_HEADER_SIZE)
    return fail(err, ILLM_RT_E_LAYOUT, "model.bin: the header's file size is smaller than the header");
  if (file_size > (uint64_t)size)
    return fail_ii(err, ILLM_RT_E_TRUNCATED, "model.bin: truncated: the header describes ",
                   (int64_t)(file_size > (uint64_t)INT64_MAX ? INT64_MAX : file_size), " bytes, the buffer holds ",
                   (int64_t)size, "");
  stored_crc = rd_u32(p + ILLM_RT_H_CRC32);
  computed_crc = illm_rt_crc32(0, p + 16, (size_t)file_size - 16);
  if (stored_crc != computed_crc)
    return fail_ii(err, ILLM_RT_E_CHECKSUM, "model.bin: CRC-32 mismatch (header ", stored_crc, ", computed ", computed_crc,
                   "): the file is corrupted");
  required = rd_u32(p + ILLM_RT_H_REQUIRED_FEATURES);
  if ((required & ~RT_IMPLEMENTED_FEATURES) != 0)
    return fail_i(err, ILLM_RT_E_UNSUPPORTED, "model.bin: requires feature bits ", required & ~RT_IMPLEMENTED_FEATURES,
                  " this runtime does not implement (it has 1 per-group weights, 2 online Hadamard, 4 clipped "
                  "requant, 8 TRIP, 16 per-group activations, 32 LM head input width, 64 Q/K/V width)");
  model->required_features = required;
  model->hadamard_sites = rd_u32(p + ILLM_RT_H_HADAMARD_SITES);
  if ((required & ILLM_RT_REQUIRED_HADAMARD) ? (model->hadamard_sites == 0 ||
                                                (model->hadamard_sites & ~(ILLM_RT_HADAMARD_DOWN | ILLM_RT_HADAMARD_QK)))
                                             : model->hadamard_sites != 0)
    return fail_i(err, ILLM_RT_E_INVALID, "model.bin: online Hadamard sites ", model->hadamard_sites,
                  " do not match the required feature bit 2 (sites: 1 down_proj input, 2 q/k heads)");

  model->data = p;
  model->size = file_size;
  {
    /* Header order (illm_rt_format.h). */
    int32_t* const shape[10] = {&model->shape.hidden, &model->shape.intermediate, &model->shape.n_layers,
                                &model->shape.n_heads, &model->shape.n_kv_heads, &model->shape.head_dim,
                                &model->shape.vocab, &model->shape.max_positions, &model->shape.bos_id,
                                &model->shape.eos_id};
    int32_t* const settings[13] = {&model->settings.w_bits, &model->settings.a_bits, &model->settings.mantissa_bits,
                                   &model->settings.softmax_in_bits, &model->settings.prob_bits,
                                   &model->settings.sigmoid_bits, &model->settings.swiglu_in_bits,
                                   &model->settings.norm_frac_bits, &model->settings.head_bits,
                                   &model->settings.embed_bits, &model->settings.exp_quadratic,
                                   &model->settings.sigmoid_stable, &model->settings.paper_conformance};
    for (i = 0; i < 10; ++i) *shape[i] = rd_i32(p + ILLM_RT_H_SHAPE + 4 * i);
    for (i = 0; i < 13; ++i) *settings[i] = rd_i32(p + ILLM_RT_H_SETTINGS + 4 * i);
  }
  model->rope_frac_bits = rd_i32(p + ILLM_RT_H_ROPE_FRAC_BITS);
  model->norm_eps.m = rd_i64(p + ILLM_RT_H_NORM_EPS_M);
  model->norm_eps.k = rd_i32(p + ILLM_RT_H_NORM_EPS_K);
  model->final_norm_exponent = rd_i32(p + ILLM_RT_H_FINAL_NORM_EXPONENT);
  model->default_context = rd_i32(p + ILLM_RT_H_CONTEXT);
  model->header_arena_bytes = rd_u64(p + ILLM_RT_H_ARENA_BYTES);
  model->optional_features = rd_u32(p + ILLM_RT_H_OPTIONAL_FEATURES);
  model->tensor_count = rd_u32(p + ILLM_RT_H_TENSOR_COUNT);
  model->tensor_table = rd_u64(p + ILLM_RT_H_TENSOR_TABLE);
  model->has_tokenizer = 0;
  model->tokenizer_can_encode = 0;
  status = check_qkv_bits(model, err);
  if (!status) status = check_shape_and_settings(model, err);
  if (!status) status = check_act_groups(model, err);
  if (!status) status = check_head_input(model, err);
  if (status) return status;
  if (model->default_context < 1 || model->default_context > model->shape.max_positions)
    return fail_ii(err, ILLM_RT_E_INVALID, "model.bin: header context ", model->default_context,
                   " outside [1, max_positions = ", model->shape.max_positions, "]");

  {
    /* Extension tensors follow the layers (illm_rt_format.h), then the tokenizer. */
    const uint64_t extensions_first = ILLM_RT_GLOBAL_TENSORS + (uint64_t)model->shape.n_layers * ILLM_RT_LAYER_TENSORS;
    const uint64_t act_clip = (required & ILLM_RT_FEATURE_ACT_CLIP) ? 1 : 0;
    const uint64_t extensions = act_clip + ((required & ILLM_RT_REQUIRED_TRIP) ? (uint64_t)model->shape.n_layers : 0);
    model->act_clip_tensor = (uint32_t)extensions_first;
    model->trip_first_tensor = (uint32_t)(extensions_first + act_clip);
    expected_count = extensions_first + extensions +
                     ((model->optional_features & ILLM_RT_FEATURE_TOKENIZER) ? ILLM_RT_TOKENIZER_TENSORS : 0);
    model->tok_first_tensor = (uint32_t)(extensions_first + extensions);
  }
  if (model->tensor_count != expected_count)
    return fail_ii(err, ILLM_RT_E_LAYOUT, "model.bin: the table lists ", model->tensor_count, " tensors, this shape needs ",
                   (int64_t)expected_count, "");
  table_bytes = (uint64_t)model->tensor_count * ILLM_RT_TENSOR_ENTRY_SIZE;
  if (model->tensor_table < ILLM_RT_HEADER_SIZE || model->tensor_table % ILLM_RT_ALIGNMENT != 0 ||
      model->tensor_table > file_size || table_bytes > file_size - model->tensor_table)
    return fail(err, ILLM_RT_E_LAYOUT, "model.bin: tensor table lies outside the file or is misaligned");
  status = check_table(model, err);
  if (status) return status;
  status = check_values(model, err);
  if (status) return status;
  if (model->optional_features & ILLM_RT_FEATURE_TOKENIZER) {
    status = illm_rt_internal_load_tokenizer(model, err);
    if (status) return status;
  }
  arena = plan_regions(&model->shape, model->act_group_size, model->default_context, 0);
  if (arena == 0 || arena != model->header_arena_bytes)
    return fail_ii(err, ILLM_RT_E_LAYOUT, "model.bin: the header states an arena of ",
                   (int64_t)(model->header_arena_bytes & 0x7FFFFFFFFFFFFFFFu), " bytes, this runtime needs ",
                   (int64_t)(arena & 0x7FFFFFFFFFFFFFFFu), " for the header's context");
  return ok(err);
}
