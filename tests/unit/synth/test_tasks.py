from __future__ import annotations

from collections import Counter

import pytest

from toolorch.core.records import CATEGORIES, Preference, Task, ToolCall
from toolorch.runtime.episode import run_episode
from toolorch.runtime.gold import PREV, verify, verify_tasks
from toolorch.runtime.policies import PlanPolicy
from toolorch.runtime.preferences import (
    expert_tools_by_price,
    preference_kind,
    sample_preference,
)
from toolorch.runtime.tools import Toolbox
from toolorch.synth.envs import load_hints
from toolorch.synth.tasks import synthesize_env_tasks, synthesize_tasks, templates


@pytest.fixture(scope="module")
def two_envs(all_envs):
    return [e for e in all_envs if e.name in ("library", "railway")]


@pytest.fixture(scope="module")
def tasks(two_envs, tiny_cfg) -> list[Task]:
    made, _, _ = synthesize_tasks(two_envs, tiny_cfg.catalog(), per_template=1, seed=0, workers=2)
    return made


def test_every_category_is_synthesized_with_consistent_shape(tasks):
    assert {t.category for t in tasks} == set(CATEGORIES)
    for t in tasks:
        assert t.difficulty == len(t.gold_calls) >= 1
        assert t.id.startswith(t.template + ".") and t.template.startswith(t.env + "." + t.category)
        assert t.answer.strip() and t.question.endswith(("?", "."))
    assert len({t.id for t in tasks}) == len(tasks)


def test_gold_call_shapes_per_category(tasks):
    for t in tasks:
        names = [c.name for c in t.gold_calls]
        if t.category == "document":
            assert names == ["search"]
        elif t.category == "multi_hop":
            assert 2 <= len(names) <= 3 and all(c.arguments == {next(iter(c.arguments)): PREV}
                                                for c in t.gold_calls[1:])
        elif t.category == "reasoning":
            assert names[-1] == "run_python" and len(names) == 3 and t.answer_type in ("number", "bool")
        elif t.category == "lookup":
            assert len(names) == 1 and names[0] != "search"
        else:
            assert names[-1] == "run_python" or len(names) == 1


def test_all_tasks_reverify_in_fresh_sessions(two_envs, tasks, tiny_cfg):
    assert verify_tasks(two_envs, tasks, tiny_cfg.catalog(), workers=2) == []


def test_a_wrong_answer_or_broken_call_fails_verification(two_envs, tasks, tiny_cfg):
    env = two_envs[0]
    lookup = next(t for t in tasks if t.env == env.name and t.category == "lookup")
    doc = next(t for t in tasks if t.env == env.name and t.category == "document")
    bad_call = lookup.model_copy(update={"gold_calls": [ToolCall(name="no_such_tool", arguments={})]})
    with env.session() as session:
        box = Toolbox(tiny_cfg.catalog(), session, experts={})
        assert "task says" in verify(lookup.model_copy(update={"answer": "not the answer"}), box)
        assert "did not return the document" in verify(doc.model_copy(update={"answer": "12345 zebras"}), box)
        assert "failed" in verify(bad_call, box)


def test_gold_plans_replayed_by_the_episode_runner_are_correct(two_envs, tasks, tiny_cfg):
    """'$prev' and bare single values mean the same here as in PlanPolicy's replay."""
    env = two_envs[1]
    for t in [t for t in tasks if t.env == env.name and t.category != "document"]:
        with env.session() as session:
            traj = run_episode(t, PlanPolicy(t.gold_calls, name="gold"), Toolbox(tiny_cfg.catalog(), session, experts={}),
                               tiny_cfg.episode.limits())
        assert traj.correct, (t.id, traj.answer, t.answer)


@pytest.mark.slow
def test_same_seed_same_tasks_other_seed_other_tasks(two_envs, tasks, tiny_cfg):
    env = two_envs[0]
    a = [t for t in tasks if t.env == env.name]  # seed 0
    b, _, _ = synthesize_env_tasks(env, tiny_cfg.catalog(), 1, seed=0)
    c, _, _ = synthesize_env_tasks(env, tiny_cfg.catalog(), 1, seed=4)
    assert [t.model_dump_json() for t in a] == [t.model_dump_json() for t in b]
    assert {t.id for t in a} != {t.id for t in c}


def test_templates_cover_chains_and_every_fact(two_envs):
    hints = load_hints(two_envs[0])
    keys = [t.key for t in templates(hints)]
    assert len(keys) == len(set(keys))
    assert sum(k.startswith("multi_hop.") and k.count(".") == 3 for k in keys) >= 1, "3-hop chains exist"
    assert {f"document.{f.key}" for f in hints.facts} <= set(keys)


def test_preferences_are_a_seeded_mix_naming_expert_tools(tiny_cfg):
    prefs = [sample_preference(tiny_cfg.catalog(), s) for s in range(400)]
    assert prefs == [sample_preference(tiny_cfg.catalog(), s) for s in range(400)]
    cheap, *_, pricey = expert_tools_by_price(tiny_cfg.catalog())
    assert cheap == "ask_qwen_32b" and pricey == "ask_frontier"  # by output-token price
    assert {tuple(p.deny) for p in prefs} == {(), ("ask_frontier",)}
    assert {tuple(p.prefer) for p in prefs} == {(), ("ask_qwen_32b",)}
    said = {p.render().splitlines()[1] for p in prefs}
    assert said == {"Getting the answer right matters most.", "Answer fast; avoid slow tools.",
                    "Keep the dollar cost low; use expensive experts only when needed."}
    assert any(p.cost == p.latency == 0.5 for p in prefs), "balanced users are drawn too"
    assert isinstance(prefs[0], Preference)


def test_a_preference_mix_sets_the_profile_shares(tiny_cfg):
    catalog, mix = tiny_cfg.catalog(), {"cost_averse": 3.0, "latency_averse": 1.0}
    prefs = [sample_preference(catalog, s, mix=mix) for s in range(400)]
    assert prefs == [sample_preference(catalog, s, mix=mix) for s in range(400)]  # seeded
    kinds = Counter(preference_kind(p).split("+")[0] for p in prefs)
    assert set(kinds) == {"cost_averse", "latency_averse"} and 0.68 < kinds["cost_averse"] / 400 < 0.82
    assert {tuple(p.deny) for p in prefs} == {(), ("ask_frontier",)}  # deny/prefer users as before
    # no mix: every profile equally likely, the draws of a profile without the setting
    assert [sample_preference(catalog, s, mix={}) for s in range(50)] == [sample_preference(catalog, s)
                                                                          for s in range(50)]
    with pytest.raises(ValueError, match="unknown preference profile 'thrifty'"):
        sample_preference(catalog, 0, mix={"thrifty": 1.0})
