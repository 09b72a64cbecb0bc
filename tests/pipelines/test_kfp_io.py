"""toolorch.ops.kfp_io: config resolution from pipeline parameters, metrics logging, eval report."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from kfp_sink import MetricsSink

from toolorch.core.config import ConfigError
from toolorch.ops.kfp_io import (
    log_headline,
    markdown_report,
    models_dir,
    parameter_overrides,
    profile_path,
    resolve_config,
    run_stage,
    stage_paths,
)
from toolorch.stages import STAGES, declaration, default_paths, load_profile

ROOT = Path(__file__).resolve().parents[2]


def test_empty_parameters_keep_the_profile():
    assert parameter_overrides(5, model="", k=0, group_size=0, preference_mix="") == ["seed=5"]
    assert parameter_overrides(1, k=4, group_size=6, model="models/base") == [
        "seed=1", "stages.passk.k=4", "stages.grpo.group_size=6", "stages.sft.base=models/base"]
    with pytest.raises(ValueError, match="unknown pipeline parameters"):
        parameter_overrides(0, lr=0.1)


def test_resolved_config_is_what_the_stages_load(tmp_path):
    out = resolve_config("tiny", 7, ["stages.passk.keep_top=2"], tmp_path / "config.yaml", k=3, group_size=0)
    cfg = load_profile(out)
    assert cfg.seed == 7 and cfg.stages.passk.k == 3 and cfg.stages.passk.keep_top == 2
    profile = yaml.safe_load((ROOT / "configs" / "tiny.yaml").read_text())
    assert cfg.stages.grpo.group_size == profile["stages"]["grpo"]["group_size"]
    assert load_profile(out) == cfg  # loading the resolved file again changes nothing


def test_bad_stage_setting_fails_at_resolution(tmp_path):
    with pytest.raises(ConfigError, match="--set stages.passk.k: Input should be greater than or equal to 1"):
        resolve_config("tiny", 0, [], tmp_path / "config.yaml", k=-3)
    with pytest.raises(ConfigError, match="--set stages.eval.max_taks: unknown key; did you mean `max_tasks`"):
        resolve_config("tiny", 0, ["stages.eval.max_taks=3"], tmp_path / "config.yaml")
    assert not (tmp_path / "config.yaml").exists()


@pytest.mark.parametrize("stage", STAGES)
def test_artifacts_map_to_the_paths_the_declaration_lays_out(stage, tmp_path):
    """Artifacts laid out like the default folders give exactly the default paths (under the root)."""
    decl = declaration(stage)
    defaults = default_paths(decl)
    read = {s for inp in decl.inputs.values() for s in inp.stages}
    upstream = {s: tmp_path / declaration(s).output_default(declaration(s).output) for s in read}
    paths = stage_paths(stage, upstream, tmp_path / defaults[decl.output], tmp_path / defaults["metrics_path"],
                        tmp_path / "scratch")
    assert set(paths) == set(defaults)
    for keyword, path in paths.items():
        if keyword == "models_dir":  # links to each checkpoint, in a scratch folder
            assert {p.name: p.resolve() for p in path.iterdir()} == {s: upstream[s].resolve() for s in ("sft", "grpo")}
        else:
            assert path == tmp_path / defaults[keyword], keyword
    with pytest.raises(ValueError, match="reads the outputs of"):
        stage_paths(stage, {**upstream, "nope": tmp_path}, tmp_path, tmp_path, tmp_path)


def test_profile_lookup(tmp_path, monkeypatch):
    assert profile_path("tiny").resolve() == (ROOT / "configs" / "tiny.yaml").resolve()
    (tmp_path / "mine.yaml").write_text("seed: 3\n")
    monkeypatch.setenv("TOOLORCH_CONFIG_DIR", str(tmp_path))
    assert profile_path("mine") == tmp_path / "mine.yaml"
    with pytest.raises(FileNotFoundError, match="no profile 'nope'"):
        profile_path("nope")


def test_kfp_metrics_get_the_headline_not_every_number(tmp_path):
    """The committed full metrics of every stage (hundreds of numbers) give a dozen headline numbers in all."""
    logged = {}
    for stage in [s for s in STAGES if s != "deploy"]:  # the committed run predates the deploy step
        sink = MetricsSink(ROOT / "metrics" / f"{stage}.json")
        log_headline(stage, sink)
        logged[stage] = sink.logged
    assert sum(map(len, logged.values())) <= 14 and all(logged.values())
    assert logged["grpo"]["reward"] == pytest.approx(json.loads((ROOT / "metrics" / "grpo.json").read_text())[
        "last"]["reward/total"], rel=1e-3)
    assert logged["validate"] == {"valid": 1.0}


@pytest.mark.slow
def test_run_stage_calls_run_and_logs_its_metrics(tmp_path):
    cfg = resolve_config("tiny", 0, ["stages.synth_envs.domains=[library]"], tmp_path / "config.yaml")
    metrics = MetricsSink(tmp_path / "metrics.json")
    result = run_stage("synth_envs", cfg, metrics, {}, tmp_path / "envs")
    built = [p for p in (tmp_path / "envs").iterdir() if (p / "env.json").is_file()]
    assert built and json.loads(Path(metrics.path).read_text())["envs"] == result["envs"] == len(built)
    assert metrics.logged == {"envs": float(len(built))}


def test_markdown_report_inlines_images_and_models_dir_links(tmp_path):
    (tmp_path / "report.md").write_text("# r\n![Pareto plot](pareto.png)\n")
    (tmp_path / "pareto.png").write_bytes(b"\x89PNG fake")
    text = markdown_report(tmp_path, tmp_path / "out" / "report.md").read_text()
    assert "(data:image/png;base64,iVBORyBmYWtl)" in text and "(pareto.png)" not in text
    (tmp_path / "sft").mkdir()
    (tmp_path / "sft" / "config.json").write_text("{}")
    linked = models_dir(tmp_path / "models", sft=str(tmp_path / "sft"))
    assert (linked / "sft" / "config.json").read_text() == "{}"
    models_dir(tmp_path / "models", sft=str(tmp_path / "sft"))  # re-linking is fine
