// Recipe parsing and validation (configs/README.md schema).
#include "formats/recipe.h"

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kernels/error.h"

namespace {

using illm::Recipe;
const std::filesystem::path kConfigs = std::filesystem::path(ILLM_SOURCE_DIR) / "configs";

std::string error_of(const std::string& json) {
  try {
    illm::parse_recipe_json(json, "test.json");
  } catch (const illm::Error& e) {
    return e.what();
  }
  return "";
}

TEST(Recipe, BundledRecipesParse) {
  const struct { const char* file; int w, a; } cases[] = {
      {"w4a4.json", 4, 4}, {"w4a8.json", 4, 8}, {"w6a6.json", 6, 6}, {"w8a8.json", 8, 8}, {"quick-w4a4.json", 4, 4},
      {"w4a4-g16.json", 4, 4}, {"w6a6-g16.json", 6, 6}, {"w8a8-g16.json", 8, 8}, {"w4a4-g16-wg32.json", 4, 4},
      {"w6a6-g16-wg32.json", 6, 6}, {"w8a8-g16-wg32.json", 8, 8}, {"w4a4-g8.json", 4, 4}, {"w4a4-per-token.json", 4, 4},
      {"w4a4-g8-kv8.json", 4, 4}, {"w4a4-kv8.json", 4, 4}};
  for (const auto& c : cases) {
    const Recipe r = illm::load_recipe(kConfigs / c.file);
    // w6a6 / w8a8: GPTQ + rotations without training (configs/README.md: they measured better than FSBR there)
    EXPECT_EQ(r.method, c.w >= 6 ? illm::QuantMethod::kRtn : illm::QuantMethod::kFsbr) << c.file;
    EXPECT_EQ(r.w_bits, c.w) << c.file;
    EXPECT_EQ(r.a_bits, c.a) << c.file;
    EXPECT_EQ(r.seq_len, 256) << c.file;
    ASSERT_TRUE(r.clip_c.has_value());
    EXPECT_EQ(*r.clip_c, 15.0);
  }
  const Recipe quick = illm::load_recipe(kConfigs / "quick-w4a4.json");
  EXPECT_EQ(quick.epochs, 2);
  EXPECT_EQ(quick.samples, 32);
  // The quick default carries the levers that add no training and take any width (docs/results.md, round 10).
  EXPECT_EQ(quick.rotation, illm::ResidualRotation::kOrthogonal);
  EXPECT_TRUE(quick.rotate_heads && quick.hadamard_down && quick.hadamard_qk);
  EXPECT_EQ(quick.act_group_size, 8);
  EXPECT_EQ(quick.w_granularity, illm::WeightGranularity::kPerChannel);
  EXPECT_FALSE(quick.gptq);
  const Recipe full = illm::load_recipe(kConfigs / "w4a4.json");
  EXPECT_EQ(full.epochs, 4);  // with the W4A4 levers (configs/README.md: what measured best)
  EXPECT_EQ(full.samples, 128);
  EXPECT_TRUE(full.hadamard_down && full.gptq && full.act_clip_search && full.rotate_heads);
  EXPECT_FALSE(full.gptq_head);  // measured no better at W4A4 (stories260K; configs/README.md)
  EXPECT_EQ(full.head_in_bits, 8);
  EXPECT_EQ(full.head_group_size, 0);
  // The default W4A4 is the best pure W4A4 measured (configs/README.md): 8-wide activation groups, 32-wide weight
  // groups, the online q/k Hadamard, and 4-bit Q, K and V like every other code.
  EXPECT_TRUE(full.hadamard_qk);
  EXPECT_EQ(full.act_group_size, 8);
  EXPECT_EQ(full.w_granularity, illm::WeightGranularity::kPerGroup);
  EXPECT_EQ(full.group_size, 32);
  EXPECT_EQ(illm::qkv_bits_of(full), 4);
  const Recipe w4a8 = illm::load_recipe(kConfigs / "w4a8.json");
  EXPECT_EQ(w4a8.epochs, 4);
  EXPECT_EQ(w4a8.w_granularity, illm::WeightGranularity::kPerGroup);
  EXPECT_EQ(w4a8.group_size, 32);
  for (const char* file : {"w6a6.json", "w8a8.json"}) {
    const Recipe r = illm::load_recipe(kConfigs / file);
    EXPECT_TRUE(r.gptq && r.gptq_head && r.rotate_heads && r.hadamard_down && r.hadamard_qk) << file;
    // Their LM head: 16-bit inputs, 32-wide weight groups (configs/README.md: they measured better on both models)
    EXPECT_EQ(r.head_in_bits, 16) << file;
    EXPECT_EQ(r.head_group_size, 32) << file;
    EXPECT_EQ(r.rotation, illm::ResidualRotation::kOrthogonal) << file;
  }
  // The per-group-activation variants are their base recipes plus act_group_size 16 (and another description).
  for (const auto& [base, grouped] :  {std::pair{"w4a4-per-token.json", "w4a4-g16.json"}, std::pair{"w6a6.json", "w6a6-g16.json"},
                                       std::pair{"w8a8.json", "w8a8-g16.json"}}) {
    EXPECT_EQ(illm::load_recipe(kConfigs / base).act_group_size, 0) << base;
    EXPECT_EQ(illm::load_recipe(kConfigs / grouped).act_group_size, 16) << grouped;
    nlohmann::json a = nlohmann::json::parse(std::ifstream(kConfigs / base));
    nlohmann::json b = nlohmann::json::parse(std::ifstream(kConfigs / grouped));
    for (nlohmann::json* j : {&a, &b}) {
      j->erase("description");
      j->erase("act_group_size");
    }
    EXPECT_EQ(a, b) << grouped << " differs from " << base << " in more than act_group_size";
  }
  // The -wg32 variants are the -g16 recipes with 32-wide weight groups (and another description).
  for (const auto& [base, grouped] : {std::pair{"w4a4-g16.json", "w4a4-g16-wg32.json"},
                                      std::pair{"w6a6-g16.json", "w6a6-g16-wg32.json"},
                                      std::pair{"w8a8-g16.json", "w8a8-g16-wg32.json"}}) {
    const Recipe r = illm::load_recipe(kConfigs / grouped);
    EXPECT_EQ(r.w_granularity, illm::WeightGranularity::kPerGroup) << grouped;
    EXPECT_EQ(r.group_size, 32) << grouped;
    EXPECT_EQ(r.act_group_size, 16) << grouped;
    nlohmann::json a = nlohmann::json::parse(std::ifstream(kConfigs / base));
    nlohmann::json b = nlohmann::json::parse(std::ifstream(kConfigs / grouped));
    for (nlohmann::json* j : {&a, &b})
      for (const char* key : {"description", "w_granularity", "group_size"}) j->erase(key);
    EXPECT_EQ(a, b) << grouped << " differs from " << base << " in more than the weight groups";
  }
  // The G = 8 recipes: w4a4-per-token.json with act_group_size 8 and the online q/k Hadamard (w4a4-g8.json), and
  // that with 32-wide weight groups (w4a4.json; configs/README.md: the best W4A4 measured on stories260K and on
  // tinybible).
  {
    nlohmann::json a = nlohmann::json::parse(std::ifstream(kConfigs / "w4a4-per-token.json"));
    nlohmann::json b = nlohmann::json::parse(std::ifstream(kConfigs / "w4a4-g8.json"));
    nlohmann::json c = nlohmann::json::parse(std::ifstream(kConfigs / "w4a4.json"));
    EXPECT_EQ(b.at("act_group_size"), 8);
    EXPECT_EQ(b.at("hadamard_qk"), true);
    EXPECT_EQ(c.at("w_granularity"), "per_group");
    EXPECT_EQ(c.at("group_size"), 32);
    for (nlohmann::json* j : {&a, &b, &c})
      for (const char* key : {"description", "act_group_size", "hadamard_qk", "w_granularity", "group_size"}) j->erase(key);
    EXPECT_EQ(a, b) << "w4a4-g8.json differs from w4a4-per-token.json in more than act_group_size and hadamard_qk";
    EXPECT_EQ(b, c) << "w4a4.json differs from w4a4-g8.json in more than the weight groups";
  }
  // The KV8 recipes: each G = 8 recipe with 8-bit Q, K and V codes and nothing else changed.
  for (const auto& [base, kv8] : {std::pair{"w4a4-g8.json", "w4a4-g8-kv8.json"},
                                  std::pair{"w4a4.json", "w4a4-kv8.json"}}) {
    nlohmann::json a = nlohmann::json::parse(std::ifstream(kConfigs / base));
    nlohmann::json b = nlohmann::json::parse(std::ifstream(kConfigs / kv8));
    EXPECT_EQ(b.at("qkv_bits"), 8) << kv8;
    EXPECT_EQ(illm::qkv_bits_of(illm::load_recipe(kConfigs / kv8)), 8) << kv8;
    EXPECT_EQ(illm::qkv_bits_of(illm::load_recipe(kConfigs / base)), 4) << base;
    for (nlohmann::json* j : {&a, &b})
      for (const char* key : {"description", "qkv_bits"}) j->erase(key);
    EXPECT_EQ(a, b) << kv8 << " differs from " << base << " in more than qkv_bits";
  }
  // Shipped FSBR tuning (configs/README.md): identity smoothing init, larger learning rates than the paper's.
  EXPECT_DOUBLE_EQ(full.lr_smooth, 1e-2);
  EXPECT_DOUBLE_EQ(full.lr_lwc, 5e-2);
  EXPECT_EQ(full.smooth_init, illm::SmoothInit::kIdentity);
  EXPECT_DOUBLE_EQ(full.lwc_init, 4.0);
}

// Scripts switch methods by replacing the string "fsbr": in the FSBR recipes it must occur exactly once, as the
// method value.
TEST(Recipe, FsbrStringOnlyAsMethodValue) {
  for (const char* file : {"w4a4.json", "w4a8.json", "quick-w4a4.json", "w4a4-g16.json", "w4a4-g16-wg32.json",
                           "w4a4-g8.json", "w4a4-per-token.json", "w4a4-g8-kv8.json", "w4a4-kv8.json"}) {
    std::ifstream in(kConfigs / file);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    for (auto& ch : text) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    size_t count = 0;
    for (size_t p = text.find("fsbr"); p != std::string::npos; p = text.find("fsbr", p + 1)) ++count;
    EXPECT_EQ(count, 1u) << file;
    EXPECT_NE(text.find("\"method\": \"fsbr\""), std::string::npos) << file;
    const std::string original = ss.str();
    std::string rtn = original;
    rtn.replace(rtn.find("fsbr"), 4, "rtn");
    EXPECT_EQ(illm::parse_recipe_json(rtn, file).method, illm::QuantMethod::kRtn);
  }
}

TEST(Recipe, UnknownKeyNamesFileAndKey) {
  const std::string e = error_of(R"({"method": "rtn", "w_bitz": 4})");
  EXPECT_NE(e.find("test.json"), std::string::npos) << e;
  EXPECT_NE(e.find("w_bitz"), std::string::npos) << e;
}

TEST(Recipe, ImpossibleValuesAreErrors) {
  EXPECT_NE(error_of(R"({"method": "fsbr", "w_bits": 0})").find("w_bits"), std::string::npos);
  EXPECT_NE(error_of(R"({"method": "fsbr", "w_bits": 9})").find("w_bits"), std::string::npos);
  EXPECT_NE(error_of(R"({"method": "fsbr", "a_bits": 9})").find("a_bits"), std::string::npos);
  EXPECT_NE(error_of(R"({"method": "fsbr", "clip_c": 0})").find("clip_c"), std::string::npos);
  EXPECT_NE(error_of(R"({"method": "fsbr", "clip_c": -3})").find("clip_c"), std::string::npos);
  EXPECT_NE(error_of(R"({"method": "fsbr", "clip_c": "maybe"})").find("clip_c"), std::string::npos);
  EXPECT_NE(error_of(R"({"method": "fsbr", "samples": 0})").find("samples"), std::string::npos);
  EXPECT_NE(error_of(R"({"method": "gptq"})").find("method"), std::string::npos);
  EXPECT_NE(error_of(R"({"w_bits": 4})").find("method"), std::string::npos);
  EXPECT_NE(error_of(R"({"method": "fsbr", "w_bits": "4"})").find("w_bits"), std::string::npos);
  EXPECT_NE(error_of(R"({"method": "fsbr", "w_granularity": "per_tensor"})").find("w_granularity"),
            std::string::npos);
  EXPECT_NE(error_of("[1, 2]").find("test.json"), std::string::npos);
  EXPECT_NE(error_of("{not json").find("test.json"), std::string::npos);
  EXPECT_THROW(illm::load_recipe(kConfigs / "no-such-recipe.json"), illm::Error);
}

TEST(Recipe, ClipSearchAndDefaults) {
  const Recipe s = illm::parse_recipe_json(R"({"method": "smoothquant", "clip_c": "search"})", "t");
  EXPECT_TRUE(s.clip_search);
  EXPECT_FALSE(s.clip_c.has_value());
  EXPECT_EQ(s.method, illm::QuantMethod::kSmoothQuant);
  const Recipe n = illm::parse_recipe_json(R"({"method": "rtn", "clip_c": 12.5, "w_granularity": "per_group",
                                               "group_size": 32, "lr_lwc": 0.02})", "t");
  EXPECT_DOUBLE_EQ(*n.clip_c, 12.5);
  EXPECT_EQ(n.w_granularity, illm::WeightGranularity::kPerGroup);
  EXPECT_EQ(n.group_size, 32);
  EXPECT_DOUBLE_EQ(n.sq_alpha, 0.5);  // default
  EXPECT_EQ(n.seed, 2u);
}

// The W4A4 lever keys (configs/README.md): defaults are off, values parse, impossible values name the key.
TEST(Recipe, LeverKeys) {
  const Recipe d = illm::parse_recipe_json(R"({"method": "rtn"})", "t");
  EXPECT_EQ(d.rotation, illm::ResidualRotation::kNone);
  EXPECT_FALSE(d.rotate_heads || d.hadamard_down || d.hadamard_qk || d.gptq || d.gptq_act_order || d.gptq_head ||
               d.act_clip_search);
  EXPECT_DOUBLE_EQ(d.gptq_damp, 0.01);
  EXPECT_DOUBLE_EQ(d.act_clip, 1.0);
  EXPECT_EQ(d.trip_shifts, 0);
  const Recipe r = illm::parse_recipe_json(R"({"method": "fsbr", "rotation": "orthogonal", "rotate_heads": true,
      "hadamard_down": true, "hadamard_qk": true, "gptq": true, "gptq_damp": 0.05, "gptq_act_order": true, "gptq_head": true,
      "act_clip": "search", "trip_shifts": 3})", "t");
  EXPECT_EQ(r.rotation, illm::ResidualRotation::kOrthogonal);
  EXPECT_TRUE(r.rotate_heads && r.hadamard_down && r.hadamard_qk && r.gptq && r.gptq_act_order && r.gptq_head && r.act_clip_search);
  EXPECT_DOUBLE_EQ(r.gptq_damp, 0.05);
  EXPECT_EQ(r.trip_shifts, 3);
  EXPECT_EQ(illm::parse_recipe_json(R"({"method": "rtn", "rotation": "hadamard"})", "t").rotation,
            illm::ResidualRotation::kHadamard);
  EXPECT_DOUBLE_EQ(illm::parse_recipe_json(R"({"method": "rtn", "act_clip": 0.875})", "t").act_clip, 0.875);
  for (const char* bad : {R"({"method": "rtn", "rotation": "random"})", R"({"method": "rtn", "rotation": true})"})
    EXPECT_NE(error_of(bad).find("\"rotation\""), std::string::npos) << bad;
  EXPECT_NE(error_of(R"({"method": "rtn", "gptq": 1})").find("\"gptq\""), std::string::npos);
  EXPECT_NE(error_of(R"({"method": "rtn", "gptq_head": "yes"})").find("\"gptq_head\""), std::string::npos);
  EXPECT_NE(error_of(R"({"method": "rtn", "head_in_bits": 17})").find("head_in_bits"), std::string::npos);
  EXPECT_NE(error_of(R"({"method": "rtn", "head_in_bits": 1})").find("head_in_bits"), std::string::npos);
  EXPECT_NE(error_of(R"({"method": "rtn", "head_group_size": 16})").find("head_group_size"), std::string::npos);
  EXPECT_NE(error_of(R"({"method": "rtn", "gptq_damp": 0})").find("gptq_damp"), std::string::npos);
  EXPECT_NE(error_of(R"({"method": "rtn", "act_clip": 1.5})").find("act_clip"), std::string::npos);
  EXPECT_NE(error_of(R"({"method": "rtn", "act_clip": "auto"})").find("act_clip"), std::string::npos);
  EXPECT_NE(error_of(R"({"method": "rtn", "trip_shifts": 9})").find("trip_shifts"), std::string::npos);
  EXPECT_NE(error_of(R"({"method": "rtn", "hadamard_qk": "yes"})").find("hadamard_qk"), std::string::npos);
  // qkv_bits: absent = a_bits; 2..8.
  EXPECT_EQ(illm::qkv_bits_of(illm::parse_recipe_json(R"({"method": "rtn", "a_bits": 4})", "t")), 4);
  EXPECT_EQ(illm::qkv_bits_of(illm::parse_recipe_json(R"({"method": "rtn", "a_bits": 4, "qkv_bits": 8})", "t")), 8);
  for (const char* bad : {R"({"method": "rtn", "qkv_bits": 1})", R"({"method": "rtn", "qkv_bits": 9})",
                          R"({"method": "rtn", "qkv_bits": 0})"})
    EXPECT_NE(error_of(bad).find("\"qkv_bits\""), std::string::npos) << bad;
  // rotation_seed: absent = the recipe's seed; a seed of its own decouples the rotation from the training's seed.
  const Recipe seeded = illm::parse_recipe_json(R"({"method": "rtn", "seed": 7})", "t");
  EXPECT_FALSE(seeded.rotation_seed.has_value());
  EXPECT_EQ(illm::rotation_seed_of(seeded), 7u);
  const Recipe own = illm::parse_recipe_json(R"({"method": "rtn", "seed": 7, "rotation_seed": 3})", "t");
  EXPECT_EQ(own.seed, 7u);
  EXPECT_EQ(illm::rotation_seed_of(own), 3u);
  for (const char* bad : {R"({"method": "rtn", "rotation_seed": -1})", R"({"method": "rtn", "rotation_seed": 1.5})",
                          R"({"method": "rtn", "rotation_seed": "2"})"})
    EXPECT_NE(error_of(bad).find("\"rotation_seed\""), std::string::npos) << bad;
}

// Per-group activations: 0 (per token, the default), 8, 16, 32, 64 or 128; not with TRIP; with per-group weights whose
// group size they divide.
TEST(Recipe, ActGroupSize) {
  EXPECT_EQ(illm::parse_recipe_json(R"({"method": "rtn"})", "t").act_group_size, 0);
  for (const int g : {8, 16, 32, 64, 128})
    EXPECT_EQ(illm::parse_recipe_json(R"({"method": "rtn", "act_group_size": )" + std::to_string(g) + "}", "t")
                  .act_group_size,
              g);
  for (const char* bad : {R"({"method": "rtn", "act_group_size": 24})", R"({"method": "rtn", "act_group_size": -1})",
                          R"({"method": "rtn", "act_group_size": 256})", R"({"method": "rtn", "act_group_size": 4})"})
    EXPECT_NE(error_of(bad).find("act_group_size"), std::string::npos) << bad;
  const std::string trip = error_of(R"({"method": "rtn", "act_group_size": 32, "trip_shifts": 3})");
  EXPECT_NE(trip.find("trip_shifts"), std::string::npos) << trip;
  // With per-group weights when A divides their group size (a weight group holds whole activation groups).
  const illm::Recipe both = illm::parse_recipe_json(
      R"({"method": "rtn", "act_group_size": 16, "w_granularity": "per_group", "group_size": 32})", "t");
  EXPECT_EQ(both.act_group_size, 16);
  EXPECT_EQ(both.group_size, 32);
  const std::string groups =
      error_of(R"({"method": "rtn", "act_group_size": 64, "w_granularity": "per_group", "group_size": 32})");
  EXPECT_NE(groups.find("act_group_size"), std::string::npos) << groups;
  EXPECT_NE(groups.find("64 does not divide the per_group weights' group_size 32"), std::string::npos) << groups;
}

// ---- issue #8: values are reported as given, never wrapped; a key may appear once ----

TEST(Recipe, OutOfRangeIntegersAreReportedAsGiven) {
  // 10^12 read as int wrapped to a negative value: "epochs must be >= 0".
  const std::string e = error_of(R"({"method": "fsbr", "epochs": 1000000000000})");
  EXPECT_NE(e.find("\"epochs\": must be in [0, 2147483647], got 1000000000000"), std::string::npos) << e;
  const std::string s = error_of(R"({"method": "fsbr", "samples": 18446744073709551615})");
  EXPECT_NE(s.find("got 18446744073709551615"), std::string::npos) << s;
  const std::string w = error_of(R"({"method": "fsbr", "w_bits": 4294967300})");  // 2^32 + 4 wrapped to 4
  EXPECT_NE(w.find("w_bits"), std::string::npos) << w;
  EXPECT_NE(error_of(R"({"method": "fsbr", "seq_len": 2.5})").find("must be an integer"), std::string::npos);
  EXPECT_NE(error_of(R"({"method": "fsbr", "seed": -1})").find("seed"), std::string::npos);
  EXPECT_EQ(illm::parse_recipe_json(R"({"method": "rtn", "seed": 18446744073709551615})", "t").seed,
            18446744073709551615ull);
}

TEST(Recipe, RepeatedKeysAreErrors) {
  // nlohmann keeps the last of two equal keys: "epochs" 1 then 50 silently meant 50.
  const std::string e = error_of(R"({"method": "fsbr", "epochs": 1, "epochs": 50})");
  EXPECT_NE(e.find("test.json"), std::string::npos) << e;
  EXPECT_NE(e.find("\"epochs\": appears twice"), std::string::npos) << e;
}

TEST(Recipe, NumbersMustBeFiniteAndClipInItsRange) {
  // JSON has no infinity: 1e999 is refused by the parser itself ("number overflow").
  EXPECT_NE(error_of(R"({"method": "fsbr", "lr_lwc": 1e999})").find("number overflow"), std::string::npos);
  EXPECT_NE(error_of(R"({"method": "fsbr", "clip_c": 1e-9})").find("[0.001, 1000000]"), std::string::npos);
  EXPECT_NE(error_of(R"({"method": "fsbr", "clip_c": 1e7})").find("clip_c"), std::string::npos);
  EXPECT_EQ(*illm::parse_recipe_json(R"({"method": "fsbr", "clip_c": 1e6})", "t").clip_c, 1e6);
}

TEST(Recipe, DirectoriesAndDevicesAreNotRecipes) {
  const std::string dir = ILLM_SOURCE_DIR "/configs";
  try {
    illm::load_recipe(dir);
    ADD_FAILURE() << "a directory was read as a recipe";
  } catch (const illm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("recipe is a directory"), std::string::npos) << e.what();
  }
  try {
    illm::load_recipe("/dev/zero");
    ADD_FAILURE() << "/dev/zero was read as a recipe";
  } catch (const illm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("recipe is a device"), std::string::npos) << e.what();
  }
}

}  // namespace
