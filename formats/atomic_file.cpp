#include "formats/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>

#include "kernels/error.h"

namespace illm::formats {
namespace {

// Temporary files in flight, for the signal handler: fixed storage (a handler may not allocate), a slot is taken
// by a compare-exchange on `used` and its path written before `ready` is set.
constexpr int kSlots = 32;
constexpr size_t kPathBytes = 4096;
struct Slot {
  std::atomic<bool> used{false};
  std::atomic<bool> ready{false};
  char path[kPathBytes];
};
Slot g_slots[kSlots];
std::atomic<unsigned> g_counter{0};

int register_temporary(const std::string& path) {
  if (path.size() + 1 > kPathBytes) return -1;
  for (int i = 0; i < kSlots; ++i) {
    bool expected = false;
    if (!g_slots[i].used.compare_exchange_strong(expected, true)) continue;
    std::memcpy(g_slots[i].path, path.c_str(), path.size() + 1);
    g_slots[i].ready.store(true);
    return i;
  }
  return -1;  // more than kSlots files at once: still written atomically, only not removed on a signal
}

void unregister_temporary(int slot) {
  if (slot < 0) return;
  g_slots[slot].ready.store(false);
  g_slots[slot].used.store(false);
}

extern "C" void remove_temporaries_and_die(int signal_number) {
  for (Slot& slot : g_slots)
    if (slot.ready.load()) ::unlink(slot.path);  // async-signal-safe
  std::signal(signal_number, SIG_DFL);
  std::raise(signal_number);
}

[[noreturn]] void fail(const std::filesystem::path& destination, const std::string& why) {
  throw Error(destination.string() + ": cannot be written: " + why);
}

}  // namespace

AtomicFile::AtomicFile(std::filesystem::path destination) : destination_(std::move(destination)) {
  temporary_ = destination_.string() + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(g_counter++);
  slot_ = register_temporary(temporary_.string());
}

AtomicFile::~AtomicFile() {
  if (!committed_) ::unlink(temporary_.c_str());
  unregister_temporary(slot_);
}

void AtomicFile::commit() {
  const int fd = ::open(temporary_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(destination_, std::string("the temporary file is gone: ") + std::strerror(errno));
  // fsync before the rename: after a crash the destination never names unwritten data.
  const bool synced = ::fsync(fd) == 0;
  const int sync_errno = errno;
  ::close(fd);
  if (!synced) fail(destination_, std::strerror(sync_errno));
  if (::rename(temporary_.c_str(), destination_.c_str()) != 0) fail(destination_, std::strerror(errno));
  committed_ = true;
  unregister_temporary(slot_);
  slot_ = -1;
  // The directory entry itself: best effort (some file systems refuse fsync on a directory).
  const std::filesystem::path dir = destination_.has_parent_path() ? destination_.parent_path() : ".";
  if (const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir_fd >= 0) {
    (void)::fsync(dir_fd);
    ::close(dir_fd);
  }
}

void write_file_atomically(const std::filesystem::path& destination, std::string_view bytes) {
  AtomicFile file(destination);
  const int fd = ::open(file.temporary().c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) fail(destination, std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int write_errno = n < 0 ? errno : EIO;
      ::close(fd);
      fail(destination, std::strerror(write_errno));
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) fail(destination, std::strerror(errno));
  file.commit();
}

void install_temporary_file_cleanup() {
  std::signal(SIGXFSZ, SIG_IGN);
  for (const int signal_number : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) {
    struct sigaction previous {};
    ::sigaction(signal_number, nullptr, &previous);
    if (previous.sa_handler == SIG_IGN) continue;  // e.g. SIGHUP under nohup: stays ignored
    struct sigaction action {};
    action.sa_handler = remove_temporaries_and_die;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESETHAND;
    ::sigaction(signal_number, &action, nullptr);
  }
}

}  // namespace illm::formats
