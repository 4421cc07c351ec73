// The C99 runtime against the C++ integer executor (issue #10), on the host: for the shared test models (both
// fixtures at W4A4/W4A8/W8A8) every greedy step's int64 logits and dyadic scale are identical; the same on synthetic
// models over the settings the test models do not use (paper-conformance numerics, 8-bit embeddings, 3-bit weights,
// a 4-bit head, odd widths); the generation rules (EOS, context limit) are those of `illm generate`; and the
// session errors (token outside the vocabulary, prompt longer than the context, arena too small) are reported. The
// extensions (clipped sites, per-group weights, online Hadamards, TRIP, per-group activations) are compared the same
// way on the shared models changed in memory.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "formats/illm_file.h"
#include "formats/model_bin.h"
#include "kernels/error.h"
#include "kernels/model_validation.h"
#include "runtime/illm_rt_format.h"
#include "tests/runtime/runtime_synthetic_model.h"
#include "tests/runtime/runtime_test_support.h"

namespace illm::rt_testing {
namespace {

std::vector<uint8_t> model_bin_of(const QuantizedModel& model, int32_t context = 0) {
  formats::ModelBinOptions options;
  options.context = context;
  return formats::build_model_bin(model, "", options).bytes;
}

// Greedy decoding in both: at every step the runtime's logits row and scale equal the executor's; then both take
// the argmax. Returns the number of steps compared (stops early when both fail with an error at the same step).
int compare_step_by_step(const QuantizedModel& model, const std::vector<int32_t>& prompt, int steps,
                         const std::string& what) {
  Runtime rt(model_bin_of(model));
  Executor executor(model);
  illm_rt_error err;
  std::vector<int32_t> sequence = prompt;
  int compared = 0;
  for (size_t t = 0; t < static_cast<size_t>(steps) + prompt.size() - 1 && t < sequence.size(); ++t) {
    bool executor_failed = false;
    IntegerLogits logits;
    try {
      logits = executor.forward(std::span<const int32_t>(&sequence[t], 1));
    } catch (const Error&) {
      executor_failed = true;
    }
    const int status = illm_rt_forward(&rt.session(), sequence[t], &err);
    EXPECT_EQ(executor_failed, status != ILLM_RT_OK) << what << " position " << t << ": " << err.message;
    if (executor_failed || status != ILLM_RT_OK) return compared;
    const illm_rt_logits& out = rt.session().logits;
    EXPECT_EQ(out.scale.m, logits.scales[0].m) << what << " position " << t;
    EXPECT_EQ(out.scale.k, logits.scales[0].k) << what << " position " << t;
    size_t differences = 0;
    for (int32_t v = 0; v < logits.vocab; ++v) differences += out.values[v] != logits.values[v];
    EXPECT_EQ(differences, 0u) << what << " position " << t;
    if (differences != 0) return compared;
    ++compared;
    const int32_t next = Executor::argmax_last(logits);
    EXPECT_EQ(illm_rt_argmax(&out), next);
    if (t + 1 == sequence.size()) sequence.push_back(next);
  }
  return compared;
}

class SharedModels : public ::testing::TestWithParam<std::tuple<const char*, const char*>> {};

TEST_P(SharedModels, EveryStepsLogitsEqualTheExecutors) {
  const auto [name, bits] = GetParam();
  const formats::LoadedIllm loaded = formats::read_illm(illm_path(name, bits));
  const std::vector<int32_t> prompt = {loaded.model.shape.bos_id, 13, 7, 300};
  EXPECT_EQ(compare_step_by_step(loaded.model, prompt, 28, std::string(name) + "-" + bits), 3 + 28);
}

INSTANTIATE_TEST_SUITE_P(BothModelsThreeWidths, SharedModels,
                         ::testing::Combine(::testing::ValuesIn(kModels), ::testing::ValuesIn(kBits)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param)) + "_" + std::get<1>(info.param);
                         });

// ---- Clipped activation requantization (required feature bit 2) ----

// A shared model with every site's requantization clipped (ratios varying by site and layer).
QuantizedModel with_act_clip(QuantizedModel model) {
  const RequantClip ratios[] = {{15, 4}, {13, 4}, {10, 4}, {52429, 16}, {12, 4}, {14, 4}, {1, 2}};
  for (size_t l = 0; l < model.layers.size(); ++l)
    for (int site = 0; site < kNumClipSites; ++site) model.layers[l].act_clip[site] = ratios[(site + 2 * l) % 7];
  return model;
}

uint32_t required_features(const std::vector<uint8_t>& bin) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = v << 8 | bin[ILLM_RT_H_REQUIRED_FEATURES + i];
  return v;
}

class ClippedModels : public ::testing::TestWithParam<std::tuple<const char*, const char*>> {};

TEST_P(ClippedModels, EveryStepsLogitsEqualTheExecutors) {
  const auto [name, bits] = GetParam();
  const QuantizedModel plain = formats::read_illm(illm_path(name, bits)).model;
  const QuantizedModel clipped = with_act_clip(plain);
  EXPECT_EQ(required_features(model_bin_of(plain)), 0u);  // the bit only when the model uses the feature
  EXPECT_EQ(required_features(model_bin_of(clipped)), ILLM_RT_FEATURE_ACT_CLIP);
  const std::vector<int32_t> prompt = {clipped.shape.bos_id, 13, 7, 300};
  EXPECT_EQ(compare_step_by_step(clipped, prompt, 20, std::string(name) + "-" + bits + "+clip"), 3 + 20);
  // The clips are in effect: the first logits differ from the unclipped model's.
  Executor a(plain), b(clipped);
  EXPECT_NE(a.forward(prompt).values, b.forward(prompt).values);
}

INSTANTIATE_TEST_SUITE_P(TwoModels, ClippedModels,
                         ::testing::Values(std::tuple{"stories260K", "w4a4"}, std::tuple{"tinybible", "w4a8"}),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param)) + "_" + std::get<1>(info.param);
                         });

// The per-group shared test model (RTN, G = 32): the same comparison, and the header states required feature bit 0
// (a per-row model states none).
TEST(PerGroupModel, EveryStepsLogitsEqualTheExecutorsAndTheFeatureBitIsSet) {
  const formats::LoadedIllm loaded = formats::read_illm(illm_path("tinybible", "w4a4-g32"));
  ASSERT_EQ(loaded.model.layers.at(0).q_proj.group_size, 32);
  const std::vector<int32_t> prompt = {loaded.model.shape.bos_id, 13, 7, 300};
  EXPECT_EQ(compare_step_by_step(loaded.model, prompt, 28, "tinybible-w4a4-g32"), 3 + 28);
  EXPECT_EQ(required_features(model_bin_of(loaded.model)), ILLM_RT_REQUIRED_GROUP_SCALES);
  EXPECT_EQ(required_features(model_bin_of(formats::read_illm(illm_path("tinybible", "w4a4")).model)), 0u);
}

// ---- Online Walsh–Hadamard transforms (required feature bit 1) ----

// The shared W4A4 models with both transforms on (stories260K: C_f 172 weighted blocks, d 8; tinybible: C_f and d
// of its shape), and synthetic shapes for each kind of matrix: Paley (C_f 24 = Paley(12) x Sylvester(2), C_f 12),
// weighted blocks (C_f 23, d 6), each site alone. The file carries bit 1 and the sites; every step equals the executor.
TEST(OnlineHadamard, EveryStepsLogitsEqualTheExecutors) {
  for (const char* name : kModels) {
    QuantizedModel model = formats::read_illm(illm_path(name, "w4a4")).model;
    model.hadamard_down = model.hadamard_qk = true;
    const std::vector<uint8_t> bytes = model_bin_of(model);
    EXPECT_EQ(bytes[ILLM_RT_H_REQUIRED_FEATURES], ILLM_RT_REQUIRED_HADAMARD) << name;
    EXPECT_EQ(bytes[ILLM_RT_H_HADAMARD_SITES], ILLM_RT_HADAMARD_DOWN | ILLM_RT_HADAMARD_QK) << name;
    const std::vector<int32_t> prompt = {model.shape.bos_id, 13, 7, 300};
    EXPECT_EQ(compare_step_by_step(model, prompt, 20, std::string(name) + " with online Hadamards"), 3 + 20);
  }
  const struct {
    int32_t intermediate, head_dim;
    bool down, qk;
  } cases[] = {{24, 4, true, true}, {12, 4, true, false}, {23, 6, true, true}, {24, 6, false, true}};
  for (const auto& c : cases) {
    SyntheticShape shape;
    shape.intermediate = c.intermediate;
    shape.head_dim = c.head_dim;
    shape.hidden = shape.heads * c.head_dim;
    QuantizedModel model = synthetic_model(shape);
    model.hadamard_down = c.down;
    model.hadamard_qk = c.qk;
    const std::string what = "synthetic C_f " + std::to_string(c.intermediate) + ", d " + std::to_string(c.head_dim);
    EXPECT_EQ(compare_step_by_step(model, {1, 5, 9}, 20, what), 22) << what;
  }
  // A plain model's file carries neither the bit nor sites (byte-identical to before the feature).
  const QuantizedModel plain = formats::read_illm(illm_path("stories260K", "w4a4")).model;
  const std::vector<uint8_t> bytes = model_bin_of(plain);
  EXPECT_EQ(bytes[ILLM_RT_H_REQUIRED_FEATURES], 0);
  EXPECT_EQ(bytes[ILLM_RT_H_HADAMARD_SITES], 0);
}

// ---- TRIP channel factors (required feature bit 3) ----

// Seeded exponents α_c ∈ [0, K] at every TRIP site of every layer, α_0 = 0 so that E = K (as kernel_paths_test's
// add_trip_factors); `alpha_equal_k`: every α_c = K (E = 0, the plain requantization bit for bit).
QuantizedModel with_trip(QuantizedModel model, int32_t max_shift, uint64_t seed, bool alpha_equal_k = false) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> exponent(0, max_shift);
  const int32_t channels[kNumClipSites] = {model.shape.hidden, 0, 0, 0, model.shape.n_heads * model.shape.head_dim,
                                           model.shape.hidden, model.shape.intermediate};
  for (QuantizedLayer& L : model.layers) {
    L.trip_max_shift = max_shift;
    for (int site = 0; site < kNumClipSites; ++site) {
      if (!trip_capable_site(site)) continue;
      std::vector<int8_t>& alpha = L.trip_alpha[site];
      alpha.resize(static_cast<size_t>(channels[site]));
      for (int8_t& a : alpha) a = static_cast<int8_t>(alpha_equal_k ? max_shift : exponent(rng));
      alpha[0] = static_cast<int8_t>(alpha_equal_k ? max_shift : 0);
    }
  }
  return model;
}

uint32_t tensor_count(const std::vector<uint8_t>& bin) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = v << 8 | bin[ILLM_RT_H_TENSOR_COUNT + i];
  return v;
}

class TripModels : public ::testing::TestWithParam<std::tuple<const char*, const char*, int>> {};

// The file carries bit 3 and one TRIP tensor per layer; every step's logits equal the executor's; the factors are in
// effect (the first logits differ from the plain model's).
TEST_P(TripModels, EveryStepsLogitsEqualTheExecutors) {
  const auto [name, bits, max_shift] = GetParam();
  const QuantizedModel plain = formats::read_illm(illm_path(name, bits)).model;
  const QuantizedModel trip = with_trip(plain, max_shift, 11u + static_cast<uint64_t>(max_shift));
  const std::vector<uint8_t> bytes = model_bin_of(trip);
  EXPECT_EQ(required_features(bytes) & ILLM_RT_REQUIRED_TRIP, ILLM_RT_REQUIRED_TRIP);
  EXPECT_EQ(tensor_count(bytes), tensor_count(model_bin_of(plain)) + static_cast<uint32_t>(plain.shape.n_layers));
  const std::vector<int32_t> prompt = {trip.shape.bos_id, 13, 7, 300};
  const std::string what = std::string(name) + "-" + bits + "+trip K " + std::to_string(max_shift);
  EXPECT_EQ(compare_step_by_step(trip, prompt, 20, what), 3 + 20);
  Executor a(plain), b(trip);
  EXPECT_NE(a.forward(prompt).values, b.forward(prompt).values) << what;
}

INSTANTIATE_TEST_SUITE_P(SharedModels, TripModels,
                         ::testing::Values(std::tuple{"stories260K", "w4a4", 3}, std::tuple{"tinybible", "w4a8", 3},
                                           std::tuple{"tinybible", "w4a8", 8}, std::tuple{"stories260K", "w8a8", 5},
                                           std::tuple{"tinybible", "w4a4-g32", 2}),
                         [](const auto& info) {
                           std::string bits = std::get<1>(info.param);
                           for (char& c : bits)
                             if (c == '-') c = '_';
                           return std::string(std::get<0>(info.param)) + "_" + bits + "_K" +
                                  std::to_string(std::get<2>(info.param));
                         });

// TRIP with clipped sites and the online q/k Hadamard; and only some sites and layers (layers without TRIP keep
// K = 0 in their tensor).
TEST(TripModels, CombinedWithClipsHadamardAndPartialSites) {
  QuantizedModel model = with_trip(with_act_clip(formats::read_illm(illm_path("stories260K", "w4a4")).model), 4, 5);
  model.hadamard_qk = true;
  EXPECT_EQ(required_features(model_bin_of(model)),
            ILLM_RT_FEATURE_ACT_CLIP | ILLM_RT_REQUIRED_HADAMARD | ILLM_RT_REQUIRED_TRIP);
  EXPECT_EQ(compare_step_by_step(model, {model.shape.bos_id, 13, 7, 300}, 16, "stories260K+clip+had_qk+trip"), 3 + 16);

  QuantizedModel partial = with_trip(formats::read_illm(illm_path("tinybible", "w4a8")).model, 3, 9);
  for (size_t l = 0; l < partial.layers.size(); ++l)
    for (int site = 0; site < kNumClipSites; ++site)
      if (l % 2 == 1 || site == kClipAttnIn || site == kClipDownIn) partial.layers[l].trip_alpha[site].clear();
  for (size_t l = 1; l < partial.layers.size(); l += 2) partial.layers[l].trip_max_shift = 0;
  EXPECT_EQ(compare_step_by_step(partial, {partial.shape.bos_id, 13, 7, 300}, 16, "tinybible-w4a8 partial trip"),
            3 + 16);
}

// The runtime on `variant`'s file gives, token by token, the executor's logits of `plain` (an option that is the identity).
void expect_runtime_gives_the_plain_models_logits(const QuantizedModel& variant, const QuantizedModel& plain) {
  Runtime rt(model_bin_of(variant));
  Executor executor(plain);
  illm_rt_error err;
  for (const int32_t token : {plain.shape.bos_id, 13, 7, 300}) {
    const IntegerLogits expected = executor.forward(std::span<const int32_t>(&token, 1));
    ASSERT_EQ(illm_rt_forward(&rt.session(), token, &err), ILLM_RT_OK) << err.message;
    EXPECT_EQ(std::vector<int64_t>(rt.session().logits.values, rt.session().logits.values + expected.vocab),
              expected.values);
    EXPECT_EQ(rt.session().logits.scale.k, expected.scales[0].k);
  }
}

// α ≡ K (E = 0) is the plain requantization: the runtime on that file gives the plain model's logits.
TEST(TripModels, AlphaEqualToKIsThePlainModel) {
  const QuantizedModel plain = formats::read_illm(illm_path("tinybible", "w4a8")).model;
  expect_runtime_gives_the_plain_models_logits(with_trip(plain, 3, 1, /*alpha_equal_k=*/true), plain);
}

// A model without TRIP: no bit 3 and no TRIP tensor (the table is the 9 model tensors and 24 per layer).
TEST(TripModels, AFileWithoutTripHasNeitherTheBitNorTheTensor) {
  const QuantizedModel plain = formats::read_illm(illm_path("tinybible", "w4a8")).model;
  const std::vector<uint8_t> bytes = model_bin_of(plain);
  EXPECT_EQ(required_features(bytes), 0u);
  EXPECT_EQ(tensor_count(bytes), static_cast<uint32_t>(ILLM_RT_GLOBAL_TENSORS + ILLM_RT_LAYER_TENSORS * plain.shape.n_layers));
}

// The loader checks the TRIP tensor: an exponent above K is refused naming the layer (CRC recomputed).
TEST(TripModels, LoaderRefusesAnExponentAboveK) {
  const QuantizedModel trip = with_trip(formats::read_illm(illm_path("stories260K", "w4a4")).model, 3, 2);
  std::vector<uint8_t> bytes = model_bin_of(trip);
  const size_t first = ILLM_RT_GLOBAL_TENSORS + ILLM_RT_LAYER_TENSORS * static_cast<size_t>(trip.shape.n_layers);
  const size_t entry = 64 * ((ILLM_RT_HEADER_SIZE + 63) / 64) + first * ILLM_RT_TENSOR_ENTRY_SIZE;
  uint64_t offset = 0;
  for (int i = 7; i >= 0; --i) offset = offset << 8 | bytes[entry + ILLM_RT_ENT_OFFSET + i];
  ASSERT_EQ(bytes[entry + ILLM_RT_ENT_KIND], ILLM_RT_T_TRIP);
  bytes[offset + ILLM_RT_TRIP_HEADER + 1] = 4;  // attn_in α_1 = 4 > K = 3
  const uint32_t crc = illm_rt_crc32(0, bytes.data() + 16, bytes.size() - 16);
  for (int i = 0; i < 4; ++i) bytes[ILLM_RT_H_CRC32 + i] = static_cast<uint8_t>(crc >> (8 * i));
  illm_rt_model model;
  illm_rt_error err;
  EXPECT_EQ(illm_rt_load(&model, bytes.data(), bytes.size(), &err), ILLM_RT_E_INVALID);
  EXPECT_NE(std::string(err.message).find("layers[0].trip"), std::string::npos) << err.message;
}

// ---- Per-group activations (required feature 16) ----

uint32_t header_u32(const std::vector<uint8_t>& bin, size_t offset) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = v << 8 | bin[offset + static_cast<size_t>(i)];
  return v;
}

void put_header_u32(std::vector<uint8_t>& bin, size_t offset, uint32_t v) {
  for (int i = 0; i < 4; ++i) bin[offset + static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (8 * i));
}

void recompute_crc(std::vector<uint8_t>& bin) {
  put_header_u32(bin, ILLM_RT_H_CRC32, illm_rt_crc32(0, bin.data() + 16, bin.size() - 16));
}

// One u32 header field of a model.bin changed, and the loader's expected status and a part of its message.
struct HeaderMutation {
  const char* what;
  size_t offset;
  uint32_t value;
  int status;
  const char* message;
};

// `good` loads; each mutation of it (CRC recomputed, so that the loader reaches its field checks) gives its status
// and a message naming the problem.
void expect_header_mutations(const std::vector<uint8_t>& good, const std::vector<HeaderMutation>& mutations) {
  const auto load = [](std::vector<uint8_t> bytes, std::string* message) {
    recompute_crc(bytes);
    illm_rt_model m;
    illm_rt_error err;
    const int status = illm_rt_load(&m, bytes.data(), bytes.size(), &err);
    *message = err.message;
    return status;
  };
  std::string message;
  EXPECT_EQ(load(good, &message), ILLM_RT_OK) << message;
  for (const HeaderMutation& mutation : mutations) {
    std::vector<uint8_t> bytes = good;
    put_header_u32(bytes, mutation.offset, mutation.value);
    EXPECT_EQ(load(bytes, &message), mutation.status) << mutation.what << ": " << message;
    EXPECT_NE(message.find(mutation.message), std::string::npos) << mutation.what << ": " << message;
  }
}

// Prefill: the executor runs the whole prompt in one call; the runtime, token by token, gives every row's logits and
// scale bit for bit.
void expect_prefill_rows_equal(const QuantizedModel& model, const std::vector<int32_t>& prompt, const std::string& what) {
  Runtime rt(model_bin_of(model));
  Executor executor(model);
  const IntegerLogits all = executor.forward(prompt);
  ASSERT_EQ(all.tokens, static_cast<int32_t>(prompt.size())) << what;
  const auto vocab = static_cast<ptrdiff_t>(all.vocab);
  illm_rt_error err;
  for (size_t t = 0; t < prompt.size(); ++t) {
    ASSERT_EQ(illm_rt_forward(&rt.session(), prompt[t], &err), ILLM_RT_OK) << what << " row " << t << ": " << err.message;
    const illm_rt_logits& out = rt.session().logits;
    const auto row = all.values.begin() + static_cast<ptrdiff_t>(t) * vocab;
    EXPECT_EQ(std::vector<int64_t>(out.values, out.values + vocab), std::vector<int64_t>(row, row + vocab))
        << what << " prefill row " << t;
    EXPECT_EQ(out.scale.m, all.scales[t].m) << what << " prefill row " << t;
    EXPECT_EQ(out.scale.k, all.scales[t].k) << what << " prefill row " << t;
  }
}

struct ActGroupCase {
  const char* bits;
  int32_t group;
  bool hadamard;  // hadamard_down and hadamard_qk
  bool clip;      // every site clipped (with_act_clip): the per-group requantizations take the site's ratio
  const char* model = "tinybible";
};

void PrintTo(const ActGroupCase& c, std::ostream* os) {
  *os << c.model << "-" << c.bits << " G " << c.group << (c.hadamard ? " hadamard" : "") << (c.clip ? " clip" : "");
}

std::string act_group_case_name(const ::testing::TestParamInfo<ActGroupCase>& info) {
  const ActGroupCase& c = info.param;
  std::string bits = c.bits;
  std::replace(bits.begin(), bits.end(), '-', '_');  // a test name is an identifier
  return std::string(c.model) + "_" + bits + "_G" + std::to_string(c.group) + (c.hadamard ? "_hadamard" : "") +
         (c.clip ? "_clip" : "");
}

class ActGroupModels : public ::testing::TestWithParam<ActGroupCase> {};

// A shared model (tinybible: hidden 192, heads·d 192, intermediate 512; stories260K: hidden 64, heads·d 64,
// intermediate 172) made a per-group activation model in memory: the file carries the bit and G and no extra tensor,
// its arena is the runtime's; prefill rows and every greedy step's logits equal the executor's; the groups are in
// effect (the logits differ from the per-token model's).
TEST_P(ActGroupModels, PrefillAndEveryStepsLogitsEqualTheExecutors) {
  const ActGroupCase& c = GetParam();
  QuantizedModel plain = formats::read_illm(illm_path(c.model, c.bits)).model;
  if (c.clip) plain = with_act_clip(plain);
  plain.hadamard_down = plain.hadamard_qk = c.hadamard;
  QuantizedModel grouped = plain;
  grouped.act_group_size = c.group;
  const std::string what = std::string(c.model) + "-" + c.bits + " G " + std::to_string(c.group) +
                           (c.hadamard ? " +hadamard" : "") + (c.clip ? " +clip" : "");
  const std::vector<uint8_t> bytes = model_bin_of(grouped), plain_bytes = model_bin_of(plain);
  EXPECT_EQ(required_features(bytes), required_features(plain_bytes) | ILLM_RT_REQUIRED_ACT_GROUPS) << what;
  EXPECT_EQ(header_u32(bytes, ILLM_RT_H_ACT_GROUP_SIZE), static_cast<uint32_t>(c.group)) << what;
  EXPECT_EQ(tensor_count(bytes), tensor_count(plain_bytes)) << what;
  EXPECT_EQ(bytes.size(), plain_bytes.size()) << what;
  {
    Runtime rt(bytes);
    EXPECT_EQ(rt.model().act_group_size, c.group);
    EXPECT_EQ(rt.model().header_arena_bytes, illm_rt_arena_size(&rt.model(), 0));
  }
  const std::vector<int32_t> prompt = {grouped.shape.bos_id, 13, 7, 300, 42, 5, 1000 % grouped.shape.vocab, 77};
  expect_prefill_rows_equal(grouped, prompt, what);
  EXPECT_EQ(compare_step_by_step(grouped, {grouped.shape.bos_id, 13, 7, 300}, 20, what), 3 + 20);
  Executor a(plain), b(grouped);
  EXPECT_NE(a.forward(prompt).values, b.forward(prompt).values) << what;
}

INSTANTIATE_TEST_SUITE_P(Tinybible, ActGroupModels,
                         ::testing::Values(ActGroupCase{"w4a4", 16, false, false}, ActGroupCase{"w4a4", 32, true, false},
                                           ActGroupCase{"w8a8", 32, false, false}, ActGroupCase{"w8a8", 16, true, false},
                                           ActGroupCase{"w8a8", 64, false, false}, ActGroupCase{"w4a8", 32, false, true},
                                           // per-group weights (G 32) with A 16 (two activation groups per weight
                                           // group) and A 32 (one): "## Per-group activations with per-group weights"
                                           ActGroupCase{"w4a4-g32", 16, false, false},
                                           ActGroupCase{"w4a4-g32", 32, false, false},
                                           ActGroupCase{"w4a4-g32", 16, true, false},
                                           ActGroupCase{"w4a4-g32", 32, true, false}),
                         act_group_case_name);

// G = 8 and G not dividing a width (docs/integer-semantics.md "Groups of a width K": the last group is short).
// stories260K's intermediate 172 (the down_proj input) ends in a group of 4 (G 8), 12 (G 16 and 32) or 44 (G 128);
// at G 128 its hidden 64 (and heads·d 64) is ONE short group; tinybible at G 8 has no short group but 8-wide ones,
// at G 128 its hidden 192 is 128 + 64; the G-32 weight model at G 8 (four activation groups per weight group).
INSTANTIATE_TEST_SUITE_P(
    GroupOf8AndShortGroups, ActGroupModels,
    ::testing::Values(ActGroupCase{"w4a4", 8, false, false, "stories260K"},
                      ActGroupCase{"w4a4", 8, true, false, "stories260K"},
                      ActGroupCase{"w4a4", 16, false, false, "stories260K"},
                      ActGroupCase{"w4a4", 16, true, false, "stories260K"},
                      ActGroupCase{"w4a4", 32, false, false, "stories260K"},
                      ActGroupCase{"w4a4", 32, true, false, "stories260K"},
                      ActGroupCase{"w4a4", 128, false, false, "stories260K"},
                      ActGroupCase{"w4a4", 128, true, false, "stories260K"},
                      ActGroupCase{"w4a8", 16, false, true, "stories260K"},
                      ActGroupCase{"w8a8", 8, false, false, "stories260K"},
                      ActGroupCase{"w8a8", 8, true, false, "stories260K"},
                      ActGroupCase{"w4a4", 8, false, false}, ActGroupCase{"w4a4", 8, true, false},
                      ActGroupCase{"w4a4", 128, false, false}, ActGroupCase{"w4a4-g32", 8, false, false}),
    act_group_case_name);

// Synthetic models with per-group weights of every G (32, 64, 128) and each A dividing it, from one activation group
// per weight group to eight: 4-bit (packed) and 8-bit weights, and the paper-conformance numerics.
TEST(ActGroupModels, SyntheticModelsWithWeightGroupsEqualTheExecutor) {
  struct Case {
    int32_t weight_group, act_group, bits;
    bool paper;
  };
  const Case cases[] = {{32, 16, 4, false}, {32, 32, 8, false}, {64, 16, 4, false}, {64, 64, 4, true},
                        {128, 16, 8, true}, {128, 32, 4, false}, {128, 128, 8, false}};
  for (const Case& c : cases) {
    SyntheticShape shape;
    shape.hidden = 128;
    shape.intermediate = 256;
    shape.heads = 4;
    shape.head_dim = 32;
    shape.group_size = c.weight_group;
    if (c.paper) shape.settings = paper_conformance_settings(shape.settings);
    shape.settings.a_bits = shape.settings.w_bits = c.bits;
    for (uint64_t seed = 1; seed <= 2; ++seed) {
      shape.seed = seed;
      QuantizedModel model = synthetic_model(shape);
      model.act_group_size = c.act_group;
      const std::string what = "synthetic w" + std::to_string(c.bits) + "a" + std::to_string(c.bits) + " G " +
                               std::to_string(c.weight_group) + " A " + std::to_string(c.act_group) +
                               (c.paper ? " paper" : "") + " seed " + std::to_string(seed);
      EXPECT_EQ(required_features(model_bin_of(model)), ILLM_RT_REQUIRED_GROUP_SCALES | ILLM_RT_REQUIRED_ACT_GROUPS)
          << what;
      expect_prefill_rows_equal(model, {1, 5, 9, 13, 2, 7}, what);
      EXPECT_EQ(compare_step_by_step(model, {1, 5, 9}, 20, what), 22) << what;
    }
  }
}

// A synthetic shape of 4 heads with these widths (hidden = 4 head_dim).
SyntheticShape four_head_shape(int32_t head_dim, int32_t intermediate) {
  SyntheticShape shape;
  shape.heads = 4;
  shape.head_dim = head_dim;
  shape.hidden = 4 * head_dim;
  shape.intermediate = intermediate;
  return shape;
}

// Synthetic models (seeded weights and scales, small widths) at G 16: W4A4 and the paper-conformance W8A8 numerics.
TEST(ActGroupModels, SyntheticModelsEqualTheExecutor) {
  SyntheticShape shape = four_head_shape(16, 96);
  SyntheticShape paper = shape;
  paper.settings = paper_conformance_settings(paper.settings);
  paper.settings.a_bits = paper.settings.w_bits = 8;
  for (const SyntheticShape* base : {&shape, &paper})
    for (uint64_t seed = 1; seed <= 3; ++seed) {
      SyntheticShape s = *base;
      s.seed = seed;
      QuantizedModel model = synthetic_model(s);
      model.act_group_size = 16;
      const std::string what = std::string(base == &shape ? "synthetic w4a4" : "synthetic paper w8a8") + " G 16 seed " +
                               std::to_string(seed);
      EXPECT_EQ(compare_step_by_step(model, {1, 5, 9}, 20, what), 22) << what;
    }
}

// The arena the runtime computes holds every region of a per-group model: a session given exactly that many bytes
// never writes past them (a guard band after them stays untouched over a prefill and decode steps).
TEST(ActGroupModels, TheSessionStaysInsideItsArena) {
  QuantizedModel model = formats::read_illm(illm_path("tinybible", "w8a8")).model;
  model.act_group_size = 16;
  model.hadamard_down = true;
  const std::vector<uint8_t> bytes = model_bin_of(model);
  illm_rt_model m;
  illm_rt_error err;
  ASSERT_EQ(illm_rt_load(&m, bytes.data(), bytes.size(), &err), ILLM_RT_OK) << err.message;
  const size_t need = illm_rt_arena_size(&m, 0);
  illm_rt_shape shape = m.shape;
  EXPECT_GT(need, illm_rt_arena_size_for_shape(&shape, m.default_context));  // the group regions
  EXPECT_EQ(need, illm_rt_arena_size_for_groups(&shape, 16, m.default_context));
  constexpr size_t kGuard = 4096;
  std::vector<uint8_t> arena(need + kGuard, 0xA5);
  illm_rt_session session;
  ASSERT_EQ(illm_rt_session_init(&session, &m, arena.data(), need, 0, &err), ILLM_RT_OK) << err.message;
  for (const int32_t token : {model.shape.bos_id, 13, 7, 300, 42, 5, 1000, 77, 9, 11})
    ASSERT_EQ(illm_rt_forward(&session, token, &err), ILLM_RT_OK) << err.message;
  EXPECT_EQ(std::count(arena.begin() + static_cast<ptrdiff_t>(need), arena.end(), 0xA5), static_cast<ptrdiff_t>(kGuard));
}

// Synthetic models whose widths G does not divide (a short last group), on the paths the shared models do not reach:
// an odd intermediate (23: a short group of odd width, whose packed 4-bit weights end in the row's padding nibble;
// at G 32 the whole row is one group narrower than G), hidden 40 (16 + 16 + 8 at G 16; one group of 40 at G 64), the
// online down_proj Hadamard on the odd width, W4A4 and the paper-conformance W8A8 numerics.
TEST(ActGroupModels, SyntheticModelsWithShortGroupsEqualTheExecutor) {
  struct Case {
    int32_t head_dim, intermediate, act_group;  // hidden = 4 head_dim
    bool hadamard_down;
  };
  const Case cases[] = {{16, 23, 8, false}, {16, 23, 16, true}, {16, 23, 32, false},
                        {10, 72, 16, false}, {10, 72, 64, true}, {10, 7, 8, false}};
  for (const Case& c : cases)
    for (const bool paper : {false, true}) {
      SyntheticShape shape = four_head_shape(c.head_dim, c.intermediate);
      if (paper) {
        shape.settings = paper_conformance_settings(shape.settings);
        shape.settings.a_bits = shape.settings.w_bits = 8;
      }
      for (uint64_t seed = 1; seed <= 2; ++seed) {
        shape.seed = seed;
        QuantizedModel model = synthetic_model(shape);
        model.act_group_size = c.act_group;
        model.hadamard_down = c.hadamard_down;
        const std::string what = std::string(paper ? "synthetic paper w8a8" : "synthetic w4a4") + " hidden " +
                                 std::to_string(shape.hidden) + " intermediate " + std::to_string(c.intermediate) +
                                 " G " + std::to_string(c.act_group) + (c.hadamard_down ? " +hadamard_down" : "") +
                                 " seed " + std::to_string(seed);
        expect_prefill_rows_equal(model, {1, 5, 9, 13, 2, 7}, what);
        EXPECT_EQ(compare_step_by_step(model, {1, 5, 9}, 20, what), 22) << what;
      }
    }
}

// The group regions hold ceil(max_in / G) entries each (three int32 arrays after every other region, each 16-byte
// aligned): the arena size rule against that formula, for G dividing the widths and not.
TEST(ActGroupModels, TheArenaHoldsCeilOfMaxInOverGGroups) {
  const auto align = [](uint64_t n) { return (n + 15) / 16 * 16; };
  illm_rt_shape shape{64, 172, 5, 8, 4, 8, 512, 512, 1, 2};  // stories260K's shape: max_in 172
  for (const int32_t G : {8, 16, 32, 64, 128}) {
    for (const int32_t intermediate : {172, 72, 64, 7}) {
      shape.intermediate = intermediate;
      const uint64_t max_in = std::max<uint64_t>(64, static_cast<uint64_t>(intermediate));
      const uint64_t entries = (max_in + static_cast<uint64_t>(G) - 1) / static_cast<uint64_t>(G);
      uint64_t total = illm_rt_arena_size_for_shape(&shape, 64) - 16;  // without the alignment slack
      for (int r = 0; r < 3; ++r) total = align(total) + entries * 4;
      EXPECT_EQ(illm_rt_arena_size_for_groups(&shape, G, 64), total + 16) << "G " << G << " intermediate " << intermediate;
    }
  }
}

// A session in exactly its arena, placed so that the alignment uses 15 of its 16 slack bytes, never writes past it on
// models with short groups (the last group region is the arena's end: an entry for the short group left out of the
// size would land in the guard band; hidden 40 / intermediate 72 at G 16 makes that 4 bytes past a 16-byte boundary).
TEST(ActGroupModels, TheSessionStaysInsideItsArenaWithShortGroups) {
  QuantizedModel synthetic = synthetic_model(four_head_shape(10, 72));
  synthetic.act_group_size = 16;
  QuantizedModel stories = formats::read_illm(illm_path("stories260K", "w4a4")).model;
  stories.act_group_size = 8;
  stories.hadamard_down = true;
  QuantizedModel stories128 = formats::read_illm(illm_path("stories260K", "w8a8")).model;
  stories128.act_group_size = 128;
  for (const QuantizedModel* model : {&synthetic, &stories, &stories128}) {
    const std::string what = "G " + std::to_string(model->act_group_size) + " hidden " +
                             std::to_string(model->shape.hidden);
    const std::vector<uint8_t> bytes = model_bin_of(*model);
    illm_rt_model m;
    illm_rt_error err;
    ASSERT_EQ(illm_rt_load(&m, bytes.data(), bytes.size(), &err), ILLM_RT_OK) << what << ": " << err.message;
    const size_t need = illm_rt_arena_size(&m, 0);
    constexpr size_t kGuard = 4096;
    std::vector<uint8_t> buffer(need + kGuard + 32, 0xA5);
    uint8_t* arena = buffer.data();
    while (reinterpret_cast<uintptr_t>(arena) % 16 != 1) ++arena;  // the session's start moves up by 15
    illm_rt_session session;
    ASSERT_EQ(illm_rt_session_init(&session, &m, arena, need, 0, &err), ILLM_RT_OK) << what << ": " << err.message;
    for (const int32_t token : {model->shape.bos_id, 13, 7, 30, 2, 5, 11, 9})
      ASSERT_EQ(illm_rt_forward(&session, token, &err), ILLM_RT_OK) << what << ": " << err.message;
    EXPECT_EQ(std::count(arena + need, arena + need + kGuard, 0xA5), static_cast<ptrdiff_t>(kGuard)) << what;
  }
}

// A model without act groups: no bit, G 0 in the header, no extra tensor, the arena of the shape alone (the file is
// the one the exporter wrote before the feature; compared byte for byte with it when the feature was added).
TEST(ActGroupModels, AFileWithoutActGroupsHasNeitherTheBitNorTheSize) {
  for (const char* bits : kBits) {
    const QuantizedModel plain = formats::read_illm(illm_path("tinybible", bits)).model;
    const std::vector<uint8_t> bytes = model_bin_of(plain);
    EXPECT_EQ(required_features(bytes), 0u) << bits;
    EXPECT_EQ(header_u32(bytes, ILLM_RT_H_ACT_GROUP_SIZE), 0u) << bits;
    EXPECT_EQ(tensor_count(bytes), static_cast<uint32_t>(ILLM_RT_GLOBAL_TENSORS + ILLM_RT_LAYER_TENSORS * plain.shape.n_layers));
    Runtime rt(bytes);
    illm_rt_shape shape = rt.model().shape;
    EXPECT_EQ(rt.model().header_arena_bytes, illm_rt_arena_size_for_shape(&shape, rt.model().default_context)) << bits;
  }
}

// The header's bit and G must agree, and the loader refuses what the executor refuses (CRC recomputed each time): a
// runtime without the feature refuses the bit as unknown (as this one refuses bit 128); G without the bit; the bit with
// a G outside {8, 16, 32, 64, 128} (a G not dividing a width is a short last group: tinybible at G 128 above); the bit
// with TRIP.
TEST(ActGroupModels, LoaderRefusesAMissingOrInconsistentBit) {
  QuantizedModel model = formats::read_illm(illm_path("tinybible", "w4a4")).model;
  model.act_group_size = 32;
  const std::vector<uint8_t> good = model_bin_of(model);
  const uint32_t bits = required_features(good);
  ASSERT_EQ(bits, ILLM_RT_REQUIRED_ACT_GROUPS);
  expect_header_mutations(good, {
      {"an unknown required bit", ILLM_RT_H_REQUIRED_FEATURES, bits | 128u, ILLM_RT_E_UNSUPPORTED, "feature bits 128"},
      {"G without the bit", ILLM_RT_H_REQUIRED_FEATURES, 0u, ILLM_RT_E_INVALID, "act_group_size 32"},
      {"the bit without G", ILLM_RT_H_ACT_GROUP_SIZE, 0u, ILLM_RT_E_INVALID, "act_group_size 0"},
      {"G 4", ILLM_RT_H_ACT_GROUP_SIZE, 4u, ILLM_RT_E_INVALID, "act_group_size 4 does not match"},
      {"G 24", ILLM_RT_H_ACT_GROUP_SIZE, 24u, ILLM_RT_E_INVALID, "act_group_size 24 does not match"},
      {"G 256", ILLM_RT_H_ACT_GROUP_SIZE, 256u, ILLM_RT_E_INVALID, "act_group_size 256 does not match"},
      {"with TRIP", ILLM_RT_H_REQUIRED_FEATURES, bits | ILLM_RT_REQUIRED_TRIP, ILLM_RT_E_INVALID, "TRIP"},
  });
}

// Per-group weights need A to divide their G (CRC recomputed): the G-32 model with A 32 loads; A 64 (which divides
// every width of tinybible) and A 128 (which does not divide its hidden 192, a short group for a per-row weight) are
// refused naming the first block linear and both sizes (the G-32 model with A 8: GroupOf8AndShortGroups above).
// Bit 0 on a per-row file (no linear with groups) is accepted with act groups as without them.
TEST(ActGroupModels, LoaderRefusesWeightGroupsThatActGroupSizeDoesNotDivide) {
  QuantizedModel model = formats::read_illm(illm_path("tinybible", "w4a4-g32")).model;
  ASSERT_EQ(model.layers.at(0).q_proj.group_size, 32);
  model.act_group_size = 32;
  const std::vector<uint8_t> good = model_bin_of(model);
  ASSERT_EQ(required_features(good), ILLM_RT_REQUIRED_GROUP_SCALES | ILLM_RT_REQUIRED_ACT_GROUPS);
  expect_header_mutations(good, {
      {"A 64 with G 32", ILLM_RT_H_ACT_GROUP_SIZE, 64u, ILLM_RT_E_INVALID,
       "layers[0].q_proj has weight groups of 32 columns, which act_group_size 64 does not divide"},
      {"A 128 with G 32", ILLM_RT_H_ACT_GROUP_SIZE, 128u, ILLM_RT_E_INVALID,
       "layers[0].q_proj has weight groups of 32 columns, which act_group_size 128 does not divide"},
  });
  QuantizedModel per_row = formats::read_illm(illm_path("tinybible", "w4a4")).model;
  per_row.act_group_size = 32;
  std::vector<uint8_t> bytes = model_bin_of(per_row);
  put_header_u32(bytes, ILLM_RT_H_REQUIRED_FEATURES, required_features(bytes) | ILLM_RT_REQUIRED_GROUP_SCALES);
  recompute_crc(bytes);
  illm_rt_model m;
  illm_rt_error err;
  EXPECT_EQ(illm_rt_load(&m, bytes.data(), bytes.size(), &err), ILLM_RT_OK) << err.message;
}

// ---- LM-head options: the head's input width (required feature 32) and per-group head weights (feature 1) ----

struct HeadCase {
  const char* name;
  int32_t head_in_bits;  // 0: head_bits
  int32_t head_group;    // 0: per row
  int32_t act_group;     // per-group activations of the block linears (the head's input stays per token)
  int32_t head_bits;
};

void PrintTo(const HeadCase& c, std::ostream* os) { *os << c.name; }

// The column count of the LM head's zero-point entry: the head's groups per row.
uint32_t head_zero_point_columns(const std::vector<uint8_t>& bin) {
  const size_t entry = header_u32(bin, ILLM_RT_H_TENSOR_TABLE) +
                       static_cast<size_t>(ILLM_RT_T_LM_HEAD_ZERO_POINTS - 1) * ILLM_RT_TENSOR_ENTRY_SIZE;
  return header_u32(bin, entry + ILLM_RT_ENT_COLS);
}

QuantizedModel head_case_model(const HeadCase& c, uint64_t seed) {
  SyntheticShape shape = lm_head_options_shape(seed);
  shape.settings.head_in_bits = c.head_in_bits;
  shape.settings.head_bits = c.head_bits;
  shape.head_group_size = c.head_group;
  QuantizedModel model = synthetic_model(shape);
  model.act_group_size = c.act_group;
  return model;
}

class LmHeadOptions : public ::testing::TestWithParam<HeadCase> {};

// Synthetic models (seeds 1..3): the header states exactly the features the model uses (bit 32 and the width at
// offset 216, bit 1 and the head's zero points [vocab][hidden / G]); prefill rows and every greedy step's logits equal
// the executor's; the input width is in effect (the logits differ from those of the head_bits-wide input).
TEST_P(LmHeadOptions, PrefillAndEveryStepsLogitsEqualTheExecutors) {
  const HeadCase& c = GetParam();
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    const QuantizedModel model = head_case_model(c, seed);
    const std::string what = std::string(c.name) + " seed " + std::to_string(seed);
    const std::vector<uint8_t> bytes = model_bin_of(model);
    const uint32_t expected_bits = (c.head_in_bits != 0 ? ILLM_RT_REQUIRED_HEAD_INPUT : 0u) |
                                   (c.head_group != 0 ? ILLM_RT_REQUIRED_GROUP_SCALES : 0u) |
                                   (c.act_group != 0 ? ILLM_RT_REQUIRED_ACT_GROUPS : 0u);
    EXPECT_EQ(required_features(bytes), expected_bits) << what;
    EXPECT_EQ(header_u32(bytes, ILLM_RT_H_HEAD_INPUT_BITS), static_cast<uint32_t>(c.head_in_bits)) << what;
    EXPECT_EQ(head_zero_point_columns(bytes),
              c.head_group != 0 ? static_cast<uint32_t>(model.shape.hidden / c.head_group) : 1u)
        << what;
    {
      Runtime rt(bytes);
      EXPECT_EQ(rt.model().head_input_bits, c.head_in_bits != 0 ? c.head_in_bits : c.head_bits) << what;
      EXPECT_EQ(rt.model().header_arena_bytes, illm_rt_arena_size(&rt.model(), 0)) << what;
    }
    expect_prefill_rows_equal(model, {1, 5, 9, 13, 2, 7}, what);
    EXPECT_EQ(compare_step_by_step(model, {1, 5, 9}, 20, what), 22) << what;
    if (c.head_in_bits != 0 && c.head_in_bits != c.head_bits) {
      QuantizedModel narrow = model;
      narrow.settings.head_in_bits = 0;
      const std::vector<int32_t> prompt = {1, 5, 9};
      Executor a(narrow), b(model);
      EXPECT_NE(a.forward(prompt).values, b.forward(prompt).values) << what;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Synthetic, LmHeadOptions,
    ::testing::Values(HeadCase{"head_in_16", 16, 0, 0, 8}, HeadCase{"head_group_32", 0, 32, 0, 8},
                      HeadCase{"head_in_16_group_32", 16, 32, 0, 8},
                      HeadCase{"head_in_16_group_32_act_group_16", 16, 32, 16, 8},
                      HeadCase{"head_in_12_group_32_head_4", 12, 32, 0, 4}, HeadCase{"head_in_6_head_4", 6, 0, 0, 4},
                      HeadCase{"head_in_9_act_group_32", 9, 0, 32, 8}),
    [](const auto& info) { return std::string(info.param.name); });

// The shared W4A4 models with a 16-bit head input: every greedy step equals the executor's.
TEST(LmHeadOptions, SharedModelsWithA16BitHeadInputEqualTheExecutor) {
  for (const char* name : kModels) {
    QuantizedModel model = formats::read_illm(illm_path(name, "w4a4")).model;
    model.settings.head_in_bits = 16;
    const std::vector<int32_t> prompt = {model.shape.bos_id, 13, 7, 300};
    EXPECT_EQ(compare_step_by_step(model, prompt, 20, std::string(name) + "-w4a4 head_in 16"), 3 + 20) << name;
  }
}

// The 16-bit head codes live in the region of the centered input copy: the arena is the one of the model without the
// options (with act groups: with their regions), and a session given exactly that many bytes never writes past them.
// The arena of `model`'s file is the shape's with its act groups' regions (none added by the option under test), and
// a session given exactly that many bytes never writes past them (a guard band after them stays untouched).
void expect_session_inside_unchanged_arena(const QuantizedModel& model, const std::vector<int32_t>& tokens,
                                           const std::string& what) {
  const std::vector<uint8_t> bytes = model_bin_of(model);
  illm_rt_model m;
  illm_rt_error err;
  ASSERT_EQ(illm_rt_load(&m, bytes.data(), bytes.size(), &err), ILLM_RT_OK) << what << ": " << err.message;
  illm_rt_shape shape = m.shape;
  const size_t need = illm_rt_arena_size(&m, 0);
  EXPECT_EQ(need, illm_rt_arena_size_for_groups(&shape, model.act_group_size, m.default_context)) << what;
  constexpr size_t kGuard = 4096;
  std::vector<uint8_t> arena(need + kGuard, 0xA5);
  illm_rt_session session;
  ASSERT_EQ(illm_rt_session_init(&session, &m, arena.data(), need, 0, &err), ILLM_RT_OK) << what << ": " << err.message;
  for (const int32_t token : tokens)
    ASSERT_EQ(illm_rt_forward(&session, token, &err), ILLM_RT_OK) << what << ": " << err.message;
  EXPECT_EQ(std::count(arena.begin() + static_cast<ptrdiff_t>(need), arena.end(), 0xA5), static_cast<ptrdiff_t>(kGuard))
      << what;
}

TEST(LmHeadOptions, TheSessionStaysInsideTheUnchangedArena) {
  for (const int32_t act_group : {0, 16})
    expect_session_inside_unchanged_arena(head_case_model(HeadCase{"both", 16, 32, act_group, 8}, 1),
                                          {1, 5, 9, 13, 2, 7, 30, 11}, "act group " + std::to_string(act_group));
}

// The header's bit and width must agree (CRC recomputed each time): a width outside [2, 16], the bit without a
// width, a width without the bit; the head's groups need bit 1; bit 128 is still unknown (as bit 32 is to a runtime
// built before the feature, which refuses such a file as `unsupported`).
TEST(LmHeadOptions, LoaderRefusesABadWidthOrAMissingBit) {
  const QuantizedModel model = head_case_model(HeadCase{"both", 16, 32, 0, 8}, 1);
  const std::vector<uint8_t> good = model_bin_of(model);
  const uint32_t bits = required_features(good);
  ASSERT_EQ(bits, ILLM_RT_REQUIRED_HEAD_INPUT | ILLM_RT_REQUIRED_GROUP_SCALES);
  expect_header_mutations(good, {
      {"head_in_bits 17", ILLM_RT_H_HEAD_INPUT_BITS, 17u, ILLM_RT_E_INVALID, "settings.head_in_bits = 17 outside [2, 16]"},
      {"head_in_bits 1", ILLM_RT_H_HEAD_INPUT_BITS, 1u, ILLM_RT_E_INVALID, "settings.head_in_bits = 1 outside [2, 16]"},
      {"the bit without a width", ILLM_RT_H_HEAD_INPUT_BITS, 0u, ILLM_RT_E_INVALID, "settings.head_in_bits = 0"},
      {"a width without the bit", ILLM_RT_H_REQUIRED_FEATURES, ILLM_RT_REQUIRED_GROUP_SCALES, ILLM_RT_E_INVALID,
       "without the required feature 32"},
      {"head groups without bit 1", ILLM_RT_H_REQUIRED_FEATURES, ILLM_RT_REQUIRED_HEAD_INPUT, ILLM_RT_E_LAYOUT,
       "lm_head.zero_points"},
      {"an unknown required bit", ILLM_RT_H_REQUIRED_FEATURES, bits | 128u, ILLM_RT_E_UNSUPPORTED, "feature bits 128"},
  });
}

// A model without the options: neither bit, 0 at offset 216, the head's zero points one column.
TEST(LmHeadOptions, AFileWithoutTheOptionsHasNeitherBitNorWidth) {
  for (const char* bits : kBits) {
    const std::vector<uint8_t> bytes = model_bin_of(formats::read_illm(illm_path("stories260K", bits)).model);
    EXPECT_EQ(required_features(bytes), 0u) << bits;
    EXPECT_EQ(header_u32(bytes, ILLM_RT_H_HEAD_INPUT_BITS), 0u) << bits;
    EXPECT_EQ(head_zero_point_columns(bytes), 1u) << bits;
  }
}

// ---- The Q/K/V code width (required feature 64, settings.qkv_bits) ----

struct QkvCase {
  const char* model;
  const char* bits;
  int32_t qkv_bits;
  int32_t act_group;  // 0: per token
  bool hadamard;      // hadamard_down and hadamard_qk (the q/k codes then come from split_heads after the transform)
  bool clip;          // every site clipped (with_act_clip): the q, k and v sites clip at the Q/K/V width
};

void PrintTo(const QkvCase& c, std::ostream* os) {
  *os << c.model << "-" << c.bits << " qkv " << c.qkv_bits << " G " << c.act_group << (c.hadamard ? " hadamard" : "")
      << (c.clip ? " clip" : "");
}

std::string qkv_case_name(const ::testing::TestParamInfo<QkvCase>& info) {
  const QkvCase& c = info.param;
  std::string bits = c.bits;
  std::replace(bits.begin(), bits.end(), '-', '_');
  return std::string(c.model) + "_" + bits + "_qkv" + std::to_string(c.qkv_bits) +
         (c.act_group != 0 ? "_G" + std::to_string(c.act_group) : "") + (c.hadamard ? "_hadamard" : "") +
         (c.clip ? "_clip" : "");
}

QuantizedModel qkv_case_model(const QkvCase& c, int32_t qkv_bits) {
  QuantizedModel model = formats::read_illm(illm_path(c.model, c.bits)).model;
  if (c.clip) model = with_act_clip(model);
  model.act_group_size = c.act_group;
  model.hadamard_down = model.hadamard_qk = c.hadamard;
  model.settings.qkv_bits = qkv_bits;
  return model;
}

class QkvBits : public ::testing::TestWithParam<QkvCase> {};

// A shared model given its own Q/K/V width in memory: the file carries bit 64 and the width at offset 220 on top of the
// model's other bits, no extra tensor, the same size and the same arena (the KV cache holds u8 codes of every width up
// to 8); prefill rows and every greedy step's logits equal the executor's; the width is in effect (the logits differ
// from those of the a_bits-wide Q/K/V).
TEST_P(QkvBits, PrefillAndEveryStepsLogitsEqualTheExecutors) {
  const QkvCase& c = GetParam();
  const QuantizedModel plain = qkv_case_model(c, 0), model = qkv_case_model(c, c.qkv_bits);
  std::string what;
  {
    std::ostringstream os;
    PrintTo(c, &os);
    what = os.str();
  }
  const std::vector<uint8_t> bytes = model_bin_of(model), plain_bytes = model_bin_of(plain);
  EXPECT_EQ(required_features(bytes), required_features(plain_bytes) | ILLM_RT_REQUIRED_QKV_BITS) << what;
  EXPECT_EQ(header_u32(bytes, ILLM_RT_H_QKV_BITS), static_cast<uint32_t>(c.qkv_bits)) << what;
  EXPECT_EQ(header_u32(plain_bytes, ILLM_RT_H_QKV_BITS), 0u) << what;
  EXPECT_EQ(tensor_count(bytes), tensor_count(plain_bytes)) << what;
  EXPECT_EQ(bytes.size(), plain_bytes.size()) << what;
  {
    Runtime rt(bytes), plain_rt(plain_bytes);
    EXPECT_EQ(rt.model().qkv_bits, c.qkv_bits) << what;
    EXPECT_EQ(plain_rt.model().qkv_bits, plain.settings.a_bits) << what;
    EXPECT_EQ(rt.model().header_arena_bytes, illm_rt_arena_size(&rt.model(), 0)) << what;
    EXPECT_EQ(rt.model().header_arena_bytes, plain_rt.model().header_arena_bytes) << what;
  }
  const std::vector<int32_t> prompt = {model.shape.bos_id, 13, 7, 300, 42, 5, 1000 % model.shape.vocab, 77};
  expect_prefill_rows_equal(model, prompt, what);
  EXPECT_EQ(compare_step_by_step(model, {model.shape.bos_id, 13, 7, 300}, 20, what), 3 + 20) << what;
  Executor a(plain), b(model);
  EXPECT_NE(a.forward(prompt).values, b.forward(prompt).values) << what;
}

// W4A4 with 8-bit Q/K/V (the "W4A4 KV8" recipes) per token, with act groups of 8 (stories260K's intermediate 172 ends
// in a group of 4) and with both online Hadamards; W8A8 with 4-bit Q/K/V (the other direction); W4A8 with every site
// clipped at 6-bit Q/K/V; the per-group-weight model at 8.
INSTANTIATE_TEST_SUITE_P(
    SharedModels, QkvBits,
    ::testing::Values(QkvCase{"stories260K", "w4a4", 8, 0, false, false}, QkvCase{"tinybible", "w4a4", 8, 0, false, false},
                      QkvCase{"stories260K", "w4a4", 8, 8, false, false}, QkvCase{"tinybible", "w4a4", 8, 8, false, false},
                      QkvCase{"stories260K", "w4a4", 8, 0, true, false}, QkvCase{"tinybible", "w4a4", 8, 0, true, false},
                      QkvCase{"stories260K", "w4a4", 8, 8, true, false}, QkvCase{"tinybible", "w4a4", 8, 8, true, false},
                      QkvCase{"stories260K", "w8a8", 4, 0, false, false}, QkvCase{"tinybible", "w8a8", 4, 0, false, false},
                      QkvCase{"tinybible", "w8a8", 4, 16, true, false}, QkvCase{"stories260K", "w4a8", 6, 0, false, true},
                      QkvCase{"tinybible", "w4a4-g32", 8, 16, false, false}),
    qkv_case_name);

// Synthetic models over other numerics (paper conformance, mixed widths with one KV head, odd widths, 2-bit Q/K/V).
TEST(QkvBits, SyntheticModelsEqualTheExecutor) {
  struct Case {
    const char* name;
    int32_t variant;  // index into the shapes below
    int32_t qkv_bits;
  };
  SyntheticShape w4a4;
  SyntheticShape paper = w4a4;
  paper.settings = paper_conformance_settings(paper.settings);
  SyntheticShape mqa = w4a4;
  mqa.heads = 6;
  mqa.kv_heads = 1;
  mqa.head_dim = 8;
  mqa.settings.a_bits = 6;
  mqa.settings.w_bits = 5;
  SyntheticShape odd = w4a4;
  odd.hidden = 15;
  odd.intermediate = 23;
  odd.heads = odd.kv_heads = 3;
  odd.head_dim = 6;
  const SyntheticShape* shapes[] = {&w4a4, &paper, &mqa, &odd};
  const Case cases[] = {{"w4a4 qkv 8", 0, 8}, {"w4a4 qkv 2", 0, 2}, {"paper w4a4 qkv 8", 1, 8},
                        {"a6 one kv head qkv 3", 2, 3}, {"odd widths qkv 7", 3, 7}};
  for (const Case& c : cases)
    for (uint64_t seed = 1; seed <= 2; ++seed) {
      SyntheticShape shape = *shapes[c.variant];
      shape.seed = seed;
      shape.settings.qkv_bits = c.qkv_bits;
      const QuantizedModel model = synthetic_model(shape);
      const std::string what = std::string(c.name) + " seed " + std::to_string(seed);
      expect_prefill_rows_equal(model, {1, 5, 9, 13, 2, 7}, what);
      EXPECT_EQ(compare_step_by_step(model, {1, 5, 9}, 20, what), 22) << what;
    }
}

// qkv_bits equal to a_bits is the plain model: the file carries the bit and the width, the runtime's logits are the
// plain model's.
TEST(QkvBits, AWidthEqualToABitsIsThePlainModel) {
  const QuantizedModel plain = formats::read_illm(illm_path("stories260K", "w4a4")).model;
  QuantizedModel same = plain;
  same.settings.qkv_bits = plain.settings.a_bits;
  const std::vector<uint8_t> bytes = model_bin_of(same);
  EXPECT_EQ(required_features(bytes), ILLM_RT_REQUIRED_QKV_BITS);
  expect_runtime_gives_the_plain_models_logits(same, plain);
}

// The KV cache's size does not depend on the width: a session given exactly the arena of the file never writes past
// it (a guard band stays untouched), per token and with act groups.
TEST(QkvBits, TheSessionStaysInsideTheUnchangedArena) {
  for (const int32_t act_group : {0, 8}) {
    const QuantizedModel model = qkv_case_model(QkvCase{"stories260K", "w4a4", 8, act_group, true, false}, 8);
    expect_session_inside_unchanged_arena(model, {model.shape.bos_id, 13, 7, 300, 42, 5, 100, 77},
                                          "qkv 8, act group " + std::to_string(act_group));
  }
}

// The header's bit and width must agree (CRC recomputed each time): a width outside [2, 8], the bit without a width,
// a width without the bit; bit 128 is still unknown (as bit 64 is to a runtime built before the feature, which
// refuses such a file as `unsupported` instead of running a_bits-wide Q/K/V).
TEST(QkvBits, LoaderRefusesABadWidthOrAMissingBit) {
  QuantizedModel model = formats::read_illm(illm_path("tinybible", "w4a4")).model;
  model.settings.qkv_bits = 8;
  const std::vector<uint8_t> good = model_bin_of(model);
  const uint32_t bits = required_features(good);
  ASSERT_EQ(bits, ILLM_RT_REQUIRED_QKV_BITS);
  expect_header_mutations(good, {
      {"qkv_bits 9", ILLM_RT_H_QKV_BITS, 9u, ILLM_RT_E_INVALID, "settings.qkv_bits = 9 outside [2, 8]"},
      {"qkv_bits 1", ILLM_RT_H_QKV_BITS, 1u, ILLM_RT_E_INVALID, "settings.qkv_bits = 1 outside [2, 8]"},
      {"qkv_bits 16", ILLM_RT_H_QKV_BITS, 16u, ILLM_RT_E_INVALID, "settings.qkv_bits = 16 outside [2, 8]"},
      {"the bit without a width", ILLM_RT_H_QKV_BITS, 0u, ILLM_RT_E_INVALID, "settings.qkv_bits = 0"},
      {"a width without the bit", ILLM_RT_H_REQUIRED_FEATURES, 0u, ILLM_RT_E_INVALID,
       "settings.qkv_bits = 8 without the required feature 64"},
      {"an unknown required bit", ILLM_RT_H_REQUIRED_FEATURES, bits | 128u, ILLM_RT_E_UNSUPPORTED, "feature bits 128"},
  });
}

// A runtime built before the feature (its implemented bits end at 32) refuses the file: the bit is the only one above
// 32 that the file sets, so such a loader's unknown-bit check fires.
TEST(QkvBits, ARuntimeWithoutTheFeatureRefusesTheFile) {
  QuantizedModel model = formats::read_illm(illm_path("stories260K", "w4a4")).model;
  model.settings.qkv_bits = 8;
  model.act_group_size = 8;
  model.hadamard_down = model.hadamard_qk = true;
  const uint32_t previous_runtime = ILLM_RT_REQUIRED_GROUP_SCALES | ILLM_RT_REQUIRED_HADAMARD | ILLM_RT_FEATURE_ACT_CLIP |
                                    ILLM_RT_REQUIRED_TRIP | ILLM_RT_REQUIRED_ACT_GROUPS | ILLM_RT_REQUIRED_HEAD_INPUT;
  EXPECT_EQ(required_features(model_bin_of(model)) & ~previous_runtime, ILLM_RT_REQUIRED_QKV_BITS);
}

// The attention's int32 bounds use the Q/K/V width, in the executor's validation and in the loader alike: prob_bits 26
// overflows P·V at 8-bit codes (2^25·255 > 2^31 − 1) but not at 4-bit ones (2^25·15), so a W4A4 model with 8-bit
// Q/K/V is refused by both (the loader on the file with prob_bits changed in its header), and a W8A8 model (refused at
// its a_bits) exports and loads with 4-bit Q/K/V.
TEST(QkvBits, TheAttentionBoundsUseTheWidth) {
  QuantizedModel w4a4 = formats::read_illm(illm_path("stories260K", "w4a4")).model;
  w4a4.settings.qkv_bits = 8;
  const std::vector<uint8_t> good = model_bin_of(w4a4);
  w4a4.settings.prob_bits = 26;
  EXPECT_THROW(validate_quantized_model(w4a4), Error);
  expect_header_mutations(good, {{"prob_bits 26 at 8-bit Q/K/V", ILLM_RT_H_SETTINGS + 16, 26u, ILLM_RT_E_INVALID,
                                  "prob_bits = 26 overflows the int32 P V accumulator at Q/K/V width 8"}});
  w4a4.settings.qkv_bits = 0;
  EXPECT_NO_THROW(validate_quantized_model(w4a4));
  QuantizedModel w8a8 = formats::read_illm(illm_path("stories260K", "w8a8")).model;
  w8a8.settings.prob_bits = 26;
  EXPECT_THROW(validate_quantized_model(w8a8), Error);
  w8a8.settings.qkv_bits = 4;
  const std::vector<uint8_t> bytes = model_bin_of(w8a8);
  illm_rt_model m;
  illm_rt_error err;
  EXPECT_EQ(illm_rt_load(&m, bytes.data(), bytes.size(), &err), ILLM_RT_OK) << err.message;
}

// A model without the width: no bit, 0 at offset 220 (the file of the exporter before the feature: the fuzz seeds,
// committed before it, are still what the exporter writes, tests/runtime/runtime_fuzz_seeds_test.cpp).
TEST(QkvBits, AFileWithoutTheWidthHasNeitherBitNorWidth) {
  for (const char* name : kModels)
    for (const char* bits : kBits) {
      const std::vector<uint8_t> bytes = model_bin_of(formats::read_illm(illm_path(name, bits)).model);
      EXPECT_EQ(required_features(bytes), 0u) << name << "-" << bits;
      EXPECT_EQ(header_u32(bytes, ILLM_RT_H_QKV_BITS), 0u) << name << "-" << bits;
      Runtime rt(bytes);
      EXPECT_EQ(rt.model().qkv_bits, rt.model().settings.a_bits) << name << "-" << bits;
    }
}

// ---- Synthetic models over other settings ----

struct Variant {
  const char* name;
  SyntheticShape shape;
};

std::vector<Variant> variants() {
  std::vector<Variant> v;
  SyntheticShape base;
  v.push_back({"defaults_w4a4", base});
  SyntheticShape w8a8 = base;
  w8a8.settings.w_bits = w8a8.settings.a_bits = 8;
  v.push_back({"defaults_w8a8", w8a8});
  SyntheticShape paper = base;
  paper.settings = paper_conformance_settings(paper.settings);
  paper.settings.a_bits = paper.settings.w_bits = 8;
  v.push_back({"paper_conformance_w8a8", paper});
  SyntheticShape paper4 = base;
  paper4.settings = paper_conformance_settings(paper4.settings);
  v.push_back({"paper_conformance_w4a4", paper4});
  SyntheticShape embed8 = base;
  embed8.settings.embed_bits = 8;
  v.push_back({"int8_embeddings", embed8});
  SyntheticShape odd = base;
  odd.hidden = 15;
  odd.intermediate = 23;
  odd.heads = odd.kv_heads = 3;
  odd.head_dim = 6;
  odd.settings.w_bits = 3;
  odd.settings.head_bits = 4;
  v.push_back({"odd_widths_w3_head4", odd});
  SyntheticShape mqa = base;
  mqa.heads = 6;
  mqa.kv_heads = 1;
  mqa.head_dim = 8;
  mqa.clip_first_layer = false;
  mqa.settings.swiglu_in_bits = 6;
  mqa.settings.norm_frac_bits = 10;
  mqa.settings.prob_bits = 12;
  mqa.settings.sigmoid_bits = 10;
  mqa.settings.softmax_in_bits = 10;
  mqa.settings.a_bits = 6;
  mqa.settings.w_bits = 5;
  v.push_back({"one_kv_head_mixed_widths_no_clip", mqa});
  // Per-group weights (required feature bit 0): G = 32 at W4A4 (packed codes, groups inside a row's bytes), G = 64 at
  // W8A8; every block linear's input width a multiple of G.
  SyntheticShape group32 = base;
  group32.hidden = 64;
  group32.intermediate = 96;
  group32.heads = 4;
  group32.head_dim = 16;
  group32.group_size = 32;
  v.push_back({"per_group_32_w4a4", group32});
  SyntheticShape group64 = group32;
  group64.intermediate = 128;
  group64.group_size = 64;
  group64.settings.w_bits = group64.settings.a_bits = 8;
  v.push_back({"per_group_64_w8a8", group64});
  SyntheticShape no_layers = base;
  no_layers.layers = 0;
  v.push_back({"no_layers", no_layers});
  return v;
}

class SyntheticModels : public ::testing::TestWithParam<Variant> {};

TEST_P(SyntheticModels, EveryStepsLogitsEqualTheExecutors) {
  const Variant& variant = GetParam();
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    SyntheticShape shape = variant.shape;
    shape.seed = seed;
    const QuantizedModel model = synthetic_model(shape);
    const int compared = compare_step_by_step(model, {1, 5, 9}, 20, std::string(variant.name) + " seed " + std::to_string(seed));
    EXPECT_EQ(compared, 22) << variant.name << " seed " << seed << ": an operator failed in both (the variant's scales are out of range)";
  }
}

INSTANTIATE_TEST_SUITE_P(Settings, SyntheticModels, ::testing::ValuesIn(variants()),
                         [](const auto& info) { return std::string(info.param.name); });

// ---- Generation rules ----

std::vector<int32_t> runtime_generate(Runtime& rt, const std::vector<int32_t>& prompt, int max_tokens, bool* eos,
                                      int* status = nullptr) {
  std::vector<int32_t> out(static_cast<size_t>(max_tokens) + 1);
  illm_rt_generation result;
  illm_rt_error err;
  const int s = illm_rt_generate(&rt.session(), prompt.data(), static_cast<int32_t>(prompt.size()), max_tokens,
                                 out.data(), &result, nullptr, nullptr, &err);
  if (status) *status = s;
  EXPECT_TRUE(status || s == ILLM_RT_OK) << err.message;
  out.resize(s == ILLM_RT_OK ? static_cast<size_t>(result.generated) : 0);
  if (eos) *eos = result.stopped_at_eos != 0;
  return out;
}

TEST(Generation, StopsAtEosLikeIllmGenerate) {
  QuantizedModel model = formats::read_illm(illm_path("stories260K", "w4a8")).model;
  const std::vector<int32_t> prompt = {model.shape.bos_id};
  const ExecutorReference free_run = executor_greedy(model, prompt, 12);
  ASSERT_EQ(free_run.ids.size(), 12u);
  // Make the 6th generated id the end-of-sequence id: both must stop before it, without outputting it.
  model.shape.eos_id = free_run.ids[5];
  const ExecutorReference reference = executor_greedy(model, prompt, 12);
  ASSERT_TRUE(reference.stopped_at_eos);
  Runtime rt(model_bin_of(model));
  bool eos = false;
  const std::vector<int32_t> ids = runtime_generate(rt, prompt, 12, &eos);
  EXPECT_TRUE(eos);
  EXPECT_EQ(ids, reference.ids);
  EXPECT_LT(ids.size(), 6u);
  EXPECT_EQ(std::vector<int64_t>(rt.session().logits.values, rt.session().logits.values + model.shape.vocab),
            reference.last_logits);
}

TEST(Generation, StopsAtTheContextLikeIllmGenerate) {
  QuantizedModel model = formats::read_illm(illm_path("stories260K", "w4a4")).model;
  // A model of 10 positions: generation must end when the cache is full, as the executor's does.
  model.shape.max_positions = 10;
  const size_t rows = static_cast<size_t>(10 * model.shape.head_dim / 2);
  model.rope_cos.resize(rows);
  model.rope_sin.resize(rows);
  const std::vector<int32_t> prompt = {1, 13, 7};
  const ExecutorReference reference = executor_greedy(model, prompt, 50);
  EXPECT_EQ(reference.ids.size(), 8u);  // positions 3..9 computed, the last id chosen from position 9's logits
  Runtime rt(model_bin_of(model));
  const std::vector<int32_t> ids = runtime_generate(rt, prompt, 50, nullptr);
  EXPECT_EQ(ids, reference.ids);
  EXPECT_EQ(rt.session().position, 10);
}

TEST(Generation, SessionErrorsHaveCodesAndMessages) {
  const QuantizedModel model = formats::read_illm(illm_path("stories260K", "w4a4")).model;
  const std::vector<uint8_t> bytes = model_bin_of(model);
  Runtime rt(bytes, 6);  // a session of 6 positions
  illm_rt_error err;
  int status = 0;
  // A prompt as long as the context: refused (as `illm generate` refuses prompt >= max_positions).
  runtime_generate(rt, {1, 2, 3, 4, 5, 6}, 4, nullptr, &status);
  EXPECT_EQ(status, ILLM_RT_E_CONTEXT);
  // Five prompt tokens fit; generation ends at the context.
  const std::vector<int32_t> ids = runtime_generate(rt, {1, 2, 3, 4, 5}, 4, nullptr);
  EXPECT_EQ(ids.size(), 2u);
  EXPECT_EQ(illm_rt_forward(&rt.session(), 3, &err), ILLM_RT_E_CONTEXT);
  EXPECT_NE(std::string(err.message).find("context"), std::string::npos) << err.message;
  EXPECT_EQ(rt.session().position, 6);
  illm_rt_session_reset(&rt.session());
  EXPECT_EQ(illm_rt_forward(&rt.session(), model.shape.vocab, &err), ILLM_RT_E_TOKEN);
  EXPECT_NE(std::string(err.message).find("vocabulary"), std::string::npos) << err.message;
  EXPECT_EQ(illm_rt_forward(&rt.session(), -1, &err), ILLM_RT_E_TOKEN);
  EXPECT_EQ(rt.session().position, 0);
  runtime_generate(rt, {}, 4, nullptr, &status);
  EXPECT_EQ(status, ILLM_RT_E_ARGUMENT);

  // Arena one byte short, and a context past max_positions.
  illm_rt_model m;
  ASSERT_EQ(illm_rt_load(&m, bytes.data(), bytes.size(), &err), ILLM_RT_OK) << err.message;
  const size_t need = illm_rt_arena_size(&m, 0);
  std::vector<uint8_t> arena(need);
  illm_rt_session session;
  EXPECT_EQ(illm_rt_session_init(&session, &m, arena.data(), need - 1, 0, &err), ILLM_RT_E_ARENA);
  EXPECT_NE(std::string(err.message).find(std::to_string(need)), std::string::npos) << err.message;
  EXPECT_EQ(illm_rt_session_init(&session, &m, arena.data(), need, model.shape.max_positions + 1, &err), ILLM_RT_E_CONTEXT);
  EXPECT_EQ(illm_rt_arena_size(&m, model.shape.max_positions + 1), 0u);
  EXPECT_EQ(illm_rt_session_init(&session, &m, arena.data(), need, 0, &err), ILLM_RT_OK) << err.message;
  // The arena the header states is the one the runtime computes for the header's context.
  EXPECT_EQ(m.header_arena_bytes, need);
}

}  // namespace
}  // namespace illm::rt_testing
