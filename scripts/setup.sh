#!/usr/bin/env bash
# Installs what inkstone needs to build, test and run its demo, from Debian's packages.
# Idempotent and quiet when everything is already there. Usage: scripts/setup.sh [--bench]
#   --bench  also installs Debian's python3-torch (the PyTorch reference of bench/ and the fixture script),
#            sentencepiece (spm_train, the reference of bench/tokenizer_bench.py) and libpcre2-dev (the
#            PCRE2 column of bench_pretokenize_speed)
set -euo pipefail

packages=(cmake ninja-build g++ pkg-config
          libyaml-cpp-dev libgtest-dev libopenblas-dev libfmt-dev nlohmann-json3-dev libcli11-dev
          libopenmpi-dev openmpi-bin fortunes-zh fortunes python3 python3-venv)
[[ "${1:-}" == "--bench" ]] && packages+=(python3-torch sentencepiece libpcre2-dev)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "setup: installing ${missing[*]}"
sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
