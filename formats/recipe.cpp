#include "formats/recipe.h"

#include <climits>
#include <cmath>
#include <set>

#include <nlohmann/json.hpp>

#include "formats/input_file.h"
#include "formats/strict_json.h"
#include "kernels/error.h"

namespace illm {
namespace {

using formats::StrictJsonProblem;
using nlohmann::json;
constexpr int kIntMax = INT_MAX;

const std::set<std::string>& schema_keys() {
  static const std::set<std::string> keys = {
      "method",  "w_bits",   "a_bits",   "qkv_bits",     "w_granularity",  "group_size",     "epochs",
      "lr_smooth", "lr_lwc", "samples",    "seq_len",        "seed",           "sq_alpha",
      "clip_c",  "lwc_init", "smooth_init", "tie_rope_pairs", "swiglu_in_bits", "fake_quant_points",
      "description", "rotation", "rotation_seed", "rotate_heads", "hadamard_down", "hadamard_qk", "gptq", "gptq_damp",
      "gptq_act_order", "gptq_head", "head_in_bits", "head_group_size", "act_clip", "trip_shifts", "act_group_size"};
  return keys;
}

[[noreturn]] void fail(const std::string& source, const std::string& key, const std::string& why) {
  throw Error("recipe " + source + ": key \"" + key + "\": " + why);
}

// An integer in [low, high]; anything else (a fraction, 10^12, a string) is named with the value given.
int get_int(const json& j, const std::string& key, const std::string& source, int low, int high) {
  const json& v = j.at(key);
  std::string range = "[";  // built by appending: GCC 12 warns (-Wrestrict, falsely) on "[" + std::to_string(...)
  range += std::to_string(low);
  range += ", ";
  range += std::to_string(high);
  range += "]";
  if (!v.is_number_integer()) fail(source, key, "must be an integer in " + range + ", got " + v.dump());
  const bool in_range = v.is_number_unsigned() ? v.get<uint64_t>() <= static_cast<uint64_t>(high)
                                               : v.get<int64_t>() >= low && v.get<int64_t>() <= high;
  if (!in_range || v.get<int64_t>() < low) fail(source, key, "must be in " + range + ", got " + v.dump());
  return v.get<int>();
}

double get_number(const json& j, const std::string& key, const std::string& source) {
  const json& v = j.at(key);
  if (!v.is_number()) fail(source, key, "must be a number");
  const double value = v.get<double>();
  if (!std::isfinite(value)) fail(source, key, "must be a finite number");
  return value;
}

std::string get_string(const json& j, const std::string& key, const std::string& source) {
  const json& v = j.at(key);
  if (!v.is_string()) fail(source, key, "must be a string");
  return v.get<std::string>();
}

bool get_bool(const json& j, const std::string& key, const std::string& source) {
  const json& v = j.at(key);
  if (!v.is_boolean()) fail(source, key, "must be true or false");
  return v.get<bool>();
}

}  // namespace

const char* to_string(QuantMethod m) {
  switch (m) {
    case QuantMethod::kRtn: return "rtn";
    case QuantMethod::kSmoothQuant: return "smoothquant";
    case QuantMethod::kFsbr: return "fsbr";
  }
  return "?";
}

Recipe parse_recipe_json(const std::string& json_text, const std::string& source) {
  StrictJsonProblem problem;
  json j;
  try {
    j = formats::parse_json_strictly(json_text, &problem);
  } catch (const json::exception& e) {
    throw Error("recipe " + source + ": not valid JSON: " + e.what());
  }
  if (problem.too_deep) throw Error("recipe " + source + ": nested too deeply");
  if (!problem.duplicate_key.empty()) fail(source, problem.duplicate_key, "appears twice (each key at most once)");
  if (!j.is_object()) throw Error("recipe " + source + ": top level must be a JSON object");
  for (const auto& item : j.items()) {
    if (!schema_keys().count(item.key())) fail(source, item.key(), "not a recipe key (see configs/README.md)");
  }
  if (!j.contains("method")) throw Error("recipe " + source + ": key \"method\" is required");

  Recipe r;
  const std::string method = get_string(j, "method", source);
  if (method == "rtn") r.method = QuantMethod::kRtn;
  else if (method == "smoothquant") r.method = QuantMethod::kSmoothQuant;
  else if (method == "fsbr") r.method = QuantMethod::kFsbr;
  else fail(source, "method", "must be \"rtn\", \"smoothquant\" or \"fsbr\", got \"" + method + "\"");

  if (j.contains("w_bits")) r.w_bits = get_int(j, "w_bits", source, 2, 8);
  if (j.contains("a_bits")) r.a_bits = get_int(j, "a_bits", source, 2, 8);
  if (j.contains("qkv_bits")) r.qkv_bits = get_int(j, "qkv_bits", source, 2, 8);
  if (j.contains("w_granularity")) {
    const std::string g = get_string(j, "w_granularity", source);
    if (g == "per_channel") r.w_granularity = WeightGranularity::kPerChannel;
    else if (g == "per_group") r.w_granularity = WeightGranularity::kPerGroup;
    else fail(source, "w_granularity", "must be \"per_channel\" or \"per_group\", got \"" + g + "\"");
  }
  if (j.contains("group_size")) r.group_size = get_int(j, "group_size", source, 2, kIntMax);
  if (j.contains("epochs")) r.epochs = get_int(j, "epochs", source, 0, kIntMax);
  if (j.contains("lr_smooth")) r.lr_smooth = get_number(j, "lr_smooth", source);
  if (j.contains("lr_lwc")) r.lr_lwc = get_number(j, "lr_lwc", source);
  if (j.contains("samples")) r.samples = get_int(j, "samples", source, 1, kIntMax);
  if (j.contains("seq_len")) r.seq_len = get_int(j, "seq_len", source, 2, kIntMax);
  auto get_seed = [&](const char* key) {
    const json& v = j.at(key);
    if (!v.is_number_integer() || (!v.is_number_unsigned() && v.get<int64_t>() < 0))
      fail(source, key, "must be an integer in [0, 2^64 - 1], got " + v.dump());
    return v.get<uint64_t>();
  };
  if (j.contains("seed")) r.seed = get_seed("seed");
  if (j.contains("rotation_seed")) r.rotation_seed = get_seed("rotation_seed");
  if (j.contains("sq_alpha")) r.sq_alpha = get_number(j, "sq_alpha", source);
  if (j.contains("clip_c")) {
    const json& v = j.at("clip_c");
    if (v.is_string()) {
      if (v.get<std::string>() == "search") {
        r.clip_search = true;
        r.clip_c.reset();
      } else if (v.get<std::string>() == "none") {
        r.clip_c.reset();
      } else {
        fail(source, "clip_c", "must be a number, \"search\" or \"none\"");
      }
    } else if (v.is_number()) {
      r.clip_c = get_number(j, "clip_c", source);
    } else {
      fail(source, "clip_c", "must be a number, \"search\" or \"none\"");
    }
  }
  if (j.contains("lwc_init")) r.lwc_init = get_number(j, "lwc_init", source);
  if (j.contains("smooth_init")) {
    const std::string s = get_string(j, "smooth_init", source);
    if (s == "smoothquant") r.smooth_init = SmoothInit::kSmoothQuant;
    else if (s == "identity") r.smooth_init = SmoothInit::kIdentity;
    else fail(source, "smooth_init", "must be \"smoothquant\" or \"identity\", got \"" + s + "\"");
  }
  if (j.contains("tie_rope_pairs")) r.tie_rope_pairs = get_bool(j, "tie_rope_pairs", source);
  if (j.contains("swiglu_in_bits")) r.swiglu_in_bits = get_int(j, "swiglu_in_bits", source, 2, 16);
  if (j.contains("fake_quant_points")) {
    const std::string s = get_string(j, "fake_quant_points", source);
    if (s == "training") r.fake_quant_points = FakeQuantPoints::kTraining;
    else if (s == "executor") r.fake_quant_points = FakeQuantPoints::kExecutor;
    else fail(source, "fake_quant_points", "must be \"training\" or \"executor\", got \"" + s + "\"");
  }
  if (j.contains("description")) r.description = get_string(j, "description", source);
  if (j.contains("rotation")) {
    const std::string s = get_string(j, "rotation", source);
    if (s == "none") r.rotation = ResidualRotation::kNone;
    else if (s == "hadamard") r.rotation = ResidualRotation::kHadamard;
    else if (s == "orthogonal") r.rotation = ResidualRotation::kOrthogonal;
    else fail(source, "rotation", "must be \"none\", \"hadamard\" or \"orthogonal\", got \"" + s + "\"");
  }
  if (j.contains("rotate_heads")) r.rotate_heads = get_bool(j, "rotate_heads", source);
  if (j.contains("hadamard_down")) r.hadamard_down = get_bool(j, "hadamard_down", source);
  if (j.contains("hadamard_qk")) r.hadamard_qk = get_bool(j, "hadamard_qk", source);
  if (j.contains("gptq")) r.gptq = get_bool(j, "gptq", source);
  if (j.contains("gptq_damp")) r.gptq_damp = get_number(j, "gptq_damp", source);
  if (j.contains("gptq_act_order")) r.gptq_act_order = get_bool(j, "gptq_act_order", source);
  if (j.contains("gptq_head")) r.gptq_head = get_bool(j, "gptq_head", source);
  if (j.contains("head_in_bits")) r.head_in_bits = get_int(j, "head_in_bits", source, 2, 16);
  if (j.contains("head_group_size")) r.head_group_size = get_int(j, "head_group_size", source, 0, 128);
  if (j.contains("act_clip")) {
    const json& v = j.at("act_clip");
    if (v.is_string() && v.get<std::string>() == "search") r.act_clip_search = true;
    else if (v.is_number()) r.act_clip = get_number(j, "act_clip", source);
    else fail(source, "act_clip", "must be a number in (0, 1] or \"search\"");
  }
  if (j.contains("trip_shifts")) r.trip_shifts = get_int(j, "trip_shifts", source, 0, 8);
  if (j.contains("act_group_size")) r.act_group_size = get_int(j, "act_group_size", source, 0, 128);
  validate_recipe(r, source);
  return r;
}

void validate_recipe(const Recipe& r, const std::string& source) {
  auto bits_ok = [](int b) { return b >= 2 && b <= 8; };
  if (!bits_ok(r.w_bits)) fail(source, "w_bits", "must be in 2..8, got " + std::to_string(r.w_bits));
  if (!bits_ok(r.a_bits)) fail(source, "a_bits", "must be in 2..8, got " + std::to_string(r.a_bits));
  if (r.qkv_bits != 0 && !bits_ok(r.qkv_bits))
    fail(source, "qkv_bits", "must be in 2..8, got " + std::to_string(r.qkv_bits));
  if (!bits_ok(r.swiglu_in_bits) && r.swiglu_in_bits != 16)
    fail(source, "swiglu_in_bits", "must be in 2..8 or 16, got " + std::to_string(r.swiglu_in_bits));
  if (r.w_granularity == WeightGranularity::kPerGroup && r.group_size < 2)
    fail(source, "group_size", "must be >= 2 for per_group weights, got " + std::to_string(r.group_size));
  if (r.epochs < 0) fail(source, "epochs", "must be >= 0");
  if (r.samples < 1) fail(source, "samples", "must be >= 1, got " + std::to_string(r.samples));
  if (r.seq_len < 2) fail(source, "seq_len", "must be >= 2, got " + std::to_string(r.seq_len));
  if (!(r.lr_smooth >= 0)) fail(source, "lr_smooth", "must be >= 0");
  if (!(r.lr_lwc >= 0)) fail(source, "lr_lwc", "must be >= 0");
  if (!(r.sq_alpha >= 0 && r.sq_alpha <= 1)) fail(source, "sq_alpha", "must be in [0, 1]");
  if (r.clip_c && !(*r.clip_c >= kMinClipC && *r.clip_c <= kMaxClipC))
    fail(source, "clip_c", "must be in [0.001, 1000000], got " + std::to_string(*r.clip_c));
  if (!(r.gptq_damp > 0 && r.gptq_damp <= 1)) fail(source, "gptq_damp", "must be in (0, 1]");
  if (!(r.act_clip > 0 && r.act_clip <= 1)) fail(source, "act_clip", "must be in (0, 1] or \"search\"");
  if (r.trip_shifts < 0 || r.trip_shifts > 8)
    fail(source, "trip_shifts", "must be in 0..8, got " + std::to_string(r.trip_shifts));
  if (r.head_in_bits < 2 || r.head_in_bits > 16)
    fail(source, "head_in_bits", "must be in 2..16, got " + std::to_string(r.head_in_bits));
  if (r.head_group_size != 0 && r.head_group_size != 32 && r.head_group_size != 64 && r.head_group_size != 128)
    fail(source, "head_group_size", "must be 0 (per row), 32, 64 or 128, got " + std::to_string(r.head_group_size));
  const int g = r.act_group_size;
  if (g != 0 && g != 8 && g != 16 && g != 32 && g != 64 && g != 128)
    fail(source, "act_group_size", "must be 0 (per token), 8, 16, 32, 64 or 128, got " + std::to_string(g));
  // The combinations without an integer operator (model validation refuses them too).
  if (g != 0 && r.trip_shifts > 0)
    fail(source, "act_group_size", "cannot be combined with trip_shifts (no integer operator for both)");
  if (g != 0 && r.w_granularity == WeightGranularity::kPerGroup && r.group_size % g != 0)
    fail(source, "act_group_size", std::to_string(g) + " does not divide the per_group weights' group_size " +
                                       std::to_string(r.group_size) + " (a weight group holds whole activation groups)");
}

Recipe load_recipe(const std::filesystem::path& path) {
  return parse_recipe_json(formats::read_input_file(path, "recipe"), path.string());
}

}  // namespace illm
