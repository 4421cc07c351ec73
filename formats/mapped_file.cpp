#include "formats/mapped_file.h"

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "kernels/error.h"

namespace illm::formats {
namespace {

// SIGBUS inside MappedFile::copy_out jumps back to it (per thread); anywhere else the default action runs.
thread_local sigjmp_buf* active_guard = nullptr;
struct sigaction previous_sigbus {};

void on_sigbus(int signal, siginfo_t* info, void* context) {
  if (active_guard != nullptr) siglongjmp(*active_guard, 1);
  // Not ours: behave as if we had not installed anything.
  if (previous_sigbus.sa_flags & SA_SIGINFO) {
    if (previous_sigbus.sa_sigaction != nullptr) return previous_sigbus.sa_sigaction(signal, info, context);
  } else if (previous_sigbus.sa_handler != SIG_DFL && previous_sigbus.sa_handler != SIG_IGN &&
             previous_sigbus.sa_handler != nullptr) {
    return previous_sigbus.sa_handler(signal);
  }
  ::signal(SIGBUS, SIG_DFL);
  ::raise(SIGBUS);
}

void install_sigbus_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction action {};
    action.sa_sigaction = on_sigbus;
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGBUS, &action, &previous_sigbus);
  });
}

uint64_t page_size() {
  static const uint64_t size = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

}  // namespace

std::shared_ptr<const MappedFile> MappedFile::open(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path.string() + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error(path.string() + ": cannot stat: " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(path.string() + ": not a regular file");
  }
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->path_ = path;
  file->size_ = static_cast<size_t>(st.st_size);
  file->fd_ = fd;  // kept open: truncation checks fstat it
  if (file->size_ > 0) {  // mmap of length 0 is invalid; an empty file maps to an empty span
    void* addr = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (addr == MAP_FAILED) throw Error(path.string() + ": cannot mmap: " + std::strerror(errno));
    file->data_ = static_cast<const std::byte*>(addr);
  }
  install_sigbus_handler();
  return file;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
  if (fd_ >= 0) ::close(fd_);
}

uint64_t MappedFile::current_size() const {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) throw Error(path_.string() + ": cannot stat: " + std::strerror(errno));
  return static_cast<uint64_t>(st.st_size);
}

void MappedFile::copy_out(uint64_t offset, uint64_t length, const char* what,
                          const std::function<void(std::span<const std::byte>)>& use) const {
  if (offset > size_ || length > size_ - offset)
    throw Error(path_.string() + ": " + what + ": bytes [" + std::to_string(offset) + ", " +
                std::to_string(offset + length) + ") lie outside the " + std::to_string(size_) + "-byte file");
  const uint64_t now = current_size();
  if (now < offset + length)
    throw Error(path_.string() + ": " + what + ": the file was truncated while in use (now " + std::to_string(now) +
                " bytes, was " + std::to_string(size_) + ")");
  sigjmp_buf guard;
  sigjmp_buf* const outer = active_guard;
  if (sigsetjmp(guard, 1) != 0) {
    active_guard = outer;
    throw Error(path_.string() + ": " + what + ": the file was truncated while being read (SIGBUS)");
  }
  active_guard = &guard;
  try {
    use(std::span<const std::byte>(data_ + offset, length));
  } catch (...) {
    active_guard = outer;
    throw;
  }
  active_guard = outer;
}

void MappedFile::release(uint64_t offset, uint64_t length) const {
  if (data_ == nullptr || length == 0 || offset >= size_) return;
  // Whole pages around the range: dropping a neighbour's page only costs a re-read from the page cache.
  const uint64_t begin = offset / page_size() * page_size();
  const uint64_t end = std::min<uint64_t>(size_, offset + length);
  ::madvise(const_cast<std::byte*>(data_) + begin, end - begin, MADV_DONTNEED);
}

}  // namespace illm::formats
