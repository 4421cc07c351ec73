#pragma once
// A read-only POSIX memory mapping of a whole file. Held through shared_ptr so that every TensorStore copy
// shares one mapping and the bytes stay valid as long as any copy lives.
//
// Checkpoints can be larger than the machine's memory: readers copy what they need out of the mapping and then
// `release` those pages (they leave this process's resident set and stay in the kernel's page cache), so the
// mapping never holds more than what is being read. A file truncated while mapped would make the next access a
// SIGBUS; `copy_out` checks the file size first and turns a SIGBUS that still happens (a truncation racing the
// copy) into an illm::Error naming the file.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
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

  // Runs `use(bytes)` on bytes [offset, offset + length) of the mapping. Throws illm::Error naming the file and
  // `what` when the file is now shorter than offset + length (truncated since it was opened), or when a SIGBUS
  // interrupts `use` (then `use` is abandoned mid-way: it must hold no resources that need a destructor).
  void copy_out(uint64_t offset, uint64_t length, const char* what,
                const std::function<void(std::span<const std::byte>)>& use) const;

  // Drops the pages covering [offset, offset + length) from this process's resident memory (madvise
  // MADV_DONTNEED; read-only pages are re-read from the file if touched again).
  void release(uint64_t offset, uint64_t length) const;

  // Current size of the file on disk (fstat of the open descriptor).
  uint64_t current_size() const;

 private:
  MappedFile() = default;
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
  int fd_ = -1;
};

}  // namespace illm::formats
