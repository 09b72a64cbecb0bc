"""The held-out evaluation every scorer shares: the task sample (`heldout_sample`, used by the eval
stage, the grpo stage's check and the route probe) and the check written into the GRPO metrics:
did training help, and does the policy obey the preference?

    report = heldout_report({"sft": sft_model, "grpo": grpo_model}, tokenizer, tasks, envs, runtime, HeldoutConfig(...))

- reward: every policy runs every held-out task once per seed (sampling); a task's
  reward group is all of its runs (every policy, every seed), so the efficiency terms
  of all policies are normalised on one scale. Reported per policy: the mean reward of
  each seed, their mean and spread (max - min), accuracy, cost, latency.
- preference: the last policy runs the same tasks with a cost-averse and with an
  accuracy-first preference in its prompt; the mean cost of each (over seeds).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toolorch.core.errors import RunFailed
from toolorch.core.jsonl import read_jsonl
from toolorch.core.records import Preference, Task
from toolorch.core.splits import stratified_subsample
from toolorch.runtime.env import Environment
from toolorch.runtime.episode import Runtime
from toolorch.runtime.rewards import EpisodeOutcome, RewardConfig, group_rewards
from toolorch.runtime.rollout import HFEngine, Rollout, run_rollouts

COST_AVERSE = Preference(accuracy=1.0, cost=4.0, latency=0.0)
ACCURACY_FIRST = Preference(accuracy=1.0, cost=0.0, latency=0.0)


def heldout_sample(tasks_path: str | Path, max_tasks: int | None, seed: int) -> list[Task]:
    """The seeded held-out sample, category shares kept (the first tasks by id would all come
    from one held-out world)."""
    tasks = read_jsonl(tasks_path, Task)
    if not tasks:
        raise RunFailed(f"{tasks_path}: no held-out tasks")
    return stratified_subsample(tasks, max_tasks, seed)


@dataclass(frozen=True)
class HeldoutConfig:
    """How the check samples; the grpo stage fills it from its settings (the defaults live there)."""

    seeds: tuple[int, ...]
    temperature: float
    max_new_tokens: int
    reward: RewardConfig
    with_code: bool


def run_policy(model: Any, tokenizer: Any, tasks: list[Task], envs: dict[str, Environment], runtime: Runtime,
               hc: HeldoutConfig, seed: int) -> list[Rollout]:
    engine = HFEngine(model, tokenizer, hc.max_new_tokens, hc.temperature)
    return run_rollouts([(t, envs[t.env]) for t in tasks], runtime, engine, seed=10_007 + seed, with_code=hc.with_code)[0]


def summarize(rollouts: list[Rollout], rewards: list[float]) -> dict[str, float]:
    return {
        "reward": float(np.mean(rewards)),
        "accuracy": float(np.mean([r.trajectory.correct for r in rollouts])),
        "cost_usd": float(np.mean([r.trajectory.usage.cost_usd for r in rollouts])),
        "latency_s": float(np.mean([r.trajectory.usage.latency_s for r in rollouts])),
    }


def rewards_by_run(runs: dict[tuple[str, int], list[Rollout]], reward: RewardConfig) -> dict[tuple[str, int], list[float]]:
    """Reward of every rollout, each task's group being its rollouts across all runs."""
    groups: dict[str, list[tuple[tuple[str, int], int]]] = defaultdict(list)
    for key, rollouts in runs.items():
        for i, r in enumerate(rollouts):
            groups[r.task.id].append((key, i))
    out = {key: [0.0] * len(rs) for key, rs in runs.items()}
    for members in groups.values():
        task = runs[members[0][0]][members[0][1]].task
        terms = group_rewards([EpisodeOutcome.of(runs[k][i].trajectory) for k, i in members], task.preference, reward)
        for (k, i), t in zip(members, terms):
            out[k][i] = t.total
    return out


def policy_report(runs: dict[tuple[str, int], list[Rollout]], rewards: dict, name: str, seeds: tuple[int, ...]) -> dict:
    per_seed = [summarize(runs[(name, s)], rewards[(name, s)]) for s in seeds]
    report: dict[str, Any] = {k: float(np.mean([p[k] for p in per_seed])) for k in per_seed[0]}
    report["reward_per_seed"] = [p["reward"] for p in per_seed]
    report["reward_spread"] = float(max(report["reward_per_seed"]) - min(report["reward_per_seed"]))
    return report


def preference_report(model: Any, tokenizer: Any, tasks: list[Task], envs: dict[str, Environment], runtime: Runtime,
                      hc: HeldoutConfig) -> dict[str, float | bool]:
    costs = {}
    for label, pref in (("cost_averse", COST_AVERSE), ("accuracy_first", ACCURACY_FIRST)):
        same = [t.model_copy(update={"preference": pref}) for t in tasks]
        runs = [run_policy(model, tokenizer, same, envs, runtime, hc, s) for s in hc.seeds]
        costs[label] = float(np.mean([r.trajectory.usage.cost_usd for run in runs for r in run]))
        costs[f"{label}_accuracy"] = float(np.mean([r.trajectory.correct for run in runs for r in run]))
    return {**{f"{k}_cost_usd" if not k.endswith("accuracy") else k: v for k, v in costs.items()},
            "cost_averse_cheaper": costs["cost_averse"] < costs["accuracy_first"]}


def heldout_report(models: dict[str, Any], tokenizer: Any, tasks: list[Task], envs: dict[str, Environment],
                   runtime: Runtime, hc: HeldoutConfig) -> dict[str, Any]:
    """models: name -> HF model, in order (baseline first, trained last)."""
    runs = {(name, s): run_policy(m, tokenizer, tasks, envs, runtime, hc, s) for name, m in models.items() for s in hc.seeds}
    rewards = rewards_by_run(runs, hc.reward)
    report: dict[str, Any] = {"tasks": len(tasks), "seeds": list(hc.seeds), "temperature": hc.temperature}
    for name in models:
        report[name] = policy_report(runs, rewards, name, hc.seeds)
    names = list(models)
    if len(names) >= 2:
        base, trained = report[names[0]], report[names[-1]]
        margin = trained["reward"] - base["reward"]
        spread = max(base["reward_spread"], trained["reward_spread"])
        report["reward_margin"] = margin
        report["margin_exceeds_seed_spread"] = bool(margin > spread)
    report["preference"] = preference_report(models[names[-1]], tokenizer, tasks, envs, runtime, hc)
    return report
