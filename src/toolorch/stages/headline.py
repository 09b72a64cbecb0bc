"""The headline numbers of each stage: what `dvc metrics show` and the KFP run's Metrics print.

    headline("sft", metrics)                    # {"loss": 0.0027, "tok/s": 5120.3}
    write_headline("sft", metrics, metrics_path)   # metrics/<stage>.json -> metrics/headline/<stage>.json

A stage's metrics JSON holds everything (histories, per-category tables: tens of KB); the
headline keeps about a dozen numbers over the whole pipeline, under short names shared across
stages, so `dvc metrics show` is one narrow table (a row per stage) and `dvc exp show` compares
runs on the numbers that matter.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from toolorch.core.jsonl import write_json

# stage -> headline name -> dotted key in the stage's metrics
HEADLINES: dict[str, dict[str, str]] = {
    "synth_envs": {"envs": "envs"},
    "synth_tasks": {"tasks": "tasks"},
    "passk": {"pass@1": "pass@1", "kept": "tasks_kept"},
    "validate": {"valid": "success"},
    "sft": {"loss": "loss_last", "tok/s": "trained_tokens_per_s"},
    "grpo": {"reward": "last.reward/total", "margin": "heldout.reward_margin", "tok/s": "last.rollout_tokens_per_s"},
    "eval": {"accuracy": "policies.grpo.accuracy", "cost_usd": "policies.grpo.cost_usd"},
    "deploy": {"deployed": "deployed"},
}


def lookup(metrics: dict[str, Any], dotted: str) -> Any:
    """metrics["a"]["b"] for "a.b" (None if absent)."""
    value: Any = metrics
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def headline(stage: str, metrics: dict[str, Any]) -> dict[str, int | float]:
    """The stage's headline numbers present in `metrics` (a run stopped early has fewer), rounded for a narrow table."""
    out = {}
    for name, key in HEADLINES.get(stage, {}).items():
        value = lookup(metrics, key)
        if isinstance(value, (bool, int)):
            out[name] = int(value)
        elif isinstance(value, float):
            out[name] = float(f"{value:.4g}")
    return out


def headline_path(stage: str, metrics_path: str | Path) -> Path:
    return Path(metrics_path).parent / "headline" / f"{stage}.json"


def write_headline(stage: str, metrics: dict[str, Any], metrics_path: str | Path) -> Path:
    path = headline_path(stage, metrics_path)
    write_json(path, headline(stage, metrics))
    return path
