"""summarize(): every number from rows, BCa intervals, paired margins, routing metrics, Pareto front,
the verdict, and report.md's tables of them."""
from __future__ import annotations

import random
import warnings

import numpy as np
import pytest
from scipy import stats

from toolorch.core.records import Task
from toolorch.core.splits import stratified_subsample
from toolorch.eval.metrics import apgr, bca_ci, cpt, detectable, dominates, router_bound, summarize
from toolorch.eval.report import write_report
from toolorch.eval.runner import EvalRow


ACCURACY_FIRST = {"accuracy": 1.0, "cost": 0.0, "latency": 0.0}


def row(policy: str, task: str, correct: bool, cost: float, block: str = "main", category: str = "lookup",
        mix: dict | None = None, cost_weight: float | None = None, tools: dict | None = None, **extra) -> EvalRow:
    """`mix`: the row's mix_counts, also its tool_counts unless `tools` (routes) differ."""
    mix = mix or {}
    return EvalRow(block=block, policy=policy, task_id=task, env=extra.pop("env", "minilib"), category=category,
                   difficulty=1, preference="accuracy=1,cost=0,latency=0",
                   user_weights=extra.pop("user_weights", ACCURACY_FIRST), correct=correct, stop_reason="answer",
                   cost_usd=cost, latency_s=2.0, turns=2, tool_counts=dict(tools if tools is not None else mix),
                   mix_counts=dict(mix), cost_weight=cost_weight, **extra)


def rows_for(policy: str, outcomes: list[tuple[bool, float]], **kw) -> list[EvalRow]:
    return [row(policy, f"t{i}", c, cost, **kw) for i, (c, cost) in enumerate(outcomes)]


def test_bca_contains_mean_and_is_seeded():
    values = np.random.default_rng(3).random(40)
    lo, hi = bca_ci(values, 500, seed=7)
    assert lo <= values.mean() <= hi and lo < hi
    assert bca_ci(values, 500, seed=7) == [lo, hi]
    assert bca_ci(values, 500, seed=8) != [lo, hi]


def test_bca_corrects_the_percentile_interval_on_a_skewed_sample():
    values = np.random.default_rng(0).lognormal(sigma=1.5, size=30)  # long right tail
    lo, hi = bca_ci(values, 2000, seed=5)
    same_draws = stats.bootstrap((values,), np.mean, n_resamples=2000, method="percentile",
                                 rng=np.random.default_rng(5)).confidence_interval
    assert lo <= values.mean() <= hi
    # same resamples, so the shift is BCa's correction alone: towards the tail, both ends
    assert lo > same_draws.low + 1e-3 and hi > same_draws.high + 1e-3


@pytest.mark.parametrize("values", [[0.25] * 7, [0.1] * 3, [3.0], [1.0, 1.0]])
def test_bca_of_degenerate_samples_is_the_mean_without_warnings(values):
    arr = np.array(values)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lo, hi = bca_ci(arr, 200, seed=0)
    assert lo == hi == arr.mean() and not np.isnan(lo)


def test_policy_numbers_are_means_of_rows():
    rows = rows_for("only:frontier", [(True, 0.02), (True, 0.04), (False, 0.03), (True, 0.03)],
                    mix={"ask_frontier": 1})
    rows[2] = rows[2].model_copy(update={"category": "document", "mix_counts": {"db": 1, "ask_frontier": 1},
                                         "malformed_turns": 2})
    s = summarize(rows, utility_a=0.8, cost_unit_usd=0.01, bootstrap_samples=200, seed=0)["policies"]["only:frontier"]
    assert s["n"] == 4 and s["accuracy"] == 0.75 and s["cost_usd"] == pytest.approx(0.03)
    # u = 0.8 * correct - 0.2 * cost / 0.01, averaged: 0.8 * 0.75 - 0.2 * 3
    assert s["utility"] == pytest.approx(0.6 - 0.6)
    assert s["tool_mix"] == {"ask_frontier": 0.8, "db": 0.2}
    assert s["malformed_share"] == 0.25  # tasks with a malformed call, not malformed turns per task
    assert s["user_utility"] == pytest.approx(0.75)  # accuracy-first rows: the user's utility is accuracy
    assert s["by_category"]["document"] == {"n": 1, "accuracy": 0.0, "cost_usd": 0.03,
                                            "utility": pytest.approx(-0.6), "user_utility": 0.0,
                                            "tool_mix": {"ask_frontier": 0.5, "db": 0.5}}
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


def lineup(**grpo_kw) -> list[EvalRow]:
    """Strong expert right on t0..t7 of t0..t9, weak on t0..t3, grpo on all but t0 at a third of frontier's cost."""
    return (rows_for("only:frontier", [(True, 0.03)] * 8 + [(False, 0.03)] * 2, mix={"ask_frontier": 1})
            + rows_for("only:mini", [(True, 0.001)] * 4 + [(False, 0.001)] * 6, mix={"ask_mini": 1})
            + rows_for("grpo", [(False, 0.01)] + [(True, 0.01)] * 9, mix={"ask_mini": 1}, **grpo_kw))


def test_paired_margins_are_means_of_per_task_differences():
    rows = lineup()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the constant accuracy difference vs only:mini must not warn
        paired = summarize(rows, utility_a=0.5, cost_unit_usd=0.01, bootstrap_samples=300)["paired"]
    assert set(paired) == {"only:frontier", "only:mini"}
    mini = paired["only:mini"]
    # grpo is right where mini is wrong on t4..t9 and both are right on t1..t3; on t0 mini wins
    assert mini["n"] == 10 and mini["accuracy"]["mean"] == pytest.approx((6 - 1) / 10)
    assert mini["cost_usd"]["mean"] == pytest.approx(0.009)
    assert mini["cost_usd"]["ci95"] == pytest.approx([0.009, 0.009])  # the same difference on every task
    assert mini["cost_usd"]["above_zero"] and not mini["cost_usd"]["below_zero"]
    # utility: 0.5 * d_correct - 0.5 * d_cost / 0.01
    assert mini["utility"]["mean"] == pytest.approx(0.5 * 0.5 - 0.5 * 0.9)
    frontier = paired["only:frontier"]
    assert frontier["cost_usd"]["below_zero"] and frontier["cost_usd"]["mean"] == pytest.approx(-0.02)
    assert frontier["accuracy"]["mean"] == pytest.approx((2 - 1) / 10)
    # utility differences of +0.05, -0.45, -0.95: a resample can sum to zero but for rounding, which is no margin
    assert mini["utility"]["ci95"][1] == pytest.approx(0, abs=1e-12) and not mini["utility"]["below_zero"]
    lo, hi = frontier["accuracy"]["ci95"]
    assert lo <= 0.1 <= hi and not frontier["accuracy"]["above_zero"]  # one task's edge on ten is no margin


def test_paired_margins_split_by_category_add_up_to_the_whole():
    """Per category, the margin is the mean of that category's differences; weighted by the
    categories' task counts the category means give back the overall margin."""
    rows = lineup()
    cats = {f"t{i}": ("reasoning" if i < 6 else "lookup") for i in range(10)}
    rows = [r.model_copy(update={"category": cats[r.task_id]}) for r in rows]
    mini = summarize(rows, utility_a=0.5, cost_unit_usd=0.01, bootstrap_samples=300)["paired"]["only:mini"]
    by = mini["by_category"]
    assert set(by) == {"reasoning", "lookup"} and by["reasoning"]["n"] == 6 and by["lookup"]["n"] == 4
    # t4, t5 (reasoning) and t6..t9 (lookup): grpo right, mini wrong; t0: mini right, grpo wrong
    assert by["lookup"]["user_utility"]["mean"] > by["reasoning"]["user_utility"]["mean"]
    for m in ("utility", "user_utility"):
        whole = sum(by[c]["n"] * by[c][m]["mean"] for c in by) / 10
        assert whole == pytest.approx(mini[m]["mean"])
        assert by["lookup"][m]["ci95"][0] <= by["lookup"][m]["mean"] <= by["lookup"][m]["ci95"][1]


def test_paired_margin_where_trained_wins_every_task_is_above_zero():
    base = rows_for("cascade", [(False, 0.02), (False, 0.05), (False, 0.01), (False, 0.04), (False, 0.02)])
    grpo = rows_for("grpo", [(True, 0.01), (True, 0.02), (True, 0.005), (True, 0.01), (True, 0.03)])
    m = summarize(base + grpo, utility_a=0.5, cost_unit_usd=0.01, bootstrap_samples=300)["paired"]["cascade"]
    assert m["n"] == 5
    assert m["accuracy"] == {"mean": 1.0, "ci95": [1.0, 1.0], "above_zero": True, "below_zero": False,
                             "detectable": 0.0}  # no spread: any margin shows
    d_cost = np.array([-0.01, -0.03, -0.005, -0.03, 0.01])
    assert m["cost_usd"]["mean"] == pytest.approx(d_cost.mean())
    d_utility = 0.5 * 1 - 0.5 * d_cost / 0.01  # 1.0, 2.0, 0.75, 2.0, 0.0
    lo, hi = m["utility"]["ci95"]
    assert m["utility"]["mean"] == pytest.approx(d_utility.mean()) and lo <= d_utility.mean() <= hi
    assert m["utility"]["above_zero"] and not m["utility"]["below_zero"] and 0 < lo < hi


def test_user_utility_credits_reading_the_preference():
    # ten tasks, each asked by an accuracy-first and a cost-averse user (weights 1 : 2 : 0.2 on
    # accuracy, cost, latency). The frontier is right on every task at 2 cents, the cheap expert
    # on half of them at 0.1 cent; the orchestrator sends each user to the expert that suits it.
    # Every row waits 2 s.
    thrifty = {"accuracy": 1 / 3.2, "cost": 2 / 3.2, "latency": 0.2 / 3.2}
    users = [ACCURACY_FIRST, thrifty] * 10
    frontier = [(True, 0.02)] * 20
    cheap = [(i % 4 < 2, 0.001) for i in range(20)]
    picks = [frontier[i] if users[i] is ACCURACY_FIRST else cheap[i] for i in range(20)]

    def rows(policy, outcomes):
        return [row(policy, f"t{i}", c, cost, user_weights=users[i]) for i, (c, cost) in enumerate(outcomes)]

    summary = summarize(rows("grpo", picks) + rows("only:frontier", frontier) + rows("only:mini", cheap),
                        utility_a=0.5, cost_unit_usd=0.01, bootstrap_samples=300)
    u = {p: s["user_utility"] for p, s in summary["policies"].items()}

    def thrifty_u(correct, cost):  # w_acc * correct - w_cost * cost / 0.01 - w_lat * 2 s / 60 s
        return thrifty["accuracy"] * correct - thrifty["cost"] * cost / 0.01 - thrifty["latency"] * 2 / 60

    # an accuracy-first user scores correctness alone
    assert u["only:frontier"] == pytest.approx((1.0 + thrifty_u(1, 0.02)) / 2)
    assert u["grpo"] == pytest.approx((1.0 + np.mean([thrifty_u(c, cost) for c, cost in cheap[1::2]])) / 2)
    for expert in ("only:frontier", "only:mini"):
        assert summary["paired"][expert]["user_utility"]["above_zero"], expert
    # at one fixed trade-off for every task (a = 0.5), the frontier's accuracy-first users cost the policy
    # what it saves on cost-averse ones: the fixed-weight utility does not tell it from the cheap expert
    assert not summary["paired"]["only:mini"]["utility"]["above_zero"]


def test_paired_rows_are_matched_by_task_id_not_order():
    rows = lineup()
    shuffled = rows[:10] + rows[20:]
    mini = rows[10:20]
    random.Random(4).shuffle(mini)
    assert [r.task_id for r in mini] != [r.task_id for r in rows[10:20]]
    # a task only one policy scored is left out of the pair
    extra = row("grpo", "t99", True, 0.0)
    a = summarize(rows, bootstrap_samples=200)["paired"]
    b = summarize(shuffled + mini + [extra], bootstrap_samples=200)["paired"]
    assert a["only:mini"] == b["only:mini"] and b["only:mini"]["n"] == 10


def test_duplicate_task_rows_name_the_policy():
    rows = lineup() + [row("only:mini", "t3", False, 0.001, mix={"ask_mini": 1})]
    with pytest.raises(ValueError, match=r"only:mini: more than one main-block row for task 't3'"):
        summarize(rows, bootstrap_samples=50)


def test_apgr_and_cpt_of_hand_built_curves():
    line = [(0.0, 0.0), (0.25, 0.25), (1.0, 1.0)]
    assert apgr(line) == pytest.approx(0.5)
    assert cpt(line, 0.5) == pytest.approx(0.5) and cpt(line, 0.8) == pytest.approx(0.8)
    # up to PGR 1 at share 0.5, flat after: 0.25 + 0.5
    knee = [(0.0, 0.0), (0.5, 1.0), (1.0, 1.0)]
    assert apgr(knee) == pytest.approx(0.75) and cpt(knee, 0.8) == pytest.approx(0.4)
    # clipped for the area only: a dip to -1 at share 0.5 counts as 0 between 0.25 and 0.75
    dip = [(0.0, 1.0), (0.5, -1.0), (1.0, 1.0)]
    assert apgr(dip) == pytest.approx(0.25) and cpt(dip, 0.5) == 0.0
    assert cpt([(0.0, 0.0), (1.0, 0.6)], 0.8) is None


def test_routing_metrics_of_the_trained_sweep():
    # grpo's main point: t0..t4 ask frontier through `answer`, t5..t9 ask mini; accuracy 0.9
    main = [row("grpo", f"t{i}", i != 0, 0.01, mix={"answer": 1},
                tools={"ask_frontier": 1} if i < 5 else {"ask_mini": 1}) for i in range(10)]
    # the cost-weight-1 point asks only mini (and a db tool, no expert) and scores like mini
    cheap = [row("grpo", f"t{i}", i < 4, 0.001, block="pareto", cost_weight=1.0, mix={"ask_mini": 1, "db": 1})
             for i in range(10)]
    r = summarize(lineup()[:20] + main + cheap, bootstrap_samples=50)["routing"]
    assert r["strongest"] == "only:frontier" and r["weakest"] == "only:mini"
    curve = [(p["label"], p["strong_share"], p["pgr"]) for p in r["points"]]
    assert curve == [("only:mini (anchor)", 0.0, 0.0), ("grpo (cost weight 1)", 0.0, 0.0),
                     ("grpo", 0.5, pytest.approx(1.25)), ("only:frontier (anchor)", 1.0, 1.0)]
    # (0, 0) -> (0.5, 1.25) -> (1, 1); clipped at 1 from share 0.4: 0.4 * 1 / 2 + 0.6
    assert r["apgr"] == pytest.approx(0.8)
    assert r["cpt50"] == pytest.approx(0.2) and r["cpt80"] == pytest.approx(0.32)
    assert "ask_frontier" in r["note"]


def test_routing_is_undefined_when_experts_are_equally_accurate():
    rows = (rows_for("only:frontier", [(True, 0.03), (False, 0.03)], mix={"ask_frontier": 1})
            + rows_for("only:mini", [(False, 0.001), (True, 0.001)], mix={"ask_mini": 1})
            + rows_for("grpo", [(True, 0.01), (True, 0.01)], mix={"ask_mini": 1}))
    r = summarize(rows, bootstrap_samples=50)["routing"]
    assert r["strongest"] == "only:mini" and r["weakest"] == "only:mini"  # ties go to the cheaper
    assert r["apgr"] is None and r["cpt50"] is None and r["cpt80"] is None and r["points"] == []
    assert "equally accurate" in r["note"]
    assert "no trained policy" in summarize(rows[:4], bootstrap_samples=50)["routing"]["note"]


def test_summary_is_deterministic():
    rows = lineup()
    assert summarize(rows, bootstrap_samples=200, seed=3) == summarize(list(reversed(rows)), bootstrap_samples=200,
                                                                         seed=3)


def test_report_shows_paired_margins_and_routing(tmp_path):
    summary = summarize(lineup(), bootstrap_samples=200)
    summary.update(config={"utility_a": 0.5, "cost_unit_usd": 0.01, "bootstrap_samples": 200, "seed": 0},
                   simulated_experts=False)
    text = write_report(summary, tmp_path).read_text()
    assert "| accuracy [95% BCa CI] |" in text and "95% BCa bootstrap" in text
    assert "| turns | malformed | utility [95% BCa CI] |" in text
    paired = text.split("## Trained policy vs baselines (paired)")[1].split("##")[0]
    assert ("| baseline | n | Δ accuracy [95% CI] | Δ cost USD [95% CI] | Δ utility [95% CI] "
            "| Δ user utility [95% CI] | detectable Δ user utility |") in paired
    mini = summary["paired"]["only:mini"]
    assert f"| only:mini | 10 | {mini['accuracy']['mean']:+.3f} [" in paired
    assert "| +0.00900 [+0.00900, +0.00900] ↑ |" in paired
    r = summary["routing"]
    assert f"**APGR** {r['apgr']:.3f}, **CPT(50%)** {r['cpt50']:.1%}, **CPT(80%)** {r['cpt80']:.1%}" in text
    assert "| grpo | ask_mini 100% |" in text.split("Tool mix per category")[1]
    h = summary["headroom"]
    assert f"{h['router_utility']:.3f} against the best single expert's ({h['best_single_expert']})" in text
    u = h["user_utility"]
    assert f"scores {u['router_utility']:.3f} against the best single expert's ({u['best_single_expert']})" in text
    held = u["held_out_choice"]
    assert f"the router scores {held['router_utility']:.3f}: paired margin" in text
    assert f"{held['margin']['detectable']:.3f} that these {h['n']} tasks detect" in text


def test_detectable_margin_is_the_power_calculation_and_shrinks_with_tasks():
    rng = np.random.default_rng(0)
    diffs = rng.normal(0.05, 0.3, 150)
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert detectable(diffs) == pytest.approx(z * diffs.std(ddof=1) / np.sqrt(150))
    assert detectable(np.tile(diffs, 4)) == pytest.approx(detectable(diffs) / 2, rel=0.01)  # 4x tasks, half
    assert detectable(np.array([0.1])) is None
    # by simulation: a true margin of `detectable` gives an interval above zero about 80% of the time
    d = detectable(rng.normal(0.0, 0.3, 100_000)) * np.sqrt(100_000 / 150)
    shown = [bca_ci(rng.normal(d, 0.3, 150), 200, seed=s)[0] > 0 for s in range(150)]
    assert 0.65 < np.mean(shown) < 0.93


def specialists(reasoning_gap: float) -> list[EvalRow]:
    """Two experts on 20 lookup and 20 reasoning tasks: `cheap` (a cent a call) right on every
    lookup and on none of the reasoning; `strong` (reasoning_gap cents) right on all of them."""
    rows = []
    for i in range(40):
        category = "lookup" if i < 20 else "reasoning"
        rows.append(row("only:cheap", f"t{i:02d}", category == "lookup", 0.01, category=category))
        rows.append(row("only:strong", f"t{i:02d}", True, 0.01 * reasoning_gap, category=category))
    return rows


def test_headroom_routes_each_category_to_its_best_expert():
    # strong at 1.2 cents scores 0.5 - 0.6 = -0.1 on every task, cheap 0 on lookups and -0.5 on
    # reasoning (mean -0.25): strong is the best single expert, yet cheap is better on lookups
    h = summarize(specialists(1.2), bootstrap_samples=300)["headroom"]
    assert h["category_choice"] == {"lookup": "only:cheap", "reasoning": "only:strong"}
    assert h["best_single_expert"] == "only:strong" and h["best_single_utility"] == pytest.approx(-0.1)
    assert h["router_utility"] == pytest.approx((20 * 0.0 + 20 * -0.1) / 40)
    assert h["margin"]["mean"] == pytest.approx(h["router_utility"] - h["best_single_utility"])
    assert h["margin"]["above_zero"]


def test_headroom_is_zero_when_one_expert_is_best_everywhere():
    # strong at 5 cents: its correct answers never pay for its price, so cheap is best on both categories
    h = summarize(specialists(5.0), bootstrap_samples=300)["headroom"]
    assert set(h["category_choice"].values()) == {"only:cheap"} and h["best_single_expert"] == "only:cheap"
    assert h["margin"]["mean"] == 0 and not h["margin"]["above_zero"]


def test_user_headroom_routes_each_user_to_their_expert_where_one_expert_cannot():
    # one category, two users: accuracy-first users score strong's right answers (1 > 0.4 for cheap),
    # cost-only users its price (strong -0.5 against cheap -0.01). Either expert alone serves one
    # of them badly; the router that reads the user's weights serves both
    cost_only = {"accuracy": 0.0, "cost": 1.0, "latency": 0.0}
    rows = []
    for i in range(40):
        weights = ACCURACY_FIRST if i % 2 else cost_only
        rows.append(row("only:cheap", f"t{i:02d}", i % 5 < 2, 0.0001, user_weights=weights))
        rows.append(row("only:strong", f"t{i:02d}", True, 0.005, user_weights=weights))
    h = summarize(rows, bootstrap_samples=300)["headroom"]["user_utility"]
    assert h["groups"] == 2 and h["best_single_expert"] == "only:strong"
    assert h["best_single_utility"] == pytest.approx((20 * 1.0 + 20 * -0.5) / 40)
    assert h["router_utility"] == pytest.approx((20 * 1.0 + 20 * -0.01) / 40)
    assert h["margin"]["above_zero"]


def test_held_out_router_choice_loses_the_bounds_luck():
    # per key three tasks; in 'lucky a' keys one task alone makes 'a' the best, in 'lucky b' keys
    # the mirror. Chosen on the same tasks the bound routes every key to its lucky expert and
    # keeps that task's 1; chosen without the task it routes, each task goes where it scores 0
    lucky, other = [1.0, 0.0, 0.0], [0.0, 0.4, 0.0]
    keys, a, b = [], [], []
    for k in range(10):
        keys += [f"k{k}"] * 3
        a += lucky if k % 2 == 0 else other
        b += other if k % 2 == 0 else lucky
    out = router_bound({"only:a": np.array(a), "only:b": np.array(b)}, keys, samples=300, seed=0)
    assert out["best_single_utility"] == pytest.approx(1.4 / 6)
    assert out["router_utility"] == pytest.approx(1 / 3) and out["margin"]["mean"] == pytest.approx(1 / 3 - 1.4 / 6)
    held = out["held_out_choice"]
    assert held["router_utility"] == pytest.approx(0.0)
    assert held["margin"]["below_zero"]


def test_held_out_router_keeps_a_real_specialist_choice():
    # specialists(1.2): cheap is better on every lookup, strong on every reasoning task: leaving one
    # task out changes no group's choice, so the held-out router equals the bound
    h = summarize(specialists(1.2), bootstrap_samples=300)["headroom"]
    assert h["held_out_choice"]["router_utility"] == pytest.approx(h["router_utility"])
    assert h["held_out_choice"]["margin"]["above_zero"]


def test_headroom_needs_two_experts():
    assert summarize(rows_for("only:frontier", [(True, 0.01)] * 3), bootstrap_samples=100)["headroom"] is None


def test_stratified_subsample_keeps_category_shares():
    tasks = [Task(id=f"l{i}", env="e", question="q", answer="a", category="lookup") for i in range(60)]
    tasks += [Task(id=f"d{i}", env="e", question="q", answer="a", category="document") for i in range(20)]
    sub = stratified_subsample(tasks, 20, seed=1)
    assert len(sub) == 20 and sum(t.category == "document" for t in sub) == 5
    assert [t.id for t in sub] == [t.id for t in stratified_subsample(tasks, 20, seed=1)]
    assert stratified_subsample(tasks, None, seed=1) == tasks
