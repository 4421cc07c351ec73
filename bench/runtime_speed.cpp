// Host tokens/s of the C99 runtime (runtime/illm_rt.h) next to the C++ integer executor on the same prompt and the
// same greedy continuation, one thread each, printed as a markdown table with the ratios (issue #10).
// Usage: runtime_speed [prompt_tokens] [generated_tokens] [repeats] [model.illm[@G] ...]
//   defaults: 32 64 5, the shared test models build/test_models/{stories260K,tinybible}-{w4a4,w4a8,w8a8}.illm
//   model.illm@G: the model with act_group_size = G set in memory (per-group activations, both sides).
// Prefill: the executor runs the prompt in one call, the runtime token by token (its only mode). Decode: one token
// per call in both. Each number is the best of `repeats` runs (the machine may be shared).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <illm/build_info.h>

#include "converter/generation.h"
#include "formats/illm_file.h"
#include "formats/model_bin.h"
#include "runtime/illm_rt.h"

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

struct Speeds {
  double prefill = 0, decode = 0;  // tokens per second
  std::vector<int32_t> ids;
};

Speeds executor_speed(const illm::QuantizedModel& model, const std::vector<int32_t>& prompt, int tokens) {
  illm::Executor executor(model);
  illm::converter::SamplingOptions options;
  options.max_tokens = tokens;
  options.stop_at_eos = false;
  const auto r = illm::converter::generate_tokens(executor, prompt, options);
  return Speeds{prompt.size() / r.prefill_seconds, (r.tokens.size() - 1) / r.decode_seconds, r.tokens};
}

Speeds runtime_speed(illm_rt_session& session, const std::vector<int32_t>& prompt, int tokens) {
  illm_rt_error err;
  Speeds s;
  illm_rt_session_reset(&session);
  auto start = Clock::now();
  for (const int32_t id : prompt)
    if (illm_rt_forward(&session, id, &err) != ILLM_RT_OK) std::fprintf(stderr, "runtime: %s\n", err.message), std::exit(1);
  s.prefill = prompt.size() / seconds_since(start);
  start = Clock::now();
  for (int i = 0; i < tokens; ++i) {
    s.ids.push_back(illm_rt_argmax(&session.logits));
    if (i + 1 == tokens) break;
    if (illm_rt_forward(&session, s.ids.back(), &err) != ILLM_RT_OK) std::fprintf(stderr, "runtime: %s\n", err.message), std::exit(1);
  }
  s.decode = (tokens - 1) / seconds_since(start);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  const int prompt_tokens = argc > 1 ? std::atoi(argv[1]) : 32;
  const int tokens = argc > 2 ? std::atoi(argv[2]) : 64;
  const int repeats = argc > 3 ? std::atoi(argv[3]) : 5;
  std::vector<std::string> models;
  for (int i = 4; i < argc; ++i) models.push_back(argv[i]);
  if (models.empty())
    for (const char* m : {"stories260K", "tinybible"})
      for (const char* b : {"w4a4", "w4a8", "w8a8"})
        models.push_back(std::string(ILLM_BENCH_BINARY_DIR) + "/test_models/" + m + "-" + b + ".illm");
  omp_set_num_threads(1);
  std::printf("prompt %d tokens, %d generated, best of %d, 1 thread\n\n", prompt_tokens, tokens, repeats);
  std::printf("| model | executor prefill tok/s | C runtime prefill tok/s | runtime / executor | executor decode tok/s | "
              "C runtime decode tok/s | runtime / executor | same ids | model.bin bytes |\n"
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
  for (const std::string& spec : models) {
    const size_t at = spec.find('@');
    const std::string path = spec.substr(0, at);
    illm::formats::LoadedIllm loaded = illm::formats::read_illm(path);
    if (at != std::string::npos) loaded.model.act_group_size = std::atoi(spec.c_str() + at + 1);
    std::vector<int32_t> prompt = {loaded.model.shape.bos_id};
    for (int i = 1; i < prompt_tokens; ++i) prompt.push_back((i * 37 + 11) % loaded.model.shape.vocab);
    const std::vector<uint8_t> bytes = illm::formats::build_model_bin(loaded.model, "", {}).bytes;
    illm_rt_model model;
    illm_rt_error err;
    if (illm_rt_load(&model, bytes.data(), bytes.size(), &err) != ILLM_RT_OK) return std::fprintf(stderr, "%s\n", err.message), 1;
    std::vector<uint8_t> arena(illm_rt_arena_size(&model, 0));
    illm_rt_session session;
    illm_rt_session_init(&session, &model, arena.data(), arena.size(), 0, &err);
    Speeds best_executor, best_runtime;
    for (int r = 0; r < repeats; ++r) {
      const Speeds e = executor_speed(loaded.model, prompt, tokens), c = runtime_speed(session, prompt, tokens);
      best_executor.prefill = std::max(best_executor.prefill, e.prefill);
      best_executor.decode = std::max(best_executor.decode, e.decode);
      best_runtime.prefill = std::max(best_runtime.prefill, c.prefill);
      best_runtime.decode = std::max(best_runtime.decode, c.decode);
      best_executor.ids = e.ids;
      best_runtime.ids = c.ids;
    }
    std::string name = path.substr(path.find_last_of('/') + 1);
    if (loaded.model.act_group_size > 0) name += " act_group_size " + std::to_string(loaded.model.act_group_size);
    std::printf("| %s | %.0f | %.0f | %.2f | %.0f | %.0f | %.2f | %s | %zu |\n", name.c_str(), best_executor.prefill,
                best_runtime.prefill, best_runtime.prefill / best_executor.prefill, best_executor.decode,
                best_runtime.decode, best_runtime.decode / best_executor.decode,
                best_executor.ids == best_runtime.ids ? "yes" : "NO", bytes.size());
  }
  return 0;
}
