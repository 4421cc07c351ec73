#pragma once
// A read-only POSIX memory mapping of a whole file. Held through shared_ptr so that every TensorStore copy
// shares one mapping and the bytes stay valid as long as any copy lives.
#include <cstddef>
#include <filesystem>
#include <memory>
#include <span>

namespace illm::formats {

class MappedFile {
 public:
  // Throws illm::Error naming the file when it cannot be opened, stat'ed or mapped.
  static std::shared_ptr<const MappedFile> open(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::span<const std::byte> bytes() const { return {data_, size_}; }
  size_t size() const { return size_; }

 private:
  MappedFile() = default;
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace illm::formats
