"""The series a dashboard or alert may name, and a PromQL check against them.

    known = known_series()                 # sample name -> label names (gateway + vLLM)
    query_problems(expr, known)            # [] when every selector and grouping label exists

Gateway series come from the metric contract (assets/gateway_metrics.txt), vLLM's from a live
scrape (assets/vllm_metric_names.txt, see vllm_metrics.py), the training jobs' from their exporter. Queries are parsed with
promql-parser (a Rust PromQL parser), not matched with regexes, so a name inside a string or
a function name is never mistaken for a metric.
"""
from __future__ import annotations

import re
from pathlib import Path

import promql_parser
from vllm_metrics import read_asset

ASSETS = Path(__file__).with_name("assets")
# Labels Prometheus (and the Prometheus Operator's ServiceMonitor) attach to every target.
TARGET_LABELS = {"namespace", "job", "instance", "pod", "service", "endpoint", "container"}
# Grafana's interval macros stand where PromQL wants a duration.
GRAFANA_DURATIONS = re.compile(r"\$__(rate_interval|interval|range)\b")


def gateway_contract(path: Path = ASSETS / "gateway_metrics.txt") -> dict[str, tuple[str, set[str]]]:
    """Declared gateway metric -> (type, label names)."""
    out: dict[str, tuple[str, set[str]]] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, kind, labels = line.split("\t")
            out[name] = (kind, set(filter(None, labels.split(","))))
    return out


def gateway_series(contract: dict[str, tuple[str, set[str]]]) -> dict[str, set[str]]:
    """The sample names a scrape of the gateway shows: histograms as _bucket, _sum and _count."""
    series: dict[str, set[str]] = {}
    for name, (kind, labels) in contract.items():
        if kind == "histogram":
            series[f"{name}_bucket"] = labels | {"le"}
            series[f"{name}_sum"] = set(labels)
            series[f"{name}_count"] = set(labels)
        else:
            series[name] = set(labels)
    return series


def training_series() -> dict[str, set[str]]:
    """The training jobs' exporter series (toolorch.train.exporter) and their labels, as declared."""
    from toolorch.train.exporter import TrainingExporter

    collectors = TrainingExporter().registry._collector_to_names
    return {name: set(c._labelnames) for c, names in collectors.items() for name in names}


def known_series() -> dict[str, set[str]]:
    return {**gateway_series(gateway_contract()), **read_asset(), **training_series()}


def parse(expr: str) -> promql_parser.Expr:
    return promql_parser.parse(GRAFANA_DURATIONS.sub("5m", expr))


def _walk(expr: str) -> tuple[list[tuple[str, set[str]]], set[str]]:
    """(metric name, matcher labels) of every selector, and every label a grouping names."""
    selectors: list[tuple[str, set[str]]] = []
    grouping: set[str] = set()

    def visit(node) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            selectors.append((node.name, {m.name for m in node.matchers.matchers}))
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            grouping.update(node.modifier.labels)
        elif isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None and node.modifier.matching:
            grouping.update(node.modifier.matching.labels)

    promql_parser.walk(parse(expr), visit)
    return selectors, grouping


def query_problems(expr: str, known: dict[str, set[str]]) -> list[str]:
    """What in `expr` names a series or a label that does not exist."""
    selectors, grouping = _walk(expr)
    problems: list[str] = []
    seen_labels = set(TARGET_LABELS)
    for name, labels in selectors:
        if not name:
            problems.append("a selector without a metric name")
            continue
        if name not in known:
            problems.append(f"unknown series {name}")
            continue
        seen_labels |= known[name]
        unknown = labels - known[name] - TARGET_LABELS
        if unknown:
            problems.append(f"{name} has no label(s) {sorted(unknown)}")
    missing = grouping - seen_labels
    if missing and not problems:  # an unknown series already explains a missing label
        problems.append(f"groups by label(s) {sorted(missing)} that none of its series carries")
    return problems


def grouping_labels(expr: str) -> set[str]:
    """Labels named by `by (...)` and `on (...)`: what a recorded series of `expr` keeps."""
    return _walk(expr)[1]


def selected_series(expr: str) -> set[str]:
    return {name for name, _ in _walk(expr)[0]}
