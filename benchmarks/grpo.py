"""GRPO throughput: our trainer against TRL's GRPOTrainer, side by side in one run, on CPU or a GPU.

    pip install -c constraints.txt -e .[bench]       # TRL (and datasets, accelerate)
    python benchmarks/grpo.py reports/bench_grpo.json --config configs/tiny.yaml --steps 3 --rounds 3
    python benchmarks/grpo.py out.json --device cuda --tasks-per-step 16 \
        --spec '{"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                 "num_attention_heads": 9, "num_key_value_heads": 3}'     # a SmolLM2-135M-shaped body

Both sides start every round from the same weights (a tiny random-init Qwen2 of the
profile's `stages.sft.tiny` size, written once to a temporary folder) and run the same
steps: the same single-turn prompts (system prompt + task question, rendered with the
model's chat template), `tasks_per_step` prompts x `group_size` samples per step, the
same sampling (temperature, no top-k/top-p), the same optimizer (AdamW, constant lr,
grad-norm clip 1.0), clip range 0.2/0.28, no KL, and the same reward: 1 when the
completion contains "<tool_call>", else 0.

Ours: `run_rollouts` (the real episode runner, max_turns=1, lockstep-batched HF
generate) is the rollout phase; rewards, `group_advantages` and `grpo_step` are the
training phase. TRL: `GRPOTrainer._generate` (tokenize, generate, decode) is the rollout
phase; the rest of the optimizer step (rewards, advantages, forward, backward, AdamW) is
the training phase, timed from the trainer's step-begin to step-end callbacks.

Tokens counted (both sides, both phases): completion tokens, i.e. the tokens the policy
sampled, which are exactly the tokens that carry the loss; prompt tokens are not counted.
Every completion is forced to `max_new_tokens` (min_new_tokens = max_new_tokens on both
sides), so both sides process the same number of tokens; the run checks that they did.
Each round runs `warmup` untimed steps, then `steps` timed ones; the report gives the
median over every timed step of every round, the rounds alternating between the sides.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
import typer

from toolorch.core.config import Config, load_config
from toolorch.core.records import Task
from toolorch.runtime.chat import chat_texts
from toolorch.runtime.env import Environment
from toolorch.runtime.episode import Runtime, initial_messages, run_episode
from toolorch.runtime.experts import build_experts
from toolorch.runtime.modeling import (
    TinyModelSpec,
    attention_implementation,
    build_tiny_model,
)
from toolorch.runtime.policies import PlanPolicy
from toolorch.runtime.rewards import group_advantages
from toolorch.runtime.rollout import HFEngine, Rollout, run_rollouts
from toolorch.runtime.tools import Toolbox
from toolorch.stages.synth_envs import SynthEnvsSettings
from toolorch.synth.envs import ProceduralGenerator
from toolorch.synth.tasks import synthesize_env_tasks
from toolorch.train.distributed import Dist
from toolorch.train.flops import (
    ModelShape,
    causal_pairs,
    row_attention_pairs,
    train_flops,
)
from toolorch.train.grpo import (
    StepConfig,
    batch_logprobs,
    collate_micro,
    grpo_step,
    micro_batches,
    with_advantage,
)
from toolorch.train.kernels import FLEX, enable_tf32
from toolorch.train.packing import collate, to_device

ROOT = Path(__file__).resolve().parents[1]
TOKENS_COUNTED = ("completion tokens: tokens sampled by the policy, which are exactly the tokens that carry the "
                  "loss (prompt tokens not counted); every completion is max_new_tokens long on both sides")


@dataclass(frozen=True)
class BenchConfig:
    tasks_per_step: int = 4
    group_size: int = 8
    max_new_tokens: int = 64
    steps: int = 3  # timed steps per round
    warmup: int = 1  # untimed steps per round (the first generate() of a process is slow)
    rounds: int = 3
    lr: float = 1e-4
    temperature: float = 1.0
    max_len: int = 4096  # ours: longest row
    share_prompts: bool = True  # ours: a group's prompt once per row (train.grpo.StepConfig)
    row_len: int = StepConfig.model_fields["row_len"].default  # ours: tokens per shared row
    rows_per_micro: int = 4  # ours: rows per micro-batch
    tokens_per_micro: int = 0  # ours: > 0 packs micro-batches to this many tokens instead
    layout: str = "rows"  # ours: rows | flat (train.grpo.StepConfig.layout)
    attn: str = "sdpa"  # ours: the model's attn_implementation (flex_attention for the flat layout)
    precision: str = "fp32"  # both: fp32 | bf16 (autocast over fp32 weights; TRL: bf16=True)
    trl_micro: int = 0  # TRL: rows per forward (0: the whole batch), the rest by gradient accumulation
    peak_tflops: float = 0.0  # the device's bf16 matmul rate, for MFU (0: not reported)
    threads: int = 2
    device: str = "cpu"  # cpu | cuda: both sides
    seed: int = 0


@dataclass
class StepRecord:
    rollout_s: float
    train_s: float
    completion_tokens: int  # sampled in the rollout phase
    trained_tokens: int  # carrying the loss in the training phase
    prompt_tokens: int
    positions_run: int = 0  # positions the training forward actually ran (shared prompts once)
    attention_pairs: int = 0  # (query, key) pairs it attended


@dataclass
class Workload:
    """What both sides train on: a model folder and, per step, its tasks (in order) and their prompts."""

    model_dir: Path
    env: Environment
    cfg: Config  # episode.max_turns = 1
    steps: list[list[Task]]
    prompts: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # task id -> system + user messages


def tool_call_reward(text: str) -> float:
    return 1.0 if "<tool_call>" in text else 0.0


def single_turn(cfg: Config) -> Config:
    return cfg.model_copy(update={"episode": cfg.episode.model_copy(update={"max_turns": 1})})


def benchmark_toolbox(cfg: Config, session: Any) -> Toolbox:
    """The toolbox `run_rollouts` builds (same experts, no code tool), so prompts agree."""
    return Toolbox(cfg.catalog(), session, build_experts(cfg.catalog(), cfg.seed), with_code=False)


def step_batches(tasks: list[Task], n_steps: int, per_step: int) -> list[list[Task]]:
    if not tasks:
        raise ValueError("no tasks to benchmark on")
    return [[tasks[(s * per_step + i) % len(tasks)] for i in range(per_step)] for s in range(n_steps)]


def make_workload(model_dir: Path, env: Environment, tasks: list[Task], cfg: Config, bench: BenchConfig) -> Workload:
    cfg = single_turn(cfg)
    work = Workload(Path(model_dir), env, cfg, step_batches(tasks, bench.warmup + bench.steps, bench.tasks_per_step))
    with env.session() as session:
        box = benchmark_toolbox(cfg, session)
        work.prompts = {t.id: initial_messages(t, box) for step in work.steps for t in step}
    return work


def build_workload(tmp: Path, cfg: Config, spec: TinyModelSpec, bench: BenchConfig) -> Workload:
    """A procedural library world, its tasks (no code tool), and a tiny model whose tokenizer is
    trained on the tasks' gold trajectories, as the SFT stage's tiny base is."""
    generator = ProceduralGenerator(SynthEnvsSettings().rows_per_table)
    env = generator.generate("library", seed=cfg.seed, out_dir=tmp / "envs")
    made, _, _ = synthesize_env_tasks(env, cfg.catalog(), per_template=1, seed=cfg.seed)
    tasks = [t for t in made if all(c.name != "run_python" for c in t.gold_calls)]
    with env.session() as session:
        box = benchmark_toolbox(cfg, session)
        trajectories = [run_episode(t, PlanPolicy(t.gold_calls), box, cfg.episode.limits()) for t in tasks]
    model_dir = build_tiny_model(tmp / "model", chat_texts([t.messages for t in trajectories]), spec, seed=cfg.seed)
    return make_workload(model_dir, env, tasks, cfg, bench)


def load_policy(model_dir: Path, bench: BenchConfig, attn: str = "sdpa"):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(bench.threads)
    torch.manual_seed(bench.seed)
    if bench.device.startswith("cuda"):
        enable_tf32()  # both sides: float32 matmuls that remain run on the tensor cores
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    attn = FLEX if attn == "flex" else attn
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation=attn)
    return model.to(bench.device), tokenizer


# ---------------------------------------------------------------- ours


def completion_text(rollout: Rollout, tokenizer: Any) -> str:
    ids = [i for i, t in zip(rollout.sample.ids, rollout.sample.trained) if t]
    return tokenizer.decode(ids, skip_special_tokens=True)


def advantage_samples(rollouts: list[Rollout], group_size: int, tokenizer: Any) -> list:
    """Every rollout with its group-relative advantage; zero-variance groups stay in (at advantage 0),
    as TRL keeps them, so both sides train on every sampled token."""
    samples = []
    for g in range(0, len(rollouts), group_size):
        group = rollouts[g:g + group_size]
        adv, _ = group_advantages([tool_call_reward(completion_text(r, tokenizer)) for r in group])
        samples += [with_advantage(r.sample, float(a)) for r, a in zip(group, adv)]
    return samples


def synced_clock(bench: BenchConfig) -> float:
    """perf_counter once the GPU has finished what was queued (CUDA kernels run asynchronously)."""
    if bench.device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter()


def our_step_config(bench: BenchConfig) -> StepConfig:
    return StepConfig(clip_low=0.2, clip_high=0.28, kl_coef=0.0, max_grad_norm=1.0, max_len=bench.max_len,
                      rows_per_micro=bench.rows_per_micro, share_prompts=bench.share_prompts, row_len=bench.row_len,
                      tokens_per_micro=bench.tokens_per_micro, layout=bench.layout, precision=bench.precision)


def layout_work(samples: list, step_cfg: StepConfig) -> tuple[int, int]:
    """(positions, attention pairs) our training forward runs over these samples."""
    rows = [row for micro in micro_batches(samples, step_cfg) for row in micro]
    return sum(len(s) for row in rows for s in row), sum(row_attention_pairs(row) for row in rows)


def logprob_agreement(model: Any, samples: list, step_cfg: StepConfig, pad_id: int, device: str) -> dict[str, float]:
    """The first micro-batch's per-token log-probs on our configured path (layout, attention,
    precision) against the reference path (a row per micro-batch, dense mask, sdpa, float32)."""
    rows = micro_batches(samples, step_cfg)[0]
    reference = step_cfg.model_copy(update={"layout": "rows", "precision": "fp32"})
    with torch.no_grad():
        logp, _, trained = batch_logprobs(model, to_device(collate_micro(rows, pad_id, step_cfg), device), step_cfg)
        fast = logp[trained]
        with attention_implementation(model, "sdpa"):
            ref = torch.cat([_trained_logp(model, row, pad_id, device, reference) for row in rows])
    diff = (fast.float() - ref.float()).abs()
    return {"tokens": int(diff.numel()), "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
            "mean_abs_logp": float(ref.abs().mean())}


def _trained_logp(model: Any, row: list, pad_id: int, device: str, cfg: StepConfig) -> torch.Tensor:
    logp, _, trained = batch_logprobs(model, to_device(collate([row], pad_id), device), cfg)
    return logp[trained]


def run_ours(work: Workload, bench: BenchConfig) -> tuple[list[StepRecord], dict[str, float]]:
    """One round of our trainer: a record per step, warm-up steps included, and the log-prob check."""
    model, tokenizer = load_policy(work.model_dir, bench, bench.attn)
    engine = HFEngine(model, tokenizer, bench.max_new_tokens, bench.temperature, min_new_tokens=bench.max_new_tokens,
                      precision=bench.precision)
    fused = bench.device.startswith("cuda")
    optimizer = torch.optim.AdamW(model.parameters(), lr=bench.lr, weight_decay=0.0, fused=fused)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    step_cfg = our_step_config(bench)
    records, agreement = [], {}
    for index, tasks in enumerate(work.steps):
        jobs = [(t, work.env) for t in tasks for _ in range(bench.group_size)]
        t0 = time.perf_counter()
        rollouts, sampled = run_rollouts(jobs, Runtime.from_config(work.cfg), engine, seed=bench.seed * 1000 + index, with_code=False)
        t1 = synced_clock(bench)
        samples = advantage_samples(rollouts, bench.group_size, tokenizer)
        if index == 0:
            agreement = logprob_agreement(model, samples, step_cfg, tokenizer.pad_token_id, bench.device)
            t1 = synced_clock(bench)
        stats = grpo_step(model, None, optimizer, scheduler, samples, step_cfg, tokenizer.pad_token_id,
                          Dist(device=bench.device))
        t2 = synced_clock(bench)
        prompt = sum(len(r.sample.ids) - sum(r.sample.trained) for r in rollouts)
        records.append(StepRecord(t1 - t0, t2 - t1, sampled, int(stats["tokens"]), prompt,
                                  *layout_work(samples, step_cfg)))
    return records, agreement


# ---------------------------------------------------------------- TRL


def trl_args(out_dir: Path, n_steps: int, bench: BenchConfig):
    from trl import GRPOConfig

    batch = bench.tasks_per_step * bench.group_size
    micro = bench.trl_micro or batch
    if batch % micro:
        raise ValueError(f"trl_micro {micro} does not divide the batch of {batch} completions")
    cuda = bench.device.startswith("cuda")
    return GRPOConfig(
        output_dir=str(out_dir), max_steps=n_steps, per_device_train_batch_size=micro,
        gradient_accumulation_steps=batch // micro,
        num_generations=bench.group_size, max_completion_length=bench.max_new_tokens,
        generation_kwargs={"min_new_tokens": bench.max_new_tokens}, temperature=bench.temperature, top_k=0,
        top_p=1.0, learning_rate=bench.lr, lr_scheduler_type="constant", weight_decay=0.0,
        max_grad_norm=1.0, beta=0.0, epsilon=0.2, epsilon_high=0.28, loss_type="dapo", shuffle_dataset=False,
        # TRL's defaults turn gradient checkpointing on and the model's KV cache off (generate() then re-runs the
        # whole prefix for every new token); ours uses neither, so neither does the baseline.
        gradient_checkpointing=False, use_cache=True,
        use_cpu=bench.device == "cpu", bf16=bench.precision == "bf16", tf32=cuda or None,
        optim="adamw_torch_fused" if cuda else "adamw_torch", report_to="none", save_strategy="no", logging_steps=1_000_000,
        disable_tqdm=True, dataloader_num_workers=0, seed=bench.seed,
    )


def timed_trainer(trainer_cls: type, records: list[StepRecord]):
    """A GRPOTrainer subclass that times `_generate` and counts the tokens its loss sees."""
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            records.append(StepRecord(0.0, -time.perf_counter(), 0, 0, 0))

        def on_step_end(self, args, state, control, **kwargs):
            rec = records[-1]
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            rec.train_s += time.perf_counter() - rec.rollout_s  # step time minus the rollout phase

    class TimedGRPOTrainer(trainer_cls):
        def __init__(self, *a, **kw):
            super().__init__(*a, callbacks=[StepClock()], **kw)

        def _generate(self, prompts):
            t0 = time.perf_counter()
            out = super()._generate(prompts)
            rec = records[-1]
            rec.rollout_s += time.perf_counter() - t0
            prompt_ids, completion_ids = out[0], out[1]
            rec.completion_tokens += sum(len(c) for c in completion_ids)
            rec.prompt_tokens += sum(len(p) for p in prompt_ids)
            rec.positions_run += sum(len(p) + len(c) for p, c in zip(prompt_ids, completion_ids))
            rec.attention_pairs += sum(causal_pairs(len(p) + len(c)) for p, c in zip(prompt_ids, completion_ids))
            return out

        def _compute_loss(self, model, inputs):
            records[-1].trained_tokens += int(inputs["completion_mask"].sum())
            return super()._compute_loss(model, inputs)

    return TimedGRPOTrainer


def run_trl(work: Workload, bench: BenchConfig, out_dir: Path) -> list[StepRecord]:
    """One round of TRL's GRPOTrainer over the same steps; returns a record per step."""
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import GRPOTrainer

    model, tokenizer = load_policy(work.model_dir, bench)
    rows = [{"prompt": work.prompts[t.id]} for step in work.steps for t in step]  # in step order: no shuffling

    def reward_tool_call(prompts, completions, **_):
        return [tool_call_reward(c[0]["content"] if isinstance(c, list) else c) for c in completions]

    records: list[StepRecord] = []
    trainer = timed_trainer(GRPOTrainer, records)(
        model=model, reward_funcs=reward_tool_call, args=trl_args(out_dir, len(work.steps), bench),
        train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)  # its end-of-training summary would clutter the table
    torch.set_num_threads(bench.threads)
    trainer.train()
    return records


# ---------------------------------------------------------------- report


def hardware_summary(records: list[StepRecord], shape: ModelShape, peak_tflops: float) -> dict[str, Any]:
    """Training FLOPs over the positions and attention pairs the side actually ran (train.flops),
    per second, and as a fraction of the device's bf16 matmul rate (MFU)."""
    rate = statistics.median(train_flops(shape, r.positions_run, r.attention_pairs, r.trained_tokens) / r.train_s
                             / 1e12 for r in records)
    out = {"train_tflops_per_s": rate, "positions_run": sum(r.positions_run for r in records),
           "attention_pairs": sum(r.attention_pairs for r in records)}
    if peak_tflops > 0:
        out["mfu"] = rate / peak_tflops
    return out


def side_summary(records: list[StepRecord], parameters: int, shape: ModelShape | None = None,
                 peak_tflops: float = 0.0) -> dict[str, Any]:
    """Medians over steps. The model TFLOP/s count every position the phase runs the model over
    (prompt and completion): 6 x parameters per token to train, 2 x to sample (attention not counted);
    with `shape`, also the hardware figures of `hardware_summary`."""
    def positions(r: StepRecord) -> int:
        return r.prompt_tokens + r.completion_tokens

    hardware = hardware_summary(records, shape, peak_tflops) if shape is not None else {}
    return {
        **hardware,
        "step_s_median": statistics.median(r.rollout_s + r.train_s for r in records),
        "train_model_tflops_per_s": statistics.median(6 * parameters * positions(r) / r.train_s / 1e12
                                                      for r in records),
        "rollout_model_tflops_per_s": statistics.median(2 * parameters * positions(r) / r.rollout_s / 1e12
                                                        for r in records),
        "rollout_tokens_per_s": statistics.median(r.completion_tokens / r.rollout_s for r in records),
        "train_tokens_per_s": statistics.median(r.trained_tokens / r.train_s for r in records),
        "rollout_s_median": statistics.median(r.rollout_s for r in records),
        "train_s_median": statistics.median(r.train_s for r in records),
        "completion_tokens": sum(r.completion_tokens for r in records),
        "trained_tokens": sum(r.trained_tokens for r in records),
        "prompt_tokens": sum(r.prompt_tokens for r in records),
        "steps": [asdict(r) for r in records],
    }


def token_counts(records: list[StepRecord]) -> list[tuple[int, int, int]]:
    return [(r.completion_tokens, r.trained_tokens, r.prompt_tokens) for r in records]


def check_same_work(ours: list[StepRecord], trl: list[StepRecord]) -> None:
    if token_counts(ours) != token_counts(trl):
        raise RuntimeError(f"the sides processed different tokens per step (completion, trained, prompt): "
                           f"ours {token_counts(ours)}, TRL {token_counts(trl)}")


def log_round(index: int, side: str, records: list[StepRecord]) -> None:
    """Progress on stderr: on a busy machine a round can take minutes."""
    rollout = sum(r.rollout_s for r in records) / max(1, len(records))
    train = sum(r.train_s for r in records) / max(1, len(records))
    print(f"round {index} {side:4}: {rollout:6.1f} s rollout, {train:6.1f} s train per timed step",
          file=sys.stderr, flush=True)


def compare(work: Workload, bench: BenchConfig, scratch: Path) -> dict[str, Any]:
    """Alternate the sides for `bench.rounds` rounds; medians over all timed steps."""
    import transformers
    import trl

    ours: list[StepRecord] = []
    theirs: list[StepRecord] = []
    load_before = os.getloadavg()
    agreement: dict[str, float] = {}
    for r in range(bench.rounds):
        mine, agreement = run_ours(work, bench)
        log_round(r, "ours", mine[bench.warmup:])
        other = run_trl(work, bench, scratch / f"trl-{r}")
        log_round(r, "TRL", other[bench.warmup:])
        check_same_work(mine, other)
        ours += mine[bench.warmup:]
        theirs += other[bench.warmup:]
    model = load_policy(work.model_dir, bench)[0]
    parameters, shape = sum(p.numel() for p in model.parameters()), ModelShape.of(model)
    del model
    o, t = side_summary(ours, parameters, shape, bench.peak_tflops), side_summary(theirs, parameters, shape,
                                                                                bench.peak_tflops)
    return {
        "tokens_counted": TOKENS_COUNTED,
        "phases": {"rollout": "ours: run_rollouts (episode runner, max_turns=1); TRL: GRPOTrainer._generate",
                   "train": "rewards + advantages + loss, backward and AdamW step (TRL: step time minus _generate)"},
        "trl_settings": "gradient_checkpointing=False, use_cache=True (TRL defaults: True, False), "
                        "per_device_train_batch_size = trl_micro (0: the whole batch) with gradient accumulation "
                        "over the rest, beta=0, loss_type=dapo, constant lr, bf16 = precision, tf32 and fused "
                        "AdamW on CUDA",
        "bench": asdict(bench),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "torch_threads": bench.threads,
                    "load_avg_1m_before": load_before[0], "load_avg_1m_after": os.getloadavg()[0],
                    "device": bench.device,
                    "gpu": torch.cuda.get_device_name() if bench.device.startswith("cuda") else None,
                    "torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__},
        "model_parameters": parameters, "model_shape": asdict(shape),
        "logprob_agreement": agreement,
        "ours": o, "trl": t,
        "ratio_ours_over_trl": {"rollout_tokens_per_s": o["rollout_tokens_per_s"] / t["rollout_tokens_per_s"],
                                "train_tokens_per_s": o["train_tokens_per_s"] / t["train_tokens_per_s"],
                                "step_s": o["step_s_median"] / t["step_s_median"]},
    }


def print_table(report: dict[str, Any]) -> None:
    b, o, t, ratio = report["bench"], report["ours"], report["trl"], report["ratio_ours_over_trl"]
    where = report["machine"]["gpu"] or f"{b['threads']} threads"
    print(f"GRPO, {report['model_parameters']:,} params, {b['tasks_per_step']} prompts x {b['group_size']} samples x "
          f"{b['max_new_tokens']} new tokens, {where}; median of {len(o['steps'])} timed steps "
          f"(load avg {report['machine']['load_avg_1m_before']:.1f} -> {report['machine']['load_avg_1m_after']:.1f})")
    print(f"{'':8} {'rollout tok/s':>14} {'train tok/s':>12} {'rollout TFLOP/s':>16} {'train TFLOP/s':>14} "
          f"{'run TFLOP/s':>12} {'MFU':>6} {'step s':>7}")
    for name, side in (("ours", o), ("TRL", t)):
        mfu = f"{side['mfu']:.3f}" if "mfu" in side else "-"
        print(f"{name:8} {side['rollout_tokens_per_s']:>14.1f} {side['train_tokens_per_s']:>12.1f} "
              f"{side['rollout_model_tflops_per_s']:>16.3f} {side['train_model_tflops_per_s']:>14.3f} "
              f"{side['train_tflops_per_s']:>12.3f} {mfu:>6} {side['step_s_median']:>7.3f}")
    print(f"{'ours/TRL':8} {ratio['rollout_tokens_per_s']:>14.2f} {ratio['train_tokens_per_s']:>12.2f}")
    print(f"log-probs, ours vs float32 reference: {report['logprob_agreement']}")
    print(f"tokens counted: {report['tokens_counted']}")


def bench_config(cfg: Config, **overrides: Any) -> BenchConfig:
    grpo = cfg.stages.get("grpo", {})
    keys = ("tasks_per_step", "group_size", "max_new_tokens", "lr", "temperature", "max_len", "rows_per_micro",
            "share_prompts", "row_len", "tokens_per_micro", "layout", "precision")
    base = {k: grpo[k] for k in keys if k in grpo}
    return BenchConfig(**{**base, "seed": cfg.seed, **{k: v for k, v in overrides.items() if v is not None}})


def quiet_libraries() -> None:
    """Progress bars and deprecation notices of transformers/TRL would bury the table."""
    import warnings

    from transformers.utils import logging as hf_logging

    warnings.filterwarnings("ignore", category=FutureWarning)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def main(
    out: Path = typer.Argument(..., help="Where to write the JSON report."),
    config: Path = typer.Option(ROOT / "configs/tiny.yaml", help="Profile YAML: model size and GRPO batch."),
    steps: int = typer.Option(3, min=1, help="Timed steps per round."),
    warmup: int = typer.Option(1, min=0, help="Untimed steps per round."),
    rounds: int = typer.Option(3, min=1, help="Rounds, alternating the sides."),
    tasks_per_step: Optional[int] = typer.Option(None, min=1), group_size: Optional[int] = typer.Option(None, min=2),
    max_new_tokens: Optional[int] = typer.Option(None, min=1), threads: int = typer.Option(2, min=1),
    max_len: Optional[int] = typer.Option(None, min=16, help="Ours: longest row (profile's by default)."),
    share_prompts: Optional[bool] = typer.Option(None, "--share-prompts/--separate-rows",
                                                 help="Ours: a group's prompt once per row, or a row per rollout."),
    rows_per_micro: Optional[int] = typer.Option(None, min=1, help="Ours: rows per micro-batch (profile's)."),
    device: str = typer.Option("cpu", help="cpu or cuda (both sides)."),
    tokens_per_micro: Optional[int] = typer.Option(None, min=0, help="Ours: tokens per micro-batch (0: by rows)."),
    layout: Optional[str] = typer.Option(None, help="Ours: rows or flat (one packed sequence per micro-batch)."),
    attn: str = typer.Option("sdpa", help="Ours: attn_implementation, or flex (FlexAttention in bf16 under autocast) with --layout flat."),
    precision: Optional[str] = typer.Option(None, help="Both: fp32 or bf16 (autocast over fp32 weights)."),
    trl_micro: int = typer.Option(0, min=0, help="TRL: completions per forward (0: the whole batch)."),
    peak_tflops: float = typer.Option(0.0, min=0, help="The device's bf16 matmul TFLOP/s, for MFU."),
    spec: str = typer.Option("{}", help='Model shape over the profile\'s tiny spec, JSON: {"hidden_size": 576, ...}.'),
) -> None:
    quiet_libraries()
    cfg = load_config(config)
    bench = bench_config(cfg, steps=steps, warmup=warmup, rounds=rounds, tasks_per_step=tasks_per_step,
                         group_size=group_size, max_new_tokens=max_new_tokens, threads=threads, max_len=max_len,
                         share_prompts=share_prompts, rows_per_micro=rows_per_micro, device=device,
                         tokens_per_micro=tokens_per_micro, layout=layout, attn=attn, precision=precision,
                         trl_micro=trl_micro, peak_tflops=peak_tflops)
    shape = TinyModelSpec.model_validate({**cfg.stages.get("sft", {}).get("tiny", {}), **json.loads(spec)})
    with tempfile.TemporaryDirectory(prefix="bench-grpo-") as tmp:
        report = compare(build_workload(Path(tmp), cfg, shape, bench), bench, Path(tmp))
    print_table(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    typer.run(main)
