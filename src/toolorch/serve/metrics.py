"""Every Prometheus series the gateway exports, declared once (the names dashboards and alerts use).

    m = Metrics()                      # its own registry: several gateways in one test process
    m.requests.labels("default", "200", "ok").inc()
    text = m.render()                  # GET /metrics

Labels are bounded: variant names, tool kinds, expert names, configured key names, status codes.
Never a user, request id or key secret. A request rejected before a variant was chosen is
labelled orchestrator="none".
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800)
TURN_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 50)
COST_BUCKETS = (0.00001, 0.0001, 0.001, 0.01, 0.1, 1, 10)
EXPERT_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
NO_VARIANT = "none"


class Metrics:
    def __init__(self) -> None:
        disable_created_metrics()  # no `*_created` series: only the contract's names are exported
        r = self.registry = CollectorRegistry()
        self.requests = Counter("toolorch_requests_total", "Finished requests to /v1/chat/completions",
                                ["orchestrator", "status", "code"], registry=r)
        self.duration = Histogram("toolorch_request_duration_seconds", "End-to-end request duration",
                                  ["orchestrator", "finish_reason"], buckets=DURATION_BUCKETS, registry=r)
        self.turns = Histogram("toolorch_request_turns", "Orchestrator turns per request", ["orchestrator"],
                               buckets=TURN_BUCKETS, registry=r)
        self.malformed = Counter("toolorch_malformed_calls_total",
                                 "Orchestrator turns that were no call a tool takes (unparseable, unknown tool, "
                                 "rejected arguments)", ["orchestrator"], registry=r)
        self.cost = Histogram("toolorch_request_cost_usd", "Dollars per request", ["orchestrator"],
                              buckets=COST_BUCKETS, registry=r)
        self.tool_calls = Counter("toolorch_tool_calls_total", "Tool calls by kind, expert and outcome",
                                  ["tool", "expert", "outcome"], registry=r)
        self.expert_latency = Histogram("toolorch_expert_latency_seconds", "One expert call, retries included",
                                        ["expert"], buckets=EXPERT_LATENCY_BUCKETS, registry=r)
        self.expert_cost = Counter("toolorch_expert_cost_usd_total", "Dollars spent on each expert", ["expert"],
                                   registry=r)
        self.fallbacks = Counter("toolorch_expert_fallbacks_total", "Calls moved away from this expert",
                                 ["expert"], registry=r)
        self.breaker_open = Gauge("toolorch_expert_breaker_open", "1 while the expert's circuit breaker is open",
                                  ["expert"], registry=r)
        self.key_cost = Counter("toolorch_key_cost_usd_total", "Dollars charged to each API key", ["key"],
                                registry=r)
        self.exhaustions = Counter("toolorch_budget_exhaustions_total", "Budgets run out, by kind", ["kind"],
                                   registry=r)
        self.preference_requests = Counter("toolorch_preference_requests_total", "Requests by preference profile",
                                           ["profile"], registry=r)
        self.denied_calls = Counter("toolorch_preference_denied_calls_total",
                                    "Calls the orchestrator tried to a tool the user denied", ["profile"], registry=r)
        self.inflight = Gauge("toolorch_inflight_orchestrations", "Orchestrations running now", registry=r)
        self.overhead = Histogram("toolorch_gateway_overhead_seconds",
                                  "Per orchestrator turn, time the gateway spent not waiting on upstream calls",
                                  buckets=OVERHEAD_BUCKETS, registry=r)
        self.engine_ready = Gauge("toolorch_engine_ready", "1 while the orchestrator engine answers its probe",
                                  ["orchestrator"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


# One set of the declarations in a registry of its own, for whoever reads the contract from this
# module (tests/serve/test_metric_contract.py); each gateway counts in its own Metrics().
DECLARED = Metrics().registry
