"""Grafana dashboards (helm/dashboards/): generated from code and committed, and every query names
only series that exist: the gateway's declared metrics or vLLM's recorded ones, with their real
labels. No Grafana server exists here; the JSON is checked offline (a live Prometheus check of
every panel comes with the gateway)."""
from __future__ import annotations

import re

import pytest
from dashboards import DASHBOARD_DIR, DASHBOARDS, GENERATOR, panels, queries
from metric_names import known_series, query_problems, selected_series


def test_committed_json_is_what_the_generator_writes():
    for name in GENERATOR.DASHBOARDS:
        assert (DASHBOARD_DIR / f"{name}.json").read_text() == GENERATOR.render(name), (
            f"{name}.json is stale: run python helm/dashboards/generate.py")
    assert GENERATOR.main(["--check"]) == 0


def test_the_four_dashboards_cover_what_serving_needs():
    titles = {name: {p["title"] for p in panels(board)} for name, board in DASHBOARDS.items()}
    assert {"Requests / s", "Errors / s by status and code", "End-to-end time", "Gateway overhead per turn"} <= titles["gateway"]
    assert {"Turns per request", "Tool mix", "Mean cost per request", "Budget exhaustions per request",
            "Denied-tool attempts per request"} <= titles["orchestration"]
    assert {"p95 expert latency", "Error ratio", "Fallbacks / s", "Breaker open"} <= titles["experts"]
    assert {"Time to first token", "Inter-token latency", "KV-cache usage", "Requests running and waiting"} <= titles["engine"]
    assert len({board["uid"] for board in DASHBOARDS.values()}) == len(DASHBOARDS)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_query_names_real_series_and_labels(name):
    known = known_series()
    problems = [f"{where}: {p}" for where, expr in queries(DASHBOARDS[name]) for p in query_problems(expr, known)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panels_are_complete(name):
    board = DASHBOARDS[name]
    variables = {v["name"] for v in board["templating"]["list"]}
    for panel in panels(board):
        assert panel["targets"], f"{panel['title']} has no query"
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel.get("description"), f"{panel['title']} has no description"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids) and "" not in ref_ids, f"{panel['title']}: refIds {ref_ids}"
        for target in panel["targets"]:
            used = set(re.findall(r"\$(\w+)", target["expr"])) - {"__rate_interval"}
            assert used <= variables, f"{panel['title']} uses undefined variables {used - variables}"


def test_engine_dashboard_reads_vllm_and_the_others_the_gateway():
    for name, board in DASHBOARDS.items():
        names = set().union(*(selected_series(expr) for _, expr in queries(board)))
        prefix = "vllm:" if name == "engine" else "toolorch_"
        assert all(n.startswith(prefix) for n in names), f"{name}: {sorted(names)}"


def test_the_check_catches_a_wrong_name_and_a_wrong_label():
    known = known_series()
    assert query_problems('sum by (le) (rate(vllm:time_to_first_token_bucket{model_name="m"}[5m]))', known) == [
        "unknown series vllm:time_to_first_token_bucket"]
    assert query_problems('sum(rate(toolorch_requests_total{model="x"}[$__rate_interval]))', known) == [
        "toolorch_requests_total has no label(s) ['model']"]
    assert query_problems("sum by (expert) (rate(toolorch_requests_total[$__rate_interval]))", known) == [
        "groups by label(s) ['expert'] that none of its series carries"]
    assert query_problems("sum by (le, orchestrator) (rate(toolorch_request_turns_bucket[5m]))", known) == []
