#pragma once
// Every file the tool writes (models, reports, sweep results, exports) is written under a temporary name in the
// destination's directory and renamed over the destination only once complete, so the destination holds either
// its old bytes or all of the new ones, whatever happens: a full disk, a write over `ulimit -f`, Ctrl-C, SIGTERM,
// two runs writing the same output (each has its own temporary name; the last rename wins, whole).
#include <filesystem>
#include <string_view>

namespace illm::formats {

class AtomicFile {
 public:
  // Chooses the temporary name "<destination>.tmp.<pid>.<n>" and registers it for removal on a signal
  // (install_temporary_file_cleanup). Nothing is created yet.
  explicit AtomicFile(std::filesystem::path destination);
  ~AtomicFile();  // removes the temporary file unless committed
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  const std::filesystem::path& temporary() const { return temporary_; }
  const std::filesystem::path& destination() const { return destination_; }

  // fsyncs the temporary file, renames it to the destination and fsyncs the directory. Throws illm::Error naming
  // the destination (the temporary file is then removed).
  void commit();

 private:
  std::filesystem::path destination_, temporary_;
  int slot_ = -1;  // index in the signal-cleanup table, -1 when the table was full
  bool committed_ = false;
};

// `bytes` to `destination` through an AtomicFile. Throws illm::Error naming the destination and the reason
// ("No space left on device", "File too large", ...); nothing is left behind on failure.
void write_file_atomically(const std::filesystem::path& destination, std::string_view bytes);

// Process-wide, once, before any file is written: SIGXFSZ is ignored, so that a write past `ulimit -f` fails with
// EFBIG (and is reported) instead of killing the process with the temporary file left; SIGINT, SIGTERM, SIGHUP and
// SIGQUIT remove the temporary files being written and then end the process as the signal would have.
void install_temporary_file_cleanup();

}  // namespace illm::formats
