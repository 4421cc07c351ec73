#pragma once
// The --kernels option of the commands that run the integer executor (eval, generate, verify): which kernel path
// (kernels/kernel_set.h) runs the model. A path this CPU lacks is an error, never a silent substitute.
#include <string>

#include <CLI/CLI.hpp>

#include "kernels/kernel_set.h"

namespace illm::converter {

// Adds `--kernels PATH` to `sub`, stored in `target` (empty: not given).
void add_kernels_option(CLI::App& sub, std::string& target);

// The kernel set of the option: the named path, or (empty option) $ILLM_KERNELS, else the fastest path of this CPU.
// Throws illm::Error naming the path and the missing CPU features.
const KernelSet& resolve_kernels(const std::string& option);

// One line for --version and inspect: the path `illm` uses by default here and every path with its availability.
std::string kernel_paths_summary();

}  // namespace illm::converter
