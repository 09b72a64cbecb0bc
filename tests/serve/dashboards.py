"""The committed Grafana dashboards (helm/dashboards/*.json) and their generator, and every PromQL
query in them: panel targets and the selectors of `label_values(...)` variables."""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

DASHBOARD_DIR = Path(__file__).resolve().parents[2] / "helm" / "dashboards"


def load_generator():
    spec = importlib.util.spec_from_file_location("dashboards_generate", DASHBOARD_DIR / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATOR = load_generator()
DASHBOARDS = {name: json.loads((DASHBOARD_DIR / f"{name}.json").read_text()) for name in GENERATOR.DASHBOARDS}


def panels(board: dict) -> list[dict]:
    return [p for p in board["panels"] if p["type"] != "row"]


def label_values_selector(query: str) -> str:
    """label_values(SELECTOR, label) -> SELECTOR, the part that is PromQL."""
    match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
    assert match, f"variable query {query!r} is not label_values(selector, label)"
    return match.group(1)


def queries(board: dict) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    out = [(f"panel '{p['title']}' {t['refId']}", t["expr"]) for p in panels(board) for t in p["targets"]]
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            out.append((f"variable ${var['name']}", label_values_selector(var["query"])))
    return out
