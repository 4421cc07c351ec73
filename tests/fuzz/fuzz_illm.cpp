// libFuzzer target: whole .illm files. The 512-byte header's SHA-256 of the payload is checked before HDF5 sees a
// byte, so nearly every mutation is refused there; fuzz_illm_hdf5 reaches HDF5 itself.
#include "tests/fuzz/illm_file_fuzzing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  illm::fuzz::read_model_bytes(std::string(illm::fuzz::as_text(data, size)));
  return 0;
}
