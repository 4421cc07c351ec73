#include "converter/cli_options.h"

#include <sched.h>

#include <algorithm>

#include <string>
#include <thread>

namespace illm::converter {

int available_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

int max_threads() { return 4 * available_cpus(); }

CLI::Option* add_threads_option(CLI::App& command, int& threads, const char* description) {
  const CLI::Validator bounded(
      [](std::string& text) -> std::string {
        long long value = 0;
        try {
          size_t used = 0;
          value = std::stoll(text, &used);
          if (used != text.size()) return "\"" + text + "\" is not a whole number";
        } catch (const std::exception&) {
          return "\"" + text + "\" is not a whole number";
        }
        if (value < 0 || value > max_threads())
          return text + " is outside 0.." + std::to_string(max_threads()) + " (0: all " +
                 std::to_string(available_cpus()) + " CPUs; at most 4 threads per CPU)";
        return "";
      },
      "0.." + std::to_string(max_threads()), "threads");
  return command.add_option("--threads", threads, description)->check(bounded)->capture_default_str();
}

}  // namespace illm::converter
