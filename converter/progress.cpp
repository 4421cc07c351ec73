#include "converter/progress.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

namespace illm::converter {
namespace {

std::string format_duration(double seconds) {
  if (seconds < 0) seconds = 0;
  const auto s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, (s / 60) % 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

}  // namespace

Progress::Progress(std::string label, int64_t total, std::string unit, bool enabled)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      enabled_(enabled),
      tty_(isatty(STDERR_FILENO) != 0),
      start_(Clock::now()),
      last_draw_(start_) {}

Progress::~Progress() { finish(); }

void Progress::advance(int64_t amount) {
  done_ += amount;
  if (!enabled_ || finished_) return;
  const auto now = Clock::now();
  const double since_start = std::chrono::duration<double>(now - start_).count();
  const double since_draw = std::chrono::duration<double>(now - last_draw_).count();
  const bool due = tty_ ? (since_start > 1.0 && since_draw > 0.1) : since_draw > 10.0;
  if (due && done_ < total_) draw(false);
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (enabled_ && shown_) draw(true);
}

void Progress::draw(bool final_line) {
  const auto now = Clock::now();
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0;
  std::string line = fmt::format("{}  {}/{} {}  {:.1f} {}/s", label_, done_, total_, unit_, rate, unit_);
  if (final_line)
    line += fmt::format("  done in {}", format_duration(elapsed));
  else if (rate > 0)
    line += fmt::format("  ETA {}", format_duration(static_cast<double>(total_ - done_) / rate));
  if (tty_)
    std::fprintf(stderr, "\r%s\033[K%s", line.c_str(), final_line ? "\n" : "");
  else
    std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
  shown_ = true;
}

}  // namespace illm::converter
