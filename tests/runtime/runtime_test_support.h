#pragma once
// Shared by the runtime tests (tests/runtime/): paths of the shared test models and of the exported model.bin files,
// running a command, the C runtime wrapped for C++ tests, and the C++ executor's greedy reference (the same
// converter::generate_tokens that `illm generate` runs).
#include <sys/wait.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "converter/generation.h"
#include "kernels/executor.h"
#include "runtime/illm_rt.h"

namespace illm::rt_testing {

inline const std::filesystem::path kBinaryDir = ILLM_BINARY_DIR;
inline const std::filesystem::path kSourceDir = ILLM_SOURCE_DIR;

inline const char* const kModels[] = {"stories260K", "tinybible"};
inline const char* const kBits[] = {"w4a4", "w4a8", "w8a8"};

// build/test_models/<model>-<bits>.illm (CTest fixture test_models).
inline std::filesystem::path illm_path(const std::string& model, const std::string& bits) {
  return kBinaryDir / "test_models" / (model + "-" + bits + ".illm");
}
// build/runtime_models/<model>-<bits>/model.bin, written by `illm export` (CTest fixture runtime_models).
inline std::filesystem::path model_bin_path(const std::string& model, const std::string& bits) {
  return kBinaryDir / "runtime_models" / (model + "-" + bits) / "model.bin";
}

inline std::vector<uint8_t> read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

struct CommandResult {
  int exit_code = -1;
  std::string out, err;
};

// Runs a shell command line, capturing stdout and stderr through files in `scratch`.
inline CommandResult run_command(const std::string& command, const std::filesystem::path& scratch) {
  std::filesystem::create_directories(scratch);
  const auto out = scratch / "command.stdout", err = scratch / "command.stderr";
  const std::string full = command + " >'" + out.string() + "' 2>'" + err.string() + "' </dev/null";
  const int status = std::system(full.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  std::ifstream o(out), e(err);
  std::stringstream so, se;
  so << o.rdbuf();
  se << e.rdbuf();
  r.out = so.str();
  r.err = se.str();
  return r;
}

// The C runtime on an in-memory model.bin with its own arena (std::runtime_error with the runtime's message).
class Runtime {
 public:
  explicit Runtime(std::vector<uint8_t> bytes, int32_t context = 0) : bytes_(std::move(bytes)) {
    illm_rt_error err;
    if (illm_rt_load(&model_, bytes_.data(), bytes_.size(), &err) != ILLM_RT_OK) throw std::runtime_error(err.message);
    arena_.resize(illm_rt_arena_size(&model_, context));
    if (illm_rt_session_init(&session_, &model_, arena_.data(), arena_.size(), context, &err) != ILLM_RT_OK)
      throw std::runtime_error(err.message);
  }
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  const illm_rt_model& model() const { return model_; }
  illm_rt_session& session() { return session_; }

 private:
  std::vector<uint8_t> bytes_;
  illm_rt_model model_{};
  std::vector<uint8_t> arena_;
  illm_rt_session session_{};
};

// The executor's greedy continuation (ids as `illm generate` computes them) and the last logits row computed, i.e.
// the one the last id (or EOS) was chosen from.
struct ExecutorReference {
  std::vector<int32_t> ids;
  bool stopped_at_eos = false;
  std::vector<int64_t> last_logits;
  Dyadic last_scale;
};

inline ExecutorReference executor_greedy(const QuantizedModel& model, const std::vector<int32_t>& prompt,
                                         int max_tokens) {
  Executor executor(model);
  converter::SamplingOptions options;
  options.max_tokens = max_tokens;
  const converter::GenerationResult generated = converter::generate_tokens(executor, prompt, options);
  ExecutorReference ref;
  ref.ids = generated.tokens;
  ref.stopped_at_eos = generated.stopped_at_eos;
  // The last forward call ran prompt + every id but the last (or + every id when EOS ended the run).
  std::vector<int32_t> sequence = prompt;
  const size_t fed = generated.stopped_at_eos || ref.ids.empty() ? ref.ids.size() : ref.ids.size() - 1;
  sequence.insert(sequence.end(), ref.ids.begin(), ref.ids.begin() + static_cast<ptrdiff_t>(fed));
  executor.reset();
  const IntegerLogits logits = executor.forward(sequence);
  const size_t vocab = static_cast<size_t>(logits.vocab);
  ref.last_logits.assign(logits.values.end() - static_cast<ptrdiff_t>(vocab), logits.values.end());
  ref.last_scale = logits.scales.back();
  return ref;
}

}  // namespace illm::rt_testing
