#pragma once
// The steps of `illm quantize` (and of each `illm sweep` point): source model → calibration data → calibrated
// float model → integer model → golden vectors → model file + JSON report. Each step is a function so that the
// sweep can calibrate once per bit setting and integerize once per clip constant.
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "calibration/calibrated_model.h"
#include "formats/illm_file.h"
#include "formats/llama_config.h"
#include "formats/recipe.h"
#include "formats/safetensors.h"
#include "formats/tokenizer.h"
#include "kernels/quantized_model.h"

namespace illm::converter {

// A Hugging Face model directory with what the pipeline needs to know about it. Opening it reads config.json,
// the tokenizer and the safetensors headers (validated against the config); the tensor data stays memory-mapped
// in `store` and is read by the steps that need it.
struct SourceModel {
  std::filesystem::path dir;
  std::string name;         // directory name only (no absolute path goes into the model file)
  std::string sha256;       // checkpoint_sha256(): filled by the caller once the tensors have been read
  std::string config_json;  // config.json text
  formats::LlamaConfig config;
  std::optional<formats::TensorStore> store;
  std::optional<formats::Tokenizer> tokenizer;  // <dir>/tokenizer.model when present
};
SourceModel open_source_model(const std::filesystem::path& dir);

// Identity of the checkpoint (the model file's source_sha256): SHA-256 over "config.json", the SHA-256 of its
// bytes, "safetensors" and TensorStore::content_digest() (file names, headers and per-tensor hashes, docs/model-
// format.md). Tensors already read through the store were hashed while being read, so at the end of a quantize
// run this touches no tensor again; called first, it reads every tensor once.
std::string checkpoint_sha256(const SourceModel& model);

// The integer model assembled from a finished streaming calibration: the frame, the embedding and LM head
// integerized from the checkpoint row block by row block (in the basis of the recipe's offline residual rotation,
// calibration/row_rotation.h; GPTQ-rounded when the frame carries a head Hessian, recipe key gptq_head), and
// `layer(l)` for every layer (each read straight into the model, so the integer model is in memory once).
QuantizedModel assemble_integer_model(const SourceModel& source, const Recipe& recipe,
                                      const calib::CalibratedModel& frame, const IntegerSettings& settings,
                                      const std::function<QuantizedLayer(int layer)>& layer);

// The bundled default model directory (tinybible) and recipe directory.
std::filesystem::path bundled_model_dir(const std::string& name = "tinybible");
std::filesystem::path bundled_recipe(const std::string& file_name);

// The first file of `candidates` that exists in the model directory, or nullopt.
std::optional<std::filesystem::path> find_in_model_dir(const SourceModel& model,
                                                       std::initializer_list<const char*> candidates);

// Calibration windows: recipe.samples windows of recipe.seq_len tokens from a token-id JSONL or a text file
// (tokenized with the model's tokenizer). Too little data is an error naming the file and the counts.
std::vector<std::vector<int32_t>> load_calibration_windows(const SourceModel& model, const std::filesystem::path& file,
                                                           const Recipe& recipe);

// Evaluation windows (dataset rules of formats/dataset.h; text at 256-token windows).
std::vector<std::vector<int32_t>> load_evaluation_windows(const SourceModel& model, const std::filesystem::path& file,
                                                          std::optional<int64_t> max_windows);

// Every recipe field as JSON (what was actually used, overrides included); the W4A4 lever keys only when they
// are not at their defaults (files from recipes without them are unchanged).
nlohmann::ordered_json recipe_to_json(const Recipe& recipe);

// The model file's metadata for `source` and `recipe` (no wall times: identical inputs give identical bytes).
// `calibration_json` records the calibration (method, per-block losses, chosen c); golden vectors are added by the
// caller.
formats::IllmMetadata model_metadata(const SourceModel& source, const Recipe& recipe, std::string calibration_json);

// Golden vectors for `illm verify`: the executor's integer outputs on short prefixes of `windows`.
std::vector<formats::GoldenVector> record_golden_vectors(const QuantizedModel& model,
                                                         const std::vector<std::vector<int32_t>>& windows,
                                                         int count = 2, int length = 24);

// Writes `text` to `path` through a temporary file and a rename (nothing half-written; formats/atomic_file.h).
void write_text_atomically(const std::filesystem::path& path, const std::string& text);

}  // namespace illm::converter
