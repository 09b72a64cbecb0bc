"""The oracle: per task, the cheapest route that is correct (an upper bound, not a policy).

Candidate routes are run for real in the environment (simulated experts are
deterministic per seed, so a route's outcome is reproducible):

    gold            the task's gold tool plan, answered with the gold value when the tools
                    showed it (the teacher's grounded reader: the oracle may read gold; no policy may)
    only:<expert>   the question to one expert
    give_up         answer at once, spending nothing on tools
    observed:<p>    what each evaluated policy did on this task (its saved row)

The oracle takes the cheapest correct candidate; when none is correct it takes the
cheapest candidate and fails. Including observed routes makes the bound hold by
construction: no evaluated policy solves a task the oracle misses, or solves it cheaper.
"""
from __future__ import annotations

from typing import Any

from toolorch.core.records import Task
from toolorch.eval.runner import Block, EvalRow, Seen, to_row
from toolorch.runtime.chat import Tools
from toolorch.runtime.env import Environment
from toolorch.runtime.experts import approx_tokens
from toolorch.runtime.policies import AskToolPolicy, Generation, Policy, prompt_tokens
from toolorch.runtime.teacher import RoutePolicy
from toolorch.runtime.tools import Toolbox, expert_tool_name


class GiveUpPolicy:
    name = "oracle:give_up"

    def generate(self, messages: list[dict[str, Any]], tools: Tools = None) -> Generation:
        return Generation("<answer>unknown</answer>", prompt_tokens(messages), approx_tokens("unknown"))


def candidate_routes(task: Task, toolbox: Toolbox) -> dict[str, Policy]:
    routes: dict[str, Policy] = {"give_up": GiveUpPolicy()}
    if task.gold_calls:
        routes["gold"] = RoutePolicy(task, list(task.gold_calls), "gold")
    for expert in toolbox.experts:
        routes[f"only:{expert}"] = AskToolPolicy(expert_tool_name(expert), name=f"oracle:only:{expert}")
    return routes


def route_names(task: Task, block: Block) -> list[str]:
    return ["give_up"] + (["gold"] if task.gold_calls else []) + [f"only:{e}" for e in block.experts]


def run_route(task: Task, env: Environment, block: Block, route: str, seen: Seen) -> EvalRow:
    # A fresh session per route: routes may write to the DB (tau2-style actions).
    with env.session() as session:
        toolbox = block.runtime.toolbox(session)
        policy = candidate_routes(task, toolbox)[route]
        traj = block.runtime.run(task, policy, toolbox)
        return to_row(traj, task, toolbox, block.name, "oracle", seen, route=route)


def choose(candidates: list[EvalRow]) -> EvalRow:
    """Cheapest correct candidate, else cheapest; ties keep the first listed."""
    pool = [c for c in candidates if c.correct] or candidates
    return min(pool, key=lambda c: c.cost_usd)


def oracle_rows(tasks: list[Task], envs: dict[str, Environment], block: Block, observed: list[EvalRow],
                seen: Seen = Seen()) -> list[EvalRow]:
    by_task: dict[str, list[EvalRow]] = {}
    for row in observed:
        by_task.setdefault(row.task_id, []).append(row)
    rows = []
    for task in tasks:
        candidates = [run_route(task, envs[task.env], block, route, seen) for route in route_names(task, block)]
        candidates += [r.model_copy(update={"policy": "oracle", "route": f"observed:{r.policy}"})
                       for r in by_task.get(task.id, []) if r.policy != "oracle"]
        rows.append(choose(candidates))
    return rows
