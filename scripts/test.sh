#!/usr/bin/env bash
# Installs what is missing, builds (Release, warnings as errors, CUDA compiled when nvcc exists)
# and runs every test. GPU tests (label gpu) skip themselves when no GPU is present. The tokenizer
# tests compare with tiktoken and Hugging Face tokenizers, installed into build/pyref.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build
scripts/python_refs.sh build/pyref
export INKSTONE_REF_PYTHON="$PWD/build/pyref/bin/python"
cd build
ctest --output-on-failure --parallel "$(nproc)" --timeout 900
