#pragma once
// A one-line progress display on stderr: "label  count/total  rate/s  ETA". On a terminal it redraws in place
// (at most ~10 times a second) and only appears once the work has taken more than a second; when stderr is
// not a terminal (logs, CI) it prints a plain line at most every 10 seconds. Disabled: prints nothing.
#include <chrono>
#include <cstdint>
#include <string>

namespace illm::converter {

class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit, bool enabled = true);
  ~Progress();  // finish()
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void advance(int64_t amount = 1);
  // Prints the final state (if anything was shown) and ends the line. Idempotent.
  void finish();

 private:
  using Clock = std::chrono::steady_clock;
  void draw(bool final_line);

  std::string label_, unit_;
  int64_t total_, done_ = 0;
  bool enabled_, tty_, shown_ = false, finished_ = false;
  Clock::time_point start_, last_draw_;
};

}  // namespace illm::converter
