// Reading checkpoints at scale (formats/safetensors.h, formats/mapped_file.h): read_into / read_rows convert
// straight into the caller's buffer and hash on the way; content_digest equals an independent recomputation from the
// raw bytes (SHA-256 over file names, headers and per-tensor hashes) and does not change with the read order or with
// hashes handed over from an earlier process; a file truncated while mapped is an illm::Error (before the copy, and
// through the SIGBUS guard when the truncation races the copy), never a crash.
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "formats/mapped_file.h"
#include "formats/safetensors.h"
#include "formats/sha256.h"
#include "kernels/error.h"

namespace {

namespace fs = std::filesystem;
using namespace illm::formats;

fs::path scratch() {
  static const fs::path dir = [] {
    const fs::path d = fs::temp_directory_path() / ("illm_st_stream_" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

// A safetensors file with three BF16/F32 tensors; returns its path.
fs::path write_file(const std::string& name) {
  nlohmann::ordered_json header;
  std::string data;
  auto add = [&](const std::string& tensor, const char* dtype, std::vector<int64_t> shape, size_t element) {
    size_t n = 1;
    for (auto d : shape) n *= static_cast<size_t>(d);
    const size_t begin = data.size();
    for (size_t i = 0; i < n * element; ++i) data.push_back(static_cast<char>((i * 37 + begin) % 251));
    // Finite values: clear each element's top exponent bit pattern by keeping the high byte small.
    for (size_t i = element - 1; i < n * element; i += element) data[begin + i] = static_cast<char>(0x3C);
    header[tensor] = {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {begin, data.size()}}};
  };
  add("b", "BF16", {6, 5}, 2);
  add("a", "F32", {4, 3}, 4);
  add("c", "BF16", {7}, 2);
  std::string text = header.dump();
  const fs::path path = scratch() / name;
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>(n >> (8 * i)));
  out << text << data;
  return path;
}

Sha256Digest digest_of(std::span<const std::byte> bytes) {
  return sha256(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

TEST(SafetensorsStreaming, ReadIntoEqualsReadAndDigestIsIndependent) {
  const fs::path path = write_file("three.safetensors");
  const TensorStore store = TensorStore::open(path);
  std::vector<float> b(30);
  store.read_into("b", b);
  EXPECT_EQ(b, store.read_f32("b"));
  std::vector<double> a(12);
  store.read_into("a", a);
  EXPECT_EQ(a, store.read_f64("a"));
  std::vector<float> rows;
  int blocks = 0;
  store.read_rows("b", 4, [&](int64_t first, int64_t count, std::span<const float> v) {
    EXPECT_EQ(first, 4 * blocks);
    EXPECT_EQ(static_cast<int64_t>(v.size()), count * 5);
    rows.insert(rows.end(), v.begin(), v.end());
    ++blocks;
  });
  EXPECT_EQ(blocks, 2);
  EXPECT_EQ(rows, b);
  std::vector<float> range(5);
  store.read_range_into("b", 10, range);
  EXPECT_EQ(range, std::vector<float>(b.begin() + 10, b.begin() + 15));
  EXPECT_THROW(store.read_into("b", std::span<float>(b.data(), 29)), illm::Error);

  // Independent recomputation: file name, SHA-256 of [0, 8 + header), per-tensor SHA-256 in data-offset order.
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  uint64_t header = 0;
  for (int i = 7; i >= 0; --i) header = (header << 8) | static_cast<uint8_t>(bytes[i]);
  Sha256 expected;
  expected.update(std::string_view("three.safetensors"));
  const auto head = sha256(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), 8 + header));
  expected.update(std::span<const uint8_t>(head.data(), head.size()));
  for (const char* name : {"b", "a", "c"}) {  // data order
    const auto d = digest_of(store.raw(name));
    expected.update(std::span<const uint8_t>(d.data(), d.size()));
  }
  const auto want = expected.finish();
  EXPECT_EQ(store.content_digest(), want) << "after reading b and a (c hashed by content_digest)";
  const TensorStore fresh = TensorStore::open(path);
  EXPECT_EQ(fresh.content_digest(), want) << "nothing read before";
  // Hashes handed over (a resumed run) are used as they are: a wrong one changes the digest, a right one does not.
  const TensorStore resumed = TensorStore::open(path);
  resumed.add_tensor_digests(store.tensor_digests());
  EXPECT_EQ(resumed.content_digest(), want);
  auto wrong = store.tensor_digests();
  wrong["a"] = std::string(64, '0');
  const TensorStore tampered = TensorStore::open(path);
  tampered.add_tensor_digests(wrong);
  EXPECT_NE(tampered.content_digest(), want);
  EXPECT_THROW(tampered.add_tensor_digests({{"nope", std::string(64, '0')}}), illm::Error);
}

TEST(SafetensorsStreaming, TruncatedWhileMappedIsAnError) {
  const fs::path path = write_file("cut.safetensors");
  const TensorStore store = TensorStore::open(path);
  fs::resize_file(path, 100);  // inside the header's data area: every tensor now lies past the end
  try {
    store.read_f32("c");
    ADD_FAILURE() << "no error";
  } catch (const illm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cut.safetensors"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
  EXPECT_THROW(store.content_digest(), illm::Error);
}

TEST(SafetensorsStreaming, SigbusDuringTheCopyBecomesAnError) {
  const fs::path path = scratch() / "pages.bin";
  std::vector<char> bytes(3 * 4096, 'x');
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  const auto file = MappedFile::open(path);
  try {
    file->copy_out(0, bytes.size(), "test bytes", [&](std::span<const std::byte> mapped) {
      fs::resize_file(path, 0);  // the race: truncated after the size check, before the pages are touched
      volatile std::byte sink = mapped[2 * 4096 + 7];
      (void)sink;
    });
    ADD_FAILURE() << "no error";
  } catch (const illm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("SIGBUS"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("pages.bin"), std::string::npos) << e.what();
  }
  // The guard is gone afterwards, and a normal copy still works.
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  const auto again = MappedFile::open(path);
  char first = 0;
  again->copy_out(0, 1, "test bytes", [&](std::span<const std::byte> mapped) { first = static_cast<char>(mapped[0]); });
  EXPECT_EQ(first, 'x');
  again->release(0, bytes.size());  // dropping the pages keeps the bytes readable
  again->copy_out(4096, 1, "test bytes", [&](std::span<const std::byte> mapped) { first = static_cast<char>(mapped[0]); });
  EXPECT_EQ(first, 'x');
}

}  // namespace
