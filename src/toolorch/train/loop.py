"""The GRPO loop: rollouts -> rewards -> advantages -> one policy step, with checkpoints.

    state = build_state(sft_dir, settings, dist)
    train(state, tasks, envs, runtime, settings, out_dir, log)

Tasks are drawn from a seeded stream (a fresh permutation every pass); the position in
that stream is part of the checkpoint, so a resumed run sees the same tasks, the same
samples and the same losses as an uninterrupted one.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import torch
from pydantic import Field, model_validator

from toolorch.core.catalog import Catalog
from toolorch.core.progress import Progress
from toolorch.core.records import Task
from toolorch.core.seeds import stable_seed
from toolorch.runtime.env import Environment
from toolorch.runtime.episode import Runtime
from toolorch.runtime.preferences import PROFILES, preference_kind, with_user
from toolorch.runtime.rewards import (
    EpisodeOutcome,
    RewardConfig,
    group_advantages,
    group_rewards,
)
from toolorch.runtime.rollout import HFEngine, Rollout, VLLMEngine, run_rollouts
from toolorch.train.checkpoint import has_state, load_state, save_state
from toolorch.train.distributed import Dist, full_state_dict, shard
from toolorch.train.grpo import StepConfig, grpo_step
from toolorch.train.packing import Sample
from toolorch.train.kernels import FLEX, enable_tf32
from toolorch.train.scalars import ScalarLog, rollout_record, rollout_scalars


class LoopConfig(StepConfig):
    """The GRPO loop's settings: `stages.grpo` in a profile (the stage adds its own few)."""

    steps: int = Field(10, ge=1)
    tasks_per_step: int = Field(4, ge=1)
    group_size: int = Field(8, ge=2)  # rollouts per task
    lr: float = Field(1e-4, gt=0)
    warmup_steps: int = Field(0, ge=0)
    max_new_tokens: int = Field(64, ge=1)  # per assistant turn
    adv_clip: float = Field(3.0, gt=0)
    min_group_std: float = Field(0.0, ge=0)  # groups at or below this reward std are dropped
    scale_by_std: bool = True  # False: advantages r - mean (Dr. GRPO), see rewards.group_advantages
    reward: RewardConfig = RewardConfig()
    checkpoint_every: int = Field(0, ge=0)  # 0: only at the end
    stop_after: Optional[int] = Field(None, ge=1)  # end the process after this many steps, as a kill would
    with_code: bool = True
    # Each step's simulated experts draw their answers afresh, with their declared odds, once per task:
    # a group's rollouts (and the task's groups under other users) meet the same draws, so their
    # advantages differ by the route taken, not by the luck of the expert's draw (common random
    # numbers). A draw per rollout put the expert's luck into every advantage.
    redraw_simulated: bool = True
    # the advantage of every token of a malformed turn (a call no tool takes, Turn.malformed), in
    # place of its rollout's: the broken call is punished, the rest of the episode is judged by what
    # it reached. Scored as a whole, a broken call's retry to a cheap expert was rewarded like a
    # direct one, so a policy torn between two experts leaked odds to `answer(model="")` (seed 0:
    # a malformed first turn on 59 of 150 held-out tasks under greedy decoding); charging the whole
    # episode instead would push down the retry's well-formed call with it
    malformed_advantage: float = Field(-1.0, le=0)
    # which user each rollout group serves (see step_batch): task (as synthesized), resample
    # (a new user every visit) or contrast (every task under each of contrast_profiles)
    preferences: Literal["task", "resample", "contrast"] = "task"
    contrast_profiles: tuple[str, ...] = ("accuracy_first", "cost_averse")
    rollout_engine: Literal["hf", "vllm"] = "hf"  # vllm: one engine per rank, weights pushed every step
    vllm_args: dict[str, Any] = {}  # extra vllm.LLM arguments, e.g. gpu_memory_utilization
    seed: int = 0  # the profile's seed (the stage sets it)

    @model_validator(mode="after")
    def _contrast_fits(self) -> LoopConfig:
        unknown = sorted(set(self.contrast_profiles) - set(PROFILES))
        if unknown:
            raise ValueError(f"contrast_profiles: unknown {unknown}; known: {sorted(PROFILES)}")
        if self.preferences == "contrast" and (len(self.contrast_profiles) < 2
                                               or self.tasks_per_step % len(self.contrast_profiles)):
            raise ValueError("preferences: contrast needs >= 2 contrast_profiles and tasks_per_step "
                             f"divisible by their number ({self.tasks_per_step} % {len(self.contrast_profiles)})")
        return self


@dataclass
class TrainState:
    model: torch.nn.Module  # the trained (possibly FSDP2-sharded) policy
    engine_model: torch.nn.Module  # unsharded copy that samples rollouts (the model itself on 1 process)
    ref_model: torch.nn.Module | None
    tokenizer: Any
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    dist: Dist
    step: int = 0
    data_position: int = 0
    resumed_from: int = 0  # the checkpoint's step this process went on from (0: a fresh run)
    timings: dict[str, float] = field(default_factory=dict)
    vllm: Any = None  # a VLLMEngine when loop.rollout_engine == "vllm"


def build_state(model_dir: Path, loop: LoopConfig, dist: Dist) -> TrainState:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    torch.manual_seed(loop.seed)
    cuda = dist.device.startswith("cuda")
    if cuda:
        enable_tf32()
    # FlexAttention has no backward on CPU: there the flat layout runs its mask densely through sdpa
    attn = FLEX if loop.layout == "flat" and cuda else "sdpa"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation=attn)
    engine_model = copy.deepcopy(model).to(dist.device).eval() if dist.world > 1 else model
    ref = None
    if loop.kl_coef > 0:
        ref = shard(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval(), dist)
        for p in ref.parameters():
            p.requires_grad_(False)
    model = shard(model, dist)
    optimizer = torch.optim.AdamW(model.parameters(), lr=loop.lr, weight_decay=0.0)
    warm = max(1, loop.warmup_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warm))
    state = TrainState(model, engine_model, ref, tokenizer, optimizer, scheduler, dist)
    if loop.rollout_engine == "vllm":
        state.vllm = VLLMEngine(str(model_dir), tokenizer, loop.max_new_tokens, loop.temperature, **loop.vllm_args)
    elif loop.rollout_engine != "hf":
        raise ValueError(f"rollout_engine: {loop.rollout_engine!r} is neither 'hf' nor 'vllm'")
    return state


def task_at(tasks: list[Task], position: int, seed: int) -> Task:
    """The task at `position` of an endless stream: pass p is a seeded permutation."""
    n = len(tasks)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + position // n)).tolist()
    return tasks[order[position % n]]


def step_batch(tasks: list[Task], position: int, loop: LoopConfig, catalog: Catalog) -> tuple[list[Task], int]:
    """One step's tasks with the preference each is rolled out under, and the stream positions used.

    - task: each task keeps the preference it was synthesized with.
    - resample: every visit draws a new user (seeded by the position, so a resumed run
      draws the same), so the same question is seen under different preferences.
    - contrast: every task is rolled out once under each of `contrast_profiles` in the same
      step, with the same deny/prefer draw. The groups differ only in the user's weights,
      so what the policy learns from their opposite advantages is to read the preference;
      and the profiles are balanced, so a majority of thrifty users cannot pull the policy
      onto the cheap expert for everyone.
    """
    if loop.preferences not in ("task", "resample", "contrast"):
        raise ValueError(f"preferences: {loop.preferences!r} is not one of task, resample, contrast")
    profiles = loop.contrast_profiles if loop.preferences == "contrast" else (None,)
    distinct = loop.tasks_per_step // len(profiles)
    picked = [task_at(tasks, position + i, loop.seed) for i in range(distinct)]
    if loop.preferences == "task":
        return picked, distinct
    return [with_user(t, catalog, stable_seed(loop.seed, "preference", position + i), p)
            for i, t in enumerate(picked) for p in profiles], distinct


def rollout_group_samples(rollouts: list[Rollout], loop: LoopConfig) -> tuple[list, list[dict], bool]:
    """One task's G rollouts -> (samples with advantages, records for logging, kept)."""
    task = rollouts[0].task
    terms = group_rewards([EpisodeOutcome.of(r.trajectory) for r in rollouts], task.preference, loop.reward)
    adv, kept = group_advantages([t.total for t in terms], clip=loop.adv_clip, min_std=loop.min_group_std,
                                 scale_by_std=loop.scale_by_std)
    user = preference_kind(task.preference)
    records = [rollout_record(t, r.trajectory, user) for t, r in zip(terms, rollouts)]
    # a group without signal still teaches its malformed turns (adv is 0 there)
    samples = [turn_advantages(r, float(a), loop.malformed_advantage) for r, a in zip(rollouts, adv)
               if kept or any(t.malformed for t in r.trajectory.turns)]
    return samples, records, kept


def turn_advantages(rollout: Rollout, advantage: float, malformed_advantage: float) -> Sample:
    """The rollout's tokens for the update: each carries the group advantage, but a malformed turn's
    tokens carry `malformed_advantage`."""
    weights = [advantage] * len(rollout.sample.ids)
    if len(rollout.spans) != len(rollout.trajectory.turns):
        raise RuntimeError(f"rollout of {rollout.task.id}: {len(rollout.spans)} sampled turns for "
                           f"{len(rollout.trajectory.turns)} in its trajectory")
    for turn, (start, end) in zip(rollout.trajectory.turns, rollout.spans):
        if turn.malformed:
            weights[start:end] = [malformed_advantage] * (end - start)
    return Sample(rollout.sample.ids, rollout.sample.trained, weights, rollout.sample.extra)


def sync_engine(state: TrainState) -> None:
    """Copy the trainer's weights into the rollout engine (HF: a no-op on one process)."""
    if state.engine_model is not state.model or state.vllm is not None:
        weights = full_state_dict(state.model, state.dist)
        if state.engine_model is not state.model:
            state.engine_model.load_state_dict(weights)
        if state.vllm is not None:
            state.vllm.load_weights(weights)


def one_step(state: TrainState, tasks: list[Task], envs: dict[str, Environment], runtime: Runtime,
             loop: LoopConfig) -> dict[str, float]:
    dist = state.dist
    batch, used = step_batch(tasks, state.data_position, loop, runtime.catalog)
    mine = batch[dist.rank::dist.world]
    engine = state.vllm or HFEngine(state.engine_model, state.tokenizer, loop.max_new_tokens, loop.temperature,
                                    precision=loop.precision)
    t0 = time.perf_counter()
    jobs = [(t, envs[t.env]) for t in mine for _ in range(loop.group_size)]
    rollouts, sampled = run_rollouts(jobs, runtime, engine, stable_seed(loop.seed, state.step, dist.rank) % 2**31,
                                     with_code=loop.with_code, redraw=loop.redraw_simulated) if jobs else ([], 0)
    t1 = time.perf_counter()
    samples, records, kept = [], [], 0
    for g in range(0, len(rollouts), loop.group_size):
        s, rec, k = rollout_group_samples(rollouts[g:g + loop.group_size], loop)
        samples += s
        records += rec
        kept += int(k)
    kept_total, sampled_total = dist.sum([float(kept), float(sampled)])
    stats: dict[str, float] = {"tokens": 0.0}
    if kept_total > 0:
        stats = grpo_step(state.model, state.ref_model, state.optimizer, state.scheduler, samples, loop,
                          state.tokenizer.pad_token_id, dist)
        sync_engine(state)
    t2 = time.perf_counter()
    all_records = [r for part in dist.gather(records) for r in part]
    state.step += 1
    state.data_position += used
    return {
        **rollout_scalars(all_records), **stats,
        "groups_kept": kept_total, "groups_filtered": loop.tasks_per_step - kept_total,
        "lr": state.scheduler.get_last_lr()[0],
        "rollout_tokens_per_s": sampled_total / max(t1 - t0, 1e-9) / dist.world,
        "train_tokens_per_s": stats["tokens"] / max(t2 - t1, 1e-9) / dist.world,
        "rollout_seconds": t1 - t0, "train_seconds": t2 - t1, "rollout_tokens": sampled_total,
    }


def train(state: TrainState, tasks: list[Task], envs: dict[str, Environment], runtime: Runtime, loop: LoopConfig,
          checkpoint_dir: str | Path, log: ScalarLog, resume: bool = True, run_config: dict | None = None,
          progress: Progress | None = None) -> bool:
    """Run until `loop.steps`; returns False when stopped early by `stop_after`. `progress` hears
    every step (log lines, the Prometheus exporter).

    `run_config` (what the run trains with) is saved in every checkpoint; whether a checkpoint
    may be resumed under the current config is the caller's to check (stages.grpo).
    """
    if resume and has_state(checkpoint_dir):
        state.step, state.data_position = load_state(checkpoint_dir, state.model, state.optimizer, state.scheduler)
        state.resumed_from = state.step
        sync_engine(state)
        log.resumed_at(state.step)
        if progress is not None:
            progress.resumed_at(state.step)
    done_here = 0
    while state.step < loop.steps:
        scalars = one_step(state, tasks, envs, runtime, loop)
        log.write(state.step, scalars)
        if progress is not None:
            progress.update(state.step, scalars, tokens=scalars["rollout_tokens"],
                            samples=loop.tasks_per_step * loop.group_size)
        done_here += 1
        if loop.checkpoint_every and state.step % loop.checkpoint_every == 0:
            save_state(checkpoint_dir, state.model, state.optimizer, state.scheduler, state.step, state.data_position,
                       run_config)
        if loop.stop_after is not None and done_here >= loop.stop_after and state.step < loop.steps:
            return False
    return True
