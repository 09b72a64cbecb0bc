"""Serving tests: the chart, dashboards, alerts and a real Prometheus; helpers live in modules
beside this file (chart.py, dashboards.py, metric_names.py, prometheus.py, vllm_metrics.py)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from backends import missing_backend

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


@pytest.fixture(scope="session")
def vllm_python() -> str:
    """The vLLM venv's Python, as tests/unit's fixture of the same name (vLLM has its own venv)."""
    python = os.environ.get("TOOLORCH_VLLM_PYTHON")
    if not python:
        missing_backend("the vLLM CPU server venv",
                        "TOOLORCH_VLLM_PYTHON is unset: run scripts/vllm-venv.sh and export its last line")
    if not os.access(python, os.X_OK):
        missing_backend("the vLLM CPU server venv", f"TOOLORCH_VLLM_PYTHON={python} is not an executable")
    return python
