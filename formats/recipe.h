#pragma once
// Quantization recipes (configs/*.json): parsing and validation. The schema is documented in configs/README.md.
// Keys outside the schema are an error (illm::Error naming the file and the key); schema keys that do not apply
// to the chosen method are accepted and ignored.
#include <filesystem>
#include <optional>
#include <string>

namespace illm {

enum class QuantMethod { kRtn, kSmoothQuant, kFsbr };
enum class WeightGranularity { kPerChannel, kPerGroup };
// Which fake-quant points are active: the released FSBR code's set (§9 #21) or every point where the integer
// executor quantizes (adds 16-bit residual/norm/softmax inputs, 8-bit SwiGLU output, clipped softmax with c).
enum class FakeQuantPoints { kTraining, kExecutor };
enum class SmoothInit { kSmoothQuant, kIdentity };
// Offline residual-stream rotation (calibration/rotation.h): none, seeded random Hadamard, seeded random orthogonal.
enum class ResidualRotation { kNone, kHadamard, kOrthogonal };

struct Recipe {
  QuantMethod method = QuantMethod::kFsbr;
  int w_bits = 4;
  int a_bits = 4;
  int qkv_bits = 0;            // Q, K and V codes (the attention and the KV cache), 2..8; 0 = a_bits
  WeightGranularity w_granularity = WeightGranularity::kPerChannel;
  int group_size = 64;         // only for per_group
  int epochs = 20;
  double lr_smooth = 5e-3;
  double lr_lwc = 1e-2;
  int samples = 128;           // calibration sequences
  int seq_len = 256;           // tokens per calibration sequence
  uint64_t seed = 2;
  double sq_alpha = 0.5;       // SmoothQuant migration strength (baseline and FSBR init)
  std::optional<double> clip_c = 15.0;  // softmax clip constant; nullopt with clip_search = false: no clipping
  bool clip_search = false;    // "clip_c": "search" → per-layer search over {8, 10, 12, 15, 20, none}
  // Extensions (documented in configs/README.md):
  double lwc_init = 4.0;       // initial LWC logits (σ(4) ≈ 0.982); large values start unclipped
  SmoothInit smooth_init = SmoothInit::kSmoothQuant;
  bool tie_rope_pairs = true;  // §9 #16: site-4 scales tied over RoPE pairs (exact equivalence)
  int swiglu_in_bits = 8;      // gate/up output quantizer width
  FakeQuantPoints fake_quant_points = FakeQuantPoints::kTraining;
  // W4A4 levers (configs/README.md "Rotations, GPTQ, activation clipping, TRIP"). Those marked "fake-quant only"
  // have no integer operator yet: integerize() refuses models calibrated with them.
  ResidualRotation rotation = ResidualRotation::kNone;  // offline; folds the RMSNorm gains
  std::optional<uint64_t> rotation_seed;  // seed of the rotation's random matrix; absent: `seed`
  bool rotate_heads = false;    // offline per-head Hadamard fused into v_proj / o_proj
  bool hadamard_down = false;   // online Hadamard on the down_proj input (integer operator hadamard_rows)
  bool hadamard_qk = false;     // online Hadamard on q and k after RoPE (integer operator hadamard_rows)
  bool gptq = false;            // GPTQ weight rounding on the block's calibration inputs
  double gptq_damp = 0.01;      // H + damp·mean(diag H)·I
  bool gptq_act_order = false;  // quantize columns in decreasing diag(H) order
  bool gptq_head = false;       // GPTQ rounding of the LM head on its calibration inputs (gptq_damp, gptq_act_order)
  int head_in_bits = 8;         // LM head input width (the final DI-Norm's codes), 2..16; 8 = the head's weight width
  int head_group_size = 0;      // LM head weights per group of 32, 64 or 128 columns (0 = per row)
  double act_clip = 1.0;        // per-token activation range ratio at every site (1 = off; fake-quant only)
  bool act_clip_search = false; // "act_clip": "search": per site, by block-output MSE (fake-quant only)
  int trip_shifts = 0;          // TRIP power-of-two channel factors 2^0..2^K at the linear inputs (0 = off; fake-quant only)
  int act_group_size = 0;       // per-group activations at the linear inputs: 8, 16, 32, 64 or 128 channels (0 = per
                                // token); a width it does not divide ends in a short group
  std::string description;
};

// The softmax clip constants a recipe (or `illm sweep --clip`) may give: clipping x − max at −c below 1e-3 keeps
// only the maximum, above 1e6 clips nothing, and in between the integer clip constant stays in its dyadic range.
inline constexpr double kMinClipC = 1e-3;
inline constexpr double kMaxClipC = 1e6;

const char* to_string(QuantMethod m);

// The seed of a recipe's residual-stream rotation: rotation_seed when given, else seed (as before the key existed).
inline uint64_t rotation_seed_of(const Recipe& r) { return r.rotation_seed.value_or(r.seed); }
// The width of a recipe's Q, K and V codes: qkv_bits when given, else a_bits.
inline int qkv_bits_of(const Recipe& r) { return r.qkv_bits > 0 ? r.qkv_bits : r.a_bits; }

// Parses and validates a recipe. `source` names the file in error messages.
Recipe parse_recipe_json(const std::string& json_text, const std::string& source);
Recipe load_recipe(const std::filesystem::path& path);
// Throws illm::Error (naming `source`) when a value is impossible (bits outside 2..8, c <= 0, samples 0, ...).
void validate_recipe(const Recipe& recipe, const std::string& source);

}  // namespace illm
