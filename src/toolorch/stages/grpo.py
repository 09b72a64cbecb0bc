"""toolorch grpo --config configs/tiny.yaml

Multi-turn GRPO from the SFT checkpoint, with outcome, efficiency and preference rewards.

    python -m toolorch.stages.grpo --config configs/tiny.yaml
    torchrun --nproc-per-node 2 -m toolorch.stages.grpo --config configs/tiny.yaml   # FSDP2, gloo/NCCL
    toolorch grpo --config configs/tiny.yaml --set stages.grpo.steps=20

Reads the SFT checkpoint (`--sft-dir`), passk's kept tasks (`--tasks-path`, each with a
sampled preference), the environments and the held-out tasks. Rollouts come from HF
generate (`rollout_engine: hf`) or from a vLLM engine per rank that receives the trainer's
weights after every step (`vllm`, the GPU path). Every step, each task of the batch gets
`group_size` rollouts through the real episode runner with a user's preference in the
system prompt (`preferences`: the task's own, a new user per visit, or the same task
under each of `contrast_profiles`); rewards (toolorch.runtime.rewards) give group-relative
advantages; groups with no reward variance are dropped and counted; one clipped,
token-level policy step follows (assistant tokens only, KL to the frozen SFT model when
kl_coef > 0). The held-out check runs on the eval stage's sample of held-out tasks. Writes,
in its output folder (`--out-dir`; written in place: it holds the state a re-run resumes from)
    ./            HF checkpoint + config.resolved.yaml
    tensorboard/  scalars: reward terms, accuracy, cost, latency, tool mix, KL, ...
    dvclive/      the same scalars as curves, one TSV each (dvc.yaml's plots draw them)
    curves/       report.md with charts of those curves (the KFP run's Markdown artifact)
    state/        full training state (torch.distributed.checkpoint) for resume, unless
                  `state_url` puts it elsewhere: an s3:// URL or a shared folder that outlives
                  the pod (the PyTorchJob launcher sets it), every rank writing its own shards
and its metrics (`--metrics-path`): last-step scalars, history, and the held-out check: SFT
vs GRPO reward over 3 seeds, cost under cost-averse vs accuracy-first. Progress goes to the log
(step, reward terms, tokens/s, elapsed, ETA; toolorch.core.progress) and, with
TOOLORCH_METRICS_PORT set, to a Prometheus endpoint on each node (toolorch.train.exporter).

Run again into the same folder, it resumes from its state/ only if the checkpoint was trained
with the same training config (everything but how the run goes: `RUN_ONLY`) from the same SFT
checkpoint and tasks, by the same training code; else it exits naming the keys that differ, unless `--fresh` (or `resume:
false`) asks to start over, or `--restart-on-change` starts over only then. `dvc repro` runs the
latter, and keeps the output folder (persist), so a killed repro resumes mid-GRPO while a change of
params, inputs or training code (`code_fingerprint`) trains anew.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any, Optional

import torch
from pydantic import BaseModel, ConfigDict, Field

from toolorch.core.config import Config
from toolorch.core.errors import UsageError
from toolorch.core.progress import Progress
from toolorch.core.splits import stratified_subsample
from toolorch.eval.heldout import HeldoutConfig, heldout_report, heldout_sample
from toolorch.runtime.env import load_envs
from toolorch.runtime.episode import Runtime
from toolorch.stages.io import checkpoint_dir, finish, model_files, read_tasks
from toolorch.stages.stage import Input, SeededByProfile, Stage
from toolorch.train.checkpoint import clear_state, config_changes, has_state, save_state, saved_config
from toolorch.train.curves import write_curves
from toolorch.train.distributed import Dist, close, full_state_dict, init_distributed
from toolorch.train.exporter import TrainingExporter, node_main, watchers
from toolorch.train.loop import LoopConfig, TrainState, build_state, train
from toolorch.train.scalars import ScalarLog


class HeldoutSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    max_tasks: Optional[int] = Field(24, ge=1)
    seeds: list[int] = [0, 1, 2]
    preference_seeds: list[int] = Field([0], min_length=1)  # the cost-averse / accuracy-first runs
    # their tasks: a stratified sample of the check's (category shares kept); null: all of them
    preference_max_tasks: Optional[int] = Field(None, ge=1)
    temperature: float = Field(0.7, ge=0)
    workers: int = Field(4, ge=1)  # runs (policy x seed) at once; the report is the same for any number


class GRPOSettings(LoopConfig, SeededByProfile):
    """`stages.grpo` in a profile YAML: the loop's settings (train.loop.LoopConfig, with
    train.grpo.StepConfig's) and these."""

    resume: bool = True
    state_url: Optional[str] = None  # where the training state lives (default: <out_dir>/state)
    threads: int = Field(2, ge=1)
    heldout: HeldoutSettings = HeldoutSettings()

SHOWN = ("reward/", "accuracy", "loss", "kl")  # the scalars a progress line shows

# how a run goes, not what it trains: these may change between a run and its resume
RUN_ONLY = {"resume", "stop_after", "checkpoint_every", "threads", "heldout", "state_url"}


class ResumeRefused(UsageError):
    """The output folder holds a checkpoint trained with another config."""


def training_config(cfg: Config, s: GRPOSettings, inputs: dict[str, str] | None = None) -> dict[str, Any]:
    """What the weights depend on: the grpo settings bar RUN_ONLY, and the seed, episode limits,
    experts, prices and default preference that rollouts and rewards use; `inputs`: fingerprints
    of what it starts from (input_fingerprint)."""
    return {"seed": cfg.seed, **cfg.model_dump(mode="json", include={"episode", "experts", "prices", "preference"}),
            "stages": {"grpo": s.model_dump(mode="json", exclude=RUN_ONLY)}, **({"inputs": inputs} if inputs else {})}


TRAINING_CODE = ("core", "runtime", "train")  # toolorch's packages that rollouts, rewards and updates run


def code_fingerprint(root: Path = Path(__file__).resolve().parents[1], packages: tuple[str, ...] = TRAINING_CODE) -> str:
    """The source the weights depend on (`root`: the toolorch package): a changed reward or episode
    loop trains anew, where a resumed checkpoint would carry on what the old code taught."""
    digest = hashlib.sha256()
    for package in packages:
        for file in sorted((root / package).rglob("*.py")):
            digest.update(f"{file.relative_to(root).as_posix()}:{file.stat().st_size}:".encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def input_fingerprint(path: Path, sample: int = 1 << 20) -> str:
    """A quick identity of a file or a checkpoint folder (its model files, not the run's curves and
    logs): each file's name, size and first and last MiB. Retrained weights differ there; reading
    whole 16 GB shards on every rank would not be quick."""
    digest = hashlib.sha256()
    files = model_files(path) if Path(path).is_dir() else [Path(path)]
    for file in files:
        size = file.stat().st_size
        digest.update(f"{file.relative_to(path) if file != Path(path) else file.name}:{size}:".encode())
        with file.open("rb") as f:
            digest.update(f.read(sample))
            f.seek(max(0, size - sample))
            digest.update(f.read(sample))
    return digest.hexdigest()


def prepare_state_dir(state_dir: str | Path, run_config: dict[str, Any], resume: bool, dist: Dist,
                      restart_on_change: bool = False) -> None:
    """Keep a checkpoint only to resume it under the config it was trained with; when starting
    over, drop it, so a run killed before its first checkpoint cannot resume the old one."""
    if not has_state(state_dir):
        return
    saved = saved_config(state_dir) if resume else None
    changes = ["the checkpoint records no config"] if saved is None else config_changes(saved, run_config)
    if not resume or (changes and restart_on_change):
        if dist.main:
            clear_state(state_dir)
        dist.barrier()
        return
    if changes:
        raise ResumeRefused(f"{state_dir}: the checkpoint there was trained with another config: "
                            f"{'; '.join(changes)}. A run resumes only under the same training config: pass "
                            "--fresh (or --set stages.grpo.resume=false) to start over, or choose another --out-dir.")



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
                       max_new_tokens=s.max_new_tokens, reward=s.reward, with_code=s.with_code,
                       workers=s.heldout.workers, preference_seeds=tuple(s.heldout.preference_seeds))
    sft = AutoModelForCausalLM.from_pretrained(sft_dir, dtype=torch.float32).to(state.dist.device).eval()
    return heldout_report({"sft": sft, "grpo": state.engine_model.eval()}, state.tokenizer, tasks,
                          load_envs(envs_dir, {t.env for t in tasks}), Runtime.from_config(cfg).one_draw_per_task(), hc,
                          preference_tasks=stratified_subsample(tasks, s.heldout.preference_max_tasks, cfg.seed))


def run(cfg: Config, sft_dir: Path, tasks_path: Path, envs_dir: Path, out_dir: Path, metrics_path: Path,
        heldout_path: Path, fresh: bool = False, restart_on_change: bool = False) -> dict[str, Any]:
    """`fresh`: start over even if `out_dir` holds a checkpoint (as `resume: false`);
    `restart_on_change`: start over when the checkpoint was trained with another config or inputs."""
    s: GRPOSettings = cfg.stages.grpo
    torch.set_num_threads(s.threads)
    dist = init_distributed()
    try:
        loop = s.model_copy(update={"seed": cfg.seed})
        out_dir = Path(out_dir)
        tasks = read_tasks(Path(tasks_path), "training")
        envs = load_envs(envs_dir, {t.env for t in tasks})
        checkpoint_dir(sft_dir, "SFT")  # bad inputs are named before the checkpoint is fingerprinted
        inputs = {"sft": input_fingerprint(Path(sft_dir)), "tasks": input_fingerprint(Path(tasks_path)),
                  "code": code_fingerprint()}
        resume, run_config = s.resume and not fresh, training_config(cfg, s, inputs)
        state_dir = s.state_url or out_dir / "state"
        prepare_state_dir(state_dir, run_config, resume, dist, restart_on_change)
        state = build_state(Path(sft_dir), loop, dist)
        log = ScalarLog(out_dir / "tensorboard", enabled=dist.main, curves=out_dir / "dvclive",
                        resume=resume and has_state(state_dir), history=out_dir / "history.jsonl")
        exporter = TrainingExporter.from_env(node_main())
        start = time.perf_counter()
        try:
            with Progress("grpo", loop.steps, show=SHOWN, enabled=dist.main, watchers=watchers(exporter)) as progress:
                completed = train(state, tasks, envs, Runtime.from_config(cfg), loop, state_dir, log,
                                  resume=resume, run_config=run_config, progress=progress)
        finally:
            if exporter is not None:
                exporter.close()
        metrics: dict[str, Any] = {"completed": completed, "steps_done": state.step, "resumed_from": state.resumed_from,
                                   "world_size": dist.world,
                                   "train_seconds": time.perf_counter() - start, "history": log.history}
        if not completed:
            log.close()
            return metrics
        save_state(state_dir, state.model, state.optimizer, state.scheduler, state.step, state.data_position,
                   run_config)
        save_policy(state, out_dir)
        if log.history:
            metrics["last"] = {k: v for k, v in log.history[-1].items() if k != "step"}
        log.close()
        if dist.main:
            write_curves(out_dir / "dvclive", out_dir / "curves", "grpo")
            metrics["heldout"] = heldout_check(s, state, Path(sft_dir), Path(heldout_path), Path(envs_dir), cfg)
            finish(cfg, out_dir, metrics, metrics_path)
        dist.barrier()
        return metrics
    finally:
        close(dist)


def summary(m: dict[str, Any]) -> str:
    if not m["completed"]:
        return f"grpo: stopped after step {m['steps_done']} (stop_after); run it again to resume"
    return f"grpo: {m['steps_done']} steps, reward {m.get('last', {}).get('reward/total', 0):.3f}"


STAGE = Stage(
    "grpo", GRPOSettings, run, summary,
    inputs={"sft_dir": Input("sft"), "tasks_path": Input("passk", "tasks.jsonl"), "envs_dir": Input("synth_envs"),
            "heldout_path": Input("synth_tasks", "heldout.jsonl")},
    outputs={"out_dir": "models/grpo"},
    reads=("episode", "experts"),
    staged=False,  # the folder holds the training state a re-run resumes from
    persist=True,  # and dvc keeps it, so a killed `dvc repro` resumes mid-GRPO
    dvc_options=("--restart-on-change",),  # dvc re-runs grpo on a change of params or inputs: train anew then
    options={"fresh": "Start over, dropping the output folder's training checkpoint (by default a run "
                      "resumes it, if trained with the same config).",
             "restart_on_change": "Start over when the checkpoint was trained with another config, SFT "
                                  "checkpoint or tasks, instead of refusing (what dvc repro runs)."},
)

if __name__ == "__main__":
    from toolorch.stages.command import main

    main("grpo")
