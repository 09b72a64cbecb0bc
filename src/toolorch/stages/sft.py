"""sft: warm-start the orchestrator on verified trajectories (loss on assistant tokens only).

    python -m toolorch.stages.sft --config configs/tiny.yaml
    toolorch sft --config configs/tiny.yaml --set stages.sft.epochs=3

Reads data/passk/trajectories.jsonl (full chats, system prompt first). The base model
is `stages.sft.base`: `tiny` builds a random-init Qwen2 whose byte-level BPE tokenizer
is trained on these chats (toolorch.runtime.modeling), anything else is an HF model folder.
Chats are tokenized with the model's chat template, packed into rows of `max_len`
tokens (per-sequence positions, block-diagonal mask) and trained with AdamW. Writes
    models/sft/            HF checkpoint (weights, tokenizer, chat template) + config.resolved.yaml
    metrics/sft.json       losses, token counts, throughput
Seeded: the same data, config and seed give the same weights on CPU.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import torch
import typer
from pydantic import BaseModel, ConfigDict, Field

from toolorch.core.config import Config
from toolorch.core.jsonl import read_jsonl
from toolorch.core.records import Trajectory
from toolorch.runtime.chat import chat_texts, tokenize_chat
from toolorch.runtime.modeling import TinyModelSpec, build_tiny_model
from toolorch.stages import finish, progress_bar, stage_config
from toolorch.train.distributed import default_device
from toolorch.train.packing import Sample, pack
from toolorch.train.sft import SFTLoop, train_sft


class SFTSettings(BaseModel):
    """`stages.sft` in a profile YAML."""

    model_config = ConfigDict(extra="forbid")

    base: str = "tiny"  # `tiny` or an HF model folder
    tiny: TinyModelSpec = TinyModelSpec()
    epochs: int = Field(2, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(5, ge=0)
    max_len: int = Field(1024, ge=16)  # tokens per packed row
    rows_per_step: int = Field(4, ge=1)
    rows_per_micro: int = Field(2, ge=1)
    max_trajectories: Optional[int] = Field(None, ge=1)
    threads: int = Field(2, ge=1)


def settings_of(cfg: Config) -> SFTSettings:
    return SFTSettings.model_validate(cfg.stages.get("sft", {}))


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
        folder = Path(settings.base)
        if not (folder / "config.json").exists():
            raise FileNotFoundError(f"stages.sft.base: {folder} is not an HF model folder (no config.json)")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.chat_template is None:
        raise ValueError(f"base model {folder} has no chat template")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    return model, tokenizer


def run(cfg: Config, trajectories_path: Path = Path("data/passk/trajectories.jsonl"),
        out_dir: Path = Path("models/sft"), metrics_path: Path = Path("metrics/sft.json"),
        base_model: str | None = None) -> dict[str, Any]:
    settings = settings_of(cfg)
    if base_model is not None:
        settings = settings.model_copy(update={"base": base_model})
    torch.set_num_threads(settings.threads)
    trajs = load_trajectories(Path(trajectories_path), settings.max_trajectories)
    with tempfile.TemporaryDirectory() as scratch:
        model, tokenizer = load_base(settings, chat_texts([t.messages for t in trajs]), cfg.seed, Path(scratch))
    model.to(default_device())
    samples = [Sample(*tokenize_chat(tokenizer, t.messages, t.tools)) for t in trajs]
    rows = pack(samples, settings.max_len)
    loop = SFTLoop(epochs=settings.epochs, lr=settings.lr, weight_decay=settings.weight_decay,
                   warmup_steps=settings.warmup_steps, rows_per_step=settings.rows_per_step,
                   rows_per_micro=settings.rows_per_micro, seed=cfg.seed)
    start = time.perf_counter()
    total = loop.epochs * max(1, -(-len(rows) // loop.rows_per_step))
    with progress_bar("sft") as bar:
        job = bar.add_task("sft", total=total, info="")
        history = train_sft(model, rows, tokenizer.pad_token_id, loop,
                            log=lambda r: bar.update(job, advance=1, info=f"loss {r['loss']:.3f}"))
    seconds = time.perf_counter() - start
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    trained_tokens = sum(h["tokens"] for h in history)
    metrics = {
        "trajectories": len(trajs), "rows": len(rows), "steps": len(history),
        "tokens": sum(len(s) for s in samples), "trained_tokens_per_epoch": trained_tokens // settings.epochs,
        "truncated": sum(len(s) > settings.max_len for s in samples),
        "loss_first": history[0]["loss"], "loss_last": history[-1]["loss"],
        "loss_last_epoch_mean": sum(h["loss"] for h in history if h["epoch"] == settings.epochs - 1)
        / max(1, sum(h["epoch"] == settings.epochs - 1 for h in history)),
        "train_seconds": seconds, "trained_tokens_per_s": trained_tokens / max(seconds, 1e-9),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    return finish(cfg, out_dir, metrics, metrics_path)


def cli(
    config: Optional[Path] = typer.Option(None, help="Profile YAML, e.g. configs/tiny.yaml."),
    set_: list[str] = typer.Option([], "--set", help="Config override key=value (repeatable)."),
    trajectories: Path = typer.Option(Path("data/passk/trajectories.jsonl"), help="Verified trajectories JSONL."),
    out_dir: Path = typer.Option(Path("models/sft"), help="Output HF checkpoint folder."),
    metrics: Path = typer.Option(Path("metrics/sft.json"), help="Metrics JSON."),
    base_model: Optional[str] = typer.Option(None, help="Override stages.sft.base (tiny or an HF folder)."),
) -> None:
    """Warm-start the orchestrator on verified trajectories."""
    result = run(stage_config(config, set_), trajectories, out_dir, metrics, base_model)
    typer.echo(f"sft: {result['steps']} steps, loss {result['loss_first']:.3f} -> {result['loss_last']:.3f}")


def main() -> None:
    typer.run(cli)


if __name__ == "__main__":
    main()
