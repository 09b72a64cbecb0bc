from __future__ import annotations

import pytest

from toolorch.core.records import Task
from toolorch.core.splits import apply_split, dedup, plan_split


def _task(env: str, template: str, n: int, question: str | None = None, answer: str = "1") -> Task:
    return Task(id=f"{env}.{template}.{n}", env=env, template=f"{env}.{template}",
                question=question or f"What is value {n} of {template}?", answer=answer, answer_type="number")


def test_dedup_drops_near_identical_questions_with_the_same_answer():
    a = _task("lib", "lookup.x", 1, "What is the author of 'Blue Moon'?", "Ann Lee")
    near = _task("lib", "lookup.x", 2, "what is the  author of Blue Moon", "ann lee")
    other_answer = _task("lib", "lookup.x", 3, "What is the author of 'Blue Moon'?", "Bo Chan")
    same_id = _task("lib", "lookup.x", 1, "A different question?", "7")
    other_env = _task("bank", "lookup.x", 1, "What is the author of 'Blue Moon'?", "Ann Lee")
    kept, dropped = dedup([a, near, other_answer, same_id, other_env])
    assert [t.id for t in kept] == ["lib.lookup.x.1", "lib.lookup.x.3", "bank.lookup.x.1"]
    assert dropped == 2


def test_split_holds_out_whole_envs_and_templates_without_leaks():
    tasks = [_task(env, f"c.t{k}", n) for env in ("a", "b", "c", "d", "e") for k in range(10) for n in range(2)]
    plan = plan_split(tasks, heldout_envs=2, heldout_template_fraction=0.3, seed=1)
    out = apply_split(tasks, plan)
    train = [t for t in out if t.split == "train"]
    held = [t for t in out if t.split == "heldout"]
    assert len(plan.heldout_envs) == 2 and len(plan.heldout_templates) == 3 * 3
    assert not {t.env for t in train} & set(plan.heldout_envs)
    assert not {t.template for t in train} & {t.template for t in held}
    assert {plan.heldout_kind(t) for t in held} == {"env", "template"}
    assert plan == plan_split(tasks, 2, 0.3, seed=1)
    assert plan != plan_split(tasks, 2, 0.3, seed=2)


def test_split_refuses_to_hold_out_every_env():
    tasks = [_task("a", "t", 0), _task("b", "t", 0)]
    with pytest.raises(ValueError, match="no training environment"):
        plan_split(tasks, heldout_envs=2, heldout_template_fraction=0.2, seed=0)


def _imported(n: int, split: str, template: str | None = None, question: str | None = None) -> Task:
    return Task(id=f"tau2-x-{n}", env="tau2_x", template=template or f"tau2/x/{n}", question=question or f"Scenario {n}?",
                answer="1", answer_type="number", split=split)


def test_imported_worlds_keep_their_benchmarks_split_or_are_held_out_whole():
    from toolorch.stages.synth_tasks import hold_out_imported

    synthesized = [_task(env, f"c.t{k}", 0) for env in ("a", "b", "c") for k in range(5)]
    plan = plan_split(synthesized, heldout_envs=1, heldout_template_fraction=0.2, seed=0)
    imported = [_imported(n, "heldout" if n < 3 else "train") for n in range(8)]
    by_test_plan = hold_out_imported(plan, imported, "test")
    by_test = apply_split(imported, by_test_plan)
    assert [t.split for t in by_test] == ["heldout"] * 3 + ["train"] * 5
    assert {by_test_plan.heldout_kind(t) for t in by_test if t.split == "heldout"} == {"template"}
    whole = hold_out_imported(plan, imported, "all")
    assert "tau2_x" in whole.heldout_envs and all(t.split == "heldout" for t in apply_split(imported, whole))
    # the synthesized tasks' own split is untouched either way
    assert apply_split(synthesized, whole) == apply_split(synthesized, plan)
    # a train task asking a test task's very question goes with it (same words, hidden state differs)
    twin = _imported(8, "train", question="scenario 0").model_copy(update={"answer": "2"})
    assert apply_split([twin], hold_out_imported(plan, imported + [twin], "test"))[0].split == "heldout"
    shared = imported + [_imported(9, "train", template="tau2/x/0")]  # one scenario in both splits
    with pytest.raises(ValueError, match="share templates"):
        hold_out_imported(plan, shared, "test")
