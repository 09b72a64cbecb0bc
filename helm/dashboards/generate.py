"""Grafana dashboards for the toolorch chart, written as code with Grafana's own
grafana-foundation-sdk and committed as JSON beside this file (the chart ships every
dashboards/*.json as a ConfigMap labelled grafana_dashboard: "1").

    python helm/dashboards/generate.py           # rewrite the JSON files
    python helm/dashboards/generate.py --check   # exit 1 if a committed file is stale

Queries name only the gateway's declared series (toolorch_*, src/toolorch/serve/metrics.py),
vLLM's own (vllm:*) and the training jobs' (toolorch_train_*, src/toolorch/train/exporter.py);
tests/serve/test_dashboards.py checks every one against those lists.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh

HERE = Path(__file__).resolve().parent
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"
# Gateway series of the selected release; `orchestrator` narrows to the chosen variants.
GW = 'namespace="$namespace", job="$job"'
GW_ORCH = GW + ', orchestrator=~"$orchestrator"'
ENGINE = 'namespace="$namespace", model_name=~"$model_name"'
# Training jobs' series (manifests/podmonitor-training.yaml): one SFT or GRPO stage, every pod of it.
TRAIN = 'namespace="$namespace", stage=~"$stage"'


def query(expr: str, legend: str = "") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend or "__auto").datasource(DATASOURCE)


def rate_sum(metric: str, selector: str, by: str = "") -> str:
    """sum [by (...)] (rate(metric{selector}[$__rate_interval]))"""
    head = f"sum by ({by}) " if by else "sum"
    return f"{head}(rate({metric}{{{selector}}}[{RATE}]))"


def chart(title: str, unit: str, description: str, *queries: prometheus.Dataquery,
          kind: Callable = timeseries.Panel) -> timeseries.Panel:
    """A panel (a time series unless `kind` says otherwise); targets get refIds A, B, C..."""
    panel = kind().title(title).unit(unit).description(description).span(8).datasource(DATASOURCE)
    for i, q in enumerate(queries):
        panel = panel.with_target(q.ref_id(chr(ord("A") + i)))
    return panel


def quantiles(metric: str, selector: str, by: str = "", qs: tuple[float, ...] = (0.5, 0.95, 0.99)) -> list:
    """One histogram_quantile query per quantile, aggregated by `le` (and `by`)."""
    group = f"le, {by}" if by else "le"
    return [query(f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{{{selector}}}[{RATE}])))",
                  f"p{round(q * 100)}" + (f" {{{{{by}}}}}" if by else "")) for q in qs]


def variable(name: str, expr: str, multi: bool = False) -> dashboard.QueryVariable:
    var = (dashboard.QueryVariable(name).label(name).datasource(DATASOURCE).query(expr)
           .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(1))
    return var.multi(True).include_all(True).all_value(".*") if multi else var


def base(uid: str, title: str, description: str) -> dashboard.Dashboard:
    return (dashboard.Dashboard(title).uid(uid).description(description).tags(["toolorch"])
            .time("now-3h", "now").refresh("30s").timezone("browser")
            .with_variable(dashboard.DatasourceVariable("datasource").label("datasource").type("prometheus")))


def gateway_base(uid: str, title: str, description: str) -> dashboard.Dashboard:
    return (base(uid, title, description)
            .with_variable(variable("namespace", "label_values(toolorch_requests_total, namespace)"))
            .with_variable(variable("job", 'label_values(toolorch_requests_total{namespace="$namespace"}, job)'))
            .with_variable(variable("orchestrator", 'label_values(toolorch_requests_total{namespace="$namespace", '
                                                    'job="$job"}, orchestrator)', multi=True)))


def gateway() -> dashboard.Dashboard:
    requests = "toolorch_requests_total"
    return (gateway_base("toolorch-gateway", "toolorch / gateway", "Requests, errors, latency and the "
                         "gateway's own overhead.")
            .with_row(dashboard.Row("Traffic"))
            .with_panel(chart("Requests / s", "reqps", "Finished /v1/chat/completions requests by variant.",
                              query(rate_sum(requests, GW_ORCH, "orchestrator"), "{{orchestrator}}")))
            .with_panel(chart("Errors / s by status and code", "reqps", "Requests not answered 200, by HTTP "
                              "status and OpenAI error code.",
                              query(rate_sum(requests, GW_ORCH + ', code!="ok"', "status, code"), "{{status}} {{code}}")))
            .with_panel(chart("5xx ratio", "percentunit", "Share of requests answered with a server error "
                              "(the error budget's numerator; SLO 99%).",
                              # `or vector(0)`: a healthy gateway has no 5xx series, and the panel shows 0, not "No Data"
                              query("(" + rate_sum(requests, GW_ORCH + ', status=~"5.."') + " or vector(0)) / "
                                    + rate_sum(requests, GW_ORCH),
                                    "5xx")))
            .with_row(dashboard.Row("Latency"))
            .with_panel(chart("End-to-end time", "s", "Whole orchestrations, all turns and expert calls included.",
                              *quantiles("toolorch_request_duration_seconds", GW_ORCH)))
            .with_panel(chart("p95 end-to-end time by variant", "s", "Default against canary.",
                              *quantiles("toolorch_request_duration_seconds", GW_ORCH, "orchestrator", (0.95,))))
            .with_panel(chart("Gateway overhead per turn", "s", "Time per orchestrator turn the gateway spent "
                              "not waiting on the engine or tools.",
                              *quantiles("toolorch_gateway_overhead_seconds", GW, qs=(0.5, 0.99))))
            .with_row(dashboard.Row("Capacity"))
            .with_panel(chart("Orchestrations in flight", "short", "Per gateway pod; the autoscaler's target.",
                              query(f"sum by (pod) (toolorch_inflight_orchestrations{{{GW}}})", "{{pod}}")))
            .with_panel(chart("Engine ready", "short", "1 while every gateway pod reaches a ready engine of "
                              "that variant.", query(f"min by (orchestrator) (toolorch_engine_ready{{{GW_ORCH}}})",
                                                     "{{orchestrator}}"), kind=stat.Panel)))


def orchestration() -> dashboard.Dashboard:
    cost = "toolorch_request_cost_usd"
    profiles = "toolorch_preference_requests_total"
    return (gateway_base("toolorch-orchestration", "toolorch / orchestration", "What the orchestrator does: "
                         "turns, tool mix, cost, budgets and the users' preferences.")
            .with_row(dashboard.Row("Turns and tools"))
            .with_panel(chart("Turns per request", "short", "Orchestrator turns per finished request.",
                              *quantiles("toolorch_request_turns", GW_ORCH, qs=(0.5, 0.95))))
            .with_panel(chart("Tool mix", "ops", "Tool calls per second by kind of tool.",
                              query(rate_sum("toolorch_tool_calls_total", GW, "tool"), "{{tool}}")))
            .with_panel(chart("Tool outcomes", "ops", "Tool calls by outcome (ok, error, timeout, breaker_open, "
                              "denied).", query(rate_sum("toolorch_tool_calls_total", GW, "outcome"), "{{outcome}}")))
            .with_panel(chart("Malformed calls per turn", "percentunit", "Turns whose call no tool takes "
                              "(unparseable, an unknown tool, arguments its schema rejects), over all turns: a "
                              "healthy orchestrator stays near 0 (alert ToolorchMalformedCallsHigh at 10%).",
                              query(f"{rate_sum('toolorch_malformed_calls_total', GW_ORCH, 'orchestrator')} / "
                                    f"{rate_sum('toolorch_request_turns_sum', GW_ORCH, 'orchestrator')}",
                                    "{{orchestrator}}")))
            .with_row(dashboard.Row("Cost"))
            .with_panel(chart("Mean cost per request", "currencyUSD", "Dollars per finished request, by variant.",
                              query(f"{rate_sum(cost + '_sum', GW_ORCH, 'orchestrator')} / "
                                    f"{rate_sum(cost + '_count', GW_ORCH, 'orchestrator')}", "{{orchestrator}}")))
            .with_panel(chart("p95 cost per request", "currencyUSD", "The dearest 5% of requests.",
                              *quantiles(cost, GW_ORCH, "orchestrator", (0.95,))))
            .with_panel(chart("Spend by API key", "currencyUSD", "Dollars per hour charged to each key (its name).",
                              query(f"{rate_sum('toolorch_key_cost_usd_total', GW, 'key')} * 3600", "{{key}}")))
            .with_row(dashboard.Row("Budgets and preferences"))
            .with_panel(chart("Budget exhaustions per request", "percentunit", "Requests that ran out of a cost, "
                              "latency, turn or key budget, over all requests.",
                              query(f"{rate_sum('toolorch_budget_exhaustions_total', GW, 'kind')} / "
                                    f"scalar({rate_sum('toolorch_requests_total', GW)})", "{{kind}}")))
            .with_panel(chart("Requests by preference profile", "reqps", "Which user preferences the traffic carries.",
                              query(rate_sum(profiles, GW, "profile"), "{{profile}}")))
            .with_panel(chart("Denied-tool attempts per request", "short", "Calls the orchestrator tried to a tool "
                              "the user denied, per request of that profile: 0 is full adherence.",
                              query(f"{rate_sum('toolorch_preference_denied_calls_total', GW, 'profile')} / "
                                    f"{rate_sum(profiles, GW, 'profile')}", "{{profile}}"))))


def experts() -> dashboard.Dashboard:
    sel = GW + ', expert=~"$expert"'
    calls, expert_calls = "toolorch_tool_calls_total", sel + ', expert!=""'
    return (gateway_base("toolorch-experts", "toolorch / experts", "Expert calls: latency, errors, "
                         "fallbacks, circuit breakers and spend.")
            .with_variable(variable("expert", 'label_values(toolorch_expert_latency_seconds_count{namespace="$namespace", '
                                              'job="$job"}, expert)', multi=True))
            .with_row(dashboard.Row("Latency and errors"))
            .with_panel(chart("p95 expert latency", "s", "One expert call, retries included.",
                              *quantiles("toolorch_expert_latency_seconds", sel, "expert", (0.95,))))
            .with_panel(chart("Calls by outcome", "ops", "Expert calls per second by expert and outcome.",
                              query(rate_sum(calls, expert_calls, "expert, outcome"), "{{expert}} {{outcome}}")))
            .with_panel(chart("Error ratio", "percentunit", "Errors and timeouts over all calls, by expert.",
                              query(rate_sum(calls, expert_calls + ', outcome=~"error|timeout"', "expert") + " / "
                                    + rate_sum(calls, expert_calls, "expert"), "{{expert}}")))
            .with_row(dashboard.Row("Resilience and spend"))
            .with_panel(chart("Fallbacks / s", "ops", "Calls moved away from this expert (breaker open, errors).",
                              query(rate_sum("toolorch_expert_fallbacks_total", sel, "expert"), "{{expert}}")))
            .with_panel(chart("Breaker open", "short", "1 while an expert's circuit breaker is open, on any pod.",
                              query(f"max by (expert) (toolorch_expert_breaker_open{{{sel}}})", "{{expert}}")))
            .with_panel(chart("Spend by expert", "currencyUSD", "Dollars per hour spent on each expert.",
                              query(f"{rate_sum('toolorch_expert_cost_usd_total', sel, 'expert')} * 3600",
                                    "{{expert}}"))))


def engine() -> dashboard.Dashboard:
    return (base("toolorch-engine", "toolorch / engines (vLLM)", "vLLM's own series from the orchestrator "
                 "engines and the in-cluster experts.")
            .with_variable(variable("namespace", "label_values(vllm:num_requests_running, namespace)"))
            .with_variable(variable("model_name", 'label_values(vllm:num_requests_running{namespace="$namespace"}, '
                                                  "model_name)", multi=True))
            .with_row(dashboard.Row("Load"))
            .with_panel(chart("Requests running and waiting", "short", "Sequences in the batch and in the queue.",
                              query(f"sum by (model_name) (vllm:num_requests_running{{{ENGINE}}})",
                                    "running {{model_name}}"),
                              query(f"sum by (model_name) (vllm:num_requests_waiting{{{ENGINE}}})",
                                    "waiting {{model_name}}")))
            .with_panel(chart("KV-cache usage", "percentunit", "Share of KV-cache blocks in use.",
                              query(f"max by (model_name) (vllm:kv_cache_usage_perc{{{ENGINE}}})", "{{model_name}}")))
            .with_panel(chart("Tokens / s", "short", "Prompt and generated tokens per second.",
                              query(rate_sum("vllm:prompt_tokens_total", ENGINE, "model_name"), "prompt {{model_name}}"),
                              query(rate_sum("vllm:generation_tokens_total", ENGINE, "model_name"),
                                    "generated {{model_name}}")))
            .with_row(dashboard.Row("Latency"))
            .with_panel(chart("Time to first token", "s", "Queue, prefill and the first decode step.",
                              *quantiles("vllm:time_to_first_token_seconds", ENGINE)))
            .with_panel(chart("Inter-token latency", "s", "Time between generated tokens.",
                              *quantiles("vllm:inter_token_latency_seconds", ENGINE)))
            .with_panel(chart("Queue time", "s", "Time a request waited before it was scheduled.",
                              *quantiles("vllm:request_queue_time_seconds", ENGINE, qs=(0.5, 0.95))))
            .with_row(dashboard.Row("Requests"))
            .with_panel(chart("p95 end-to-end engine time", "s", "One engine request (one orchestrator turn).",
                              *quantiles("vllm:e2e_request_latency_seconds", ENGINE, "model_name", (0.95,))))
            .with_panel(chart("Finished requests by reason", "reqps", "stop, length, abort, ...",
                              query(rate_sum("vllm:request_success_total", ENGINE, "finished_reason"),
                                    "{{finished_reason}}")))
            .with_panel(chart("Prefix-cache hit rate", "percentunit", "The orchestrator's system prompt repeats "
                              "every turn: this should stay high.",
                              query(f"{rate_sum('vllm:prefix_cache_hits_total', ENGINE, 'model_name')} / "
                                    f"{rate_sum('vllm:prefix_cache_queries_total', ENGINE, 'model_name')}",
                                    "{{model_name}}"))))


def training() -> dashboard.Dashboard:
    """SFT and GRPO jobs; every pod of a job reports the job's numbers (max over pods), and its own GPU memory."""
    def job_max(metric: str, by: str = "stage", selector: str = TRAIN) -> str:
        return f"max by ({by}) ({metric}{{{selector}}})"

    return (base("toolorch-training", "toolorch / training", "SFT and GRPO jobs: progress, reward terms, "
                 "throughput and GPU memory, from the jobs' exporter (local rank 0 of each pod).")
            .with_variable(variable("namespace", "label_values(toolorch_train_step, namespace)"))
            .with_variable(variable("stage", 'label_values(toolorch_train_step{namespace="$namespace"}, stage)',
                                    multi=True))
            .with_row(dashboard.Row("Progress"))
            .with_panel(chart("Step", "short", "Optimizer steps done, by stage.",
                              query(job_max("toolorch_train_step"), "{{stage}}"), kind=stat.Panel))
            .with_panel(chart("Done", "percentunit", "Share of the run's steps done.",
                              query(f"{job_max('toolorch_train_step')} / {job_max('toolorch_train_total_steps')}",
                                    "{{stage}}"), kind=stat.Panel))
            .with_panel(chart("ETA", "s", "Time to the last step at the pace of the steps so far.",
                              query(job_max("toolorch_train_eta_seconds"), "{{stage}}"), kind=stat.Panel))
            .with_row(dashboard.Row("Learning"))
            .with_panel(chart("Reward terms", "short", "GRPO: mean reward terms of the last step's rollouts "
                              "(outcome, cost, latency, preference, total).",
                              query(job_max("toolorch_train_reward", "stage, term"), "{{stage}} {{term}}")))
            .with_panel(chart("Loss", "short", "SFT: token loss; GRPO: policy loss.",
                              query(job_max("toolorch_train_value", "stage", TRAIN + ', name="loss"'), "{{stage}}")))
            .with_panel(chart("Accuracy and KL", "short", "GRPO: rollout accuracy, KL to the SFT model.",
                              query(job_max("toolorch_train_value", "stage, name", TRAIN + ', name=~"accuracy|kl"'),
                                    "{{stage}} {{name}}")))
            .with_row(dashboard.Row("Throughput and memory"))
            .with_panel(chart("Tokens / s", "short", "Tokens processed per second over the last logged steps "
                              "(GRPO: sampled; SFT: trained).",
                              query(job_max("toolorch_train_tokens_per_second"), "{{stage}}")))
            .with_panel(chart("Samples / s", "short", "Rollouts (GRPO) or packed rows (SFT) per second.",
                              query(job_max("toolorch_train_samples_per_second"), "{{stage}}")))
            .with_panel(chart("GPU memory", "bytes", "Allocated CUDA memory of each pod's local rank 0.",
                              query(job_max("toolorch_train_gpu_memory_bytes", "stage, pod"), "{{stage}} {{pod}}"))))


DASHBOARDS: dict[str, Callable[[], dashboard.Dashboard]] = {
    "gateway": gateway, "orchestration": orchestration, "experts": experts, "engine": engine,
    "training": training,
}


def render(name: str) -> str:
    return json.dumps(DASHBOARDS[name]().build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    stale = []
    for name in DASHBOARDS:
        path, text = HERE / f"{name}.json", render(name)
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale dashboards (run python {Path(__file__).name}): {', '.join(stale)}", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
