"""A stage's declaration: its name, settings, inputs, outputs and metrics, written once.

    STAGE = Stage("score", ScoreSettings, run, summary,   # at the bottom of toolorch/stages/score.py
                  inputs={"envs_dir": Input("synth_envs"), "tasks_path": Input("synth_tasks", "train.jsonl")},
                  outputs={"out_dir": "data/scores"}, reads=("episode", "experts"))

Each stage module ends with one. Everything else is derived from the declarations: the
profile's schema and the `toolorch <stage>` / `python -m toolorch.stages.<stage>` commands
(toolorch.stages), dvc.yaml (toolorch.ops.dvc_yaml), the paths the KFP components hand a
stage (toolorch.ops.kfp_io) and the PyTorchJob's flags (toolorch.ops.pytorchjob). A path's
`run()` keyword is its command-line flag: `tasks_path` is `--tasks-path`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, model_validator

METRICS_DIR = Path("metrics")


def flag(keyword: str) -> str:
    """The command-line flag of a run() keyword."""
    return "--" + keyword.replace("_", "-")


@dataclass(frozen=True)
class Input:
    """What a stage reads from an earlier one: that stage's output folder, or `file` inside it.
    With several stages: a folder holding each one's output under the stage's name."""

    stage: str | tuple[str, ...]
    file: str = ""

    @property
    def stages(self) -> tuple[str, ...]:
        return (self.stage,) if isinstance(self.stage, str) else self.stage


@dataclass(frozen=True)
class Stage:
    name: str  # the module toolorch.stages.<name>, the dvc stage and the section stages.<name>
    settings: type[BaseModel]  # its section of the profile
    run: Callable[..., dict[str, Any]]  # run(cfg, **paths) -> metrics
    summary: Callable[[dict[str, Any]], str]  # what the command prints after a run
    outputs: dict[str, str | None]  # run() keyword -> default folder; None: the settings field of that name
    inputs: dict[str, Input] = field(default_factory=dict)  # run() keyword -> what it reads
    reads: tuple[str, ...] = ()  # profile sections it reads besides `seed` and its own
    after: tuple[str, ...] = ()  # stages that must succeed first although it reads none of their outputs
    options: dict[str, str] = field(default_factory=dict)  # further run() keywords on the command line -> help
    staged: bool = True  # outputs built aside and moved into place only when the run succeeds
    persist: bool = False  # dvc keeps the output folder across re-runs (it holds state a re-run resumes from)
    dvc_options: tuple[str, ...] = ()  # flags dvc's command adds to the stage's own
    # merge(cfg, part_dirs, <output keyword>=..., metrics_path=...): a stage whose run() takes
    # `shard` (toolorch.stages.shards) writes parts that this merges into one run's outputs
    merge: Callable[..., dict[str, Any]] | None = None

    @property
    def command(self) -> str:
        return self.name.replace("_", "-")

    @property
    def metrics_path(self) -> Path:
        return METRICS_DIR / f"{self.name}.json"

    @property
    def output(self) -> str:
        """The run() keyword of its output folder (what later stages' Inputs name)."""
        [keyword] = self.outputs
        return keyword

    def output_default(self, keyword: str) -> Path:
        default = self.outputs[keyword]
        return Path(default if default is not None else self.settings.model_fields[keyword].default)


class SeededByProfile(BaseModel):
    """Settings that inherit a train model's `seed`: that seed is the profile's, which the stage
    hands over, so a stage section may not set its own."""

    @model_validator(mode="after")
    def _seed_comes_from_the_profile(self) -> SeededByProfile:
        if "seed" in self.model_fields_set:
            raise ValueError("seed: stages use the profile's top-level `seed`; set that one instead")
        return self
