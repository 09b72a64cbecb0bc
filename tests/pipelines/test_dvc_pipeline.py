"""dvc.yaml: one stage per toolorch.stages.STAGES entry, each calling its own module with flags it
accepts, tracking the code it imports, the config keys it reads and the outputs of earlier stages."""
from __future__ import annotations

import importlib
import shlex
from pathlib import Path

import pytest
import typer.main
import yaml
from import_closure import toolorch_closure

from toolorch.stages import STAGES

ROOT = Path(__file__).resolve().parents[2]
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
PARAMS_FILE = "configs/tiny.yaml"
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


def test_stage_list_matches_the_package():
    assert list(DVC["stages"]) == STAGES


@pytest.mark.parametrize("name", STAGES)
def test_cmd_is_the_stage_entry_point_with_known_flags(name):
    argv = shlex.split(DVC["stages"][name]["cmd"])
    assert argv[:3] == ["python", "-m", f"toolorch.stages.{name}"]
    assert argv[3:5] == ["--config", PARAMS_FILE]
    app = typer.Typer()
    app.command()(importlib.import_module(f"toolorch.stages.{name}").cli)
    command = typer.main.get_command(app)
    known = {opt for p in command.params if p.param_type_name == "option" for opt in p.opts}
    flags = [a for a in argv[3:] if a.startswith("--")]
    assert set(flags) <= known, f"{name}: flags {set(flags) - known} not accepted by its cli"
    ctx = command.make_context(name, argv[3:])  # values parse (paths, types) as the stage will see them
    assert ctx.params["config"] == Path(PARAMS_FILE)


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
    uncovered = sorted(str(f.relative_to(ROOT)) for f in toolorch_closure(f"toolorch.stages.{name}")
                       if not any(f == d or d in f.parents for d in deps))
    assert not uncovered, f"{name}: edits to {uncovered} would not re-run it"


def test_data_deps_come_from_earlier_stages_and_metrics_are_uncached():
    produced: list[str] = []
    for name in STAGES:
        stage = DVC["stages"][name]
        for dep in stage["deps"]:
            if not dep.startswith("src/"):
                assert any(dep == p or dep.startswith(p + "/") for p in produced), f"{name}: {dep} made by no earlier stage"
        [metrics] = stage["metrics"]
        assert metrics == {f"metrics/{name}.json": {"cache": False}}
        produced += stage["outs"] + list(metrics)


def test_plots_template_renders_offline():
    html = (ROOT / "dvc_plots" / "template.html").read_text()
    assert "{plot_divs}" in html and "{scripts}" not in html  # {scripts} would add DVC's CDN tags
    assert "<script src=" not in html
    for lib in ("vega-embed", "vegaLite", "vega"):
        assert lib in html
    assert "html_template = ../dvc_plots/template.html" in (ROOT / ".dvc" / "config").read_text()
