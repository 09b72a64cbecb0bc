"""summarize(): every number from rows, bootstrap intervals, Pareto front and the verdict."""
from __future__ import annotations

import numpy as np
import pytest

from toolorch.core.records import Task
from toolorch.core.splits import stratified_subsample
from toolorch.eval.metrics import bootstrap_ci, dominates, summarize
from toolorch.eval.runner import EvalRow


def row(policy: str, task: str, correct: bool, cost: float, block: str = "main", category: str = "lookup",
        mix: dict | None = None, cost_weight: float | None = None, **extra) -> EvalRow:
    mix = mix or {}
    return EvalRow(block=block, policy=policy, task_id=task, env=extra.pop("env", "minilib"), category=category,
                   difficulty=1, preference="accuracy=1,cost=0,latency=0", correct=correct, stop_reason="answer",
                   cost_usd=cost, latency_s=2.0, turns=2, tool_counts=dict(mix), mix_counts=dict(mix),
                   cost_weight=cost_weight, **extra)


def rows_for(policy: str, outcomes: list[tuple[bool, float]], **kw) -> list[EvalRow]:
    return [row(policy, f"t{i}", c, cost, **kw) for i, (c, cost) in enumerate(outcomes)]


def test_bootstrap_contains_mean_and_is_seeded():
    values = np.random.default_rng(3).random(40)
    lo, hi = bootstrap_ci(values, 500, seed=7)
    assert lo <= values.mean() <= hi and lo < hi
    assert bootstrap_ci(values, 500, seed=7) == [lo, hi]
    assert bootstrap_ci(values, 500, seed=8) != [lo, hi]
    assert bootstrap_ci(np.array([1.0, 1.0]), 100, seed=0) == [1.0, 1.0]


def test_policy_numbers_are_means_of_rows():
    rows = rows_for("only:frontier", [(True, 0.02), (True, 0.04), (False, 0.03), (True, 0.03)],
                    mix={"ask_frontier": 1})
    rows[2] = rows[2].model_copy(update={"category": "document", "mix_counts": {"db": 1, "ask_frontier": 1}})
    s = summarize(rows, utility_a=0.8, cost_unit_usd=0.01, bootstrap_samples=200, seed=0)["policies"]["only:frontier"]
    assert s["n"] == 4 and s["accuracy"] == 0.75 and s["cost_usd"] == pytest.approx(0.03)
    # u = 0.8 * correct - 0.2 * cost / 0.01, averaged: 0.8 * 0.75 - 0.2 * 3
    assert s["utility"] == pytest.approx(0.6 - 0.6)
    assert s["tool_mix"] == {"ask_frontier": 0.8, "db": 0.2}
    assert s["by_category"]["document"] == {"n": 1, "accuracy": 0.0, "cost_usd": 0.03,
                                            "utility": pytest.approx(-0.6)}
    for metric, (lo, hi) in s["ci95"].items():
        assert lo <= s[metric] <= hi, metric


def test_pareto_front_and_oracle_marked_upper_bound():
    rows = (rows_for("only:frontier", [(True, 0.01), (False, 0.01)])
            + rows_for("only:mini", [(False, 0.001), (False, 0.001)])
            + rows_for("cascade", [(True, 0.02), (False, 0.02)])
            + rows_for("oracle", [(True, 0.0001), (True, 0.0001)]))
    points = {p["label"]: p for p in summarize(rows, bootstrap_samples=50)["pareto"]}
    assert points["only:frontier"]["on_front"] and points["only:mini"]["on_front"]
    assert not points["cascade"]["on_front"]  # frontier is as accurate and cheaper
    assert points["oracle"]["upper_bound"] and not points["oracle"]["on_front"]
    assert dominates(points["only:frontier"], points["cascade"])


def test_verdict_is_computed_from_numbers():
    frontier = rows_for("only:frontier", [(True, 0.01)] * 3 + [(False, 0.01)])
    cascade = rows_for("cascade", [(True, 0.005)] * 2 + [(False, 0.005)] * 2)
    good = rows_for("grpo", [(True, 0.002)] * 3 + [(False, 0.002)])
    v = summarize(frontier + cascade + good, bootstrap_samples=50)["verdict"]
    assert v["trained"] == "grpo" and v["strongest_expert"] == "only:frontier"
    assert v["reaches_strongest_at_30pct"] is True and v["dominates"] == {"cascade": True}
    assert v["sentence"].startswith("The trained policy grpo reaches the strongest")
    assert v["sentence"].endswith("and dominates the cascade baseline.") and v["missing"] == []
    pricey = rows_for("grpo", [(True, 0.004)] * 3 + [(False, 0.004)])  # 40% of the frontier's cost
    v = summarize(frontier + cascade + pricey, bootstrap_samples=50)["verdict"]
    assert v["reaches_strongest_at_30pct"] is False and "does not reach" in v["sentence"]
    assert v["missing"] == ["mean cost is 40% of only:frontier's (target <= 30%)"]
    # a cheaper swept point can dominate the cascade even when the main point does not
    weak = rows_for("grpo", [(True, 0.006)] + [(False, 0.006)] * 3)
    swept = rows_for("grpo", [(True, 0.001)] * 2 + [(False, 0.001)] * 2, block="pareto", cost_weight=1.0)
    v = summarize(frontier + cascade + weak + swept, bootstrap_samples=50)["verdict"]
    assert v["dominates"] == {"cascade": True}


def test_generalisation_blocks_report_deltas_against_same_tasks():
    main = rows_for("cascade", [(True, 0.01), (True, 0.01), (False, 0.01), (False, 0.01)])
    shifted = rows_for("cascade", [(False, 0.02), (True, 0.02)], block="unseen_pricing")
    g = summarize(main + shifted, bootstrap_samples=50)["generalisation"]
    s = g["unseen_pricing"]["policies"]["cascade"]
    assert s["main_same_tasks"]["accuracy"] == 1.0  # t0, t1 only
    assert s["delta_accuracy"] == -0.5 and s["delta_cost_usd"] == pytest.approx(0.01)
    assert "unseen_tool" not in g and g["heldout_envs"]["grouping"] == "env_only"


def test_heldout_env_and_template_splits():
    rows = [row("grpo", "a", True, 0.01, env="seen", env_seen=True, template_seen=True),
            row("grpo", "b", False, 0.01, env="seen", env_seen=True, template_seen=False),
            row("grpo", "c", False, 0.01, env="new", env_seen=False, template_seen=False)]
    h = summarize(rows, bootstrap_samples=50)["generalisation"]["heldout_envs"]
    e = h["policies"]["grpo"]
    assert h["grouping"] == "train_overlap"
    assert e["unseen_env"]["n"] == 1 and e["seen_env_unseen_template"]["accuracy"] == 0.0
    assert e["seen_env_seen_template"]["accuracy"] == 1.0 and set(e["by_env"]) == {"seen", "new"}


def test_stratified_subsample_keeps_category_shares():
    tasks = [Task(id=f"l{i}", env="e", question="q", answer="a", category="lookup") for i in range(60)]
    tasks += [Task(id=f"d{i}", env="e", question="q", answer="a", category="document") for i in range(20)]
    sub = stratified_subsample(tasks, 20, seed=1)
    assert len(sub) == 20 and sum(t.category == "document" for t in sub) == 5
    assert [t.id for t in sub] == [t.id for t in stratified_subsample(tasks, 20, seed=1)]
    assert stratified_subsample(tasks, None, seed=1) == tasks
