"""What a KFP component does around a stage: resolve the config, call `run`, log its headline metrics.

The components in `components/` stay a few lines each by calling these helpers; every
helper takes plain paths (an artifact's `.path`) so it also runs, and is tested, without KFP.

    resolve_config("tiny", seed=0, overrides=[], out_path="config.yaml", k=0, group_size=0)
    run_stage("passk", "config.yaml", metrics, {"synth_envs": envs.path, "synth_tasks": tasks.path}, passk.path)
    run_shard("passk", "config.yaml", metrics, {...}, part.path, shard=1, shards=3)   # one shard's part
    merge_shards("passk", "config.yaml", metrics, [p.path for p in parts], passk.path)  # the stage's output
    markdown_report(Path(model.path) / "curves", curves.path)   # sft, grpo: the training curves as Markdown

A component names the artifacts of the stages it reads by stage name; which file of an
artifact becomes which run() keyword comes from the stage's declaration (`stage_paths`).
"""
from __future__ import annotations

import base64
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping, Protocol

from toolorch.core.config import save_config
from toolorch.core.progress import configure_logging
from toolorch.stages import declaration, load_profile
from toolorch.stages.shards import Shard, fail_once_if_asked
from toolorch.stages.headline import headline

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
    dirs = [os.environ.get("TOOLORCH_CONFIG_DIR"), "configs", Path(__file__).resolve().parents[3] / "configs"]  # src/toolorch/ops/
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


def resolve_config(profile: str, seed: int, overrides: list[str], out_path: str | Path, **params: Any) -> Path:
    """Write the fully resolved config every later step of the run reads (checked whole first,
    so a bad parameter fails the run's first step, not its fifth)."""
    cfg = load_profile(profile_path(profile), parameter_overrides(seed, **params) + list(overrides))
    out_path = Path(out_path)
    return save_config(cfg, out_path.parent, out_path.name)


def with_overrides(config_path: str | Path, overrides: list[str], out_dir: str | Path) -> Path:
    """The resolved config with `key=value` overrides applied, written into `out_dir`."""
    return save_config(load_profile(config_path, overrides), Path(out_dir), "config.yaml")


def log_headline(stage: str, metrics: MetricsSink) -> dict[str, float]:
    """Log the stage's headline numbers (toolorch.stages.headline: a few, as `dvc metrics show`
    prints) from the metrics JSON the stage wrote at `metrics.path`; the whole JSON stays there."""
    numbers = headline(stage, json.loads(Path(metrics.path).read_text()))
    for key, value in numbers.items():
        metrics.log_metric(key, float(value))
    return numbers


def stage_paths(stage: str, upstream: Mapping[str, str | Path], output: str | Path, metrics_path: str | Path,
                scratch: str | Path) -> dict[str, Path]:
    """The run() keywords of `stage` from the artifacts of the stages it reads (`upstream`, by
    stage name) and its own output artifact, as its declaration lays them out."""
    decl = declaration(stage)
    read = {s for inp in decl.inputs.values() for s in inp.stages}
    if set(upstream) != read:
        raise ValueError(f"{stage} reads the outputs of {sorted(read)}, was given {sorted(upstream)}")
    paths: dict[str, Path] = {}
    for keyword, inp in decl.inputs.items():
        if len(inp.stages) > 1:
            paths[keyword] = models_dir(Path(scratch) / keyword, **{s: str(upstream[s]) for s in inp.stages})
        else:
            paths[keyword] = Path(upstream[inp.stage]) / inp.file if inp.file else Path(upstream[inp.stage])
    return {**paths, decl.output: Path(output), "metrics_path": Path(metrics_path)}


def fetch_base(base: str) -> None:
    """A model store base held in S3 (the paper's Qwen3-8B) comes into this pod's cache before sft
    reads it; `tiny`, folders and wheel models are left to the stage."""
    from toolorch.runtime.model_store import MODELS, resolve_model

    if base in MODELS and MODELS[base].s3:
        from toolorch.ops.storage import S3Store

        resolve_model(base, pull=lambda url, folder: S3Store().pull(url, folder))


def run_stage(stage: str, config_path: str | Path, metrics: MetricsSink, upstream: Mapping[str, str | Path],
              output: str | Path, **options: Any) -> dict[str, Any]:
    """Run the stage on the resolved config and the artifacts; log its headline to `metrics`."""
    result = _execute(stage, config_path, metrics.path, upstream, output, **options)
    log_headline(stage, metrics)
    return result


def _execute(stage: str, config_path: str | Path, metrics_path: str | Path, upstream: Mapping[str, str | Path],
             output: str | Path, **options: Any) -> dict[str, Any]:
    configure_logging()
    cfg = load_profile(config_path)
    if stage == "sft":
        fetch_base(cfg.stages.sft.base)
    with tempfile.TemporaryDirectory() as scratch:
        return declaration(stage).run(cfg, **stage_paths(stage, upstream, output, metrics_path, scratch), **options)


def run_shard(stage: str, config_path: str | Path, metrics: MetricsSink, upstream: Mapping[str, str | Path],
              part: str | Path, shard: int, shards: int) -> dict[str, Any]:
    """One shard of a sharded stage (toolorch.stages.shards): its part of the work, as a part
    artifact; `metrics` gets the part's own numbers (the headline is the merge's)."""
    if declaration(stage).merge is None:
        raise ValueError(f"stage {stage} does not run in shards")
    which = Shard(shard, shards)
    fail_once_if_asked(stage, which)
    meta = _execute(stage, config_path, metrics.path, upstream, part, shard=which)
    for key in ("shard", "shards", "records", "total"):
        metrics.log_metric(key, float(meta[key]))
    return meta


def merge_shards(stage: str, config_path: str | Path, metrics: MetricsSink, parts: list[str | Path],
                 output: str | Path) -> dict[str, Any]:
    """The stage's output artifact from its shards' parts, as one process would have written it."""
    merge = declaration(stage).merge
    if merge is None:
        raise ValueError(f"stage {stage} does not run in shards")
    result = merge(load_profile(config_path), [Path(p) for p in parts],
                   **{declaration(stage).output: Path(output), "metrics_path": Path(metrics.path)})
    log_headline(stage, metrics)
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


def markdown_report(folder: str | Path, out_path: str | Path) -> Path:
    """A folder's report.md (eval's report, a training stage's curves/) with every PNG it links
    inlined as a data URI, so the KFP UI shows it whole."""
    folder, out_path = Path(folder), Path(out_path)
    text = (folder / "report.md").read_text(encoding="utf-8")
    for png in sorted(folder.glob("*.png")):
        uri = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()
        text = text.replace(f"({png.name})", f"({uri})")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(text, encoding="utf-8")
    return out_path
