#include "converter/kernel_option.h"

#include <cstdlib>

namespace illm::converter {

void add_kernels_option(CLI::App& sub, std::string& target) {
  sub.add_option("--kernels", target,
                 "Integer kernel path: auto (the fastest this CPU supports), reference (the serial specification), "
                 "portable, avx2 or avx512vnni. Default: $ILLM_KERNELS, else auto. All paths give bit-identical "
                 "results; a path this CPU lacks is an error");
}

const KernelSet& resolve_kernels(const std::string& option) {
  return option.empty() ? optimized_kernels() : kernels_by_name(option);
}

std::string kernel_paths_summary() {
  std::string text = "integer kernels: ";
  try {
    text += optimized_kernels().name;
  } catch (const std::exception& e) {
    text += std::string("(") + e.what() + ")";
  }
  const char* forced = std::getenv("ILLM_KERNELS");
  text += forced != nullptr && *forced != '\0' ? " (from ILLM_KERNELS)" : " (auto)";
  text += "; paths:";
  for (const KernelPath path : all_kernel_paths()) {
    text += std::string(" ") + kernel_path_name(path);
    if (!cpu_supports(path)) text += " (not on this CPU: needs " + missing_cpu_features(path) + ")";
  }
  return text;
}

}  // namespace illm::converter
