#!/usr/bin/env bash
# GRPO at hardware speed on one GPU, in one call of under 7 minutes (results: benchmarks/results/h200/):
#   0. env.txt; peak.json: the bf16 matmul rate (8192^3, median of 20) that MFU is measured against;
#   1. bench-1.5b.json: a Qwen2.5-1.5B-shaped body, ours with the flat layout, FlexAttention and bf16
#      (TRL in micro-batches of 16 completions: its whole batch in one forward does not fit);
#   2. bench-135m.json: a SmolLM2-135M-shaped body, likewise (TRL's whole batch in one forward);
#   3. bench-tiny.json: the tiny profile's shape and settings (fp32 rows; compare with the CPU run).
# Parts 1-2: both sides run bf16 autocast over float32 weights with TF32 and fused AdamW; TRL in the same run.
# Each part has its own time limit and a failure does not stop the others.
#
#   bash scripts/gpu-bench.sh OUT            # on the GPU machine
#   DRY=1 bash scripts/gpu-bench.sh /tmp/x   # the same parts on the CPU at toy sizes (checks the script)
set -uo pipefail
out=${1:?usage: gpu-bench.sh OUT}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
py=${PYTHON:-python3}
bench=(benchmarks/grpo.py)
if [ "${DRY:-0}" = 1 ]; then
  dev=(--device cpu --threads 2) attn=sdpa size=256 steps=(--steps 1 --warmup 1 --rounds 1)
  small='"num_hidden_layers": 2'
  s135='{"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2}'
  s15b='{"hidden_size": 96, "intermediate_size": 192, "num_hidden_layers": 2, "num_attention_heads": 6, "num_key_value_heads": 2}'
  tasks=(--tasks-per-step 2 --max-new-tokens 8) tiny=("${tasks[@]}")
else
  dev=(--device cuda) attn=flex size=8192 steps=(--steps 2 --warmup 1 --rounds 1)
  small=''
  s135='{"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3}'
  s15b='{"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2}'
  tasks=(--tasks-per-step 16) tiny=()
fi

part() {  # part NAME SECONDS COMMAND...: run with a time limit, report how it ended
  local name=$1 limit=$2 start=$SECONDS
  shift 2
  echo "=== $name"
  timeout "$limit" "$@"
  local rc=$?
  echo "=== $name: exit $rc after $((SECONDS - start)) s"
  return $rc
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
  $py -c "import torch, transformers, trl, datasets; print('torch', torch.__version__, 'transformers',
transformers.__version__, 'trl', trl.__version__, 'datasets', datasets.__version__, 'cuda', torch.cuda.is_available())"
} > "$out/env.txt" 2>&1

part peak 60 $py - "$out/peak.json" "$size" <<'EOF'
import json, sys, time, torch
n = int(sys.argv[2])
cuda = torch.cuda.is_available()
dev = "cuda" if cuda else "cpu"
a, b = (torch.randn(n, n, device=dev, dtype=torch.bfloat16) for _ in range(2))
times = []
for i in range(23):
    if cuda: torch.cuda.synchronize()
    t = time.perf_counter(); a @ b
    if cuda: torch.cuda.synchronize()
    times.append(time.perf_counter() - t)
s = sorted(times[3:])[len(times[3:]) // 2]
peak = 2 * n**3 / s / 1e12
print(f"bf16 {n}^3 matmul: {peak:.1f} TFLOP/s (median of 20)")
json.dump({"bf16_matmul_tflops": peak, "n": n, "median_s": s, "device": torch.cuda.get_device_name() if cuda else "cpu"},
          open(sys.argv[1], "w"), indent=2)
EOF
peak=$($py -c "import json; print(json.load(open('$out/peak.json'))['bf16_matmul_tflops'])" 2>/dev/null || echo 0)

# FlexAttention's training path runs only on the GPU: a toy forward and backward first; where it fails,
# the model shapes fall back to rows of shared prompts (dense per-row masks through sdpa)
layout=(--layout flat --attn "$attn")
part flex-smoke 60 $py - <<'EOF' || layout=(--layout rows --attn sdpa)
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM
from toolorch.runtime.chat import Sample
from toolorch.train.grpo import StepConfig, batch_logprobs
from toolorch.train.kernels import FLEX, collate_flat
from toolorch.train.packing import pack_shared, to_device
dev = "cuda" if torch.cuda.is_available() else "cpu"
attn = FLEX if dev == "cuda" else "sdpa"
cfg = Qwen2Config(vocab_size=300, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=1, attn_implementation=attn)
model = Qwen2ForCausalLM(cfg).to(dev)
prompt = list(range(1, 200))
rows = pack_shared([Sample(prompt + [7, 8, 9 + i], [False] * 199 + [True] * 3, [1.0] * 202) for i in range(4)], 4096)
step = StepConfig(layout="flat", precision="bf16")
logp, _, trained = batch_logprobs(model, to_device(collate_flat(rows, 0), dev), step)
logp.sum().backward()
assert int(trained.sum()) == 12 and torch.isfinite(logp).all(), logp
print("flex smoke: ok", attn, float(logp.sum()))
EOF
echo "model shapes run with: ${layout[*]}"

# 1-2. the model shapes: flat layout, FlexAttention, bf16 autocast, one micro-batch of up to 32768 tokens
part bench-1.5b 190 $py "${bench[@]}" "$out/bench-1.5b.json" "${dev[@]}" "${steps[@]}" "${tasks[@]}" \
  "${layout[@]}" --precision bf16 --tokens-per-micro 32768 --trl-micro 16 --peak-tflops "$peak" \
  --spec "$s15b"
part bench-135m 120 $py "${bench[@]}" "$out/bench-135m.json" "${dev[@]}" "${steps[@]}" "${tasks[@]}" \
  "${layout[@]}" --precision bf16 --tokens-per-micro 32768 --peak-tflops "$peak" --spec "$s135"
# 3. the tiny profile as it is (fp32, rows of shared prompts, 4 rows per micro-batch): its step time on the GPU
part tiny 60 $py "${bench[@]}" "$out/bench-tiny.json" "${dev[@]}" "${steps[@]}" "${tiny[@]}" --spec "{$small}" \
  --peak-tflops "$peak"
