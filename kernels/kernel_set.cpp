#include "kernels/kernel_set.h"

#include <cstdlib>
#include <string>

#include "kernels/cpu_features.h"
#include "kernels/error.h"
#include "kernels/optimized/kernel_sets.h"
#include "kernels/reference/act_group_matmul.h"
#include "kernels/reference/attention.h"
#include "kernels/reference/di_matmul.h"
#include "kernels/reference/di_norm.h"
#include "kernels/reference/di_swiglu.h"
#include "kernels/reference/embedding.h"
#include "kernels/reference/hadamard.h"
#include "kernels/reference/hadamard_sites.h"
#include "kernels/reference/head_requant.h"
#include "kernels/reference/residual.h"

namespace illm {
namespace {

KernelSet make_reference() {
  KernelSet k;
  k.path = KernelPath::kReference;
  k.name = "reference";
  k.embedding = embedding_lookup;
  k.rms_norm = di_norm_rows;
  k.linear = linear_accumulate;
  k.requantize = requantize_rows;
  k.rope_heads = rope_heads;
  k.split_heads = split_heads;
  k.attention = attention_layer;
  k.attention_scored = attention_layer_scored;
  k.swiglu = di_swiglu_rows;
  k.residual_add = residual_add;
  k.hadamard_rows = hadamard_rows;
  k.swiglu_symmetric = swiglu_symmetric_rows;
  k.rope_symmetric = rope_symmetric_rows;
  set_reference_trip_kernels(k);
  k.linear_act_groups = linear_act_groups_accumulate;
  return k;
}

}  // namespace


void set_reference_trip_kernels(KernelSet& k) {
  k.rms_norm_trip = di_norm_rows_trip;
  k.attention_trip = attention_layer_trip;
  k.swiglu_trip = di_swiglu_rows_trip;
}

namespace {

KernelPath best_supported_path() {
  for (const KernelPath path : {KernelPath::kAvx512Vnni, KernelPath::kAvx2})
    if (cpu_supports(path)) return path;
  return KernelPath::kPortable;
}

const char* const kPathNames = "reference, portable, avx2, avx512vnni or auto";

}  // namespace

const char* kernel_path_name(KernelPath path) {
  switch (path) {
    case KernelPath::kReference: return "reference";
    case KernelPath::kPortable: return "portable";
    case KernelPath::kAvx2: return "avx2";
    case KernelPath::kAvx512Vnni: return "avx512vnni";
  }
  return "unknown";
}

std::vector<KernelPath> all_kernel_paths() {
  return {KernelPath::kReference, KernelPath::kPortable, KernelPath::kAvx2, KernelPath::kAvx512Vnni};
}

std::string missing_cpu_features(KernelPath path) {
  const CpuFeatures& f = cpu_features();
  std::string missing;
  const auto need = [&](bool present, const char* name) {
    if (!present) missing += (missing.empty() ? "" : ", ") + std::string(name);
  };
  switch (path) {
    case KernelPath::kReference:
    case KernelPath::kPortable: break;
    case KernelPath::kAvx2:
#if !defined(__x86_64__)
      return "an x86-64 build";
#endif
      need(f.avx2, "avx2");
      break;
    case KernelPath::kAvx512Vnni:
#if !defined(__x86_64__)
      return "an x86-64 build";
#endif
      need(f.avx512f, "avx512f");
      need(f.avx512bw, "avx512bw");
      need(f.avx512vl, "avx512vl");
      need(f.avx512dq, "avx512dq");
      need(f.avx512vnni, "avx512vnni");
      break;
  }
  return missing;
}

bool cpu_supports(KernelPath path) { return missing_cpu_features(path).empty(); }

const KernelSet& reference_kernels() {
  static const KernelSet reference = make_reference();
  return reference;
}

const KernelSet& kernels_for(KernelPath path) {
  if (path == KernelPath::kReference) return reference_kernels();
  const std::string missing = missing_cpu_features(path);
  if (!missing.empty())
    throw Error(std::string("kernel path '") + kernel_path_name(path) + "' needs " + missing +
                ", which this CPU lacks");
  return optimized::kernel_set(path);
}

const KernelSet& kernels_by_name(std::string_view name) {
  if (name == "auto") return kernels_for(best_supported_path());
  for (const KernelPath path : all_kernel_paths())
    if (name == kernel_path_name(path)) return kernels_for(path);
  throw Error("unknown kernel path '" + std::string(name) + "' (expected " + kPathNames + ")");
}

const KernelSet& optimized_kernels() {
  const char* forced = std::getenv("ILLM_KERNELS");
  if (forced != nullptr && *forced != '\0') {
    try {
      return kernels_by_name(forced);
    } catch (const Error& e) {
      throw Error(std::string("ILLM_KERNELS: ") + e.what());
    }
  }
  return kernels_for(best_supported_path());
}

}  // namespace illm
