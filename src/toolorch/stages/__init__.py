"""Pipeline stages. Each module here has `run(cfg, <explicit paths>) -> dict` (its metrics),
`cli(...)` (a typer command registered on `toolorch`) and `main()` for `python -m`.
dvc.yaml and the KFP components both call `run` through these entry points.

Default layout (all overridable per call):
    data/envs/<env>/               synth-envs
    data/tasks/{train,heldout}.jsonl   synth-tasks
    data/passk/{tasks,trajectories}.jsonl  passk
    reports/data_docs/             validate
    models/{sft,grpo}/             sft, grpo
    reports/eval/                  eval
    metrics/<stage>.json           every stage
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from toolorch.core.config import Config, load_config, save_config
from toolorch.core.jsonl import write_json

STAGES = ["synth_envs", "synth_tasks", "passk", "validate", "sft", "grpo", "eval"]


def progress_bar(label: str, enabled: bool = True):
    """A rich progress bar for long work (steps, tasks); transient, so logs stay readable."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                    TimeRemainingColumn(), disable=not enabled, transient=True)


def stage_config(config: Path | None, overrides: list[str] | None) -> Config:
    return load_config(config, overrides or [])


def finish(cfg: Config, out_dir: str | Path, metrics: dict[str, Any], metrics_path: str | Path) -> dict[str, Any]:
    """Save the resolved config beside the outputs and the metrics JSON (read by dvc and KFP)."""
    save_config(cfg, out_dir)
    write_json(metrics_path, metrics)
    return metrics
