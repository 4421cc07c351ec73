// Ablation of the W4A4 levers (issue #12; docs/results.md "W4A4 levers"): for one model and one base recipe, each
// row adds recipe keys (rotations, GPTQ, activation clipping, TRIP, per-group weights, ...) and is measured side by
// side: calibration wall time, fake-quant perplexity / KL / top-1 against FP (training quantization points, or the
// executor's with --points executor), and the
// integer executor's where the integer path exists for the row (else "–"). Rows are printed as markdown as they
// finish (a run takes minutes per row on a 2-core machine).
//
//   ablation_table --model models/tinybible --recipe configs/w4a4.json --set '{"method": "rtn"}'
//       --eval-windows 60 --integer --preset levers     (one command line)
//   ablation_table ... --row 'rot+gptq={"rotation": "orthogonal", "rotate_heads": true, "gptq": true}'
//
// Data: the model directory's calib.jsonl / calib.txt and eval.jsonl / test.txt, read as `illm quantize` reads them.
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <illm/build_info.h>
#include <nlohmann/json.hpp>

#include "calibration/calibrate.h"
#include "calibration/fp_model.h"
#include "calibration/integerize.h"
#include "calibration/threads.h"
#include "converter/integer_eval.h"
#include "converter/metrics.h"
#include "converter/quantize_pipeline.h"
#include "kernels/error.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Row {
  std::string name;
  json keys;
};

// Each lever alone on the base recipe, then the combinations of the simulation, then per-group weights.
std::vector<Row> preset(const std::string& name) {
  const json rot = {{"rotation", "orthogonal"}, {"rotate_heads", true}};
  auto with = [](json a, const json& b) {
    a.update(b);
    return a;
  };
  const json rot_down = with(rot, {{"hadamard_down", true}});
  const json rot_all = with(rot_down, {{"hadamard_qk", true}});
  if (name == "levers")
    return {{"base", json::object()},
            {"rot (offline: residual orthogonal + heads)", rot},
            {"rot hadamard (offline: residual random Hadamard + heads)", {{"rotation", "hadamard"}, {"rotate_heads", true}}},
            {"rot + online down", rot_down},
            {"rot + online down + online qk", rot_all},
            {"gptq", {{"gptq", true}}},
            {"gptq act-order", {{"gptq", true}, {"gptq_act_order", true}}},
            {"act clip search", {{"act_clip", "search"}}},
            {"trip K=3", {{"trip_shifts", 3}}},
            {"rot + gptq", with(rot, {{"gptq", true}})},
            {"rot + online all + gptq", with(rot_all, {{"gptq", true}})},
            {"rot + online all + gptq + clip", with(rot_all, {{"gptq", true}, {"act_clip", "search"}})},
            {"rot + online all + gptq + clip + trip", with(rot_all, {{"gptq", true}, {"act_clip", "search"}, {"trip_shifts", 3}})}};
  if (name == "groups")
    return {{"g128", {{"w_granularity", "per_group"}, {"group_size", 128}}},
            {"g64", {{"w_granularity", "per_group"}, {"group_size", 64}}},
            {"g32", {{"w_granularity", "per_group"}, {"group_size", 32}}},
            {"rot + online all + gptq + clip, g64",
             with(rot_all, {{"gptq", true}, {"act_clip", "search"}, {"w_granularity", "per_group"}, {"group_size", 64}})},
            {"rot + online all + gptq + clip, g32",
             with(rot_all, {{"gptq", true}, {"act_clip", "search"}, {"w_granularity", "per_group"}, {"group_size", 32}})}};
  if (name == "integer")  // what the integer path runs today
    return {{"base", json::object()},
            {"rot (offline)", rot},
            {"gptq", {{"gptq", true}}},
            {"rot + gptq", with(rot, {{"gptq", true}})},
            {"rot + gptq act-order", with(rot, {{"gptq", true}, {"gptq_act_order", true}})}};
  throw illm::Error("unknown preset " + name + " (levers, groups, integer)");
}

json read_json_file(const fs::path& p) {
  std::ifstream in(p);
  if (!in) throw illm::Error("cannot open " + p.string());
  return json::parse(in);
}

struct Quality {
  double ppl = 0, kl = 0, top1 = 0;
};

std::string pct(double ppl, double fp) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%+.2f %%", 100 * (ppl / fp - 1));
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace illm;
  CLI::App app{"Ablation of the W4A4 levers: fake-quant and integer quality with calibration time"};
  std::string model_dir, recipe_file = std::string(build_info::kDataDir) + "/configs/w4a4.json", set_json = "{}",
              preset_name;
  std::vector<std::string> row_specs;
  int64_t eval_windows = 60;
  int threads = 2;
  bool integer = false;
  std::string points = "training";
  std::string eval_data;
  app.add_option("--model", model_dir, "model directory")->required();
  app.add_option("--recipe", recipe_file, "base recipe file");
  app.add_option("--set", set_json, "JSON object of keys that override the base recipe (e.g. epochs, samples)");
  app.add_option("--preset", preset_name, "rows: levers | groups | integer");
  app.add_option("--row", row_specs, "extra row NAME=JSON (keys added to the base recipe)");
  app.add_option("--eval-windows", eval_windows, "first N evaluation windows (0 = all)");
  app.add_option("--eval-data", eval_data,
                 "evaluation file in the model directory (default: eval.jsonl or test.txt; calib.jsonl / calib.txt "
                 "measures on the calibration text)");
  app.add_option("--threads", threads, "threads");
  app.add_flag("--integer", integer, "also evaluate the integer executor where the row allows it");
  app.add_option("--points", points,
                 "fake-quant quantization points: training (float online Hadamards) or executor (the integer "
                 "executor's points: 16-bit codes into the online Hadamards, as the integer operator)")
      ->check(CLI::IsMember({"training", "executor"}));
  CLI11_PARSE(app, argc, argv);

  try {
    calib::set_thread_count(threads);
    std::vector<Row> rows = preset_name.empty() ? std::vector<Row>{} : preset(preset_name);
    for (const std::string& spec : row_specs) {
      const size_t eq = spec.find('=');
      if (eq == std::string::npos) throw Error("--row must be NAME=JSON, got " + spec);
      rows.push_back({spec.substr(0, eq), json::parse(spec.substr(eq + 1))});
    }
    if (rows.empty()) throw Error("no rows: give --preset or --row");
    json base = read_json_file(recipe_file);
    base.update(json::parse(set_json));

    const converter::SourceModel source = converter::open_source_model(model_dir);
    const auto calib_file = converter::find_in_model_dir(source, {"calib.jsonl", "calib.txt"});
    const auto eval_file = eval_data.empty() ? converter::find_in_model_dir(source, {"eval.jsonl", "test.txt"})
                                             : std::optional<fs::path>(source.dir / eval_data);
    if (!calib_file || !eval_file) throw Error(model_dir + " needs calibration and evaluation data");
    const auto eval = converter::load_evaluation_windows(
        source, *eval_file, eval_windows > 0 ? std::optional<int64_t>(eval_windows) : std::nullopt);
    const int64_t vocab = source.config.vocab_size;

    // FP logits once (kept for KL / top-1 of every row).
    const auto fp_model = calib::FpModel::load(model_dir);
    std::vector<std::vector<float>> fp_logits(eval.size());
    converter::PerplexityAccumulator fp_ppl;
    fp_model->for_each_logits(eval, 16, [&](size_t i, std::span<const float> l) {
      fp_logits[i].assign(l.begin(), l.end());
      fp_ppl.add_window(l, eval[i], vocab);
    });
    const double fp = fp_ppl.perplexity();
    std::printf("model %s, base %s + %s, eval %s: %zu windows (%lld predicted tokens), FP ppl %.4f, threads %d\n\n",
                source.name.c_str(), recipe_file.c_str(), set_json.c_str(), eval_file->filename().c_str(), eval.size(),
                static_cast<long long>(fp_ppl.count()), fp, threads);
    std::printf("| row | calib s | fake-quant ppl | Δ FP | KL | top-1 | integer ppl | Δ FP | KL | top-1 |\n");
    std::printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    std::fflush(stdout);

    for (const Row& row : rows) {
      json j = base;
      j.update(row.keys);
      const Recipe recipe = parse_recipe_json(j.dump(), row.name);
      const auto calib_windows = converter::load_calibration_windows(source, *calib_file, recipe);
      calib::CalibrationReport report;
      calib::CalibrateOptions options;
      options.threads = threads;
      options.show_progress = false;
      const calib::CalibratedModel cm = calib::calibrate(model_dir, recipe, calib_windows, &report, options);

      auto score = [&](auto&& for_each) {
        converter::PerplexityAccumulator ppl;
        converter::AgreementAccumulator agree;
        for_each([&](size_t i, std::span<const float> l) {
          ppl.add_window(l, eval[i], vocab);
          agree.add_window(fp_logits[i], l, vocab);
        });
        return Quality{ppl.perplexity(), agree.mean_kl(), agree.top1()};
      };
      const Quality fq = score([&](const calib::LogitsConsumer& c) {
        calib::fake_quant_for_each_logits(
            cm, eval, {points == "executor" ? FakeQuantPoints::kExecutor : FakeQuantPoints::kTraining, threads}, c);
      });
      std::string integer_cells = "– | – | – | –";
      bool integer_ok = true;
      try {
        require_integer_path(recipe, row.name);
      } catch (const Error&) {
        integer_ok = false;
      }
      if (integer && integer_ok) {
        const QuantizedModel qm = integerize(cm, integer_settings_for(recipe.w_bits, recipe.a_bits, false));
        const Quality iq = score([&](const converter::FloatLogitsConsumer& c) {
          converter::for_each_integer_logits(qm, eval, c, false);
        });
        char buf[160];
        std::snprintf(buf, sizeof buf, "%.4f | %s | %.5f | %.2f %%", iq.ppl, pct(iq.ppl, fp).c_str(), iq.kl,
                      100 * iq.top1);
        integer_cells = buf;
      }
      std::printf("| %s | %.0f | %.4f | %s | %.5f | %.2f %% | %s |\n", row.name.c_str(), report.seconds, fq.ppl,
                  pct(fq.ppl, fp).c_str(), fq.kl, 100 * fq.top1, integer_cells.c_str());
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ablation_table: %s\n", e.what());
    return 1;
  }
  return 0;
}
