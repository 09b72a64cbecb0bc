#!/usr/bin/env bash
# Install toolorch (+ the vLLM CPU server venv its endpoint tests start) and run the tests.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/unit -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export TOOLORCH_VLLM_PYTHON="$(bash scripts/vllm-venv.sh | tail -n 1)"
exec .venv/bin/python -m pytest "$@"
