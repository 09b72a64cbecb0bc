"""The Helm chart and the gateway agree: every scenario's rendered catalog ConfigMap is a catalog the
gateway loads, its gateway flags parse, and the chart's `helm test` round trip passes against a real
gateway started from the CPU scenario's catalog and keys (simulated experts in process)."""
from __future__ import annotations

import pytest
import yaml
from chart import PREFIX, SCENARIOS, one, render, scenario_values
from gateway_server import GatewayServer
from test_helm_test_pod import roundtrip_pod, run_pod_command

from toolorch.serve.catalog_file import load_catalog_file
from toolorch.serve.gateway import Settings
from toolorch.serve.keys import load_keyring


def rendered_catalog(tmp_path, scenario: str):
    config_map = one(render(scenario_values(scenario)), "ConfigMap", f"{PREFIX}-catalog")
    path = tmp_path / "catalog.yaml"
    path.write_text(config_map["data"]["catalog.yaml"])
    return load_catalog_file(path)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_scenario_catalog_loads(tmp_path, scenario):
    served = rendered_catalog(tmp_path, scenario)
    assert served.catalog.orchestrator.input > 0
    for expert in served.catalog.experts:
        assert expert.backend in ("openai", "simulated") and expert.price.output >= 0


def test_helm_test_roundtrip_passes_against_the_gateway(tmp_path):
    served = rendered_catalog(tmp_path, "values-cpu.yaml")
    keys = load_keyring({"TOOLORCH_API_KEYS": yaml.safe_dump(
        {"keys": [{"name": "helm-test", "key": "test-key-123", "budget_usd": 1.0}]})})
    settings = Settings(served=served, orchestrators=[("default", "only:mini")])
    with GatewayServer(settings, keys) as gw:
        done = run_pod_command(roundtrip_pod({"test": {"apiKey": {"secretName": "keys", "secretKey": "api-key"}}}),
                               gw.root, secrets={"api-key": "test-key-123"})
        spent = gw.gateway.ledger.spent.get("helm-test", 0.0)
    assert done.returncode == 0, done.stdout + done.stderr
    assert spent > 0
