"""The oracle is an upper bound: as accurate as any policy and no dearer where it is right."""
from __future__ import annotations

from toolorch.core.catalog import SimulatedProfile
from toolorch.eval.baselines import cascade_maker, only_expert_maker, random_maker
from toolorch.eval.oracle import oracle_rows
from toolorch.eval.runner import Block, run_policy


def test_oracle_bounds_every_policy(library_env, heldout_tasks, sim_config):
    envs, block = {"minilib": library_env}, Block.build("main", sim_config)
    observed = []
    for name, make in [("only:frontier", only_expert_maker("frontier", False)),
                       ("only:mini", only_expert_maker("mini", True)),
                       ("random", random_maker(0, 3)), ("cascade", cascade_maker(sim_config.catalog()))]:
        observed += run_policy(heldout_tasks, envs, block, name, make)
    oracle = {r.task_id: r for r in oracle_rows(heldout_tasks, envs, block, observed)}
    assert len(oracle) == len(heldout_tasks) and all(r.policy == "oracle" for r in oracle.values())
    for r in observed:
        if r.correct:
            assert oracle[r.task_id].correct and oracle[r.task_id].cost_usd <= r.cost_usd
    for name in {r.policy for r in observed}:
        mine = [r for r in observed if r.policy == name]
        assert sum(oracle[r.task_id].correct for r in mine) >= sum(r.correct for r in mine)


def test_oracle_takes_the_cheap_tool_route_and_runs_it(library_env, heldout_tasks, sim_config):
    envs, block = {"minilib": library_env}, Block.build("main", sim_config)
    rows = {r.task_id: r for r in oracle_rows(heldout_tasks, envs, block, observed=[])}
    author = rows["minilib-author-1"]
    # the two db calls cost only the router's tokens: far below asking the frontier expert
    assert author.correct and author.route == "gold" and author.tool_counts == {"book_author_id": 1, "author_name": 1}
    assert rows["minilib-fees"].route == "gold" and rows["minilib-fees"].correct  # read off the search result
    frontier = run_policy(heldout_tasks, envs, block, "only:frontier", only_expert_maker("frontier", False))
    assert all(rows[r.task_id].cost_usd < r.cost_usd for r in frontier)


def test_oracle_fails_cheaply_when_no_route_is_right(library_env, heldout_tasks, sim_config):
    task = heldout_tasks[0].model_copy(update={"gold_calls": []})
    frontier = sim_config.experts[0].model_copy(update={"simulated": SimulatedProfile(default_accuracy=0.0)})
    wrong_experts = sim_config.model_copy(update={"experts": [frontier, sim_config.experts[1]]})
    rows = oracle_rows([task], {"minilib": library_env}, Block.build("main", wrong_experts), observed=[])
    assert not rows[0].correct and rows[0].route == "give_up" and rows[0].tool_counts == {}
