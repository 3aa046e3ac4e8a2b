#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU: runs the GPU tests (ctest label gpu), the kernel
# benchmarks against the measured copy and GEMM ceilings and, where PyTorch is importable, against its
# kernels on the same shapes, then GPT-2 124M training throughput at sequence length 1024; prints one
# table. Meant to finish in under 5 minutes on one H200.
#
# Usage: scripts/gpu_check.sh [--prebuilt DIR] [--out DIR] [--quick]
#   --prebuilt DIR  run the archive scripts/gpu_pack.sh made (DIR/inkstone-gpu.tar.xz) instead of
#                   building here: for GPU machines that have the CUDA toolkit but not the Debian
#                   libraries. cuBLAS, cudart and NCCL are found on this machine: the CUDA toolkit's
#                   lib64, then the nvidia-* packages of python3's environment (PyTorch's).
#   --out DIR       where the logs and JSON results go (default: build-gpu-check; through the device tool
#                   pass --out "$OUT" so they come back even when the run is cut short)
#   --quick         the reduced benchmark set
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")/.."
prebuilt="" out="build-gpu-check" quick=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --prebuilt) prebuilt=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --quick) quick=(--quick); shift ;;
    *) echo "gpu_check.sh: unknown argument '$1'; see the usage at the top of scripts/gpu_check.sh" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
# $out receives five files (the log, three JSON results, the table): the device tool brings back at
# most eight. Everything else (the unpacked build, each test's full log) goes to a scratch folder.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log="$out/gpu_check.log"
: >"$log"
say() { echo "== $*" | tee -a "$log"; }
# The carried libraries go to inkstone's programs only: python3 (PyTorch) keeps its own.
libs=""
with_libs() {
  if [[ -z $libs ]]; then "$@"; else LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@"; fi
}

[[ -d /usr/local/cuda/bin && ":$PATH:" != *":/usr/local/cuda/bin:"* ]] && export PATH="/usr/local/cuda/bin:$PATH"
if [[ -n $prebuilt ]]; then
  [[ -f $prebuilt/inkstone-gpu.tar.xz ]] ||
    { echo "gpu_check.sh: $prebuilt/inkstone-gpu.tar.xz not found; make it with scripts/gpu_pack.sh" >&2; exit 2; }
  root="$work/prebuilt"
  mkdir -p "$root"
  tar -C "$root" -xJf "$prebuilt/inkstone-gpu.tar.xz"
  bin="$root/bin"
  libs="$root/lib"
  for d in /usr/local/cuda/lib64 "$(dirname "$(command -v nvcc 2>/dev/null || echo /none/bin)")/../lib64"; do
    [[ -d $d ]] && libs="$libs:$d"
  done
  # NCCL (and cuBLAS when the toolkit lacks it) from the nvidia-* wheels beside PyTorch.
  if command -v python3 >/dev/null; then
    site=$(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null || true)
    for s in $site; do
      [[ -d $s/nvidia ]] || continue
      while read -r d; do libs="$libs:$d"; done < <(find "$s/nvidia" -maxdepth 3 -name 'lib*.so*' \
        \( -name 'libnccl.so*' -o -name 'libcublas*.so*' -o -name 'libcudart.so*' \) -printf '%h\n' | sort -u)
    done
  fi
  missing=$(with_libs ldd "$bin/inkstone" | awk '/not found/{print $1}' | tr '\n' ' ')
  if [[ -n $missing ]]; then
    echo "gpu_check.sh: the prebuilt inkstone cannot find: $missing(searched $libs)" >&2
    exit 2
  fi
  tests=("$bin"/kernels_cuda_test_* "$bin"/runtime_cuda_test_* "$bin"/cli_cuda_test_*)
  bench="$bin"
else
  scripts/build.sh build-gpu -DINKSTONE_CUDA=ON
  bin="$PWD/build-gpu/cli"
  tests=(build-gpu/tests/kernels_cuda_test_* build-gpu/tests/runtime_cuda_test_* build-gpu/tests/cli_cuda_test_*)
  bench="$PWD/build-gpu/bench"
fi
export INKSTONE_CLI="$bin/inkstone" INKSTONE_SOURCE_DIR="$PWD"

say "device"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | tee -a "$log" || true

say "GPU tests"
passed=0 failed=0 failures=()
for t in "${tests[@]}"; do
  [[ -f $t && -x $t ]] || continue  # gtest_discover_tests leaves .cmake files beside the binaries
  name=$(basename "$t")
  if with_libs timeout 240 "$t" --gtest_brief=1 >"$work/$name.log" 2>&1; then
    passed=$((passed + 1))
    tail -n 2 "$work/$name.log" | sed "s/^/[$name] /" | tee -a "$log"
  else
    failed=$((failed + 1))
    failures+=("$name")
    tail -n 120 "$work/$name.log" | sed "s/^/[$name] /" | tee -a "$log"
  fi
done
say "GPU tests: $passed executables passed, $failed failed${failures:+: ${failures[*]}}"

say "kernel benchmarks"
with_libs timeout 180 "$bench/bench_cuda_kernels" "${quick[@]}" --json "$out/kernels.json" 2>&1 | tee -a "$log" ||
  say "bench_cuda_kernels failed"
reference=()
if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>>"$log"; then
  say "PyTorch reference"
  timeout 180 python3 bench/cuda_reference.py "${quick[@]}" --json "$out/reference.json" 2>&1 | tee -a "$log" &&
    reference=("$out/reference.json") || say "cuda_reference.py failed"
else
  say "no PyTorch with CUDA here (see the log for why): no reference column"
fi

say "GPT-2 124M training, T=1024"
with_libs timeout 180 "$bench/bench_train_step" --device cuda --preset gpt2-124m --batch 32 --seq 1024 --warmup 2 --steps 10 \
  --no-op-times --json "$out/train.json" 2>&1 | tee -a "$log" || say "bench_train_step failed"

say "summary"
train=()
[[ -f $out/train.json ]] && train=(--train "$out/train.json")
python3 bench/gpu_report.py "$out/kernels.json" "${reference[@]}" "${train[@]}" | tee "$out/table.md" | tee -a "$log" ||
  say "gpu_report.py failed (see the benchmark output above)"
echo "GPU tests: $passed executables passed, $failed failed${failures:+: ${failures[*]}}" | tee -a "$out/table.md"
[[ $failed -eq 0 ]]
