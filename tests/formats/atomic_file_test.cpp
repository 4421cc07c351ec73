// Atomic writes (formats/atomic_file.h): the destination holds its old bytes or all of the new ones, never a
// part, and no temporary file survives a failed write, a write past `ulimit -f`, or a SIGTERM. The limit and the
// signal are exercised in a forked child so that the test process itself keeps its limits and handlers.
#include "formats/atomic_file.h"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>

#include <gtest/gtest.h>

#include "tests/formats/test_support.h"

namespace illm::formats {
namespace {

using illm::testing::entries_of;
using illm::testing::file_bytes;
using illm::testing::ScratchDir;

// Runs `child` in a forked process and returns its wait status.
template <typename Fn>
int run_in_child(Fn&& child) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    child();
    std::_Exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

TEST(AtomicFile, ReplacesTheDestinationWhole) {
  ScratchDir dir("illm_atomic");
  write_file_atomically(dir / "out.json", "old");
  write_file_atomically(dir / "out.json", std::string(100000, 'n'));
  EXPECT_EQ(file_bytes(dir / "out.json"), std::string(100000, 'n'));
  EXPECT_EQ(entries_of(dir.path()), std::vector<std::string>{"out.json"});
}

TEST(AtomicFile, UncommittedTemporaryIsRemovedAndNamesAreUnique) {
  ScratchDir dir("illm_atomic");
  {
    AtomicFile a(dir / "x"), b(dir / "x");
    EXPECT_NE(a.temporary(), b.temporary());
    EXPECT_EQ(a.temporary().parent_path(), dir.path());
    illm::testing::write_file_bytes(a.temporary(), "half");
  }
  EXPECT_TRUE(entries_of(dir.path()).empty());
}

TEST(AtomicFile, MissingDirectoryIsAnErrorNamingTheDestination) {
  ScratchDir dir("illm_atomic");
  illm::testing::expect_error_containing([&] { write_file_atomically(dir / "no" / "out.json", "x"); },
                                         {"out.json", "cannot be written", "No such file or directory"});
}

// `ulimit -f`: without install_temporary_file_cleanup the kernel kills the writer with SIGXFSZ and the temporary
// file stays; with it the write fails with EFBIG, is reported, and nothing is left.
TEST(AtomicFile, WritePastTheFileSizeLimitFailsCleanly) {
  ScratchDir dir("illm_atomic");
  write_file_atomically(dir / "out.json", "old");
  const int status = run_in_child([&] {
    install_temporary_file_cleanup();
    const rlimit limit{4096, 4096};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    try {
      write_file_atomically(dir / "out.json", std::string(100000, 'x'));
    } catch (const Error& e) {
      std::_Exit(std::strstr(e.what(), "File too large") != nullptr && std::strstr(e.what(), "out.json") ? 3 : 4);
    }
    std::_Exit(5);
  });
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 3);
  EXPECT_EQ(file_bytes(dir / "out.json"), "old");
  EXPECT_EQ(entries_of(dir.path()), std::vector<std::string>{"out.json"});
}

TEST(AtomicFile, SigtermRemovesTheTemporaryFileAndStillKills) {
  ScratchDir dir("illm_atomic");
  const int status = run_in_child([&] {
    install_temporary_file_cleanup();
    AtomicFile file(dir / "model.illm");
    illm::testing::write_file_bytes(file.temporary(), "partial");
    ::raise(SIGTERM);
    std::_Exit(6);  // not reached: the handler re-raises with the default action
  });
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGTERM);
  EXPECT_TRUE(entries_of(dir.path()).empty());
}

}  // namespace
}  // namespace illm::formats
