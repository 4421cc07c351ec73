#pragma once
// Calibration activations of one block boundary: `samples` sequences of [seq_len, hidden] float32 (docs/scale.md,
// "Activation storage"). Two kinds of storage with the same contents (float32 throughout, so both give the same
// calibration bit for bit):
//   in memory — one tensor (fixture-sized models, tests);
//   in a file — read and written per chunk with pread/pwrite, so only the chunk being processed is resident;
//               the file is written under `<path>.tmp` and renamed to `<path>` by commit(), which makes the inputs
//               of the next block part of the resumable state of `illm quantize` (converter/quantize_resume.*).
#include <cstdint>
#include <filesystem>
#include <memory>

#include <torch/torch.h>

namespace illm::calib {

class Activations {
 public:
  static Activations in_memory(int64_t samples, int64_t seq_len, int64_t hidden);
  // A new file (its temporary name is created, replacing a leftover one); nothing exists under `path` until commit.
  static Activations create_file(const std::filesystem::path& path, int64_t samples, int64_t seq_len, int64_t hidden);
  // A committed file of exactly samples·seq_len·hidden floats (illm::Error naming it otherwise).
  static Activations open_file(const std::filesystem::path& path, int64_t samples, int64_t seq_len, int64_t hidden);

  int64_t samples() const;
  int64_t seq_len() const;
  int64_t hidden() const;
  // Sequences [first, first + count) as a [count, seq_len, hidden] float32 CPU tensor (a view for in-memory
  // storage: do not write into it).
  torch::Tensor read(int64_t first, int64_t count) const;
  // Stores `values` ([count, seq_len, hidden], any float dtype/device) as sequences [first, first + count).
  void write(int64_t first, const torch::Tensor& values);
  // File: flush to disk and rename to the final name (illm::Error naming the file on failure). Memory: nothing.
  void commit();
  // Bytes this storage holds: samples · seq_len · hidden · 4.
  int64_t bytes() const;

  struct Impl;

 private:
  explicit Activations(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace illm::calib
