#!/usr/bin/env bash
# The two-command demo, second command: on a fresh Debian machine, installs what is missing, builds,
# prepares 唐诗三百首 + 宋词 (Debian's fortunes-zh), trains a small GPT on the CPU, evaluates it, and
# writes a poem. A run already in runs/tang300 is continued (train.resume=auto), never overwritten.
# Usage: scripts/demo.sh [key=value ...]   (overrides for configs/tang300.yaml, e.g. train.max_steps=100)
set -euo pipefail
cd "$(dirname "$0")/.."
config=configs/tang300.yaml
run_dir=runs/tang300

scripts/setup.sh
scripts/build.sh build
inkstone=build/cli/inkstone

echo "== prepare: $config"
"$inkstone" prepare "$config"
echo "== train: $config (about 3.5 minutes on 2 cores)"
"$inkstone" train "$config" train.resume=auto "$@"
echo "== plot"
"$inkstone" plot "$run_dir"
echo "== eval: every checkpoint of the run on the validation split"
"$inkstone" eval "$run_dir" --data data/prepared/tang300 --json "$run_dir/eval.json"
echo "== generate: 《春眠》"
"$inkstone" generate "$run_dir/latest" --prompt "《春眠》" --max-new-tokens 240 --min-new-tokens 40 --temperature 0.8 --top-p 0.9 --seed 7 --sliding-window
