#pragma once
// Torch-free entry point of calibration (the converter includes only this and calibrated_model.h).
//
// Data flow (docs/method.md §2.6, OmniQuant): inputs of block 0 = FP embeddings of the calibration windows; the FP
// target of block l = FP block l on the FP input; the quantized block l is trained on the OUTPUTS OF THE
// PREVIOUS QUANTIZED BLOCKS, so each block learns to correct the error accumulated before it (what the
// integer model will actually see), while the target stays the FP trajectory.
//
// Block streaming (docs/scale.md): calibrate_blocks holds one decoder block's float weights at a time (read from
// the memory-mapped checkpoint, released after use) plus the activations at the current block boundary, and hands
// each calibrated block to a sink as soon as it is done. The activations are float32 [samples, seq_len, hidden]
// (calibration/activations.h): in memory, or, with a work directory, in files of it, which then also hold
// everything a resumed run needs to continue from the next block.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "calibration/calibrated_model.h"
#include "formats/llama_config.h"
#include "formats/recipe.h"
#include "formats/safetensors.h"

namespace illm::calib {

// Token-id windows (one vector per sequence): formats::Windows::sequences of formats/dataset.h's load_windows.
using TokenWindows = std::vector<std::vector<int32_t>>;

struct CalibrateOptions {
  int threads = 2;  // upper bound of set_thread_count (calibration/threads.h); small models use 1 (intra_op_threads, fsbr.h)
  bool show_progress = true;  // per-block epoch / loss display on stderr
  std::string device = "cpu";  // "cpu", or "cuda" with a CUDA-enabled LibTorch (check_device)
  // Empty: activations in memory. Else float32 files block_inputs_file(work_dir, l, ·) hold the inputs of the
  // next block; each block's pair is committed (renamed into place) before the block is handed to the sink, and
  // the previous block's pair is deleted after the sink returns.
  std::filesystem::path work_dir;
  int first_block = 0;  // resume: blocks before it are done; work_dir holds block first_block's committed inputs
};

// A calibrated block as the sink receives it.
struct CalibratedBlock {
  int index = 0;
  CalibratedLayer layer;
  BlockReport report;
  std::vector<double> head_hessian;  // the last block with recipe key gptq_head: CalibratedModel::head_hessian
};
using BlockSink = std::function<void(CalibratedBlock&& block)>;

// "cpu", or "cuda" when this build's LibTorch has CUDA and a device is visible; anything else is an illm::Error
// saying why (e.g. a CPU-only LibTorch). Cheap: call it before slow work.
void check_device(const std::string& device);

// The inputs of block `layer` in `work_dir`: the FP trajectory (`quantized` false) or the quantized blocks' outputs.
std::filesystem::path block_inputs_file(const std::filesystem::path& work_dir, int layer, bool quantized);

// Calibrates blocks options.first_block .. num_hidden_layers − 1 of the checkpoint in `store` with `recipe` on the
// first recipe.samples windows of `calib` (each truncated to recipe.seq_len tokens; shorter windows are an error),
// calling `sink` once per block, in order. Deterministic under recipe.seed for a fixed thread count; a resumed run
// (first_block > 0 with the committed inputs) gives the same blocks as an uninterrupted one, because every block
// starts from its own seed and reads its inputs back from float32 storage either way.
void calibrate_blocks(const formats::LlamaConfig& config, const formats::TensorStore& store, const Recipe& recipe,
                      const TokenWindows& calib, const BlockSink& sink, const CalibrateOptions& options = {});

// The model-level part of a calibrated model (shape, recipe essentials, RoPE frequencies; no layers or tensors).
CalibratedModel calibrated_model_frame(const formats::LlamaConfig& config, const Recipe& recipe);

// Everything in memory (fixture-sized models: tests, sweep, bench): calibrate_blocks with in-memory activations,
// collected with the FP embedding, final norm and head into one CalibratedModel.
CalibratedModel calibrate(const std::filesystem::path& model_dir, const Recipe& recipe, const TokenWindows& calib,
                          CalibrationReport* report = nullptr, const CalibrateOptions& options = {});

// Which fake-quant points the evaluation simulates (see FakeQuantPoints in formats/recipe.h).
struct FakeQuantEvalOptions {
  FakeQuantPoints points = FakeQuantPoints::kTraining;
  int threads = 2;
};

// Perplexity over all predicted positions (1..T−1 of every window; windows may differ in length) of the fake-quant model: quantized block
// weights (codes·scale), dynamic activation quantizers, FP embedding / final norm / head.
double fake_quant_perplexity(const CalibratedModel& model, const TokenWindows& eval,
                             const FakeQuantEvalOptions& options = {});

// The fake-quant model's logits of every window (windows may differ in length), in order: consume(index, T·vocab
// float32 logits, row t predicting token t+1).
using LogitsConsumer = std::function<void(size_t index, std::span<const float> logits)>;
void fake_quant_for_each_logits(const CalibratedModel& model, const TokenWindows& eval,
                                const FakeQuantEvalOptions& options, const LogitsConsumer& consume);

// FP perplexity of the unquantized model on the same positions.
double fp_perplexity(const std::filesystem::path& model_dir, const TokenWindows& eval, int threads = 2);

}  // namespace illm::calib
