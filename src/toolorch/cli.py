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
        url, _, model = spec[7:].partition("#")
        return OpenAIPolicy(url, model or "orchestrator", api_key_env="TOOLORCH_POLICY_API_KEY", seed=cfg.seed)
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


@app.command("serve")
def serve_cmd(
    orchestrator: list[str] = typer.Option(..., help="[NAME=]SPEC: hf:<dir> | openai:<url>#<model> | only:<expert> "
                                           "(repeatable: the first is the default variant, others canaries)."),
    config: Optional[Path] = typer.Option(None, help="Profile YAML (a workstation), e.g. configs/tiny.yaml."),
    set_: list[str] = typer.Option([], "--set", help="Config override key=value (repeatable; with --config)."),
    catalog: Optional[Path] = typer.Option(None, help="Serving catalog YAML: experts, prices, tools."),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
    canary_weight: float = typer.Option(0.0, help="Share of traffic the other --orchestrator variants take."),
    max_inflight: int = typer.Option(256, help="Orchestrations at once; beyond, 503 with Retry-After."),
    max_request_s: float = typer.Option(1800.0, help="Every request's deadline (max_latency_s may lower it)."),
    drain_s: float = typer.Option(30.0, help="On SIGTERM, how long in-flight requests may take to finish."),
    ledger: Optional[Path] = typer.Option(None, help="SQLite file keeping each API key's spend across restarts."),
    simulated_latency_scale: float = typer.Option(0.0, help="Simulated experts sleep x their declared latency."),
    log_level: str = typer.Option("info", help="debug | info | warning | error"),
) -> None:
    """Serve the orchestrator behind an OpenAI-compatible API (the gateway runs the whole tool loop)."""
    from toolorch.serve.main import ServeArgs, serve

    raise typer.Exit(serve(ServeArgs(orchestrator, config, tuple(set_), catalog, host, port, canary_weight,
                                     max_inflight, max_request_s, drain_s, ledger, simulated_latency_scale,
                                     log_level)))


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
