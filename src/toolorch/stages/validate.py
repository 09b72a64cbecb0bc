"""toolorch validate --config configs/tiny.yaml

Great Expectations gates over environments, tasks and trajectories.

    python -m toolorch.stages.validate --config configs/tiny.yaml
    toolorch validate --config configs/tiny.yaml --set stages.validate.write_data_docs=false

Reads the environments, the train and held-out tasks, and passk's kept tasks and
trajectories (`--envs-dir`, `--train-path`, ...), writes report.html (one offline page: each
suite's verdict, each failed expectation's rows by task id) beside GE's Data Docs, and runs six suites (see
toolorch.synth.data_checks): environments and their tables in range
(worlds imported from benchmarks, e.g. tau2, keep their own shape and skip the ranges);
kept and held-out tasks well-formed, unique and re-verified by executing their gold
calls; category balance of the kept train tasks; train/held-out disjoint by id,
question, template (template-held-out tasks) and environment (env-held-out tasks, as
declared in stages.validate.heldout_envs or in synth-tasks' split.json beside the held-out tasks);
trajectories verified, referencing kept tasks, within call/cost/latency ranges.
Writes Data Docs HTML (`--docs-dir`, by default `stages.validate.docs_dir`) and its metrics
(each suite's success and failing expectations) whether or not the data passes, so its
outputs are not staged; then a failing suite raises ValidationFailed (the command exits 1)
listing every failing expectation by suite, name and column.
"""
from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from toolorch.core.config import Config
from toolorch.core.records import Task, is_correct
from toolorch.runtime.env import Environment, load_env
from toolorch.runtime.episode import Runtime
from toolorch.runtime.teacher import reverify
from toolorch.stages.io import finish
from toolorch.stages.stage import Input, Stage
from toolorch.synth.data_checks import (
    CheckSettings,
    ValidationFailed,
    category_share_frame,
    environment_frames,
    read_records,
    report_html,
    run_suites,
    split_frame,
    suite_expectations,
    task_frame,
    trajectory_frame,
)


def declared_heldout_envs(settings: CheckSettings, heldout_path: Path) -> list[str] | None:
    """Env-held-out environments: from the settings, else from synth-tasks' split.json beside the tasks."""
    if settings.heldout_envs is not None:
        return settings.heldout_envs
    manifest = Path(heldout_path).parent / "split.json"
    if not manifest.exists():
        return None
    envs = json.loads(manifest.read_text()).get("heldout_envs")
    if not isinstance(envs, list):
        raise ValueError(f"{manifest}: 'heldout_envs' must be a list of environment names")
    return [str(e) for e in envs]


class Reverifier:
    """Re-executes a task row's gold calls in a fresh session of its environment."""

    def __init__(self, cfg: Config, envs_dir: Path):
        self.envs_dir = envs_dir
        self.envs: dict[str, Environment | None] = {}
        self.runtime = Runtime.from_config(cfg)
        self._lock = threading.Lock()

    def __call__(self, row: dict[str, Any]) -> str | None:
        try:
            task = Task.model_validate(row)
        except ValidationError as e:
            first = e.errors()[0]
            return f"invalid task: {'.'.join(map(str, first['loc']))}: {first['msg']}"
        env = self._env(task.env)
        if env is None:
            return f"no environment '{task.env}' in {self.envs_dir}"
        return reverify(task, env, self.runtime.catalog, self.runtime.experts)

    def _env(self, name: str) -> Environment | None:
        with self._lock:
            if name not in self.envs:
                folder = self.envs_dir / name
                self.envs[name] = load_env(folder) if (folder / "env.json").exists() else None
            return self.envs[name]

    def all(self, rows: list[dict[str, Any]], workers: int) -> list[str | None]:
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(self, rows))


def parsed_tasks(rows: list[dict[str, Any]]) -> dict[str, Task]:
    """Kept tasks that parse, by id (a row that does not parse is reported by the tasks suite)."""
    tasks = {}
    for r in rows:
        try:
            task = Task.model_validate(r)
        except ValidationError:
            continue
        tasks[task.id] = task
    return tasks


def build_frames(cfg: Config, settings: CheckSettings, envs_dir: Path, train: list[dict], heldout: list[dict],
                 kept: list[dict], trajectories: list[dict]):
    envs, tables = environment_frames(envs_dir, settings.imported_generators)
    imported = set(envs.loc[envs["imported"], "env"].astype(str))
    tasks = task_frame(kept + heldout, Reverifier(cfg, envs_dir).all(kept + heldout, settings.workers), imported)
    split, train_values = split_frame(train + kept, heldout, settings.heldout_envs)
    frames = {
        "environments": envs, "env_tables": tables, "tasks": tasks,
        "task_balance": category_share_frame(kept), "split": split,
        "trajectories": trajectory_frame(trajectories, parsed_tasks(kept), is_correct),
    }
    expectations = suite_expectations(settings, sorted(envs["env"].dropna().astype(str)),
                                      sorted({str(r.get("id")) for r in kept}), train_values)
    return frames, expectations


def run(cfg: Config, envs_dir: Path, train_path: Path, heldout_path: Path, kept_tasks_path: Path,
        trajectories_path: Path, docs_dir: Path | None, metrics_path: Path) -> dict[str, Any]:
    """`docs_dir` None: `stages.validate.docs_dir`."""
    settings: CheckSettings = cfg.stages.validate
    envs_dir = Path(envs_dir)
    if not envs_dir.is_dir():
        raise FileNotFoundError(f"{envs_dir}: no environments folder")
    docs_dir = Path(docs_dir if docs_dir is not None else settings.docs_dir)
    train, heldout = read_records(train_path), read_records(heldout_path)
    kept, trajectories = read_records(kept_tasks_path), read_records(trajectories_path)
    settings = settings.model_copy(update={"heldout_envs": declared_heldout_envs(settings, heldout_path)})
    frames, expectations = build_frames(cfg, settings, envs_dir, train, heldout, kept, trajectories)
    results = run_suites(frames, expectations, docs_dir if settings.write_data_docs else None)
    docs_dir.mkdir(parents=True, exist_ok=True)
    (docs_dir / "report.html").write_text(report_html(results), encoding="utf-8")

    tasks = frames["tasks"]
    unverified = tasks[~tasks["reverifies"]]
    metrics = {
        "success": all(r.success for r in results),
        "suites": {r.name: {"success": r.success, "evaluated": r.evaluated, "failed": r.failed} for r in results},
        "failing_expectations": [name for r in results for name in r.failure_names()],
        "counts": {"envs": len(frames["environments"]), "tables": len(frames["env_tables"]),
                   "train_tasks": len(train), "kept_tasks": len(kept), "heldout_tasks": len(heldout),
                   "trajectories": len(trajectories)},
        "tasks_reverified": int(tasks["reverifies"].sum()),
        "reverify_failures": [{"id": i, "reason": why} for i, why in
                              zip(unverified["id"].head(20), unverified["reverify_error"].head(20))],
        "docs_dir": str(docs_dir) if settings.write_data_docs else None,
    }
    finish(cfg, docs_dir, metrics, metrics_path)
    if not metrics["success"]:
        raise ValidationFailed(metrics["failing_expectations"], {k: v for r in results for k, v in r.failure_rows().items()})
    return metrics


STAGE = Stage(
    "validate", CheckSettings, run,
    lambda m: f"validate: all {len(m['suites'])} suites passed; Data Docs in {m['docs_dir']}",
    inputs={"envs_dir": Input("synth_envs"), "train_path": Input("synth_tasks", "train.jsonl"),
            "heldout_path": Input("synth_tasks", "heldout.jsonl"), "kept_tasks_path": Input("passk", "tasks.jsonl"),
            "trajectories_path": Input("passk", "trajectories.jsonl")},
    outputs={"docs_dir": None},  # the profile's stages.validate.docs_dir
    reads=("episode", "experts"),
    staged=False,  # a failing check still writes its Data Docs and metrics: they are the report
)

if __name__ == "__main__":
    from toolorch.stages.command import main

    main("validate")
