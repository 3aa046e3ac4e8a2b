#!/usr/bin/env bash
# Configures and builds inkstone (Release). CUDA is compiled when nvcc is found.
# Usage: scripts/build.sh [BUILD_DIR] [extra cmake args...]   (default BUILD_DIR: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}
shift || true
[[ -d /usr/local/cuda/bin && ":$PATH:" != *":/usr/local/cuda/bin:"* ]] && export PATH="/usr/local/cuda/bin:$PATH"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DINKSTONE_WERROR=ON "$@" >/dev/null
cmake --build "$build_dir" --parallel "$(nproc)"
