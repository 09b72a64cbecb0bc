"""tests/serve/prometheus.py against the real thing: Debian's Prometheus scrapes a prometheus_client
HTTP server started here, answers PromQL over the scraped series, reports a dead target, explains
a bad query, and loads the chart's alert rules."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from prometheus import PrometheusError, PrometheusServer
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from vllm_server import free_port

RULES = Path(__file__).resolve().parents[2] / "helm" / "alerts" / "rules.yaml"


@pytest.fixture
def exporter():
    """A /metrics endpoint with two series shaped like the gateway's."""
    registry = CollectorRegistry()
    requests = Counter("toolorch_requests", "finished requests", ["orchestrator", "status", "code"], registry=registry)
    requests.labels("default", "200", "ok").inc(3)
    requests.labels("canary", "502", "upstream_error").inc()
    Gauge("toolorch_inflight_orchestrations", "running now", registry=registry).set(2)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    yield f"127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_scrapes_a_target_and_answers_promql(tmp_path, exporter):
    with PrometheusServer.start(tmp_path, {"gateway": [exporter]}, rule_files=[RULES]) as prom:
        (target,) = prom.wait_for_targets()
        assert target["labels"]["job"] == "gateway" and target["health"] == "up"
        (ok,) = prom.wait_for_series('toolorch_requests_total{orchestrator="default"}')
        assert ok["metric"]["code"] == "ok" and float(ok["value"][1]) == 3.0
        by_status = {r["metric"]["status"]: float(r["value"][1])
                     for r in prom.query("sum by (status) (toolorch_requests_total)")}
        assert by_status == {"200": 3.0, "502": 1.0}
        assert float(prom.query("toolorch_inflight_orchestrations")[0]["value"][1]) == 2.0
        assert prom.query('toolorch_requests_total{orchestrator="nobody"}') == []
        rules = [r for g in prom.api("rules")["groups"] for r in g["rules"]]
        written = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
        assert len(rules) == len(written) >= 14 and all(r["health"] != "err" for r in rules)


def test_explains_a_bad_query(tmp_path, exporter):
    with PrometheusServer.start(tmp_path, {"gateway": [exporter]}) as prom:
        with pytest.raises(PrometheusError, match="bad_data"):
            prom.query("sum by (status (toolorch_requests_total)")


def test_reports_a_target_that_is_down(tmp_path):
    dead = f"127.0.0.1:{free_port()}"
    with PrometheusServer.start(tmp_path, {"gateway": [dead]}) as prom:
        with pytest.raises(TimeoutError, match=f"{dead}.*down"):
            prom.wait_for_targets(deadline_s=7)  # discovery syncs every 5 s
