#!/usr/bin/env bash
# Installs what is missing, builds (Release, warnings as errors, CUDA compiled when nvcc exists)
# and runs every test. GPU tests (label gpu) skip themselves when no GPU is present.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build
cd build
ctest --output-on-failure --parallel "$(nproc)" --timeout 900
