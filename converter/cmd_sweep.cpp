// `illm sweep`: integer-only quality over a grid of bit settings × softmax clip constants c. Calibration runs
// once per bit setting (FSBR trains with the FP softmax, docs/method.md §9 #21, so the calibrated float model does not
// depend on c); c only changes the integer model, so each grid point is integerize + integer evaluation. Every
// finished point is saved at once as DIR/points/<bits>-c<c>.json (atomically), which makes the sweep resumable and
// lets shards share one DIR; results.csv, results.json and sweep.svg are rebuilt from all point files present.
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "calibration/calibrate.h"
#include "calibration/fp_model.h"
#include "calibration/integerize.h"
#include "calibration/threads.h"
#include "converter/cli_options.h"
#include "converter/commands.h"
#include "converter/integer_eval.h"
#include "converter/integer_preflight.h"
#include "converter/metrics.h"
#include "converter/output_guard.h"
#include "converter/plot_svg.h"
#include "converter/progress.h"
#include "converter/quantize_pipeline.h"
#include "formats/illm_file.h"
#include "formats/input_file.h"
#include "formats/sha256.h"
#include "kernels/error.h"
#include <illm/build_info.h>

namespace illm::converter {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::ordered_json;

struct SweepOptions {
  std::string model;  // empty: bundled tinybible
  std::string clips = "8,10,12,15,20,none";
  std::string bits = "w4a4,w4a8,w6a6,w8a8";
  std::string method;      // empty: each recipe's own
  std::string recipe_dir;  // empty: bundled configs/
  std::string calib, eval, output, shard = "0/1";
  std::vector<std::string> merge;  // --merge: shard output directories to gather
  int64_t max_eval_windows = 0;
  int threads = 0;
  bool json = false, keep_models = false, paper = false, quiet = false;
};

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(std::max(0.0, seconds) + 0.5);
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, (s / 60) % 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

std::vector<std::string> split_list(const std::string& text, const char* what) {
  std::vector<std::string> items;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, ',')) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (item.empty()) throw Error(fmt::format("{} \"{}\": empty entry", what, text));
    items.push_back(item);
  }
  if (items.empty()) throw Error(fmt::format("{} is empty", what));
  return items;
}

// ---- The grid ------------------------------------------------------------------------------------------------

// A softmax clip constant: c > 0, or no clipping.
struct Clip {
  std::optional<double> c;
  std::string name() const { return c ? fmt::format("{:g}", *c) : "none"; }
  Json to_json() const { return c ? Json(*c) : Json("none"); }
  // Plot / table order: ascending c, no clipping last.
  friend bool operator<(const Clip& a, const Clip& b) {
    if (!a.c || !b.c) return a.c.has_value() && !b.c.has_value();
    return *a.c < *b.c;
  }
  friend bool operator==(const Clip& a, const Clip& b) = default;
};

Clip parse_clip(const std::string& text) {
  if (text == "none") return {};
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value))
    throw Error(fmt::format("--clip: \"{}\" is neither a number nor \"none\"", text));
  if (value <= 0) throw Error(fmt::format("--clip: c = {} must be > 0 (x − max ≥ −c)", text));
  if (value < kMinClipC || value > kMaxClipC)
    throw Error(fmt::format("--clip: c = {} is outside [{:g}, {:g}]", text, kMinClipC, kMaxClipC));
  return {value};
}

std::vector<Clip> parse_clips(const std::string& text) {
  std::vector<Clip> clips;
  for (const auto& item : split_list(text, "--clip")) {
    const Clip c = parse_clip(item);
    if (std::find(clips.begin(), clips.end(), c) != clips.end())
      throw Error(fmt::format("--clip: c = {} is listed twice", c.name()));
    clips.push_back(c);
  }
  return clips;
}

// A bit setting "wNaM" and its recipe (<recipe dir>/wNaM.json with the method overridden).
struct BitSetting {
  std::string name;
  Recipe recipe;
};

std::vector<BitSetting> load_bit_settings(const std::string& text, const fs::path& recipe_dir,
                                          const std::string& method) {
  std::vector<BitSetting> settings;
  for (const auto& name : split_list(text, "--bits")) {
    int w = 0, a = 0;
    char tail = 0;
    if (std::sscanf(name.c_str(), "w%da%d%c", &w, &a, &tail) != 2 || name != fmt::format("w{}a{}", w, a))
      throw Error(fmt::format("--bits: unknown bit setting \"{}\" (expected wNaM, e.g. w4a4)", name));
    const fs::path file = recipe_dir / (name + ".json");
    if (!fs::exists(file))
      throw Error(fmt::format("--bits: unknown bit setting \"{}\": no recipe {}", name, file.string()));
    for (const auto& s : settings)
      if (s.name == name) throw Error(fmt::format("--bits: \"{}\" is listed twice", name));
    Recipe recipe = load_recipe(file);
    if (recipe.w_bits != w || recipe.a_bits != a)
      throw Error(fmt::format("{}: the recipe is W{}A{}, not {} as its name says", file.string(), recipe.w_bits,
                              recipe.a_bits, name));
    if (method == "rtn") recipe.method = QuantMethod::kRtn;
    if (method == "smoothquant") recipe.method = QuantMethod::kSmoothQuant;
    if (method == "fsbr") recipe.method = QuantMethod::kFsbr;
    recipe.clip_search = false;  // c is the grid's, never searched
    settings.push_back({name, recipe});
  }
  return settings;
}

struct Shard {
  int index = 0, count = 1;
};

Shard parse_shard(const std::string& text) {
  Shard s;
  char slash = 0, tail = 0;
  if (std::sscanf(text.c_str(), "%d%c%d%c", &s.index, &slash, &s.count, &tail) != 3 || slash != '/' ||
      text != fmt::format("{}/{}", s.index, s.count) || s.count < 1 || s.index < 0 || s.index >= s.count)
    throw Error(fmt::format("--shard \"{}\": expected i/n with 0 ≤ i < n, e.g. 0/2", text));
  return s;
}

std::string point_id(const std::string& bits, const Clip& clip) { return bits + "-c" + clip.name(); }

// ---- Point files ---------------------------------------------------------------------------------------------

std::string file_hash(const fs::path& file) {
  const formats::Sha256Digest d = formats::sha256_of_file(file);
  return formats::to_hex(std::span<const uint8_t>(d.data(), d.size()));
}

// What every point of one DIR must share for its numbers to be comparable (no absolute paths).
Json setup_json(const SourceModel& source, const std::string& method, const fs::path& calib_file,
                const fs::path& eval_file, size_t eval_windows, bool paper) {
  Json j;
  j["source"] = source.name;
  j["source_sha256"] = source.sha256;
  j["method"] = method.empty() ? "per recipe" : method;
  j["calib_data"] = calib_file.filename().string();
  j["calib_sha256"] = file_hash(calib_file);
  j["eval_data"] = eval_file.filename().string();
  j["eval_sha256"] = file_hash(eval_file);
  j["eval_windows"] = eval_windows;
  j["paper_conformance"] = paper;
  return j;
}

struct PointFile {
  fs::path path;
  Json json;
};

Json read_json_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(file.string() + ": cannot be read");
  std::stringstream text;
  text << in.rdbuf();
  try {
    return Json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    throw Error(file.string() + ": not valid JSON (" + std::string(e.what()) + "); delete it to recompute the point");
  }
}

// Every DIR/points/*.json, checked to belong to the same setup.
std::map<std::string, PointFile> read_point_files(const fs::path& points_dir, const Json& setup) {
  std::map<std::string, PointFile> points;
  if (!fs::is_directory(points_dir)) return points;
  for (const auto& entry : fs::directory_iterator(points_dir)) {
    const fs::path& p = entry.path();
    if (p.extension() != ".json" || p.filename().string().front() == '.') continue;
    Json j = read_json_file(p);
    for (const char* key : {"bits", "c", "perplexity", "reference_perplexity", "setup"})
      if (!j.contains(key)) throw Error(fmt::format("{}: not a sweep point file (no \"{}\")", p.string(), key));
    if (j["setup"] != setup)
      throw Error(fmt::format("{} was computed with another setup ({}; now {}): use another -o directory",
                              p.string(), j["setup"].dump(), setup.dump()));
    points[p.stem().string()] = {p, std::move(j)};
  }
  return points;
}

// ---- Results: CSV, JSON, SVG ---------------------------------------------------------------------------------

Clip clip_of(const Json& point) {
  return point["c"].is_string() ? Clip{} : Clip{point["c"].get<double>()};
}

// Points in table order: the bit settings of this run's --bits first (in that order), others by name; then c.
std::vector<const Json*> ordered_points(const std::map<std::string, PointFile>& files,
                                        const std::vector<BitSetting>& settings) {
  std::vector<const Json*> points;
  for (const auto& [id, f] : files) points.push_back(&f.json);
  auto rank = [&](const std::string& bits) {
    for (size_t i = 0; i < settings.size(); ++i)
      if (settings[i].name == bits) return static_cast<int>(i);
    return static_cast<int>(settings.size());
  };
  std::stable_sort(points.begin(), points.end(), [&](const Json* a, const Json* b) {
    const std::string ba = (*a)["bits"], bb = (*b)["bits"];
    if (rank(ba) != rank(bb)) return rank(ba) < rank(bb);
    if (ba != bb) return ba < bb;
    return clip_of(*a) < clip_of(*b);
  });
  return points;
}

std::string results_csv(const std::vector<const Json*>& points) {
  std::string csv =
      "bits,c,method,perplexity,reference_perplexity,kl_mean,top1,model_bytes,calibration_seconds,"
      "integer_eval_seconds\n";
  for (const Json* p : points) {
    const Json& j = *p;
    csv += fmt::format("{},{},{},{:.6f},{:.6f},{:.6g},{:.6f},{},{:.2f},{:.2f}\n", j["bits"].get<std::string>(),
                       clip_of(j).name(), j["method"].get<std::string>(), j["perplexity"].get<double>(),
                       j["reference_perplexity"].get<double>(), j["kl_mean"].get<double>(), j["top1"].get<double>(),
                       j["model_bytes"].get<int64_t>(), j["calibration_seconds"].get<double>(),
                       j["integer_eval_seconds"].get<double>());
  }
  return csv;
}

// One object per point; the FP perplexity appears once, as fp.reference_perplexity (the only key named
// `perplexity` is each point's own integer perplexity).
Json results_json(const std::vector<const Json*>& points, const Json& setup) {
  Json j;
  j["setup"] = setup;
  j["fp"] = {{"reference_perplexity", points.empty() ? 0.0 : (*points.front())["reference_perplexity"].get<double>()}};
  Json rows = Json::array();
  for (const Json* p : points) {
    Json row;
    for (auto it = p->begin(); it != p->end(); ++it)
      if (it.key() != "setup" && it.key() != "reference_perplexity") row[it.key()] = it.value();
    rows.push_back(row);
  }
  j["points"] = rows;
  return j;
}

std::string results_svg(const std::vector<const Json*>& points, const Json& setup) {
  LinePlot plot;
  const double fp = (*points.front())["reference_perplexity"].get<double>();
  std::vector<Clip> clips;
  std::vector<std::string> bits;
  for (const Json* p : points) {
    const Clip c = clip_of(*p);
    if (std::find(clips.begin(), clips.end(), c) == clips.end()) clips.push_back(c);
    if (std::find(bits.begin(), bits.end(), (*p)["bits"]) == bits.end()) bits.push_back((*p)["bits"]);
  }
  std::sort(clips.begin(), clips.end());
  for (const auto& c : clips) plot.x_categories.push_back(c.name());
  std::vector<double> values{fp};
  for (const auto& b : bits) {
    PlotSeries s;
    s.name = b;
    std::transform(s.name.begin(), s.name.end(), s.name.begin(), ::toupper);
    s.y.resize(clips.size());
    for (const Json* p : points) {
      if ((*p)["bits"] != b) continue;
      const size_t i = std::find(clips.begin(), clips.end(), clip_of(*p)) - clips.begin();
      s.y[i] = (*p)["perplexity"].get<double>();
      values.push_back(*s.y[i]);
    }
    plot.series.push_back(std::move(s));
  }
  const std::string method = (*points.front())["method"];
  plot.title = fmt::format("{}: integer-only perplexity vs softmax clip c", setup["source"].get<std::string>());
  plot.subtitle = fmt::format("{} calibration, {} ({} windows), FP perplexity {:.4f}", method,
                              setup["eval_data"].get<std::string>(), setup["eval_windows"].get<int64_t>(), fp);
  plot.x_label = "softmax clip constant c (x − max ≥ −c; none = no clipping)";
  plot.y_label = "perplexity";
  plot.reference_y = fp;
  plot.reference_label = fmt::format("FP {:.3f}", fp);
  plot.log_y = prefers_log_axis(values);
  return render_line_plot_svg(plot);
}

// ---- One grid point ------------------------------------------------------------------------------------------

struct PointQuality {
  double perplexity = 0, kl_mean = 0, top1 = 0, seconds = 0;
  int64_t predicted_tokens = 0;
};

PointQuality evaluate_point(const QuantizedModel& model, const FpReference& fp,
                            const std::vector<std::vector<int32_t>>& windows, bool progress) {
  const auto start = Clock::now();
  PerplexityAccumulator ppl;
  AgreementAccumulator agreement;
  for_each_integer_logits(model, windows, [&](std::size_t i, std::span<const float> logits) {
    ppl.add_window(logits, windows[i], model.shape.vocab);
    agreement.add_window(fp.logits[i], logits, model.shape.vocab);
  }, progress);
  return {ppl.perplexity(), agreement.mean_kl(), agreement.top1(), seconds_since(start), ppl.count()};
}

// ---- The command ---------------------------------------------------------------------------------------------

void check_output_dir(const fs::path& dir) {
  if (fs::exists(dir) && !fs::is_directory(dir)) throw Error("-o " + dir.string() + " exists and is not a directory");
  std::error_code ec;
  fs::create_directories(dir / "points", ec);
  if (ec) throw Error("-o " + dir.string() + ": cannot create the directory (" + ec.message() + ")");
  if (::access((dir / "points").c_str(), W_OK) != 0) throw Error("-o " + dir.string() + " is not writable");
}

// results.csv, results.json and sweep.svg of `points` in `out_dir`, then the table on stdout (results.json with
// `json`), ending with `summary`.
void write_results(const fs::path& out_dir, const std::vector<const Json*>& points, const Json& setup, bool json,
                   const std::string& summary) {
  const Json results = results_json(points, setup);
  write_text_atomically(out_dir / "results.csv", results_csv(points));
  write_text_atomically(out_dir / "results.json", results.dump(2) + "\n");
  write_text_atomically(out_dir / "sweep.svg", results_svg(points, setup));
  if (json) {
    std::printf("%s\n", results.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return;
  }
  const double fp_ppl = results["fp"]["reference_perplexity"];
  std::printf("%s  FP perplexity %.4f on %s (%lld windows)\n", setup["source"].get<std::string>().c_str(), fp_ppl,
              setup["eval_data"].get<std::string>().c_str(), static_cast<long long>(setup["eval_windows"].get<int64_t>()));
  std::printf("  %-5s %-5s %-11s %11s %8s %10s %8s %10s\n", "bits", "c", "method", "perplexity", "vs FP", "KL(FP||q)",
              "top-1", "bytes");
  for (const Json* p : points) {
    const double ppl = (*p)["perplexity"];
    std::printf("  %-5s %-5s %-11s %11.4f %+7.1f%% %10.5f %7.2f%% %10lld\n", (*p)["bits"].get<std::string>().c_str(),
                clip_of(*p).name().c_str(), (*p)["method"].get<std::string>().c_str(), ppl,
                100 * (ppl / fp_ppl - 1), (*p)["kl_mean"].get<double>(), 100 * (*p)["top1"].get<double>(),
                static_cast<long long>((*p)["model_bytes"].get<int64_t>()));
  }
  std::printf("%s; wrote %s/results.csv, results.json, sweep.svg\n", summary.c_str(), out_dir.c_str());
}

// Every file the sweep may write, checked against its inputs before any work (OutputGuard).
void check_outputs_spare_inputs(const SweepOptions& opt, const std::vector<BitSetting>& settings,
                                const std::vector<Clip>& clips, const SourceModel& source, const fs::path& recipe_dir,
                                const fs::path& calib_file, const fs::path& eval_file) {
  OutputGuard guard;
  guard.add_model_directory(source.dir);
  for (const BitSetting& s : settings) guard.add_input(recipe_dir / (s.name + ".json"), "a recipe of the sweep");
  guard.add_input(calib_file, "the calibration data");
  guard.add_input(eval_file, "the evaluation data");
  const fs::path out_dir = opt.output;
  for (const char* name : {"results.csv", "results.json", "sweep.svg"}) guard.check(out_dir / name, "output");
  for (const BitSetting& s : settings) {
    for (const Clip& c : clips) {
      const std::string id = point_id(s.name, c);
      guard.check(out_dir / "points" / (id + ".json"), "point file");
      guard.check(out_dir / "points" / ("." + id + ".size.illm"), "output");
      if (opt.keep_models) guard.check(out_dir / "models" / (id + ".illm"), "model file");
    }
  }
}

int run_sweep(const SweepOptions& opt) {
  const auto start = Clock::now();
  calib::set_thread_count(opt.threads);
  const bool progress = !opt.quiet;
  auto log = [&](const std::string& line) {
    if (progress) std::fprintf(stderr, "%s\n", line.c_str());
  };

  // Inputs, all checked before any slow work.
  const std::vector<Clip> clips = parse_clips(opt.clips);
  const Shard shard = parse_shard(opt.shard);
  const fs::path recipe_dir = opt.recipe_dir.empty() ? bundled_recipe("").parent_path() : fs::path(opt.recipe_dir);
  if (!fs::is_directory(recipe_dir)) throw Error("--recipe-dir " + recipe_dir.string() + " does not exist");
  const std::vector<BitSetting> settings = load_bit_settings(opt.bits, recipe_dir, opt.method);
  const fs::path model_dir = opt.model.empty() ? bundled_model_dir() : fs::path(opt.model);
  SourceModel source = open_source_model(model_dir);
  source.sha256 = checkpoint_sha256(source);  // the sweep's setup identity, before any calibration
  const auto calib_file = opt.calib.empty() ? find_in_model_dir(source, {"calib.jsonl", "calib.txt"})
                                            : std::optional<fs::path>(opt.calib);
  if (!calib_file) throw Error("no --calib given and " + model_dir.string() + " has neither calib.jsonl nor calib.txt");
  formats::require_regular_file(*calib_file, "calibration file");
  const auto eval_file = opt.eval.empty() ? find_in_model_dir(source, {"eval.jsonl", "test.txt"})
                                          : std::optional<fs::path>(opt.eval);
  if (!eval_file) throw Error("no --eval given and " + model_dir.string() + " has neither eval.jsonl nor test.txt");
  formats::require_regular_file(*eval_file, "evaluation file");
  for (const BitSetting& s : settings)
    check_recipe_for_integer_model(s.recipe, (recipe_dir / (s.name + ".json")).string(), source.config, opt.paper);
  const fs::path out_dir = opt.output;
  check_outputs_spare_inputs(opt, settings, clips, source, recipe_dir, *calib_file, *eval_file);
  check_output_dir(out_dir);
  const fs::path points_dir = out_dir / "points";

  const auto eval_windows = load_evaluation_windows(
      source, *eval_file, opt.max_eval_windows > 0 ? std::optional<int64_t>(opt.max_eval_windows) : std::nullopt);
  const Json setup = setup_json(source, opt.method, *calib_file, *eval_file, eval_windows.size(), opt.paper);
  const auto done = read_point_files(points_dir, setup);

  // This shard's points, bits-major. Whole bit settings go to one shard (bits index ≡ i mod n), so no
  // calibration is run twice.
  struct Todo {
    size_t setting;
    Clip clip;
  };
  std::vector<Todo> mine;
  for (size_t b = 0; b < settings.size(); ++b) {
    if (static_cast<int>(b % shard.count) != shard.index) continue;
    for (const auto& c : clips) mine.push_back({b, c});
  }
  const size_t grid_size = settings.size() * clips.size();
  log(fmt::format("sweep   {}: {} bit settings x {} clip values = {} points; shard {}/{}: {} points -> {}",
                  source.name, settings.size(), clips.size(), grid_size, shard.index, shard.count, mine.size(),
                  out_dir.string()));

  // Finished points are skipped; a recipe changed since (other samples, epochs, ...) is an error, not a mix.
  std::vector<bool> pending(mine.size());
  size_t n_pending = 0;
  for (size_t k = 0; k < mine.size(); ++k) {
    const auto& s = settings[mine[k].setting];
    const std::string id = point_id(s.name, mine[k].clip);
    Recipe recipe = s.recipe;
    recipe.clip_c = mine[k].clip.c;
    if (auto it = done.find(id); it != done.end()) {
      if (it->second.json.value("recipe", Json()) != recipe_to_json(recipe))
        throw Error(fmt::format("{} was computed with another recipe than {}/{}.json now gives: use another -o "
                                "directory, or delete the point file",
                                it->second.path.string(), recipe_dir.string(), s.name));
      log(fmt::format("[point {}/{}] {} c={}: done earlier, skipped", k + 1, mine.size(), s.name,
                      mine[k].clip.name()));
    } else {
      pending[k] = true;
      ++n_pending;
    }
  }

  size_t computed = 0;
  if (n_pending > 0) {
    // Calibration data for every bit setting to compute (too little data is reported now, not after an hour).
    std::map<size_t, std::vector<std::vector<int32_t>>> calib_windows;
    for (size_t k = 0; k < mine.size(); ++k)
      if (pending[k] && !calib_windows.count(mine[k].setting))
        calib_windows[mine[k].setting] = load_calibration_windows(source, *calib_file, settings[mine[k].setting].recipe);
    if (opt.keep_models) fs::create_directories(out_dir / "models");

    // FP logits of the evaluation windows, computed once for the whole sweep and kept (fixture-sized data).
    const FpReference fp = fp_reference_logits(*calib::FpModel::load(model_dir), eval_windows, progress);
    log(fmt::format("FP      perplexity {:.4f} on {} ({} windows)", fp.perplexity, eval_file->filename().string(),
                    eval_windows.size()));
    // ETA: calibrations still to run × mean calibration time + points still to evaluate × mean point time.
    size_t calibrations_left = calib_windows.size(), calibrations_done = 0;
    double calibration_total = 0, point_total = 0;
    for (size_t b = 0; b < settings.size(); ++b) {
      std::vector<size_t> todo;
      for (size_t k = 0; k < mine.size(); ++k)
        if (pending[k] && mine[k].setting == b) todo.push_back(k);
      if (todo.empty()) continue;
      const BitSetting& s = settings[b];
      log(fmt::format("calibrate {} ({}, {} epochs x {} samples x {} tokens)", s.name, to_string(s.recipe.method),
                      s.recipe.epochs, s.recipe.samples, s.recipe.seq_len));
      const auto calib_start = Clock::now();
      calib::CalibrateOptions calibrate_options;
      calibrate_options.threads = calib::thread_count();
      calibrate_options.show_progress = progress;
      calib::CalibratedModel calibrated = calib::calibrate(model_dir, s.recipe, calib_windows.at(b), nullptr,
                                                           calibrate_options);
      const double calibration_seconds = seconds_since(calib_start);
      calibration_total += calibration_seconds;
      ++calibrations_done;
      --calibrations_left;
      const IntegerSettings integer_settings = integer_settings_for(s.recipe.w_bits, s.recipe.a_bits, opt.paper);

      for (size_t k : todo) {
        const auto point_start = Clock::now();
        const Clip& clip = mine[k].clip;
        const std::string id = point_id(s.name, clip);
        Recipe recipe = s.recipe;
        recipe.clip_c = clip.c;
        for (auto& layer : calibrated.layers) layer.softmax_clip = clip.c;
        const QuantizedModel model = integerize(calibrated, integer_settings);
        const PointQuality q = evaluate_point(model, fp, eval_windows, progress);

        // Model size: the .illm file `illm quantize` would write (kept only with --keep-models).
        const Json calibration{{"method", to_string(recipe.method)}, {"made_by", "illm sweep"}};
        formats::IllmMetadata meta = model_metadata(source, recipe, calibration.dump());
        meta.golden = record_golden_vectors(model, eval_windows);
        const fs::path model_file =
            opt.keep_models ? out_dir / "models" / (id + ".illm") : points_dir / ("." + id + ".size.illm");
        formats::write_illm(model_file, model, meta);
        const auto model_bytes = fs::file_size(model_file);
        if (!opt.keep_models) fs::remove(model_file);

        Json point;
        point["bits"] = s.name;
        point["w_bits"] = recipe.w_bits;
        point["a_bits"] = recipe.a_bits;
        point["c"] = clip.to_json();
        point["method"] = to_string(recipe.method);
        point["perplexity"] = q.perplexity;
        point["reference_perplexity"] = fp.perplexity;
        point["kl_mean"] = q.kl_mean;
        point["top1"] = q.top1;
        point["predicted_tokens"] = q.predicted_tokens;
        point["model_bytes"] = model_bytes;
        point["calibration_seconds"] = calibration_seconds;
        point["integer_eval_seconds"] = q.seconds;
        point["threads"] = calib::thread_count();
        point["recipe"] = recipe_to_json(recipe);
        point["setup"] = setup;
        write_text_atomically(points_dir / (id + ".json"), point.dump(2) + "\n");
        ++computed;

        point_total += seconds_since(point_start);
        const double eta = calibration_total / static_cast<double>(calibrations_done) *
                               static_cast<double>(calibrations_left) +
                           point_total / static_cast<double>(computed) * static_cast<double>(n_pending - computed);
        log(fmt::format("[point {}/{}] {} c={}: perplexity {:.4f} (FP {:.4f}), KL {:.5f}, top-1 {:.2f} %, {} bytes, "
                        "eval {:.1f} s  ETA {}",
                        k + 1, mine.size(), s.name, clip.name(), q.perplexity, fp.perplexity, q.kl_mean,
                        100 * q.top1, model_bytes, q.seconds,
                        format_duration(eta)));
      }
    }
  }

  // Results from every point file present (other shards' included).
  const auto all = read_point_files(points_dir, setup);
  const auto points = ordered_points(all, settings);
  if (points.empty()) {
    log("no finished points yet: nothing to write");
    return 0;
  }
  log(fmt::format("sweep   {} computed, {} skipped (done earlier) in {:.1f} s; {} points in {}", computed,
                  mine.size() - computed, seconds_since(start), points.size(), out_dir.string()));
  write_results(out_dir, points, setup, opt.json,
                fmt::format("{} computed, {} skipped (done earlier)", computed, mine.size() - computed));
  return 0;
}

// `illm sweep --merge DIR... -o OUT`: the point files of shards that ran in separate directories (a Slurm array,
// scripts/slurm/) gathered into OUT/points, then OUT's results rebuilt exactly as a single sweep writes them.
int run_merge(const SweepOptions& opt) {
  const auto start = Clock::now();
  const fs::path out_dir = opt.output;
  std::optional<Json> setup;
  std::map<std::string, PointFile> merged;
  // Timings differ between runs of the same point; everything else must agree.
  auto without_times = [](Json j) {
    j.erase("calibration_seconds");
    j.erase("integer_eval_seconds");
    j.erase("threads");
    return j;
  };
  std::vector<fs::path> sources;
  for (const std::string& dir : opt.merge) sources.push_back(dir);
  if (fs::is_directory(out_dir / "points")) sources.push_back(out_dir);
  for (const fs::path& dir : sources) {
    if (!fs::is_directory(dir / "points"))
      throw Error("--merge: " + dir.string() + " has no points/ directory (not an illm sweep output directory)");
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir / "points"))
      if (entry.path().extension() == ".json" && entry.path().filename().string().front() != '.')
        files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    for (const fs::path& p : files) {
      Json j = read_json_file(p);
      for (const char* key : {"bits", "c", "perplexity", "reference_perplexity", "setup"})
        if (!j.contains(key)) throw Error(fmt::format("{}: not a sweep point file (no \"{}\")", p.string(), key));
      if (!setup) setup = j["setup"];
      if (j["setup"] != *setup)
        throw Error(fmt::format("--merge: {} was computed with another setup than {} ({} vs {})", p.string(),
                                merged.begin()->second.path.string(), j["setup"].dump(), setup->dump()));
      const std::string id = p.stem().string();
      if (auto it = merged.find(id); it != merged.end() && without_times(it->second.json) != without_times(j))
        throw Error(fmt::format("--merge: point {} differs between {} and {}", id, it->second.path.string(),
                                p.string()));
      merged[id] = {p, std::move(j)};
    }
  }
  if (merged.empty()) throw Error("--merge: no sweep points in the given directories");
  check_output_dir(out_dir);
  for (const auto& [id, point] : merged)
    if (fs::absolute(point.path).lexically_normal() != fs::absolute(out_dir / "points" / (id + ".json")).lexically_normal())
      write_text_atomically(out_dir / "points" / (id + ".json"), point.json.dump(2) + "\n");

  // Table order: the bit settings of --bits, then the others by name (no recipes are needed to merge).
  std::vector<BitSetting> order;
  for (const std::string& name : split_list(opt.bits, "--bits")) order.push_back({name, Recipe{}});
  const auto all = read_point_files(out_dir / "points", *setup);
  const auto points = ordered_points(all, order);
  if (!opt.quiet)
    std::fprintf(stderr, "merge   %zu points from %zu directories into %s in %.1f s\n", points.size(),
                 opt.merge.size(), out_dir.c_str(), seconds_since(start));
  write_results(out_dir, points, *setup, opt.json, fmt::format("merged {} points", points.size()));
  return 0;
}

int run_sweep_command(const SweepOptions& opt) { return opt.merge.empty() ? run_sweep(opt) : run_merge(opt); }

}  // namespace

CommandRun add_sweep_command(CLI::App& sub) {
  auto opt = std::make_shared<SweepOptions>();
  sub.description(
      "Sweep integer-only quality over bit settings x softmax clip constants c. A grid point is "
      "<recipe-dir>/<bits>.json with `method` (if given) and `clip_c` overridden. Calibration runs once per bit "
      "setting (the calibrated float model does not depend on c: FSBR trains with the FP softmax); each c is then "
      "an integer model evaluated against FP (perplexity, KL, top-1, model size). Each finished point is saved at "
      "once in DIR/points/<bits>-c<c>.json: a rerun skips finished points (and does not recalibrate a bit setting "
      "whose points are all done); results.csv, results.json and sweep.svg (perplexity vs c, one line per bit "
      "setting, FP dashed) are rebuilt from all point files in DIR, so shards writing into one DIR merge.");
  sub.add_option("--model", opt->model, "Hugging Face LLaMA model directory (default: bundled tinybible)");
  sub.add_option("--clip", opt->clips, "Softmax clip constants c > 0 or `none`, comma-separated")
      ->capture_default_str();
  sub.add_option("--bits", opt->bits, "Bit settings wNaM, comma-separated; each needs <recipe-dir>/wNaM.json")
      ->capture_default_str();
  sub.add_option("--method", opt->method, "Override every recipe's method")
      ->check(CLI::IsMember({"fsbr", "rtn", "smoothquant"}));
  sub.add_option("--recipe-dir", opt->recipe_dir, "Directory of the wNaM.json recipes (default: bundled configs/)");
  sub.add_option("--calib", opt->calib, "Calibration data (default: <model>/calib.jsonl or calib.txt)");
  sub.add_option("--eval", opt->eval, "Evaluation data (default: <model>/eval.jsonl or test.txt)");
  sub.add_option("--max-eval-windows", opt->max_eval_windows, "Evaluate only the first N windows")
      ->check(CLI::PositiveNumber);
  sub.add_option("--shard", opt->shard,
                 "i/n: compute only shard i of n. Shards split the grid by whole bit settings (the settings whose "
                 "index in --bits is ≡ i mod n), so no bit setting is calibrated twice; run the n shards with the "
                 "same -o DIR (in parallel or one after the other) and the last one to finish writes the merged "
                 "results")
      ->capture_default_str();
  add_threads_option(sub, opt->threads, "CPU threads for LibTorch and OpenMP (0: all cores)");
  sub.add_flag("--keep-models", opt->keep_models,
               "Keep each point's .illm model in DIR/models/<bits>-c<c>.illm (default: written only to measure "
               "its size, then deleted)");
  sub.add_flag("--paper-conformance", opt->paper, "Use the paper's literal integer choices (see `illm quantize`)");
  sub.add_flag("--json", opt->json, "Print results.json on stdout instead of the table");
  sub.add_flag("-q,--quiet", opt->quiet, "No progress or log lines on stderr");
  sub.add_option("--merge", opt->merge,
                 "Merge instead of computing: gather the points/ of these sweep output directories (shards that ran "
                 "in separate directories, e.g. a Slurm array: scripts/slurm/sweep-array.sbatch) into -o DIR and "
                 "rebuild its results.csv, results.json and sweep.svg; the points must share one setup")
      ->expected(1, -1);
  sub.add_option("-o,--output", opt->output, "Output directory DIR")->required();
  return [opt] { return run_sweep_command(*opt); };
}

}  // namespace illm::converter
