#!/usr/bin/env bash
# One-shot set-up on a fresh Debian bookworm machine: install the packages, configure, build.
# Usage: scripts/setup.sh [BUILD_DIR]   (default: build). Needs root (or sudo) for apt-get.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-"$here/build"}
packages=(build-essential cmake binutils ccache libtorch-dev libopenblas0-pthread libeigen3-dev nlohmann-json3-dev
          libhdf5-dev hdf5-tools libcli11-dev libspdlog-dev libfmt-dev libgtest-dev libbenchmark-dev
          # the C99 runtime's cross builds and emulators (runtime/CMakeLists.txt, tests/runtime)
          gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-riscv64-linux-gnu libc6-dev-riscv64-cross
          gcc-arm-linux-gnueabihf libc6-dev-armhf-cross gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-user
          qemu-system-arm
          # bench/gemm_bench only (oneDNN is never linked into illm)
          libdnnl-dev
          # the ONNX exporter (libonnx) and its tests under ONNX Runtime (node; onnxruntime-node below)
          libonnx-dev libprotobuf-dev nodejs
          # sanitizer and fuzz builds (docs/robustness.md)
          clang libfuzzer-14-dev libomp-14-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Debian packages npm separately; other nodejs builds (e.g. NodeSource's) bring their own and conflict with it.
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# ONNX Runtime for the ONNX export tests: onnxruntime-node, pinned with its lock file in tests/onnx/. Its install
# script downloads from a host the CPU build does not need (the CPU binary is inside the package): --ignore-scripts.
# Skipped when node_modules already holds exactly this lock file's packages.
onnx_tests="$here/tests/onnx"
if ! cmp -s "$onnx_tests/package-lock.json" "$onnx_tests/node_modules/.illm-installed-lock.json"; then
  echo "setup: installing onnxruntime-node into tests/onnx/node_modules (npm ci)" >&2
  (cd "$onnx_tests" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  cp "$onnx_tests/package-lock.json" "$onnx_tests/node_modules/.illm-installed-lock.json"
fi
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)"
