#!/usr/bin/env bash
# The 7B-scale measurements of docs/scale.md, one step at a time (each one is long; run them one after the other on a
# shared machine). Every step runs under `nice -n 10` and `/usr/bin/time -v` and leaves its log in WORK/logs/;
# `table` prints the markdown tables from those logs.
#
#   bench/scale_7b.sh WORK gen            # synthetic LLaMA-2-7B-shaped checkpoints: 32 layers (13.5 GB BF16, 2 shards)
#                                         # and 1/2/4-layer cuts (the cuts' layers equal the full model's first layers)
#   bench/scale_7b.sh WORK rtn32 rtn2     # illm quantize, RTN W4A4 (bench/recipes/rtn-w4a4-7b.json), 32 / 2 layers
#   bench/scale_7b.sh WORK fsbr2 fsbr4    # illm quantize, FSBR W4A4 1 epoch x 128 samples x 512 tokens, 2 / 4 layers
#   bench/scale_7b.sh WORK eval32         # illm eval (FP) of the 32-layer checkpoint, 8 windows x 512 tokens
#   bench/scale_7b.sh WORK generate       # illm generate on the RTN files of 2 and 32 layers (memory per layer)
#   bench/scale_7b.sh WORK step           # bench/fsbr_step: FSBR step time, fused vs unfused (one process each)
#   bench/scale_7b.sh WORK table          # the tables
#
# Environment: BUILD (default: build), THREADS (default: 2).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:?usage: scale_7b.sh WORK_DIR STEP...}
shift
build=${BUILD:-$here/build}
threads=${THREADS:-2}
illm=$build/illm
mkdir -p "$work/logs"

timed() {  # timed NAME COMMAND...: stdout to logs/NAME.out, stderr (progress + time -v) to logs/NAME.err
  local name=$1
  shift
  echo "scale_7b: $name: $*" >&2
  nice -n 10 /usr/bin/time -v "$@" >"$work/logs/$name.out" 2>"$work/logs/$name.err"
}

quantize() {  # quantize NAME LAYERS RECIPE [options]
  local name=$1 layers=$2 recipe=$3
  shift 3
  rm -rf "$work/$name.illm" "$work/$name.illm.partial"
  timed "$name" "$illm" quantize --model "$work/llama7b-l$layers" --recipe "$here/bench/recipes/$recipe" \
    --threads "$threads" --max-eval-windows 2 --max-tokens 8 --json -o "$work/$name.illm" "$@"
}

for step in "$@"; do
  case $step in
    gen)
      for layers in 32 1 2 4; do
        [ -d "$work/llama7b-l$layers" ] ||
          timed "gen-l$layers" "$build/tools/synthetic_checkpoint" -o "$work/llama7b-l$layers" --preset 7b \
            --layers "$layers" --shards 2 --calib-windows 128 --eval-windows 16 -q
      done ;;
    rtn32) quantize rtn32 32 rtn-w4a4-7b.json ;;
    rtn2) quantize rtn2 2 rtn-w4a4-7b.json ;;
    rtn1) quantize rtn1 1 rtn-w4a4-7b.json ;;
    fsbr2) quantize fsbr2 2 fsbr-w4a4-7b-1epoch.json ;;
    fsbr4) quantize fsbr4 4 fsbr-w4a4-7b-1epoch.json ;;
    eval32)
      timed eval32 "$illm" eval --model "$work/llama7b-l32" --data "$work/llama7b-l32/eval.jsonl" --max-samples 8 \
        --batch-size 8 --threads "$threads" --json ;;
    generate)
      for name in rtn1 rtn2 rtn32; do
        [ -f "$work/$name.illm" ] || continue
        timed "generate-$name" "$illm" generate --model "$work/$name.illm" --prompt-ids 1,450,4996,17354 \
          --max-tokens 16 --threads "$threads" --json
      done ;;
    step)
      timed step-fused "$build/bench/fsbr_step" --path fused --steps 2 --threads "$threads"
      timed step-unfused "$build/bench/fsbr_step" --path unfused --steps 2 --threads "$threads" ;;
    table)
      wall() { sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$work/logs/$1.err"; }
      rss() { awk '/Maximum resident set size/ {printf "%.2f GiB", $6 / 1048576}' "$work/logs/$1.err"; }
      echo "| run | wall | peak RSS |"
      echo "| --- | --- | --- |"
      for name in rtn32 rtn2 rtn1 fsbr2 fsbr4 eval32 generate-rtn1 generate-rtn2 generate-rtn32 step-fused step-unfused; do
        [ -f "$work/logs/$name.err" ] && echo "| $name | $(wall "$name") | $(rss "$name") |"
      done
      echo
      for name in rtn32 rtn2 fsbr2 fsbr4; do
        [ -f "$work/logs/$name.out" ] || continue
        echo "$name per block (seconds, s/step, peak RSS GiB):"
        tr '{' '\n' <"$work/logs/$name.out" | sed -n 's/.*"seconds":\([0-9.e+-]*\),"seconds_per_step":\([0-9.e+-]*\).*"peak_rss_bytes":\([0-9]*\).*/\1 \2 \3/p' |
          awk '{printf "  block %d: %.1f s, %.2f s/step, %.2f GiB\n", NR, $1, $2, $3 / 1073741824}'
      done
      for name in step-fused step-unfused; do
        [ -f "$work/logs/$name.out" ] && grep '^| [fu]' "$work/logs/$name.out"
      done ;;
    *) echo "scale_7b: unknown step $step" >&2; exit 1 ;;
  esac
done
