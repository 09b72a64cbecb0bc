"""The gateway metric contract that dashboards and alerts are checked against
(assets/gateway_metrics.txt) is what src/toolorch/serve/metrics.py declares: same names, types
and labels. Skips until the gateway's metrics module exists."""
from __future__ import annotations

import types

import pytest
from metric_names import gateway_contract
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase


def declared(module) -> dict[str, tuple[str, set[str]]]:
    """Exposed name -> (type, labels) of the prometheus_client metrics a module defines, at module
    level or registered in a module-level registry."""
    metrics = [v for v in vars(module).values() if isinstance(v, MetricWrapperBase)]
    for registry in (v for v in vars(module).values() if isinstance(v, CollectorRegistry)):
        metrics += [c for c in registry._collector_to_names if isinstance(c, MetricWrapperBase)]
    return {m._name + ("_total" if m._type == "counter" else ""): (m._type, set(m._labelnames)) for m in metrics}


def test_contract_matches_the_gateway_declarations():
    module = pytest.importorskip("toolorch.serve.metrics")
    found = declared(module)
    assert found, "toolorch.serve.metrics declares no prometheus_client metric at module level or in a registry"
    assert found == gateway_contract()


def test_declarations_are_read_from_module_metrics_and_registries():
    module = types.ModuleType("metrics")
    module.REGISTRY = CollectorRegistry()
    Counter("toolorch_requests_total", "requests", ["orchestrator", "status", "code"], registry=module.REGISTRY)
    module.TURNS = Histogram("toolorch_request_turns", "turns", ["orchestrator"], registry=None)
    module.INFLIGHT = Gauge("toolorch_inflight_orchestrations", "running", registry=None)
    assert declared(module) == {
        "toolorch_requests_total": ("counter", {"orchestrator", "status", "code"}),
        "toolorch_request_turns": ("histogram", {"orchestrator"}),
        "toolorch_inflight_orchestrations": ("gauge", set()),
    }
