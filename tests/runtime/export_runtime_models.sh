#!/usr/bin/env bash
# Exports the shared test models (tests/fixtures/make_test_models.sh) with `illm export --format c99` into
# OUTDIR/<model>-<bits>/ (model.bin + runtime sources). CTest fixture runtime_models (tests/runtime/CMakeLists.txt).
# Usage: export_runtime_models.sh ILLM_BINARY TEST_MODELS_DIR OUTDIR
set -euo pipefail
illm=$1 models=$2 out=$3
mkdir -p "$out"
for model in stories260K tinybible; do
  for bits in w4a4 w4a8 w8a8; do
    rm -rf "$out/$model-$bits"
    "$illm" export --format c99 --model "$models/$model-$bits.illm" -o "$out/$model-$bits" --json >/dev/null
  done
done
rm -rf "$out/tinybible-w4a4-g32"
"$illm" export --format c99 --model "$models/tinybible-w4a4-g32.illm" -o "$out/tinybible-w4a4-g32" --json >/dev/null
