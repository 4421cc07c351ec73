#pragma once
// The resumable state of a streaming `illm quantize` (docs/scale.md, "Resuming"): a work directory beside the
// output, <output>.partial/, holding
//   state.json               what the run is (its identity: checkpoint files, recipe, calibration data, settings,
//                            threads, device), the blocks done with their reports, and the per-tensor hashes of the
//                            checkpoint taken so far (so the source hash needs no second pass after a resume);
//   layer-NNN.illm-layer     each finished block's integer layer (formats::write_layer_file);
//   inputs-NNN.{fp,q}.f32    the float32 inputs of the next block (calib::calibrate_blocks);
//   head-hessian.f64         recipe key gptq_head: the LM head's GPTQ Hessian, written before the last block commits.
// Every file is written under a temporary name and renamed; state.json is renamed last, after the block's layer
// file and the next block's inputs. After a kill at any point the directory therefore describes a consistent
// prefix of finished blocks, and `--resume` continues with the next one. The final model file is assembled from the
// layer files in both cases, so a resumed run writes the same bytes as an uninterrupted one.
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "calibration/calibrated_model.h"
#include "kernels/quantized_model.h"

namespace illm::converter {

// One finished block as the state records it.
struct BlockRecord {
  calib::BlockReport report;
  int64_t peak_rss_bytes = 0;  // the process's resident-set high-water mark when the block was done
};

// A block's report as JSON: losses, best epoch, epoch losses, softmax clip; with_times adds its wall seconds and
// seconds per FSBR step (kept out of the model file, which must not depend on timings).
nlohmann::ordered_json block_report_json(const calib::BlockReport& report, bool with_times);

class QuantizeState {
 public:
  // <output>.partial
  static std::filesystem::path directory_for(const std::filesystem::path& output);

  // A fresh state, or with `resume` the interrupted run's state after checking that its identity equals
  // `identity`. illm::Error (naming the directory and the reason) when a state exists and `resume` is not set, when
  // the identities differ (naming what differs), when the state is broken, or when another live process holds it
  // (the directory carries an flock'ed `lock` file for as long as a run uses it). `resume` without a state starts
  // fresh (resumed() is false then).
  static QuantizeState open(const std::filesystem::path& output, const nlohmann::ordered_json& identity, bool resume);

  const std::filesystem::path& dir() const { return dir_; }
  bool resumed() const { return resumed_; }
  int next_block() const { return static_cast<int>(blocks_.size()); }
  const std::vector<BlockRecord>& blocks() const { return blocks_; }
  const std::map<std::string, std::string>& tensor_digests() const { return digests_; }

  // Persists block `index` (== next_block()): its layer file, then state.json with the record and `digests` (the
  // checkpoint's per-tensor hashes so far). Runs the test hook (below) after each of the two writes.
  void commit_block(int index, const QuantizedLayer& layer, const BlockRecord& record,
                    std::map<std::string, std::string> digests);
  QuantizedLayer read_layer(int index) const;
  // The LM head's GPTQ Hessian ([hidden][hidden] float64, recipe key gptq_head): written before the last block's
  // commit_block, so a state whose blocks are all done has it; read_head_hessian throws illm::Error naming the file
  // when it is missing or not hidden² values.
  void write_head_hessian(const std::vector<double>& hessian) const;
  std::vector<double> read_head_hessian(int64_t hidden) const;
  // Deletes the directory: the model file is written.
  void remove();

 private:
  void write_state() const;
  std::filesystem::path dir_;
  nlohmann::ordered_json identity_;
  std::vector<BlockRecord> blocks_;
  std::map<std::string, std::string> digests_;
  bool resumed_ = false;
  std::shared_ptr<int> lock_;  // descriptor of the flock'ed lock file (closed, and so released, with the last copy)
};

// Test hook for the kill/resume and bad-input tests: when the environment variable ILLM_TEST_HOOK is set, its
// value runs as a shell command at each stage of a block commit ("layer-written", "block-committed") with
// ILLM_HOOK_STAGE and ILLM_HOOK_BLOCK set (e.g. `[ $ILLM_HOOK_BLOCK = 1 ] && kill -9 $PPID`). Not for users.
void run_test_hook(const char* stage, int block);

}  // namespace illm::converter
