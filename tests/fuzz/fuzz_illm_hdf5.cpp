// libFuzzer target: the HDF5 payload of an .illm file. The target writes a valid 512-byte header with the payload's
// SHA-256 in front of it, as a deliberate forger would, so the mutations reach libhdf5 and our HDF5 reading code
// (every dataset still carries its own SHA-256, which stops most data mutations; metadata mutations reach HDF5).
#include "formats/sha256.h"
#include "tests/fuzz/illm_file_fuzzing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view payload = illm::fuzz::as_text(data, size);
  std::string file = std::string("ILLM-MODEL-FILE\nformat_version 2\npayload_sha256 ") +
                     illm::formats::sha256_hex(payload) + "\n";
  file.resize(512, '\0');
  file.append(payload);
  illm::fuzz::read_model_bytes(file);
  return 0;
}
