/* libFuzzer target for the C99 runtime's loader (issue #10): any byte string given to illm_rt_load returns a status
 * and reads nothing outside the buffer. An input that fails only its checksum is loaded again with the CRC fixed, so
 * that mutations reach the header, tensor table, value and tokenizer checks; a model that loads runs three tokens
 * with a small context and decodes and encodes a little text.
 * Seeds: tests/fuzz/corpus/model_bin/ (small synthetic models; tests/runtime/runtime_fuzz_seeds_test.cpp). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/illm_rt.h"

static void run_model(const illm_rt_model* model) {
  const size_t need = illm_rt_arena_size(model, 4);
  illm_rt_session session;
  illm_rt_error err;
  int32_t t, ids[16], n = 0;
  char text[64];
  size_t length;
  if (need == 0 || need > ((size_t)64 << 20)) return;
  {
    void* arena = malloc(need);
    if (arena && illm_rt_session_init(&session, model, arena, need, 4, &err) == ILLM_RT_OK)
      for (t = 0; t < 3; ++t) illm_rt_forward(&session, t * 7 % (model->shape.vocab > 0 ? model->shape.vocab : 1), &err);
    free(arena);
  }
  if (model->has_tokenizer) {
    static const char kText[] = "  a b\xC3\xA9 ab\xFF";
    const size_t work_size = illm_rt_encode_work_size(sizeof kText - 1);
    void* work = malloc(work_size);
    for (t = 0; t < 8; ++t) ids[t] = t * 5;
    illm_rt_decode(model, ids, 8, text, sizeof text, &length, &err);
    if (work) illm_rt_encode(model, kText, sizeof kText - 1, 1, ids, 16, &n, work, work_size, &err);
    free(work);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  /* An exact-size copy: AddressSanitizer reports any read past the end. */
  uint8_t* copy = (uint8_t*)malloc(size ? size : 1);
  illm_rt_model model;
  illm_rt_error err;
  int status;
  if (!copy) return 0;
  if (size) memcpy(copy, data, size);
  status = illm_rt_load(&model, copy, size, &err);
  if (status == ILLM_RT_E_CHECKSUM) {
    const uint64_t file_size = (uint64_t)copy[16] | ((uint64_t)copy[17] << 8) | ((uint64_t)copy[18] << 16) |
                               ((uint64_t)copy[19] << 24) | ((uint64_t)copy[20] << 32) | ((uint64_t)copy[21] << 40) |
                               ((uint64_t)copy[22] << 48) | ((uint64_t)copy[23] << 56);
    const uint32_t crc = illm_rt_crc32(0, copy + 16, (size_t)file_size - 16); /* checked: 256 <= file_size <= size */
    copy[12] = (uint8_t)crc;
    copy[13] = (uint8_t)(crc >> 8);
    copy[14] = (uint8_t)(crc >> 16);
    copy[15] = (uint8_t)(crc >> 24);
    status = illm_rt_load(&model, copy, size, &err);
  }
  if (status == ILLM_RT_OK) run_model(&model);
  free(copy);
  return 0;
}
