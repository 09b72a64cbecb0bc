#!/usr/bin/env bash
# The smol profile on a 2-core CPU budget: does a pretrained orchestrator (SmolLM2-135M-Instruct)
# call database, search and code tools on a world it has never seen, and what does that buy
# against delegating every question to one expert? Simulated experts, labelled in every report.
#   bash scripts/smol_tools.sh      # about 40 minutes on 2 CPU cores; writes metrics/smol/
# Every stage but deploy runs through `python -m toolorch.ops.seeds` (the stage code dvc repro
# and KFP run) on configs/smol.yaml, cut to the budget below; the outputs go to runs/smol/
# (started afresh each time).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
python -m toolorch.runtime.model_store smollm2-135m-instruct   # GGUF -> HF folder, once (cached)

BUDGET=(  # what fits an hour of 2 CPU cores; the profile itself is sized for a GPU
  "episode.describe_db_tools=false"                          # short prompts: every token is a 135M forward
  "stages.synth_envs.domains=[library,bank,clinic,school,railway]"
  "stages.synth_envs.tau2_domains=[]"                        # tau2 tasks need 10+ turns
  "stages.synth_tasks.tasks_per_template=1"
  "stages.synth_tasks.heldout_envs=1"                        # one whole world held out, plus 20% of templates
  "stages.passk.k=2"
  "stages.passk.keep_top=2"
  "stages.validate.category_share=[0.0,1.0]"                 # five small worlds: shares are not the profile's
  "stages.sft.epochs=1"
  "stages.sft.max_len=2048"
  "stages.sft.rows_per_step=4"
  "stages.grpo.steps=8"
  "stages.grpo.tasks_per_step=2"
  "stages.grpo.group_size=4"
  "stages.grpo.contrast_profiles=[accuracy_first,cost_averse]"
  "stages.grpo.max_new_tokens=64"
  "stages.grpo.max_len=2048"
  "stages.grpo.row_len=2048"
  "stages.grpo.heldout.enabled=false"                        # the eval below scores the held-out tasks
  "stages.eval.policies=[grpo,sft,only:*,oracle]"
  "stages.eval.max_tasks=60"
  "stages.eval.sweep_policies=[]"
  "stages.eval.generalisation.unseen_pricing=false"
  "stages.eval.generalisation.unseen_tool=false"
  "stages.eval.max_new_tokens=64"
)
rm -rf runs/smol
start=$(date +%s)
python -m toolorch.ops.seeds run --config configs/smol.yaml --seeds 0 --root runs/smol "${BUDGET[@]/#/--set=}"
wall_s=$(( $(date +%s) - start ))

run=runs/smol/seed-0
mkdir -p metrics/smol
for stage in synth_tasks passk sft grpo eval; do cp "$run/metrics/$stage.json" metrics/smol/; done
cp "$run/reports/eval/report.md" metrics/smol/eval-report.md
python - "$wall_s" "${BUDGET[@]}" <<'EOF'
import json, os, sys
json.dump({"wall_s": int(sys.argv[1]), "cpu_cores": os.cpu_count(), "profile": "configs/smol.yaml",
           "overrides": sys.argv[2:]}, open("metrics/smol/run.json", "w"), indent=2)
EOF
echo "smol run: ${wall_s} s; metrics/smol/eval-report.md"
