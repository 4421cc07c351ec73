// `illm quantize`: HF checkpoint → calibration (RTN / SmoothQuant / FSBR) → integer-only .illm model file, then
// FP vs integer quality on the evaluation data and a generated continuation.
//
// Block streaming and resuming (docs/scale.md): calibration holds one decoder block's float weights at a time;
// each finished block is integerized and committed at once to the work directory <output>.partial
// (converter/quantize_state.h) together with the next block's inputs, so a killed run continues with
// `--resume` from the next block. The model file is assembled from the committed layers at the end.
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
#include "converter/cli_options.h"
#include "converter/commands.h"
#include "converter/output_check.h"
#include "converter/generation.h"
#include "converter/integer_preflight.h"
#include "converter/integer_eval.h"
#include "converter/memory_usage.h"
#include "converter/output_guard.h"
#include "converter/quantize_pipeline.h"
#include "converter/quantize_state.h"
#include "formats/atomic_file.h"
#include "formats/illm_file.h"
#include "formats/input_file.h"
#include "formats/sha256.h"
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
  std::string device = "cpu";
  bool no_eval = false, paper = false, fake_quant = false, json = false, quiet = false, resume = false;
  int64_t max_eval_windows = 0;
  int max_tokens = 40;
  int threads = 0;
};

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(std::max(0.0, seconds) + 0.5);
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, (s / 60) % 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

// Wall times belong in the JSON report only: the model file must be byte-identical across runs.
nlohmann::ordered_json calibration_to_json(const std::string& method, const std::vector<BlockRecord>& blocks,
                                           bool with_times) {
  nlohmann::ordered_json j;
  j["method"] = method;
  double seconds = 0;
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const BlockRecord& b : blocks) {
    nlohmann::ordered_json jb = block_report_json(b.report, with_times);
    if (with_times) jb["peak_rss_bytes"] = b.peak_rss_bytes;
    list.push_back(jb);
    seconds += b.report.seconds;
  }
  if (with_times) j["seconds"] = seconds;
  j["blocks"] = list;
  return j;
}

// " KV8" when the Q/K/V codes are wider or narrower than a_bits (recipe qkv_bits), else "".
std::string bits_suffix(const Recipe& recipe) {
  return qkv_bits_of(recipe) == recipe.a_bits ? "" : " KV" + std::to_string(qkv_bits_of(recipe));
}

// Everything a resumed run must share with the interrupted one for the result to be the same file.
nlohmann::ordered_json run_identity(const SourceModel& source, const Recipe& recipe, const fs::path& calib_file,
                                    const std::vector<std::vector<int32_t>>& calib_windows, const QuantizeOptions& opt) {
  nlohmann::ordered_json files = nlohmann::ordered_json::array();
  std::vector<fs::path> paths = source.store->files();
  std::sort(paths.begin(), paths.end());
  for (const fs::path& p : paths)
    files.push_back({{"name", p.filename().string()},
                     {"bytes", fs::file_size(p)},
                     {"mtime", fs::last_write_time(p).time_since_epoch().count()}});
  formats::Sha256 ids;
  for (const auto& w : calib_windows) {
    const auto n = static_cast<uint64_t>(w.size());
    ids.update(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&n), sizeof n));
    ids.update(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(w.data()), w.size() * sizeof(int32_t)));
  }
  const auto ids_digest = ids.finish();
  nlohmann::ordered_json j;
  j["tool_version"] = build_info::kVersion;
  j["source"] = {{"name", source.name}, {"config_json", source.config_json}, {"files", files}};
  j["recipe"] = recipe_to_json(recipe);
  j["calib"] = {{"file", calib_file.filename().string()},
                {"token_ids_sha256", formats::to_hex(std::span<const uint8_t>(ids_digest.data(), ids_digest.size()))}};
  j["paper_conformance"] = opt.paper;
  j["threads"] = calib::thread_count();
  j["device"] = opt.device;
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
  calib::check_device(opt.device);
  SourceModel source = open_source_model(model_dir);
  check_recipe_for_integer_model(recipe, recipe_path.string(), source.config, opt.paper);
  const fs::path output = opt.output.empty() ? fs::path(source.name + "-" + recipe_path.stem().string() + ".illm")
                                             : fs::path(opt.output);
  const auto calib_file = opt.calib.empty() ? find_in_model_dir(source, {"calib.jsonl", "calib.txt"})
                                            : std::optional<fs::path>(opt.calib);
  if (!calib_file) throw Error("no --calib given and " + model_dir.string() + " has neither calib.jsonl nor calib.txt");
  formats::require_regular_file(*calib_file, "calibration file");
  std::optional<fs::path> eval_file;
  if (!opt.no_eval) {
    eval_file = opt.eval.empty() ? find_in_model_dir(source, {"eval.jsonl", "test.txt"}) : std::optional<fs::path>(opt.eval);
    if (eval_file) formats::require_regular_file(*eval_file, "evaluation file");
    if (!eval_file) log("notice: no --eval given and the model directory has neither eval.jsonl nor test.txt: skipping the metrics");
  }

  // Neither the model file nor its report may overwrite an input or a file of the checkpoint.
  OutputGuard guard;
  guard.add_model_directory(model_dir);
  guard.add_input(recipe_path, "the recipe");
  guard.add_input(*calib_file, "the calibration data");
  if (eval_file) guard.add_input(*eval_file, "the evaluation data");
  const fs::path report_path = output.string() + ".json";
  guard.check(output, "output");
  guard.check(report_path, "report");
  check_output_writable(output);

  // Data first: bad input is reported before the slow part.
  const auto calib_windows = load_calibration_windows(source, *calib_file, recipe);
  std::vector<std::vector<int32_t>> eval_windows;
  if (eval_file) {
    eval_windows = load_evaluation_windows(
        source, *eval_file, opt.max_eval_windows > 0 ? std::optional<int64_t>(opt.max_eval_windows) : std::nullopt);
  }
  log(fmt::format("model   {} ({} layers, hidden {}, vocab {})", model_dir.string(), source.config.num_hidden_layers,
                  source.config.hidden_size, source.config.vocab_size));
  log(fmt::format("recipe  {} ({}, W{}A{}{}, {} epochs x {} samples x {} tokens){}", recipe_path.string(),
                  to_string(recipe.method), recipe.w_bits, recipe.a_bits, bits_suffix(recipe), recipe.epochs, recipe.samples,
                  recipe.seq_len, recipe_path.stem().string().rfind("quick", 0) == 0 ? "  [quick recipe]" : ""));
  log(fmt::format("calib   {} ({} windows)", calib_file->string(), calib_windows.size()));

  // Calibration, block by block, into the work directory (resumable).
  const IntegerSettings settings = integer_settings_for(recipe.w_bits, recipe.a_bits, opt.paper);
  const int n_layers = static_cast<int>(source.config.num_hidden_layers);
  QuantizeState state =
      QuantizeState::open(output, run_identity(source, recipe, *calib_file, calib_windows, opt), opt.resume);
  if (opt.resume && !state.resumed())
    log(fmt::format("notice: nothing to resume (no {}): starting from the first block", state.dir().string()));
  if (state.resumed())
    log(fmt::format("resume  {}: {} of {} blocks done, continuing with block {}", state.dir().string(),
                    state.next_block(), n_layers, std::min(state.next_block() + 1, n_layers)));
  const int first_block = state.next_block();
  source.store->add_tensor_digests(state.tensor_digests());
  const auto calibration_start = Clock::now();
  if (first_block < n_layers) {
    calib::CalibrateOptions calibrate_options;
    calibrate_options.threads = opt.threads;
    calibrate_options.show_progress = progress;
    calibrate_options.device = opt.device;
    calibrate_options.work_dir = state.dir();
    calibrate_options.first_block = first_block;
    int done_here = 0;
    calib::calibrate_blocks(
        source.config, *source.store, recipe, calib_windows,
        [&](calib::CalibratedBlock&& block) {
          if (!block.head_hessian.empty()) state.write_head_hessian(block.head_hessian);
          const QuantizedLayer layer =
              integerize_layer(std::move(block.layer), settings, static_cast<int32_t>(source.config.head_dim()),
                               OnlineHadamards{recipe.hadamard_down, recipe.hadamard_qk},
                               static_cast<size_t>(block.index), recipe.trip_shifts);
          const BlockRecord record{block.report, peak_rss_bytes()};
          state.commit_block(block.index, layer, record, source.store->tensor_digests());
          ++done_here;
          const double per_block = seconds_since(calibration_start) / done_here;
          log(fmt::format("[block {}/{}] done in {:.1f} s; ETA {} for the remaining {} blocks; peak RSS {}",
                          block.index + 1, n_layers, block.report.seconds,
                          format_duration(per_block * (n_layers - 1 - block.index)), n_layers - 1 - block.index,
                          format_bytes(record.peak_rss_bytes)));
        },
        calibrate_options);
  }

  // FP logits of the evaluation windows first (the FP model streams its blocks), then the integer model, in
  // memory once: assembled from the committed layers, the embedding and the head.
  std::optional<FpReference> fp_reference;
  if (!eval_windows.empty()) fp_reference = fp_reference_logits(*calib::FpModel::load(model_dir), eval_windows, progress);
  calib::CalibratedModel frame = calib::calibrated_model_frame(source.config, recipe);
  if (recipe.gptq_head) frame.head_hessian = state.read_head_hessian(source.config.hidden_size);
  const QuantizedModel model =
      assemble_integer_model(source, recipe, frame, settings, [&](int l) { return state.read_layer(l); });
  source.sha256 = checkpoint_sha256(source);  // every tensor was hashed while it was read

  formats::IllmMetadata meta = model_metadata(source, recipe, calibration_to_json(frame.method, state.blocks(), false).dump());
  meta.golden = record_golden_vectors(model, eval_windows.empty() ? calib_windows : eval_windows);
  formats::write_illm(output, model, meta);
  const double quantize_seconds = seconds_since(start);
  const auto model_bytes = fs::file_size(output);
  log(fmt::format("wrote   {} ({} bytes) in {:.1f} s", output.string(), model_bytes, quantize_seconds));

  nlohmann::ordered_json report;
  std::optional<QualityReport> quality;
  std::optional<double> fake_quant_ppl;
  if (!eval_windows.empty()) {
    quality = evaluate_integer_model(model, &*fp_reference, eval_windows, progress);
    if (opt.fake_quant) {
      // The fake-quant simulation needs the whole calibrated float model: a second, in-memory calibration
      // (fixture-sized models).
      calib::CalibrateOptions in_memory;
      in_memory.threads = opt.threads;
      in_memory.show_progress = false;
      fake_quant_ppl = calib::fake_quant_perplexity(calib::calibrate(model_dir, recipe, calib_windows, nullptr, in_memory),
                                                    eval_windows, {FakeQuantPoints::kTraining, opt.threads});
    }
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
  report["device"] = opt.device;
  report["resumed_from_block"] = first_block;
  report["calibration"] = calibration_to_json(frame.method, state.blocks(), true);

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
  report["peak_rss_bytes"] = peak_rss_bytes();
  write_text_atomically(report_path, report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  state.remove();  // the model file and its report are written: nothing is left to resume

  if (opt.json) {
    std::printf("%s\n", report.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return 0;
  }
  std::printf("\n%s  W%dA%d%s %s  →  %s (%.1f KiB)\n", source.name.c_str(), recipe.w_bits, recipe.a_bits,
              bits_suffix(recipe).c_str(), to_string(recipe.method), output.c_str(), static_cast<double>(model_bytes) / 1024.0);
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
  std::printf("report: %s.json   time: %.1f s   peak RSS: %s\n", output.c_str(), seconds_since(start),
              format_bytes(peak_rss_bytes()).c_str());
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
  sub.add_flag("--fake-quant", opt->fake_quant,
               "Also report the fake-quant (simulated) perplexity (calibrates a second time, in memory: for "
               "fixture-sized models)");
  sub.add_option("--prompt", opt->prompt, "Prompt for the generated continuation (models with a tokenizer)");
  sub.add_option("--max-tokens", opt->max_tokens, "Tokens to generate after quantizing")->capture_default_str();
  add_threads_option(sub, opt->threads, "CPU threads for LibTorch and OpenMP (0: all cores)");
  sub.add_option("--device", opt->device,
                 "Where calibration runs: cpu, or cuda (needs an illm built against a CUDA-enabled LibTorch, "
                 "docs/scale.md); the model file is the same kind of file either way")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  sub.add_flag("--resume", opt->resume,
               "Continue an interrupted run from its last completed block (state in <output>.partial/, kept until "
               "the model file is written); the result is byte-identical to an uninterrupted run");
  sub.add_flag("--json", opt->json, "Print the report as one JSON object on stdout");
  sub.add_flag("-q,--quiet", opt->quiet, "No progress or log lines on stderr");
  return [opt] { return run_quantize(*opt); };
}

}  // namespace illm::converter
