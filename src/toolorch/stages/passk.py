"""toolorch passk --config configs/tiny.yaml

A teacher makes k trajectories per task; verified ones become SFT data.

    python -m toolorch.stages.passk --config configs/tiny.yaml
    toolorch passk --config configs/tiny.yaml --set stages.passk.k=4

Reads environments (`--envs-dir`) and the training tasks (`--tasks-path`). For every
task the teacher (scripted offline, or any OpenAI-compatible model) runs k episodes
through the real episode runner and toolbox, one fresh EnvSession each; every
trajectory is verified against the task's answer. Tasks that no trajectory solves
(0/k) are dropped as unsolvable, and so are tasks whose gold calls do not re-verify
(a simulated expert reads the gold answer, so it could "solve" a broken task). Writes, in
its output folder (`--out-dir`):
    tasks.jsonl         the kept tasks
    trajectories.jsonl  successful trajectories, per task most efficient first (lowest cost,
                        then latency), the top `keep_top` (distinct ones unless `distinct: false`)
    stats.json          per-task successes and the pass@1 / pass@k tables
and its metrics (`--metrics-path`): pass@1 and pass@k overall / per category / per
difficulty, kept and dropped counts, trajectories per second.
Same config and seed -> byte-identical data files (only the throughput metric varies), whether
one process runs every task or shards split them (`run(..., shard=Shard(i, n))` writes a part,
`merge` joins the parts; toolorch.stages.shards).
"""
from __future__ import annotations

import json
import math
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from toolorch.core.config import Config
from toolorch.core.errors import RunFailed
from toolorch.core.jsonl import read_jsonl, write_json, write_jsonl
from toolorch.core.records import Task, Trajectory
from toolorch.core.seeds import stable_seed
from toolorch.runtime.env import Environment, load_envs
from toolorch.runtime.episode import Runtime
from toolorch.runtime.openai_chat import EndpointError
from toolorch.runtime.preferences import with_user
from toolorch.runtime.teacher import (
    OnlineTeacher,
    ScriptedTeacher,
    TeacherRoutes,
    online_policy,
    reverify,
)
from toolorch.stages.io import finish, progress_bar
from toolorch.stages.shards import Shard, ShardError, read_parts, write_part
from toolorch.stages.stage import Input, Stage


class PasskSettings(BaseModel):
    """`stages.passk` in a profile YAML."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(8, ge=1, le=256)  # trajectories per task
    keep_top: int = Field(4, ge=1)  # successful trajectories kept per task, most efficient first
    # True: copies of one conversation count once, so a route sampled twice cannot fill the kept
    # slots. False: every verified try is kept, so how often the teacher took a route (which
    # expert it picks for which user) reaches SFT as it is.
    distinct: bool = True
    # True: each of the k tries serves a freshly drawn user (seeded by task and try), so one
    # question is demonstrated under different preferences. With one user per question the
    # policy could tell which expert to call from the question alone and ignore the preference.
    resample_preferences: bool = False
    teacher: Literal["scripted", "openai"] = "scripted"
    routes: TeacherRoutes = TeacherRoutes()  # scripted teacher
    openai: Optional[OnlineTeacher] = None  # online teacher
    max_tasks: Optional[int] = Field(None, ge=1)  # cap for smoke runs; None = every task
    max_endpoint_failures: int = Field(3, ge=1)  # consecutive dead-endpoint episodes before giving up
    workers: int = Field(1, ge=1, le=64)  # tasks run in parallel threads (sandbox runs are subprocesses)
    progress: bool = True

    @model_validator(mode="after")
    def _online_needs_endpoint(self) -> PasskSettings:
        if self.teacher == "openai" and self.openai is None:
            raise ValueError("teacher: openai needs stages.passk.openai (base_url, model, api_key_env)")
        return self


class PasskError(RunFailed):
    """The stage cannot proceed (missing inputs, unknown envs, dead teacher endpoint)."""


# ---------------------------------------------------------------- pass@k

def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al., 2021) from n samples of which c are correct."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_table(rows: list[dict[str, Any]], k: int) -> dict[str, float]:
    if not rows:
        return {"tasks": 0, "pass@1": 0.0, f"pass@{k}": 0.0}
    p1 = sum(pass_at_k(r["n"], r["correct"], 1) for r in rows) / len(rows)
    pk = sum(pass_at_k(r["n"], r["correct"], k) for r in rows) / len(rows)
    return {"tasks": len(rows), "pass@1": round(p1, 4), f"pass@{k}": round(pk, 4)}


def grouped_tables(rows: list[dict[str, Any]], key: str, k: int) -> dict[str, dict[str, float]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[str(r[key])].append(r)
    return {g: pass_table(groups[g], k) for g in sorted(groups, key=lambda s: (len(s), s))}


def efficiency_key(traj: Trajectory) -> tuple[float, float, int]:
    return (round(traj.usage.cost_usd, 12), round(traj.usage.latency_s, 9), len(traj.turns))


def distinct(trajs: list[Trajectory]) -> list[Trajectory]:
    """The first of each group of identical conversations: a deterministic route sampled
    twice (the gold plan, say) would otherwise fill the kept slots with copies."""
    seen: set[str] = set()
    out = []
    for t in trajs:
        key = json.dumps(t.messages, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(t)
    return out


# ---------------------------------------------------------------- running

class TeacherRunner:
    """Runs one task's k episodes with the configured teacher."""

    def __init__(self, cfg: Config, settings: PasskSettings):
        self.seed = cfg.seed
        self.settings = settings
        self.runtime = Runtime.from_config(cfg)
        self.scripted = ScriptedTeacher(self.runtime.catalog, settings.routes, seed=cfg.seed)
        self.endpoint_failures = 0
        self._lock = threading.Lock()

    def trajectories(self, task: Task, env: Environment) -> list[Trajectory]:
        return [t for t in (self._one(task, env, i) for i in range(self.settings.k)) if t is not None]

    def gold_verifies(self, task: Task, env: Environment) -> bool:
        return reverify(task, env, self.runtime.catalog, self.runtime.experts) is None

    def _one(self, task: Task, env: Environment, sample: int) -> Trajectory | None:
        if self.endpoint_failures >= self.settings.max_endpoint_failures:  # another worker gave up
            raise PasskError(f"teacher endpoint failed {self.endpoint_failures} times in a row")
        if self.settings.resample_preferences:
            task = with_user(task, self.runtime.catalog, stable_seed(self.seed, "passk-user", task.id, sample))
        with env.session() as session:
            toolbox = self.runtime.toolbox(session)
            if self.settings.teacher == "scripted":
                policy = self.scripted.policy(task, sample, {s.name for s in toolbox.specs})
            else:
                assert self.settings.openai is not None
                policy = online_policy(self.settings.openai, self.seed, sample)
            try:
                traj = self.runtime.run(task, policy, toolbox)
            except EndpointError as e:
                with self._lock:
                    self.endpoint_failures += 1
                    failures = self.endpoint_failures
                if failures >= self.settings.max_endpoint_failures:
                    raise PasskError(f"teacher endpoint failed {failures} times in a row: {e}") from None
                return None  # counts as a failed sample
        with self._lock:
            self.endpoint_failures = 0
        return traj


TaskResult = tuple[Task, list[Trajectory], dict[str, Any]]


def run_task(runner: TeacherRunner, task: Task, env: Environment) -> TaskResult:
    """One task's kept trajectories (most efficient first) and its stats row."""
    trajs = runner.trajectories(task, env)
    good = sorted((t for t in trajs if t.correct), key=efficiency_key)
    verifies = runner.gold_verifies(task, env)
    row = {"task_id": task.id, "category": task.category, "difficulty": task.difficulty,
           "n": runner.settings.k, "correct": len(good), "gold_verifies": verifies,
           "routes": _route_counts(trajs, good)}
    kept = distinct(good) if runner.settings.distinct else good
    return task, kept[: runner.settings.keep_top] if verifies else [], row


def run_all(cfg: Config, settings: PasskSettings, tasks: list[Task], envs: dict[str, Environment]) -> list[TaskResult]:
    """Every task's result, in task order whatever the number of workers (seeds are per task)."""
    runner = TeacherRunner(cfg, settings)
    results: list[TaskResult] = []
    with progress_bar("passk", settings.progress) as bar, ThreadPoolExecutor(settings.workers) as pool:
        job = bar.add_task("passk", total=len(tasks), info="")
        for result in pool.map(lambda t: run_task(runner, t, envs[t.env]), tasks):
            results.append(result)
            bar.advance(job)
    return results


def _route_counts(trajs: list[Trajectory], good: list[Trajectory]) -> dict[str, list[int]]:
    """policy name -> [tried, correct]: which routes the teacher took, and which worked."""
    counts: dict[str, list[int]] = {}
    for t in trajs:
        counts.setdefault(t.policy, [0, 0])[0] += 1
    for t in good:
        counts[t.policy][1] += 1
    return dict(sorted(counts.items()))


def summarize(rows: list[dict[str, Any]], k: int) -> dict[str, Any]:
    unsolved = sum(1 for r in rows if r["correct"] == 0)
    gold_fails = sum(1 for r in rows if r["correct"] > 0 and not r["gold_verifies"])
    routes: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        for name, (tried, ok) in r["routes"].items():
            routes[name][0] += tried
            routes[name][1] += ok
    return {
        "k": k,
        "tasks_in": len(rows),
        "tasks_kept": len(rows) - unsolved - gold_fails,
        "tasks_dropped": unsolved + gold_fails,
        "tasks_dropped_unsolved": unsolved,  # 0/k: broken or beyond the teacher
        "tasks_dropped_gold_fails": gold_fails,  # solved by someone, but the ground truth disagrees
        "overall": pass_table(rows, k),
        "by_category": grouped_tables(rows, "category", k),
        "by_difficulty": grouped_tables(rows, "difficulty", k),
        "route_success": {n: round(ok / tried, 4) if tried else 0.0 for n, (tried, ok) in sorted(routes.items())},
    }


def run(cfg: Config, envs_dir: Path, tasks_path: Path, out_dir: Path, metrics_path: Path,
        shard: Shard | None = None) -> dict[str, Any]:
    """The stage; with `shard`, only that shard's tasks, written as a part for `merge`."""
    settings: PasskSettings = cfg.stages.passk
    envs_dir, tasks_path, out_dir = Path(envs_dir), Path(tasks_path), Path(out_dir)
    tasks = read_jsonl(tasks_path, Task)
    if settings.max_tasks is not None:
        tasks = tasks[: settings.max_tasks]
    if not tasks:
        raise PasskError(f"{tasks_path} holds no tasks")
    positions = shard.positions(tasks, lambda t: t.id) if shard else list(range(len(tasks)))
    mine = [tasks[i] for i in positions]
    envs = load_envs(envs_dir, {t.env for t in mine})
    start = time.perf_counter()
    results = run_all(cfg, settings, mine, envs)
    elapsed = time.perf_counter() - start
    if shard is not None:
        records = ((i, {"task": task.model_dump(mode="json"), "kept": [t.model_dump(mode="json") for t in good],
                        "row": row}) for i, (task, good, row) in zip(positions, results))
        meta = write_part(out_dir, shard, "passk", records, len(tasks), elapsed)
        write_json(metrics_path, meta)
        return meta
    return write_outputs(cfg, settings, results, elapsed, out_dir, metrics_path)


def merge(cfg: Config, part_dirs: list[Path], out_dir: Path, metrics_path: Path) -> dict[str, Any]:
    """The shards' parts as one run's outputs, byte for byte (the throughput counts the slowest shard)."""
    records, metas = read_parts(part_dirs, "passk")
    if len(records) != metas[0]["total"]:
        raise ShardError(f"passk: the parts hold {len(records)} of {metas[0]['total']} tasks")
    results = [(Task.model_validate(r["task"]), [Trajectory.model_validate(t) for t in r["kept"]], r["row"])
               for r in records]
    return write_outputs(cfg, cfg.stages.passk, results, max(m["seconds"] for m in metas), Path(out_dir),
                         metrics_path)


def write_outputs(cfg: Config, settings: PasskSettings, results: list[TaskResult], elapsed: float, out_dir: Path,
                  metrics_path: Path) -> dict[str, Any]:
    rows = [row for _, _, row in results]
    write_jsonl(out_dir / "tasks.jsonl", (task for task, good, _ in results if good))
    n_traj = write_jsonl(out_dir / "trajectories.jsonl", (t for _, good, _ in results for t in good))
    stats = summarize(rows, settings.k)
    write_json(out_dir / "stats.json", {**stats, "teacher": settings.teacher, "tasks": rows})
    metrics = {
        **{key: stats[key] for key in ("k", "tasks_in", "tasks_kept", "tasks_dropped", "tasks_dropped_unsolved",
                                            "tasks_dropped_gold_fails", "route_success")},
        "pass@1": stats["overall"]["pass@1"],
        f"pass@{settings.k}": stats["overall"][f"pass@{settings.k}"],
        "by_category": stats["by_category"],
        "by_difficulty": stats["by_difficulty"],
        "trajectories_run": len(results) * settings.k,
        "trajectories_kept": n_traj,
        "trajectories_per_s": round(len(results) * settings.k / max(elapsed, 1e-9), 2),
        "teacher": settings.teacher,
    }
    return finish(cfg, out_dir, metrics, metrics_path)


def summary(m: dict[str, Any]) -> str:
    k = m["k"]
    return (f"passk: kept {m['tasks_kept']}/{m['tasks_in']} tasks, pass@1={m['pass@1']:.3f} "
            f"pass@{k}={m[f'pass@{k}']:.3f}, {m['trajectories_kept']} trajectories")


STAGE = Stage(
    "passk", PasskSettings, run, summary,
    inputs={"envs_dir": Input("synth_envs"), "tasks_path": Input("synth_tasks", "train.jsonl")},
    outputs={"out_dir": "data/passk"},
    reads=("episode", "experts"),
    merge=merge,
)

if __name__ == "__main__":
    from toolorch.stages.command import main

    main("passk")
