// The W4A4 levers end to end on the bundled stories260K (tiny calibration: 4 windows x 64 tokens, one thread):
// offline rotations + GPTQ and activation clipping give an ordinary integer model; the fake-quant-only levers
// (online Hadamards, TRIP) calibrate, lower the block reconstruction error, and are refused by the integer path
// with a message naming them; runs are deterministic.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include <unistd.h>

#include <gtest/gtest.h>

#include "calibration/calibrate.h"
#include "calibration/integerize.h"
#include "formats/dataset.h"
#include "formats/illm_file.h"
#include "formats/llama_config.h"
#include "formats/tokenizer.h"
#include "kernels/error.h"
#include "kernels/executor.h"
#include "stories260k_data.h"

namespace {

using namespace illm::calib;
const std::filesystem::path kModel = illm::calib::testing::kStories260K;
TokenWindows windows(const char* file) { return illm::calib::testing::stories260k_windows(file); }
CalibrateOptions quiet() { return illm::calib::testing::quiet_single_thread(); }

illm::Recipe recipe(const std::string& keys) {
  return illm::parse_recipe_json(R"({"method": "rtn", "samples": 4, "seq_len": 64)" + keys + "}", "test");
}

double total_loss(const CalibrationReport& r) {
  double s = 0;
  for (const auto& b : r.blocks) s += b.loss_after;
  return s;
}

TEST(Levers, OfflineRotationAndGptqGiveAnIntegerModel) {
  const auto calib = windows("calib.jsonl");
  auto eval = windows("eval.jsonl");
  eval.resize(2);
  const illm::Recipe r = recipe(R"(, "w_bits": 8, "a_bits": 8, "rotation": "orthogonal", "rotate_heads": true,
                                   "gptq": true)");
  const CalibratedModel m = calibrate(kModel, r, calib, nullptr, quiet());
  const double fp = fp_perplexity(kModel, eval, 1);
  const double q = fake_quant_perplexity(m, eval, {illm::FakeQuantPoints::kTraining, 1});
  EXPECT_LT(q, fp * 1.10) << "fp " << fp;
  EXPECT_GT(q, fp * 0.95) << "fp " << fp;
  EXPECT_FALSE(m.tied_head);  // the rotated head differs from the rotated embedding
  EXPECT_NO_THROW(illm::require_integer_path(r, "test"));
  const illm::QuantizedModel qm = illm::integerize(m, illm::integer_settings_for(8, 8, false));
  illm::Executor executor(qm);  // validates the model
  const std::vector<int32_t> prefix(eval[0].begin(), eval[0].begin() + 16);
  const illm::IntegerLogits logits = executor.forward(prefix);
  EXPECT_EQ(logits.values.size(), 16u * static_cast<size_t>(m.vocab));
  // Same recipe again: byte-identical codes (rotation and GPTQ are deterministic).
  const CalibratedModel again = calibrate(kModel, r, calib, nullptr, quiet());
  for (size_t l = 0; l < m.layers.size(); ++l) {
    EXPECT_EQ(m.layers[l].down_proj.codes, again.layers[l].down_proj.codes) << l;
    EXPECT_EQ(m.layers[l].q_proj.codes, again.layers[l].q_proj.codes) << l;
  }
}

// tr((W − Ŵ)·H·(W − Ŵ)ᵀ): the LM head's output error on the inputs of the calibrated model's head Hessian, Ŵ from the
// integer model's codes and dyadic scales (per row or per group).
double head_output_error(const CalibratedModel& m, const illm::QuantizedModel& q) {
  const int64_t C = m.hidden;
  const int64_t G = q.lm_head.group_size > 0 ? q.lm_head.group_size : C, groups = C / G;
  double total = 0;
  std::vector<double> d(static_cast<size_t>(C));
  for (int64_t v = 0; v < m.vocab; ++v) {
    for (int64_t c = 0; c < C; ++c) {
      const size_t g = static_cast<size_t>(v * groups + c / G);
      const double s = std::ldexp(static_cast<double>(q.lm_head.scales[g].m), -q.lm_head.scales[g].k);
      d[static_cast<size_t>(c)] = m.lm_head[static_cast<size_t>(v * C + c)] -
                                  s * (q.lm_head.codes[static_cast<size_t>(v * C + c)] - q.lm_head.zero_points[g]);
    }
    for (int64_t i = 0; i < C; ++i)
      for (int64_t j = 0; j < C; ++j)
        total += d[static_cast<size_t>(i)] * m.head_hessian[static_cast<size_t>(i * C + j)] * d[static_cast<size_t>(j)];
  }
  return total;
}

// gptq_head: the LM head's Hessian comes out of calibration (symmetric, hidden², the last block's quantized outputs
// after the final norm) and integerize rounds the head rows by GPTQ on the RTN grid: same scales and zero points,
// other codes, and a lower head output error tr((W − Ŵ)·H·(W − Ŵ)ᵀ) on those inputs than round-to-nearest.
TEST(Levers, GptqHeadLowersTheHeadOutputError) {
  const auto calib = windows("calib.jsonl");
  const illm::Recipe r = recipe(R"(, "w_bits": 8, "a_bits": 8, "gptq_head": true)");
  const CalibratedModel m = calibrate(kModel, r, calib, nullptr, quiet());
  const int64_t C = m.hidden;
  ASSERT_EQ(m.head_hessian.size(), static_cast<size_t>(C * C));
  for (int64_t i = 0; i < C; ++i) {
    EXPECT_GT(m.head_hessian[static_cast<size_t>(i * C + i)], 0) << i;
    for (int64_t j = 0; j < i; ++j)
      EXPECT_NEAR(m.head_hessian[static_cast<size_t>(i * C + j)], m.head_hessian[static_cast<size_t>(j * C + i)],
                  1e-9 * m.head_hessian[static_cast<size_t>(i * C + i)]);
  }
  CalibratedModel rtn_model = m;
  rtn_model.head_hessian.clear();
  const illm::IntegerSettings st = illm::integer_settings_for(8, 8, false);
  const illm::QuantizedModel gptq = illm::integerize(m, st), rtn = illm::integerize(rtn_model, st);
  EXPECT_EQ(gptq.lm_head.zero_points, rtn.lm_head.zero_points);
  EXPECT_EQ(gptq.lm_head.scales, rtn.lm_head.scales);
  EXPECT_NE(gptq.lm_head.codes, rtn.lm_head.codes);
  EXPECT_LT(head_output_error(m, gptq), 0.8 * head_output_error(m, rtn));
  illm::Executor executor(gptq);  // validates the model
}

// head_group_size / head_in_bits (recipe keys): the LM head per group of 32 columns, each group's grid the min/max
// RTN grid of its float weights (recomputed here), codes by GPTQ on those grids, and 16-bit head inputs in the
// settings; the head output error falls below the per-row GPTQ head's; the model validates and runs, and is written
// as format version 4 and read back equal (so is a model with the wide input alone).
TEST(Levers, GroupedHeadWithWideInputs) {
  const auto calib = windows("calib.jsonl");
  const illm::Recipe r =
      recipe(R"(, "w_bits": 8, "a_bits": 8, "gptq_head": true, "head_group_size": 32, "head_in_bits": 16)");
  const CalibratedModel m = calibrate(kModel, r, calib, nullptr, quiet());
  EXPECT_EQ(m.head_group_size, 32);
  EXPECT_EQ(m.head_in_bits, 16);
  const illm::IntegerSettings st = illm::integer_settings_for(8, 8, false);
  const illm::QuantizedModel q = illm::integerize(m, st);
  EXPECT_EQ(q.settings.head_in_bits, 16);
  EXPECT_EQ(illm::head_input_bits(q.settings), 16);
  ASSERT_EQ(q.lm_head.group_size, 32);
  const int64_t C = m.hidden, groups = C / 32;
  ASSERT_EQ(q.lm_head.scales.size(), static_cast<size_t>(m.vocab * groups));
  for (int64_t v = 0; v < m.vocab; v += 37)
    for (int64_t g = 0; g < groups; ++g) {
      double lo = 0, hi = 0;
      for (int64_t c = g * 32; c < (g + 1) * 32; ++c) {
        lo = std::min(lo, static_cast<double>(m.lm_head[static_cast<size_t>(v * C + c)]));
        hi = std::max(hi, static_cast<double>(m.lm_head[static_cast<size_t>(v * C + c)]));
      }
      const illm::Dyadic d = q.lm_head.scales[static_cast<size_t>(v * groups + g)];
      EXPECT_NEAR(std::ldexp(static_cast<double>(d.m), -d.k), (hi - lo) / 255, 1e-4 * (hi - lo) / 255) << v << " " << g;
      EXPECT_EQ(q.lm_head.zero_points[static_cast<size_t>(v * groups + g)], std::lround(-lo / ((hi - lo) / 255)));
    }
  CalibratedModel per_row = m;
  per_row.head_group_size = 0;
  EXPECT_LT(head_output_error(m, q), head_output_error(m, illm::integerize(per_row, st)));
  illm::Executor executor(q);
  const std::vector<int32_t> prefix(calib[0].begin(), calib[0].begin() + 8);
  EXPECT_EQ(executor.forward(prefix).values.size(), 8u * static_cast<size_t>(m.vocab));
  EXPECT_EQ(illm::formats::illm_format_version_for(q), 4);
  const std::filesystem::path file =
      std::filesystem::temp_directory_path() / ("illm_levers_grouped_head_" + std::to_string(::getpid()) + ".illm");
  illm::formats::write_illm(file, q, illm::formats::IllmMetadata{});
  const illm::formats::LoadedIllm back = illm::formats::read_illm(file);
  std::filesystem::remove(file);
  EXPECT_EQ(back.meta.format_version, 4);
  EXPECT_EQ(back.model.settings, q.settings);
  EXPECT_EQ(back.model.lm_head.group_size, 32);
  EXPECT_EQ(back.model.lm_head.codes, q.lm_head.codes);
  EXPECT_EQ(back.model.lm_head.zero_points, q.lm_head.zero_points);
  EXPECT_EQ(back.model.lm_head.scales, q.lm_head.scales);
  EXPECT_EQ(illm::formats::illm_format_version_for(illm::integerize(per_row, illm::integer_settings_for(8, 8, false))), 4);
}


// Perplexity of the integer executor on `windows` (real logits value·m/2^k, log-softmax in double).
double integer_perplexity(const illm::QuantizedModel& qm, const TokenWindows& windows) {
  double nll = 0;
  int64_t count = 0;
  for (const auto& w : windows) {
    illm::Executor executor(qm);
    const std::vector<int32_t> ids(w.begin(), w.end());
    const illm::IntegerLogits logits = executor.forward(ids);
    for (int32_t t = 0; t + 1 < logits.tokens; ++t) {
      const double scale = std::ldexp(static_cast<double>(logits.scales[t].m), -logits.scales[t].k);
      const int64_t* row = logits.values.data() + static_cast<size_t>(t) * logits.vocab;
      double max = -1e300, sum = 0;
      for (int32_t v = 0; v < logits.vocab; ++v) max = std::max(max, row[v] * scale);
      for (int32_t v = 0; v < logits.vocab; ++v) sum += std::exp(row[v] * scale - max);
      nll += std::log(sum) + max - row[ids[t + 1]] * scale;
      ++count;
    }
  }
  return std::exp(nll / static_cast<double>(count));
}

TEST(Levers, ClipRatiosAreDyadicsOfTheRecipe) {
  EXPECT_EQ(illm::requant_clip_from_ratio(1.0, "x"), (illm::RequantClip{}));  // 1: off, the plain DI_REQUANT
  EXPECT_EQ(illm::requant_clip_from_ratio(0.9375, "x"), (illm::RequantClip{15, 4}));
  EXPECT_EQ(illm::requant_clip_from_ratio(0.625, "x"), (illm::RequantClip{10, 4}));
  EXPECT_EQ(illm::requant_clip_from_ratio(0.9, "x"), (illm::RequantClip{58982, 16}));  // round(0.9·2^16)
  EXPECT_THROW(illm::requant_clip_from_ratio(0.0, "x"), illm::Error);
  EXPECT_THROW(illm::requant_clip_from_ratio(1.5, "x"), illm::Error);
}

// act_clip (search and fixed) has an integer path: the ratios reach the model, the executor runs them, and its
// perplexity roughly agrees with the fake-quant simulation at the executor's points.
TEST(Levers, ActClipGivesAnIntegerModelThatAgreesWithFakeQuant) {
  const auto calib = windows("calib.jsonl");
  auto eval = windows("eval.jsonl");
  eval.resize(2);
  for (const char* keys : {R"(, "w_bits": 4, "a_bits": 4, "act_clip": "search")",
                           R"(, "w_bits": 4, "a_bits": 8, "act_clip": 0.875)"}) {
    const illm::Recipe r = recipe(keys);
    EXPECT_NO_THROW(illm::require_integer_path(r, "test"));
    const CalibratedModel m = calibrate(kModel, r, calib, nullptr, quiet());
    const illm::QuantizedModel qm = illm::integerize(m, illm::integer_settings_for(r.w_bits, r.a_bits, false));
    int clipped_sites = 0;
    for (size_t l = 0; l < m.layers.size(); ++l) {
      ASSERT_EQ(m.layers[l].act_clip_ratios.size(), 7u) << keys;
      for (int site = 0; site < illm::kNumClipSites; ++site) {
        EXPECT_EQ(qm.layers[l].act_clip[site], illm::requant_clip_from_ratio(m.layers[l].act_clip_ratios[site], "t"));
        clipped_sites += qm.layers[l].act_clip[site].enabled();
      }
    }
    EXPECT_GT(clipped_sites, 0) << keys;
    const double fake = fake_quant_perplexity(m, eval, {illm::FakeQuantPoints::kExecutor, 1});
    const double integer = integer_perplexity(qm, eval);
    std::printf("%s: fake-quant (executor points) %.3f, integer %.3f, %d clipped sites\n", keys, fake, integer,
                clipped_sites);
    EXPECT_LT(std::fabs(integer / fake - 1), 0.15) << keys << ": fake " << fake << " integer " << integer;
  }
}

// TRIP (trip_shifts) has an integer path: α reaches the model per site, the consumer codes are wider, and the
// executor's perplexity roughly agrees with the fake-quant simulation at the executor's points.
TEST(Levers, TripGivesAnIntegerModelThatAgreesWithFakeQuant) {
  const auto calib = windows("calib.jsonl");
  auto eval = windows("eval.jsonl");
  eval.resize(2);
  const illm::Recipe r = recipe(R"(, "w_bits": 4, "a_bits": 4, "trip_shifts": 3)");
  EXPECT_NO_THROW(illm::require_integer_path(r, "test"));
  const CalibratedModel m = calibrate(kModel, r, calib, nullptr, quiet());
  const illm::QuantizedModel qm = illm::integerize(m, illm::integer_settings_for(4, 4, false));
  int trip_sites = 0, widened_sites = 0;
  for (size_t l = 0; l < m.layers.size(); ++l) {
    EXPECT_EQ(qm.layers[l].trip_max_shift, 3);
    for (int site = 0; site < illm::kNumClipSites; ++site) {
      EXPECT_EQ(qm.layers[l].trip_alpha[site], m.layers[l].trip_shifts[site]) << l << " " << site;
      trip_sites += !qm.layers[l].trip_alpha[site].empty();
      widened_sites += illm::trip_extra_bits(qm.layers[l].trip(site)) > 0;
    }
  }
  EXPECT_EQ(trip_sites, 4 * static_cast<int>(m.layers.size()));
  EXPECT_GT(widened_sites, 0);
  const double fake = fake_quant_perplexity(m, eval, {illm::FakeQuantPoints::kExecutor, 1});
  const double integer = integer_perplexity(qm, eval);
  std::printf("W4A4 trip_shifts 3: fake-quant (executor points) %.3f, integer %.3f, %d of %d sites widened\n", fake,
              integer, widened_sites, trip_sites);
  EXPECT_LT(std::fabs(integer / fake - 1), 0.15) << "fake " << fake << " integer " << integer;
}

// Per-group activations (act_group_size) on the bundled tinybible (stories260K: the next test):
// the integer model carries G, its perplexity agrees with the fake-quant simulation's at the executor's points, and
// at W4A4 the groups lower both against the same recipe without them (4 windows x 64 tokens of calib.txt, 2 of
// test.txt).
TEST(Levers, ActGroupsGiveAnIntegerModelThatAgreesWithFakeQuant) {
  const std::filesystem::path tinybible = kModel.parent_path() / "tinybible";
  const illm::formats::LlamaConfig cfg = illm::formats::load_llama_config(tinybible);
  const illm::formats::Tokenizer tokenizer = illm::formats::Tokenizer::load(tinybible / "tokenizer.model");
  const auto load = [&](const char* file, int64_t count) {
    return illm::formats::load_windows(tinybible / file, &tokenizer, 64, cfg.vocab_size, cfg.max_position_embeddings,
                                       count)
        .sequences;
  };
  const TokenWindows calib = load("calib.txt", 4), eval = load("test.txt", 2);
  double integer_ppl[3] = {0, 0, 0};
  // Per token; G 32; G 16 with 32-wide weight groups (docs/integer-semantics.md "## Per-group activations with
  // per-group weights").
  const std::pair<int32_t, const char*> cases[] = {{0, ""}, {32, ""}, {16, R"(, "w_granularity": "per_group", "group_size": 32)"}};
  for (int c = 0; c < 3; ++c) {
    const auto& [group, weights] = cases[c];
    const illm::Recipe r =
        recipe(R"(, "w_bits": 4, "a_bits": 4, "rotation": "orthogonal", "hadamard_down": true, "act_group_size": )" +
               std::to_string(group) + weights);
    EXPECT_NO_THROW(illm::require_integer_path(r, "test"));
    const CalibratedModel m = calibrate(tinybible, r, calib, nullptr, quiet());
    const illm::QuantizedModel qm = illm::integerize(m, illm::integer_settings_for(4, 4, false));
    EXPECT_EQ(qm.act_group_size, group);
    EXPECT_EQ(qm.layers[0].down_proj.group_size, c == 2 ? 32 : 0);
    const double fake = fake_quant_perplexity(m, eval, {illm::FakeQuantPoints::kExecutor, 1});
    integer_ppl[c] = integer_perplexity(qm, eval);
    std::printf("tinybible W4A4 act_group_size %d%s: fake-quant (executor points) %.3f, integer %.3f\n", group,
                c == 2 ? " + weight groups 32" : "", fake, integer_ppl[c]);
    EXPECT_LT(std::fabs(integer_ppl[c] / fake - 1), 0.15) << "case " << c;
  }
  EXPECT_LT(integer_ppl[1], integer_ppl[0]);
}

// G = 8 on stories260K, whose intermediate width 172 ends in a short group of 4 (docs/integer-semantics.md "Groups
// of a width"): the calibration's simulation and the integer model quantize the same groups, so their perplexities
// agree at the executor's points, and at W4A4 the groups lower the integer perplexity against per-token activations
// (RTN, 4 calibration windows, 2 evaluation windows).
TEST(Levers, ActGroupsOf8WithAShortLastGroupAgreeWithFakeQuant) {
  const auto calib = windows("calib.jsonl");
  auto eval = windows("eval.jsonl");
  eval.resize(2);
  double integer_ppl[2] = {0, 0};
  for (const int group : {0, 8}) {
    const illm::Recipe r = recipe(R"(, "w_bits": 4, "a_bits": 4, "hadamard_down": true, "act_group_size": )" +
                                  std::to_string(group));
    const CalibratedModel m = calibrate(kModel, r, calib, nullptr, quiet());
    const illm::QuantizedModel qm = illm::integerize(m, illm::integer_settings_for(4, 4, false));
    ASSERT_EQ(qm.act_group_size, group);
    ASSERT_EQ(qm.shape.intermediate % 8, 4);
    const double fake = fake_quant_perplexity(m, eval, {illm::FakeQuantPoints::kExecutor, 1});
    integer_ppl[group / 8] = integer_perplexity(qm, eval);
    std::printf("stories260K W4A4 act_group_size %d: fake-quant (executor points) %.3f, integer %.3f\n", group, fake,
                integer_ppl[group / 8]);
    EXPECT_LT(std::fabs(integer_ppl[group / 8] / fake - 1), 0.15) << "G " << group;
  }
  EXPECT_LT(integer_ppl[1], 0.9 * integer_ppl[0]);
}

// qkv_bits 8 on W4A4 (8-bit Q, K, V; 4-bit linear inputs): the integer model agrees with its fake-quant simulation,
// the file records it, and it lowers the integer perplexity (the float64 simulation: 4-bit Q/K/V were most of the
// W4A4 error left, docs/results.md).
TEST(Levers, QkvBits8AgreeWithFakeQuant) {
  const auto calib = windows("calib.jsonl");
  auto eval = windows("eval.jsonl");
  eval.resize(4);
  double integer_ppl[2] = {0, 0}, fake_ppl[2] = {0, 0};
  for (const int qkv : {0, 8}) {
    const illm::Recipe r = recipe(R"(, "w_bits": 4, "a_bits": 4, "rotation": "orthogonal", "rotate_heads": true,
        "hadamard_down": true, "hadamard_qk": true, "act_group_size": 8)" + std::string(qkv ? R"(, "qkv_bits": 8)" : ""));
    const CalibratedModel m = calibrate(kModel, r, calib, nullptr, quiet());
    const illm::QuantizedModel qm = illm::integerize(m, illm::integer_settings_for(4, 4, false));
    ASSERT_EQ(qm.settings.qkv_bits, qkv);
    ASSERT_EQ(illm::qkv_code_bits(qm.settings), qkv ? 8 : 4);
    const double fake = fake_ppl[qkv / 8] = fake_quant_perplexity(m, eval, {illm::FakeQuantPoints::kExecutor, 1});
    integer_ppl[qkv / 8] = integer_perplexity(qm, eval);
    std::printf("stories260K W4A4 A = 8, qkv_bits %d: fake-quant (executor points) %.3f, integer %.3f\n", qkv, fake,
                integer_ppl[qkv / 8]);
    EXPECT_LT(std::fabs(integer_ppl[qkv / 8] / fake - 1), 0.15) << "qkv_bits " << qkv;
  }
  EXPECT_LT(integer_ppl[1], 0.95 * integer_ppl[0]);
  EXPECT_LT(fake_ppl[1], 0.95 * fake_ppl[0]);  // the simulation quantizes Q/K/V at qkv_bits too
}

// W4A4 RTN: rotations + online Hadamards + GPTQ + clip search + TRIP lower the summed block output MSE (invariant
// under the residual rotation) well below plain RTN's (measured 0.57x); the integer path refuses only TRIP at down_in
// together with the down_proj Hadamard (that site's channels are mixed before their requantization).
TEST(Levers, AllLeversCalibrateAndOnlyTripWithTheDownHadamardIsRefusedByTheIntegerPath) {
  const auto calib = windows("calib.jsonl");
  CalibrationReport plain_report, report;
  calibrate(kModel, recipe(""), calib, &plain_report, quiet());
  const illm::Recipe r = recipe(R"(, "rotation": "hadamard", "rotate_heads": true, "hadamard_down": true,
      "hadamard_qk": true, "gptq": true, "act_clip": "search", "trip_shifts": 2)");
  const CalibratedModel m = calibrate(kModel, r, calib, &report, quiet());
  EXPECT_LT(total_loss(report), 0.75 * total_loss(plain_report)) << total_loss(report) / total_loss(plain_report);
  EXPECT_TRUE(m.hadamard_down && m.hadamard_qk);
  EXPECT_EQ(m.trip_max_shift, 2);
  for (const CalibratedLayer& l : m.layers) {
    ASSERT_EQ(l.trip_shifts.size(), 7u);
    EXPECT_EQ(l.trip_shifts[0].size(), static_cast<size_t>(m.hidden));         // attn_in
    EXPECT_TRUE(l.trip_shifts[1].empty());                                     // q: no TRIP
    EXPECT_EQ(l.trip_shifts[6].size(), static_cast<size_t>(m.intermediate));   // down_in
    for (int8_t a : l.trip_shifts[6]) EXPECT_TRUE(a >= 0 && a <= 2);
    EXPECT_TRUE(l.act_clip_ratios.empty() || l.act_clip_ratios.size() == 7u);
  }
  auto eval = windows("eval.jsonl");
  eval.resize(1);
  const double exec = fake_quant_perplexity(m, eval, {illm::FakeQuantPoints::kExecutor, 1});
  EXPECT_TRUE(std::isfinite(exec) && exec > 1);
  try {
    illm::integerize(m, illm::integer_settings_for(4, 4, false));
    ADD_FAILURE() << "integerize accepted TRIP factors at down_in with the online down_proj Hadamard";
  } catch (const illm::Error& e) {  // every lever has an integer operator; these two meet at one site
    EXPECT_NE(std::string(e.what()).find("down_in"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("hadamard_down"), std::string::npos) << e.what();
  }
  try {
    illm::require_integer_path(r, "levers.json");
    ADD_FAILURE() << "require_integer_path accepted trip_shifts with hadamard_down";
  } catch (const illm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("levers.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("trip_shifts"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("hadamard_down"), std::string::npos) << e.what();
  }
  // Without the down_proj Hadamard the same levers, TRIP included, build an integer model.
  illm::Recipe without_down = r;
  without_down.hadamard_down = false;
  EXPECT_NO_THROW(illm::require_integer_path(without_down, "levers.json"));
}

}  // namespace
