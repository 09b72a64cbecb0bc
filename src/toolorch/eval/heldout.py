"""The held-out evaluation every scorer shares: the task sample (`heldout_sample`, used by the eval
stage, the grpo stage's check and the route probe) and the check written into the GRPO metrics:
did training help, and does the policy obey the preference?

    report = heldout_report({"sft": sft_model, "grpo": grpo_model}, tokenizer, tasks, envs, runtime, HeldoutConfig(...))

- reward: every policy runs every held-out task once per seed (sampling); a task's
  reward group is all of its runs (every policy, every seed), so the efficiency terms
  of all policies are normalised on one scale. Reported per policy: the mean reward of
  each seed, their mean and spread (max - min), accuracy, cost, latency; and the last policy's
  margin over the first paired by task (`reward_margin_paired`: a BCa interval), overall and
  per kind of world (synthesized, tau2).
- preference: the last policy runs the same tasks (or a stratified sample of them) with a
  cost-averse and with an accuracy-first preference in its prompt, at `preference_seeds`; the
  mean cost of each. A mean cost needs fewer runs than a paired reward margin: these runs were
  half the check's time.

A run's tasks are rolled out a world at a time (runtime.rollout.run_rollouts: one thread per
episode, their turns sampled as one batch, `run_policy`); up to `workers` runs (policy x seed x preference) go at
once, so one run's episodes (tools, experts, parsing) proceed while another's batch is sampled.
The model is used by one batch at a time (a lock around `sample`), and each batch seeds its own
sampling, so the report is byte-identical to the serial one (workers=1).
"""
from __future__ import annotations

import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toolorch.core.errors import RunFailed
from toolorch.core.jsonl import read_jsonl
from toolorch.core.progress import Progress
from toolorch.core.records import Preference, Task
from toolorch.core.seeds import stable_seed
from toolorch.core.splits import stratified_subsample
from toolorch.eval.metrics import margin
from toolorch.runtime.env import Environment
from toolorch.runtime.episode import Runtime
from toolorch.runtime.rewards import EpisodeOutcome, RewardConfig, group_rewards
from toolorch.runtime.rollout import HFEngine, Rollout, run_rollouts
from toolorch.synth.tau2 import ENV_PREFIX as TAU2_ENV_PREFIX

COST_AVERSE = Preference(accuracy=1.0, cost=4.0, latency=0.0)
ACCURACY_FIRST = Preference(accuracy=1.0, cost=0.0, latency=0.0)
PREFERENCES = {"cost_averse": COST_AVERSE, "accuracy_first": ACCURACY_FIRST}


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
    preference_seeds: tuple[int, ...]  # the cost-averse / accuracy-first runs
    workers: int = 1  # runs at once


class LockedEngine:
    """An engine whose batches are sampled one at a time (`sample` seeds the global torch RNG)."""

    def __init__(self, engine: HFEngine, lock: threading.Lock):
        self.engine, self.lock, self.tokenizer = engine, lock, engine.tokenizer

    def sample(self, prompts: list[list[int]], seed: int) -> list[list[int]]:
        with self.lock:
            return self.engine.sample(prompts, seed)


def run_policy(model: Any, tokenizer: Any, tasks: list[Task], envs: dict[str, Environment], runtime: Runtime,
               hc: HeldoutConfig, seed: int, lock: threading.Lock | None = None) -> list[Rollout]:
    """The run's rollouts in task order, rolled out one world at a time: a batch pads every prompt
    to its longest, a world's prompts share their tool list and so their length, and a tau2
    prompt is 2-3x a synthesized one, so one batch across worlds spent most of its prefill and
    decoding on padding. Each world's batch seeds its sampling from the run's seed and the world
    (40 bits: the sampler multiplies a seed into each call's)."""
    engine = LockedEngine(HFEngine(model, tokenizer, hc.max_new_tokens, hc.temperature), lock or threading.Lock())
    positions: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(tasks):
        positions[t.env].append(i)
    out: list[Rollout] = [None] * len(tasks)  # type: ignore[list-item]  # every slot is filled below
    for env, idx in positions.items():
        rollouts = run_rollouts([(tasks[i], envs[env]) for i in idx], runtime, engine,
                                seed=stable_seed(10_007 + seed, env) >> 24, with_code=hc.with_code)[0]
        for i, r in zip(idx, rollouts):
            out[i] = r
    return out


def run_all(runs: dict[Any, tuple[Any, list[Task], int]], tokenizer: Any, envs: dict[str, Environment],
            runtime: Runtime, hc: HeldoutConfig) -> dict[Any, list[Rollout]]:
    """key -> (model, tasks, seed) run `hc.workers` at a time; results by key, in `runs`' order.
    The check takes minutes: each finished run is a progress update (log lines with the ETA)."""
    lock = threading.Lock()
    episodes = sum(len(tasks) for _, tasks, _ in runs.values())
    with ThreadPoolExecutor(hc.workers) as pool, Progress("held-out check", episodes, unit="episode") as progress:
        futures = {key: pool.submit(run_policy, model, tokenizer, tasks, envs, runtime, hc, seed, lock)
                   for key, (model, tasks, seed) in runs.items()}
        done = 0
        for f in as_completed(futures.values()):
            done += len(f.result())
            progress.update(done, samples=len(f.result()))
        return {key: f.result() for key, f in futures.items()}


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


def world_kind(env: str) -> str:
    """tau2-bench's converted worlds apart from the synthesized ones: their prompts (tool lists,
    multi-turn state changes) look like nothing in the synthesized training worlds."""
    return "tau2" if env.startswith(TAU2_ENV_PREFIX) else "synthesized"


def paired_reward_margin(runs: dict[tuple[str, int], list[Rollout]], rewards: dict, base: str, trained: str,
                         seeds: tuple[int, ...]) -> dict[str, Any]:
    """Trained minus base, task by task: each policy's reward on a task averaged over the sampling
    seeds, the mean of the differences and its 95% BCa interval (toolorch.eval.metrics.margin);
    `by_world`: the same over each kind of world (`world_kind`) with two tasks or more."""
    by_task: dict[str, dict[str, list[float]]] = {base: defaultdict(list), trained: defaultdict(list)}
    env_of: dict[str, str] = {}
    for name in (base, trained):
        for s in seeds:
            for rollout, reward in zip(runs[(name, s)], rewards[(name, s)]):
                by_task[name][rollout.task.id].append(reward)
                env_of[rollout.task.id] = rollout.task.env
    tasks = sorted(by_task[base].keys() & by_task[trained].keys())
    diffs = np.array([np.mean(by_task[trained][t]) - np.mean(by_task[base][t]) for t in tasks])
    kinds = np.array([world_kind(env_of[t]) for t in tasks])
    by_world = {kind: diffs[kinds == kind] for kind in sorted(set(kinds))}
    return {"n": len(tasks), **margin(diffs, 1000, stable_seed(0, "heldout", base, trained)),
            "by_world": {kind: {"n": len(d), **margin(d, 1000, stable_seed(0, "heldout", base, trained, kind))}
                         for kind, d in by_world.items() if len(d) >= 2}}


def preference_report(runs: dict[tuple[str, int], list[Rollout]]) -> dict[str, float | bool]:
    """runs: (cost_averse | accuracy_first, seed) -> the trained policy's rollouts under that preference."""
    costs = {}
    for label in ("cost_averse", "accuracy_first"):
        mine = [r for (name, _), run in runs.items() if name == label for r in run]
        costs[label] = float(np.mean([r.trajectory.usage.cost_usd for r in mine]))
        costs[f"{label}_accuracy"] = float(np.mean([r.trajectory.correct for r in mine]))
    return {**{f"{k}_cost_usd" if not k.endswith("accuracy") else k: v for k, v in costs.items()},
            "cost_averse_cheaper": costs["cost_averse"] < costs["accuracy_first"]}


def heldout_report(models: dict[str, Any], tokenizer: Any, tasks: list[Task], envs: dict[str, Environment],
                   runtime: Runtime, hc: HeldoutConfig, preference_tasks: list[Task] | None = None) -> dict[str, Any]:
    """models: name -> HF model, in order (baseline first, trained last); `preference_tasks`: the
    tasks of the preference runs (default: `tasks`)."""
    last = list(models.values())[-1]
    jobs = {(name, s): (m, tasks, s) for name, m in models.items() for s in hc.seeds}
    pref_tasks = tasks if preference_tasks is None else preference_tasks
    for label, pref in PREFERENCES.items():
        same = [t.model_copy(update={"preference": pref}) for t in pref_tasks]
        jobs.update({(f"preference:{label}", s): (last, same, s) for s in hc.preference_seeds})
    done = run_all(jobs, tokenizer, envs, runtime, hc)
    runs = {key: rollouts for key, rollouts in done.items() if not key[0].startswith("preference:")}
    rewards = rewards_by_run(runs, hc.reward)
    report: dict[str, Any] = {"tasks": len(tasks), "seeds": list(hc.seeds), "temperature": hc.temperature}
    for name in models:
        report[name] = policy_report(runs, rewards, name, hc.seeds)
    names = list(models)
    if len(names) >= 2:
        base, trained = report[names[0]], report[names[-1]]
        gain = trained["reward"] - base["reward"]
        spread = max(base["reward_spread"], trained["reward_spread"])
        report["reward_margin"] = gain
        # one sampling seed has no spread to compare against: the paired interval speaks alone
        report["margin_exceeds_seed_spread"] = bool(gain > spread) if len(hc.seeds) >= 2 else None
        report["reward_margin_paired"] = paired_reward_margin(runs, rewards, names[0], names[-1], hc.seeds)
    report["preference"] = {**preference_report({(k.removeprefix("preference:"), s): r for (k, s), r in done.items()
                                                 if k.startswith("preference:")}),
                            "seeds": list(hc.preference_seeds), "tasks": len(pref_tasks)}
    return report
