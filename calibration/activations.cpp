#include "calibration/activations.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "kernels/error.h"

namespace illm::calib {

struct Activations::Impl {
  int64_t samples = 0, seq_len = 0, hidden = 0;
  torch::Tensor memory;              // in-memory storage
  std::filesystem::path path, temporary;  // file storage
  int fd = -1;
  bool committed = false;

  ~Impl() {
    if (fd >= 0) ::close(fd);
    if (!temporary.empty() && !committed) {  // an uncommitted file is not state: leave nothing behind
      std::error_code ignored;
      std::filesystem::remove(temporary, ignored);
    }
  }
  int64_t sequence_bytes() const { return seq_len * hidden * static_cast<int64_t>(sizeof(float)); }
  const std::filesystem::path& file() const { return committed || temporary.empty() ? path : temporary; }
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(file().string() + ": " + what + ": " + std::strerror(errno));
  }
};

namespace {

std::shared_ptr<Activations::Impl> make_impl(int64_t samples, int64_t seq_len, int64_t hidden) {
  if (samples <= 0 || seq_len <= 0 || hidden <= 0) throw Error("Activations: empty shape");
  auto impl = std::make_shared<Activations::Impl>();
  impl->samples = samples;
  impl->seq_len = seq_len;
  impl->hidden = hidden;
  return impl;
}

}  // namespace

Activations Activations::in_memory(int64_t samples, int64_t seq_len, int64_t hidden) {
  auto impl = make_impl(samples, seq_len, hidden);
  impl->memory = torch::empty({samples, seq_len, hidden}, torch::kFloat32);
  return Activations(std::move(impl));
}

Activations Activations::create_file(const std::filesystem::path& path, int64_t samples, int64_t seq_len,
                                     int64_t hidden) {
  auto impl = make_impl(samples, seq_len, hidden);
  impl->path = path;
  impl->temporary = path.string() + ".tmp";
  impl->fd = ::open(impl->temporary.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (impl->fd < 0) impl->fail("cannot create the calibration activations file");
  return Activations(std::move(impl));
}

Activations Activations::open_file(const std::filesystem::path& path, int64_t samples, int64_t seq_len,
                                   int64_t hidden) {
  auto impl = make_impl(samples, seq_len, hidden);
  impl->path = path;
  impl->committed = true;
  impl->fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (impl->fd < 0) impl->fail("cannot open the calibration activations file");
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  const auto expected = static_cast<uintmax_t>(samples * impl->sequence_bytes());
  if (ec || size != expected)
    throw Error(path.string() + ": calibration activations file has " + std::to_string(size) + " bytes, expected " +
                std::to_string(expected) + " (" + std::to_string(samples) + " x " + std::to_string(seq_len) + " x " +
                std::to_string(hidden) + " float32)");
  return Activations(std::move(impl));
}

int64_t Activations::samples() const { return impl_->samples; }
int64_t Activations::seq_len() const { return impl_->seq_len; }
int64_t Activations::hidden() const { return impl_->hidden; }
int64_t Activations::bytes() const { return impl_->samples * impl_->sequence_bytes(); }

torch::Tensor Activations::read(int64_t first, int64_t count) const {
  if (first < 0 || count < 0 || first + count > impl_->samples)
    throw Error("Activations: sequences [" + std::to_string(first) + ", " + std::to_string(first + count) +
                ") outside " + std::to_string(impl_->samples));
  if (impl_->memory.defined()) return impl_->memory.narrow(0, first, count);
  torch::Tensor out = torch::empty({count, impl_->seq_len, impl_->hidden}, torch::kFloat32);
  auto* dst = static_cast<char*>(out.data_ptr());
  const int64_t total = count * impl_->sequence_bytes();
  int64_t done = 0;
  while (done < total) {
    const ssize_t n = ::pread(impl_->fd, dst + done, static_cast<size_t>(total - done),
                              static_cast<off_t>(first * impl_->sequence_bytes() + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) impl_->fail("cannot read calibration activations");
    if (n == 0) {
      errno = EIO;
      impl_->fail("calibration activations file ends early (truncated?)");
    }
    done += n;
  }
  return out;
}

void Activations::write(int64_t first, const torch::Tensor& values) {
  const int64_t count = values.size(0);
  if (values.dim() != 3 || values.size(1) != impl_->seq_len || values.size(2) != impl_->hidden || first < 0 ||
      first + count > impl_->samples)
    throw Error("Activations: write of a wrongly shaped block");
  const torch::Tensor cpu = values.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  if (impl_->memory.defined()) {
    impl_->memory.narrow(0, first, count).copy_(cpu);
    return;
  }
  if (impl_->committed) throw Error(impl_->path.string() + ": calibration activations are read-only once committed");
  const auto* src = static_cast<const char*>(cpu.data_ptr());
  const int64_t total = count * impl_->sequence_bytes();
  int64_t done = 0;
  while (done < total) {
    const ssize_t n = ::pwrite(impl_->fd, src + done, static_cast<size_t>(total - done),
                               static_cast<off_t>(first * impl_->sequence_bytes() + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) impl_->fail("cannot write calibration activations");
    done += n;
  }
}

void Activations::commit() {
  if (impl_->memory.defined() || impl_->committed) return;
  if (::fsync(impl_->fd) != 0) impl_->fail("cannot flush calibration activations");
  std::error_code ec;
  std::filesystem::rename(impl_->temporary, impl_->path, ec);
  if (ec) throw Error(impl_->path.string() + ": cannot rename " + impl_->temporary.string() + ": " + ec.message());
  impl_->committed = true;
}

}  // namespace illm::calib
