// SHA-256 against the NIST FIPS 180-4 example vectors (independent golden values), plus incremental and
// file-offset hashing checked against the one-shot hash.
#include "formats/sha256.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <unistd.h>

#include "kernels/error.h"

namespace illm::formats {
namespace {

TEST(Sha256, NistAbc) {
  EXPECT_EQ(sha256_hex(std::string_view("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, NistEmpty) {
  EXPECT_EQ(sha256_hex(std::string_view("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256, Nist448BitMessage) {
  EXPECT_EQ(sha256_hex(std::string_view("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, NistMillionA) {
  const std::string million(1000000, 'a');
  EXPECT_EQ(sha256_hex(std::string_view(million)),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, IncrementalChunksMatchOneShot) {
  const std::string million(1000000, 'a');
  // Odd chunk sizes cross the 64-byte block boundary at every offset.
  for (size_t chunk : {1u, 7u, 63u, 64u, 65u, 1000u}) {
    Sha256 hasher;
    for (size_t pos = 0; pos < million.size(); pos += chunk)
      hasher.update(std::string_view(million).substr(pos, chunk));
    EXPECT_EQ(to_hex(hasher.finish()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        << "chunk " << chunk;
  }
}

TEST(Sha256, FileFromOffset) {
  const auto path = std::filesystem::temp_directory_path() / ("sha256_test_" + std::to_string(::getpid()));
  {
    std::ofstream out(path, std::ios::binary);
    out << "0123456789" << "abc";
  }
  EXPECT_EQ(to_hex(sha256_of_file(path, 10)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(to_hex(sha256_of_file(path, 13)), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_THROW(sha256_of_file(path, 14), Error);
  std::filesystem::remove(path);
  EXPECT_THROW(sha256_of_file(path), Error);
}

// Both compression functions (SHA-NI when the CPU has it, the portable one) give the NIST digest and agree with
// each other on pseudo-random messages of every length around the block size.
TEST(Sha256, AcceleratedAndPortablePathsAgree) {
  std::string bytes(3000, '\0');
  uint32_t x = 12345;
  for (char& c : bytes) c = static_cast<char>((x = x * 1103515245u + 12345u) >> 24);
  for (bool portable : {false, true}) {
    sha256_force_portable(portable);
    EXPECT_EQ(sha256_hex(std::string_view("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") << sha256_implementation();
  }
  for (size_t n : {0u, 1u, 55u, 56u, 63u, 64u, 65u, 119u, 128u, 1000u, 3000u}) {
    const std::string_view message(bytes.data(), n);
    sha256_force_portable(true);
    const std::string portable = sha256_hex(message);
    sha256_force_portable(false);
    EXPECT_EQ(sha256_hex(message), portable) << n << " bytes, " << sha256_implementation();
  }
  sha256_force_portable(false);
}

}  // namespace
}  // namespace illm::formats
