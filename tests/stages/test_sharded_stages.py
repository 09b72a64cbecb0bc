"""synth-tasks, passk and eval split over shards and merged give one process's outputs byte for byte;
parts that do not add up to one run are refused by name."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from kfp_sink import MetricsSink

from toolorch.core.config import Config, save_config
from toolorch.core.errors import RunFailed
from toolorch.core.jsonl import write_jsonl
from toolorch.core.records import Task, ToolCall
from toolorch.ops.kfp_io import merge_shards, run_shard, run_stage
from toolorch.stages import as_profile, load_profile, passk, synth_envs, synth_tasks
from toolorch.stages import eval as eval_stage
from toolorch.stages.shards import (
    FAIL_ONCE_ENV,
    Shard,
    ShardError,
    fail_once_if_asked,
    read_parts,
)

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "eval"))
from eval_tasks import library_tasks  # the held-out tasks of the unit tests

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny.yaml"


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _sharded(stage, cfg: Config, n: int, inputs: dict, out: Path) -> dict:
    parts = []
    for i in range(n):
        part = out / f"part{i}"
        stage.run(cfg, **inputs, out_dir=part, metrics_path=out / f"part{i}.json", shard=Shard(i, n))
        parts.append(part)
    return stage.STAGE.merge(cfg, parts[::-1], out_dir=out / "merged", metrics_path=out / "merged.json")


def _without(metrics: dict, *keys: str) -> dict:
    return {k: v for k, v in metrics.items() if k not in keys}


def test_a_task_belongs_to_one_shard_whatever_the_order():
    ids = [f"task-{i}" for i in range(300)]
    owners = [[s for s in range(3) if Shard(s, 3).owns(t)] for t in ids]
    assert all(len(o) == 1 for o in owners)
    sizes = [sum(o == [s] for o in owners) for s in range(3)]
    assert min(sizes) > 70  # spread, not all in one
    assert Shard(1, 3).select(ids[::-1], str) == Shard(1, 3).select(ids, str)[::-1]
    with pytest.raises(ValueError, match="shard 3 of 3"):
        Shard(3, 3)


@pytest.fixture(scope="module")
def passk_world(tmp_path_factory, library_env):
    root = tmp_path_factory.mktemp("passk_world")
    shutil.copytree(library_env.db_path.parent, root / "envs" / "minilib")
    author = [ToolCall(name="book_author_id", arguments={"title": "Engines"}),
              ToolCall(name="author_name", arguments={"author_id": "$prev"})]
    tasks = [Task(id=f"a{i}", env="minilib", question=f"Who wrote Engines? ({i})", answer="Ada Byron",
                  gold_calls=author, category="multi_hop", difficulty=2, template="author_of_title")
             for i in range(5)]
    tasks += [Task(id=f"c{i}", env="minilib", question=f"How many copies does the library hold? ({i})",
                   answer="10", gold_calls=[ToolCall(name="total_copies")], answer_type="number",
                   category="aggregate", template="total_copies") for i in range(4)]
    write_jsonl(root / "tasks" / "train.jsonl", tasks)
    return root


def test_passk_in_three_shards_merges_to_the_one_process_output(passk_world, tmp_path):
    cfg = load_profile(TINY, ["stages.passk.progress=false", "stages.passk.k=4",
                              "stages.passk.routes={gold: 0.3, expert: 0.5, extra: 0.1, partial: 0.1}"])
    inputs = {"envs_dir": passk_world / "envs", "tasks_path": passk_world / "tasks" / "train.jsonl"}
    whole = passk.run(cfg, **inputs, out_dir=tmp_path / "whole", metrics_path=tmp_path / "whole.json")
    merged = _sharded(passk, cfg, 3, inputs, tmp_path)
    assert _files(tmp_path / "merged") == _files(tmp_path / "whole")
    assert _without(merged, "trajectories_per_s") == _without(whole, "trajectories_per_s")
    assert whole["trajectories_kept"] > 0
    sizes = [json.loads((tmp_path / f"part{i}" / "part.json").read_text())["records"] for i in range(3)]
    assert sum(sizes) == 9 and all(0 < n < 9 for n in sizes)  # every shard did some of the work


def test_eval_in_three_shards_merges_to_the_one_process_output(tmp_path, library_env, sim_config):
    envs = tmp_path / "envs"
    envs.mkdir()
    (envs / "minilib").symlink_to(library_env.db_path.parent, target_is_directory=True)
    tasks = tmp_path / "tasks" / "heldout.jsonl"
    write_jsonl(tasks, library_tasks())
    stage = {"bootstrap_samples": 50, "aux_max_tasks": 5, "cost_weights": [0.0, 1.0],
             "policies": ["only:*", "random", "cascade", "oracle"], "sweep_policies": ["cascade"]}
    cfg = as_profile(sim_config.model_copy(update={"stages": {"eval": stage}}))
    inputs = {"tasks_path": tasks, "envs_dir": envs, "models_dir": tmp_path / "models"}
    whole = eval_stage.run(cfg, **inputs, out_dir=tmp_path / "whole", metrics_path=tmp_path / "whole.json")
    merged = _sharded(eval_stage, cfg, 3, inputs, tmp_path)
    assert _files(tmp_path / "merged") == _files(tmp_path / "whole")  # results.jsonl, report.md, pareto.png
    assert _without(merged, "wall_s") == _without(whole, "wall_s")
    assert {r.split("/")[0] for r in whole["wall_s"]} == {"main", "pareto", "unseen_pricing", "unseen_tool"}


def test_synth_tasks_in_shards_merges_to_the_one_process_output(tmp_path):
    cfg = load_profile(TINY, ["stages.synth_envs.domains=[library, bank, school]",
                              "stages.synth_envs.rows_per_table=[50, 60]", "stages.synth_envs.tau2_domains=[]",
                              "stages.synth_tasks.heldout_envs=1"])
    synth_envs.run(cfg, tmp_path / "envs", tmp_path / "envs.json")
    whole = synth_tasks.run(cfg, tmp_path / "envs", tmp_path / "whole", tmp_path / "whole.json")
    merged = _sharded(synth_tasks, cfg, 2, {"envs_dir": tmp_path / "envs"}, tmp_path)
    assert _files(tmp_path / "merged") == _files(tmp_path / "whole")
    timings = ("synth_seconds", "verify_seconds", "tasks_per_s", "verified_tasks_per_s")
    assert _without(merged, *timings) == _without(whole, *timings) and whole["tasks"] > 20
    assert whole["heldout_more"] > 0  # the profile's extra held-out fillings travel through the parts too


def test_parts_that_are_not_one_run_are_refused(passk_world, tmp_path):
    cfg = load_profile(TINY, ["stages.passk.progress=false", "stages.passk.k=1"])
    inputs = {"envs_dir": passk_world / "envs", "tasks_path": passk_world / "tasks" / "train.jsonl"}
    for i in range(2):
        passk.run(cfg, **inputs, out_dir=tmp_path / f"p{i}", metrics_path=tmp_path / f"p{i}.json", shard=Shard(i, 3))
    with pytest.raises(ShardError, match=r"shards \[0, 1\].*each of 0..2"):
        read_parts([tmp_path / "p0", tmp_path / "p1"], "passk")
    with pytest.raises(ShardError, match="each of 0..2"):
        read_parts([tmp_path / "p0", tmp_path / "p0", tmp_path / "p1"], "passk")
    with pytest.raises(ShardError, match="a part of stage 'passk', not 'eval'"):
        read_parts([tmp_path / "p0"], "eval")
    with pytest.raises(ShardError, match="not a shard part"):
        read_parts([tmp_path / "nowhere"], "passk")


def test_an_injected_failure_hits_one_shard_once(tmp_path, monkeypatch):
    marker = tmp_path / "failed-once"
    monkeypatch.setenv(FAIL_ONCE_ENV, f"passk:1:{marker}")
    fail_once_if_asked("passk", Shard(0, 3))
    fail_once_if_asked("eval", Shard(1, 3))
    assert not marker.exists()
    with pytest.raises(RunFailed, match="passk shard 1/3: injected failure"):
        fail_once_if_asked("passk", Shard(1, 3))
    fail_once_if_asked("passk", Shard(1, 3))  # the retry goes through
    assert marker.exists()


def test_the_kfp_component_bodies_shard_and_merge_like_the_stage(passk_world, tmp_path):
    cfg = load_profile(TINY, ["stages.passk.progress=false", "stages.passk.k=2"])
    config = save_config(cfg, tmp_path, "config.yaml")
    upstream = {"synth_envs": passk_world / "envs", "synth_tasks": passk_world / "tasks"}
    whole = MetricsSink(tmp_path / "whole.json")
    run_stage("passk", config, whole, upstream, tmp_path / "whole")
    parts = [tmp_path / f"part{i}" for i in range(2)]
    for i, part in enumerate(parts):
        sink = MetricsSink(tmp_path / f"part{i}.json")
        run_shard("passk", config, sink, upstream, part, shard=i, shards=2)
        assert sink.logged["shard"] == i and sink.logged["records"] > 0
    merged = MetricsSink(tmp_path / "merged.json")
    merge_shards("passk", config, merged, parts, tmp_path / "merged")
    assert _files(tmp_path / "merged") == _files(tmp_path / "whole")
    assert merged.logged == whole.logged and "pass@1" in merged.logged  # the same headline
    with pytest.raises(ValueError, match="stage sft does not run in shards"):
        run_shard("sft", config, merged, {}, tmp_path / "x", shard=0, shards=1)
