#!/usr/bin/env bash
# Builds inkstone with CUDA here and packs what `scripts/gpu_check.sh --prebuilt DIR` runs on a GPU
# machine that has the CUDA toolkit but none of the Debian libraries: the CLI, the GPU tests and the
# benchmarks (stripped), OpenBLAS linked in statically, and every other non-system, non-CUDA shared
# library they load, in one xz archive (the binaries share most of their bytes, so it packs small).
# cuBLAS, cuBLASLt, cudart and NCCL are found on the GPU machine (they are hundreds of MB).
#
# Usage: scripts/gpu_pack.sh [BUILD_DIR] [PACK_DIR]   (defaults: build-gpu, build-gpu-pack)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-gpu}
pack=${2:-build-gpu-pack}
# INKSTONE_NATIVE=OFF: the GPU machine's CPU is not this one, and the CPU reference ops run in every
# GPU test; -march=native code could stop there on an illegal instruction.
scripts/build.sh "$build" -DINKSTONE_CUDA=ON -DINKSTONE_MPI=OFF -DCMAKE_CUDA_ARCHITECTURES=90a \
  -DINKSTONE_OPENBLAS_STATIC=ON -DINKSTONE_NATIVE=OFF

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib"
binaries=("$build/cli/inkstone")
for f in "$build"/tests/kernels_cuda_test_* "$build"/tests/runtime_cuda_test_* "$build"/tests/cli_cuda_test_* \
  "$build"/bench/bench_cuda_kernels "$build"/bench/bench_train_step "$build"/bench/bench_generate_speed; do
  [[ -x $f && -f $f ]] && binaries+=("$f")
done
for f in "${binaries[@]}"; do
  strip --strip-unneeded -o "$stage/bin/$(basename "$f")" "$f"
done
# Shared libraries to carry: everything ldd resolves except glibc's own, the C++ runtime (the GPU
# machine's is newer) and the CUDA libraries.
system='/(libc|libm|libdl|librt|libpthread|ld-linux[^/]*|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libcublasLt|libnccl)\.so'
ldd "${binaries[@]}" 2>/dev/null | awk '/=> \//{print $3}' | sort -u | grep -Ev "$system" |
  while read -r lib; do cp -L "$lib" "$stage/lib/"; done
rm -rf "$pack"
mkdir -p "$pack"
tar -C "$stage" -cf - . | xz -9e -T2 >"$pack/inkstone-gpu.tar.xz"
echo "packed $(ls "$stage/bin" | wc -l) binaries and $(ls "$stage/lib" | wc -l) libraries:" \
  "$(du -h "$pack/inkstone-gpu.tar.xz" | cut -f1) in $pack/inkstone-gpu.tar.xz"
