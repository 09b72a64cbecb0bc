"""tau2-bench's own tool code as the reference for the imported worlds (tests only).

The state a task's gold actions reach in tau2 (its tools on its own DB, a rejected action
skipped as tau2's evaluator does) is flattened like the import and compared, table by
table, with the state our gold calls reach through our SQL tools.
"""
from __future__ import annotations

import contextlib
import importlib
from typing import Any

from backends import import_backend

from toolorch.runtime.env.world import Environment
from toolorch.synth import tau2

# domain -> (tau2 module, its DB class, its agent tools class)
REFERENCE = {"airline": ("airline", "FlightDB", "AirlineTools"), "retail": ("retail", "RetailDB", "RetailTools"),
             "telecom": ("telecom", "TelecomDB", "TelecomTools")}


def require_tau2(domain: str) -> None:
    """Without tau2's tool code (and its light deps) these tests skip, and fail in CI."""
    import_backend(f"tau2.domains.{domain}.tools", "tau2-bench", f"needs its light deps ({tau2.INSTALL_HINT})")
    import_backend("loguru", "tau2-bench", tau2.INSTALL_HINT).logger.disable("tau2")


def reference_tools(domain: str, db: dict[str, Any]) -> Any:
    """tau2's own tools over its own DB."""
    package, db_class, tools_class = REFERENCE[domain]
    model = getattr(importlib.import_module(f"tau2.domains.{package}.data_model"), db_class)
    tools = getattr(importlib.import_module(f"tau2.domains.{package}.tools"), tools_class)
    return tools(model.model_validate(db))


def tau2_state(domain: str, raw_db: dict[str, Any], actions: list[dict[str, Any]],
               tools: Any = None) -> dict[str, list[tuple[Any, ...]]]:
    """The expected state: tau2's own tools applied to its own DB, then flattened like the import."""
    tools = tools or reference_tools(domain, raw_db)
    for a in actions:
        with contextlib.suppress(Exception):  # tau2's evaluator skips a gold action its tool rejects
            tools.use_tool(a["name"], **a["arguments"])
    module = tau2._module(domain)
    return tau2.rows_state(module.DDL, module.flatten(tools.db.model_dump(mode="json")))


def state_diff(ours: dict[str, list[tuple[Any, ...]]], want: dict[str, list[tuple[Any, ...]]]) -> list[str]:
    """Differences by table (empty: identical)."""
    return [f"{t}: +{sorted(set(ours[t]) - set(want[t]))[:2]} -{sorted(set(want[t]) - set(ours[t]))[:2]}"
            for t in want if ours.get(t) != want[t]]


def check_replay(env: Environment, domain: str, raw_db: dict[str, Any], raw: dict[str, Any]) -> list[str]:
    """Differences between our replayed gold calls' state and tau2's (empty: identical)."""
    task = tau2.convert_task(env, domain, raw)
    return state_diff(tau2.replay(env, task.gold_calls),
                      tau2_state(domain, raw_db, raw["evaluation_criteria"]["actions"] or []))
