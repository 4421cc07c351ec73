#pragma once
// The bundled stories260K fixture for calibration tests: its directory, its token-id JSONL windows (read by the
// product's dataset loader) and the quiet one-thread calibration options (2 threads measured 10x slower on the
// loaded machine).
#include <filesystem>

#include "calibration/calibrate.h"
#include "formats/dataset.h"
#include "formats/llama_config.h"

namespace illm::calib::testing {

inline const std::filesystem::path kStories260K = std::filesystem::path(ILLM_SOURCE_DIR) / "models" / "stories260K";

inline TokenWindows stories260k_windows(const char* file) {
  const formats::LlamaConfig cfg = formats::load_llama_config(kStories260K);
  return formats::load_windows(kStories260K / file, nullptr, std::nullopt, cfg.vocab_size,
                               cfg.max_position_embeddings)
      .sequences;
}

inline CalibrateOptions quiet_single_thread() {
  CalibrateOptions opt;
  opt.threads = 1;
  opt.show_progress = false;
  return opt;
}

}  // namespace illm::calib::testing
