"""Every panel of the gateway, orchestration and experts dashboards shows data from a live gateway:
`toolorch serve` with a scripted orchestrator engine and the simulated expert server (failing a share
of its calls) behind it, real traffic through the official SDK (answers, a budget that runs out, a
denied tool, a bad request), Debian's Prometheus scraping /metrics with the labels a ServiceMonitor
adds, and each panel's PromQL, with Grafana's variables filled as Grafana would, returning series.
(The engine dashboard reads vLLM's series: tests/serve/test_vllm_metric_names.py, marker vllm.)"""
from __future__ import annotations

import json
import os
import re
import time

from pathlib import Path

import openai
import pytest
from dashboard_snapshot import write_snapshot
from dashboards import DASHBOARDS, panels
from fake_openai import FakeOpenAI
from gateway_process import gateway_process
from prometheus import PrometheusServer
from scripted import scripted_engine, tool_call
from sim_server import SimServer

LABELS = {"namespace": "toolorch"}  # what the chart's ServiceMonitor relabelling adds
JOB = "gateway"


def filled(expr: str) -> str:
    """A panel's PromQL as Grafana sends it with every variable on `All`."""
    expr = expr.replace("$__rate_interval", "1m").replace('"$namespace"', f'"{LABELS["namespace"]}"')
    expr = expr.replace('"$job"', f'"{JOB}"')
    return re.sub(r'=~"\$\w+"', '=~".*"', expr)


@pytest.fixture(scope="module")
def live_gateway(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("live")
    # the engine asks mini, then answers from what it heard; a share of the expert calls fail
    reply = scripted_engine(tool_call("ask_mini", question="What is 2+2?"), "<answer>$obs</answer>")
    with FakeOpenAI(reply) as engine, SimServer.start(tmp / "sim.log", "--config", "configs/tiny.yaml",
                                                      "--latency-scale", "0", "--fail-rate", "0.3",
                                                      "--fail-status", "500") as experts:
        catalog = tmp / "catalog.yaml"
        catalog.write_text(json.dumps({
            "orchestrator": "orchestrator",
            "experts": [{"name": n, "base_url": experts.base_url, "model": n, "price": n, "max_retries": 0,
                         "timeout_s": 5} for n in ("frontier", "mini", "qwen-32b")],
            "tools": {"code": False}}))
        keys = "keys: [{name: team-a, key: sk-team-a-0000, budget_usd: 5.0}]"
        os.environ["TOOLORCH_API_KEYS"] = keys
        try:
            with gateway_process(["--catalog", str(catalog), "--orchestrator", f"openai:{engine.url}#orchestrator"],
                                 tmp / "serve.log") as url:
                yield url, tmp
        finally:
            os.environ.pop("TOOLORCH_API_KEYS", None)


def drive(url: str) -> None:
    client = openai.OpenAI(base_url=url, api_key="sk-team-a-0000", max_retries=0)
    ask = [{"role": "user", "content": "What is 2+2?"}]
    for profile in ("cost_averse", "accuracy_first", "balanced", "latency_averse") * 3:
        client.chat.completions.create(model="toolorch", messages=ask, extra_body={"preference": profile})
    client.chat.completions.create(model="toolorch", messages=ask,  # the engine asks mini anyway
                                   extra_body={"preference": {"profile": "balanced", "deny": ["ask_mini"]}})
    client.chat.completions.create(model="toolorch", messages=ask, extra_body={"max_cost_usd": 0.0008})
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="toolorch", messages=ask, extra_body={"max_turns": 0})


@pytest.mark.slow
def test_every_gateway_panel_shows_data(live_gateway):
    url, tmp = live_gateway
    target = url.removeprefix("http://").removesuffix("/v1")
    snapshot = os.environ.get("TOOLORCH_DASHBOARD_SNAPSHOT")  # a folder: also draw the panels (docs)
    with PrometheusServer.start(tmp / "prom", {JOB: [target]}, target_labels=LABELS) as prom:
        prom.wait_for_targets()
        start = time.time()
        for _ in range(12 if snapshot else 2):
            drive(url)
            time.sleep(3)  # two scrapes after the traffic: rate() needs two samples
        empty = [f"{name}: {p['title']} ({t['refId']}): {filled(t['expr'])}"
                 for name in ("gateway", "orchestration", "experts") for p in panels(DASHBOARDS[name])
                 for t in p["targets"] if not prom.query(filled(t["expr"]))]
        if snapshot:
            boards = {name: DASHBOARDS[name] for name in ("gateway", "orchestration", "experts")}
            write_snapshot(prom, boards, panels, filled, start, Path(snapshot))
    assert not empty, "panels with no data:\n" + "\n".join(empty)
