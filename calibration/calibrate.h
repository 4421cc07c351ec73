#pragma once
// Torch-free entry point of calibration (the converter includes only this and calibrated_model.h).
//
// Data flow (docs/method.md §2.6, OmniQuant): inputs of block 0 = FP embeddings of the calibration windows; the FP
// target of block l = FP block l on the FP input; the quantized block l is trained on the OUTPUTS OF THE
// PREVIOUS QUANTIZED BLOCKS, so each block learns to correct the error accumulated before it (what the
// integer model will actually see), while the target stays the FP trajectory.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <vector>

#include "calibration/calibrated_model.h"
#include "formats/recipe.h"

namespace illm::calib {

// Token-id windows (one vector per sequence): formats::Windows::sequences of formats/dataset.h's load_windows.
using TokenWindows = std::vector<std::vector<int32_t>>;

struct CalibrateOptions {
  int threads = 2;  // upper bound of set_thread_count (calibration/threads.h); small models use 1 (intra_op_threads, fsbr.h)
  bool show_progress = true;  // per-block epoch / loss display on stderr
};

// Calibrates every block of the model in `model_dir` with `recipe` on the first recipe.samples windows of
// `calib` (each truncated to recipe.seq_len tokens; shorter windows are an error). Deterministic under
// recipe.seed for a fixed thread count.
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
