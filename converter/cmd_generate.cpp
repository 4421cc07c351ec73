// `illm generate`: continues a prompt with the integer executor of an .illm model, streaming the output as the
// tokens arrive (text when the file carries a tokenizer, ids otherwise), then reports the speeds.
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "calibration/threads.h"
#include "converter/cli_options.h"
#include "converter/commands.h"
#include "converter/generation.h"
#include "converter/kernel_option.h"
#include "formats/illm_file.h"
#include "formats/tokenizer.h"
#include "converter/prune_option.h"
#include "kernels/error.h"

namespace illm::converter {
namespace {

struct GenerateOptions {
  std::string model;
  std::string prompt;
  std::string prompt_ids;
  int max_tokens = 48;
  double temperature = 0;
  double top_p = 1.0;
  uint64_t seed = 0;
  int threads = 0;
  std::string kernels;  // --kernels; empty: $ILLM_KERNELS or the fastest path
  PruneOptions prune;   // --prune-rate / --prune-from-layer
  bool json = false;
  // Whether each prompt option was given at all (an empty --prompt "" is an error, not "no prompt").
  const CLI::Option* prompt_option = nullptr;
  const CLI::Option* prompt_ids_option = nullptr;
};

// "1, 2,3" → {1, 2, 3}; every id must lie in [0, vocab).
std::vector<int32_t> parse_prompt_ids(const std::string& text, int32_t vocab) {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t comma = text.find(',', pos);
    const std::string item = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    const size_t first = item.find_first_not_of(" \t");
    const size_t last = item.find_last_not_of(" \t");
    if (first == std::string::npos) throw Error("--prompt-ids \"" + text + "\": empty item (expected e.g. 1,2,3)");
    const std::string token = item.substr(first, last - first + 1);
    errno = 0;
    char* end = nullptr;
    const long long value = std::strtoll(token.c_str(), &end, 10);
    if (end == token.c_str() || *end != '\0' || errno == ERANGE)
      throw Error("--prompt-ids: \"" + token + "\" is not an integer token id");
    if (value < 0 || value >= vocab)
      throw Error("--prompt-ids: token id " + token + " is outside the model's vocabulary [0, " +
                  std::to_string(vocab) + ")");
    ids.push_back(static_cast<int32_t>(value));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return ids;
}

bool is_byte_piece(const formats::Tokenizer& tokenizer, int32_t id) {
  const std::string& piece = tokenizer.piece(id);
  return piece.size() == 6 && piece.rfind("<0x", 0) == 0 && piece.back() == '>';
}

// Streams decoded text: after each token prints decode(all ids so far) minus what is already printed. While the
// last token is a raw byte piece the text may end inside a multi-byte character, so it waits for more.
class TextStreamer {
 public:
  TextStreamer(const formats::Tokenizer& tokenizer, std::vector<int32_t> prompt_ids, bool echo)
      : tokenizer_(tokenizer), ids_(std::move(prompt_ids)), echo_(echo) {
    emit(tokenizer_.decode(ids_));
  }
  void add(int32_t id) {
    ids_.push_back(id);
    if (!is_byte_piece(tokenizer_, id)) emit(tokenizer_.decode(ids_));
  }
  void finish() { emit(tokenizer_.decode(ids_)); }

 private:
  void emit(const std::string& full) {
    size_t common = 0;
    while (common < full.size() && common < printed_.size() && full[common] == printed_[common]) ++common;
    // Text already printed cannot be taken back; only ever print what extends it.
    if (common < printed_.size()) return;
    if (echo_ && full.size() > printed_.size()) {
      std::fwrite(full.data() + printed_.size(), 1, full.size() - printed_.size(), stdout);
      std::fflush(stdout);
    }
    printed_ = full;
  }

  const formats::Tokenizer& tokenizer_;
  std::vector<int32_t> ids_;
  std::string printed_;
  bool echo_;
};

double per_second(double count, double seconds) { return seconds > 0 ? count / seconds : 0.0; }

int run_generate(const GenerateOptions& opt) {
  const KernelSet& kernels = resolve_kernels(opt.kernels);  // an unavailable path fails before any work
  calib::set_thread_count(opt.threads);
  const bool has_prompt = opt.prompt_option->count() > 0, has_ids = opt.prompt_ids_option->count() > 0;
  if (has_prompt && has_ids) throw Error("give either --prompt or --prompt-ids, not both");
  if (has_prompt && opt.prompt.empty()) throw Error("--prompt is empty");
  if (has_ids && opt.prompt_ids.empty()) throw Error("--prompt-ids is empty");
  if (!(opt.temperature >= 0) || !std::isfinite(opt.temperature))
    throw Error("--temperature " + fmt::format("{}", opt.temperature) + ": must be a finite number >= 0 (0: greedy)");
  if (!(opt.top_p > 0 && opt.top_p <= 1))
    throw Error("--top-p " + fmt::format("{}", opt.top_p) + ": must lie in (0, 1]");
  if (opt.prune.rate_given()) parse_prune_rate(opt.prune.rate);  // a bad rate fails before any work

  const formats::LoadedIllm loaded = formats::read_illm(opt.model);
  const QuantizedModel& model = loaded.model;
  std::optional<formats::Tokenizer> tokenizer;
  if (!loaded.meta.tokenizer_model.empty())
    tokenizer = formats::Tokenizer::from_bytes(loaded.meta.tokenizer_model, opt.model + ": /tokenizer/tokenizer_model");

  std::vector<int32_t> prompt_ids;
  if (has_prompt) {
    if (!tokenizer) throw Error(opt.model + " has no tokenizer: --prompt needs one, use --prompt-ids instead");
    prompt_ids = tokenizer->encode(opt.prompt, true);
  } else if (has_ids) {
    prompt_ids = parse_prompt_ids(opt.prompt_ids, model.shape.vocab);
  } else {
    prompt_ids = {model.shape.bos_id};  // no prompt: continue from the beginning-of-sequence token
  }
  for (int32_t id : prompt_ids)
    if (id < 0 || id >= model.shape.vocab)
      throw Error("prompt token id " + std::to_string(id) + " is outside the model's vocabulary [0, " +
                  std::to_string(model.shape.vocab) + ")");

  SamplingOptions sampling;
  sampling.max_tokens = opt.max_tokens;
  sampling.temperature = opt.temperature;
  sampling.top_p = opt.top_p;
  sampling.seed = opt.seed;

  const TokenPruning pruning = resolve_pruning(opt.prune, model.shape.n_layers);
  Executor executor(model, kernels);
  executor.set_token_pruning(pruning);
  const bool stream = !opt.json;
  std::optional<TextStreamer> streamer;
  bool first_id = true;
  std::function<void(int32_t)> on_token;
  if (tokenizer) {
    streamer.emplace(*tokenizer, prompt_ids, stream);
    on_token = [&](int32_t id) { streamer->add(id); };
  } else if (stream) {
    on_token = [&](int32_t id) {
      std::printf(first_id ? "%d" : " %d", id);
      std::fflush(stdout);
      first_id = false;
    };
  }
  const GenerationResult result = generate_tokens(executor, prompt_ids, sampling, on_token);
  if (streamer) streamer->finish();

  // Decode calls after the first token: one per generated token, less the last unless EOS ended the run.
  const auto generated = static_cast<double>(result.tokens.size());
  const double decode_calls = result.stopped_at_eos ? generated : std::max(0.0, generated - 1);
  const double prefill_rate = per_second(result.prompt_tokens, result.prefill_seconds);
  const double decode_rate = per_second(decode_calls, result.decode_seconds);

  if (opt.json && result.stopped_at_context)
    std::fprintf(stderr, "notice: generation stopped after %zu tokens: the context of %d positions is full\n",
                 result.tokens.size(), model.shape.max_positions);
  if (opt.json) {
    nlohmann::ordered_json j;
    j["model_file"] = opt.model;
    j["prompt"] = has_prompt ? opt.prompt : "";
    j["prompt_ids"] = prompt_ids;
    j["ids"] = result.tokens;
    if (tokenizer) j["text"] = tokenizer->decode(result.tokens);
    j["prompt_tokens"] = result.prompt_tokens;
    j["generated_tokens"] = result.tokens.size();
    j["stopped_at_eos"] = result.stopped_at_eos;
    j["stopped_at_context"] = result.stopped_at_context;
    j["temperature"] = opt.temperature;
    j["top_p"] = opt.top_p;
    j["seed"] = opt.seed;
    j["prefill_seconds"] = result.prefill_seconds;
    j["decode_seconds"] = result.decode_seconds;
    j["prefill_tokens_per_second"] = prefill_rate;
    j["decode_tokens_per_second"] = decode_rate;
    j["kernels"] = kernels.name;
    if (pruning.enabled()) {
      j["prune_rate"] = prune_rate_text(pruning);
      j["prune_from_layer"] = pruning.from_layer;
    }
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return 0;
  }
  std::printf("\n");
  std::fflush(stdout);
  const std::string stop = result.stopped_at_eos ? " (stopped at EOS)"
                           : result.stopped_at_context
                               ? fmt::format(" (stopped: the context of {} positions is full)", model.shape.max_positions)
                               : "";
  std::fprintf(stderr,
               "prompt tokens %d, generated tokens %zu%s; prefill %.1f tokens/s, decode %.1f tokens/s (%s kernels)\n",
               result.prompt_tokens, result.tokens.size(), stop.c_str(), prefill_rate, decode_rate, kernels.name);
  return 0;
}

}  // namespace

CommandRun add_generate_command(CLI::App& sub) {
  auto opt = std::make_shared<GenerateOptions>();
  sub.description(
      "Continue a prompt with the integer executor of an .illm model: greedy (integer argmax) by default, or "
      "sampling with --temperature/--top-p/--seed. Prints text when the file carries a tokenizer, token ids "
      "otherwise, and the prefill and decode speeds on stderr.");
  sub.add_option("--model", opt->model, "Model file (.illm)")->required();
  opt->prompt_option = sub.add_option("--prompt", opt->prompt, "Prompt text (needs a tokenizer in the file; BOS is prepended)");
  opt->prompt_ids_option = sub.add_option("--prompt-ids", opt->prompt_ids, "Prompt as token ids, e.g. 1,2,3 (default: BOS only)");
  sub.add_option("--max-tokens", opt->max_tokens, "Tokens to generate")->capture_default_str()->check(CLI::NonNegativeNumber);
  sub.add_option("--temperature", opt->temperature, "Sampling temperature (0: greedy)")->capture_default_str();
  sub.add_option("--top-p", opt->top_p, "Nucleus sampling mass in (0, 1]")->capture_default_str();
  sub.add_option("--seed", opt->seed, "Random seed of the sampler")->capture_default_str();
  add_threads_option(sub, opt->threads, "CPU threads (0: all cores)");
  add_kernels_option(sub, opt->kernels);
  add_prune_options(sub, opt->prune);
  sub.add_flag("--json", opt->json, "Print one JSON object (ids, text, speeds) on stdout instead of streaming");
  return [opt] { return run_generate(*opt); };
}

}  // namespace illm::converter
