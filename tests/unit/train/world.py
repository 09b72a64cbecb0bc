"""Builders for a small training world: the shared library environment, tasks over it, and verified
trajectories made by the real episode runner (gold plans and expert delegations)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from toolorch.core.catalog import ExpertConfig, SimulatedProfile
from toolorch.core.config import Config
from toolorch.core.jsonl import write_jsonl
from toolorch.core.records import Preference, Task, ToolCall, Trajectory
from toolorch.runtime.episode import run_episode
from toolorch.runtime.policies import AskToolPolicy, PlanPolicy
from toolorch.runtime.tools import Toolbox

TITLES = {"Engines": "Ada Byron", "Notes": "Ada Byron", "Proofs": "Kurt Vonn"}
YEARS = {1843: "Engines", 1842: "Notes", 1931: "Proofs"}


def world_config() -> Config:
    return Config(experts=[
        ExpertConfig(name="frontier", price="frontier",
                     simulated=SimulatedProfile(default_accuracy=1.0, tokens_out_mean=500, latency_s_mean=20)),
        ExpertConfig(name="mini", price="mini",
                     simulated=SimulatedProfile(default_accuracy=0.0, tokens_out_mean=200, latency_s_mean=5)),
    ], stages={})


def world_tasks() -> list[Task]:
    tasks = []
    prefs = [Preference(accuracy=1.0), Preference(accuracy=1.0, cost=2.0)]
    for i, (title, author) in enumerate(TITLES.items()):
        tasks.append(Task(id=f"author-{title}", env="minilib", question=f"Who wrote {title}?", answer=author,
                          category="multi_hop", difficulty=2, preference=prefs[i % 2],
                          gold_calls=[ToolCall(name="book_author_id", arguments={"title": title}),
                                      ToolCall(name="author_name", arguments={"author_id": "$prev"})]))
    for i, (year, title) in enumerate(YEARS.items()):
        tasks.append(Task(id=f"year-{year}", env="minilib", question=f"Which book came out in {year}?",
                          answer=title, preference=prefs[(i + 1) % 2],
                          gold_calls=[ToolCall(name="books_by_year", arguments={"year": year})]))
    tasks.append(Task(id="copies", env="minilib", question="How many copies are there in total?", answer="10",
                      answer_type="number", category="aggregate",
                      gold_calls=[ToolCall(name="total_copies", arguments={})]))
    return tasks


@dataclass
class World:
    root: Path
    envs_dir: Path
    tasks_path: Path
    trajectories_path: Path
    tasks: list[Task]
    trajectories: list[Trajectory]
    cfg: Config


def make_trajectories(env, tasks: list[Task], cfg: Config) -> list[Trajectory]:
    out = []
    for task in tasks:
        for policy in (PlanPolicy(task.gold_calls, name="gold"), AskToolPolicy("ask_frontier")):
            with env.session() as session:
                out.append(run_episode(task, policy, Toolbox(cfg.catalog(), session, with_code=False), cfg.episode.limits()))
    return out


def build_world(root: Path, env) -> World:
    """Tasks and verified trajectories over `env` (its folder must be <envs_dir>/<name>), written under root."""
    cfg = world_config()
    tasks = world_tasks()
    trajs = make_trajectories(env, tasks, cfg)
    assert all(t.correct for t in trajs)
    write_jsonl(root / "tasks.jsonl", tasks)
    write_jsonl(root / "trajectories.jsonl", trajs)
    return World(root, env.db_path.parent.parent, root / "tasks.jsonl", root / "trajectories.jsonl", tasks, trajs, cfg)
