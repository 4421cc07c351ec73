// The C99 runtime cross-compiled for aarch64, riscv64 and 32-bit ARM (armhf: int64 arithmetic on a 32-bit machine)
// and run under qemu-user (issue #10): for both shared test models at W4A4, W4A8 and W8A8 the greedy ids equal
// `illm generate --json`'s (computed in-process, see Golden) and the final-position logits (int64 values and dyadic scale) equal the C++ executor's.
// tinybible's prompt is text, so the runtime's tokenizer runs on each target too. The same for a synthetic model with
// both LM-head options (16-bit head input, per-group head weights), for stories260K with per-group activations of
// 8 (a short last group), and for 8-bit Q/K/V on W4A4 and 4-bit on W8A8 (qkv_bits). Programs: runtime/CMakeLists.txt.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "formats/illm_file.h"
#include "formats/model_bin.h"
#include "formats/tokenizer.h"
#include "tests/runtime/runtime_synthetic_model.h"
#include "tests/runtime/runtime_test_support.h"

namespace illm::rt_testing {
namespace {

namespace fs = std::filesystem;

constexpr int kMaxTokens = 8;

struct Target {
  const char* name;
  const char* emulator;
};
const Target kTargets[] = {{"aarch64", "qemu-aarch64"}, {"riscv64", "qemu-riscv64"}, {"armhf", "qemu-arm"}};

std::string prompt_option(const std::string& model) {
  return model == "tinybible" ? "--prompt 'And it came to pass'" : "--prompt-ids 1,13,7,300";
}

fs::path scratch() { return fs::temp_directory_path() / ("illm_runtime_cross_" + std::to_string(::getpid())); }

// What `illm generate --json` prints for the same options, computed in-process with the functions it calls (the
// C++ tokenizer, converter::generate_tokens on the executor) to spare a LibTorch start per test; the host tests
// (runtime_export_cli_test) compare with the command itself.
struct Golden {
  std::vector<int32_t> prompt_ids;
  ExecutorReference reference;
  std::string text;
};

Golden golden(const std::string& model, const std::string& bits) {
  const formats::LoadedIllm loaded = formats::read_illm(illm_path(model, bits));
  Golden g;
  if (model == "tinybible") {
    const formats::Tokenizer tokenizer = formats::Tokenizer::from_bytes(loaded.meta.tokenizer_model, model);
    g.prompt_ids = tokenizer.encode("And it came to pass", true);
    g.reference = executor_greedy(loaded.model, g.prompt_ids, kMaxTokens);
    g.text = tokenizer.decode(g.reference.ids);
  } else {
    g.prompt_ids = {1, 13, 7, 300};
    g.reference = executor_greedy(loaded.model, g.prompt_ids, kMaxTokens);
  }
  return g;
}

class CrossTargets : public ::testing::TestWithParam<std::tuple<Target, const char*, const char*>> {};

TEST_P(CrossTargets, IdsAndFinalLogitsEqualTheExecutors) {
  const auto [target, model, bits] = GetParam();
  const fs::path program = kBinaryDir / "runtime" / "cross" / (std::string("illm_rt-") + target.name);
  ASSERT_TRUE(fs::exists(program)) << program << " was not built: install the cross compilers (scripts/setup.sh)";
  const CommandResult r = run_command(std::string(target.emulator) + " '" + program.string() + "' '" +
                                          model_bin_path(model, bits).string() + "' --json --logits --max-tokens " +
                                          std::to_string(kMaxTokens) + " " + prompt_option(model),
                                      scratch());
  ASSERT_EQ(r.exit_code, 0) << target.emulator << ": " << r.err;
  const auto ours = nlohmann::json::parse(r.out);
  const Golden g = golden(model, bits);
  EXPECT_EQ(ours["prompt_ids"].get<std::vector<int32_t>>(), g.prompt_ids);
  EXPECT_EQ(ours["ids"].get<std::vector<int32_t>>(), g.reference.ids);
  EXPECT_EQ(ours["stopped_at_eos"].get<bool>(), g.reference.stopped_at_eos);
  if (!g.text.empty()) {
    EXPECT_EQ(ours["text"].get<std::string>(), g.text);
  }
  EXPECT_EQ(ours["logits"]["scale_m"].get<int64_t>(), g.reference.last_scale.m);
  EXPECT_EQ(ours["logits"]["scale_k"].get<int32_t>(), g.reference.last_scale.k);
  EXPECT_EQ(ours["logits"]["values"].get<std::vector<int64_t>>(), g.reference.last_logits);
}

INSTANTIATE_TEST_SUITE_P(QemuUser, CrossTargets,
                         ::testing::Combine(::testing::ValuesIn(kTargets), ::testing::ValuesIn(kModels),
                                            ::testing::ValuesIn(kBits)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param).name) + "_" + std::get<1>(info.param) + "_" +
                                  std::get<2>(info.param);
                         });

// A model built in memory, exported into a scratch directory and run on `target`: the greedy ids and the final
// logits equal the executor's.
void expect_scratch_model_equals_executor(const Target& target, const QuantizedModel& model, const std::string& label,
                                          const std::vector<int32_t>& prompt) {
  const fs::path program = kBinaryDir / "runtime" / "cross" / (std::string("illm_rt-") + target.name);
  ASSERT_TRUE(fs::exists(program)) << program << " was not built: install the cross compilers (scripts/setup.sh)";
  const fs::path work = scratch() / (label + "_" + target.name);
  fs::create_directories(work);
  const std::vector<uint8_t> bytes = formats::build_model_bin(model, "", {}).bytes;
  std::ofstream(work / "model.bin", std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                             static_cast<std::streamsize>(bytes.size()));
  std::string ids;
  for (const int32_t id : prompt) ids += (ids.empty() ? "" : ",") + std::to_string(id);
  const CommandResult r = run_command(std::string(target.emulator) + " '" + program.string() + "' '" +
                                          (work / "model.bin").string() + "' --json --logits --max-tokens " +
                                          std::to_string(kMaxTokens) + " --prompt-ids " + ids,
                                      work);
  ASSERT_EQ(r.exit_code, 0) << target.emulator << ": " << r.err;
  const auto ours = nlohmann::json::parse(r.out);
  const ExecutorReference ref = executor_greedy(model, prompt, kMaxTokens);
  EXPECT_EQ(ours["ids"].get<std::vector<int32_t>>(), ref.ids);
  EXPECT_EQ(ours["stopped_at_eos"].get<bool>(), ref.stopped_at_eos);
  EXPECT_EQ(ours["logits"]["scale_m"].get<int64_t>(), ref.last_scale.m);
  EXPECT_EQ(ours["logits"]["scale_k"].get<int32_t>(), ref.last_scale.k);
  EXPECT_EQ(ours["logits"]["values"].get<std::vector<int64_t>>(), ref.last_logits);
  fs::remove_all(work);
}

// The LM-head options on each target (the 16-bit head codes' int64 products on a 32-bit machine too): the synthetic
// W4A4 model with head_in_bits 16 and lm_head groups of 32.
class CrossTargetsLmHead : public ::testing::TestWithParam<Target> {};

TEST_P(CrossTargetsLmHead, IdsAndFinalLogitsEqualTheExecutors) {
  expect_scratch_model_equals_executor(GetParam(), synthetic_model(lm_head_options_shape()), "lm_head", {1, 5, 9});
}

INSTANTIATE_TEST_SUITE_P(QemuUser, CrossTargetsLmHead, ::testing::ValuesIn(kTargets),
                         [](const auto& info) { return std::string(info.param.name); });

// Per-group activations with G 8 and short groups on each target: stories260K W4A4 made an act-group model in memory
// (intermediate 172 = 21 groups of 8 and one of 4) with the online down_proj Hadamard.
class CrossTargetsActGroups : public ::testing::TestWithParam<Target> {};

TEST_P(CrossTargetsActGroups, IdsAndFinalLogitsEqualTheExecutors) {
  QuantizedModel model = formats::read_illm(illm_path("stories260K", "w4a4")).model;
  model.act_group_size = 8;
  model.hadamard_down = true;
  expect_scratch_model_equals_executor(GetParam(), model, "act_groups", {1, 13, 7, 300});
}

INSTANTIATE_TEST_SUITE_P(QemuUser, CrossTargetsActGroups, ::testing::ValuesIn(kTargets),
                         [](const auto& info) { return std::string(info.param.name); });

// 8-bit Q/K/V on a W4A4 model (required feature 64) on each target: stories260K W4A4 with qkv_bits 8, act groups of
// 8 and both online Hadamards (the q/k codes after the transform), and tinybible W8A8 with 4-bit Q/K/V.
class CrossTargetsQkvBits : public ::testing::TestWithParam<Target> {};

TEST_P(CrossTargetsQkvBits, IdsAndFinalLogitsEqualTheExecutors) {
  QuantizedModel kv8 = formats::read_illm(illm_path("stories260K", "w4a4")).model;
  kv8.settings.qkv_bits = 8;
  kv8.act_group_size = 8;
  kv8.hadamard_down = kv8.hadamard_qk = true;
  expect_scratch_model_equals_executor(GetParam(), kv8, "qkv8", {1, 13, 7, 300});
  QuantizedModel kv4 = formats::read_illm(illm_path("tinybible", "w8a8")).model;
  kv4.settings.qkv_bits = 4;
  expect_scratch_model_equals_executor(GetParam(), kv4, "qkv4", {1, 13, 7, 300});
}

INSTANTIATE_TEST_SUITE_P(QemuUser, CrossTargetsQkvBits, ::testing::ValuesIn(kTargets),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace illm::rt_testing
