#pragma once
// Resident memory of this process (Linux /proc/self/status), for progress lines and --json reports.
#include <cstdint>
#include <string>

namespace illm::converter {

int64_t peak_rss_bytes();     // VmHWM: the high-water mark of the resident set since the process started
int64_t current_rss_bytes();  // VmRSS
std::string format_bytes(int64_t bytes);  // "3.21 GiB", "512.0 MiB"

}  // namespace illm::converter
