// The C99 runtime against the C++ integer executor (issue #10), on the host: for the shared test models (both
// fixtures at W4A4/W4A8/W8A8) every greedy step's int64 logits and dyadic scale are identical; the same on synthetic
// models over the settings the test models do not use (paper-conformance numerics, 8-bit embeddings, 3-bit weights,
// a 4-bit head, odd widths); the generation rules (EOS, context limit) are those of `illm generate`; and the
// session errors (token outside the vocabulary, prompt longer than the context, arena too small) are reported.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "formats/illm_file.h"
#include "formats/model_bin.h"
#include "runtime/illm_rt_format.h"
#include "kernels/error.h"
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

// ---- TRIP channel factors (required feature bit 3): not in the runtime yet, so the export refuses them ----

TEST(TripModels, ExportIsRefusedNamingTheFeature) {
  QuantizedModel model = formats::read_illm(illm_path("stories260K", "w4a4")).model;
  model.layers[0].trip_max_shift = 3;
  model.layers[0].trip_alpha[kClipAttnIn].assign(static_cast<size_t>(model.shape.hidden), 1);
  try {
    model_bin_of(model);
    FAIL() << "a model with TRIP factors was exported to model.bin";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("TRIP"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("layers[0]"), std::string::npos) << e.what();
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
