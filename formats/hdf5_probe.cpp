#include "formats/hdf5_probe.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "kernels/error.h"

namespace illm::formats {
namespace {

constexpr unsigned kRehearsalSeconds = 120;

}  // namespace

void rehearse_in_child(const std::filesystem::path& file, const std::function<void()>& reading) {
  std::fflush(nullptr);
  const pid_t child = ::fork();
  if (child < 0) throw Error(file.string() + ": cannot fork to check the file: " + std::strerror(errno));
  if (child == 0) {
    ::alarm(kRehearsalSeconds);  // a cycle in the file's structures must not hang the tool: SIGALRM ends the child
    try {
      reading();
    } catch (...) {
    }
    ::_exit(0);  // no atexit handlers, no destructors of the parent's objects
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) throw Error(file.string() + ": cannot wait for the file check: " + std::strerror(errno));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
    throw Error(file.string() + ": malformed HDF5 structure: reading it did not finish in " +
                std::to_string(kRehearsalSeconds) + " s");
  // A signal, or (under AddressSanitizer, which turns a crash into exit code 1) any other exit code.
  const std::string how = WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status))
                                              : "exit code " + std::to_string(WEXITSTATUS(status));
  throw Error(file.string() + ": malformed HDF5 structure: libhdf5 crashed reading it (" + how +
              "); its header SHA-256 matches, so the file was made or edited on purpose");
}

}  // namespace illm::formats
