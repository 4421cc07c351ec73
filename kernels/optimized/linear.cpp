#include "kernels/optimized/linear.h"

#include <algorithm>
#include <span>
#include <string>

#include "kernels/activation_groups.h"
#include "kernels/error.h"
#include "kernels/integer_math.h"
#include "kernels/optimized/act_group_linear.h"
#include "kernels/optimized/grouped_linear.h"
#include "kernels/optimized/linear_tiles.h"
#include "kernels/optimized/parallel.h"
#include "kernels/reference/act_group_matmul.h"
#include "kernels/reference/di_matmul.h"

namespace illm::optimized {
namespace {

// Measured on Zen 4 (1 thread, 256×4096×4096): 4 KB chunks beat 1–2 KB chunks (the tiles: linear_tiles.h).
constexpr int32_t kChunkBytes = 4096;  // weight bytes per row and K chunk
constexpr int32_t kFewRows = 8;        // up to this many rows (decode), the whole K is one chunk: x is tiny
constexpr int64_t kInt32Max = 2147483647;

size_t round_up(size_t value, size_t multiple) { return (value + multiple - 1) / multiple * multiple; }

// Per calling thread: the packed activations and the per-column epilogue constants (read by the workers).
struct CallScratch {
  PackedActivations x;
  std::vector<uint64_t> alpha, beta, gamma;
  std::vector<int64_t> lambdas;  // λ_(t,g) of per-group activations
  std::vector<int64_t> token_terms;
  std::vector<uint16_t> padded_codes;  // per-group activations with a short last group, padded with zeros
};
CallScratch& call_scratch() {
  thread_local CallScratch scratch;
  return scratch;
}
// Per worker thread: the int32 tile of raw dot products.
std::vector<int32_t>& tile_scratch(size_t size) {
  thread_local std::vector<int32_t> tile;
  if (tile.size() < size) tile.resize(size);
  return tile;
}

}  // namespace

WeightFormat weight_format(int32_t bits) {
  return bits <= 4 ? WeightFormat::kPacked4 : (bits <= 7 ? WeightFormat::kBytes7 : WeightFormat::kBytes8);
}

int64_t max_weight_magnitude(WeightFormat format, int32_t bits, int32_t byte8_offset) {
  if (format == WeightFormat::kBytes8) return std::max<int64_t>(255 - byte8_offset, byte8_offset);
  return (int64_t{1} << bits) - 1;
}

int64_t exact_k_chunk(int32_t x_bits, int64_t max_weight, int32_t block) {
  const int64_t max_x = (int64_t{1} << x_bits) - 1;
  const int64_t limit = kInt32Max / std::max<int64_t>(1, max_x * max_weight);
  return std::max<int64_t>(block, limit / block * block);
}

template <typename Code>
void pack_activations(const ActivationLayout& layout, WeightFormat format, const Code* source, size_t source_stride,
                      int32_t rows, int32_t cols, PackedActivations& out) {
  const bool packed4 = format == WeightFormat::kPacked4;
  const size_t block = static_cast<size_t>(packed4 ? layout.block4 : layout.block);
  const bool even_odd = packed4 && layout.int4_even_odd;
  out.stride = round_up(static_cast<size_t>(cols), block);
  out.codes.assign(static_cast<size_t>(rows) * out.stride, 0);
  out.row_sums.resize(static_cast<size_t>(rows));
  const size_t n = static_cast<size_t>(cols), half = block / 2;
  for (int32_t r = 0; r < rows; ++r) {
    const Code* src = source + static_cast<size_t>(r) * source_stride;
    uint8_t* dst = out.codes.data() + static_cast<size_t>(r) * out.stride;
    int64_t sum = 0;
    for (size_t c = 0; c < n; ++c) sum += src[c];
    out.row_sums[static_cast<size_t>(r)] = sum;
    if (!even_odd) {
      for (size_t c = 0; c < n; ++c) dst[c] = static_cast<uint8_t>(src[c]);
      continue;
    }
    // Each block: codes 0, 2, 4, … then 1, 3, 5, … (the rest of the last block stays zero).
    for (size_t start = 0; start < n; start += block) {
      const size_t count = std::min(n - start, block), pairs = count / 2;
      const Code* from = src + start;
      uint8_t* even = dst + start;
      uint8_t* odd = even + half;
      for (size_t i = 0; i < pairs; ++i) {
        even[i] = static_cast<uint8_t>(from[2 * i]);
        odd[i] = static_cast<uint8_t>(from[2 * i + 1]);
      }
      if (count % 2 == 1) even[pairs] = static_cast<uint8_t>(from[count - 1]);
    }
  }
}

template void pack_activations<uint8_t>(const ActivationLayout&, WeightFormat, const uint8_t*, size_t, int32_t, int32_t,
                                        PackedActivations&);
template void pack_activations<uint16_t>(const ActivationLayout&, WeightFormat, const uint16_t*, size_t, int32_t,
                                         int32_t, PackedActivations&);

namespace {

// The dot blocks of one group of every (token, group)-packed activation row against a tile of weight rows: the
// group's G codes of each row, read in place (shared by the per-group weight and per-group activation kernels).
struct GroupDotBlocks {
  const DotIsa& isa;
  const PackedActivations& x;
  const QuantizedLinear& w;
  WeightFormat format;
  int32_t x_bits, groups, group;
  int32_t last_group_width = group;  // a short last activation group reads only its own weight columns
  size_t row_bytes = weight_row_bytes(w);
  size_t group_bytes = static_cast<size_t>(format == WeightFormat::kPacked4 ? group / 2 : group);
  void run(int32_t t0, int32_t t1, int32_t j0, int32_t cols, int32_t g, int32_t* tile) const {
    DotBlockArgs a;
    a.x = x.codes.data() + (static_cast<size_t>(t0) * groups + g) * x.stride;
    a.x_stride = static_cast<size_t>(groups) * x.stride;
    a.rows = t1 - t0;
    a.w = w.codes.data() + static_cast<size_t>(j0) * row_bytes + static_cast<size_t>(g) * group_bytes;
    a.w_stride = row_bytes;
    a.cols = cols;
    a.k = g == groups - 1 ? last_group_width : group;
    a.x_bits = x_bits;
    a.w_bits = w.bits;
    a.format = format;
    a.c = tile;
    a.c_stride = static_cast<size_t>(cols);
    a.accumulate = false;
    isa.dot_block(a);
  }
};

// Per-group weights (linear.h): every (activation row, group) is packed as its own padded row, so each dot block
// call covers exactly one group of G codes (a group may start inside an ISA block or a packed byte pair's block:
// the packing restarts the layout at every group), and the per-group epilogue adds
//   μ_(j,g)·C_(t,j,g) − μ_(j,g)·(z_(j,g) − o)·RS_(t,g) − μ_(j,g)·(CS_(j,g) − G·z_(j,g))·z1_t
// for each group in wrapping 64-bit arithmetic (exact: the final P' fits int64).
void linear_accumulate_grouped(const Isa& kernels, const QuantizedActivation& x, const PreparedLinear& prepared,
                               AlignedAccumulator& out) {
  const DotIsa& isa = kernels.dot;
  const QuantizedLinear& w = *prepared.weight;
  const int32_t rows = x.rows, n = w.out_features, k = w.in_features;
  const int32_t group = weight_group_size(w), groups = weight_groups(w);
  const WeightFormat format = weight_format(w.bits);
  const int32_t offset = format == WeightFormat::kBytes8 ? isa.byte8_offset : 0;
  const int32_t block = format == WeightFormat::kPacked4 ? isa.layout.block4 : isa.layout.block;
  if (exact_k_chunk(x.bits, max_weight_magnitude(format, w.bits, offset), block) < group ||
      (format == WeightFormat::kPacked4 && group % 2 != 0)) {
    illm::linear_accumulate(x, prepared, out);  // not reached for the validated G (32, 64, 128)
    return;
  }
  CallScratch& s = call_scratch();
  // Row t's group g is packed row t·groups + g (the codes of a row are contiguous, so the source stride is G).
  pack_activations(isa.layout, format, x.codes.data(), static_cast<size_t>(group), rows * groups, group, s.x);
  const size_t terms = static_cast<size_t>(n) * static_cast<size_t>(groups);
  s.alpha.resize(terms);  // [group][row]: the epilogue of one group runs along contiguous weight rows
  s.beta.resize(terms);
  s.gamma.resize(terms);
  for (int32_t j = 0; j < n; ++j)
    for (int32_t g = 0; g < groups; ++g) {
      const size_t source = static_cast<size_t>(j) * groups + g, target = static_cast<size_t>(g) * n + j;
      const uint64_t mu = static_cast<uint64_t>(prepared.alignment.mantissas[source]);
      const int64_t z2 = w.zero_points[source];
      s.alpha[target] = mu;
      s.beta[target] = mu * static_cast<uint64_t>(z2 - offset);
      s.gamma[target] = mu * static_cast<uint64_t>(prepared.code_sums[source] - int64_t{group} * z2);
    }
  const PackedActivations& xp = s.x;
  const GroupDotBlocks dots{isa, xp, w, format, x.bits, groups, group};

  parallel_tiles(rows, n, k, [&](const TaskTile& task) {
    const auto [t0, t1, j0, tile_cols] = task;
    std::vector<int32_t>& tile = tile_scratch(static_cast<size_t>(t1 - t0) * static_cast<size_t>(tile_cols));
    for (int32_t g = 0; g < groups; ++g) {
      dots.run(t0, t1, j0, tile_cols, g, tile.data());
      const uint64_t* alpha = s.alpha.data() + static_cast<size_t>(g) * n + j0;
      const uint64_t* beta = s.beta.data() + static_cast<size_t>(g) * n + j0;
      const uint64_t* gamma = s.gamma.data() + static_cast<size_t>(g) * n + j0;
      for (int32_t t = t0; t < t1; ++t) {
        const int32_t* c = tile.data() + static_cast<size_t>(t - t0) * tile_cols;
        const uint64_t row_sum = static_cast<uint64_t>(xp.row_sums[static_cast<size_t>(t) * groups + g]);
        const uint64_t z1 = static_cast<uint64_t>(x.zero_points[t]);
        int64_t* o = out.values.data() + static_cast<size_t>(t) * n + j0;
        for (int32_t j = 0; j < tile_cols; ++j) {
          const uint64_t term = alpha[j] * static_cast<uint64_t>(int64_t{c[j]}) - beta[j] * row_sum - gamma[j] * z1;
          o[j] = static_cast<int64_t>((g == 0 ? 0 : static_cast<uint64_t>(o[j])) + term);
        }
      }
    }
  });
}

}  // namespace

void linear_act_groups_accumulate(const Isa& kernels, const QuantizedActivation& x, const PreparedLinear& prepared,
                                  AlignedAccumulator& out) {
  const DotIsa& isa = kernels.dot;
  const QuantizedLinear& w = *prepared.weight;
  const int32_t rows = x.rows, n = w.out_features, k = w.in_features, group = x.group_size;
  const WeightFormat format = weight_format(w.bits);
  const int32_t offset = format == WeightFormat::kBytes8 ? isa.byte8_offset : 0;
  const int32_t block = format == WeightFormat::kPacked4 ? isa.layout.block4 : isa.layout.block;
  const int32_t groups = group < 1 || k < 1 ? 0 : act_group_count(k, group);
  const int32_t last_group_width = groups < 1 ? 0 : act_group_width(k, group, groups - 1);
  const size_t scale_count = static_cast<size_t>(rows) * static_cast<size_t>(groups);
  if (x.bits > 8 || groups < 1 || prepared.act_group_size != group || x.cols != k ||
      x.zero_points.size() != scale_count || x.scales.size() != scale_count) {
    illm::linear_act_groups_accumulate(x, prepared, out);  // checks the shapes (throws naming a mismatch)
    return;
  }
  // The path's one-pass kernel (act_group_linear.h; avx512vnni, avx2) where it applies: activations of <= 7 bits,
  // any short last group (odd widths with packed weights included). 8-bit activations (the W8A8 recipes) and the
  // path without one (portable) run the one-dot-block-per-group kernel below: the same P', bit for bit.
  const bool one_pass = act_group_linear_applies(kernels, x, prepared);
  const bool dot_blocks_apply =
      exact_k_chunk(x.bits, max_weight_magnitude(format, w.bits, offset), block) >= group &&
      (format != WeightFormat::kPacked4 || (group % 2 == 0 && last_group_width % 2 == 0));
  if (!one_pass && !dot_blocks_apply) {
    illm::linear_act_groups_accumulate(x, prepared, out);  // an odd packed tail of 8-bit activations
    return;
  }
  const int b_m = prepared.mantissa_bits;
  out.rows = rows;
  out.cols = n;
  out.values.resize(static_cast<size_t>(rows) * static_cast<size_t>(n));
  out.scales.resize(static_cast<size_t>(rows));
  CallScratch& s = call_scratch();
  std::vector<int64_t>& lambdas = s.lambdas;
  lambdas.resize(scale_count);
  for (int32_t t = 0; t < rows; ++t) {
    const size_t first = static_cast<size_t>(t) * groups;
    const int32_t k1 = align_activation_groups(std::span<const Dyadic>(x.scales.data() + first, groups),
                                               std::span<int64_t>(lambdas.data() + first, groups));
    out.scales[t] = Dyadic{1, k1 - b_m + prepared.alignment.exponent};
  }
  if (one_pass && act_group_linear_accumulate(kernels, x, prepared, lambdas, out)) return;
  if (!dot_blocks_apply) {
    illm::linear_act_groups_accumulate(x, prepared, out);  // codes the one-pass kernel declined (not from models)
    return;
  }
  // Weight groups h of G_w columns (G_w = in for a per-row weight, whose last activation group may be short;
  // prepare_linear set act_group_size only when A divides G_w or the weight is per row), each holding G_w/A
  // activation groups. Per weight group, with the per-(token, h) sums A_(t,h) = Σ_(a in h) λ_(t,a)·RS_(t,a) and
  // B_(t,h) = Σ_(a in h) |a|·λ_(t,a)·z_(t,a) (|a| the group's columns):
  //   T_(t,j,h) = Σ_(a in h) λ_(t,a)·(C_(t,j,a) − z_(t,a)·CS_(j,a)) − (z_(j,h) − o)·A_(t,h) + z_(j,h)·B_(t,h)
  // which is Σ_a λ·P term for term (docs/integer-semantics.md "## Per-group activations with per-group weights"),
  // and P' = Σ_h rshr(T, b_m)·μ_(j,h). The sum over a is the path's act_group_epilogue row kernel: one int32 and one
  // 64-bit multiply-add per (t, j, a); CS_(j,a) < 2^15 (A·255), prepared [group][row]; C − z·CS stays within int32.
  const int32_t w_groups = weight_groups(w), per_weight_group = groups / w_groups;
  // z_(j,h) and μ_(j,h) as [h][row]: a per-row weight's own arrays, else the transposed copies prepare_linear made.
  const bool grouped_weight = weight_per_group(w);
  const int32_t* weight_zero_points = grouped_weight ? prepared.weight_group_zero_points_by_group.data() : w.zero_points.data();
  const int64_t* weight_mantissas = grouped_weight ? prepared.weight_group_mantissas_by_group.data()
                                                   : prepared.alignment.mantissas.data();
  // Row t's group g is packed row t·groups + g. A short last group (k mod A columns) is packed from a copy of the
  // codes whose rows are zero-filled to groups·A: the zeros add nothing to its row sum or its dot products, and
  // its dot blocks read only its own weight columns.
  const uint16_t* codes = x.codes.data();
  if (last_group_width != group) {
    const size_t padded_cols = static_cast<size_t>(groups) * static_cast<size_t>(group);
    s.padded_codes.assign(static_cast<size_t>(rows) * padded_cols, 0);
    for (int32_t t = 0; t < rows; ++t)
      std::copy_n(x.codes.data() + static_cast<size_t>(t) * k, k, s.padded_codes.data() + t * padded_cols);
    codes = s.padded_codes.data();
  }
  pack_activations(isa.layout, format, codes, static_cast<size_t>(group), rows * groups, group, s.x);
  const PackedActivations& xp = s.x;
  std::vector<int64_t>& token_terms = s.token_terms;  // [t][h][2]: A_(t,h), B_(t,h) = Σ |a|·λ·z
  token_terms.assign(static_cast<size_t>(rows) * w_groups * 2, 0);
  for (int32_t t = 0; t < rows; ++t)
    for (int32_t g = 0; g < groups; ++g) {
      const size_t tg = static_cast<size_t>(t) * groups + g, th = static_cast<size_t>(t) * w_groups + g / per_weight_group;
      token_terms[2 * th] += lambdas[tg] * xp.row_sums[tg];
      token_terms[2 * th + 1] += lambdas[tg] * x.zero_points[tg] * (g == groups - 1 ? last_group_width : group);
    }
  GroupDotBlocks dots{isa, xp, w, format, x.bits, groups, group};
  dots.last_group_width = last_group_width;

  parallel_tiles(rows, n, k, [&](const TaskTile& task) {
    const auto [t0, t1, j0, tile_cols] = task;
    const size_t tile_size = static_cast<size_t>(t1 - t0) * static_cast<size_t>(tile_cols);
    std::vector<int32_t>& tile = tile_scratch(tile_size);
    // T of the current weight group; a per-row weight sums straight into the output rows (T is read before P' is
    // written at the same index).
    thread_local std::vector<int64_t> weight_group_sums;
    if (grouped_weight) weight_group_sums.resize(tile_size);
    for (int32_t g = 0; g < groups; ++g) {
      dots.run(t0, t1, j0, tile_cols, g, tile.data());
      const int32_t h = g / per_weight_group;
      const bool first_of_h = g % per_weight_group == 0, last_of_h = g % per_weight_group == per_weight_group - 1;
      const int32_t* cs = prepared.act_group_code_sums.data() + static_cast<size_t>(g) * n + j0;
      for (int32_t t = t0; t < t1; ++t) {
        const size_t tg = static_cast<size_t>(t) * groups + g;
        int64_t* o = out.values.data() + static_cast<size_t>(t) * n + j0;
        int64_t* sums = grouped_weight ? weight_group_sums.data() + static_cast<size_t>(t - t0) * tile_cols : o;
        // Wrapping 64-bit sums: exact, since every final T fits int64 (|λ·(C − z·CS)| < 2^48).
        kernels.rows.act_group_epilogue(tile.data() + static_cast<size_t>(t - t0) * tile_cols, cs, tile_cols,
                                        x.zero_points[tg], lambdas[tg], first_of_h, sums);
        if (!last_of_h) continue;
        const size_t th = static_cast<size_t>(t) * w_groups + h;
        const int64_t a = token_terms[2 * th], b = token_terms[2 * th + 1];
        const int32_t* z2 = weight_zero_points + static_cast<size_t>(h) * n + j0;
        const int64_t* mu = weight_mantissas + static_cast<size_t>(h) * n + j0;
        for (int32_t j = 0; j < tile_cols; ++j) {
          const uint64_t sum = static_cast<uint64_t>(sums[j]) - static_cast<uint64_t>((z2[j] - offset) * a) +
                               static_cast<uint64_t>(z2[j] * b);
          const int64_t term = rshr(static_cast<int64_t>(sum), b_m) * mu[j];
          o[j] = (h == 0 ? 0 : o[j]) + term;
        }
      }
    }
  });
}

namespace {

// Codes of up to 16 bits, split into bytes: x = 2^8·hi + lo and z = 2^8·z_hi + z_lo, so x − z = 2^8·(hi − z_hi) +
// (lo − z_lo) and, the DI-MatMul being linear in (x − z), P' = 2^8·P'(hi) + P'(lo) exactly: two calls of the 8-bit
// fast path, combined in int64. Each term's magnitude is within the wide input's accumulator bound (model
// validation), so neither the parts nor the sum overflow.
void linear_accumulate_wide(const Isa& kernels, const QuantizedActivation& x, const PreparedLinear& prepared,
                            AlignedAccumulator& out) {
  if (x.group_size != 0 || x.bits > 16) {  // not produced by any site; keep the specification's behaviour
    illm::linear_accumulate(x, prepared, out);
    return;
  }
  QuantizedActivation high, low;
  for (QuantizedActivation* part : {&high, &low}) {
    part->rows = x.rows;
    part->cols = x.cols;
    part->bits = 8;
    part->scales = x.scales;
    part->codes.resize(x.codes.size());
    part->zero_points.resize(x.zero_points.size());
  }
  for (size_t i = 0; i < x.codes.size(); ++i) {
    high.codes[i] = static_cast<uint16_t>(x.codes[i] >> 8);
    low.codes[i] = static_cast<uint16_t>(x.codes[i] & 0xFF);
  }
  for (size_t r = 0; r < x.zero_points.size(); ++r) {
    high.zero_points[r] = x.zero_points[r] >> 8;
    low.zero_points[r] = x.zero_points[r] & 0xFF;
  }
  AlignedAccumulator low_part;
  linear_accumulate(kernels, high, prepared, out);
  linear_accumulate(kernels, low, prepared, low_part);
  for (size_t i = 0; i < out.values.size(); ++i) out.values[i] = out.values[i] * 256 + low_part.values[i];
}

}  // namespace

void linear_accumulate(const Isa& kernels, const QuantizedActivation& x, const PreparedLinear& prepared,
                       AlignedAccumulator& out) {
  const DotIsa& isa = kernels.dot;
  const QuantizedLinear& w = *prepared.weight;
  const int32_t rows = x.rows, n = w.out_features, k = w.in_features;
  if (x.cols != k)
    throw Error("DI-MatMul: inner sizes differ (input has " + std::to_string(x.cols) + " columns, weight " +
                std::to_string(k) + ")");
  // Wider inputs (TRIP sites, kernels/trip_requant.h; an LM head with head_in_bits > 8): two 8-bit DI-MatMuls.
  if (x.bits > 8) {
    linear_accumulate_wide(kernels, x, prepared, out);
    return;
  }
  out.rows = rows;
  out.cols = n;
  out.values.resize(static_cast<size_t>(rows) * static_cast<size_t>(n));
  out.scales.resize(static_cast<size_t>(rows));
  for (int32_t t = 0; t < rows; ++t) out.scales[t] = Dyadic{x.scales[t].m, x.scales[t].k + prepared.alignment.exponent};
  if (rows == 0 || n == 0) return;
  if (k == 0) {
    std::fill(out.values.begin(), out.values.end(), 0);
    return;
  }
  if (weight_per_group(w)) {
    if (grouped_linear_applies(kernels, x, prepared))
      grouped_linear_accumulate(kernels, x, prepared, out);
    else
      linear_accumulate_grouped(kernels, x, prepared, out);
    return;
  }

  const WeightFormat format = weight_format(w.bits);
  const int32_t offset = format == WeightFormat::kBytes8 ? isa.byte8_offset : 0;
  const int32_t block = format == WeightFormat::kPacked4 ? isa.layout.block4 : isa.layout.block;
  CallScratch& s = call_scratch();
  pack_activations(isa.layout, format, x.codes.data(), static_cast<size_t>(k), rows, k, s.x);
  s.alpha.resize(static_cast<size_t>(n));
  s.beta.resize(static_cast<size_t>(n));
  s.gamma.resize(static_cast<size_t>(n));
  for (int32_t j = 0; j < n; ++j) {
    const uint64_t mu = static_cast<uint64_t>(prepared.alignment.mantissas[j]);
    const int64_t z2 = w.zero_points[j];
    s.alpha[j] = mu;
    s.beta[j] = mu * static_cast<uint64_t>(z2 - offset);
    s.gamma[j] = mu * static_cast<uint64_t>(prepared.code_sums[j] - int64_t{k} * z2);
  }

  // K ranges: `chunk` codes per dot block (L1), `exact` codes per int32 tile before it is folded into int64.
  const int64_t exact = exact_k_chunk(x.bits, max_weight_magnitude(format, w.bits, offset), block);
  const int64_t cache_chunk =
      rows <= kFewRows ? int64_t{k} : (format == WeightFormat::kPacked4 ? 2 * kChunkBytes : kChunkBytes);
  const int64_t chunk = std::min<int64_t>(exact, std::max<int64_t>(block, cache_chunk / block * block));
  const int64_t super_chunk = exact / chunk * chunk;
  const size_t row_bytes = weight_row_bytes(w);
  const PackedActivations& xp = s.x;

  parallel_tiles(rows, n, k, [&](const TaskTile& task) {
    const auto [t0, t1, j0, tile_cols] = task;
    std::vector<int32_t>& tile = tile_scratch(static_cast<size_t>(t1 - t0) * static_cast<size_t>(tile_cols));
    for (int64_t super_start = 0; super_start < k; super_start += super_chunk) {
      const int64_t super_end = std::min<int64_t>(k, super_start + super_chunk);
      for (int64_t k0 = super_start; k0 < super_end; k0 += chunk) {
        DotBlockArgs a;
        a.x = xp.codes.data() + static_cast<size_t>(t0) * xp.stride + static_cast<size_t>(k0);
        a.x_stride = xp.stride;
        a.rows = t1 - t0;
        a.w = w.codes.data() + static_cast<size_t>(j0) * row_bytes +
              static_cast<size_t>(format == WeightFormat::kPacked4 ? k0 / 2 : k0);
        a.w_stride = row_bytes;
        a.cols = tile_cols;
        a.k = static_cast<int32_t>(std::min<int64_t>(chunk, super_end - k0));
        a.x_bits = x.bits;
        a.w_bits = w.bits;
        a.format = format;
        a.c = tile.data();
        a.c_stride = static_cast<size_t>(tile_cols);
        a.accumulate = k0 > super_start;
        isa.dot_block(a);
      }
      // Epilogue of this K range in wrapping 64-bit arithmetic (exact: the final P' fits int64).
      for (int32_t t = t0; t < t1; ++t)
        kernels.rows.linear_epilogue(tile.data() + static_cast<size_t>(t - t0) * tile_cols, tile_cols,
                                     s.alpha.data() + j0, s.beta.data() + j0, s.gamma.data() + j0,
                                     static_cast<uint64_t>(xp.row_sums[t]), static_cast<uint64_t>(x.zero_points[t]),
                                     super_start == 0, out.values.data() + static_cast<size_t>(t) * n + j0);
    }
  });
}

}  // namespace illm::optimized
