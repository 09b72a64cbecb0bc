"""What a KFP component does around a stage: resolve the config, call `run`, log its metrics.

The components in `components/` stay a few lines each by calling these helpers; every
helper takes plain paths (an artifact's `.path`) so it also runs, and is tested, without KFP.

    resolve_config("tiny", seed=0, model="", k=0, group_size=0, preference_mix="", overrides=[],
                   out_path="config.yaml")
    run_stage("passk", "config.yaml", metrics, envs_dir=envs.path, tasks_path=..., out_dir=...)
"""
from __future__ import annotations

import base64
import importlib
import json
import os
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from toolorch.core.config import Config, load_config, save_config

# Pipeline parameter -> config key; an empty value ("" or 0) keeps the profile's value.
PARAMETER_KEYS = {
    "model": "stages.sft.base",
    "k": "stages.passk.k",
    "group_size": "stages.grpo.group_size",
    "preference_mix": "stages.synth_tasks.preference_mix",
}


class MetricsSink(Protocol):
    """The part of kfp.dsl.Metrics a stage needs."""

    path: str

    def log_metric(self, metric: str, value: float) -> None: ...


def profile_path(profile: str) -> Path:
    """A profile name (tiny) or a YAML path; names are looked up in $TOOLORCH_CONFIG_DIR, ./configs, then the repo's configs."""
    if profile.endswith((".yaml", ".yml")):
        return Path(profile)
    dirs = [os.environ.get("TOOLORCH_CONFIG_DIR"), "configs", Path(__file__).resolve().parents[2] / "configs"]
    for d in dirs:
        if d and (Path(d) / f"{profile}.yaml").is_file():
            return Path(d) / f"{profile}.yaml"
    raise FileNotFoundError(f"no profile '{profile}' in {[str(d) for d in dirs if d]}")


def parameter_overrides(seed: int, **params: Any) -> list[str]:
    """`key=value` overrides for the pipeline parameters that were set."""
    unknown = set(params) - set(PARAMETER_KEYS)
    if unknown:
        raise ValueError(f"unknown pipeline parameters {sorted(unknown)} (known: {sorted(PARAMETER_KEYS)})")
    out = [f"seed={seed}"]
    for name, value in params.items():
        if value not in ("", 0, None):
            out.append(f"{PARAMETER_KEYS[name]}={json.dumps(value) if not isinstance(value, str) else value}")
    return out


def check_stage_settings(cfg: Config) -> None:
    """Validate every stage's section now, so a bad parameter fails the run's first step, not its fifth."""
    from toolorch.stages import STAGES

    for stage in STAGES:
        settings_of = getattr(importlib.import_module(f"toolorch.stages.{stage}"), "settings_of", None)
        if settings_of is not None:
            try:
                settings_of(cfg)
            except ValidationError as e:
                raise ValueError(f"stages.{stage}: {e}") from None


def resolve_config(profile: str, seed: int, overrides: list[str], out_path: str | Path, **params: Any) -> Path:
    """Write the fully resolved config every later step of the run reads."""
    cfg = load_config(profile_path(profile), parameter_overrides(seed, **params) + list(overrides))
    check_stage_settings(cfg)
    out_path = Path(out_path)
    return save_config(cfg, out_path.parent, out_path.name)


def flat_numbers(data: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested dicts as 'a.b.c' -> value; lists (histories) are left out."""
    if isinstance(data, bool):
        return {prefix: float(data)}
    if isinstance(data, (int, float)):
        return {prefix: float(data)}
    if isinstance(data, dict):
        out: dict[str, float] = {}
        for k, v in data.items():
            out.update(flat_numbers(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {}


def run_stage(stage: str, config_path: str | Path, metrics: MetricsSink | None = None, **paths: Any) -> dict[str, Any]:
    """Call toolorch.stages.<stage>.run with the resolved config; log its metrics to `metrics`."""
    module = importlib.import_module(f"toolorch.stages.{stage}")
    cfg = load_config(config_path)
    if metrics is not None:
        paths["metrics_path"] = metrics.path
    result = module.run(cfg, **paths)
    if metrics is not None:
        for key, value in flat_numbers(json.loads(Path(metrics.path).read_text())).items():
            metrics.log_metric(key, value)
    return result


def models_dir(out: str | Path, **checkpoints: str) -> Path:
    """A folder of named links (sft -> its artifact) in the layout eval reads (models/<name>)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, path in checkpoints.items():
        link = out / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path(path).resolve(), target_is_directory=True)
    return out


def markdown_report(eval_dir: str | Path, out_path: str | Path) -> Path:
    """report.md with every PNG it links inlined as a data URI, so the KFP UI shows it whole."""
    eval_dir, out_path = Path(eval_dir), Path(out_path)
    text = (eval_dir / "report.md").read_text(encoding="utf-8")
    for png in sorted(eval_dir.glob("*.png")):
        uri = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()
        text = text.replace(f"({png.name})", f"({uri})")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(text, encoding="utf-8")
    return out_path
