"""Serving tests: the chart, dashboards, alerts and a real Prometheus; helpers live in modules
beside this file (chart.py, metric_names.py, prometheus.py, vllm_metrics.py)."""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
