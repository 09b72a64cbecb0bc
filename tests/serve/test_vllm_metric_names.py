"""vLLM's real series, live: a vLLM CPU server (tiny random-init Qwen2) scraped by a real
Prometheus. The recorded names (assets/vllm_metric_names.txt) must be what it exports, and every
query of the engine dashboard must return series from it. One server start, ~2 minutes."""
from __future__ import annotations

import re

import pytest
from dashboards import DASHBOARDS, queries
from prometheus import PrometheusServer
from vllm_metrics import exercise, read_asset, scrape, tiny_model, vllm_series
from vllm_server import VLLMServer

NAMESPACE = "toolorch"


def as_grafana_would(expr: str) -> str:
    """The query Grafana sends with the namespace chosen, every model, and a 1 m rate window."""
    expr = expr.replace("$namespace", NAMESPACE).replace("$model_name", ".*")
    return re.sub(r"\$__rate_interval", "1m", expr)


@pytest.mark.vllm
def test_vllm_series_match_the_recording_and_feed_every_engine_panel(vllm_python, tmp_path):
    server = VLLMServer.start(vllm_python, tiny_model(tmp_path / "model"), tmp_path / "vllm.log")
    try:
        with PrometheusServer.start(tmp_path / "prometheus", {"engine": [f"127.0.0.1:{server.port}"]},
                                    target_labels={"namespace": NAMESPACE}) as prom:
            prom.wait_for_targets()
            exercise(server.base_url, server.model)  # after the first scrape, so that rates see it
            live = vllm_series(scrape(server.base_url))
            prom.wait_for_series("increase(vllm:request_success_total[1m]) > 0")
            empty = [f"{where}: {expr}" for where, expr in queries(DASHBOARDS["engine"])
                     if not prom.query(as_grafana_would(expr))]
    finally:
        server.stop()
    recorded = read_asset()
    assert sorted(set(live) ^ set(recorded)) == [], "vLLM's series changed: rerun python tests/serve/vllm_metrics.py"
    assert {n: live[n] for n in recorded} == recorded
    assert not empty, "engine panels without data:\n" + "\n".join(empty)
