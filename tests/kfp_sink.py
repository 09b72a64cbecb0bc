"""KFP's Metrics artifact as a component sees it (a path and log_metric), for tests that call
toolorch.ops.kfp_io.run_stage without a pipeline."""
from __future__ import annotations

from pathlib import Path


class MetricsSink:
    def __init__(self, path: Path):
        self.path, self.logged = str(path), {}

    def log_metric(self, metric: str, value: float) -> None:
        self.logged[metric] = value
