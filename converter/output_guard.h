#pragma once
// The rule for every path a command writes (model file, its report, sweep results, exports): it must not be one of
// the run's inputs, and it must not replace a file inside the source model directory. `illm quantize -o
// MODEL_DIR/config` would otherwise write the report over MODEL_DIR/config.json and break the checkpoint.
// "Is an input" is decided by the file system, not by spelling: symbolic links, hard links, "..", and HF-cache
// snapshot links are all seen through. Commands register their inputs first, then check each output path before
// any slow work starts (and a writer may check again just before writing).
#include <filesystem>
#include <string>
#include <vector>

namespace illm::converter {

class OutputGuard {
 public:
  // A file the run reads (recipe, calibration or evaluation data, a tokenizer, an .illm model, ...).
  void add_input(const std::filesystem::path& file, std::string what);
  // The source model directory: every file in it is an input, and no existing file in it (or below it) may be
  // replaced; new files may be created there.
  void add_model_directory(const std::filesystem::path& dir);

  // Throws illm::Error "<what> <output>: ..." when writing `output` would overwrite an input or replace a file in
  // the model directory.
  void check(const std::filesystem::path& output, const std::string& what) const;

 private:
  struct Input {
    std::filesystem::path path;
    std::string what;
  };
  std::vector<Input> inputs_;
  std::vector<std::filesystem::path> model_dirs_;  // canonical
};

}  // namespace illm::converter
