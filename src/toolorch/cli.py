"""`toolorch`: one command per pipeline stage plus ad-hoc tools (`run-episode`)."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from toolorch.stages import STAGES

app = typer.Typer(help="toolorch: synthesize, train, evaluate and serve orchestrator models.",
                  no_args_is_help=True, add_completion=False)
console = Console()


@app.callback()
def _root() -> None:
    """Keep `toolorch` a command group even while few commands exist."""


def _policy(spec: str, cfg, task):
    """Build a policy from a spec: gold | only:<expert> | hf:<dir> | openai:<base_url>#<model>."""
    from toolorch.runtime.policies import (
        AskToolPolicy,
        HFPolicy,
        OpenAIPolicy,
        PlanPolicy,
    )
    from toolorch.runtime.tools import expert_tool_name

    if spec == "gold":
        return PlanPolicy(task.gold_calls, name="gold")
    if spec.startswith("only:"):
        return AskToolPolicy(expert_tool_name(spec[5:]), name=spec)
    if spec.startswith("hf:"):
        return HFPolicy(spec[3:], seed=cfg.seed)
    if spec.startswith("openai:"):
        try:
            return OpenAIPolicy.from_spec(spec, seed=cfg.seed)
        except ValueError as e:
            raise typer.BadParameter(str(e)) from None
    raise typer.BadParameter(f"unknown policy '{spec}' (gold | only:<expert> | hf:<dir> | openai:<url>#<model>)")


@app.command("run-episode")
def run_episode_cmd(
    env: Path = typer.Option(..., help="Environment folder (env.json, db.sqlite, docs.jsonl)."),
    tasks: Path = typer.Option(..., help="Tasks JSONL."),
    task_id: Optional[str] = typer.Option(None, help="Task id (default: the first task of this env)."),
    policy: str = typer.Option("gold", help="gold | only:<expert> | hf:<dir> | openai:<url>#<model>"),
    config: Optional[Path] = typer.Option(None, help="Profile YAML, e.g. configs/tiny.yaml."),
    set_: list[str] = typer.Option([], "--set", help="Config override key=value (repeatable)."),
    json_out: bool = typer.Option(False, "--json", help="Print the trajectory as JSON."),
) -> None:
    """Run one task against an environment and print the trajectory with its cost and latency."""
    from toolorch.core.config import load_config
    from toolorch.core.jsonl import read_jsonl
    from toolorch.core.records import Task
    from toolorch.runtime.env import Environment
    from toolorch.runtime.episode import Runtime

    cfg = load_config(config, set_)
    environment = Environment.load(env)
    pool = [t for t in read_jsonl(tasks, Task) if t.env == environment.name]
    chosen = next((t for t in pool if task_id in (None, t.id)), None)
    if chosen is None:
        raise typer.BadParameter(f"no task {task_id or ''} for env '{environment.name}' in {tasks}")
    with environment.session() as session:
        runtime = Runtime.from_config(cfg)
        traj = runtime.run(chosen, _policy(policy, cfg, chosen), runtime.toolbox(session))
    if json_out:
        print(traj.model_dump_json(indent=2))
        return
    console.print(f"[bold]task[/] {chosen.id}: {chosen.question}")
    for turn in traj.turns:
        console.print(f"[cyan]assistant[/] {turn.text}", markup=False, highlight=False)
        if turn.observation is not None:
            o = turn.observation
            console.print(f"  -> {o.content[:300]}  (${o.usage.cost_usd:.6f}, {o.usage.latency_s:.1f}s)",
                          markup=False, highlight=False)
    u = traj.usage
    console.print(f"[bold]answer[/] {traj.answer!r} gold {chosen.answer!r} correct={traj.correct} "
                  f"stop={traj.stop_reason} cost=${u.cost_usd:.6f} latency={u.latency_s:.1f}s "
                  f"tokens={u.tokens_in}/{u.tokens_out}")


def _register_stages() -> None:
    for name in STAGES:
        try:
            module = importlib.import_module(f"toolorch.stages.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"toolorch.stages.{name}":
                continue  # stage not built in this checkout
            raise
        app.command(name.replace("_", "-"), help=(module.__doc__ or "").strip().split("\n")[0])(module.cli)


_register_stages()

if __name__ == "__main__":
    app()
