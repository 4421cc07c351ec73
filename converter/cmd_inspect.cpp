// `illm inspect`: a summary of an .illm file's schema and contents: format and tool versions, source, shape,
// integer settings, recipe, per-layer bit widths / accumulators / scale ranges / clip constants / norm exponents,
// and sizes (the file's bytes per tensor group next to the source checkpoint's size).
#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "converter/commands.h"
#include "converter/kernel_option.h"
#include "formats/hdf5_probe.h"
#include "formats/hdf5_util.h"
#include "formats/illm_file.h"
#include "formats/llama_config.h"
#include "kernels/error.h"
#include "kernels/reference/di_matmul.h"
#include "kernels/reference/hadamard.h"

namespace illm::converter {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;
namespace h5 = formats::h5;

struct InspectOptions {
  std::string file;
  bool json = false;
};

double dyadic_value(Dyadic d) { return std::ldexp(static_cast<double>(d.m), -d.k); }

struct ScaleRange {
  int64_t m_min = 0, m_max = 0;
  int32_t k_min = 0, k_max = 0;
};

ScaleRange scale_range(const std::vector<Dyadic>& scales) {
  ScaleRange r;
  if (scales.empty()) return r;
  r.m_min = r.m_max = scales[0].m;
  r.k_min = r.k_max = scales[0].k;
  for (const Dyadic& s : scales) {
    r.m_min = std::min(r.m_min, s.m), r.m_max = std::max(r.m_max, s.m);
    r.k_min = std::min(r.k_min, s.k), r.k_max = std::max(r.k_max, s.k);
  }
  return r;
}

const char* accumulator_name(AccumulatorKind kind) { return kind == AccumulatorKind::kInt32 ? "int32" : "int64"; }

// One linear as the executor runs it: every block linear reads a_bits-wide activations, the LM head head_in_bits
// (head_bits unless set).
Json linear_summary(const QuantizedLinear& w, int input_bits) {
  const ScaleRange r = scale_range(w.scales);
  Json j;
  j["out_features"] = w.out_features;
  j["in_features"] = w.in_features;
  j["w_bits"] = w.bits;
  j["a_bits"] = input_bits;
  // The per-group sums P_(t,r,g) run over G columns (docs/integer-semantics.md "## Per-group DI-MatMul").
  j["group_size"] = weight_group_size(w);
  j["per_group"] = weight_per_group(w);
  j["accumulator"] = accumulator_name(accumulator_kind(weight_group_size(w), input_bits, w.bits));
  j["scale_m"] = {r.m_min, r.m_max};
  j["scale_k"] = {r.k_min, r.k_max};
  return j;
}

Json clip_summary(Dyadic c) {
  Json j;
  if (c.m == 0) {
    j["clipping"] = false;
    return j;
  }
  j["clipping"] = true;
  j["m"] = c.m;
  j["k"] = c.k;
  j["value"] = dyadic_value(c);
  return j;
}

// Bytes per element of a Hugging Face torch_dtype; 0 when unknown.
int bytes_per_element(const std::string& dtype) {
  if (dtype == "float32") return 4;
  if (dtype == "float16" || dtype == "bfloat16") return 2;
  if (dtype == "float64") return 8;
  return 0;
}

// Parameter count of LlamaForCausalLM from its config (what its safetensors hold).
int64_t parameter_count(const formats::LlamaConfig& c) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, d = c.head_dim();
  const int64_t q = H * c.num_attention_heads * d, kv = H * c.num_key_value_heads * d;
  const int64_t per_layer = 2 * q + 2 * kv + 3 * H * I + 2 * H;  // q, o; k, v; gate, up, down; two norms
  return c.vocab_size * H * (c.tie_word_embeddings ? 1 : 2) + c.num_hidden_layers * per_layer + H;
}

// Which size group a dataset path (relative to the root) belongs to.
std::string tensor_group(const std::string& path) {
  auto starts = [&](const char* prefix) { return path.rfind(prefix, 0) == 0; };
  auto ends = [&](const char* suffix) {
    const std::string s(suffix);
    return path.size() >= s.size() && path.compare(path.size() - s.size(), s.size(), s) == 0;
  };
  if (starts("model/embedding")) return "embedding";
  if (starts("model/lm_head")) return "lm_head";
  if (starts("model/rope")) return "rope tables";
  if (starts("model/layers/")) {
    if (ends("/codes")) return "block linear codes";
    if (ends("/zero_points") || ends("/scale_m") || ends("/scale_k")) return "block linear zero points + scales";
    return "norms + SwiGLU vectors";
  }
  if (starts("model/final_norm")) return "norms + SwiGLU vectors";
  if (starts("tokenizer")) return "tokenizer";
  if (starts("golden")) return "golden vectors";
  if (starts("meta")) return "metadata";
  return "other";
}

struct GroupSizes {
  std::map<std::string, uint64_t> bytes;
  std::string error;
};

herr_t add_dataset_size(hid_t root, const char* name, const H5O_info_t* info, void* data) {
  auto* sizes = static_cast<GroupSizes*>(data);
  if (info->type != H5O_TYPE_DATASET) return 0;
  const hid_t dataset = H5Dopen2(root, name, H5P_DEFAULT);
  if (dataset < 0) {
    sizes->error = std::string(name) + ": cannot be opened";
    return -1;
  }
  sizes->bytes[tensor_group(name)] += H5Dget_storage_size(dataset);
  H5Dclose(dataset);
  return 0;
}

// Stored bytes of every dataset, summed per tensor group (HDF5's own structures are the rest of the file).
std::map<std::string, uint64_t> bytes_per_group_unguarded(const fs::path& file) {
  h5::Handle h = h5::checked(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, file.string() + ": H5Fopen");
  GroupSizes sizes;
  if (H5Ovisit2(h, H5_INDEX_NAME, H5_ITER_INC, add_dataset_size, &sizes, H5O_INFO_BASIC) < 0)
    throw Error(file.string() + ": cannot list the datasets" + (sizes.error.empty() ? "" : " (" + sizes.error + ")"));
  return sizes.bytes;
}

std::map<std::string, uint64_t> bytes_per_group(const fs::path& file) {
  h5::silence_errors();
  // This walk is not one of read_illm's: rehearse it in a child first (formats/hdf5_probe.h).
  formats::rehearse_in_child(file, [&] { bytes_per_group_unguarded(file); });
  return bytes_per_group_unguarded(file);
}

Json inspect_file(const fs::path& file) {
  const formats::LoadedIllm loaded = formats::read_illm(file);
  const QuantizedModel& m = loaded.model;
  const formats::IllmMetadata& meta = loaded.meta;
  const IntegerSettings& st = m.settings;
  Json j;
  j["file"] = file.string();
  j["format_version"] = meta.format_version;
  j["tool_version"] = meta.tool_version;
  j["source"] = {{"name", meta.source_name}, {"sha256", meta.source_sha256}};
  const ModelShape& s = m.shape;
  j["shape"] = {{"hidden", s.hidden},         {"intermediate", s.intermediate}, {"n_layers", s.n_layers},
                {"n_heads", s.n_heads},       {"n_kv_heads", s.n_kv_heads},     {"head_dim", s.head_dim},
                {"vocab", s.vocab},           {"max_positions", s.max_positions}, {"bos_id", s.bos_id},
                {"eos_id", s.eos_id}};
  j["integer_settings"] = {{"w_bits", st.w_bits},
                           {"a_bits", st.a_bits},
                           {"qkv_bits", qkv_code_bits(st)},
                           {"mantissa_bits", st.mantissa_bits},
                           {"softmax_in_bits", st.softmax_in_bits},
                           {"prob_bits", st.prob_bits},
                           {"sigmoid_bits", st.sigmoid_bits},
                           {"swiglu_in_bits", st.swiglu_in_bits},
                           {"norm_frac_bits", st.norm_frac_bits},
                           {"head_bits", st.head_bits},
                           {"head_in_bits", head_input_bits(st)},
                           {"embed_bits", st.embed_bits},
                           {"exp_quadratic", st.exp_quadratic},
                           {"sigmoid_stable", st.sigmoid_stable},
                           {"paper_conformance", st.paper_conformance}};
  j["norm_eps"] = {{"m", m.norm_eps.m}, {"k", m.norm_eps.k}, {"value", dyadic_value(m.norm_eps)}};
  // Online Walsh–Hadamard transforms: on/off and, when on, the construction and gain g of the matrix.
  const auto hadamard = [](bool on, int32_t n) {
    if (!on) return Json{{"enabled", false}};
    const HadamardPlan plan = plan_hadamard(n);
    return Json{{"enabled", true}, {"size", n}, {"plan", plan.describe()}, {"gain", plan.gain2}};
  };
  j["online_hadamard"] = {{"down_proj", hadamard(m.hadamard_down, s.intermediate)},
                          {"qk", hadamard(m.hadamard_qk, s.head_dim)}};
  j["act_group_size"] = m.act_group_size;  // 0 = per-token activations
  // The linear-input widths G does not divide end in a short group: {"intermediate": 4} for stories260K at G 8.
  Json short_groups = Json::object();
  if (m.act_group_size > 0)
    for (const auto& [name, width] : {std::pair<const char*, int32_t>{"hidden", s.hidden},
                                      {"heads_x_head_dim", s.n_heads * s.head_dim}, {"intermediate", s.intermediate}})
      if (width % m.act_group_size != 0) short_groups[name] = width % m.act_group_size;
  j["act_group_short_groups"] = short_groups;
  j["recipe"] = meta.recipe_json.empty() ? Json() : Json::parse(meta.recipe_json, nullptr, false);

  Json layers = Json::array();
  bool any_act_clip = false, any_trip = false;
  for (size_t l = 0; l < m.layers.size(); ++l) {
    const QuantizedLayer& L = m.layers[l];
    Json jl;
    jl["index"] = l;
    Json linears;
    const std::pair<const char*, const QuantizedLinear*> named[] = {
        {"q_proj", &L.q_proj}, {"k_proj", &L.k_proj},       {"v_proj", &L.v_proj},      {"o_proj", &L.o_proj},
        {"gate_proj", &L.gate_proj}, {"up_proj", &L.up_proj}, {"down_proj", &L.down_proj}};
    for (const auto& [name, linear] : named) linears[name] = linear_summary(*linear, st.a_bits);
    jl["linears"] = linears;
    jl["softmax_clip"] = clip_summary(L.softmax_clip);
    Json act_clip;  // the site requantizations' clip ratios (docs/integer-semantics.md "## Clipped DI_REQUANT")
    for (int site = 0; site < kNumClipSites; ++site)
      act_clip[act_clip_site_name(site)] = clip_summary(Dyadic{L.act_clip[site].m, L.act_clip[site].k});
    jl["act_clip"] = act_clip;
    any_act_clip = any_act_clip || L.has_act_clip();
    if (L.has_trip()) {  // TRIP channel factors (docs/integer-semantics.md "## TRIP channel factors")
      Json sites;
      for (int site = 0; site < kNumClipSites; ++site) {
        if (L.trip_alpha[site].empty()) continue;
        std::vector<int64_t> histogram(static_cast<size_t>(L.trip_max_shift) + 1, 0);
        for (const int8_t a : L.trip_alpha[site]) ++histogram[static_cast<size_t>(a)];
        sites[act_clip_site_name(site)] = {{"extra_bits", trip_extra_bits(L.trip(site))},
                                           {"alpha_histogram", histogram}};
      }
      jl["trip"] = {{"max_shift", L.trip_max_shift}, {"sites", sites}};
      any_trip = true;
    }
    jl["norm_exponents"] = {{"attn_norm", L.attn_norm.exponent},
                            {"ffn_norm", L.ffn_norm.exponent},
                            {"swiglu_inv_alpha", L.swiglu_inv_alpha.exponent}};
    layers.push_back(jl);
  }
  j["layers"] = layers;
  j["act_clip"] = any_act_clip;
  j["trip"] = any_trip;
  const ScaleRange embed = scale_range(m.embed_scales);
  j["embedding"] = {{"bits", st.embed_bits}, {"scale_m", {embed.m_min, embed.m_max}}, {"scale_k", {embed.k_min, embed.k_max}}};
  j["final_norm_exponent"] = m.final_norm.exponent;
  j["lm_head"] = linear_summary(m.lm_head, head_input_bits(st));
  j["golden_vectors"] = meta.golden.size();
  j["tokenizer_bytes"] = meta.tokenizer_model.size();

  // Sizes: the file per tensor group, and the source checkpoint from its config (parameters × dtype width).
  Json sizes;
  const uint64_t file_bytes = fs::file_size(file);
  sizes["file_bytes"] = file_bytes;
  const formats::LlamaConfig config = formats::parse_llama_config(meta.config_json, file.string() + ": /meta/config_json");
  const int64_t params = parameter_count(config);
  const int element_bytes = bytes_per_element(config.torch_dtype);
  sizes["source_parameters"] = params;
  sizes["source_dtype"] = config.torch_dtype.empty() ? "unknown" : config.torch_dtype;
  if (element_bytes > 0) {
    sizes["source_bytes"] = params * element_bytes;
    sizes["compression"] = static_cast<double>(params * element_bytes) / static_cast<double>(file_bytes);
  } else {
    sizes["source_bytes"] = nullptr;
  }
  sizes["source_bytes_method"] =
      "parameter count of LlamaForCausalLM from the stored config.json (embedding, per layer q/k/v/o, gate/up/down "
      "and two norms, final norm, lm_head unless tied) × bytes per element of torch_dtype; safetensors header "
      "excluded";
  Json groups;
  uint64_t dataset_bytes = 0;
  for (const auto& [group, bytes] : bytes_per_group(file)) {
    groups[group] = bytes;
    dataset_bytes += bytes;
  }
  groups["header + HDF5 structure"] = file_bytes - std::min(file_bytes, dataset_bytes);
  sizes["groups"] = groups;
  j["sizes"] = sizes;
  return j;
}

std::string range_text(const Json& pair) {
  return fmt::format("[{}, {}]", pair[0].get<int64_t>(), pair[1].get<int64_t>());
}

std::string yes_no(const Json& flag) { return flag.get<bool>() ? "yes" : "no"; }

void print_linear_row(const std::string& layer, const std::string& name, const Json& lin) {
  const std::string group = lin["per_group"].get<bool>() ? "G" + std::to_string(lin["group_size"].get<int>()) : "row";
  std::printf("  %-5s %-9s %5d x %-5d  W%-2d A%-2d %-5s %-6s %-22s %s\n", layer.c_str(), name.c_str(),
              lin["out_features"].get<int>(), lin["in_features"].get<int>(), lin["w_bits"].get<int>(),
              lin["a_bits"].get<int>(), group.c_str(), lin["accumulator"].get<std::string>().c_str(),
              range_text(lin["scale_m"]).c_str(), range_text(lin["scale_k"]).c_str());
}

void print_human(const Json& j) {
  const Json& s = j["shape"];
  const Json& st = j["integer_settings"];
  std::printf("file      %s\n", j["file"].get<std::string>().c_str());
  std::printf("format    version %lld, written by illm %s\n", static_cast<long long>(j["format_version"].get<int64_t>()),
              j["tool_version"].get<std::string>().c_str());
  std::printf("source    %s  sha256 %s\n", j["source"]["name"].get<std::string>().c_str(),
              j["source"]["sha256"].get<std::string>().c_str());
  std::printf("shape     %d layers, hidden %d, intermediate %d, heads %d (kv %d) x %d, vocab %d, max positions %d, "
              "bos %d, eos %d\n",
              s["n_layers"].get<int>(), s["hidden"].get<int>(), s["intermediate"].get<int>(), s["n_heads"].get<int>(),
              s["n_kv_heads"].get<int>(), s["head_dim"].get<int>(), s["vocab"].get<int>(),
              s["max_positions"].get<int>(), s["bos_id"].get<int>(), s["eos_id"].get<int>());
  const int qkv = st["qkv_bits"].get<int>();
  const std::string qkv_text = qkv == st["a_bits"].get<int>() ? "" : " (Q/K/V " + std::to_string(qkv) + ")";
  std::printf("integer   W%d A%d%s, mantissa %d bits, softmax input %d, probabilities %d, sigmoid %d, SwiGLU input %d, "
              "norm fraction %d, head %d, embedding %d bits\n",
              st["w_bits"].get<int>(), st["a_bits"].get<int>(), qkv_text.c_str(), st["mantissa_bits"].get<int>(),
              st["softmax_in_bits"].get<int>(), st["prob_bits"].get<int>(), st["sigmoid_bits"].get<int>(),
              st["swiglu_in_bits"].get<int>(), st["norm_frac_bits"].get<int>(), st["head_bits"].get<int>(),
              st["embed_bits"].get<int>());
  std::printf("          DI-Exp quadratic: %s, stable sigmoid: %s, paper conformance: %s; RMSNorm eps %lld/2^%d = %g\n",
              yes_no(st["exp_quadratic"]).c_str(), yes_no(st["sigmoid_stable"]).c_str(),
              yes_no(st["paper_conformance"]).c_str(), static_cast<long long>(j["norm_eps"]["m"].get<int64_t>()),
              j["norm_eps"]["k"].get<int>(), j["norm_eps"]["value"].get<double>());
  const auto hadamard_text = [](const Json& h) {
    return h["enabled"].get<bool>() ? fmt::format("{} (g = {})", h["plan"].get<std::string>(), h["gain"].get<int64_t>())
                                    : std::string("off");
  };
  std::printf("hadamard  down_proj input: %s; q/k heads after RoPE: %s\n",
              hadamard_text(j["online_hadamard"]["down_proj"]).c_str(), hadamard_text(j["online_hadamard"]["qk"]).c_str());
  const int act_group = j["act_group_size"].get<int>();
  std::string short_text;
  for (const auto& [name, width] : j["act_group_short_groups"].items())
    short_text += fmt::format("; {} ends in a group of {}", name, width.get<int>());
  std::printf("groups    linear-input activations: %s%s\n",
              act_group > 0 ? ("one scale per token and " + std::to_string(act_group) + " channels").c_str()
                            : "one scale per token",
              short_text.c_str());
  std::printf("recipe    %s\n", j["recipe"].dump().c_str());

  std::printf("\nlinears (accumulator: int32 when the worst-case |sum| fits, else int64; scale = m / 2^k per row, or per\n"
              "group of G columns when the linear is quantized per group)\n");
  std::printf("  %-5s %-9s %13s  %-7s %-5s %-6s %-22s %s\n", "layer", "linear", "out x in", "bits", "scale", "acc",
              "scale m [min, max]",
              "scale k [min, max]");
  for (const Json& layer : j["layers"]) {
    const std::string index = fmt::format("{:02d}", layer["index"].get<int>());
    for (auto it = layer["linears"].begin(); it != layer["linears"].end(); ++it) print_linear_row(index, it.key(), *it);
  }
  print_linear_row("head", "lm_head", j["lm_head"]);

  std::printf("\nper layer: softmax clip c and norm exponents (gamma = mantissa / 2^exponent)\n");
  std::printf("  %-5s %-28s %9s %9s %16s\n", "layer", "clip c = m/2^k", "attn_norm", "ffn_norm", "swiglu_inv_alpha");
  for (const Json& layer : j["layers"]) {
    const Json& c = layer["softmax_clip"];
    const std::string clip = c["clipping"].get<bool>()
                                 ? fmt::format("{}/2^{} = {:g}", c["m"].get<int64_t>(), c["k"].get<int>(),
                                               c["value"].get<double>())
                                 : std::string("none");
    const Json& e = layer["norm_exponents"];
    std::printf("  %-5s %-28s %9d %9d %16d\n", fmt::format("{:02d}", layer["index"].get<int>()).c_str(), clip.c_str(),
                e["attn_norm"].get<int>(), e["ffn_norm"].get<int>(), e["swiglu_inv_alpha"].get<int>());
  }
  if (j["act_clip"].get<bool>()) {
    std::printf("\nper layer: activation clip ratios r = m/2^k of the site requantizations (- = off)\n  %-5s", "layer");
    for (int site = 0; site < kNumClipSites; ++site) std::printf(" %9s", act_clip_site_name(site));
    std::printf("\n");
    for (const Json& layer : j["layers"]) {
      std::printf("  %-5s", fmt::format("{:02d}", layer["index"].get<int>()).c_str());
      for (int site = 0; site < kNumClipSites; ++site) {
        const Json& c = layer["act_clip"][act_clip_site_name(site)];
        const std::string text = c["clipping"].get<bool>() ? fmt::format("{:.4f}", c["value"].get<double>()) : "-";
        std::printf(" %9s", text.c_str());
      }
      std::printf("\n");
    }
  }
  if (j["trip"].get<bool>()) {
    std::printf("\nper layer: TRIP channel factors, K and per site the channel count with alpha = 0..K "
                "(+E = extra code bits of the consumer)\n");
    for (const Json& layer : j["layers"]) {
      if (!layer.contains("trip")) continue;
      std::printf("  %-5s K=%d", fmt::format("{:02d}", layer["index"].get<int>()).c_str(),
                  layer["trip"]["max_shift"].get<int>());
      for (const auto& [site, t] : layer["trip"]["sites"].items()) {
        std::string counts;
        for (const Json& c : t["alpha_histogram"]) {
          if (!counts.empty()) counts += '/';
          counts += std::to_string(c.get<int64_t>());
        }
        std::printf("  %s %s +%d", site.c_str(), counts.c_str(), t["extra_bits"].get<int>());
      }
      std::printf("\n");
    }
  }
  const std::string head_groups = j["lm_head"]["per_group"].get<bool>()
                                      ? ", groups of " + std::to_string(j["lm_head"]["group_size"].get<int>())
                                      : std::string();
  std::printf("  embedding %d-bit codes, scale m %s, k %s; final_norm exponent %d; lm_head W%d A%d%s\n",
              j["embedding"]["bits"].get<int>(), range_text(j["embedding"]["scale_m"]).c_str(),
              range_text(j["embedding"]["scale_k"]).c_str(), j["final_norm_exponent"].get<int>(),
              j["lm_head"]["w_bits"].get<int>(), j["lm_head"]["a_bits"].get<int>(), head_groups.c_str());
  std::printf("  %zu golden vectors, tokenizer %zu bytes\n", j["golden_vectors"].get<size_t>(),
              j["tokenizer_bytes"].get<size_t>());

  const Json& sz = j["sizes"];
  const uint64_t file_bytes = sz["file_bytes"].get<uint64_t>();
  std::printf("\nsizes\n  %-36s %12llu bytes\n", "model file", static_cast<unsigned long long>(file_bytes));
  if (!sz["source_bytes"].is_null()) {
    std::printf("  %-36s %12llu bytes  (%lld parameters x %d bytes %s; %.2fx the model file)\n", "source checkpoint",
                static_cast<unsigned long long>(sz["source_bytes"].get<uint64_t>()),
                static_cast<long long>(sz["source_parameters"].get<int64_t>()),
                bytes_per_element(sz["source_dtype"].get<std::string>()), sz["source_dtype"].get<std::string>().c_str(),
                sz["compression"].get<double>());
  } else {
    std::printf("  %-36s unknown (%lld parameters, torch_dtype %s)\n", "source checkpoint",
                static_cast<long long>(sz["source_parameters"].get<int64_t>()),
                sz["source_dtype"].get<std::string>().c_str());
  }
  for (auto it = sz["groups"].begin(); it != sz["groups"].end(); ++it)
    std::printf("    %-34s %12llu bytes  %5.1f %%\n", it.key().c_str(), static_cast<unsigned long long>(it->get<uint64_t>()),
                100.0 * static_cast<double>(it->get<uint64_t>()) / static_cast<double>(file_bytes));
}

// Which kernel path would run the model here, and which paths this CPU offers.
Json kernel_paths() {
  Json paths = Json::object();
  for (const KernelPath path : all_kernel_paths())
    paths[kernel_path_name(path)] = cpu_supports(path) ? "available" : "not on this CPU: needs " + missing_cpu_features(path);
  Json j;
  try {
    j["default"] = optimized_kernels().name;
  } catch (const Error& e) {
    j["default"] = std::string("error: ") + e.what();
  }
  j["paths"] = paths;
  return j;
}

int run_inspect(const InspectOptions& opt) {
  Json j = inspect_file(opt.file);
  j["kernels"] = kernel_paths();
  if (opt.json)
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  else {
    print_human(j);
    std::printf("%s\n", kernel_paths_summary().c_str());
  }
  return 0;
}

}  // namespace

CommandRun add_inspect_command(CLI::App& sub) {
  auto opt = std::make_shared<InspectOptions>();
  sub.description(
      "Summarize an .illm model file: format and tool versions, source checkpoint, shape, integer settings, recipe, "
      "per-layer bit widths, accumulators, scale ranges, softmax clip constants and norm exponents, and sizes (bytes "
      "per tensor group, total vs the source checkpoint).");
  sub.add_option("file", opt->file, "Model file (.illm)")->required();
  sub.add_flag("--json", opt->json, "Print the summary as one JSON object");
  return [opt] { return run_inspect(*opt); };
}

}  // namespace illm::converter
