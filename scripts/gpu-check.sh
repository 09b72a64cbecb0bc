#!/usr/bin/env bash
# The training paths on one GPU, after `dvc repro` has made data/ and models/sft:
#   1. the grpo stage on CUDA from models/sft, 16 steps (HF-generate rollouts, held-out check on 12 tasks);
#   2. the sft stage on CUDA, one epoch;
#   3. benchmarks/grpo.py on CUDA, ours against TRL, with a SmolLM2-135M-shaped random-init body.
# Each part has its own time limit and a failure does not stop the others.
#
#   bash scripts/gpu-check.sh reports/gpu      # writes sft.json, grpo.json, bench-135m.json, env.txt there
set -uo pipefail
out=${1:-reports/gpu}
mkdir -p "$out"
scratch=$(mktemp -d)
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}

part() {  # part NAME SECONDS COMMAND...: run with a time limit, report how it ended
  local name=$1 limit=$2 start=$SECONDS
  shift 2
  echo "=== $name"
  timeout "$limit" "$@"
  echo "=== $name: exit $? after $((SECONDS - start)) s"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $py -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__,
'cuda', torch.cuda.is_available())"
  $py -c "import toolorch.stages.grpo, trl, datasets; print('trl', trl.__version__, 'datasets', datasets.__version__)"; } > "$out/env.txt" 2>&1

part grpo 200 $py -m toolorch.stages.grpo --config configs/tiny.yaml --set stages.grpo.steps=16 \
  --set stages.grpo.heldout.max_tasks=12 --out-dir "$scratch/grpo" --metrics-path "$out/grpo.json"
part sft 90 $py -m toolorch.stages.sft --config configs/tiny.yaml --set stages.sft.epochs=1 \
  --out-dir "$scratch/sft" --metrics-path "$out/sft.json"
part bench-135m 150 $py benchmarks/grpo.py "$out/bench-135m.json" --device cuda --tasks-per-step 16 --steps 3 \
  --rounds 2 --spec '{"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
  "num_attention_heads": 9, "num_key_value_heads": 3}'
rm -rf "$scratch"
