"""Scripted baselines on the fixture world: what they may call, seeding, the cascade's stop rule."""
from __future__ import annotations

import pytest

from toolorch.core.catalog import ExpertConfig, SimulatedProfile
from toolorch.core.config import Config
from toolorch.core.records import Preference
from toolorch.eval.baselines import (
    cascade_maker,
    experts_by_price,
    only_expert_maker,
    random_maker,
)
from toolorch.eval.runner import Block, run_policy


def _envs(library_env):
    return {"minilib": library_env}


def _calls(rows):
    return [name for r in rows for name in r.tool_counts]


def three_experts() -> Config:
    def expert(name: str, price: str, acc: float) -> ExpertConfig:
        return ExpertConfig(name=name, price=price, simulated=SimulatedProfile(default_accuracy=acc))
    return Config(experts=[expert("frontier", "frontier", 1.0), expert("mini", "mini", 0.0),
                           expert("qwen", "qwen-32b", 1.0)])


@pytest.mark.parametrize("with_search", [False, True])
def test_only_expert_never_calls_another_expert(library_env, heldout_tasks, with_search):
    cfg = three_experts()
    block = Block.build("main", cfg)
    for expert in ("frontier", "mini"):
        rows = run_policy(heldout_tasks, _envs(library_env), block, f"only:{expert}",
                          only_expert_maker(expert, with_search))
        allowed = {f"ask_{expert}"} | ({"search"} if with_search else set())
        assert set(_calls(rows)) == allowed
        assert all(r.tool_counts[f"ask_{expert}"] == 1 for r in rows)
    frontier = run_policy(heldout_tasks, _envs(library_env), block, "only:frontier",
                          only_expert_maker("frontier", with_search))
    assert all(r.correct for r in frontier)  # a perfect expert's reply is read correctly


def test_random_router_is_seeded_and_respects_preferences(library_env, heldout_tasks, sim_config):
    block = Block.build("main", sim_config)
    runs = [run_policy(heldout_tasks, _envs(library_env), block, "random", random_maker(seed, 3))
            for seed in (0, 0, 1)]
    assert [r.tool_counts for r in runs[0]] == [r.tool_counts for r in runs[1]]
    assert [r.tool_counts for r in runs[0]] != [r.tool_counts for r in runs[2]]
    assert all(1 <= sum(r.tool_counts.values()) <= 3 for r in runs[0])
    strict = [t.model_copy(update={"preference": Preference(allow=["search"])}) for t in heldout_tasks]
    rows = run_policy(strict, _envs(library_env), block, "random", random_maker(0, 3))
    assert set(_calls(rows)) == {"search"}


def test_cascade_asks_cheapest_first_and_stops_on_agreement(library_env, heldout_tasks):
    cfg = three_experts()
    assert experts_by_price(cfg.catalog()) == ["qwen", "mini", "frontier"]  # by output price: $0.8, $2, $10 per M
    rows = run_policy(heldout_tasks, _envs(library_env), Block.build("main", cfg), "cascade", cascade_maker(cfg.catalog()))
    for r in rows:
        # qwen (right) and mini (wrong) disagree; frontier (right) agrees with qwen: stop after three
        assert r.tool_counts == {"ask_qwen": 1, "ask_mini": 1, "ask_frontier": 1} and r.correct


def test_cascade_without_agreement_trusts_the_dearest(library_env, heldout_tasks, sim_config):
    rows = run_policy(heldout_tasks, _envs(library_env), Block.build("main", sim_config), "cascade",
                      cascade_maker(sim_config.catalog()))
    # mini is always wrong, frontier always right: no agreement, answer frontier's reply
    assert all(r.tool_counts == {"ask_mini": 1, "ask_frontier": 1} and r.correct for r in rows)
    assert all(next(iter(r.tool_counts)) == "ask_mini" for r in rows)
