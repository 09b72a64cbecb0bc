"""The stage declarations are the one place a stage's paths and settings are written: every module
declares itself, its docstring opens with its command, and no default path is written twice."""
from __future__ import annotations

import inspect
import re
import subprocess
from pathlib import Path

import pytest

from toolorch.core.config import Config
from toolorch.stages import (
    STAGES,
    as_profile,
    declaration,
    default_paths,
    load_profile,
    profile_schema,
)

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("name", STAGES)
def test_each_stage_declares_itself_and_its_run_takes_exactly_its_paths(name):
    stage = declaration(name)
    assert stage.name == name and stage.settings is profile_schema().model_fields["stages"].annotation.model_fields[
        name].annotation
    params = inspect.signature(stage.run).parameters
    required = [p for p, v in params.items() if v.default is inspect.Parameter.empty][1:]  # after cfg
    assert set(required) == set(default_paths(stage)), "every run() path has a declared default, and no more"
    assert set(stage.options) <= set(params)
    for upstream in {s for i in stage.inputs.values() for s in i.stages} | set(stage.after):
        assert STAGES.index(upstream) < STAGES.index(name), f"{name} reads {upstream}, which runs later"


@pytest.mark.parametrize("name", STAGES)
def test_the_docstring_opens_with_the_exact_command(name):
    doc = inspect.getmodule(declaration(name).run).__doc__
    assert doc.splitlines()[0] == f"toolorch {declaration(name).command} --config configs/tiny.yaml"
    assert f"python -m toolorch.stages.{name} --config configs/tiny.yaml" in doc


@pytest.mark.parametrize("name", STAGES)
def test_each_default_output_path_is_written_once_in_src(name):
    stage = declaration(name)
    for keyword in stage.outputs:
        path = str(stage.output_default(keyword))
        # as a string literal in code: usage examples in docstrings may name it
        found = subprocess.run(["grep", "-rnE", "--include=*.py", f"[\"']{path}[\"']", "src"], cwd=ROOT,
                               capture_output=True, text=True).stdout.splitlines()
        assert len(found) == 1, f"{path} written {len(found)} times in src/:\n" + "\n".join(found)
    found = subprocess.run(["grep", "-rn", f"metrics/{name}.json", "src"], cwd=ROOT, capture_output=True, text=True)
    assert found.stdout == "", "metrics paths derive from the stage name"


def test_every_stage_section_is_typed_and_every_default_exists_once():
    cfg = load_profile(ROOT / "configs" / "tiny.yaml")
    for name in STAGES:
        assert isinstance(getattr(cfg.stages, name), declaration(name).settings)
    # the grpo stage hands train/ its own settings: no field is copied into another model
    grpo = declaration("grpo").settings
    from toolorch.train.grpo import StepConfig
    from toolorch.train.loop import LoopConfig

    assert issubclass(grpo, LoopConfig) and issubclass(LoopConfig, StepConfig)
    assert not [f for f in grpo.model_fields if f in grpo.__dict__.get("__annotations__", {})
                and f in LoopConfig.model_fields], "a LoopConfig field redeclared in GRPOSettings"
    sources = "\n".join((ROOT / "src/toolorch" / f).read_text() for f in ("stages/grpo.py", "stages/sft.py"))
    assert not re.search(r"\b(clip_low|group_size|rows_per_micro|warmup_steps)\s*[:=]", sources)


def test_a_stage_section_may_not_set_its_own_seed():
    with pytest.raises(ValueError, match="stages use the profile's top-level `seed`"):
        load_profile(None, ["stages.grpo.seed=3"])
    assert as_profile(Config(seed=5)).stages.grpo.seed == 0  # the stage hands over cfg.seed when it runs
