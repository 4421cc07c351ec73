// Input files (formats/input_file.h): a missing path, a directory, a device and a FIFO each get their own
// message naming the path, before any byte is read (/dev/zero would otherwise be read until memory runs out).
#include "formats/input_file.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include "tests/formats/test_support.h"

namespace illm::formats {
namespace {

using illm::testing::expect_error_containing;
using illm::testing::ScratchDir;

TEST(InputFile, EachKindOfWrongPathHasItsOwnMessage) {
  ScratchDir dir("illm_input_file");
  expect_error_containing([&] { require_regular_file(dir / "absent.json", "recipe"); },
                          {"absent.json", "recipe does not exist"});
  expect_error_containing([&] { require_regular_file(dir.path(), "dataset file"); },
                          {dir.path().string(), "dataset file is a directory, not a file"});
  expect_error_containing([&] { require_regular_file("/dev/zero", "tokenizer"); },
                          {"/dev/zero", "tokenizer is a device, not a regular file"});
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
  expect_error_containing([&] { read_input_file(dir / "fifo", "model config"); },
                          {"fifo", "model config is a FIFO, not a regular file"});
  expect_error_containing([&] { require_directory(dir / "absent", "model directory"); },
                          {"absent", "model directory does not exist"});
  illm::testing::write_file_bytes(dir / "file", "x");
  expect_error_containing([&] { require_directory(dir / "file", "model directory"); },
                          {"model directory is a regular file, not a directory"});
}

TEST(InputFile, ReadsRegularFilesWhole) {
  ScratchDir dir("illm_input_file");
  const std::string bytes("a\0b\xff", 4);
  illm::testing::write_file_bytes(dir / "f", bytes);
  EXPECT_EQ(read_input_file(dir / "f", "x"), bytes);
  illm::testing::write_file_bytes(dir / "empty", "");
  EXPECT_EQ(read_input_file(dir / "empty", "x"), "");
  EXPECT_NO_THROW(require_directory(dir.path(), "x"));
}

}  // namespace
}  // namespace illm::formats
