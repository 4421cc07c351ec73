#include "formats/illm_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <span>

#include "formats/atomic_file.h"
#include "formats/hdf5_probe.h"
#include "formats/hdf5_util.h"
#include "formats/illm_hadamard.h"
#include "formats/input_file.h"
#include "formats/sha256.h"
#include "kernels/error.h"
#include "kernels/model_validation.h"
#include "kernels/weight_codes.h"

namespace illm::formats {
namespace {

using h5::Handle;
using h5::kAnyExtent;

// Layer and golden groups are named by a zero-padded index: "00", "01", ...
std::string index_name(size_t index) {
  std::string name = std::to_string(index);
  return name.size() < 2 ? "0" + name : name;
}

hsize_t to_extent(int64_t value) { return static_cast<hsize_t>(value < 0 ? 0 : value); }

// ---------------------------------------------------------------------------------------------- user block

std::string user_block_text(int64_t version, const std::string& payload_sha256) {
  std::string text = std::string(kIllmMagic) + "format_version " + std::to_string(version) + "\npayload_sha256 " +
                     payload_sha256 + "\n";
  text.resize(kIllmUserBlockSize, '\0');
  return text;
}

// Validates the 512-byte header and the SHA-256 of bytes [512, EOF) without involving HDF5; returns the header's
// format version.
int64_t check_user_block(const std::filesystem::path& file) {
  const std::string name = file.string();
  require_regular_file(file, "model file");
  std::error_code ec;
  const auto size = std::filesystem::file_size(file, ec);
  if (ec) throw Error(name + ": cannot read file size: " + ec.message());
  if (size < kIllmUserBlockSize)
    throw Error(name + ": not an .illm model file (" + std::to_string(size) + " bytes, shorter than the " +
                std::to_string(kIllmUserBlockSize) + "-byte header); truncated?");
  std::string header(kIllmUserBlockSize, '\0');
  {
    std::ifstream in(file, std::ios::binary);
    if (!in.read(header.data(), static_cast<std::streamsize>(header.size())))
      throw Error(name + ": cannot read the file header");
  }
  const std::string magic = kIllmMagic;
  if (header.compare(0, magic.size(), magic) != 0)
    throw Error(name + ": not an .illm model file (the header does not start with the magic line)");

  const std::string version_key = "format_version ";
  size_t pos = magic.size();
  if (header.compare(pos, version_key.size(), version_key) != 0)
    throw Error(name + ": corrupted header (no format_version line)");
  pos += version_key.size();
  const size_t version_end = header.find('\n', pos);
  const std::string version_text = header.substr(pos, version_end == std::string::npos ? 0 : version_end - pos);
  if (version_text.empty() || version_text.size() > 9 ||
      version_text.find_first_not_of("0123456789") != std::string::npos)
    throw Error(name + ": corrupted header (format_version '" + version_text + "')");
  const int64_t version = std::stoll(version_text);
  if (!illm_format_version_readable(version))
    throw Error(name + ": .illm format version " + std::to_string(version) + " is not supported (this build reads versions " +
                std::to_string(kIllmOldestReadableVersion) + " to " + std::to_string(kIllmFormatVersion) + ")");

  // The canonical header for this hash must match byte for byte (catches flips in the padding as well).
  pos = version_end + 1;
  const std::string hash_key = "payload_sha256 ";
  if (header.compare(pos, hash_key.size(), hash_key) != 0)
    throw Error(name + ": corrupted header (no payload_sha256 line)");
  const std::string stored = header.substr(pos + hash_key.size(), 64);
  if (header != user_block_text(version, stored))
    throw Error(name + ": corrupted header (the 512-byte user block is not in its canonical form)");
  const std::string computed = to_hex(sha256_of_file(file, kIllmUserBlockSize));
  if (stored != computed)
    throw Error(name + ": SHA-256 of the file contents does not match its header (stored " + stored + ", computed " +
                computed + "): the file is corrupted or truncated");
  return version;
}

// ------------------------------------------------------------------------------------------------ writing

void check_size(const std::string& what, size_t actual, uint64_t expected) {
  if (actual != expected)
    throw Error("write_illm: " + what + " has " + std::to_string(actual) + " elements, expected " +
                std::to_string(expected));
}

void write_dyadics(hid_t group, const std::string& prefix, std::span<const Dyadic> values,
                   const std::vector<hsize_t>& dims) {
  std::vector<int64_t> mantissas(values.size());
  std::vector<int32_t> exponents(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    mantissas[i] = values[i].m;
    exponents[i] = values[i].k;
  }
  h5::write_int_dataset<int64_t>(group, prefix + "_m", mantissas, dims);
  h5::write_int_dataset<int32_t>(group, prefix + "_k", exponents, dims);
}

void write_dyadic_attributes(hid_t object, const std::string& prefix, Dyadic value) {
  h5::write_int_attribute(object, prefix + "_m", value.m);
  h5::write_int_attribute(object, prefix + "_k", value.k, H5T_STD_I32LE);
}

void write_channel_vector(hid_t parent, const std::string& name, const ChannelVector& vector) {
  Handle group = h5::create_group(parent, name);
  h5::write_int_attribute(group, "exponent", vector.exponent, H5T_STD_I32LE);
  h5::write_int_dataset<int64_t>(group, "mantissa", vector.mantissa, {vector.mantissa.size()});
}

void write_linear(hid_t parent, const std::string& name, const QuantizedLinear& linear) {
  const std::string what = name + " (" + h5::describe(parent, name) + ")";
  if (linear.bits < 1 || linear.bits > 8) throw Error("write_illm: " + what + ": bits " + std::to_string(linear.bits) + " outside [1, 8]");
  if (linear.out_features < 0 || linear.in_features < 0) throw Error("write_illm: " + what + ": negative shape");
  const auto out = static_cast<size_t>(linear.out_features);
  const size_t row_bytes = weight_row_bytes(linear);
  if (const auto problem = weight_group_problem(linear)) throw Error("write_illm: " + what + ": " + *problem);
  // Per-group scales (format version 2, optional): [out][in/G]; absent attribute = per row, [out].
  const auto groups = static_cast<size_t>(weight_groups(linear));
  const std::vector<hsize_t> scale_dims = linear.group_size > 0 ? std::vector<hsize_t>{out, groups}
                                                                 : std::vector<hsize_t>{out};
  check_size(what + " zero_points", linear.zero_points.size(), out * groups);
  check_size(what + " scales", linear.scales.size(), out * groups);
  // The in-memory codes are already in the file's layout (kernels/quantized_model.h): written as they are.
  if (const auto problem = weight_codes_problem(linear)) throw Error("write_illm: " + what + ": " + *problem);

  Handle group = h5::create_group(parent, name);
  h5::write_int_attribute(group, "out_features", linear.out_features, H5T_STD_I32LE);
  h5::write_int_attribute(group, "in_features", linear.in_features, H5T_STD_I32LE);
  h5::write_int_attribute(group, "bits", linear.bits, H5T_STD_I32LE);
  h5::write_string_attribute(group, "packing", weight_codes_packed(linear.bits) ? "int4" : "none");
  if (linear.group_size > 0) h5::write_int_attribute(group, "group_size", linear.group_size, H5T_STD_I32LE);
  h5::write_bytes_dataset(group, "codes", linear.codes, {out, row_bytes});
  h5::write_int_dataset<int32_t>(group, "zero_points", linear.zero_points, scale_dims);
  write_dyadics(group, "scale", linear.scales, scale_dims);
}

// Version 2, optional: the per-site clip ratios (act_clip_m int64 [7], act_clip_k int32 [7]), written only when a
// site is clipped (absent = every site off).
void write_act_clip(hid_t group, const QuantizedLayer& layer) {
  if (!layer.has_act_clip()) return;
  std::vector<Dyadic> ratios;
  for (const RequantClip& c : layer.act_clip) ratios.push_back(Dyadic{c.m, c.k});
  write_dyadics(group, "act_clip", ratios, {ratios.size()});
}

// Version 2, optional: TRIP channel factors, written only when a site has them (absent = off): the attribute
// trip_max_shift (int32 K) and one dataset trip_alpha_<site> (int8 [channels], α_c ∈ [0, K]) per site that has them.
void write_trip(hid_t group, const QuantizedLayer& layer) {
  if (!layer.has_trip()) return;
  h5::write_int_attribute(group, "trip_max_shift", layer.trip_max_shift, H5T_STD_I32LE);
  for (int site = 0; site < kNumClipSites; ++site) {
    const std::vector<int8_t>& alpha = layer.trip_alpha[site];
    if (!alpha.empty())
      h5::write_int_dataset<int8_t>(group, std::string("trip_alpha_") + act_clip_site_name(site), alpha,
                                    {alpha.size()});
  }
}

void write_layer(hid_t parent, size_t index, const QuantizedLayer& layer) {
  Handle group = h5::create_group(parent, index_name(index));
  write_dyadic_attributes(group, "softmax_clip", layer.softmax_clip);
  write_channel_vector(group, "attn_norm", layer.attn_norm);
  write_linear(group, "q_proj", layer.q_proj);
  write_linear(group, "k_proj", layer.k_proj);
  write_linear(group, "v_proj", layer.v_proj);
  write_linear(group, "o_proj", layer.o_proj);
  write_channel_vector(group, "ffn_norm", layer.ffn_norm);
  write_linear(group, "gate_proj", layer.gate_proj);
  write_linear(group, "up_proj", layer.up_proj);
  write_linear(group, "down_proj", layer.down_proj);
  write_channel_vector(group, "swiglu_inv_alpha", layer.swiglu_inv_alpha);
  write_act_clip(group, layer);
  write_trip(group, layer);
}

void write_shape(hid_t parent, const ModelShape& shape) {
  Handle group = h5::create_group(parent, "shape");
  const std::pair<const char*, int32_t> fields[] = {
      {"hidden", shape.hidden},       {"intermediate", shape.intermediate}, {"n_layers", shape.n_layers},
      {"n_heads", shape.n_heads},     {"n_kv_heads", shape.n_kv_heads},     {"head_dim", shape.head_dim},
      {"vocab", shape.vocab},         {"max_positions", shape.max_positions}, {"bos_id", shape.bos_id},
      {"eos_id", shape.eos_id}};
  for (const auto& [name, value] : fields) h5::write_int_attribute(group, name, value, H5T_STD_I32LE);
}

void write_settings(hid_t parent, const IntegerSettings& settings) {
  Handle group = h5::create_group(parent, "settings");
  const std::pair<const char*, int32_t> fields[] = {
      {"w_bits", settings.w_bits},           {"a_bits", settings.a_bits},
      {"mantissa_bits", settings.mantissa_bits}, {"softmax_in_bits", settings.softmax_in_bits},
      {"prob_bits", settings.prob_bits},     {"sigmoid_bits", settings.sigmoid_bits},
      {"swiglu_in_bits", settings.swiglu_in_bits}, {"norm_frac_bits", settings.norm_frac_bits},
      {"head_bits", settings.head_bits},     {"embed_bits", settings.embed_bits}};
  for (const auto& [name, value] : fields) h5::write_int_attribute(group, name, value, H5T_STD_I32LE);
  if (settings.head_in_bits != 0)  // version 4
    h5::write_int_attribute(group, "head_in_bits", settings.head_in_bits, H5T_STD_I32LE);
  if (settings.qkv_bits != 0)  // version 5
    h5::write_int_attribute(group, "qkv_bits", settings.qkv_bits, H5T_STD_I32LE);
  const std::pair<const char*, bool> flags[] = {{"exp_quadratic", settings.exp_quadratic},
                                                {"sigmoid_stable", settings.sigmoid_stable},
                                                {"paper_conformance", settings.paper_conformance}};
  for (const auto& [name, value] : flags) h5::write_int_attribute(group, name, value ? 1 : 0, H5T_STD_U8LE);
}

void write_model(hid_t file, const QuantizedModel& model) {
  const ModelShape& shape = model.shape;
  if (shape.hidden < 0 || shape.vocab < 0 || shape.max_positions < 0 || shape.head_dim < 0 || shape.head_dim % 2 != 0)
    throw Error("write_illm: invalid model shape (negative size or odd head_dim)");
  check_size("layers", model.layers.size(), to_extent(shape.n_layers));
  const hsize_t vocab = to_extent(shape.vocab), hidden = to_extent(shape.hidden);
  check_size("embed_codes", model.embed_codes.size(), vocab * hidden);
  check_size("embed_scales", model.embed_scales.size(), vocab);
  const hsize_t rope_rows = to_extent(shape.max_positions), rope_cols = to_extent(shape.head_dim / 2);
  check_size("rope_cos", model.rope_cos.size(), rope_rows * rope_cols);
  check_size("rope_sin", model.rope_sin.size(), rope_rows * rope_cols);

  Handle group = h5::create_group(file, "model");
  write_dyadic_attributes(group, "norm_eps", model.norm_eps);
  write_shape(group, shape);
  write_settings(group, model.settings);
  write_online_hadamards(group, model);  // version 2, optional
  if (model.act_group_size > 0)            // version 3
    h5::write_int_attribute(group, "act_group_size", model.act_group_size, H5T_STD_I32LE);
  {
    Handle embedding = h5::create_group(group, "embedding");
    h5::write_int_dataset<int16_t>(embedding, "codes", model.embed_codes, {vocab, hidden});
    write_dyadics(embedding, "scale", model.embed_scales, {vocab});
  }
  {
    Handle layers = h5::create_group(group, "layers");
    for (size_t i = 0; i < model.layers.size(); ++i) write_layer(layers, i, model.layers[i]);
  }
  write_channel_vector(group, "final_norm", model.final_norm);
  write_linear(group, "lm_head", model.lm_head);
  Handle rope = h5::create_group(group, "rope");
  h5::write_int_attribute(rope, "frac_bits", model.rope_frac_bits, H5T_STD_I32LE);
  h5::write_int_dataset<int16_t>(rope, "cos", model.rope_cos, {rope_rows, rope_cols});
  h5::write_int_dataset<int16_t>(rope, "sin", model.rope_sin, {rope_rows, rope_cols});
}

void write_metadata(hid_t file, const IllmMetadata& meta, int64_t version) {
  if (meta.source_name.find_first_of("/\\") != std::string::npos)
    throw Error("write_illm: source_name '" + meta.source_name + "' must be a directory name, not a path");
  Handle group = h5::create_group(file, "meta");
  // The version written is the model's (illm_format_version_for); meta.format_version is what a reader found.
  h5::write_int_attribute(group, "format_version", version);
  h5::write_string_attribute(group, "tool_version", meta.tool_version);
  h5::write_string_attribute(group, "source_name", meta.source_name);
  h5::write_string_attribute(group, "source_sha256", meta.source_sha256);
  h5::write_text_dataset(group, "config_json", meta.config_json);
  h5::write_text_dataset(group, "recipe_json", meta.recipe_json);
  h5::write_text_dataset(group, "calibration_json", meta.calibration_json);

  Handle tokenizer = h5::create_group(file, "tokenizer");
  h5::write_bytes_dataset(
      tokenizer, "tokenizer_model",
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(meta.tokenizer_model.data()), meta.tokenizer_model.size()),
      {meta.tokenizer_model.size()});

  Handle golden = h5::create_group(file, "golden");
  h5::write_int_attribute(golden, "count", static_cast<int64_t>(meta.golden.size()));
  for (size_t i = 0; i < meta.golden.size(); ++i) {
    const GoldenVector& vector = meta.golden[i];
    Handle entry = h5::create_group(golden, index_name(i));
    h5::write_int_dataset<int32_t>(entry, "input_ids", vector.input_ids, {vector.input_ids.size()});
    h5::write_int_dataset<int64_t>(entry, "logits", vector.logits, {vector.logits.size()});
    write_dyadics(entry, "logit_scale", vector.logit_scales, {vector.logit_scales.size()});
  }
}

void write_user_block(const std::filesystem::path& file, int64_t version) {
  const std::string header = user_block_text(version, to_hex(sha256_of_file(file, kIllmUserBlockSize)));
  const int fd = ::open(file.c_str(), O_WRONLY);
  if (fd < 0) throw Error(file.string() + ": cannot reopen to write the header: " + std::strerror(errno));
  const ssize_t written = ::pwrite(fd, header.data(), header.size(), 0);
  const bool ok = written == static_cast<ssize_t>(header.size());  // AtomicFile::commit fsyncs before the rename
  const int saved_errno = written < 0 ? errno : EIO;
  ::close(fd);
  if (!ok) throw Error(file.string() + ": cannot write the header: " + std::strerror(saved_errno));
}

// ------------------------------------------------------------------------------------------------ reading

std::vector<Dyadic> read_dyadics(hid_t group, const std::string& prefix, const std::vector<hsize_t>& dims) {
  const auto mantissas = h5::read_int_dataset<int64_t>(group, prefix + "_m", dims);
  const auto exponents = h5::read_int_dataset<int32_t>(group, prefix + "_k", dims);
  if (mantissas.size() != exponents.size())
    throw Error(h5::describe(group) + ": " + prefix + "_m and " + prefix + "_k differ in length");
  std::vector<Dyadic> values(mantissas.size());
  for (size_t i = 0; i < values.size(); ++i) values[i] = Dyadic{mantissas[i], exponents[i]};
  return values;
}

Dyadic read_dyadic_attributes(hid_t object, const std::string& prefix) {
  return Dyadic{h5::read_int_attribute(object, prefix + "_m"),
                static_cast<int32_t>(h5::read_int_attribute(object, prefix + "_k", INT32_MIN, INT32_MAX))};
}

int32_t read_int32_attribute(hid_t object, const std::string& name, int64_t low = INT32_MIN) {
  return static_cast<int32_t>(h5::read_int_attribute(object, name, low, INT32_MAX));
}

ChannelVector read_channel_vector(hid_t parent, const std::string& name) {
  Handle group = h5::open_group(parent, name);
  ChannelVector vector;
  vector.exponent = read_int32_attribute(group, "exponent");
  vector.mantissa = h5::read_int_dataset<int64_t>(group, "mantissa", {kAnyExtent});
  return vector;
}

QuantizedLinear read_linear(hid_t parent, const std::string& name) {
  Handle group = h5::open_group(parent, name);
  QuantizedLinear linear;
  linear.out_features = read_int32_attribute(group, "out_features", 0);
  linear.in_features = read_int32_attribute(group, "in_features", 0);
  linear.bits = static_cast<int32_t>(h5::read_int_attribute(group, "bits", 1, 8));
  const std::string packing = h5::read_string_attribute(group, "packing");
  const bool packed = weight_codes_packed(linear.bits);
  if (packing != (packed ? "int4" : "none"))
    throw Error(h5::describe(group) + ": packing '" + packing + "' does not match bits " + std::to_string(linear.bits));
  const auto out = static_cast<hsize_t>(linear.out_features);
  const std::string codes_path = h5::describe(group, "codes");
  // Kept in the file's layout (two 4-bit codes per byte, rows padded to a byte): the kernels read it directly.
  linear.codes = h5::read_bytes_dataset(group, "codes", {out, weight_row_bytes(linear)});
  if (const auto problem = weight_codes_problem(linear)) throw Error(codes_path + ": " + *problem);
  // Optional (format version 2): per-group scales and zero points [out][in/G].
  if (H5Aexists(group, "group_size") > 0) {
    linear.group_size = read_int32_attribute(group, "group_size", 1);
    if (const auto problem = weight_group_problem(linear)) throw Error(h5::describe(group) + ": " + *problem);
  }
  const std::vector<hsize_t> scale_dims =
      linear.group_size > 0 ? std::vector<hsize_t>{out, static_cast<hsize_t>(weight_groups(linear))}
                            : std::vector<hsize_t>{out};
  linear.zero_points = h5::read_int_dataset<int32_t>(group, "zero_points", scale_dims);
  linear.scales = read_dyadics(group, "scale", scale_dims);
  return linear;
}

void read_trip(hid_t group, QuantizedLayer& layer) {
  if (H5Aexists(group, "trip_max_shift") <= 0) return;
  layer.trip_max_shift = read_int32_attribute(group, "trip_max_shift", 1);
  for (int site = 0; site < kNumClipSites; ++site) {
    const std::string name = std::string("trip_alpha_") + act_clip_site_name(site);
    if (H5Lexists(group, name.c_str(), H5P_DEFAULT) > 0)
      layer.trip_alpha[site] = h5::read_int_dataset<int8_t>(group, name, {kAnyExtent});
  }
}

QuantizedLayer read_layer(hid_t parent, size_t index) {
  Handle group = h5::open_group(parent, index_name(index));
  QuantizedLayer layer;
  layer.softmax_clip = read_dyadic_attributes(group, "softmax_clip");
  layer.attn_norm = read_channel_vector(group, "attn_norm");
  layer.q_proj = read_linear(group, "q_proj");
  layer.k_proj = read_linear(group, "k_proj");
  layer.v_proj = read_linear(group, "v_proj");
  layer.o_proj = read_linear(group, "o_proj");
  layer.ffn_norm = read_channel_vector(group, "ffn_norm");
  layer.gate_proj = read_linear(group, "gate_proj");
  layer.up_proj = read_linear(group, "up_proj");
  layer.down_proj = read_linear(group, "down_proj");
  layer.swiglu_inv_alpha = read_channel_vector(group, "swiglu_inv_alpha");
  if (H5Lexists(group, "act_clip_m", H5P_DEFAULT) > 0) {
    const std::vector<Dyadic> ratios = read_dyadics(group, "act_clip", {static_cast<hsize_t>(kNumClipSites)});
    for (int site = 0; site < kNumClipSites; ++site) layer.act_clip[site] = RequantClip{ratios[site].m, ratios[site].k};
  }
  read_trip(group, layer);
  return layer;
}

ModelShape read_shape(hid_t parent) {
  Handle group = h5::open_group(parent, "shape");
  ModelShape shape;
  shape.hidden = read_int32_attribute(group, "hidden", 0);
  shape.intermediate = read_int32_attribute(group, "intermediate", 0);
  shape.n_layers = read_int32_attribute(group, "n_layers", 0);
  shape.n_heads = read_int32_attribute(group, "n_heads", 0);
  shape.n_kv_heads = read_int32_attribute(group, "n_kv_heads", 0);
  shape.head_dim = read_int32_attribute(group, "head_dim", 0);
  shape.vocab = read_int32_attribute(group, "vocab", 0);
  shape.max_positions = read_int32_attribute(group, "max_positions", 0);
  shape.bos_id = read_int32_attribute(group, "bos_id");
  shape.eos_id = read_int32_attribute(group, "eos_id");
  return shape;
}

IntegerSettings read_settings(hid_t parent) {
  Handle group = h5::open_group(parent, "settings");
  IntegerSettings settings;
  settings.w_bits = read_int32_attribute(group, "w_bits");
  settings.a_bits = read_int32_attribute(group, "a_bits");
  settings.mantissa_bits = read_int32_attribute(group, "mantissa_bits");
  settings.softmax_in_bits = read_int32_attribute(group, "softmax_in_bits");
  settings.prob_bits = read_int32_attribute(group, "prob_bits");
  settings.sigmoid_bits = read_int32_attribute(group, "sigmoid_bits");
  settings.swiglu_in_bits = read_int32_attribute(group, "swiglu_in_bits");
  settings.norm_frac_bits = read_int32_attribute(group, "norm_frac_bits");
  settings.head_bits = read_int32_attribute(group, "head_bits");
  settings.embed_bits = read_int32_attribute(group, "embed_bits");
  if (H5Aexists(group, "head_in_bits") > 0) settings.head_in_bits = read_int32_attribute(group, "head_in_bits", 1);
  if (H5Aexists(group, "qkv_bits") > 0) settings.qkv_bits = read_int32_attribute(group, "qkv_bits", 1);
  settings.exp_quadratic = h5::read_int_attribute(group, "exp_quadratic", 0, 1) == 1;
  settings.sigmoid_stable = h5::read_int_attribute(group, "sigmoid_stable", 0, 1) == 1;
  settings.paper_conformance = h5::read_int_attribute(group, "paper_conformance", 0, 1) == 1;
  return settings;
}

void check_child_count(hid_t group, size_t expected) {
  H5G_info_t info{};
  if (H5Gget_info(group, &info) < 0) throw Error(h5::describe(group) + ": " + h5::last_error());
  if (info.nlinks != expected)
    throw Error(h5::describe(group) + ": " + std::to_string(info.nlinks) + " entries, expected " +
                std::to_string(expected));
}

QuantizedModel read_model(hid_t file) {
  Handle group = h5::open_group(file, "model");
  QuantizedModel model;
  model.norm_eps = read_dyadic_attributes(group, "norm_eps");
  model.shape = read_shape(group);
  model.settings = read_settings(group);
  read_online_hadamards(group, model);
  model.act_group_size = H5Aexists(group, "act_group_size") > 0 ? read_int32_attribute(group, "act_group_size", 8) : 0;
  const ModelShape& shape = model.shape;
  if (shape.head_dim % 2 != 0) throw Error(h5::describe(group) + ": odd head_dim " + std::to_string(shape.head_dim));
  const hsize_t vocab = to_extent(shape.vocab), hidden = to_extent(shape.hidden);
  {
    Handle embedding = h5::open_group(group, "embedding");
    model.embed_codes = h5::read_int_dataset<int16_t>(embedding, "codes", {vocab, hidden});
    model.embed_scales = read_dyadics(embedding, "scale", {vocab});
  }
  {
    Handle layers = h5::open_group(group, "layers");
    check_child_count(layers, to_extent(shape.n_layers));
    model.layers.reserve(to_extent(shape.n_layers));
    for (size_t i = 0; i < to_extent(shape.n_layers); ++i) model.layers.push_back(read_layer(layers, i));
  }
  model.final_norm = read_channel_vector(group, "final_norm");
  model.lm_head = read_linear(group, "lm_head");
  Handle rope = h5::open_group(group, "rope");
  model.rope_frac_bits = read_int32_attribute(rope, "frac_bits", 0);
  const hsize_t rope_rows = to_extent(shape.max_positions), rope_cols = to_extent(shape.head_dim / 2);
  model.rope_cos = h5::read_int_dataset<int16_t>(rope, "cos", {rope_rows, rope_cols});
  model.rope_sin = h5::read_int_dataset<int16_t>(rope, "sin", {rope_rows, rope_cols});
  return model;
}

// /meta/format_version, which must be readable and equal to the header's version.
int64_t read_format_version(hid_t file, int64_t header_version) {
  Handle group = h5::open_group(file, "meta");
  const int64_t version = h5::read_int_attribute(group, "format_version");
  if (illm_format_version_readable(version) && version != header_version)
    throw Error(h5::describe(group) + ": format_version " + std::to_string(version) +
                " differs from the header's format version " + std::to_string(header_version));
  if (!illm_format_version_readable(version))
    throw Error(h5::describe(group) + ": format_version " + std::to_string(version) + " is not supported (this build reads versions " +
                std::to_string(kIllmOldestReadableVersion) + " to " + std::to_string(kIllmFormatVersion) + ")");
  return version;
}

IllmMetadata read_metadata(hid_t file, int64_t header_version) {
  IllmMetadata meta;
  meta.format_version = read_format_version(file, header_version);
  {
    Handle group = h5::open_group(file, "meta");
    meta.tool_version = h5::read_string_attribute(group, "tool_version");
    meta.source_name = h5::read_string_attribute(group, "source_name");
    meta.source_sha256 = h5::read_string_attribute(group, "source_sha256");
    meta.config_json = h5::read_text_dataset(group, "config_json");
    meta.recipe_json = h5::read_text_dataset(group, "recipe_json");
    meta.calibration_json = h5::read_text_dataset(group, "calibration_json");
  }
  {
    Handle tokenizer = h5::open_group(file, "tokenizer");
    const auto bytes = h5::read_bytes_dataset(tokenizer, "tokenizer_model", {kAnyExtent});
    meta.tokenizer_model.assign(bytes.begin(), bytes.end());
  }
  Handle golden = h5::open_group(file, "golden");
  const auto count = static_cast<size_t>(h5::read_int_attribute(golden, "count", 0, 1 << 20));
  check_child_count(golden, count);
  for (size_t i = 0; i < count; ++i) {
    Handle entry = h5::open_group(golden, index_name(i));
    GoldenVector vector;
    vector.input_ids = h5::read_int_dataset<int32_t>(entry, "input_ids", {kAnyExtent});
    vector.logits = h5::read_int_dataset<int64_t>(entry, "logits", {kAnyExtent});
    vector.logit_scales = read_dyadics(entry, "logit_scale", {kAnyExtent});
    meta.golden.push_back(std::move(vector));
  }
  return meta;
}

Handle open_hdf5(const std::filesystem::path& file) {
  return h5::checked(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose,
                     file.string() + ": cannot open as HDF5");
}

// The user-block check, then `reading` on the open file: first rehearsed in a child process (formats/hdf5_probe.h),
// then for real.
template <typename Reading>
auto read_checked_file(const std::filesystem::path& file, Reading&& reading) {
  h5::silence_errors();
  const int64_t header_version = check_user_block(file);  // before libhdf5 sees a byte of it
  rehearse_in_child(file, [&] {
    Handle handle = open_hdf5(file);
    (void)reading(handle, header_version);
  });
  Handle handle = open_hdf5(file);
  return reading(handle, header_version);
}

}  // namespace

namespace {

void fsync_file(const std::filesystem::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY);
  const bool ok = fd >= 0 && ::fsync(fd) == 0;
  const int saved_errno = errno;
  if (fd >= 0) ::close(fd);
  if (!ok) throw Error(file.string() + ": cannot flush to disk: " + std::strerror(saved_errno));
}

// Writes an HDF5 file the way every illm file is written: `write(file)` into `<out>.tmp.<pid>` (fixed object
// format, no timestamps, optional 512-byte user block), close, `finish(temporary)` (which must leave it flushed to
// disk), rename to `out`. On any failure the temporary file is removed and illm::Error is thrown.
void write_h5_atomically(const std::filesystem::path& out, bool user_block, const std::function<void(hid_t)>& write,
                         const std::function<void(const std::filesystem::path&)>& finish) {
  h5::silence_errors();
  AtomicFile target(out);  // removes the temporary file on any failure below, or on a signal
  const std::filesystem::path& temporary = target.temporary();
  try {
    {
      Handle fcpl = h5::checked(H5Pcreate(H5P_FILE_CREATE), H5Pclose, "H5Pcreate(file create)");
      if (user_block && H5Pset_userblock(fcpl, kIllmUserBlockSize) < 0)
        throw Error("H5Pset_userblock: " + h5::last_error());
      // The root group takes its creation properties from here: no timestamps on it either.
      if (H5Pset_obj_track_times(fcpl, 0) < 0) throw Error("H5Pset_obj_track_times(root): " + h5::last_error());
      Handle fapl = h5::checked(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, "H5Pcreate(file access)");
      // A fixed object-format version (not "latest"), so the bytes do not depend on the library build.
      if (H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18) < 0)
        throw Error("H5Pset_libver_bounds: " + h5::last_error());
      // SEMI: closing the file fails if an object were still open, instead of silently deferring the flush.
      if (H5Pset_fclose_degree(fapl, H5F_CLOSE_SEMI) < 0) throw Error("H5Pset_fclose_degree: " + h5::last_error());
      Handle file = h5::checked(H5Fcreate(temporary.c_str(), H5F_ACC_TRUNC, fcpl, fapl), H5Fclose,
                                out.string() + ": cannot create the temporary file " + temporary.string());
      write(file);
      if (file.close() < 0) throw Error(temporary.string() + ": cannot close (flush) the file: " + h5::last_error());
    }
    finish(temporary);
    target.commit();
  } catch (const std::exception& e) {
    // Name the destination, not the temporary file (which is gone by now).
    std::string what = e.what();
    if (what.rfind(temporary.string() + ": ", 0) == 0) what.erase(0, temporary.string().size() + 2);
    if (what.rfind(out.string() + ": ", 0) == 0) throw;
    throw Error(out.string() + (user_block ? ": cannot write the model file: " : ": cannot write the layer file: ") + what);
  }
}

Handle open_layer_file(const std::filesystem::path& file) {
  h5::silence_errors();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) throw Error(file.string() + ": no such layer file");
  return h5::checked(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose,
                     file.string() + ": cannot open as HDF5");
}

}  // namespace

void write_illm(const std::filesystem::path& out, const QuantizedModel& model, const IllmMetadata& meta) {
  const int64_t version = illm_format_version_for(model);
  write_h5_atomically(
      out, true,
      [&](hid_t file) {
        write_metadata(file, meta, version);
        write_model(file, model);
      },
      [&](const std::filesystem::path& file) { write_user_block(file, version); });
}

void write_layer_file(const std::filesystem::path& out, const QuantizedLayer& layer) {
  write_h5_atomically(out, false, [&](hid_t file) { write_layer(file, 0, layer); }, fsync_file);
}

QuantizedLayer read_layer_file(const std::filesystem::path& file) {
  Handle handle = open_layer_file(file);
  return read_layer(handle, 0);
}

LoadedIllm read_illm(const std::filesystem::path& file, ModelCheck check) {
  LoadedIllm loaded = read_checked_file(file, [](hid_t handle, int64_t header_version) {
    LoadedIllm read;
    read.meta = read_metadata(handle, header_version);
    read.model = read_model(handle);
    return read;
  });
  // The executor's own validation, once, here: every reader (eval, generate, verify, inspect, exporters) refuses
  // a file the executor would refuse, before any parallel work starts.
  try {
    if (check == ModelCheck::kExecutor) validate_quantized_model(loaded.model);
  } catch (const Error& e) {
    throw Error(file.string() + ": " + e.what());
  }
  return loaded;
}

void verify_illm_integrity(const std::filesystem::path& file) {
  read_checked_file(file, [](hid_t handle, int64_t header_version) {
    read_format_version(handle, header_version);
    return h5::verify_all_dataset_checksums(handle);
  });
}

}  // namespace illm::formats
