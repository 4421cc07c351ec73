#pragma once
// Checks made before slow work starts, so that a command fails at once (and writes nothing) when its output file
// cannot be written.
#include <filesystem>

namespace illm::converter {

// Throws illm::Error naming `out` when its directory does not exist, `out` is a directory, or a file cannot be
// created next to it (probed with a temporary file that is removed again).
void check_output_writable(const std::filesystem::path& out);

}  // namespace illm::converter
