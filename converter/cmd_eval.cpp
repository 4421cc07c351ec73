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
#include "converter/commands.h"
#include "converter/metrics.h"
#include "converter/progress.h"
#include "formats/dataset.h"
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
  std::string tokenizer;  // empty: <model>/tokenizer.model
  int64_t seq_len = 0;    // 0: dataset default (whole JSONL lines; 256 for text)
  int64_t max_samples = 0;
  int threads = 0;
  int batch_size = 16;
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
  if (!fs::exists(path))
    throw Error(data.string() + " is text and needs a tokenizer, but " + path.string() +
                " does not exist (pass --tokenizer FILE)");
  return formats::Tokenizer::load(path);
}

int run_eval(const EvalOptions& opt) {
  const auto start = std::chrono::steady_clock::now();
  auto seconds_since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  calib::set_thread_count(opt.threads);

  const fs::path model_dir = opt.model;
  if (!fs::is_directory(model_dir)) throw Error("model directory " + model_dir.string() + " does not exist");
  const fs::path data = opt.data.empty() ? default_data(model_dir) : fs::path(opt.data);
  if (!fs::exists(data)) throw Error("data file " + data.string() + " does not exist");

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
  PerplexityAccumulator ppl;
  {
    Progress progress("eval", static_cast<int64_t>(windows.sequences.size()), "windows", !opt.quiet);
    model->for_each_logits(windows.sequences, opt.batch_size, [&](std::size_t i, std::span<const float> logits) {
      ppl.add_window(logits, windows.sequences[i], config.vocab_size);
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
      "Evaluate the floating-point model's perplexity on a dataset: token-id JSONL ({\"input_ids\": [...]} per "
      "line, each line one sequence, no BOS added) or plain text (tokenized whole with BOS once, split into "
      "non-overlapping windows of --seq-len; the last partial window is scored too).");
  sub.add_option("--model", opt->model, "Hugging Face LLaMA model directory (config.json + *.safetensors)")
      ->capture_default_str();
  sub.add_option("--data", opt->data,
                 "Dataset: *.jsonl of token ids, or a text file (default: the model directory's eval.jsonl, "
                 "else its test.txt)");
  sub.add_option("--tokenizer", opt->tokenizer,
                 "SentencePiece tokenizer.model for text data (default: <model>/tokenizer.model)");
  sub.add_option("--seq-len", opt->seq_len,
                 "Window length in tokens (default: whole JSONL lines; 256 for text); at most "
                 "max_position_embeddings")
      ->check(CLI::PositiveNumber);
  sub.add_option("--max-samples", opt->max_samples, "Evaluate only the first N windows")->check(CLI::PositiveNumber);
  sub.add_option("--threads", opt->threads, "CPU threads (0: all cores)")->capture_default_str();
  sub.add_option("--batch-size", opt->batch_size, "Windows of equal length evaluated together")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub.add_flag("--float64", opt->float64, "Compute in float64 instead of float32 (reference numbers)");
  sub.add_flag("--json", opt->json,
               "Print one JSON object on stdout (perplexity, predicted_tokens, windows, seconds, ...)");
  sub.add_flag("-q,--quiet", opt->quiet, "No progress or log lines on stderr");
  return [opt] { return run_eval(*opt); };
}

}  // namespace illm::converter
