// Measures the calibration table of issue #4: FP and {rtn, smoothquant, fsbr} × {W8A8, W6A6, W4A8, W4A4}
// fake-quant perplexity, calibration wall time, and per-block reconstruction loss before/after.
// Usage: calibration_table [model_dir] [epochs] [samples] [threads] [eval_windows] [methods] [bits] [extra] [exec]
//   defaults: <data>/models/stories260K 20 128 2 64 rtn,smoothquant,fsbr 8/8,6/6,4/8,4/4 "" -
//   epochs "recipe": use <data>/configs/w<W>a<A>.json as is (its epochs/samples; "fsbr" replaced by the method);
//     `samples` is then ignored.
//   extra: JSON keys added to every recipe, e.g. "\"lwc_init\": 8, " (in recipe mode they override the file).
//   Data: calib.jsonl / eval.jsonl of the model directory when present (stories260K), else calib.txt / test.txt
//   encoded with the model's tokenizer.model into 256-token windows (tinybible; partial last window dropped).
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include <illm/build_info.h>

#include "calibration/calibrate.h"
#include "formats/dataset.h"
#include "formats/llama_config.h"
#include "formats/recipe.h"
#include "formats/tokenizer.h"

namespace {
namespace fs = std::filesystem;

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  return out;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Windows of the model's own data file: `jsonl` when present, else `text` (256-token windows, full ones only).
illm::calib::TokenWindows windows_of(const fs::path& model, const char* jsonl, const char* text) {
  const illm::formats::LlamaConfig cfg = illm::formats::load_llama_config(model);
  if (fs::exists(model / jsonl))
    return illm::formats::load_windows(model / jsonl, nullptr, std::nullopt, cfg.vocab_size,
                                       cfg.max_position_embeddings)
        .sequences;
  const auto tok = illm::formats::Tokenizer::load(model / "tokenizer.model");
  auto seqs = illm::formats::load_windows(model / text, &tok, 256, cfg.vocab_size, cfg.max_position_embeddings)
                  .sequences;
  while (!seqs.empty() && seqs.back().size() < 256) seqs.pop_back();
  return seqs;
}
}  // namespace

int main(int argc, char** argv) {
  using namespace illm;
  const std::string data = build_info::kDataDir;
  const fs::path model = argc > 1 ? argv[1] : data + "/models/stories260K";
  const std::string epochs_arg = argc > 2 ? argv[2] : "20";
  const bool from_recipe_files = epochs_arg == "recipe";
  const int epochs = from_recipe_files ? 0 : std::atoi(epochs_arg.c_str());
  const int samples = argc > 3 ? std::atoi(argv[3]) : 128;
  const int threads = argc > 4 ? std::atoi(argv[4]) : 2;
  const int eval_n = argc > 5 ? std::atoi(argv[5]) : 64;
  const auto methods = split(argc > 6 ? argv[6] : "rtn,smoothquant,fsbr");
  const auto bits = split(argc > 7 ? argv[7] : "8/8,6/6,4/8,4/4");
  const std::string extra = argc > 8 ? argv[8] : "";
  const bool with_executor_points = argc > 9 && std::string(argv[9]) == "exec";

  const auto calib = windows_of(model, "calib.jsonl", "calib.txt");
  auto eval = windows_of(model, "eval.jsonl", "test.txt");
  if (static_cast<int>(eval.size()) > eval_n) eval.resize(eval_n);
  std::printf("model %s, calib windows %zu, eval windows %zu, epochs %s, samples %d, threads %d %s\n",
              model.c_str(), calib.size(), eval.size(), epochs_arg.c_str(), samples, threads, extra.c_str());
  std::printf("FP ppl %.4f\n", calib::fp_perplexity(model, eval, threads));
  std::fflush(stdout);
  for (const auto& b : bits) {
    const int w = std::atoi(b.substr(0, b.find('/')).c_str()), a = std::atoi(b.substr(b.find('/') + 1).c_str());
    for (const auto& m : methods) {
      std::string json;
      if (from_recipe_files) {
        json = read_text(fs::path(data) / "configs" / ("w" + std::to_string(w) + "a" + std::to_string(a) + ".json"));
        json.replace(json.find("\"fsbr\""), 6, "\"" + m + "\"");
        std::string keys = extra;  // appended last so that they override the file's values
        while (!keys.empty() && (keys.back() == ' ' || keys.back() == ',')) keys.pop_back();
        if (!keys.empty()) json.insert(json.rfind('}'), ", " + keys);
      } else {
        json = "{\"method\": \"" + m + "\", " + extra + "\"w_bits\": " + std::to_string(w) +
               ", \"a_bits\": " + std::to_string(a) + ", \"epochs\": " + std::to_string(epochs) +
               ", \"samples\": " + std::to_string(samples) + "}";
      }
      const Recipe r = parse_recipe_json(json, "calibration_table");
      calib::CalibrationReport report;
      calib::CalibrateOptions opt;
      opt.threads = threads;
      opt.show_progress = false;
      const auto cm = calib::calibrate(model, r, calib, &report, opt);
      const double ppl = calib::fake_quant_perplexity(cm, eval, {FakeQuantPoints::kTraining, threads});
      std::printf("W%dA%d %-11s ppl %.4f", w, a, m.c_str(), ppl);
      if (with_executor_points)
        std::printf(" (executor points: %.4f)",
                    calib::fake_quant_perplexity(cm, eval, {FakeQuantPoints::kExecutor, threads}));
      std::printf("  calib %.1f s (%d ep x %d samples)  blocks:", report.seconds, r.epochs, r.samples);
      for (const auto& blk : report.blocks)
        std::printf(" %.4g->%.4g(e%d)", blk.loss_before, blk.loss_after, blk.best_epoch + 1);
      std::printf("\n");
      std::fflush(stdout);
    }
  }
  return 0;
}
