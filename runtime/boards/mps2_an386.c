/* A bare-metal program for the Arm MPS2-AN386 board (Cortex-M4, run under `qemu-system-arm -M mps2-an386`): runs
 * the model linked into flash (symbols from `objcopy -I binary model.bin`) with the C99 runtime, greedy from BOS, and
 * prints the generated ids and the last logits row over semihosting, then exits. No C library: startup, the
 * semihosting calls (SYS_WRITE0, SYS_EXIT_EXTENDED), the number printing and memcpy/memset are here; 64-bit
 * division comes from libgcc.
 * Built by runtime/CMakeLists.txt, linked and run by tests/runtime/run_mps2.sh. */
#include <stddef.h>
#include <stdint.h>

#include "illm_rt.h"

#ifndef ILLM_BOARD_CONTEXT
#define ILLM_BOARD_CONTEXT 24
#endif
#ifndef ILLM_BOARD_MAX_TOKENS
#define ILLM_BOARD_MAX_TOKENS 12
#endif

extern const uint8_t _binary_model_bin_start[];
extern const uint8_t _binary_model_bin_end[];
extern uint8_t __arena_start[];
extern uint8_t __arena_end[];
extern uint32_t __data_load[], __data_start[], __data_end[], __bss_start[], __bss_end[], __stack_top[];

/* ---- Semihosting (Arm semihosting specification) ---- */

static int semihost(int operation, const void* argument) {
  register int r0 __asm__("r0") = operation;
  register const void* r1 __asm__("r1") = argument;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

static void put_string(const char* s) { semihost(0x04, s); }

static void put_int(int64_t v) {
  char digits[24];
  int n = 23;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  digits[n] = '\0';
  do {
    digits[--n] = (char)('0' + (int)(u % 10u));
    u /= 10u;
  } while (u != 0);
  if (v < 0) digits[--n] = '-';
  put_string(digits + n);
}

static void exit_board(int code) {
  /* SYS_EXIT_EXTENDED (0x20): ADP_Stopped_ApplicationExit (0x20026) with the exit code (AArch32's plain SYS_EXIT
   * carries no code). */
  uint32_t block[2];
  block[0] = 0x20026u;
  block[1] = (uint32_t)code;
  semihost(0x20, block);
  for (;;) {
  }
}

/* ---- What the compiler may call ---- */

void* memcpy(void* destination, const void* source, size_t n) {
  uint8_t* d = (uint8_t*)destination;
  const uint8_t* s = (const uint8_t*)source;
  while (n--) *d++ = *s++;
  return destination;
}

void* memset(void* destination, int value, size_t n) {
  uint8_t* d = (uint8_t*)destination;
  while (n--) *d++ = (uint8_t)value;
  return destination;
}

/* ---- The program ---- */

static int32_t generated[ILLM_BOARD_MAX_TOKENS];

static int board_main(void) {
  illm_rt_model model;
  illm_rt_session session;
  illm_rt_error err;
  illm_rt_generation result;
  int32_t prompt[1], i;
  const size_t model_size = (size_t)(_binary_model_bin_end - _binary_model_bin_start);
  const size_t arena_size = (size_t)(__arena_end - __arena_start);
  if (illm_rt_load(&model, _binary_model_bin_start, model_size, &err) != ILLM_RT_OK ||
      illm_rt_session_init(&session, &model, __arena_start, arena_size, ILLM_BOARD_CONTEXT, &err) != ILLM_RT_OK) {
    put_string("error ");
    put_string(err.message);
    put_string("\n");
    return 1;
  }
  put_string("arena ");
  put_int((int64_t)illm_rt_arena_size(&model, ILLM_BOARD_CONTEXT));
  put_string(" of ");
  put_int((int64_t)arena_size);
  put_string("\n");
  prompt[0] = model.shape.bos_id;
  if (illm_rt_generate(&session, prompt, 1, ILLM_BOARD_MAX_TOKENS, generated, &result, 0, 0, &err) != ILLM_RT_OK) {
    put_string("error ");
    put_string(err.message);
    put_string("\n");
    return 1;
  }
  put_string("ids");
  for (i = 0; i < result.generated; ++i) {
    put_string(" ");
    put_int(generated[i]);
  }
  put_string("\nstopped_at_eos ");
  put_int(result.stopped_at_eos);
  put_string("\nscale ");
  put_int(session.logits.scale.m);
  put_string(" ");
  put_int(session.logits.scale.k);
  put_string("\nlogits");
  for (i = 0; i < session.logits.vocab; ++i) {
    put_string(" ");
    put_int(session.logits.values[i]);
  }
  put_string("\n");
  return 0;
}

void reset_handler(void) {
  uint32_t* p;
  const uint32_t* s = __data_load;
  for (p = __data_start; p < __data_end;) *p++ = *s++;
  for (p = __bss_start; p < __bss_end;) *p++ = 0;
  exit_board(board_main());
}

void fault_handler(void) {
  put_string("error hard fault\n");
  exit_board(3);
}

/* Vector table: initial stack pointer, reset, NMI, hard fault, memory management, bus and usage faults. */
__attribute__((section(".vectors"), used)) static void (*const vectors[8])(void) = {
    (void (*)(void))(uintptr_t)__stack_top, reset_handler, fault_handler, fault_handler,
    fault_handler, fault_handler, fault_handler, fault_handler};
