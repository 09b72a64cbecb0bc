"""`toolorch`: one command per pipeline stage (built from the stage declarations) plus ad-hoc tools.

    toolorch --help
    toolorch passk --config configs/tiny.yaml --set stages.passk.k=4
    toolorch run-episode --env ENVS/library --tasks TASKS/train.jsonl --policy only:frontier  # synth-* outputs

Every command reports an expected failure as one line naming the file, line or key, exits 2
for bad usage and 1 for a failed run, and shows the traceback only with `--debug`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.text import Text

from toolorch.core.errors import UsageError
from toolorch.stages import STAGES, declaration
from toolorch.stages.command import reported, stage_command, stage_help

app = typer.Typer(help="toolorch: synthesize, train, evaluate and serve orchestrator models.",
                  no_args_is_help=True, add_completion=False)
console = Console()
POLICIES = "gold | only:<expert> | hf:<dir> | openai:<url>#<model>"


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
            raise UsageError(f"--policy: {e}") from None
    raise UsageError(f"--policy: unknown policy '{spec}' ({POLICIES})")


def print_trajectory(task, traj) -> None:
    """The conversation turn by turn, then the answer with its cost and latency."""
    console.print(Text.assemble(("task", "bold"), f" {task.id}: {task.question}"))
    for turn in traj.turns:
        console.print(Text.assemble(("assistant", "cyan"), f" {turn.text}"), highlight=False)
        if turn.observation is not None:
            o = turn.observation
            console.print(Text(f"  -> {o.content[:300]}  (${o.usage.cost_usd:.6f}, {o.usage.latency_s:.1f}s)"),
                          highlight=False)
    u = traj.usage
    console.print(Text.assemble(("answer", "bold"), f" {traj.answer!r} gold {task.answer!r} correct={traj.correct} "
                                f"stop={traj.stop_reason} cost=${u.cost_usd:.6f} latency={u.latency_s:.1f}s "
                                f"tokens={u.tokens_in}/{u.tokens_out}"), highlight=False)


@app.command("run-episode")
def run_episode_cmd(
    env: Path = typer.Option(..., help="Environment folder (env.json, db.sqlite, docs.jsonl)."),
    tasks: Path = typer.Option(..., help="Tasks JSONL."),
    task_id: Optional[str] = typer.Option(None, help="Task id (default: the first task of this env)."),
    policy: str = typer.Option("gold", help=POLICIES),
    config: Optional[Path] = typer.Option(None, help="Profile YAML, e.g. configs/tiny.yaml."),
    set_: list[str] = typer.Option([], "--set", help="Config override key=value (repeatable)."),
    json_out: bool = typer.Option(False, "--json", help="Print the trajectory as JSON."),
    debug: bool = typer.Option(False, "--debug", help="Show the traceback of a failure."),
) -> None:
    """Run one task against an environment and print the trajectory with its cost and latency."""
    from toolorch.core.jsonl import read_jsonl
    from toolorch.core.records import Task
    from toolorch.runtime.env import load_env
    from toolorch.runtime.episode import Runtime
    from toolorch.stages import load_profile

    with reported("run-episode", debug):
        cfg = load_profile(config, set_)
        environment = load_env(env)
        pool = [t for t in read_jsonl(tasks, Task) if t.env == environment.name]
        chosen = next((t for t in pool if task_id in (None, t.id)), None)
        if chosen is None:
            raise UsageError(f"--task-id: no task {task_id or ''} for env '{environment.name}' in {tasks}")
        chosen_policy = _policy(policy, cfg, chosen)
        runtime = Runtime.from_config(cfg)
        with environment.session() as session:
            traj = runtime.run(chosen, chosen_policy, runtime.toolbox(session))
    if json_out:
        print(traj.model_dump_json(indent=2))
        return
    print_trajectory(chosen, traj)


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
    envs_dir: Optional[Path] = typer.Option(None, help="Worlds of held-out tasks: requests may then carry a `task` "
                                                       "(eval through the gateway)."),
    seed: Optional[int] = typer.Option(None, help="Seed of the orchestrator and simulated experts "
                                                  "(default: the profile's)."),
) -> None:
    """Serve the orchestrator behind an OpenAI-compatible API (the gateway runs the whole tool loop)."""
    from toolorch.serve.main import ServeArgs, serve

    raise typer.Exit(serve(ServeArgs(orchestrator, config, tuple(set_), catalog, host, port, canary_weight,
                                     max_inflight, max_request_s, drain_s, ledger, simulated_latency_scale,
                                     log_level, envs_dir, seed)))


def _register_stages() -> None:
    for name in STAGES:
        stage = declaration(name)
        app.command(stage.command, help=stage_help(stage))(stage_command(stage))


_register_stages()

if __name__ == "__main__":
    app()
