"""Pipeline stages, in order, and the profile they read, checked whole.

    cfg = load_profile("configs/tiny.yaml", ["stages.passk.k=4"])   # every section typed
    cfg = as_profile(Config(stages={"passk": {"k": 4}}))            # the same, for a Config built in code
    declaration("passk").run(cfg, **default_paths(declaration("passk")))

Each module `toolorch.stages.<name>` has `run(cfg, <paths>) -> metrics` and ends with its
declaration, `STAGE` (toolorch.stages.stage): settings, inputs, outputs, what it prints.
Modules are imported by name here (not at the top), so a stage's import closure, and so
its dvc dependencies, hold only the code it runs.
"""
from __future__ import annotations

import importlib
import warnings
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import Field, create_model

from toolorch.core.config import Config, StageSections, load_config, resolved
from toolorch.core.errors import UsageError
from toolorch.stages.stage import Input, Stage

STAGES = ["synth_envs", "synth_tasks", "passk", "validate", "sft", "grpo", "eval", "deploy"]


def declaration(name: str) -> Stage:
    if name not in STAGES:
        raise UsageError(f"no stage '{name}' (stages: {', '.join(STAGES)})")
    return importlib.import_module(f"toolorch.stages.{name}").STAGE


@cache
def profile_schema() -> type[Config]:
    """Config with `stages` typed: one field per stage, its settings model, its defaults."""
    sections: dict[str, Any] = {}
    for name in STAGES:
        settings = declaration(name).settings
        sections[name] = (settings, Field(default_factory=settings))
    with warnings.catch_warnings():  # a section named `validate` shadows pydantic's deprecated classmethod
        warnings.filterwarnings("ignore", message='Field name "validate"')
        stage_settings = create_model("StageSettings", __base__=StageSections, **sections)
    return create_model("Profile", __base__=Config, stages=(stage_settings, Field(default_factory=stage_settings)))


def load_profile(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """A profile YAML and `key=value` overrides, every section checked before any work
    (ConfigError names the file, line and key)."""
    return load_config(path, overrides, schema=profile_schema())


def as_profile(cfg: Config) -> Config:
    """A Config built in code (stage sections as plain dicts) checked and typed like a loaded profile."""
    return profile_schema().model_validate(resolved(cfg))


def input_default(inp: Input) -> Path:
    """Where an input is by default: the producing stage's output (folder or file in it); for
    several stages, the folder holding all their outputs (each named after its stage)."""
    outputs = [declaration(s).output_default(declaration(s).output) for s in inp.stages]
    if len(outputs) == 1:
        return outputs[0] / inp.file if inp.file else outputs[0]
    parents = {p.parent for p in outputs}
    if len(parents) != 1 or any(p.name != s for p, s in zip(outputs, inp.stages)):
        raise ValueError(f"{inp.stages}: outputs {outputs} are not <one folder>/<stage name>")
    return parents.pop()


def default_paths(stage: Stage) -> dict[str, Path]:
    """Every path keyword of the stage's run() with its default: inputs, outputs, metrics."""
    paths = {k: input_default(i) for k, i in stage.inputs.items()}
    paths.update({k: stage.output_default(k) for k in stage.outputs})
    return {**paths, "metrics_path": stage.metrics_path}
