#include "converter/memory_usage.h"

#include <fstream>

#include <fmt/format.h>

namespace illm::converter {
namespace {

// "<key>:   123456 kB" → bytes; 0 when the line is missing (non-Linux).
int64_t status_kilobytes(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) != 0) continue;
    return std::stoll(line.substr(key.size() + 1)) * 1024;
  }
  return 0;
}

}  // namespace

int64_t peak_rss_bytes() { return status_kilobytes("VmHWM"); }
int64_t current_rss_bytes() { return status_kilobytes("VmRSS"); }

std::string format_bytes(int64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (b >= 1024.0 * 1024 * 1024) return fmt::format("{:.2f} GiB", b / (1024.0 * 1024 * 1024));
  return fmt::format("{:.1f} MiB", b / (1024.0 * 1024));
}

}  // namespace illm::converter
