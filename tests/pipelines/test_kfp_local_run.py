"""The whole KFP pipeline run locally (kfp.local.SubprocessRunner) on a shrunk tiny profile gives the
same outputs as dvc.yaml's stage commands run in order with the same seed and parameters: every
file of every artifact (environments with their SQLite databases, tasks, trajectories, checkpoints
with tokenizer and training state, resolved configs, eval results and report) and every metric
(timings aside). tests/pipelines/artifact_diff.py says which files two runs may write differently,
why, and how those are compared instead."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from artifact_diff import comparable, tree_differences

from toolorch.ops.kfp_io import markdown_report
from toolorch.stages import STAGES

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "configs" / "tiny.yaml"
SEED = 3
PREFERENCE_MIX = "cost_averse=3,balanced=1"  # a pipeline parameter; the chain gets it as an override
ARTIFACTS = ("envs", "tasks", "passk", "sft", "grpo", "eval", "deploy")
SMALL = [  # minutes, not the profile's quarter hour: fewer domains, tasks, tokens, steps and policies
    "episode.max_turns=3",
    "stages.synth_envs.domains=[library,bank,clinic,airline]",
    "stages.synth_envs.tau2_domains=[]",
    "stages.synth_tasks.heldout_envs=1",
    "stages.passk.k=2",
    "stages.sft.epochs=1",
    "stages.sft.max_trajectories=16",
    "stages.sft.max_len=512",
    "stages.sft.tiny.hidden_size=64",
    "stages.sft.tiny.num_hidden_layers=2",
    "stages.grpo.steps=1",
    "stages.grpo.tasks_per_step=4",  # one task under the four contrasted users
    "stages.grpo.group_size=2",
    "stages.grpo.max_new_tokens=16",
    "stages.grpo.heldout.enabled=false",
    "stages.eval.max_tasks=3",
    "stages.eval.aux_max_tasks=2",
    "stages.eval.max_new_tokens=16",
    "stages.eval.bootstrap_samples=10",
    "stages.eval.policies=[grpo,random]",
    "stages.eval.sweep_policies=[]",
    "stages.eval.generalisation.unseen_pricing=false",
    "stages.eval.generalisation.unseen_tool=false",
    "stages.deploy.force_deploy=true",  # eval compared no single expert: through the gateway smoke test anyway
    "stages.deploy.smoke_tasks=2",
]


def stage_chain(out: Path) -> dict[str, Path]:
    """dvc.yaml's command of every stage, in order, with the same seed and overrides, under `out`."""
    shutil.copytree(ROOT / "configs", out / "configs")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    overrides = [f"seed={SEED}", f"stages.synth_tasks.preference_mix={PREFERENCE_MIX}", *SMALL]
    for name in STAGES:
        argv = shlex.split(stages[name]["cmd"]) + [a for o in overrides for a in ("--set", o)]
        done = subprocess.run(argv, cwd=out, env=env, capture_output=True, text=True, timeout=1200)
        assert done.returncode == 0, f"{name}: {done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return {"envs": out / "data" / "envs", "tasks": out / "data" / "tasks", "passk": out / "data" / "passk",
            "sft": out / "models" / "sft", "grpo": out / "models" / "grpo", "eval": out / "reports" / "eval",
            "deploy": out / "reports" / "deploy", "metrics": out / "metrics"}


def kfp_local_run(root: Path, **params: Any) -> dict[str, Path]:
    """`params`: further pipeline parameters (no DVC remote unless given)."""
    from kfp import local

    from pipelines.full import full

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    full(profile=str(PROFILE), seed=SEED, preference_mix=PREFERENCE_MIX, overrides=SMALL, **{"dvc_remote": "", **params})
    [run_dir] = [p for p in root.iterdir() if p.is_dir()]
    out = {"envs": "synth-envs/envs", "tasks": "synth-tasks/tasks", "passk": "passk/passk", "sft": "sft/model",
           "grpo": "grpo/model", "eval": "eval-policies/results", "report": "eval-policies/report",
           "config": "resolve-config/config", "pointers": "dvc-publish/pointers", "base": "base-weights/weights",
           "deploy": "deploy/report", "checks": "validate/report", "sft_curves": "sft/curves",
           "grpo_curves": "grpo/curves"}
    paths = {k: run_dir / v for k, v in out.items()}
    task_of = {"synth_envs": "synth-envs", "synth_tasks": "synth-tasks", "eval": "eval-policies"}
    paths.update({f"metrics/{s}": run_dir / task_of.get(s, s) / "metrics" for s in STAGES})
    return paths


@pytest.mark.slow
@pytest.mark.timeout(2400)  # the whole pipeline twice, through KFP and through dvc.yaml's commands
def test_local_kfp_run_equals_the_stage_chain(tmp_path, monkeypatch):
    monkeypatch.setenv("TOOLORCH_GRPO_LAUNCH", "local")  # torchrun fallback: no cluster here
    monkeypatch.chdir(tmp_path)
    kfp = kfp_local_run(tmp_path / "kfp")
    chain = stage_chain(tmp_path / "chain")

    for name in ARTIFACTS:
        assert tree_differences(kfp[name], chain[name]) == [], name
    for part in ("envs/library/db.sqlite", "sft/tokenizer.json", "grpo/tokenizer.json", "grpo/state/LATEST",
                 "eval/report.md", "eval/pareto.png", "deploy/smoke.jsonl", "deploy/verdict.json"):
        name, rel = part.split("/", 1)
        assert (kfp[name] / rel).is_file(), f"{part}: not written, so not compared"
    # the pipeline parameters resolve once into the config every stage ran with
    resolved = kfp["config"].read_bytes()
    assert all((chain[name] / "config.resolved.yaml").read_bytes() == resolved for name in ARTIFACTS)
    assert yaml.safe_load(resolved)["stages"]["synth_tasks"]["preference_mix"] == PREFERENCE_MIX
    for stage in STAGES:
        ours = json.loads(kfp[f"metrics/{stage}"].read_text())
        theirs = json.loads((chain["metrics"] / f"{stage}.json").read_text())
        assert comparable(ours) == comparable(theirs), stage
    # the deploy step served the GRPO checkpoint through a local gateway: its smoke rows equal in-process eval
    deployed = json.loads(kfp["metrics/deploy"].read_text())
    assert deployed["deployed"] and deployed["smoke"]["equal_to_in_process"] and deployed["verdict"]["forced"]
    # the report artifact is the chain's report.md with its Pareto plot inlined
    report = kfp["report"].read_text()
    assert "data:image/png;base64," in report
    assert report == markdown_report(chain["eval"], tmp_path / "report.md").read_text()
    # the run page's views: the data checks as one offline HTML page, the training curves inlined
    checks = kfp["checks"].read_text()
    assert "Data checks: all suites passed" in checks and "<script" not in checks
    for stage, curve in (("sft", "loss"), ("grpo", "reward")):
        page = kfp[f"{stage}_curves"].read_text()
        assert f"# {stage}: training curves" in page and curve in page and "data:image/png;base64," in page
