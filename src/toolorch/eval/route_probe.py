"""Which expert does a policy hand a question to, for each kind of user and question? Read off its logits.

    python -m toolorch.eval.route_probe SFT_DIR GRPO_DIR --tasks HELDOUT.jsonl --envs-dir ENVS
    python -m toolorch.eval.route_probe GRPO_DIR --tasks HELDOUT.jsonl --envs-dir ENVS --out route_probe.json

(the sft and grpo checkpoints, the held-out tasks and the environments: the stages' outputs,
whose folders `toolorch <stage> --help` shows).

For every task of the sample (the eval stage's: seeded, category shares kept) asked by each
user profile, the policy's probability of each whole `answer(model=...)` call, renormalised
over the experts: P(expert | the policy answers through an expert). No sampling, so two
checkpoints are compared without seed noise; the table gives the mean by category and user.
It shows whether a policy reads the preference (the rows differ) and the question (the
columns differ), which held-out reward alone cannot tell apart.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional

import torch
import typer

from toolorch.core.catalog import Catalog
from toolorch.core.config import load_config
from toolorch.core.errors import RunFailed, UsageError
from toolorch.core.records import ANSWER_TOOL, Preference, Task, ToolCall
from toolorch.eval.heldout import heldout_sample
from toolorch.runtime.chat import Tools, common_prefix, encode, render
from toolorch.runtime.env import Environment, load_envs
from toolorch.runtime.episode import initial_messages
from toolorch.runtime.modeling import model_device
from toolorch.runtime.parsing import render_call
from toolorch.runtime.preferences import PROFILES
from toolorch.runtime.prompts import tool_schemas
from toolorch.runtime.tools import Toolbox


def call_logprobs(model: Any, prompt: list[int], continuations: list[list[int]]) -> list[float]:
    """log P(continuation | prompt) for each continuation, one batched forward pass."""
    width = len(prompt) + max(len(c) for c in continuations)
    device = model_device(model)
    ids = torch.zeros((len(continuations), width), dtype=torch.long)
    for row, cont in enumerate(continuations):
        seq = prompt + cont
        ids[row, :len(seq)] = torch.tensor(seq)
    with torch.no_grad():
        logp = model(input_ids=ids.to(device)).logits.float().log_softmax(-1).cpu()
    out = []
    for row, cont in enumerate(continuations):
        at = torch.arange(len(prompt) - 1, len(prompt) - 1 + len(cont))
        out.append(float(logp[row, at, torch.tensor(cont)].sum()))
    return out


def expert_odds(model: Any, tokenizer: Any, messages: list[dict[str, str]], experts: list[str],
                tools: Tools = None) -> dict[str, float]:
    """P(expert) over `experts` for the policy's next turn being `answer(model=expert)`.

    Each whole call is tokenized in full and scored from the first token where the calls
    differ, so a tokenizer that merges the expert's name with what surrounds it is scored
    on the tokens it would really emit.
    """
    head = render(tokenizer, messages, tools, generation_prompt=True)
    calls = [encode(tokenizer, head + render_call(ToolCall(name=ANSWER_TOOL, arguments={"model": e})))
             for e in experts]
    shared = min((common_prefix(calls[0], c, len(c)) for c in calls[1:]), default=len(calls[0]))
    logps = torch.tensor(call_logprobs(model, calls[0][:shared], [c[shared:] for c in calls]))
    return dict(zip(experts, torch.softmax(logps, dim=0).tolist()))


def probe(model: Any, tokenizer: Any, tasks: list[Task], envs: dict[str, Environment], catalog: Catalog,
          profiles: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """{profile: {category: {expert: mean probability}}}, plus an "all" category. Each user
    is the profile's weights alone (no deny or prefer list)."""
    experts = catalog.names()
    sums: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: dict.fromkeys(experts, 0.0))
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for profile in profiles:
        for task in tasks:
            asked = task.model_copy(update={"preference": Preference(**PROFILES[profile])})
            with envs[task.env].session() as session:
                toolbox = Toolbox(catalog, session)
                messages = initial_messages(asked, toolbox)
            odds = expert_odds(model, tokenizer, messages, experts, tool_schemas(toolbox.specs, asked.preference))
            for key in ((profile, task.category), (profile, "all")):
                counts[key] += 1
                for e, p in odds.items():
                    sums[key][e] += p
    table: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for (profile, category), total in sums.items():
        table[profile][category] = {e: p / counts[(profile, category)] for e, p in total.items()}
    return dict(table)


def format_table(name: str, table: dict[str, dict[str, dict[str, float]]], expert: str) -> str:
    categories = sorted({c for rows in table.values() for c in rows if c != "all"}) + ["all"]
    lines = [f"{name}: P({expert})", "| user | " + " | ".join(categories) + " |",
             "|---|" + "---|" * len(categories)]
    for profile, rows in table.items():
        lines.append(f"| {profile} | " + " | ".join(f"{rows[c][expert]:.2f}" for c in categories) + " |")
    return "\n".join(lines)


def main(
    models: list[Path] = typer.Argument(..., help="HF policy folders, e.g. the sft and grpo stages' outputs."),
    config: Path = typer.Option(Path("configs/tiny.yaml"), help="Profile YAML (experts, episode settings)."),
    set_: list[str] = typer.Option([], "--set", help="Config override key=value (repeatable)."),
    tasks: Path = typer.Option(..., help="Tasks JSONL (synth-tasks' heldout.jsonl)."),
    envs_dir: Path = typer.Option(..., help="Environments folder (synth-envs' output)."),
    max_tasks: int = typer.Option(60, min=1, help="Tasks in the sample (category shares kept)."),
    profiles: list[str] = typer.Option(["accuracy_first", "cost_averse"], "--profile", help="User profiles."),
    expert: Optional[str] = typer.Option(None, help="Expert whose probability the tables show (priciest)."),
    out: Optional[Path] = typer.Option(None, help="Also write the tables as JSON."),
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    unknown = [p for p in profiles if p not in PROFILES]
    if unknown:
        raise typer.BadParameter(f"unknown profile(s) {unknown}; known: {sorted(PROFILES)}")
    try:
        cfg = load_config(config, set_)
        shown = expert or max(cfg.catalog().experts, key=lambda e: e.price.output).name
        sample = heldout_sample(tasks, max_tasks, cfg.seed)
        envs = load_envs(envs_dir, {t.env for t in sample})
        report = {}
        for folder in models:
            if not (folder / "config.json").is_file():
                raise UsageError(f"{folder}: no model checkpoint (config.json) there")
            tokenizer = AutoTokenizer.from_pretrained(folder)
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
            report[str(folder)] = probe(model, tokenizer, sample, envs, cfg.catalog(), profiles)
            typer.echo(format_table(str(folder), report[str(folder)], shown) + "\n")
    except (UsageError, RunFailed, OSError, ValueError) as e:  # a wrong path or config, bad task data: one line
        typer.echo(f"route_probe: error: {e}", err=True)
        raise typer.Exit(2 if isinstance(e, (UsageError, FileNotFoundError)) else 1) from None
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"tasks": len(sample), "profiles": profiles, "policies": report}, indent=2) + "\n")


if __name__ == "__main__":
    typer.run(main)
