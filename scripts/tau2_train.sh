#!/usr/bin/env bash
# The tiny profile with tau2-bench's own split: its train tasks join pass@k, SFT and GRPO, its
# test tasks stay held out (`stages.synth_tasks.imported_holdout=test`). With every tau2 task held
# out, no tau2 prompt (2x a synthesized one's tokens) reached training, and at pipeline seeds 1
# and 2 GRPO lost the call's prefix there. Runs every stage through GRPO and its held-out check.
#   bash scripts/tau2_train.sh 1 2     # pipeline seeds; about 35 minutes each on 2 CPU cores
# Outputs go to runs/tau2-train/seed-<N>/ (a finished stage is kept: delete the folder to start
# afresh); each seed's metrics are copied to metrics/tau2_train/seed-<N>/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
[ $# -gt 0 ] || { echo "usage: bash scripts/tau2_train.sh SEED [SEED ...]" >&2; exit 2; }

SETTINGS=(
  "stages.synth_tasks.imported_holdout=test"
  "stages.sft.max_len=2048"   # a tau2 chat is 1250-1850 tokens
  "stages.sft.row_len=1024"   # the synthesized chats still pack as before; a tau2 chat is a row alone
)
for seed in "$@"; do
  start=$(date +%s)
  python -m toolorch.ops.seeds run --config configs/tiny.yaml --seeds "$seed" --root runs/tau2-train --to grpo \
    "${SETTINGS[@]/#/--set=}"
  wall_s=$(( $(date +%s) - start ))
  out=metrics/tau2_train/seed-$seed
  mkdir -p "$out"
  for stage in synth_tasks passk sft grpo; do cp "runs/tau2-train/seed-$seed/metrics/$stage.json" "$out/"; done
  python - "$out" "$seed" "$wall_s" "${SETTINGS[@]}" <<'PY'
import json, os, sys
out, seed, wall_s, overrides = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
json.dump({"seed": seed, "wall_s": wall_s, "cpu_cores": os.cpu_count(), "profile": "configs/tiny.yaml",
           "overrides": overrides}, open(f"{out}/run.json", "w"), indent=2)
PY
  echo "seed $seed: ${wall_s} s; $out/grpo.json (heldout)"
done
