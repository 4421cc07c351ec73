// `illm verify`: the file's integrity (header SHA-256, every tensor's checksum), then a bit-exact replay of the
// golden vectors stored at quantize time: each through the executor's prefill, and the first one also token by
// token through the decode path. Exit 0 only when every integer logit and every scale matches.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "converter/commands.h"
#include "converter/kernel_option.h"
#include "formats/illm_file.h"
#include "kernels/error.h"
#include "kernels/executor.h"

namespace illm::converter {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

struct VerifyOptions {
  std::string file;
  std::string kernels;  // --kernels; empty: $ILLM_KERNELS or the fastest path
  bool json = false;
};

// The first difference between recorded and replayed outputs, described for a person; nullopt when identical.
std::optional<std::string> first_difference(const formats::GoldenVector& golden, const IntegerLogits& replay) {
  const size_t tokens = golden.input_ids.size();
  if (golden.logit_scales.size() != tokens || replay.scales.size() != tokens)
    return fmt::format("{} scales recorded, {} replayed, for {} tokens", golden.logit_scales.size(),
                       replay.scales.size(), tokens);
  if (golden.logits.size() != replay.values.size())
    return fmt::format("{} logits recorded, {} replayed", golden.logits.size(), replay.values.size());
  const size_t vocab = tokens == 0 ? 0 : golden.logits.size() / tokens;
  for (size_t t = 0; t < tokens; ++t) {
    const Dyadic a = golden.logit_scales[t], b = replay.scales[t];
    if (!(a == b))
      return fmt::format("scale at position {}: file {}/2^{}, executor {}/2^{}", t, a.m, a.k, b.m, b.k);
    for (size_t v = 0; v < vocab; ++v) {
      const size_t i = t * vocab + v;
      if (golden.logits[i] != replay.values[i])
        return fmt::format("logit at position {}, vocab index {}: file {}, executor {}", t, v, golden.logits[i],
                           replay.values[i]);
    }
  }
  return std::nullopt;
}

// The first golden sequence fed one token at a time; rows concatenated as one IntegerLogits.
IntegerLogits replay_token_by_token(Executor& executor, const std::vector<int32_t>& ids) {
  executor.reset();
  IntegerLogits all;
  for (const int32_t id : ids) {
    IntegerLogits step = executor.forward(std::span<const int32_t>(&id, 1));
    all.vocab = step.vocab;
    all.tokens += step.tokens;
    all.values.insert(all.values.end(), step.values.begin(), step.values.end());
    all.scales.insert(all.scales.end(), step.scales.begin(), step.scales.end());
  }
  return all;
}

int run_verify(const VerifyOptions& opt) {
  const KernelSet& kernels = resolve_kernels(opt.kernels);  // an unavailable path fails before any work
  const fs::path file = opt.file;
  formats::verify_illm_integrity(file);  // throws naming the file and, for a tensor, its path
  const formats::LoadedIllm loaded = formats::read_illm(file);
  const auto& golden = loaded.meta.golden;
  if (golden.empty()) throw Error(file.string() + ": holds no golden vectors to replay");

  Executor executor(loaded.model, kernels);
  Json results = Json::array();
  std::vector<std::string> failures;
  auto record = [&](size_t index, const char* path, const formats::GoldenVector& g, const IntegerLogits& replay) {
    const auto difference = first_difference(g, replay);
    Json r;
    r["index"] = index;
    r["path"] = path;
    r["tokens"] = g.input_ids.size();
    r["ok"] = !difference.has_value();
    if (difference) {
      r["mismatch"] = *difference;
      failures.push_back(fmt::format("golden vector {:02d} ({}): {}", index, path, *difference));
    }
    if (!opt.json)
      std::printf("golden %02zu  %-7s %4zu tokens  %s%s\n", index, path, g.input_ids.size(),
                  difference ? "MISMATCH  " : "OK", difference ? difference->c_str() : "");
    results.push_back(r);
  };
  for (size_t i = 0; i < golden.size(); ++i) {
    executor.reset();
    record(i, "prefill", golden[i], executor.forward(golden[i].input_ids));
  }
  record(0, "decode", golden[0], replay_token_by_token(executor, golden[0].input_ids));

  if (opt.json) {
    Json j;
    j["file"] = file.string();
    j["integrity"] = "ok";
    j["format_version"] = loaded.meta.format_version;
    j["kernels"] = kernels.name;
    j["golden"] = results;
    j["ok"] = failures.empty();
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else if (failures.empty()) {
    std::printf("%s: integrity OK (header SHA-256 and every tensor checksum), %zu golden vectors replay bit for bit "
                "(prefill; the first also token by token)\n",
                file.c_str(), golden.size());
  }
  std::fflush(stdout);
  if (!failures.empty()) {
    const std::string more = failures.size() > 1 ? fmt::format(" (and {} more)", failures.size() - 1) : "";
    throw Error(file.string() + ": " + failures.front() + more);
  }
  return 0;
}

}  // namespace

CommandRun add_verify_command(CLI::App& sub) {
  auto opt = std::make_shared<VerifyOptions>();
  sub.description(
      "Check an .illm model file: header SHA-256 and every tensor checksum, then replay the golden vectors recorded "
      "at quantize time with the integer executor (prefill, and the first one token by token) and require every "
      "integer logit and scale to match bit for bit. Exit 0 only when everything matches.");
  sub.add_option("file", opt->file, "Model file (.illm)")->required();
  add_kernels_option(sub, opt->kernels);
  sub.add_flag("--json", opt->json, "Print the results as one JSON object");
  return [opt] { return run_verify(*opt); };
}

}  // namespace illm::converter
