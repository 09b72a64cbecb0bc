#!/usr/bin/env bash
# Install toolorch (+ the vLLM CPU server venv its endpoint tests start) and run the tests.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/unit -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -c constraints.txt -e ".[dev]"
export TOOLORCH_VLLM_PYTHON="$(bash scripts/vllm-venv.sh | tail -n 1)"
exec .venv/bin/python -m pytest "$@"
