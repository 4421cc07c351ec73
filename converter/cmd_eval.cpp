// `illm eval`: perplexity of the floating-point model on a dataset.
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "calibration/fp_model.h"
#include "calibration/threads.h"
#include "converter/cli_options.h"
#include "converter/commands.h"
#include "converter/metrics.h"
#include "converter/progress.h"
#include "converter/integer_eval.h"
#include "converter/kernel_option.h"
#include "converter/prefill_decode_eval.h"
#include "converter/prune_option.h"
#include "formats/dataset.h"
#include "formats/illm_file.h"
#include "formats/input_file.h"
#include "formats/llama_config.h"
#include "formats/tokenizer.h"
#include "kernels/error.h"
#include <illm/build_info.h>

namespace illm::converter {
namespace {

namespace fs = std::filesystem;

struct EvalOptions {
  std::string model = (fs::path(build_info::kDataDir) / "models" / "tinybible").string();
  std::string data;       // empty: the model directory's eval.jsonl, else its test.txt
  std::string tokenizer;  // empty: <model>/tokenizer.model (or the tokenizer stored in a .illm file)
  std::string reference;  // HF directory of the FP reference: adds KL and top-1
  int64_t seq_len = 0;    // 0: dataset default (whole JSONL lines; 256 for text)
  int64_t max_samples = 0;
  int threads = 0;
  int batch_size = 16;
  std::string kernels;    // --kernels (integer executor only); empty: $ILLM_KERNELS or the fastest path
  PruneOptions prune;     // --prune-rate / --prune-from-layer (integer executor only)
  bool json = false, float64 = false, quiet = false;
};

fs::path default_data(const fs::path& model_dir) {
  for (const char* name : {"eval.jsonl", "test.txt"})
    if (fs::exists(model_dir / name)) return model_dir / name;
  throw Error("no --data given and " + model_dir.string() + " has neither eval.jsonl nor test.txt");
}

bool is_token_jsonl(const fs::path& data) { return data.extension() == ".jsonl"; }

// Text data needs a tokenizer: --tokenizer, else the model's own.
std::optional<formats::Tokenizer> load_tokenizer(const EvalOptions& opt, const fs::path& model_dir,
                                                 const fs::path& data) {
  if (is_token_jsonl(data) && opt.tokenizer.empty()) return std::nullopt;
  const fs::path path = opt.tokenizer.empty() ? model_dir / "tokenizer.model" : fs::path(opt.tokenizer);
  if (opt.tokenizer.empty() && !fs::exists(path))
    throw Error(data.string() + " is text and needs a tokenizer, but " + path.string() +
                " does not exist (pass --tokenizer FILE)");
  return formats::Tokenizer::load(path);
}

// The model being evaluated: an HF directory (FP) or an .illm file (integer executor).
bool is_illm_file(const fs::path& model) { return fs::is_regular_file(model); }

// --reference is the FP model: a Hugging Face directory, never an .illm file.
void check_reference(const std::string& reference) {
  if (reference.empty()) return;
  if (fs::is_regular_file(reference))
    throw Error("--reference " + reference + " is a file; the reference is the FP model, a Hugging Face model "
                "directory (an .illm file goes in --model)");
  formats::require_directory(reference, "--reference model directory");
}

// The fields every integer evaluation's JSON ends with, and the one line on stdout.
void print_integer_json(nlohmann::ordered_json& out, const fs::path& file, const fs::path& data,
                        const KernelSet& kernels) {
  out["model"] = file.string();
  out["data"] = data.string();
  out["precision"] = "integer";
  out["kernels"] = kernels.name;
  out["threads"] = calib::thread_count();
  std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
}

// `illm eval --model OUT.illm --prune-rate ρ`: the prefill/decode protocol of token pruning, pruned and unpruned.
int run_eval_pruned(const EvalOptions& opt, const QuantizedModel& model, const fs::path& file, const fs::path& data,
                    std::span<const std::vector<int32_t>> windows, const KernelSet& kernels,
                    std::chrono::steady_clock::time_point start) {
  const TokenPruning pruning = resolve_pruning(opt.prune, model.shape.n_layers);
  // Pruned and unpruned window by window (ρ = 0: one run serves as both).
  std::vector<TokenPruning> settings{pruning};
  if (pruning.enabled()) settings.push_back(TokenPruning{});
  const std::vector<PrefillDecodeReport> reports =
      evaluate_prefill_decode(model, windows, settings, kernels, !opt.quiet);
  const PrefillDecodeReport& pruned = reports.front();
  const PrefillDecodeReport& unpruned = reports.back();
  const double total_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string rate = prune_rate_text(pruning);
  if (opt.json) {
    nlohmann::ordered_json out;
    out["protocol"] = "prefill of each window's first half, then token-by-token decode of the second half";
    out["prune_rate"] = rate;
    out["prune_from_layer"] = pruning.from_layer;
    out["perplexity"] = pruned.perplexity;
    out["unpruned_perplexity"] = unpruned.perplexity;
    out["predicted_tokens"] = pruned.predicted_tokens;
    out["windows"] = pruned.windows;
    out["prefill_tokens"] = pruned.prefill_tokens;
    out["decode_tokens"] = pruned.decode_tokens;
    out["prefill_tokens_per_second"] = pruned.prefill_tokens_per_second();
    out["decode_tokens_per_second"] = pruned.decode_tokens_per_second();
    out["unpruned_prefill_tokens_per_second"] = unpruned.prefill_tokens_per_second();
    out["unpruned_decode_tokens_per_second"] = unpruned.decode_tokens_per_second();
    out["cache_tokens"] = pruned.cache_tokens;
    out["unpruned_cache_tokens"] = pruned.unpruned_cache_tokens;
    out["seconds"] = total_seconds;
    print_integer_json(out, file, data, kernels);
    return 0;
  }
  std::printf("model            %s (integer-only W%dA%d, %d layers)\n", file.c_str(), model.settings.w_bits,
              model.settings.a_bits, model.shape.n_layers);
  std::printf("data             %s\n", data.c_str());
  std::printf("protocol         prefill first half of each window, decode the second half (%lld windows, "
              "%lld scored tokens)\n",
              static_cast<long long>(pruned.windows), static_cast<long long>(pruned.predicted_tokens));
  std::printf("pruning          rate %s from layer %d; cache %lld of %lld layer-tokens after prefill\n",
              rate.c_str(), pruning.from_layer, static_cast<long long>(pruned.cache_tokens),
              static_cast<long long>(pruned.unpruned_cache_tokens));
  std::printf("perplexity       %.4f (unpruned %.4f)\n", pruned.perplexity, unpruned.perplexity);
  std::printf("prefill          %.1f tokens/s (unpruned %.1f)\n", pruned.prefill_tokens_per_second(),
              unpruned.prefill_tokens_per_second());
  std::printf("decode           %.1f tokens/s (unpruned %.1f)\n", pruned.decode_tokens_per_second(),
              unpruned.decode_tokens_per_second());
  std::printf("time             %.2f s (%d threads, %s kernels)\n", total_seconds, calib::thread_count(),
              kernels.name);
  return 0;
}

// `illm eval --model OUT.illm`: the integer executor on the data, optionally against an FP reference.
int run_eval_integer(const EvalOptions& opt) {
  const auto start = std::chrono::steady_clock::now();
  const KernelSet& kernels = resolve_kernels(opt.kernels);  // an unavailable path fails before any work
  if (opt.prune.rate_given()) parse_prune_rate(opt.prune.rate);  // a bad rate fails before any work
  if (pruning_requested(opt.prune) && !opt.reference.empty())
    throw Error("--reference cannot be combined with --prune-rate (the pruned protocol is compared with its own "
                "unpruned run)");
  calib::set_thread_count(opt.threads);
  const fs::path file = opt.model;
  if (opt.data.empty()) throw Error("--data is required with an .illm model");
  const fs::path data = opt.data;
  formats::require_regular_file(data, "data file");
  check_reference(opt.reference);
  formats::LoadedIllm loaded = formats::read_illm(file);
  const QuantizedModel& model = loaded.model;
  if (pruning_requested(opt.prune)) resolve_pruning(opt.prune, model.shape.n_layers);  // before the data is read
  std::optional<formats::Tokenizer> tokenizer;
  if (!opt.tokenizer.empty()) {
    tokenizer = formats::Tokenizer::load(opt.tokenizer);
  } else if (!is_token_jsonl(data)) {
    if (loaded.meta.tokenizer_model.empty())
      throw Error(data.string() + " is text, but " + file.string() + " holds no tokenizer (pass --tokenizer FILE)");
    tokenizer = formats::Tokenizer::from_bytes(loaded.meta.tokenizer_model, file.string());
  }
  const auto windows = formats::load_windows(
      data, tokenizer ? &*tokenizer : nullptr, opt.seq_len > 0 ? std::optional<int64_t>(opt.seq_len) : std::nullopt,
      model.shape.vocab, model.shape.max_positions,
      opt.max_samples > 0 ? std::optional<int64_t>(opt.max_samples) : std::nullopt);
  if (windows.sequences.empty()) throw Error(data.string() + ": no window with a token to predict");
  if (!opt.quiet) std::fprintf(stderr, "data: %s\n", windows.description.c_str());
  if (pruning_requested(opt.prune))
    return run_eval_pruned(opt, model, file, data, windows.sequences, kernels, start);
  std::unique_ptr<calib::FpModel> reference;
  if (!opt.reference.empty()) {
    reference = calib::FpModel::load(opt.reference);
    if (reference->config().vocab_size != model.shape.vocab)
      throw Error("reference " + opt.reference + " has vocab " + std::to_string(reference->config().vocab_size) +
                  ", the model " + std::to_string(model.shape.vocab));
  }
  const QualityReport q = evaluate_integer_model(model, reference.get(), windows.sequences, !opt.quiet, kernels);
  const double total_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (opt.json) {
    nlohmann::ordered_json out;
    out["perplexity"] = q.perplexity;
    out["predicted_tokens"] = q.predicted_tokens;
    out["windows"] = q.windows;
    out["seconds"] = total_seconds;
    out["eval_seconds"] = q.seconds;
    if (reference) {
      out["reference_perplexity"] = q.reference_perplexity;
      out["kl_mean"] = q.kl_mean;
      out["top1"] = q.top1;
    }
    print_integer_json(out, file, data, kernels);
  } else {
    std::printf("model            %s (integer-only W%dA%d, %d layers, hidden %d, vocab %d)\n", file.c_str(),
                model.settings.w_bits, model.settings.a_bits, model.shape.n_layers, model.shape.hidden, model.shape.vocab);
    std::printf("data             %s\n", data.c_str());
    std::printf("perplexity       %.4f\n", q.perplexity);
    if (reference) {
      std::printf("FP perplexity    %.4f (%s)\n", q.reference_perplexity, opt.reference.c_str());
      std::printf("KL(FP||int)      %.5f per token\n", q.kl_mean);
      std::printf("top-1 agreement  %.2f %%\n", 100.0 * q.top1);
    }
    std::printf("predicted tokens %lld in %lld windows\n", static_cast<long long>(q.predicted_tokens),
                static_cast<long long>(q.windows));
    std::printf("time             %.2f s (integer executor %.2f s, %d threads, %s kernels)\n", total_seconds,
                q.seconds, calib::thread_count(), kernels.name);
  }
  return 0;
}

int run_eval(const EvalOptions& opt) {
  if (is_illm_file(opt.model)) return run_eval_integer(opt);
  if (!opt.kernels.empty()) throw Error("--kernels applies to an .illm model (the integer executor), not to " + opt.model);
  if (pruning_requested(opt.prune))
    throw Error("--prune-rate/--prune-from-layer apply to an .illm model (the integer executor), not to " + opt.model);
  const auto start = std::chrono::steady_clock::now();
  auto seconds_since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  calib::set_thread_count(opt.threads);

  const fs::path model_dir = opt.model;
  formats::require_directory(model_dir, "--model (an .illm file or a Hugging Face model directory)");
  const fs::path data = opt.data.empty() ? default_data(model_dir) : fs::path(opt.data);
  formats::require_regular_file(data, "data file");
  check_reference(opt.reference);

  // Data before weights: bad input is reported before the slow part.
  const auto config = formats::load_llama_config(model_dir);
  const auto tokenizer = load_tokenizer(opt, model_dir, data);
  const auto windows = formats::load_windows(
      data, tokenizer ? &*tokenizer : nullptr, opt.seq_len > 0 ? std::optional<int64_t>(opt.seq_len) : std::nullopt,
      config.vocab_size, config.max_position_embeddings,
      opt.max_samples > 0 ? std::optional<int64_t>(opt.max_samples) : std::nullopt);
  if (windows.sequences.empty()) throw Error(data.string() + ": no window with a token to predict");
  if (!opt.quiet) std::fprintf(stderr, "data: %s\n", windows.description.c_str());

  const auto model = calib::FpModel::load(model_dir, opt.float64);
  const double load_seconds = seconds_since(start);

  const auto eval_start = std::chrono::steady_clock::now();
  PerplexityAccumulator ppl, reference_ppl;
  AgreementAccumulator agreement;
  std::vector<std::vector<float>> reference_logits;
  if (!opt.reference.empty()) {
    const auto reference = calib::FpModel::load(opt.reference);
    if (reference->config().vocab_size != config.vocab_size)
      throw Error("reference " + opt.reference + " has vocab " + std::to_string(reference->config().vocab_size) +
                  ", the model " + std::to_string(config.vocab_size));
    reference_logits.resize(windows.sequences.size());
    Progress progress("reference", static_cast<int64_t>(windows.sequences.size()), "windows", !opt.quiet);
    reference->for_each_logits(windows.sequences, opt.batch_size, [&](std::size_t i, std::span<const float> logits) {
      reference_logits[i].assign(logits.begin(), logits.end());
      reference_ppl.add_window(logits, windows.sequences[i], config.vocab_size);
      progress.advance();
    });
  }
  {
    Progress progress("eval", static_cast<int64_t>(windows.sequences.size()), "windows", !opt.quiet);
    model->for_each_logits(windows.sequences, opt.batch_size, [&](std::size_t i, std::span<const float> logits) {
      ppl.add_window(logits, windows.sequences[i], config.vocab_size);
      if (!reference_logits.empty()) agreement.add_window(reference_logits[i], logits, config.vocab_size);
      progress.advance();
    });
  }
  const double eval_seconds = seconds_since(eval_start);
  const double total_seconds = seconds_since(start);
  const char* precision = opt.float64 ? "float64" : "float32";

  if (opt.json) {
    nlohmann::ordered_json out;
    out["perplexity"] = ppl.perplexity();
    out["mean_nll"] = ppl.mean_nll();
    out["predicted_tokens"] = ppl.count();
    out["windows"] = windows.sequences.size();
    out["seconds"] = total_seconds;
    if (!opt.reference.empty()) {
      out["reference_perplexity"] = reference_ppl.perplexity();
      out["kl_mean"] = agreement.mean_kl();
      out["top1"] = agreement.top1();
    }
    out["load_seconds"] = load_seconds;
    out["eval_seconds"] = eval_seconds;
    out["model"] = model_dir.string();
    out["data"] = data.string();
    out["precision"] = precision;
    out["threads"] = calib::thread_count();
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("model            %s (FP %s, %lld layers, hidden %lld, vocab %lld)\n", model_dir.c_str(), precision,
                static_cast<long long>(config.num_hidden_layers), static_cast<long long>(config.hidden_size),
                static_cast<long long>(config.vocab_size));
    std::printf("data             %s\n", data.c_str());
    std::printf("perplexity       %.4f\n", ppl.perplexity());
    if (!opt.reference.empty()) {
      std::printf("reference ppl    %.4f (%s)\n", reference_ppl.perplexity(), opt.reference.c_str());
      std::printf("KL(ref||model)   %.5f per token\n", agreement.mean_kl());
      std::printf("top-1 agreement  %.2f %%\n", 100.0 * agreement.top1());
    }
    std::printf("predicted tokens %lld in %zu windows\n", static_cast<long long>(ppl.count()),
                windows.sequences.size());
    std::printf("time             %.2f s (load %.2f s, eval %.2f s, %d threads)\n", total_seconds, load_seconds,
                eval_seconds, calib::thread_count());
  }
  return 0;
}

}  // namespace

CommandRun add_eval_command(CLI::App& sub) {
  auto opt = std::make_shared<EvalOptions>();
  sub.description(
      "Evaluate a model's perplexity on a dataset: the FP model (a Hugging Face directory) or the integer executor "
      "(an .illm file). Data: token-id JSONL ({\"input_ids\": [...]} per "
      "line, each line one sequence, no BOS added) or plain text (tokenized whole with BOS once, split into "
      "non-overlapping windows of --seq-len; the last partial window is scored too).");
  sub.add_option("--model", opt->model,
                 "Hugging Face LLaMA model directory (FP model) or an .illm file (integer executor)")
      ->capture_default_str();
  sub.add_option("--data", opt->data,
                 "Dataset: *.jsonl of token ids, or a text file (default: the model directory's eval.jsonl, "
                 "else its test.txt)");
  sub.add_option("--tokenizer", opt->tokenizer,
                 "SentencePiece tokenizer.model for text data (default: <model>/tokenizer.model)");
  sub.add_option("--reference", opt->reference,
                 "FP reference model directory: adds reference_perplexity, KL(P_ref || P) and top-1 agreement");
  sub.add_option("--seq-len", opt->seq_len,
                 "Window length in tokens (default: whole JSONL lines; 256 for text); at most "
                 "max_position_embeddings")
      ->check(CLI::PositiveNumber);
  sub.add_option("--max-samples", opt->max_samples, "Evaluate only the first N windows")->check(CLI::PositiveNumber);
  add_threads_option(sub, opt->threads, "CPU threads (0: all cores)");
  sub.add_option("--batch-size", opt->batch_size, "Windows of equal length evaluated together")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub.add_flag("--float64", opt->float64, "Compute in float64 instead of float32 (reference numbers)");
  add_kernels_option(sub, opt->kernels);
  add_prune_options(sub, opt->prune);
  sub.add_flag("--json", opt->json,
               "Print one JSON object on stdout (perplexity, predicted_tokens, windows, seconds, ...). With "
               "--prune-rate: the prefill/decode protocol, perplexity and unpruned_perplexity, tokens/s of both");
  sub.add_flag("-q,--quiet", opt->quiet, "No progress or log lines on stderr");
  return [opt] { return run_eval(*opt); };
}

}  // namespace illm::converter
