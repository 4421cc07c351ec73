// The runtime's Cortex-M4 soft-float build on an emulated board (issue #10, stretch): the MPS2-AN386 program
// (runtime/boards/mps2_an386.c) with model.bin linked into flash runs under qemu-system-arm, greedy from BOS with a
// 24-position context, and prints over semihosting the ids and the last logits row, which must equal the C++
// executor's. stories260K at the three widths and tinybible at W4A4; a synthetic model with both LM-head options
// (16-bit head input, per-group head weights); and stories260K W4A4 with 8-bit Q/K/V.
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "formats/illm_file.h"
#include "formats/model_bin.h"
#include "tests/runtime/runtime_synthetic_model.h"
#include "tests/runtime/runtime_test_support.h"

namespace illm::rt_testing {
namespace {

namespace fs = std::filesystem;

constexpr int kBoardMaxTokens = 12;  // ILLM_BOARD_MAX_TOKENS of the board program

std::vector<int64_t> numbers_after(const std::string& output, const std::string& label) {
  std::istringstream lines(output);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(label + " ", 0) != 0 && line != label) continue;
    std::istringstream values(line.substr(label.size()));
    std::vector<int64_t> v;
    int64_t x;
    while (values >> x) v.push_back(x);
    return v;
  }
  ADD_FAILURE() << "no line \"" << label << "\" in the board's output:\n" << output.substr(0, 2000);
  return {};
}

// Runs `model_bin` on the board and compares its ids and last logits with the executor's greedy run of `m` from BOS.
void expect_board_equals_executor(const fs::path& model_bin, const QuantizedModel& m, const std::string& name) {
  const fs::path cross = kBinaryDir / "runtime" / "cross";
  ASSERT_TRUE(fs::exists(cross / "cortex-m4-board_mps2.o")) << "arm-none-eabi-gcc missing (scripts/setup.sh)";
  const fs::path work = fs::temp_directory_path() / ("illm_mps2_" + name + "_" + std::to_string(::getpid()));
  const CommandResult r =
      run_command("'" + (kSourceDir / "tests/runtime/run_mps2.sh").string() + "' '" + model_bin.string() + "' '" +
                      work.string() + "' '" + cross.string() + "' '" +
                      (kSourceDir / "runtime/boards/mps2_an386.ld").string() + "'",
                  work / "run");
  ASSERT_EQ(r.exit_code, 0) << r.out.substr(0, 2000) << r.err;
  const ExecutorReference ref = executor_greedy(m, {m.shape.bos_id}, kBoardMaxTokens);
  const std::vector<int64_t> ids = numbers_after(r.out, "ids");
  EXPECT_EQ(std::vector<int32_t>(ids.begin(), ids.end()), ref.ids);
  EXPECT_EQ(numbers_after(r.out, "stopped_at_eos"), std::vector<int64_t>{ref.stopped_at_eos ? 1 : 0});
  EXPECT_EQ(numbers_after(r.out, "scale"), (std::vector<int64_t>{ref.last_scale.m, ref.last_scale.k}));
  EXPECT_EQ(numbers_after(r.out, "logits"), ref.last_logits);
  std::printf("%s on MPS2-AN386: %s", name.c_str(), r.out.substr(0, r.out.find("\nids")).c_str());
  std::printf("\n");
  fs::remove_all(work);
}

class Mps2Board : public ::testing::TestWithParam<std::tuple<const char*, const char*>> {};

TEST_P(Mps2Board, IdsAndLastLogitsEqualTheExecutors) {
  const auto [model, bits] = GetParam();
  expect_board_equals_executor(model_bin_path(model, bits), formats::read_illm(illm_path(model, bits)).model,
                               std::string(model) + "-" + bits);
}

// A model built in memory, exported into a scratch directory and run on the board.
void expect_scratch_model_on_board_equals_executor(const QuantizedModel& m, const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("illm_mps2_" + name + "_model_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::vector<uint8_t> bytes = formats::build_model_bin(m, "", {}).bytes;
  std::ofstream(dir / "model.bin", std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                            static_cast<std::streamsize>(bytes.size()));
  expect_board_equals_executor(dir / "model.bin", m, name);
  fs::remove_all(dir);
}

// Both LM-head options on the Cortex-M4 (soft float, 32-bit int64 arithmetic): the synthetic W4A4 model with
// head_in_bits 16 and lm_head groups of 32.
TEST(Mps2Board, LmHeadOptionsEqualTheExecutors) {
  expect_scratch_model_on_board_equals_executor(synthetic_model(lm_head_options_shape()), "synthetic-lm-head-options");
}

// 8-bit Q/K/V on W4A4 (qkv_bits, required feature 64) on the Cortex-M4: stories260K W4A4 with qkv_bits 8.
TEST(Mps2Board, QkvBitsEqualTheExecutors) {
  QuantizedModel m = formats::read_illm(illm_path("stories260K", "w4a4")).model;
  m.settings.qkv_bits = 8;
  expect_scratch_model_on_board_equals_executor(m, "stories260K-w4a4-qkv8");
}

INSTANTIATE_TEST_SUITE_P(QemuSystemArm, Mps2Board,
                         ::testing::Values(std::make_tuple("stories260K", "w4a4"), std::make_tuple("stories260K", "w4a8"),
                                           std::make_tuple("stories260K", "w8a8"), std::make_tuple("tinybible", "w4a4")),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param)) + "_" + std::get<1>(info.param);
                         });

}  // namespace
}  // namespace illm::rt_testing
