#include "converter/quantize_state.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "converter/quantize_pipeline.h"
#include "formats/atomic_file.h"
#include "formats/illm_file.h"
#include "formats/input_file.h"
#include "kernels/error.h"

namespace illm::converter {
namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

namespace {

constexpr int kStateFormat = 1;
const char* const kStateFile = "state.json";

constexpr const char* kHeadHessianFile = "head-hessian.f64";

fs::path layer_file(const fs::path& dir, int index) {
  char name[64];
  std::snprintf(name, sizeof name, "layer-%03d.illm-layer", index);
  return dir / name;
}

calib::BlockReport block_report_from_json(const Json& j) {
  calib::BlockReport r;
  r.loss_before = j.at("loss_before").get<double>();
  r.loss_after = j.at("loss_after").get<double>();
  r.best_epoch = j.at("best_epoch").get<int>();
  r.epoch_losses = j.at("epoch_losses").get<std::vector<double>>();
  r.seconds = j.at("seconds").get<double>();
  r.seconds_per_step = j.at("seconds_per_step").get<double>();
  if (!j.at("softmax_clip").is_string()) r.softmax_clip = j.at("softmax_clip").get<double>();
  return r;
}

// What a differing identity key means for the user.
std::string identity_difference(const std::string& key, const Json& stored, const Json& now) {
  if (key == "source") return "the checkpoint's files changed since (size or modification time)";
  if (key == "recipe") return "the recipe differs";
  if (key == "calib") return "the calibration data differ";
  if (key == "threads")
    return "it ran with --threads " + stored.dump() + " (now " + now.dump() + "; the result depends on it)";
  if (key == "device") return "it ran with --device " + stored.dump() + " (now " + now.dump() + ")";
  return "'" + key + "' differs (" + stored.dump() + " then, " + now.dump() + " now)";
}

// Takes the run's lock on `dir`/lock; null when another process holds it.
std::shared_ptr<int> try_lock(const fs::path& dir) {
  const fs::path file = dir / "lock";
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(file.string() + ": cannot open: " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return nullptr;
  }
  return std::shared_ptr<int>(new int(fd), [](int* p) {
    ::close(*p);
    delete p;
  });
}

}  // namespace

Json block_report_json(const calib::BlockReport& b, bool with_times) {
  Json jb;
  jb["loss_before"] = b.loss_before;
  jb["loss_after"] = b.loss_after;
  jb["best_epoch"] = b.best_epoch;
  jb["epoch_losses"] = b.epoch_losses;
  if (with_times) {
    jb["seconds"] = b.seconds;
    jb["seconds_per_step"] = b.seconds_per_step;
  }
  if (b.softmax_clip) jb["softmax_clip"] = *b.softmax_clip; else jb["softmax_clip"] = "none";
  return jb;
}

fs::path QuantizeState::directory_for(const fs::path& output) { return output.string() + ".partial"; }

QuantizeState QuantizeState::open(const fs::path& output, const Json& identity, bool resume) {
  QuantizeState state;
  state.dir_ = directory_for(output);
  state.identity_ = identity;
  const fs::path file = state.dir_ / kStateFile;
  std::error_code ec;
  if (!fs::exists(state.dir_, ec)) {
    // A fresh state, made under a temporary name and renamed into place: two runs starting at once cannot both
    // own it (the loser finds the winner's locked directory below).
    const fs::path fresh = state.dir_.string() + ".new." + std::to_string(::getpid());
    fs::remove_all(fresh, ec);
    fs::create_directory(fresh, ec);
    if (ec) throw Error(state.dir_.string() + ": cannot create the work directory: " + ec.message());
    state.lock_ = try_lock(fresh);
    const fs::path final_dir = state.dir_;
    state.dir_ = fresh;
    state.write_state();
    state.dir_ = final_dir;
    fs::rename(fresh, state.dir_, ec);
    if (!ec) return state;
    fs::remove_all(fresh, ec);
    state.lock_.reset();
  }
  state.lock_ = try_lock(state.dir_);
  if (!state.lock_)
    throw Error("another illm quantize is writing " + output.string() + " now (its work directory " +
                state.dir_.string() + " is in use)");
  if (!resume)
    throw Error(state.dir_.string() + " holds the state of an interrupted run: pass --resume to continue it, or "
                                      "delete the directory to start over");
  if (!fs::exists(file, ec))
    throw Error(state.dir_.string() + ": no " + kStateFile + " (not a quantize state directory?): delete it");
  try {
    std::ifstream in(file, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    const Json stored = Json::parse(text.str());
    if (stored.at("format").get<int>() != kStateFormat) throw Error("unknown format");
    const Json& before = stored.at("identity");
    for (auto it = identity.begin(); it != identity.end(); ++it) {
      const Json then = before.contains(it.key()) ? before.at(it.key()) : Json();
      if (then != it.value())
        throw Error("--resume: " + file.string() + " belongs to another run: " +
                    identity_difference(it.key(), then, it.value()) + "; delete " + state.dir_.string() +
                    " to start over");
    }
    for (const Json& b : stored.at("blocks"))
      state.blocks_.push_back({block_report_from_json(b.at("report")), b.at("peak_rss_bytes").get<int64_t>()});
    state.digests_ = stored.at("tensor_digests").get<std::map<std::string, std::string>>();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(file.string() + ": broken state file (" + e.what() + "); delete " + state.dir_.string());
  }
  for (int l = 0; l < state.next_block(); ++l)
    if (!fs::exists(layer_file(state.dir_, l), ec))
      throw Error(state.dir_.string() + ": " + layer_file(state.dir_, l).filename().string() +
                  " is missing; delete the directory to start over");
  // Temporary files of the killed process are not state.
  for (const auto& entry : fs::directory_iterator(state.dir_)) {
    const std::string name = entry.path().filename().string();
    if (name.find(".tmp") != std::string::npos) fs::remove(entry.path(), ec);
  }
  state.resumed_ = true;
  return state;
}

void QuantizeState::write_state() const {
  Json j;
  j["format"] = kStateFormat;
  j["identity"] = identity_;
  Json blocks = Json::array();
  for (const BlockRecord& b : blocks_)
    blocks.push_back({{"report", block_report_json(b.report, true)}, {"peak_rss_bytes", b.peak_rss_bytes}});
  j["blocks"] = blocks;
  j["tensor_digests"] = digests_;
  write_text_atomically(dir_ / kStateFile, j.dump(1) + "\n");
}

void QuantizeState::commit_block(int index, const QuantizedLayer& layer, const BlockRecord& record,
                                 std::map<std::string, std::string> digests) {
  if (index != next_block())
    throw Error("quantize state: block " + std::to_string(index) + " committed after " + std::to_string(next_block()));
  formats::write_layer_file(layer_file(dir_, index), layer);
  run_test_hook("layer-written", index);
  blocks_.push_back(record);
  digests_ = std::move(digests);
  try {
    write_state();
  } catch (...) {
    blocks_.pop_back();
    throw;
  }
  run_test_hook("block-committed", index);
}

QuantizedLayer QuantizeState::read_layer(int index) const { return formats::read_layer_file(layer_file(dir_, index)); }

void QuantizeState::write_head_hessian(const std::vector<double>& hessian) const {
  formats::write_file_atomically(dir_ / kHeadHessianFile,
                                 std::string_view(reinterpret_cast<const char*>(hessian.data()),
                                                  hessian.size() * sizeof(double)));
}

std::vector<double> QuantizeState::read_head_hessian(int64_t hidden) const {
  const fs::path path = dir_ / kHeadHessianFile;
  const std::string bytes = formats::read_input_file(path, "LM head GPTQ Hessian of the quantize state");
  const size_t expected = static_cast<size_t>(hidden * hidden) * sizeof(double);
  if (bytes.size() != expected)
    throw Error(path.string() + ": " + std::to_string(bytes.size()) + " bytes, expected " + std::to_string(expected) +
                " (hidden " + std::to_string(hidden) + "² float64): the state is broken; delete " + dir_.string());
  std::vector<double> out(static_cast<size_t>(hidden * hidden));
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

void QuantizeState::remove() {
  std::error_code ec;
  fs::remove_all(dir_, ec);
  lock_.reset();
}

void run_test_hook(const char* stage, int block) {
  const char* hook = std::getenv("ILLM_TEST_HOOK");
  if (hook == nullptr || *hook == '\0') return;
  ::setenv("ILLM_HOOK_STAGE", stage, 1);
  ::setenv("ILLM_HOOK_BLOCK", std::to_string(block).c_str(), 1);
  std::fflush(stderr);
  [[maybe_unused]] const int status = std::system(hook);  // the hook's exit status means nothing here
}

}  // namespace illm::converter
