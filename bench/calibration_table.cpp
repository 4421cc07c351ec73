// Measures the calibration table of issue #4: FP and {rtn, smoothquant, fsbr} × {W8A8, W6A6, W4A8, W4A4}
// fake-quant perplexity, calibration wall time, and per-block reconstruction loss before/after.
// Usage: calibration_table [model_dir] [epochs] [samples] [threads] [eval_windows] [methods] [bits]
//   defaults: <data>/models/stories260K 20 128 2 64 rtn,smoothquant,fsbr 8/8,6/6,4/8,4/4
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

#include <illm/build_info.h>

#include "calibration/calibrate.h"
#include "formats/recipe.h"

namespace {
std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  return out;
}
}  // namespace

int main(int argc, char** argv) {
  using namespace illm;
  const std::string data = build_info::kDataDir;
  const std::filesystem::path model = argc > 1 ? argv[1] : data + "/models/stories260K";
  const int epochs = argc > 2 ? std::atoi(argv[2]) : 20;
  const int samples = argc > 3 ? std::atoi(argv[3]) : 128;
  const int threads = argc > 4 ? std::atoi(argv[4]) : 2;
  const int eval_n = argc > 5 ? std::atoi(argv[5]) : 64;
  const auto methods = split(argc > 6 ? argv[6] : "rtn,smoothquant,fsbr");
  const auto bits = split(argc > 7 ? argv[7] : "8/8,6/6,4/8,4/4");
  const std::string extra = argc > 8 ? argv[8] : "";  // extra JSON keys, e.g. "\"lwc_init\": 8,"
  const bool with_executor_points = argc > 9 && std::string(argv[9]) == "exec";

  const auto calib = calib::read_token_jsonl(model / "calib.jsonl");
  auto eval = calib::read_token_jsonl(model / "eval.jsonl");
  if (static_cast<int>(eval.size()) > eval_n) eval.resize(eval_n);
  std::printf("model %s, eval windows %zu, epochs %d, samples %d, threads %d %s\n", model.c_str(), eval.size(), epochs,
              samples, threads, extra.c_str());
  std::printf("FP ppl %.4f\n", calib::fp_perplexity(model, eval, threads));
  std::fflush(stdout);
  for (const auto& b : bits) {
    const int w = std::atoi(b.substr(0, b.find('/')).c_str()), a = std::atoi(b.substr(b.find('/') + 1).c_str());
    for (const auto& m : methods) {
      const std::string json = "{\"method\": \"" + m + "\", " + extra + "\"w_bits\": " + std::to_string(w) +
                               ", \"a_bits\": " + std::to_string(a) + ", \"epochs\": " + std::to_string(epochs) +
                               ", \"samples\": " + std::to_string(samples) + "}";
      const Recipe r = parse_recipe_json(json, "calibration_table");
      calib::CalibrationReport report;
      calib::CalibrateOptions opt;
      opt.threads = threads;
      opt.show_progress = false;
      const auto cm = calib::calibrate(model, r, calib, &report, opt);
      const double ppl = calib::fake_quant_perplexity(cm, eval, {FakeQuantPoints::kTraining, threads});
      const double ppl_exec = with_executor_points
                                  ? calib::fake_quant_perplexity(cm, eval, {FakeQuantPoints::kExecutor, threads})
                                  : 0.0;
      std::printf("W%dA%d %-11s ppl %.4f (executor points, c=15: %.4f)  calib %.1f s  blocks:", w, a, m.c_str(), ppl,
                  ppl_exec, report.seconds);
      for (const auto& blk : report.blocks)
        std::printf(" %.3g->%.3g(e%d)", blk.loss_before, blk.loss_after, blk.best_epoch + 1);
      std::printf("\n");
      std::fflush(stdout);
    }
  }
  return 0;
}
