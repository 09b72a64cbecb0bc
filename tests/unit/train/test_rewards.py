"""Signs and orderings of the GRPO reward (ToolOrchestra's released code had the cost sign wrong)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from toolorch.core.records import Preference, ToolCall, Trajectory, Turn, Usage
from toolorch.runtime.rewards import (
    EpisodeOutcome,
    RewardConfig,
    efficiency_coefficients,
    group_advantages,
    group_rewards,
    minmax,
)

CFG = RewardConfig()
ACCURACY_FIRST = Preference(accuracy=1.0)
COST_AVERSE = Preference(accuracy=1.0, cost=3.0)


def totals(group, pref=ACCURACY_FIRST, cfg=CFG):
    return [t.total for t in group_rewards(group, pref, cfg)]


def test_correct_scores_one_and_wrong_zero_when_alone():
    assert totals([EpisodeOutcome(True, 0.1, 5.0)]) == [pytest.approx(1.0)]
    assert totals([EpisodeOutcome(False, 0.1, 5.0)]) == [0.0]


def test_a_wrong_answer_is_charged_for_what_it_spent():
    cheap, dear = EpisodeOutcome(False, 0.001, 5.0), EpisodeOutcome(False, 0.5, 5.0)
    r = group_rewards([cheap, dear], COST_AVERSE, CFG)
    assert r[0].total == 0.0 and r[1].cost < 0.0 and r[1].total < r[0].total


def _expected(acc_dear: float, acc_cheap: float, pref: Preference) -> tuple[float, float]:
    """Expected reward of a dear and a cheap expert sampled side by side in one group."""
    out = [0.0, 0.0]
    for dear_right in (True, False):
        for cheap_right in (True, False):
            p = (acc_dear if dear_right else 1 - acc_dear) * (acc_cheap if cheap_right else 1 - acc_cheap)
            r = totals([EpisodeOutcome(dear_right, 0.006, 20.0), EpisodeOutcome(cheap_right, 0.0003, 10.0)], pref)
            out = [out[0] + p * r[0], out[1] + p * r[1]]
    return out[0], out[1]


def test_the_preference_decides_whether_a_better_dearer_expert_is_worth_it():
    """An expert right 65% of the time at 20x the price of one right 45% of the time: worth it
    to an accuracy-first user, not to a cost-averse one. (Charging the price only on correct
    answers favoured the dear expert for both.)"""
    dear, cheap = _expected(0.65, 0.45, ACCURACY_FIRST)
    assert dear > cheap + 0.1
    dear, cheap = _expected(0.65, 0.45, COST_AVERSE)
    assert cheap > dear + 0.05


def test_cost_penalty_is_negative_and_grows_with_cost():
    cheap, dear = EpisodeOutcome(True, 0.001, 5.0), EpisodeOutcome(True, 0.5, 5.0)
    r = group_rewards([cheap, dear], ACCURACY_FIRST, CFG)
    assert r[0].cost == 0.0
    assert r[1].cost < 0.0
    assert r[0].total > r[1].total


def test_latency_penalty_is_negative_and_grows_with_latency():
    fast, slow = EpisodeOutcome(True, 0.1, 1.0), EpisodeOutcome(True, 0.1, 60.0)
    r = group_rewards([fast, slow], ACCURACY_FIRST, CFG)
    assert r[1].latency < r[0].latency == 0.0


def test_cost_averse_preference_penalises_cost_more():
    group = [EpisodeOutcome(True, 0.001, 5.0), EpisodeOutcome(True, 0.5, 5.0)]
    averse = group_rewards(group, COST_AVERSE, CFG)[1].cost
    first = group_rewards(group, ACCURACY_FIRST, CFG)[1].cost
    assert averse < first < 0.0
    k_averse, _ = efficiency_coefficients(COST_AVERSE, CFG.efficiency_floor)
    assert averse == pytest.approx(-CFG.cost_weight * k_averse)


def test_units_do_not_dominate():
    """Scaling dollars by 1000 leaves the rewards unchanged (group normalisation)."""
    group = [EpisodeOutcome(True, c, l) for c, l in [(0.01, 3.0), (0.02, 9.0), (0.05, 1.0)]]
    scaled = [EpisodeOutcome(True, o.cost_usd * 1000, o.latency_s) for o in group]
    assert totals(group, COST_AVERSE) == pytest.approx(totals(scaled, COST_AVERSE))


def test_deny_violation_is_penalised_for_right_and_wrong():
    pref = Preference(deny=["ask_frontier"])
    clean = EpisodeOutcome(True, 0.1, 1.0, ("lookup",))
    bad = EpisodeOutcome(True, 0.1, 1.0, ("ask_frontier", "lookup"))
    worse = EpisodeOutcome(True, 0.1, 1.0, ("ask_frontier", "ask_frontier"))
    r = group_rewards([clean, bad, worse], pref, CFG)
    assert r[0].deny == 0.0 and r[2].deny < r[1].deny < 0.0
    wrong = group_rewards([EpisodeOutcome(False, 0.1, 1.0, ("ask_frontier",))], pref, CFG)[0]
    assert wrong.total < 0.0


def test_allow_list_counts_as_deny():
    pref = Preference(allow=["lookup"])
    r = group_rewards([EpisodeOutcome(True, 0.1, 1.0, ("search",))], pref, CFG)
    assert r[0].deny < 0.0


def test_prefer_list_rewarded_mildly_and_only_when_correct():
    pref = Preference(prefer=["ask_mini"])
    r = group_rewards([EpisodeOutcome(True, 0.1, 1.0, ("ask_mini",)), EpisodeOutcome(True, 0.1, 1.0, ("search",)),
                       EpisodeOutcome(False, 0.1, 1.0, ("ask_mini",))], pref, CFG)
    assert r[0].prefer == pytest.approx(CFG.prefer_weight) and r[1].prefer == 0.0
    assert r[2].prefer == 0.0


def test_config_rejects_penalties_that_could_flip_correct_below_wrong():
    with pytest.raises(ValidationError, match="must be < 1"):
        RewardConfig(cost_weight=0.6, latency_weight=0.3, deny_weight=0.2)
    with pytest.raises(ValidationError):
        RewardConfig(wrong=0.5)


def test_minmax_all_equal_is_zero():
    assert minmax([3.0, 3.0]) == [0.0, 0.0]
    assert minmax([1.0, 3.0, 2.0]) == [0.0, 1.0, 0.5]


outcomes = st.builds(
    EpisodeOutcome,
    correct=st.booleans(),
    cost_usd=st.floats(0, 10, allow_nan=False),
    latency_s=st.floats(0, 600, allow_nan=False),
    tools=st.lists(st.sampled_from(["lookup", "search", "ask_mini", "ask_frontier"]), max_size=4).map(tuple),
)
preferences = st.builds(
    Preference,
    accuracy=st.floats(0, 5), cost=st.floats(0, 5), latency=st.floats(0, 5),
    deny=st.lists(st.sampled_from(["ask_frontier", "search"]), max_size=2),
    prefer=st.lists(st.sampled_from(["ask_mini", "lookup"]), max_size=2),
)
configs = st.builds(
    RewardConfig,
    wrong=st.floats(-0.5, 0), cost_weight=st.floats(0, 0.45), latency_weight=st.floats(0, 0.3),
    efficiency_floor=st.floats(0.01, 1), deny_weight=st.floats(0, 0.2), prefer_weight=st.floats(0, 0.2),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(outcomes, min_size=1, max_size=8), preferences, configs)
def test_every_correct_beats_every_wrong(group, pref, cfg):
    r = totals(group, pref, cfg)
    right = [x for x, o in zip(r, group) if o.correct]
    wrong = [x for x, o in zip(r, group) if not o.correct]
    if right and wrong:
        assert min(right) > max(wrong)
    assert all(x > 0 for x in right)
    assert all(x <= cfg.wrong for x in wrong)


@settings(max_examples=300, deadline=None)
@given(st.lists(outcomes, min_size=2, max_size=8), preferences, configs)
def test_cheaper_correct_beats_dearer_correct(group, pref, cfg):
    """Same tools: no more expensive and no slower, and strictly cheaper or faster -> strictly higher."""
    tools = ("lookup",)
    group = [EpisodeOutcome(o.correct, o.cost_usd, o.latency_s, tools) for o in group]
    r = totals(group, pref, cfg)
    for a, ra in zip(group, r):
        for b, rb in zip(group, r):
            if a.correct and b.correct and a.cost_usd <= b.cost_usd and a.latency_s <= b.latency_s:
                assert ra >= rb - 1e-12
                # differences below float resolution count as ties
                clearly = b.cost_usd - a.cost_usd > 1e-6 or b.latency_s - a.latency_s > 1e-6
                if clearly and cfg.cost_weight > 1e-3 and cfg.latency_weight > 1e-3:
                    assert ra > rb


def test_trajectory_outcome_reads_calls_and_usage():
    traj = Trajectory(task_id="t", env="e", policy="p", messages=[], stop_reason="answer", correct=True,
                      usage=Usage(cost_usd=0.2, latency_s=3.0), answer="x",
                      turns=[Turn(index=0, text="", policy_usage=Usage(), call=ToolCall(name="lookup")),
                             Turn(index=1, text="", policy_usage=Usage())])
    assert EpisodeOutcome.of(traj) == EpisodeOutcome(True, 0.2, 3.0, ("lookup",))


def test_advantages_are_group_relative_and_clipped():
    adv, kept = group_advantages([1.0, 0.0, 0.0, 0.0])
    assert kept and adv[0] > 0 > adv[1] and adv.sum() == pytest.approx(0.0, abs=1e-6)
    adv, kept = group_advantages([1.0] + [0.0] * 99, clip=3.0)
    assert adv.max() == 3.0


def test_advantage_values_by_hand():
    """Rewards [1, 0, 0, 0]: mean 1/4, population std sqrt(3)/4 (GRPO divides by the group's own
    spread, ddof=0; the sample std, ddof=1, would be 1/2 and give 1.5 and -0.5)."""
    adv, kept = group_advantages([1.0, 0.0, 0.0, 0.0], eps=0.0)
    assert kept and adv.tolist() == pytest.approx([3 ** 0.5, -(3 ** -0.5), -(3 ** -0.5), -(3 ** -0.5)], rel=1e-12)
    # [0.9, 0.5]: mean 0.7, std 0.2 -> +-1 (eps 1e-6 shrinks it by one part in 2e5)
    assert group_advantages([0.9, 0.5])[0].tolist() == pytest.approx([1.0, -1.0], rel=1e-5)
    assert group_advantages([0.9, 0.5], scale_by_std=False)[0].tolist() == pytest.approx([0.2, -0.2], rel=1e-12)


def test_zero_variance_groups_are_filtered():
    adv, kept = group_advantages([1.0, 1.0, 1.0])
    assert not kept and np.all(adv == 0)
    _, kept = group_advantages([0.5, 0.55], min_std=0.1)
    assert not kept


def test_unscaled_advantages_keep_the_rewards_scale():
    """All right, only the price differs: an accuracy-first user's small cost term must not push
    as hard as a right-versus-wrong difference does."""
    cost_only = totals([EpisodeOutcome(True, 0.006, 20.0), EpisodeOutcome(True, 0.0003, 10.0)])
    right_wrong = totals([EpisodeOutcome(True, 0.006, 20.0), EpisodeOutcome(False, 0.0003, 10.0)])
    scaled = [group_advantages(r)[0] for r in (cost_only, right_wrong)]
    assert scaled[0][1] == pytest.approx(scaled[1][0], rel=1e-3)  # std scaling: equal pushes
    raw = [group_advantages(r, scale_by_std=False)[0] for r in (cost_only, right_wrong)]
    assert raw[0] == pytest.approx(np.asarray(cost_only) - np.mean(cost_only))
    assert 0 < raw[0][1] < 0.1 * raw[1][0]


def test_no_answer_never_beats_a_wrong_answer():
    """Breaking the tool call is not a cheap way to be wrong."""
    group = [EpisodeOutcome(False, 0.006, 20.0, ("ask_frontier",)), EpisodeOutcome(False, 0.0, 0.1, (), answered=False),
             EpisodeOutcome(True, 0.0003, 10.0, ("ask_mini",))]
    for pref in (ACCURACY_FIRST, COST_AVERSE):
        wrong, silent, right = totals(group, pref)
        assert silent <= wrong < 0 < right


UTILITY = RewardConfig(kind="utility")
LATENCY_AVERSE = Preference(accuracy=1.0, cost=0.2, latency=2.0)


def test_utility_reward_is_the_users_utility_the_eval_reports():
    from toolorch.eval.metrics import metric_arrays
    from toolorch.eval.runner import EvalRow

    outcomes = [EpisodeOutcome(True, 0.006, 20.0), EpisodeOutcome(False, 0.0008, 10.0), EpisodeOutcome(True, 0.001, 6.0)]
    for pref in (ACCURACY_FIRST, COST_AVERSE, LATENCY_AVERSE):
        rows = [EvalRow(block="main", policy="p", task_id=f"t{i}", env="e", category="lookup", difficulty=1,
                        preference="", user_weights=pref.shares(), correct=o.correct, stop_reason="answer",
                        cost_usd=o.cost_usd, latency_s=o.latency_s, turns=1, tool_counts={}, mix_counts={})
                for i, o in enumerate(outcomes)]
        scored = metric_arrays(rows, a=0.5, unit=UTILITY.cost_unit_usd)["user_utility"]
        assert totals(outcomes, pref, UTILITY) == pytest.approx(list(scored))


def test_utility_reward_lets_the_user_decide_whether_a_right_dear_answer_is_worth_it():
    right_dear, wrong_cheap = EpisodeOutcome(True, 0.006, 20.0), EpisodeOutcome(False, 0.0008, 6.0)
    first = totals([right_dear, wrong_cheap], ACCURACY_FIRST, UTILITY)
    assert first == [pytest.approx(1.0), 0.0]  # an accuracy-first user pays nothing for price or time
    thrifty = totals([right_dear, wrong_cheap], COST_AVERSE, UTILITY)
    assert thrifty[0] == pytest.approx(0.25 - 0.75 * 0.6) and thrifty[1] > thrifty[0]  # as they asked
    hurried = totals([EpisodeOutcome(True, 0.001, 30.0), EpisodeOutcome(True, 0.001, 6.0)], LATENCY_AVERSE, UTILITY)
    assert hurried[1] > hurried[0]


def test_utility_reward_charges_no_answer_the_groups_worst_cost_and_latency():
    silent, tried = EpisodeOutcome(False, 0.0, 1.0, answered=False), EpisodeOutcome(False, 0.004, 12.0)
    r = group_rewards([silent, tried], COST_AVERSE, UTILITY)
    assert r[0].cost == r[1].cost < 0 and r[0].latency == r[1].latency
    assert r[0].total <= r[1].total


def test_utility_reward_keeps_the_deny_and_prefer_terms():
    pref = Preference(accuracy=1.0, cost=1.0, deny=["ask_frontier"], prefer=["ask_mini"])
    denied, preferred = EpisodeOutcome(True, 0.001, 5.0, ("ask_frontier",)), EpisodeOutcome(True, 0.001, 5.0, ("ask_mini",))
    r = group_rewards([denied, preferred], pref, UTILITY)
    assert r[0].deny == -UTILITY.deny_weight * 0.5 and r[1].prefer == UTILITY.prefer_weight
    assert r[1].total > r[0].total
