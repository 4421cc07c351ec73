// `illm quantize`: HF checkpoint → calibration (RTN / SmoothQuant / FSBR) → integer-only .illm model file, then
// FP vs integer quality on the evaluation data and a generated continuation.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "calibration/calibrate.h"
#include "calibration/fp_model.h"
#include "calibration/integerize.h"
#include "calibration/threads.h"
#include "converter/commands.h"
#include "converter/generation.h"
#include "converter/integer_eval.h"
#include "converter/quantize_pipeline.h"
#include "formats/illm_file.h"
#include "kernels/error.h"
#include <illm/build_info.h>

namespace illm::converter {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct QuantizeOptions {
  std::string model;   // empty: bundled tinybible
  std::string recipe;  // empty: bundled quick-w4a4
  std::string calib, eval, output, prompt;
  bool no_eval = false, paper = false, fake_quant = false, json = false, quiet = false;
  int64_t max_eval_windows = 0;
  int max_tokens = 40;
  int threads = 0;
};

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Fails before any slow work when the output cannot be written.
void check_output_writable(const fs::path& out) {
  const fs::path dir = out.has_parent_path() ? out.parent_path() : fs::path(".");
  if (!fs::is_directory(dir)) throw Error("output " + out.string() + ": directory " + dir.string() + " does not exist");
  if (fs::is_directory(out)) throw Error("output " + out.string() + " is a directory");
  // access(W_OK) says yes to root everywhere; creating a file is the real test.
  const fs::path probe = out.string() + ".tmp." + std::to_string(::getpid()) + ".probe";
  std::FILE* f = std::fopen(probe.c_str(), "wb");
  if (f == nullptr) throw Error("output " + out.string() + ": directory " + dir.string() + " is not writable");
  std::fclose(f);
  std::error_code ec;
  fs::remove(probe, ec);
}

// Wall times belong in the JSON report only: the model file must be byte-identical across runs.
nlohmann::ordered_json calibration_to_json(const calib::CalibrationReport& report, bool with_times) {
  nlohmann::ordered_json j;
  j["method"] = report.method;
  if (with_times) j["seconds"] = report.seconds;
  nlohmann::ordered_json blocks = nlohmann::ordered_json::array();
  for (const auto& b : report.blocks) {
    nlohmann::ordered_json jb;
    jb["loss_before"] = b.loss_before;
    jb["loss_after"] = b.loss_after;
    jb["best_epoch"] = b.best_epoch;
    jb["epoch_losses"] = b.epoch_losses;
    if (with_times) jb["seconds"] = b.seconds;
    if (b.softmax_clip) jb["softmax_clip"] = *b.softmax_clip; else jb["softmax_clip"] = "none";
    blocks.push_back(jb);
  }
  j["blocks"] = blocks;
  return j;
}

std::string prompt_text_default(const SourceModel& source) {
  return source.name == "tinybible" ? "And it came to pass" : "Once upon a time";
}

int run_quantize(const QuantizeOptions& opt) {
  const auto start = Clock::now();
  calib::set_thread_count(opt.threads);
  const bool progress = !opt.quiet;
  auto log = [&](const std::string& line) {
    if (!opt.quiet) std::fprintf(stderr, "%s\n", line.c_str());
  };

  const fs::path model_dir = opt.model.empty() ? bundled_model_dir() : fs::path(opt.model);
  const fs::path recipe_path = opt.recipe.empty() ? bundled_recipe("quick-w4a4.json") : fs::path(opt.recipe);
  const Recipe recipe = load_recipe(recipe_path);
  require_integer_path(recipe, recipe_path.string());
  const SourceModel source = open_source_model(model_dir);
  const fs::path output = opt.output.empty() ? fs::path(source.name + "-" + recipe_path.stem().string() + ".illm")
                                             : fs::path(opt.output);
  check_output_writable(output);

  // Data first: bad input is reported before the slow part.
  const auto calib_file = opt.calib.empty() ? find_in_model_dir(source, {"calib.jsonl", "calib.txt"})
                                            : std::optional<fs::path>(opt.calib);
  if (!calib_file) throw Error("no --calib given and " + model_dir.string() + " has neither calib.jsonl nor calib.txt");
  if (!fs::exists(*calib_file)) throw Error("calibration file " + calib_file->string() + " does not exist");
  const auto calib_windows = load_calibration_windows(source, *calib_file, recipe);
  std::optional<fs::path> eval_file;
  if (!opt.no_eval) {
    eval_file = opt.eval.empty() ? find_in_model_dir(source, {"eval.jsonl", "test.txt"}) : std::optional<fs::path>(opt.eval);
    if (eval_file && !fs::exists(*eval_file)) throw Error("evaluation file " + eval_file->string() + " does not exist");
    if (!eval_file) log("notice: no --eval given and the model directory has neither eval.jsonl nor test.txt: skipping the metrics");
  }
  std::vector<std::vector<int32_t>> eval_windows;
  if (eval_file) {
    eval_windows = load_evaluation_windows(
        source, *eval_file, opt.max_eval_windows > 0 ? std::optional<int64_t>(opt.max_eval_windows) : std::nullopt);
  }
  log(fmt::format("model   {} ({} layers, hidden {}, vocab {})", model_dir.string(), source.config.num_hidden_layers,
                  source.config.hidden_size, source.config.vocab_size));
  log(fmt::format("recipe  {} ({}, W{}A{}, {} epochs x {} samples x {} tokens){}", recipe_path.string(),
                  to_string(recipe.method), recipe.w_bits, recipe.a_bits, recipe.epochs, recipe.samples,
                  recipe.seq_len, recipe_path.stem().string().rfind("quick", 0) == 0 ? "  [quick recipe]" : ""));
  log(fmt::format("calib   {} ({} windows)", calib_file->string(), calib_windows.size()));

  // Calibration → integer model.
  calib::CalibrationReport calibration;
  calib::CalibrateOptions calibrate_options;
  calibrate_options.threads = opt.threads;
  calibrate_options.show_progress = progress;
  const calib::CalibratedModel calibrated = calib::calibrate(model_dir, recipe, calib_windows, &calibration, calibrate_options);
  const QuantizedModel model = integerize(calibrated, integer_settings_for(recipe.w_bits, recipe.a_bits, opt.paper));

  formats::IllmMetadata meta = model_metadata(source, recipe, calibration_to_json(calibration, false).dump());
  meta.golden = record_golden_vectors(model, eval_windows.empty() ? calib_windows : eval_windows);
  formats::write_illm(output, model, meta);
  const double quantize_seconds = seconds_since(start);
  const auto model_bytes = fs::file_size(output);
  log(fmt::format("wrote   {} ({} bytes) in {:.1f} s", output.string(), model_bytes, quantize_seconds));

  nlohmann::ordered_json report;
  std::optional<QualityReport> quality;
  std::optional<double> fake_quant_ppl;
  if (!eval_windows.empty()) {
    const auto fp = calib::FpModel::load(model_dir);
    quality = evaluate_integer_model(model, fp.get(), eval_windows, progress);
    if (opt.fake_quant) fake_quant_ppl = calib::fake_quant_perplexity(calibrated, eval_windows, {FakeQuantPoints::kTraining, opt.threads});
    report["perplexity"] = quality->perplexity;
    report["reference_perplexity"] = quality->reference_perplexity;
    report["kl_mean"] = quality->kl_mean;
    report["top1"] = quality->top1;
    report["predicted_tokens"] = quality->predicted_tokens;
    report["windows"] = quality->windows;
  }
  report["seconds"] = seconds_since(start);
  report["quantize_seconds"] = quantize_seconds;
  if (quality) report["integer_eval_seconds"] = quality->seconds;
  if (fake_quant_ppl) report["fake_quant_perplexity_training_points"] = *fake_quant_ppl;
  report["model_file"] = output.filename().string();
  report["model_bytes"] = model_bytes;
  report["source"] = source.name;
  report["source_sha256"] = source.sha256;
  report["eval_data"] = eval_file ? eval_file->filename().string() : "";
  report["threads"] = calib::thread_count();
  report["paper_conformance"] = opt.paper;
  report["recipe"] = recipe_to_json(recipe);
  report["calibration"] = calibration_to_json(calibration, true);

  // A continuation of a prompt by the integer model.
  Executor executor(model);
  SamplingOptions sampling;
  sampling.max_tokens = opt.max_tokens;
  std::vector<int32_t> prompt_ids;
  std::string prompt_text;
  if (source.tokenizer) {
    prompt_text = opt.prompt.empty() ? prompt_text_default(source) : opt.prompt;
    prompt_ids = source.tokenizer->encode(prompt_text, true);
  } else {
    const auto& w = eval_windows.empty() ? calib_windows.front() : eval_windows.front();
    prompt_ids.assign(w.begin(), w.begin() + std::min<size_t>(8, w.size()));
  }
  const GenerationResult gen = generate_tokens(executor, prompt_ids, sampling);
  std::string continuation;
  if (source.tokenizer) {
    continuation = source.tokenizer->decode(gen.tokens);
  } else {
    for (int32_t id : gen.tokens) continuation += (continuation.empty() ? "" : " ") + std::to_string(id);
  }
  report["generation"] = {{"prompt", prompt_text}, {"prompt_ids", prompt_ids}, {"ids", gen.tokens}, {"text", continuation}};
  write_text_atomically(output.string() + ".json", report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");

  if (opt.json) {
    std::printf("%s\n", report.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return 0;
  }
  std::printf("\n%s  W%dA%d %s  →  %s (%.1f KiB)\n", source.name.c_str(), recipe.w_bits, recipe.a_bits,
              to_string(recipe.method), output.c_str(), static_cast<double>(model_bytes) / 1024.0);
  if (quality) {
    std::printf("evaluated on %s: %lld predicted tokens in %lld windows\n", eval_file->filename().c_str(),
                static_cast<long long>(quality->predicted_tokens), static_cast<long long>(quality->windows));
    std::printf("  %-22s %10s %10s %8s\n", "model", "perplexity", "KL(FP||q)", "top-1");
    std::printf("  %-22s %10.4f %10s %8s\n", "FP (float32)", quality->reference_perplexity, "0", "100 %");
    std::printf("  %-22s %10.4f %10.5f %7.2f %%\n", "integer-only", quality->perplexity, quality->kl_mean,
                100.0 * quality->top1);
    if (fake_quant_ppl) std::printf("  %-22s %10.4f\n", "fake-quant (training)", *fake_quant_ppl);
  }
  std::printf("generation (integer executor, greedy): %s\n", prompt_text.empty() ? "[ids]" : prompt_text.c_str());
  std::printf("  → %s\n", continuation.c_str());
  std::printf("report: %s.json   time: %.1f s\n", output.c_str(), seconds_since(start));
  return 0;
}

}  // namespace

CommandRun add_quantize_command(CLI::App& sub) {
  auto opt = std::make_shared<QuantizeOptions>();
  sub.description(
      "Quantize a Hugging Face LLaMA checkpoint to an integer-only .illm model: calibrate (recipe method rtn, "
      "smoothquant or fsbr), convert every scale to a dyadic number, write the model file (atomically), then compare "
      "the integer executor with FP (perplexity, KL, top-1) and generate a continuation. With no --model: the "
      "bundled tinybible with its calib.txt and test.txt and the quick W4A4 recipe.");
  sub.add_option("--model", opt->model, "Hugging Face LLaMA model directory (default: bundled tinybible)");
  sub.add_option("--recipe", opt->recipe, "Recipe JSON (configs/*.json; default: configs/quick-w4a4.json, a quick recipe)");
  sub.add_option("--calib", opt->calib, "Calibration data: token-id JSONL or text (default: <model>/calib.jsonl or calib.txt)");
  sub.add_option("--eval", opt->eval, "Evaluation data (default: <model>/eval.jsonl or test.txt; none: metrics skipped)");
  sub.add_flag("--no-eval", opt->no_eval, "Skip the evaluation");
  sub.add_option("--max-eval-windows", opt->max_eval_windows, "Evaluate only the first N windows")->check(CLI::PositiveNumber);
  sub.add_option("-o,--output", opt->output, "Output model file (default: <model name>-<recipe name>.illm)");
  sub.add_flag("--paper-conformance", opt->paper,
               "Use the paper's literal integer choices (8-bit mantissas, 8-bit softmax input and probabilities, "
               "linear DI-Exp, shared-max sigmoid) instead of the project defaults");
  sub.add_flag("--fake-quant", opt->fake_quant, "Also report the fake-quant (simulated) perplexity");
  sub.add_option("--prompt", opt->prompt, "Prompt for the generated continuation (models with a tokenizer)");
  sub.add_option("--max-tokens", opt->max_tokens, "Tokens to generate after quantizing")->capture_default_str();
  sub.add_option("--threads", opt->threads, "CPU threads for LibTorch and OpenMP (0: all cores)")->capture_default_str();
  sub.add_flag("--json", opt->json, "Print the report as one JSON object on stdout");
  sub.add_flag("-q,--quiet", opt->quiet, "No progress or log lines on stderr");
  return [opt] { return run_quantize(*opt); };
}

}  // namespace illm::converter
