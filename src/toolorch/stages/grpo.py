"""grpo: multi-turn GRPO from the SFT checkpoint, with outcome, efficiency and preference rewards.

    python -m toolorch.stages.grpo --config configs/tiny.yaml
    torchrun --nproc-per-node 2 -m toolorch.stages.grpo --config configs/tiny.yaml   # FSDP2, gloo/NCCL
    toolorch grpo --config configs/tiny.yaml --set stages.grpo.steps=20

Reads models/sft (HF checkpoint), data/passk/tasks.jsonl (training tasks, each with a
sampled preference), data/envs/<env>/ and data/tasks/heldout.jsonl. Rollouts come from HF
generate (`rollout_engine: hf`) or from a vLLM engine per rank that receives the trainer's
weights after every step (`vllm`, the GPU path). Every step, each task of the batch gets
`group_size` rollouts through the real episode runner with a user's preference in the
system prompt (`preferences`: the task's own, a new user per visit, or the same task
under each of `contrast_profiles`); rewards (toolorch.runtime.rewards) give group-relative
advantages; groups with no reward variance are dropped and counted; one clipped,
token-level policy step follows (assistant tokens only, KL to the frozen SFT model when
kl_coef > 0). The held-out check runs on the eval stage's sample of held-out tasks. Writes
    models/grpo/             HF checkpoint + config.resolved.yaml
    models/grpo/tensorboard/ scalars: reward terms, accuracy, cost, latency, tool mix, KL, ...
    models/grpo/state/       full training state (torch.distributed.checkpoint) for resume
    metrics/grpo.json        last-step scalars, history, and the held-out check: SFT vs GRPO
                             reward over 3 seeds, cost under cost-averse vs accuracy-first

Run again into the same folder, it resumes from models/grpo/state/ only if the checkpoint was
trained with the same training config (everything but how the run goes: `RUN_ONLY`); else it
exits naming the keys that differ, unless `--fresh` (or `resume: false`) asks to start over.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, Literal, Optional

import torch
import typer
from pydantic import BaseModel, ConfigDict, Field, model_validator

from toolorch.core.config import Config
from toolorch.core.jsonl import read_jsonl
from toolorch.core.records import Task
from toolorch.eval.heldout import HeldoutConfig, heldout_report, heldout_sample
from toolorch.runtime.env import load_envs
from toolorch.runtime.episode import Runtime
from toolorch.runtime.preferences import PROFILES
from toolorch.runtime.rewards import RewardConfig
from toolorch.stages import finish, stage_config
from toolorch.train.checkpoint import config_changes, has_state, saved_config
from toolorch.train.distributed import Dist, close, full_state_dict, init_distributed
from toolorch.train.grpo import StepConfig
from toolorch.train.loop import LoopConfig, TrainState, build_state, train
from toolorch.train.scalars import ScalarLog


class HeldoutSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    max_tasks: Optional[int] = Field(24, ge=1)
    seeds: list[int] = [0, 1, 2]
    temperature: float = Field(0.7, ge=0)


class GRPOSettings(BaseModel):
    """`stages.grpo` in a profile YAML."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(10, ge=1)
    tasks_per_step: int = Field(4, ge=1)
    group_size: int = Field(8, ge=2)
    lr: float = Field(1e-4, gt=0)
    warmup_steps: int = Field(0, ge=0)
    max_new_tokens: int = Field(64, ge=1)
    temperature: float = Field(1.0, gt=0)
    clip_low: float = Field(0.2, ge=0)
    clip_high: float = Field(0.28, ge=0)
    kl_coef: float = Field(0.0, ge=0)
    adv_clip: float = Field(3.0, gt=0)
    min_group_std: float = Field(0.0, ge=0)
    scale_by_std: bool = True  # False: advantages r - mean, so the preference's weights keep their scale
    max_len: int = Field(4096, ge=16)
    rows_per_micro: int = Field(4, ge=1)
    share_prompts: bool = True  # a group's prompt once per row, its completions after it (train.grpo.StepConfig)
    row_len: int = Field(StepConfig.row_len, ge=16)  # tokens per shared row (measured in train.grpo.StepConfig)
    reward: RewardConfig = RewardConfig()
    checkpoint_every: int = Field(0, ge=0)  # 0: only at the end
    resume: bool = True
    stop_after: Optional[int] = Field(None, ge=1)
    with_code: bool = True
    # which user each rollout group serves (train.loop.step_batch): task (as synthesized),
    # resample (a new user every visit) or contrast (every task under each of contrast_profiles)
    preferences: Literal["task", "resample", "contrast"] = "task"
    contrast_profiles: list[str] = ["accuracy_first", "cost_averse"]
    rollout_engine: Literal["hf", "vllm"] = "hf"  # vllm: the GPU path, weights pushed after every step
    vllm_args: dict[str, Any] = {}  # extra vllm.LLM arguments (gpu_memory_utilization, max_model_len, ...)
    threads: int = Field(2, ge=1)
    heldout: HeldoutSettings = HeldoutSettings()

    @model_validator(mode="after")
    def _contrast_fits(self) -> GRPOSettings:
        unknown = sorted(set(self.contrast_profiles) - set(PROFILES))
        if unknown:
            raise ValueError(f"contrast_profiles: unknown {unknown}; known: {sorted(PROFILES)}")
        if self.preferences == "contrast" and (len(self.contrast_profiles) < 2
                                               or self.tasks_per_step % len(self.contrast_profiles)):
            raise ValueError("preferences: contrast needs >= 2 contrast_profiles and tasks_per_step "
                             f"divisible by their number ({self.tasks_per_step} % {len(self.contrast_profiles)})")
        return self


def settings_of(cfg: Config) -> GRPOSettings:
    return GRPOSettings.model_validate(cfg.stages.get("grpo", {}))


# how a run goes, not what it trains: these may change between a run and its resume
RUN_ONLY = {"resume", "stop_after", "checkpoint_every", "threads", "heldout"}


class ResumeRefused(ValueError):
    """The output folder holds a checkpoint trained with another config."""


def training_config(cfg: Config, s: GRPOSettings) -> dict[str, Any]:
    """What the weights depend on: the grpo settings bar RUN_ONLY, and the seed, episode limits,
    experts, prices and default preference that rollouts and rewards use."""
    return {"seed": cfg.seed, **cfg.model_dump(mode="json", include={"episode", "experts", "prices", "preference"}),
            "stages": {"grpo": s.model_dump(mode="json", exclude=RUN_ONLY)}}


def prepare_state_dir(state_dir: Path, run_config: dict[str, Any], resume: bool, dist: Dist) -> None:
    """Keep a checkpoint only to resume it under the config it was trained with; when starting
    over, drop it, so a run killed before its first checkpoint cannot resume the old one."""
    if not has_state(state_dir):
        return
    if not resume:
        if dist.main:
            shutil.rmtree(state_dir)
        dist.barrier()
        return
    saved = saved_config(state_dir)
    changes = ["the checkpoint records no config"] if saved is None else config_changes(saved, run_config)
    if changes:
        raise ResumeRefused(f"{state_dir}: the checkpoint there was trained with another config: "
                            f"{'; '.join(changes)}. A run resumes only under the same training config: pass "
                            "--fresh (or --set stages.grpo.resume=false) to start over, or choose another --out-dir.")


def loop_config(s: GRPOSettings, seed: int) -> LoopConfig:
    step = StepConfig(clip_low=s.clip_low, clip_high=s.clip_high, kl_coef=s.kl_coef, max_len=s.max_len,
                      rows_per_micro=s.rows_per_micro, share_prompts=s.share_prompts,
                      row_len=s.row_len)
    return LoopConfig(steps=s.steps, tasks_per_step=s.tasks_per_step, group_size=s.group_size, lr=s.lr,
                      warmup_steps=s.warmup_steps, max_new_tokens=s.max_new_tokens, temperature=s.temperature,
                      adv_clip=s.adv_clip, min_group_std=s.min_group_std, scale_by_std=s.scale_by_std,
                      step=step, reward=s.reward,
                      checkpoint_every=s.checkpoint_every, stop_after=s.stop_after, with_code=s.with_code,
                      preferences=s.preferences, contrast_profiles=tuple(s.contrast_profiles),
                      rollout_engine=s.rollout_engine, vllm_args=dict(s.vllm_args), seed=seed)


def load_tasks(path: Path, what: str) -> list[Task]:
    tasks = read_jsonl(path, Task)
    if not tasks:
        raise ValueError(f"{path}: no {what} tasks")
    return tasks


def save_policy(state: TrainState, out_dir: Path) -> None:
    weights = full_state_dict(state.model, state.dist)
    if state.dist.main:
        state.engine_model.load_state_dict(weights)
        state.engine_model.save_pretrained(out_dir)
        state.tokenizer.save_pretrained(out_dir)


def heldout_check(s: GRPOSettings, state: TrainState, sft_dir: Path, heldout_path: Path, envs_dir: Path,
                  cfg: Config) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM

    if not s.heldout.enabled:
        return {}
    if not Path(heldout_path).exists():
        raise FileNotFoundError(f"{heldout_path}: held-out tasks not found (set stages.grpo.heldout.enabled=false "
                                "to skip the check)")
    tasks = heldout_sample(heldout_path, s.heldout.max_tasks, cfg.seed)
    hc = HeldoutConfig(seeds=tuple(s.heldout.seeds), temperature=s.heldout.temperature,
                       max_new_tokens=s.max_new_tokens, reward=s.reward, with_code=s.with_code)
    sft = AutoModelForCausalLM.from_pretrained(sft_dir, dtype=torch.float32).to(state.dist.device).eval()
    return heldout_report({"sft": sft, "grpo": state.engine_model.eval()}, state.tokenizer, tasks,
                          load_envs(envs_dir, tasks), Runtime.from_config(cfg), hc)


def run(cfg: Config, sft_dir: Path = Path("models/sft"), tasks_path: Path = Path("data/passk/tasks.jsonl"),
        envs_dir: Path = Path("data/envs"), out_dir: Path = Path("models/grpo"),
        metrics_path: Path = Path("metrics/grpo.json"),
        heldout_path: Path = Path("data/tasks/heldout.jsonl"), fresh: bool = False) -> dict[str, Any]:
    """`fresh`: start over even if `out_dir` holds a checkpoint (as `resume: false`)."""
    s = settings_of(cfg)
    torch.set_num_threads(s.threads)
    dist = init_distributed()
    try:
        loop = loop_config(s, cfg.seed)
        out_dir = Path(out_dir)
        resume, run_config = s.resume and not fresh, training_config(cfg, s)
        prepare_state_dir(out_dir / "state", run_config, resume, dist)
        tasks = load_tasks(Path(tasks_path), "training")
        envs = load_envs(envs_dir, tasks)
        state = build_state(Path(sft_dir), loop, dist)
        log = ScalarLog(out_dir / "tensorboard", enabled=dist.main)
        start = time.perf_counter()
        completed = train(state, tasks, envs, Runtime.from_config(cfg), loop, out_dir / "state", log, resume=resume,
                          run_config=run_config)
        metrics: dict[str, Any] = {"completed": completed, "steps_done": state.step, "world_size": dist.world,
                                   "train_seconds": time.perf_counter() - start, "history": log.history}
        if not completed:
            log.close()
            return metrics
        from toolorch.train.checkpoint import save_state

        save_state(out_dir / "state", state.model, state.optimizer, state.scheduler, state.step, state.data_position,
                   run_config)
        save_policy(state, out_dir)
        if log.history:
            metrics["last"] = {k: v for k, v in log.history[-1].items() if k != "step"}
        if dist.main:
            metrics["heldout"] = heldout_check(s, state, Path(sft_dir), Path(heldout_path), Path(envs_dir), cfg)
            finish(cfg, out_dir, metrics, metrics_path)
        log.close()
        dist.barrier()
        return metrics
    finally:
        close(dist)


def cli(
    config: Optional[Path] = typer.Option(None, help="Profile YAML, e.g. configs/tiny.yaml."),
    set_: list[str] = typer.Option([], "--set", help="Config override key=value (repeatable)."),
    sft_dir: Path = typer.Option(Path("models/sft"), help="SFT checkpoint (HF folder)."),
    tasks: Path = typer.Option(Path("data/passk/tasks.jsonl"), help="Training tasks JSONL."),
    envs_dir: Path = typer.Option(Path("data/envs"), help="Environments folder."),
    heldout: Path = typer.Option(Path("data/tasks/heldout.jsonl"), help="Held-out tasks JSONL."),
    out_dir: Path = typer.Option(Path("models/grpo"), help="Output folder."),
    metrics: Path = typer.Option(Path("metrics/grpo.json"), help="Metrics JSON."),
    fresh: bool = typer.Option(False, "--fresh", help="Start over, dropping the output folder's training "
                               "checkpoint (by default a run resumes it, if trained with the same config)."),
) -> None:
    """Train the orchestrator with multi-turn GRPO."""
    try:
        result = run(stage_config(config, set_), sft_dir, tasks, envs_dir, out_dir, metrics, heldout, fresh)
    except ResumeRefused as e:
        typer.echo(f"grpo: {e}", err=True)
        raise typer.Exit(2)
    if result.get("last"):
        typer.echo(f"grpo: {result['steps_done']} steps, reward {result['last'].get('reward/total', 0):.3f}")


def main() -> None:
    typer.run(cli)


if __name__ == "__main__":
    main()
