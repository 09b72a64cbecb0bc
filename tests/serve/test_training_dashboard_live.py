"""Every panel of the training dashboard shows data from a training exporter scraped by a real
Prometheus (Debian's binary), with the `namespace` label the PodMonitor's target adds and each
panel's PromQL filled as Grafana fills its variables. The exporter is fed by the same Progress
updates the SFT and GRPO loops make; the machine has no GPU, so the GPU-memory gauge is set by
hand, as the exporter sets it from torch.cuda on a GPU."""
from __future__ import annotations

import re

import pytest
from dashboards import DASHBOARDS, panels
from prometheus import PrometheusServer
from vllm_server import free_port

from toolorch.core.progress import Progress
from toolorch.train.exporter import TrainingExporter

NAMESPACE = "toolorch"


def filled(expr: str) -> str:
    expr = expr.replace('"$namespace"', f'"{NAMESPACE}"')
    return re.sub(r'=~"\$\w+"', '=~".*"', expr)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    port = free_port()
    exporter = TrainingExporter(port, addr="127.0.0.1")
    for stage, scalars in (("sft", {"loss": 1.2, "lr": 1e-3}),
                           ("grpo", {"reward/total": 0.4, "reward/outcome": 0.5, "reward/cost": -0.1, "loss": -0.02,
                                     "accuracy": 0.5, "kl": 0.01})):
        progress = Progress(stage, total=10, watchers=[exporter], enabled=False)
        for step in (1, 2, 3):
            progress.update(step, scalars, tokens=512, samples=16)
        exporter.gpu.labels(stage).set(3.5e9)
    try:
        with PrometheusServer.start(tmp_path_factory.mktemp("prom"), {"training": [f"127.0.0.1:{port}"]},
                                    target_labels={"namespace": NAMESPACE}) as prom:
            prom.wait_for_targets()
            prom.wait_for_series("toolorch_train_gpu_memory_bytes")
            yield prom
    finally:
        exporter.close()


def test_every_training_panel_shows_data(prometheus):
    board = DASHBOARDS["training"]
    empty = [f"{p['title']} {t['refId']}: {filled(t['expr'])}" for p in panels(board) for t in p["targets"]
             if not prometheus.query(filled(t["expr"]))]
    assert not empty, "\n".join(empty)


def test_panels_read_the_numbers_the_loops_reported(prometheus):
    step = {r["metric"]["stage"]: float(r["value"][1])
            for r in prometheus.query('max by (stage) (toolorch_train_step{namespace="toolorch"})')}
    assert step == {"sft": 3.0, "grpo": 3.0}
    terms = {r["metric"]["term"]: float(r["value"][1])
             for r in prometheus.query('toolorch_train_reward{namespace="toolorch", stage="grpo"}')}
    assert terms == {"total": 0.4, "outcome": 0.5, "cost": -0.1}
