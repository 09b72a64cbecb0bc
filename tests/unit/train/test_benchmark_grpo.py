"""benchmarks/grpo.py at smoke size: both trainers run the same steps over the same tokens, and
the report has the shape the README documents. No timing is asserted (the machine is shared)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from backends import import_backend

from toolorch.runtime.env import Environment

ROOT = Path(__file__).resolve().parents[3]


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("bench_grpo", ROOT / "benchmarks/grpo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bench_grpo = _load_benchmark()


def test_reward_counts_tool_calls_only():
    assert bench_grpo.tool_call_reward('<tool_call>{"name": "x"}</tool_call>') == 1.0
    assert bench_grpo.tool_call_reward("<answer>4</answer>") == 0.0


def test_steps_cycle_through_tasks_in_order(world):
    steps = bench_grpo.step_batches(world.tasks[:3], n_steps=3, per_step=2)
    ids = [[t.id for t in s] for s in steps]
    names = [t.id for t in world.tasks[:3]]
    assert ids == [names[:2], [names[2], names[0]], names[1:3]]
    with pytest.raises(ValueError, match="no tasks"):
        bench_grpo.step_batches([], 1, 1)


def test_unequal_work_is_refused():
    rec = bench_grpo.StepRecord
    same = [rec(1.0, 1.0, 8, 8, 100)]
    bench_grpo.check_same_work(same, [rec(2.0, 3.0, 8, 8, 100)])  # timings may differ, tokens may not
    with pytest.raises(RuntimeError, match="different tokens"):
        bench_grpo.check_same_work(same, [rec(1.0, 1.0, 8, 7, 100)])


@pytest.mark.slow
def test_both_trainers_process_the_same_tokens(world, tiny_tokenizer, tmp_path):
    import_backend("trl", "TRL", "it comes with the `bench` extra: pip install -e .[bench]")
    folder, _ = tiny_tokenizer
    bench = bench_grpo.BenchConfig(tasks_per_step=2, group_size=2, max_new_tokens=4, steps=1, warmup=1, rounds=1)
    work = bench_grpo.make_workload(folder, Environment.load(world.envs_dir / "minilib"), world.tasks,
                                    world.cfg, bench)
    assert work.cfg.episode.max_turns == 1
    assert [len(s) for s in work.steps] == [2, 2]

    report = bench_grpo.compare(work, bench, tmp_path)

    per_step = bench.tasks_per_step * bench.group_size * bench.max_new_tokens
    for side in ("ours", "trl"):
        r = report[side]
        assert len(r["steps"]) == bench.steps * bench.rounds  # warm-up steps are not reported
        assert r["completion_tokens"] == r["trained_tokens"] == per_step
        assert r["rollout_tokens_per_s"] > 0 and r["train_tokens_per_s"] > 0
    assert report["ours"]["prompt_tokens"] == report["trl"]["prompt_tokens"] > 0
    ratio = report["ratio_ours_over_trl"]
    assert ratio["train_tokens_per_s"] == pytest.approx(
        report["ours"]["train_tokens_per_s"] / report["trl"]["train_tokens_per_s"])
    assert ratio["rollout_tokens_per_s"] == pytest.approx(
        report["ours"]["rollout_tokens_per_s"] / report["trl"]["rollout_tokens_per_s"])
    assert "completion tokens" in report["tokens_counted"]


def test_model_tflops_count_every_position_the_phase_runs_over():
    rec = bench_grpo.StepRecord(rollout_s=2.0, train_s=4.0, completion_tokens=10, trained_tokens=10, prompt_tokens=90)
    summary = bench_grpo.side_summary([rec], parameters=1000)
    assert summary["train_model_tflops_per_s"] == pytest.approx(6 * 1000 * 100 / 4.0 / 1e12)
    assert summary["rollout_model_tflops_per_s"] == pytest.approx(2 * 1000 * 100 / 2.0 / 1e12)
    assert summary["train_tokens_per_s"] == pytest.approx(10 / 4.0)
