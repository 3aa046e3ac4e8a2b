#!/usr/bin/env bash
# Data-parallel training throughput on the CPU: tokens/s of one process against two MPI ranks, on the
# demo's data (configs/tang300.yaml) with its earlier, smaller model (64 wide, 2,048 tokens, 256
# positions: 0.35M parameters, what the README's table was measured on); the same global batch of
# 16 x 256 tokens in every row.
# Prints a table and writes JSON. Usage: bench/data_parallel_cpu.sh [BUILD_DIR] [OUT.json]
#
# Rows: one process with all cores as OpenMP threads (how a CPU run is normally launched), one process
# with one thread (the per-rank baseline), and two ranks with one thread each. The ratio that matters
# is 2 ranks over 1 process x 1 thread: the scaling of the data-parallel path itself.
#
# On N GPUs the same measurement is
#   mpirun -np N inkstone train configs/gpt2-124m.yaml device=cuda train.max_steps=50
# (one rank per GPU, bound by local rank), reading tokens_per_s from OUTPUT_DIR/metrics.jsonl; or, with
# torchrun-style launchers, RANK / WORLD_SIZE / LOCAL_RANK and distributed.rendezvous=SHARED_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
out_json=${2:-$build/bench_data_parallel_cpu.json}
inkstone="$PWD/$build/cli/inkstone"
[[ -x "$inkstone" ]] || { echo "bench: $inkstone not found; build first (scripts/build.sh $build)" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "bench: mpirun not found; run scripts/setup.sh" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # CI and containers run as root

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
steps=40
common=(data.dir="$work/data" data.vocab_size=2048 model.n_embd=64 model.context=256
        train.seq_len=256 train.micro_batch=8 train.grad_accum=2 train.max_steps=$steps
        train.eval_interval=100000 train.checkpoint_interval=100000 device=cpu)
"$inkstone" prepare configs/tang300.yaml data.dir="$work/data" data.vocab_size=2048 >/dev/null 2>&1

run() {  # NAME RANKS THREADS
  local name=$1 ranks=$2 threads=$3
  if [[ $ranks -eq 1 ]]; then
    OMP_NUM_THREADS=$threads "$inkstone" train configs/tang300.yaml "${common[@]}" output_dir="$work/$name" \
      >/dev/null 2>"$work/$name.log"
  else
    mpirun -np "$ranks" --oversubscribe --bind-to none -x OMP_NUM_THREADS="$threads" \
      "$inkstone" train configs/tang300.yaml "${common[@]}" output_dir="$work/$name" >/dev/null 2>"$work/$name.log"
  fi
}
run one_all "1" "$(nproc)"
run one_1 1 1
run two_1 2 1

python3 - "$work" "$out_json" "$steps" <<'PY'
import json, statistics, sys
work, out_json, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
def rate(name):
    rows = [json.loads(l) for l in open(f"{work}/{name}/metrics.jsonl")]
    rates = [r["tokens_per_s"] for r in rows if "tokens_per_s" in r]
    return statistics.median(rates[5:])  # the first steps warm caches and allocators
rows = [("1 process, all threads", "one_all"), ("1 process, 1 thread", "one_1"), ("2 ranks, 1 thread each", "two_1")]
result = {name: rate(key) for name, key in rows}
base = result["1 process, 1 thread"]
print(f"data-parallel CPU training, configs/tang300.yaml model, 16 x 256 tokens per step, median of steps 6-{steps}")
print(f"{'setup':<26}{'tokens/s':>12}{'vs 1 thread':>14}")
for name, _ in rows:
    print(f"{name:<26}{result[name]:>12.0f}{result[name] / base:>13.2f}x")
json.dump({"bench": "data_parallel_cpu", "steps": steps, "tokens_per_s": result,
           "two_ranks_over_one_thread": result["2 ranks, 1 thread each"] / base}, open(out_json, "w"), indent=1)
print(f"wrote {out_json}")
PY
