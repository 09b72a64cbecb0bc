"""Run one policy over tasks and keep one `EvalRow` per task: the saved per-task results
from which every reported number is computed (see `metrics.summarize`).

    rows = run_policy(tasks, envs, Block.build("main", cfg), "cascade", cascade_maker(cfg.catalog()), workers=4)

With `workers` > 1 tasks run concurrently (threads; a task's episode is independent of the
others: its own env session, experts seeded by task and prompt). The policy answers one turn at
a time (a lock around `generate`: a shared model computes one call at a time, and a policy that
counts its calls counts them one by one); rows come back in task order. The eval stage's model
policies decode greedily, so their turns do not depend on which task asked first and the rows
are byte-identical to the serial run's.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from toolorch.core.config import Config
from toolorch.core.records import Preference, Record, Task, Trajectory
from toolorch.eval.baselines import PolicyMaker
from toolorch.eval.gateway import GatewayEpisodes
from toolorch.runtime.env import Environment
from toolorch.runtime.episode import Runtime
from toolorch.runtime.experts import Expert
from toolorch.runtime.tools import Toolbox


class EvalRow(Record):
    """One policy on one task in one evaluation block."""

    block: str  # main | pareto | unseen_pricing | unseen_tool
    policy: str
    cost_weight: float | None = None  # the swept preference's cost share (pareto block)
    task_id: str
    env: str
    category: str
    difficulty: int
    template: str = ""
    env_seen: bool | None = None  # env appears in the training tasks (None: no training tasks known)
    template_seen: bool | None = None
    preference: str
    user_weights: dict[str, float]  # the user's own trade-off: accuracy, cost, latency weights summing to 1
    correct: bool
    answer: str | None = None
    stop_reason: str
    cost_usd: float
    latency_s: float
    turns: int
    malformed_turns: int = 0  # turns whose output was no call the episode offers (Turn.malformed)
    tool_counts: dict[str, int] = {}
    mix_counts: dict[str, int] = {}  # calls by kind (db, search, code) or by expert tool
    route: str | None = None  # oracle: which candidate route it took


@dataclass(frozen=True)
class Block:
    """A configuration to evaluate under: its runtime (catalog, limits, built experts)."""

    name: str
    runtime: Runtime

    @classmethod
    def build(cls, name: str, cfg: Config) -> Block:
        # eval's turn cap; one draw per task, so every policy meets the same outcome from an expert
        return cls(name, Runtime.of(cfg.catalog(), cfg.episode.eval_limits(), cfg.seed).one_draw_per_task())

    @property
    def experts(self) -> dict[str, Expert]:
        return self.runtime.experts


@dataclass(frozen=True)
class Seen:
    """What training saw: envs and (env, template) pairs; None when unknown."""

    envs: frozenset[str] | None = None
    templates: frozenset[tuple[str, str]] | None = None

    @classmethod
    def from_tasks(cls, tasks: list[Task] | None) -> Seen:
        if tasks is None:
            return cls()
        return cls(frozenset(t.env for t in tasks), frozenset((t.env, t.template) for t in tasks))


def preference_label(p: Preference) -> str:
    label = f"accuracy={p.accuracy:g},cost={p.cost:g},latency={p.latency:g}"
    if p.allow is not None:
        label += ",allow=" + "|".join(p.allow)
    if p.deny:
        label += ",deny=" + "|".join(p.deny)
    return label


def swept_preference(p: Preference, cost_share: float) -> Preference:
    """The task's preference with accuracy/cost weights set to (1 - w, w); tool rules kept."""
    return p.model_copy(update={"accuracy": 1.0 - cost_share, "cost": cost_share, "latency": 0.0})


def mix_counts(traj: Trajectory, toolbox: Toolbox) -> dict[str, int]:
    counts: dict[str, int] = {}
    for turn in traj.turns:
        if turn.call is None:
            continue
        spec = toolbox.spec(turn.call.name)
        key = "invalid" if spec is None else spec.name if spec.kind == "expert" else spec.kind
        counts[key] = counts.get(key, 0) + 1
    return counts


def to_row(traj: Trajectory, task: Task, toolbox: Toolbox, block: str, policy: str, seen: Seen,
           cost_weight: float | None = None, route: str | None = None) -> EvalRow:
    return EvalRow(
        block=block, policy=policy, cost_weight=cost_weight, task_id=task.id, env=task.env,
        category=task.category, difficulty=task.difficulty, template=task.template,
        env_seen=None if seen.envs is None else task.env in seen.envs,
        template_seen=None if seen.templates is None else (task.env, task.template) in seen.templates,
        preference=preference_label(task.preference), user_weights=task.preference.shares(),
        correct=traj.correct, answer=traj.answer,
        stop_reason=traj.stop_reason, cost_usd=traj.usage.cost_usd, latency_s=traj.usage.latency_s,
        turns=len(traj.turns), malformed_turns=sum(t.malformed for t in traj.turns), tool_counts=traj.tool_counts(), mix_counts=mix_counts(traj, toolbox), route=route,
    )


class LockedPolicy:
    """A policy whose turns are generated one at a time; its other attributes pass through."""

    def __init__(self, policy: Any, lock: threading.Lock):
        self.policy, self.lock = policy, lock

    def generate(self, messages: list[dict[str, Any]], tools: Any = None) -> Any:
        with self.lock:
            return self.policy.generate(messages, tools)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.policy, name)


def run_policy(tasks: list[Task], envs: dict[str, Environment], block: Block, policy: str, make: PolicyMaker,
               seen: Seen = Seen(), cost_weight: float | None = None, workers: int = 1) -> list[EvalRow]:
    lock = threading.Lock()

    def one(task: Task) -> EvalRow:
        if cost_weight is not None:
            task = task.model_copy(update={"preference": swept_preference(task.preference, cost_weight)})
        with envs[task.env].session() as session:
            toolbox = block.runtime.toolbox(session)
            player = make(task, toolbox)
            if isinstance(player, GatewayEpisodes):  # a deployed gateway plays the whole episode itself
                traj = player.play(task, toolbox, block.runtime.limits)
            else:
                traj = block.runtime.run(task, LockedPolicy(player, lock), toolbox)
            return to_row(traj, task, toolbox, block.name, policy, seen, cost_weight)

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, tasks))
