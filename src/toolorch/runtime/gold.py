"""Executing ground-truth calls: how a task's answer is computed and re-verified.

Gold calls run through a real `Toolbox` over an `EnvSession` (db tools in SQLite,
`search` over the corpus, `run_python` in the sandbox). A string argument equal to
"$prev" is replaced by the previous observation, exactly as `PlanPolicy` replays a plan.
The answer is the last observation, except for document questions, whose answer is
the fact value, which must appear verbatim in what the search returned.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from toolorch.core.catalog import Catalog
from toolorch.core.records import Observation, Task, ToolCall, normalize_answer
from toolorch.runtime.env.world import Environment
from toolorch.runtime.policies import answer_from_observation
from toolorch.runtime.tools import Toolbox

PREV = "$prev"
MAX_ROWS_SHOWN = 50  # EnvSession.run_sql shows at most this many rows
EMPTY_RESULTS = ("no rows", "no documents found", "(no output)", "", "unknown", "None")


class GoldError(Exception):
    """Executing gold calls failed or gave nothing to answer with; the message is the reason."""


def substitute(call: ToolCall, prev: str | None) -> ToolCall:
    args = {k: (prev if v == PREV else v) for k, v in call.arguments.items()}
    return ToolCall(name=call.name, arguments=args)


def run_calls(toolbox: Toolbox, calls: list[ToolCall]) -> list[Observation]:
    """Execute calls in order; raises GoldError on any error, empty or truncated observation."""
    observations: list[Observation] = []
    prev: str | None = None
    for call in calls:
        obs = toolbox.call(substitute(call, prev))
        if obs.error:
            raise GoldError(f"{call.name} failed: {obs.content[:200]}")
        if obs.content.strip() in EMPTY_RESULTS:
            raise GoldError(f"{call.name} returned nothing ({obs.content.strip() or 'empty'})")
        if _cut_off(obs.content):
            raise GoldError(f"{call.name} returned more than the policy can see")
        observations.append(obs)
        prev = obs.content
    return observations


def _cut_off(content: str) -> bool:
    """True when the policy would not see the whole result (clipped text or a full row page)."""
    if "[truncated" in content:
        return True
    if content.startswith("[{"):
        try:
            return len(json.loads(content)) >= MAX_ROWS_SHOWN
        except ValueError:
            return False
    return False


def gold_answer(toolbox: Toolbox, calls: list[ToolCall], fact_answer: str | None = None) -> str:
    """The answer the calls produce: the last observation, or a fact the search must show verbatim."""
    if not calls:
        raise GoldError("no gold calls")
    observations = run_calls(toolbox, calls)
    if fact_answer is not None:
        if fact_answer not in observations[-1].content:
            raise GoldError(f"search did not return the document stating '{fact_answer}'")
        return fact_answer
    return answer_from_observation(observations[-1].content)


def verify_state(task: Task, env: Environment, catalog: Catalog) -> str | None:
    """A world-changing task re-verifies when its gold calls, in a fresh session, reach its final state.

    (Its reply, e.g. tau2's communicate_info, comes with the imported benchmark.)
    """
    with env.session() as session:
        toolbox = Toolbox(catalog, session, experts={}, with_code=True)
        prev: str | None = None
        for call in task.gold_calls:
            obs = toolbox.call(substitute(call, prev))
            if obs.error:
                return f"{call.name} failed: {obs.content[:200]}"
            prev = obs.content
        state = session.fingerprint()
    return None if state == task.final_state else f"gold calls reach {state}, task says {task.final_state}"


def verify(task: Task, toolbox: Toolbox) -> str | None:
    """Re-execute a task's gold calls; None when they give its answer, else the reason."""
    fact = task.answer if task.category == "document" else None
    try:
        got = gold_answer(toolbox, task.gold_calls, fact)
    except GoldError as e:
        return str(e)
    if normalize_answer(got, task.answer_type) != normalize_answer(task.answer, task.answer_type):
        return f"gold calls give {got!r}, task says {task.answer!r}"
    return None


def verify_env_tasks(env: Environment, tasks: list[Task], catalog: Catalog) -> list[tuple[str, str]]:
    """Re-verify every task of one environment in a fresh session; returns (task id, reason) failures."""
    failures = []
    with env.session() as session:
        toolbox = Toolbox(catalog, session, experts={}, with_code=True)
        for task in tasks:
            reason = verify_state(task, env, catalog) if task.final_state else verify(task, toolbox)
            if reason is not None:
                failures.append((task.id, reason))
    return failures


def verify_tasks(envs: list[Environment], tasks: list[Task], catalog: Catalog,
                 workers: int = 1) -> list[tuple[str, str]]:
    """Re-verify tasks across environments; a task whose env is missing fails too."""
    by_env = {e.name: e for e in envs}
    failures = [(t.id, f"unknown environment '{t.env}'") for t in tasks if t.env not in by_env]
    groups = [(by_env[name], [t for t in tasks if t.env == name]) for name in sorted(by_env)]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for found in pool.map(lambda g: verify_env_tasks(g[0], g[1], catalog), groups):
            failures += found
    return failures
