#!/usr/bin/env bash
# Links the MPS2-AN386 board program (runtime/boards/mps2_an386.c, compiled for Cortex-M4 soft float by
# runtime/CMakeLists.txt) with MODEL.bin placed in flash, and runs it under qemu-system-arm with semihosting output.
# Usage: run_mps2.sh MODEL.bin WORK_DIR CROSS_DIR LINKER_SCRIPT
# Prints the board's output; the exit code is the board's (124 when qemu ran past the time limit).
set -euo pipefail
model=$1 work=$2 cross=$3 script=$4
mkdir -p "$work"
cp "$model" "$work/model.bin"
# objcopy names the symbols after the input path: run it in the work directory for _binary_model_bin_*.
(cd "$work" && arm-none-eabi-objcopy -I binary -O elf32-littlearm -B arm \
   --rename-section .data=.rodata.model,alloc,load,readonly,data,contents model.bin model.o)
arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -mfloat-abi=soft -nostdlib -Wl,--gc-sections -T "$script" \
  "$cross/cortex-m4-board_mps2.o" "$cross/cortex-m4-illm_rt.o" "$cross/cortex-m4-illm_rt_tokenizer.o" \
  "$work/model.o" -lgcc -o "$work/board.elf"
# The board's semihosting output goes to a file (chardev), then to stdout.
status=0
timeout 120 qemu-system-arm -M mps2-an386 -display none -monitor none -serial none \
  -chardev file,id=semihosting,path="$work/board.out" -semihosting-config enable=on,target=native,chardev=semihosting \
  -kernel "$work/board.elf" || status=$?
cat "$work/board.out"
exit $status
