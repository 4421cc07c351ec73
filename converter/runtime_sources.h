#pragma once
// The C99 runtime's sources (runtime/), embedded into illm at build time (cmake/embed_files.cmake) so that
// `illm export --format c99` writes exactly the runtime it verified the export with.
#include <cstddef>
#include <span>

namespace illm::converter {

struct EmbeddedFile {
  const char* name;  // file name inside runtime/ (and inside the export directory)
  const unsigned char* data;
  size_t size;
};

std::span<const EmbeddedFile> runtime_source_files();

}  // namespace illm::converter
