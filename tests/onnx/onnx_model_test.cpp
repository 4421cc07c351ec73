// The exported graphs of the shared test models (both bundled fixtures at W4A4, W4A8 and W8A8; tinybible with
// per-group weight scales, G = 32, on the shorter sequences; variants set in memory: clipping, paper operator forms,
// online Hadamards, TRIP, per-group activations, also with per-group weights, the LM head options, the Q/K/V width
// qkv_bits) run by ONNX Runtime must give exactly the integer executor's logits and per-token logit scales: on a
// single token, on an odd length and on the full context (512 tokens). The golden values are computed here by the
// executor (kernels/executor.h), a code path the exporter does not use.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "formats/illm_file.h"
#include "formats/onnx/llama_graph.h"
#include "formats/onnx/onnx_export.h"
#include "kernels/error.h"
#include "kernels/executor.h"
#include "kernels/weight_codes.h"
#include "onnx/support/onnx_runtime_runner.h"

namespace illm {
namespace {

namespace fs = std::filesystem;
using testing::HostTensor;
using testing::TensorPack;

const fs::path kModels = fs::path(ILLM_BINARY_DIR) / "test_models";

fs::path scratch_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path dir = fs::temp_directory_path() / ("illm_onnx_" + std::string(info->test_suite_name()) + "_" +
                                                    info->name() + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::vector<int32_t> random_ids(int32_t length, int32_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> id(0, vocab - 1);
  std::vector<int32_t> ids(static_cast<size_t>(length));
  for (int32_t& v : ids) v = id(rng);
  if (!ids.empty()) ids[0] = 1;  // BOS first, as in every real prompt
  return ids;
}

TensorPack ids_pack(const std::vector<int32_t>& ids) {
  HostTensor t;
  t.name = formats::onnx_export::kInputIds;
  t.type = testing::kPackInt64;
  t.dims = {1, static_cast<int64_t>(ids.size())};
  t.values.assign(ids.begin(), ids.end());
  return {t};
}

// The first difference between ONNX Runtime's outputs and the executor's, or "" when identical.
std::string first_difference(const TensorPack& ort, const IntegerLogits& expected) {
  const HostTensor& logits = testing::tensor_named(ort, formats::onnx_export::kLogits);
  const HostTensor& m = testing::tensor_named(ort, formats::onnx_export::kLogitsScaleMantissa);
  const HostTensor& k = testing::tensor_named(ort, formats::onnx_export::kLogitsScaleExponent);
  const std::vector<int64_t> dims{1, expected.tokens, expected.vocab};
  if (logits.dims != dims || logits.values.size() != expected.values.size()) return "logits have the wrong shape";
  if (m.values.size() != expected.scales.size() || k.values.size() != expected.scales.size())
    return "scales have the wrong shape";
  for (int32_t t = 0; t < expected.tokens; ++t) {
    if (m.values[t] != expected.scales[t].m || k.values[t] != expected.scales[t].k)
      return "scale at position " + std::to_string(t) + ": onnx " + std::to_string(m.values[t]) + "/2^" +
             std::to_string(k.values[t]) + ", executor " + std::to_string(expected.scales[t].m) + "/2^" +
             std::to_string(expected.scales[t].k);
    for (int32_t v = 0; v < expected.vocab; ++v) {
      const size_t i = static_cast<size_t>(t) * expected.vocab + v;
      if (logits.values[i] != expected.values[i])
        return "logit at position " + std::to_string(t) + ", id " + std::to_string(v) + ": onnx " +
               std::to_string(logits.values[i]) + ", executor " + std::to_string(expected.values[i]);
    }
  }
  return "";
}

// Exports `loaded`, runs ONNX Runtime on `sequences` and the executor on each, and requires identical outputs. With
// decode_steps > 0 the executor also runs every sequence longer than that as a prefill of all but its last
// decode_steps tokens followed by one-token decode calls, and the rows of those calls must equal ONNX Runtime's
// prefill rows too (the graph has no KV cache; the executor's decode path is a different sequence of kernel calls).
void expect_bit_exact(const formats::LoadedIllm& loaded, const std::vector<std::vector<int32_t>>& sequences,
                      const fs::path& dir, size_t decode_steps = 0) {
  const fs::path onnx_file = dir / "model.onnx";
  formats::export_onnx(loaded, onnx_file);
  std::vector<TensorPack> inputs;
  for (const auto& ids : sequences) inputs.push_back(ids_pack(ids));
  const testing::OnnxRuntimeRun run = testing::run_onnx_runtime(onnx_file, inputs, dir);
  ASSERT_EQ(run.outputs.size(), sequences.size());
  Executor executor(loaded.model);
  for (size_t i = 0; i < sequences.size(); ++i) {
    executor.reset();
    const IntegerLogits expected = executor.forward(sequences[i]);
    EXPECT_EQ(first_difference(run.outputs[i], expected), "")
        << sequences[i].size() << " tokens (sequence " << i << ")";
    if (decode_steps == 0 || sequences[i].size() <= decode_steps) continue;
    executor.reset();
    const std::span<const int32_t> ids(sequences[i]);
    IntegerLogits decoded = executor.forward(ids.first(ids.size() - decode_steps));
    for (size_t t = ids.size() - decode_steps; t < ids.size(); ++t) {  // append each step's row
      const IntegerLogits step = executor.forward(ids.subspan(t, 1));
      decoded.values.insert(decoded.values.end(), step.values.begin(), step.values.end());
      decoded.scales.insert(decoded.scales.end(), step.scales.begin(), step.scales.end());
      ++decoded.tokens;
    }
    EXPECT_EQ(first_difference(run.outputs[i], decoded), "")
        << sequences[i].size() << " tokens (sequence " << i << "), the last " << decode_steps << " decoded";
  }
}

// A variant set in memory: it is in effect (the executor's logits on 3 tokens differ from those of `plain`, the
// model without it) and ONNX Runtime gives the executor's outputs on 1, 3 and 77 tokens, with full_context also on
// max_positions, the sequences drawn from seeds first_seed … first_seed + 3.
void expect_effective_variant_bit_exact(const formats::LoadedIllm& loaded, const QuantizedModel& plain,
                                        uint32_t first_seed, bool full_context, const fs::path& dir,
                                        size_t decode_steps = 0) {
  const int32_t vocab = loaded.model.shape.vocab;
  Executor with_variant(loaded.model), without(plain);  // (the executor keeps a reference to its model)
  const std::vector<int32_t> ids = random_ids(3, vocab, first_seed);
  EXPECT_NE(with_variant.forward(ids).values, without.forward(ids).values);
  std::vector<std::vector<int32_t>> sequences{random_ids(1, vocab, first_seed + 1), ids,
                                              random_ids(77, vocab, first_seed + 2)};
  if (full_context) sequences.push_back(random_ids(loaded.model.shape.max_positions, vocab, first_seed + 3));
  expect_bit_exact(loaded, sequences, dir, decode_steps);
}

class ExportedTestModel : public ::testing::TestWithParam<std::string> {};

TEST_P(ExportedTestModel, OnnxRuntimeLogitsEqualTheExecutorsOnShortOddAndFullContextSequences) {
  const fs::path file = kModels / (GetParam() + ".illm");
  ASSERT_TRUE(fs::exists(file)) << file << " (made by the test_models fixture)";
  const formats::LoadedIllm loaded = formats::read_illm(file);
  const int32_t vocab = loaded.model.shape.vocab, context = loaded.model.shape.max_positions;
  ASSERT_EQ(context, 512);
  const fs::path dir = scratch_dir();
  expect_bit_exact(loaded, {random_ids(1, vocab, 1), random_ids(77, vocab, 2), random_ids(context, vocab, 3)}, dir);
  fs::remove_all(dir);
}

TEST(ExportedModelVariants, ClippedActivationRequantizationIsBitExactToo) {
  // Every site's DI_REQUANT clipped (ratios varying by site and layer; recipe act_clip makes such models).
  formats::LoadedIllm loaded = formats::read_illm(kModels / "stories260K-w4a4.illm");
  const RequantClip ratios[] = {{15, 4}, {13, 4}, {10, 4}, {52429, 16}, {12, 4}, {14, 4}, {1, 2}};
  for (size_t l = 0; l < loaded.model.layers.size(); ++l)
    for (int site = 0; site < kNumClipSites; ++site) loaded.model.layers[l].act_clip[site] = ratios[(site + l) % 7];
  const fs::path dir = scratch_dir();
  expect_bit_exact(loaded, {random_ids(3, loaded.model.shape.vocab, 6), random_ids(99, loaded.model.shape.vocab, 7)},
                   dir);
  fs::remove_all(dir);
}

TEST(ExportedModelVariants, PaperOperatorFormsAreBitExactToo) {
  // The paper's operator choices that need no recalibration: linear DI-Exp, shared-max sigmoid, 8-bit softmax input
  // and probabilities, 8-bit sigmoid output (the test models use the project defaults).
  formats::LoadedIllm loaded = formats::read_illm(kModels / "stories260K-w4a8.illm");
  IntegerSettings& s = loaded.model.settings;
  s.exp_quadratic = false;
  s.sigmoid_stable = false;
  s.softmax_in_bits = 8;
  s.prob_bits = 8;
  s.sigmoid_bits = 8;
  const fs::path dir = scratch_dir();
  expect_bit_exact(loaded, {random_ids(5, loaded.model.shape.vocab, 4), random_ids(130, loaded.model.shape.vocab, 5)},
                   dir);
  fs::remove_all(dir);
}

TEST(ExportedModelVariants, PerGroupWeightsAreBitExactToo) {
  // tinybible W4A4 RTN with one scale per group of 32 input columns (the per-group DI-MatMul subgraph in every block
  // linear; the LM head stays per row). One token and an odd length; the full context is covered by the per-row
  // models above (the attention part of the graph does not depend on the weight granularity).
  const formats::LoadedIllm loaded = formats::read_illm(kModels / "tinybible-w4a4-g32.illm");
  ASSERT_EQ(loaded.model.layers.at(0).gate_proj.group_size, 32);
  const fs::path dir = scratch_dir();
  expect_bit_exact(loaded, {random_ids(1, loaded.model.shape.vocab, 7), random_ids(77, loaded.model.shape.vocab, 8)},
                   dir);
  fs::remove_all(dir);
}

TEST(ExportedModelVariants, OnlineHadamardsAreBitExactToo) {
  // Both online Walsh–Hadamard transforms switched on in the shared W4A4 models (stories260K: C_f 172 weighted
  // blocks, d 8 Sylvester; tinybible: its C_f and d): the graph's int32 MatMul with Hᵀ equals hadamard_rows.
  for (const char* name : {"stories260K-w4a4", "tinybible-w4a4"}) {
    formats::LoadedIllm loaded = formats::read_illm(kModels / (std::string(name) + ".illm"));
    loaded.model.hadamard_down = loaded.model.hadamard_qk = true;
    const fs::path dir = scratch_dir();
    expect_bit_exact(loaded, {random_ids(3, loaded.model.shape.vocab, 6), random_ids(90, loaded.model.shape.vocab, 7)},
                     dir);
    fs::remove_all(dir);
  }
}

TEST(ExportedModelVariants, TripChannelFactorsAreBitExactToo) {
  // Seeded TRIP exponents α_c ∈ [0, K] at every TRIP site of every layer (α_0 = 0, so the consumers' codes are K bits
  // wider: 7 and 11 bits; with every site clipped in the first model, TRIP refining the clipped plan).
  const struct {
    const char* name;
    int32_t max_shift;
    bool clip;
  } cases[] = {{"stories260K-w4a4", 3, true}, {"tinybible-w4a8", 3, false}};
  for (const auto& c : cases) {
    formats::LoadedIllm loaded = formats::read_illm(kModels / (std::string(c.name) + ".illm"));
    QuantizedModel& model = loaded.model;
    std::mt19937 rng(31);
    std::uniform_int_distribution<int32_t> exponent(0, c.max_shift);
    const int32_t channels[kNumClipSites] = {model.shape.hidden, 0, 0, 0, model.shape.n_heads * model.shape.head_dim,
                                             model.shape.hidden, model.shape.intermediate};
    const RequantClip ratios[] = {{15, 4}, {13, 4}, {10, 4}, {52429, 16}, {12, 4}, {14, 4}, {1, 2}};
    for (size_t l = 0; l < model.layers.size(); ++l) {
      QuantizedLayer& L = model.layers[l];
      L.trip_max_shift = c.max_shift;
      for (int site = 0; site < kNumClipSites; ++site) {
        if (c.clip) L.act_clip[site] = ratios[(site + l) % 7];
        if (!trip_capable_site(site)) continue;
        L.trip_alpha[site].resize(static_cast<size_t>(channels[site]));
        for (int8_t& a : L.trip_alpha[site]) a = static_cast<int8_t>(exponent(rng));
        L.trip_alpha[site][0] = 0;
      }
    }
    // The factors are in effect: the executor's logits differ from the model's without them.
    const formats::LoadedIllm plain = formats::read_illm(kModels / (std::string(c.name) + ".illm"));
    Executor with_trip(model), without_trip(plain.model);  // (the executor keeps a reference to its model)
    const std::vector<int32_t> ids = random_ids(3, model.shape.vocab, 6);
    EXPECT_NE(with_trip.forward(ids).values, without_trip.forward(ids).values) << c.name;
    const fs::path dir = scratch_dir();
    expect_bit_exact(loaded, {ids, random_ids(90, model.shape.vocab, 7)}, dir);
    fs::remove_all(dir);
  }
}

// The shared per-row models made per-group-activation models in memory (act_group_size G: the seven block linears'
// inputs get one zero point and dyadic per (token, group of G channels)). tinybible W4A4 and W8A8 at G = 16 and 32,
// one with every site clipped (the per-group DI_REQUANT takes the site's clip), two with both online Hadamards (the
// down_proj input's groups come from the transform's rows). With decode_steps the executor's prefill of all but the
// last decode_steps tokens plus one-token decode calls must give ONNX Runtime's rows too. One test per case (ctest
// runs them side by side).
struct ActGroupCase {
  const char* name;
  int32_t group_size;
  bool clip, hadamards, full_context;
  size_t decode_steps;
};

class ExportedActGroupModel : public ::testing::TestWithParam<ActGroupCase> {};

TEST_P(ExportedActGroupModel, OnnxRuntimeLogitsEqualTheExecutors) {
  const ActGroupCase& c = GetParam();
  formats::LoadedIllm loaded = formats::read_illm(kModels / (std::string(c.name) + ".illm"));
  QuantizedModel& model = loaded.model;
  const RequantClip ratios[] = {{15, 4}, {13, 4}, {10, 4}, {52429, 16}, {12, 4}, {14, 4}, {1, 2}};
  for (size_t l = 0; l < model.layers.size() && c.clip; ++l)
    for (int site = 0; site < kNumClipSites; ++site) model.layers[l].act_clip[site] = ratios[(site + l) % 7];
  model.hadamard_down = model.hadamard_qk = c.hadamards;
  const formats::LoadedIllm per_token = loaded;  // the same model with per-token activations
  model.act_group_size = c.group_size;
  // The groups are in effect: the executor's logits differ from the per-token model's.
  Executor grouped(model), ungrouped(per_token.model);  // (the executor keeps a reference to its model)
  const std::vector<int32_t> ids = random_ids(3, model.shape.vocab, 6);
  EXPECT_NE(grouped.forward(ids).values, ungrouped.forward(ids).values);
  std::vector<std::vector<int32_t>> sequences{random_ids(1, model.shape.vocab, 9), ids,
                                              random_ids(77, model.shape.vocab, 10)};
  if (c.full_context) sequences.push_back(random_ids(model.shape.max_positions, model.shape.vocab, 11));
  const fs::path dir = scratch_dir();
  expect_bit_exact(loaded, sequences, dir, c.decode_steps);
  fs::remove_all(dir);
}

std::string act_group_case_name(const ::testing::TestParamInfo<ActGroupCase>& info) {
  std::string name = std::string(info.param.name) + "_g" + std::to_string(info.param.group_size);
  for (char& ch : name) ch = ch == '-' ? '_' : ch;
  if (info.param.clip) name += "_clipped";
  if (info.param.hadamards) name += "_hadamards";
  return name;
}

INSTANTIATE_TEST_SUITE_P(TinyBible, ExportedActGroupModel,
                         ::testing::Values(ActGroupCase{"tinybible-w4a4", 16, true, false, false, 0},
                                           ActGroupCase{"tinybible-w4a4", 32, false, true, false, 0},
                                           ActGroupCase{"tinybible-w8a8", 16, false, true, false, 0},
                                           ActGroupCase{"tinybible-w8a8", 32, false, false, true, 0}),
                         act_group_case_name);

// G = 8, and groups that leave a short last group (docs/integer-semantics.md "## Per-group activations": channels
// g·G … min(g·G + G, K) − 1). stories260K (hidden = heads·head_dim = 64, intermediate 172): the down_proj input ends
// in a group of 4 (G = 8), 12 (G = 16) or 12 (G = 32); at G = 128 every input is short, one group of 64 for the
// hidden-wide ones and 128 + 44 for down_proj. tinybible at G = 8 has no short group. Clipped and Hadamard variants
// as above (hadamard_down transforms the 172 channels before their groups); prefill of 1, 3 and 77 tokens (stories
// W4A4 G = 8 also the full 512) and the last 3 tokens as executor decode steps.
INSTANTIATE_TEST_SUITE_P(SmallAndShortGroups, ExportedActGroupModel,
                         ::testing::Values(ActGroupCase{"stories260K-w4a4", 8, true, false, true, 3},
                                           ActGroupCase{"stories260K-w4a4", 16, false, true, false, 3},
                                           ActGroupCase{"stories260K-w4a4", 32, false, false, false, 3},
                                           ActGroupCase{"stories260K-w4a4", 128, false, true, false, 3},
                                           ActGroupCase{"stories260K-w8a8", 8, false, true, false, 3},
                                           ActGroupCase{"tinybible-w4a4", 8, false, false, false, 3}),
                         act_group_case_name);

// Per-group activations (A = 8, 16, 32) on the shared per-group-weight model tinybible-w4a4-g32 (G = 32 in every
// block linear): each weight group sums G/A activation groups (docs/integer-semantics.md "## Per-group activations
// with per-group weights"). Prefill of 1, 3 and 77 tokens (A = 16 also the full 512) and, for the longer sequences,
// the executor's last 3 tokens as decode steps. One test per case.
class ExportedActAndWeightGroupModel : public ::testing::TestWithParam<int32_t> {};

TEST_P(ExportedActAndWeightGroupModel, OnnxRuntimeLogitsEqualTheExecutorsPrefillAndDecode) {
  formats::LoadedIllm loaded = formats::read_illm(kModels / "tinybible-w4a4-g32.illm");
  QuantizedModel& model = loaded.model;
  for (const QuantizedLayer& L : model.layers)
    for (const QuantizedLinear* w : {&L.q_proj, &L.k_proj, &L.v_proj, &L.o_proj, &L.gate_proj, &L.up_proj, &L.down_proj})
      ASSERT_EQ(w->group_size, 32);
  const formats::LoadedIllm per_token = loaded;  // the same weights with per-token activations
  model.act_group_size = GetParam();
  const fs::path dir = scratch_dir();
  expect_effective_variant_bit_exact(loaded, per_token.model, 16, GetParam() == 16, dir, /*decode_steps=*/3);
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(TinyBibleG32, ExportedActAndWeightGroupModel, ::testing::Values(8, 16, 32),
                         [](const ::testing::TestParamInfo<int32_t>& info) {
                           return "act_g" + std::to_string(info.param);
                         });

// settings.qkv_bits set in memory on the shared models (the width of the per-(token, head) q, k and v codes, hence
// of the executor's KV cache and of Q·Kᵀ and P·V; the linear inputs stay at a_bits): 8 on the W4A4 models per
// token, with act groups of 8 and with both online Hadamards (q and k requantized after the transform), and 4 on the
// W8A8 models (the other direction). One case goes through an .illm file (format version 5) before the export.
// Prefill of 1, 3 and 77 tokens (stories260K W4A4 also the full 512) and, for the longer ones, the executor's last
// 3 tokens as decode steps (its KV cache holds the qkv-bit codes). One test per case.
struct QkvCase {
  const char* name;
  int32_t qkv_bits, act_group_size;
  bool hadamards, full_context, through_file;
};

class ExportedQkvBitsModel : public ::testing::TestWithParam<QkvCase> {};

TEST_P(ExportedQkvBitsModel, OnnxRuntimeLogitsEqualTheExecutorsPrefillAndDecode) {
  const QkvCase& c = GetParam();
  formats::LoadedIllm loaded = formats::read_illm(kModels / (std::string(c.name) + ".illm"));
  QuantizedModel& model = loaded.model;
  model.act_group_size = c.act_group_size;
  model.hadamard_down = model.hadamard_qk = c.hadamards;
  const formats::LoadedIllm at_a_bits = loaded;  // the same model with a_bits-wide q, k and v
  model.settings.qkv_bits = c.qkv_bits;
  const fs::path dir = scratch_dir();
  if (c.through_file) {
    formats::write_illm(dir / "model.illm", model, loaded.meta);
    loaded = formats::read_illm(dir / "model.illm");
    ASSERT_EQ(loaded.meta.format_version, 5);
    ASSERT_EQ(loaded.model.settings.qkv_bits, c.qkv_bits);
  }
  ASSERT_NE(qkv_code_bits(loaded.model.settings), loaded.model.settings.a_bits);
  expect_effective_variant_bit_exact(loaded, at_a_bits.model, 20, c.full_context, dir, /*decode_steps=*/3);
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(QkvBits, ExportedQkvBitsModel,
                         ::testing::Values(QkvCase{"stories260K-w4a4", 8, 0, false, true, true},
                                           QkvCase{"tinybible-w4a4", 8, 0, false, false, false},
                                           QkvCase{"stories260K-w4a4", 8, 8, false, false, false},
                                           QkvCase{"tinybible-w4a4", 8, 8, false, false, false},
                                           QkvCase{"stories260K-w4a4", 8, 0, true, false, false},
                                           QkvCase{"tinybible-w4a4", 8, 8, true, false, false},
                                           QkvCase{"stories260K-w8a8", 4, 0, false, false, false},
                                           QkvCase{"tinybible-w8a8", 4, 16, true, false, false}),
                         [](const ::testing::TestParamInfo<QkvCase>& info) {
                           std::string name = info.param.name;
                           for (char& ch : name) ch = ch == '-' ? '_' : ch;
                           name += "_qkv" + std::to_string(info.param.qkv_bits);
                           if (info.param.act_group_size > 0) name += "_act_g" + std::to_string(info.param.act_group_size);
                           if (info.param.hadamards) name += "_hadamards";
                           if (info.param.through_file) name += "_file";
                           return name;
                         });

// The LM head of `head` (per row) requantized RTN per group of G input columns from its dequantized rows: every
// group gets its own zero point and dyadic scale (the group's range with 0, as the block linears' per-group RTN).
// Test-side float arithmetic; the exporter and the executor only see the integer result.
QuantizedLinear per_group_head(const QuantizedLinear& head, int32_t group_size, int mantissa_bits) {
  const int32_t out = head.out_features, in = head.in_features, groups = in / group_size;
  const int32_t q = (1 << head.bits) - 1;
  const std::vector<uint8_t> row_codes = unpack_weight_codes(head);
  std::vector<uint8_t> codes(row_codes.size());
  std::vector<int32_t> zero_points;
  std::vector<Dyadic> scales;
  for (int32_t r = 0; r < out; ++r)
    for (int32_t gi = 0; gi < groups; ++gi) {
      const Dyadic row_scale = head.scales[static_cast<size_t>(r)];
      std::vector<double> values;
      for (int32_t c = gi * group_size; c < (gi + 1) * group_size; ++c)
        values.push_back(std::ldexp(static_cast<double>(row_codes[static_cast<size_t>(r) * in + c]) -
                                        head.zero_points[static_cast<size_t>(r)],
                                    -static_cast<int>(row_scale.k)) *
                         static_cast<double>(row_scale.m));
      const double lo = std::min(0.0, *std::min_element(values.begin(), values.end()));
      const double hi = std::max(0.0, *std::max_element(values.begin(), values.end()));
      // The step as a dyadic m / 2^k with a mantissa of mantissa_bits bits (an all-zero group keeps the row's).
      Dyadic step = row_scale;
      if (hi > lo) {
        int exponent = 0;
        const double fraction = std::frexp((hi - lo) / q, &exponent);  // in [0.5, 1)
        step.m = std::llround(std::ldexp(fraction, mantissa_bits));
        step.k = mantissa_bits - exponent;
        if (step.m >= (int64_t{1} << mantissa_bits)) step.m /= 2, --step.k;
      }
      const double step_value = std::ldexp(static_cast<double>(step.m), -static_cast<int>(step.k));
      const int32_t zero = std::clamp(static_cast<int32_t>(std::lround(-lo / step_value)), 0, q);
      for (int32_t j = 0; j < group_size; ++j)
        codes[static_cast<size_t>(r) * in + gi * group_size + j] = static_cast<uint8_t>(
            std::clamp(static_cast<int32_t>(std::lround(values[static_cast<size_t>(j)] / step_value)) + zero, 0, q));
      zero_points.push_back(zero);
      scales.push_back(step);
    }
  return make_quantized_linear(out, in, head.bits, codes, std::move(zero_points), std::move(scales), group_size);
}

// The LM head options set in memory on the shared tinybible models: settings.head_in_bits (the final DI-Norm's
// output width, the LM head's input; 16 takes the head's int64 MatMul, 12 its int32 one) and per-group LM head
// weights, alone, together, and together with per-group activations (the head's input stays per token). Each model
// goes through an .illm file (format version 4) before the export. One test per case.
struct HeadCase {
  const char* name;
  int32_t head_in_bits, head_group_size, act_group_size;
  bool full_context;
};

class ExportedHeadOptionModel : public ::testing::TestWithParam<HeadCase> {};

TEST_P(ExportedHeadOptionModel, OnnxRuntimeLogitsEqualTheExecutors) {
  const HeadCase& c = GetParam();
  formats::LoadedIllm loaded = formats::read_illm(kModels / (std::string(c.name) + ".illm"));
  const formats::LoadedIllm plain = loaded;
  QuantizedModel& model = loaded.model;
  model.settings.head_in_bits = c.head_in_bits;
  model.act_group_size = c.act_group_size;
  if (c.head_group_size > 0) model.lm_head = per_group_head(model.lm_head, c.head_group_size, model.settings.mantissa_bits);
  const fs::path dir = scratch_dir();
  formats::write_illm(dir / "model.illm", model, loaded.meta);
  loaded = formats::read_illm(dir / "model.illm");
  ASSERT_EQ(loaded.meta.format_version, 4);
  ASSERT_EQ(loaded.model.settings.head_in_bits, c.head_in_bits);
  ASSERT_EQ(loaded.model.lm_head.group_size, c.head_group_size);
  expect_effective_variant_bit_exact(loaded, plain.model, 12, c.full_context, dir);
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(TinyBible, ExportedHeadOptionModel,
                         ::testing::Values(HeadCase{"tinybible-w4a4", 16, 0, 0, true},
                                           HeadCase{"tinybible-w8a8", 12, 0, 0, false},
                                           HeadCase{"tinybible-w4a8", 0, 32, 0, false},
                                           HeadCase{"tinybible-w4a4", 16, 32, 0, false},
                                           HeadCase{"tinybible-w8a8", 16, 32, 16, false}),
                         [](const ::testing::TestParamInfo<HeadCase>& info) {
                           std::string name = info.param.name;
                           for (char& ch : name) ch = ch == '-' ? '_' : ch;
                           if (info.param.head_in_bits > 0) name += "_head_in" + std::to_string(info.param.head_in_bits);
                           if (info.param.head_group_size > 0)
                             name += "_head_g" + std::to_string(info.param.head_group_size);
                           if (info.param.act_group_size > 0) name += "_act_g" + std::to_string(info.param.act_group_size);
                           return name;
                         });

TEST(ExportedModelVariants, InvalidTokenIdsAndOverlongInputsFailTheRunAsTheyFailTheExecutor) {
  // The checks live in the embedding and RoPE-table lookups before the first layer: a model without layers keeps the
  // three ONNX Runtime sessions short.
  formats::LoadedIllm loaded = formats::read_illm(kModels / "stories260K-w4a4.illm");
  loaded.model.layers.clear();
  loaded.model.shape.n_layers = 0;
  const fs::path dir = scratch_dir();
  const fs::path onnx_file = dir / "model.onnx";
  formats::export_onnx(loaded, onnx_file);
  const int32_t vocab = loaded.model.shape.vocab;
  Executor executor(loaded.model);
  for (const std::vector<int32_t>& ids : {std::vector<int32_t>{1, vocab}, std::vector<int32_t>{1, -1},
                                          random_ids(loaded.model.shape.max_positions + 1, vocab, 6)}) {
    executor.reset();
    EXPECT_THROW(executor.forward(ids), Error);
    try {
      testing::run_onnx_runtime(onnx_file, {ids_pack(ids)}, dir);
      ADD_FAILURE() << "ONNX Runtime accepted " << ids.size() << " ids ending in " << ids.back();
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("Gather"), std::string::npos) << e.what();
    }
  }
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(TestModels, ExportedTestModel,
                         ::testing::Values("stories260K-w4a4", "stories260K-w4a8", "stories260K-w8a8", "tinybible-w4a4",
                                           "tinybible-w4a8", "tinybible-w8a8"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name)
                             if (c == '-') c = '_';
                           return name;
                         });

}  // namespace
}  // namespace illm
