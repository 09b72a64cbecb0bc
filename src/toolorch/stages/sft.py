"""toolorch sft --config configs/tiny.yaml

Warm-start the orchestrator on verified trajectories (loss on assistant tokens only).

    python -m toolorch.stages.sft --config configs/tiny.yaml
    torchrun --nproc-per-node 8 -m toolorch.stages.sft --config C.yaml --set stages.sft.precision=bf16   # FSDP2
    toolorch sft --config configs/tiny.yaml --set stages.sft.epochs=3 --set stages.sft.base=path/to/hf_model

Reads passk's trajectories (`--trajectories-path`; full chats, system prompt first). The base model
is `stages.sft.base`: `tiny` builds a random-init Qwen2 whose byte-level BPE tokenizer
is trained on these chats (toolorch.runtime.modeling), anything else is an HF model folder or a
model store name (`smollm2-135m-instruct`, `qwen3-8b`: toolorch.runtime.model_store).
Chats are tokenized with the model's chat template, cut to `max_len` tokens, packed into
rows of `row_len` (per-sequence positions, block-diagonal mask; a longer chat is a row alone;
with `share_prompts` a row's chats share their common prompt once) and trained with AdamW. Writes an HF checkpoint (weights, tokenizer, chat template) and
config.resolved.yaml in its output folder (`--out-dir`) with its loss curve (tensorboard/,
dvclive/ drawn by `dvc plots show`, and curves/report.md with its charts), and its
metrics (`--metrics-path`): losses, token counts, throughput. Progress goes to the log (step, loss,
tokens/s, elapsed, ETA) and, with TOOLORCH_METRICS_PORT set, to a Prometheus endpoint.
Seeded: the same data, config and seed give the same weights on CPU.
Under torchrun (WORLD_SIZE > 1) the model is sharded with FSDP2 over all ranks (bf16 compute on
fp32 master weights with `precision: bf16`, `activation_checkpointing` to fit long rows) and
rank 0 writes the checkpoint and metrics.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import torch
from pydantic import Field

from toolorch.core.config import Config
from toolorch.core.jsonl import read_jsonl
from toolorch.core.progress import Progress
from toolorch.core.records import Trajectory
from toolorch.runtime.chat import chat_texts, tokenize_chat
from toolorch.runtime.model_store import ModelStoreError, resolve_model
from toolorch.runtime.modeling import TinyModelSpec, build_tiny_model
from toolorch.stages.io import finish
from toolorch.stages.stage import Input, SeededByProfile, Stage
from toolorch.train.curves import write_curves
from toolorch.train.distributed import (
    Dist,
    checkpoint_activations,
    close,
    full_state_dict,
    init_distributed,
    save_hf,
    shard,
)
from toolorch.train.exporter import TrainingExporter, watchers
from toolorch.train.packing import Sample, pack, pack_shared
from toolorch.train.scalars import ScalarLog
from toolorch.train.sft import SFTLoop, train_sft


class SFTSettings(SFTLoop, SeededByProfile):
    """`stages.sft` in a profile YAML: the loop's settings (train.sft.SFTLoop) and these."""

    base: str = "tiny"  # `tiny` or an HF model folder
    tiny: TinyModelSpec = TinyModelSpec()
    max_len: int = Field(1024, ge=16)  # tokens per chat (longer ones are cut)
    row_len: Optional[int] = Field(None, ge=16)  # tokens per packed row (default max_len); a longer chat takes a row alone
    # chats that begin alike (a task's copies under its users; a world's tool list) share that
    # prompt once in a row (train.packing.pack_shared): an orchestrator's chat is ~98% prompt
    share_prompts: bool = False
    max_trajectories: Optional[int] = Field(None, ge=1)
    threads: int = Field(2, ge=1)


def load_trajectories(path: Path, limit: int | None) -> list[Trajectory]:
    """Verified trajectories; under a `limit`, every task's best first, then every task's second...

    (passk writes each task's trajectories cheapest first, so a plain head would keep
    a few tasks whole and drop the rest.)
    """
    trajs = [t for t in read_jsonl(path, Trajectory) if t.correct]
    if not trajs:
        raise ValueError(f"{path}: no verified-correct trajectories to train on")
    if not limit:
        return trajs
    rank: dict[str, int] = {}
    ranked = []
    for i, t in enumerate(trajs):
        rank[t.task_id] = rank.get(t.task_id, -1) + 1
        ranked.append((rank[t.task_id], i, t))
    return [t for _, _, t in sorted(ranked, key=lambda x: x[:2])[:limit]]


def load_base(settings: SFTSettings, texts: list[str], seed: int, scratch: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if settings.base == "tiny":
        folder = build_tiny_model(scratch / "base", texts, settings.tiny, seed=seed)
    else:
        try:
            folder = resolve_model(settings.base)  # a folder, or a model store name (runtime.model_store)
        except ModelStoreError as e:
            raise FileNotFoundError(f"stages.sft.base: {e}") from None
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.chat_template is None:
        raise ValueError(f"base model {folder} has no chat template")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    return model, tokenizer


def log_step(record: dict[str, Any], scalars: ScalarLog | None, progress: Progress, rows_per_step: int) -> None:
    step = record["step"] + 1
    if scalars is not None:  # rank 0 writes the curves
        scalars.write(step, {"loss": record["loss"], "lr": record["lr"], "tokens": record["tokens"]})
    progress.update(step, {"loss": record["loss"], "lr": record["lr"]}, tokens=record["tokens"], samples=rows_per_step)


def run(cfg: Config, trajectories_path: Path, out_dir: Path, metrics_path: Path) -> dict[str, Any]:
    settings: SFTSettings = cfg.stages.sft
    torch.set_num_threads(settings.threads)
    trajs = load_trajectories(Path(trajectories_path), settings.max_trajectories)
    # the base is built before the process group exists: HF saves only on rank 0 inside one,
    # and every rank builds its own (seeded, so identical) tiny base
    with tempfile.TemporaryDirectory() as scratch:
        model, tokenizer = load_base(settings, chat_texts([t.messages for t in trajs]), cfg.seed, Path(scratch))
    dist = init_distributed()
    try:
        return train_and_save(cfg, settings, trajs, model, tokenizer, Path(out_dir), metrics_path, dist)
    finally:
        close(dist)


def prepare(model: torch.nn.Module, settings: SFTSettings, dist: Dist) -> torch.nn.Module:
    if settings.activation_checkpointing:
        checkpoint_activations(model)
    return shard(model, dist, param_dtype=torch.bfloat16 if settings.precision == "bf16" else None)


def train_and_save(cfg: Config, settings: SFTSettings, trajs: list[Trajectory], model: torch.nn.Module, tokenizer: Any,
                   out_dir: Path, metrics_path: Path, dist: Dist) -> dict[str, Any]:
    model = prepare(model, settings, dist)
    samples = [Sample(*tokenize_chat(tokenizer, t.messages, t.tools)) for t in trajs]
    rows = (pack_shared if settings.share_prompts else pack)(samples, settings.max_len, settings.row_len)
    loop = settings.model_copy(update={"seed": cfg.seed})
    out_dir = Path(out_dir)
    start = time.perf_counter()
    total = loop.epochs * max(1, -(-len(rows) // loop.rows_per_step))
    scalars = ScalarLog(out_dir / "tensorboard", curves=out_dir / "dvclive") if dist.main else None
    exporter = TrainingExporter.from_env(serves=dist.main)
    try:
        with Progress("sft", total, show=("loss", "lr"), enabled=dist.main, watchers=watchers(exporter)) as progress:
            history = train_sft(model, rows, tokenizer.pad_token_id, loop, dist=dist,
                                log=lambda r: log_step(r, scalars, progress, loop.rows_per_step))
    finally:
        if scalars is not None:
            scalars.close()
        if exporter is not None:
            exporter.close()
    seconds = time.perf_counter() - start
    weights = full_state_dict(model, dist, rank0_only=True)  # every rank joins the gather
    metrics = sft_metrics(settings, trajs, rows, samples, history, seconds, model)
    if dist.main:
        write_curves(out_dir / "dvclive", out_dir / "curves", "sft")
        out_dir.mkdir(parents=True, exist_ok=True)
        save_hf(model, weights, out_dir, dist)
        tokenizer.save_pretrained(out_dir)
        finish(cfg, out_dir, metrics, metrics_path)
    dist.barrier()
    return metrics


def sft_metrics(settings: SFTSettings, trajs: list[Trajectory], rows: list, samples: list[Sample],
                history: list[dict], seconds: float, model: torch.nn.Module) -> dict[str, Any]:
    trained_tokens = sum(h["tokens"] for h in history)
    return {
        "trajectories": len(trajs), "rows": len(rows), "steps": len(history),
        "tokens": sum(len(s) for s in samples), "row_tokens": sum(len(s) for row in rows for s in row),
        "trained_tokens_per_epoch": trained_tokens // settings.epochs,
        "truncated": sum(len(s) > settings.max_len for s in samples),
        "loss_first": history[0]["loss"], "loss_last": history[-1]["loss"],
        "loss_last_epoch_mean": sum(h["loss"] for h in history if h["epoch"] == settings.epochs - 1)
        / max(1, sum(h["epoch"] == settings.epochs - 1 for h in history)),
        "train_seconds": seconds, "trained_tokens_per_s": trained_tokens / max(seconds, 1e-9),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


STAGE = Stage(
    "sft", SFTSettings, run,
    lambda m: f"sft: {m['steps']} steps, loss {m['loss_first']:.3f} -> {m['loss_last']:.3f}",
    inputs={"trajectories_path": Input("passk", "trajectories.jsonl")},
    outputs={"out_dir": "models/sft"},
    after=("validate",),  # training never starts before the data gate passed
)

if __name__ == "__main__":
    from toolorch.stages.command import main

    main("sft")
