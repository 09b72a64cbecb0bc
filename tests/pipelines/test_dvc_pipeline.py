"""dvc.yaml: generated from the stage declarations (and fresh), one stage per toolorch.stages.STAGES
entry, each calling its own module with flags it accepts, tracking the code it imports, the config
keys it reads and the outputs of earlier stages."""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import typer.main
import yaml

from toolorch.ops.dvc_yaml import PARAMS_FILE, render, source_files
from toolorch.stages import STAGES, declaration, default_paths
from toolorch.stages.command import stage_command

ROOT = Path(__file__).resolve().parents[2]
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
PROFILE = yaml.safe_load((ROOT / PARAMS_FILE).read_text())


def _stage_params(stage: dict) -> list[str]:
    [entry] = stage["params"]
    return entry[PARAMS_FILE]


def _lookup(tree: dict, dotted: str) -> bool:
    for key in dotted.split("."):
        if not isinstance(tree, dict) or key not in tree:
            return False
        tree = tree[key]
    return True


def test_committed_dvc_yaml_is_generated_from_the_declarations():
    assert (ROOT / "dvc.yaml").read_text() == render(), "dvc.yaml is stale: run `python -m toolorch.ops.dvc_yaml`"


def test_stage_list_matches_the_package():
    assert list(DVC["stages"]) == STAGES


@pytest.mark.parametrize("name", STAGES)
def test_cmd_is_the_stage_entry_point_and_its_command_parses_it(name):
    argv = shlex.split(DVC["stages"][name]["cmd"])
    assert argv[:3] == ["python", "-m", f"toolorch.stages.{name}"]
    assert argv[3:5] == ["--config", PARAMS_FILE]
    app = typer.Typer()
    app.command()(stage_command(declaration(name)))
    ctx = typer.main.get_command(app).make_context(name, argv[3:])  # values parse as the stage will see them
    assert ctx.params["config"] == Path(PARAMS_FILE)
    assert {k: ctx.params[k] for k in default_paths(declaration(name))} == default_paths(declaration(name))


@pytest.mark.parametrize("name", STAGES)
def test_params_exist_and_cover_the_stage_section(name):
    params = _stage_params(DVC["stages"][name])
    missing = [p for p in params if not _lookup(PROFILE, p)]
    assert not missing, f"{name}: {missing} not in {PARAMS_FILE} (dvc repro would stop)"
    assert "seed" in params
    if name in PROFILE.get("stages", {}):
        assert f"stages.{name}" in params


def test_every_profile_key_is_tracked_by_some_stage():
    tracked = {p.split(".")[0] for s in DVC["stages"].values() for p in _stage_params(s)}
    assert set(PROFILE) - {"profile", "data_dir"} <= tracked


@pytest.mark.parametrize("name", STAGES)
def test_code_deps_cover_every_imported_module(name):
    deps = [ROOT / d for d in DVC["stages"][name]["deps"]]
    uncovered = sorted(str(f.relative_to(ROOT)) for f in source_files(f"toolorch.stages.{name}")
                       if not any(f == d or d in f.parents for d in deps))
    assert not uncovered, f"{name}: edits to {uncovered} would not re-run it"
    assert ROOT / "src/toolorch/stages" / f"{name}.py" in deps


def test_a_data_stage_does_not_track_the_training_code():
    """Stages are loaded by name, so synth-envs' deps hold the code it runs, not every stage's."""
    deps = DVC["stages"]["synth_envs"]["deps"]
    assert not any(d.startswith(("src/toolorch/train", "src/toolorch/eval", "src/toolorch/stages/grpo")) for d in deps)


def test_data_deps_come_from_earlier_stages_and_metrics_are_uncached():
    produced: list[str] = []
    for name in STAGES:
        stage = DVC["stages"][name]
        for dep in stage["deps"]:
            if not dep.startswith("src/"):
                assert any(dep == p or dep.startswith(p + "/") for p in produced), f"{name}: {dep} made by no earlier stage"
        [metrics] = stage["metrics"]  # the headline; the whole metrics JSON is an uncached out
        assert metrics == {f"metrics/headline/{name}.json": {"cache": False}}
        assert {f"metrics/{name}.json": {"cache": False}} in stage["outs"]
        produced += [p for out in stage["outs"] for p in ([out] if isinstance(out, str) else out)] + list(metrics)


def test_plots_template_renders_offline():
    html = (ROOT / "dvc_plots" / "template.html").read_text()
    assert "{plot_divs}" in html and "{scripts}" not in html  # {scripts} would add DVC's CDN tags
    assert "<script src=" not in html
    for lib in ("vega-embed", "vegaLite", "vega"):
        assert lib in html
    assert "html_template = ../dvc_plots/template.html" in (ROOT / ".dvc" / "config").read_text()
