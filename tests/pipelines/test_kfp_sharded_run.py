"""The sharded stages of pipelines/full.py (synth-tasks, passk, eval: `dsl.ParallelFor` over shards and a
merge) run locally (kfp.local.SubprocessRunner): shards=3 gives the artifacts and metrics of shards=1
byte for byte, and a passk shard that fails once is retried alone (KFP's `set_retry`, which the local
runner honours per task) while the other shards run once."""

import json
from pathlib import Path

import pytest
from artifact_diff import comparable
from kfp import dsl, local
from kfp.dsl import Model, Output

from components import COMPONENTS, resolve_config, shard_indices
from components.images import IMAGES
from pipelines.full import sharded
from toolorch.stages.shards import FAIL_ONCE_ENV

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["episode.max_turns=3", "stages.synth_envs.domains=[library,bank,clinic]", "stages.synth_envs.tau2_domains=[]",
         "stages.synth_tasks.heldout_envs=1", "stages.passk.k=2", "stages.eval.max_tasks=6",
         "stages.eval.aux_max_tasks=3", "stages.eval.bootstrap_samples=10",
         "stages.eval.policies=[only:*,random,cascade,oracle]", "stages.eval.sweep_policies=[cascade]",
         "stages.eval.generalisation.policies=[cascade,oracle]"]
OUTPUTS = {"tasks": "synth-tasks/tasks", "passk": "passk/passk", "eval": "eval-policies/results",
           "report": "eval-policies/report"}
METRICS = {"synth_tasks": "synth-tasks/metrics", "passk": "passk/metrics", "eval": "eval-policies/metrics"}


@dsl.component(base_image=IMAGES["cpu"], install_kfp_package=False)
def no_model(model: Output[Model]):
    """An empty model folder for eval's checkpoint inputs (only baselines run here)."""
    import os

    os.makedirs(model.path, exist_ok=True)


@dsl.pipeline
def sharded_stages(shards: int = 1):
    """pipelines/full.py's sharded stages, wired as there, without the training between them."""
    config = resolve_config(profile=str(ROOT / "configs" / "tiny.yaml"), seed=3, model="", k=0, group_size=0,
                            preference_mix="", overrides=SMALL).outputs["config"]
    envs = COMPONENTS["synth_envs"](config=config).outputs["envs"]
    indices = shard_indices(shards=shards).output
    tasks = sharded("synth_tasks", indices, shards, lambda t: t, config, envs=envs).outputs["tasks"]
    sharded("passk", indices, shards, lambda t: t, config, envs=envs, tasks=tasks)
    model = no_model().outputs["model"]
    sharded("eval", indices, shards, lambda t: t, config, envs=envs, tasks=tasks, sft=model, grpo=model)


def _run(root: Path, shards: int) -> Path:
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    sharded_stages(shards=shards)
    [run_dir] = [p for p in root.iterdir() if p.is_dir()]
    return run_dir


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _untimed(path: Path) -> dict:
    return comparable(json.loads(path.read_text()))


def _executions(messages: list[str], task: str) -> int:
    return sum("Executing task" in m and f"'{task}'" in m for m in messages)


@pytest.mark.slow
def test_three_shards_equal_one_and_a_failed_shard_is_retried_alone(tmp_path, monkeypatch, capsys):
    one = _run(tmp_path / "one", 1)
    marker = tmp_path / "passk-shard-1-failed"
    monkeypatch.setenv(FAIL_ONCE_ENV, f"passk:1:{marker}")
    capsys.readouterr()
    three = _run(tmp_path / "three", 3)
    messages = capsys.readouterr().out.splitlines()  # the local runner logs to stdout, its own handler

    for name, rel in OUTPUTS.items():
        assert (one / rel).exists(), rel
        assert _files(three / rel) == _files(one / rel), name
    for stage, rel in METRICS.items():
        assert _untimed(three / rel) == _untimed(one / rel), stage
    parts = sorted(three.glob("for-loop-*-iteration-*/passk-shard/part/part.json"))
    assert [json.loads(p.read_text())["shard"] for p in parts] == [0, 1, 2]
    assert all(json.loads(p.read_text())["records"] > 0 for p in parts)  # each shard did part of the work

    # shard 1 failed once (the marker) and ran again; shards 0 and 2 ran once: four passk executions
    assert marker.exists()
    assert sum("Task passk-shard failed (attempt 1/" in m for m in messages) == 1
    assert _executions(messages, "passk-shard") == 4
    assert _executions(messages, "synth-tasks-shard") == 3 and _executions(messages, "eval-shard") == 3
