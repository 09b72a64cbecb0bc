"""Every reported number, computed from the saved per-task rows alone.

    summary = summarize(rows, utility_a=0.5, cost_unit_usd=0.01, bootstrap_samples=1000, seed=0)

Utility per task is `u = a * correct - (1 - a) * cost_usd / cost_unit_usd`: cost is
measured in units of `cost_unit_usd` dollars (cents by default) so that the two terms
are of comparable size. `utility` fixes a (0.5 by default) for every task. `user_utility`
weighs each task at its own user's trade-off, the one the orchestrator is asked to make:
`w_acc * correct - w_cost * cost_usd / cost_unit_usd - w_lat * latency_s / 60` with the user's
weights scaled to sum to 1 (an accuracy-first user scores correctness alone): the formula of
`runtime.rewards.user_utility`, which the `utility` GRPO reward trains on.
A fixed expert cannot serve both an accuracy-first and a cost-averse user; an orchestrator
that reads the preference can, and only `user_utility` credits it for that.

Intervals are 95% BCa bootstraps (bias-corrected and accelerated, `scipy.stats.bootstrap`)
of a mean over tasks (a policy's rows taken in task-id order), seeded per (block, policy, metric),
paired margins per (baseline, metric), so they do not depend on evaluation order. Where BCa is
undefined (one task, or every value equal) the interval is the mean itself.

`paired` holds the trained policy's margins over every other main-block policy: the mean of
per-task differences (trained - baseline) over the tasks both scored, with a BCa interval and
whether it lies entirely above or below zero. Pairing by task removes the spread of task
difficulty that two independent intervals would carry. Every margin also carries `detectable`:
the smallest true difference its interval would exclude four times in five on this many tasks
(80% power): a claim about a margin smaller than that needs more tasks, not another run.

`routing` holds RouteLLM's routing metrics (Ong et al. 2024) of the trained policy between the
weakest (W) and strongest (S) single expert: a point's PGR (performance gap recovered,
(acc - acc(W)) / (acc(S) - acc(W))) against its strong share (the share of its expert calls
that went to S), the area under that curve (APGR) and the smallest strong share reaching
PGR 0.5 / 0.8 (CPT(50%), CPT(80%)).

`headroom` asks how much any router could gain over the best single expert on these tasks:
the category router sends each task to the single expert with the highest mean utility on
its category (chosen on the same tasks, so an optimistic bound for a router that reads the
category perfectly), and its paired margin over the best single expert. When that margin's
interval holds zero, routing between these experts cannot beat the best of them measurably;
only what the orchestrator does itself (tools, fewer calls) can. `headroom.user_utility` is the
same bound on user utility for a router that reads the category and the user's weights: the most a
policy that only picks one expert per task could gain over the best single expert for these users.
Each bound's `held_out_choice` picks every task's expert without that task (leave one out): what a
router learnt from these tasks could expect on new ones, without the bound's luck of the draw.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable

import numpy as np
from scipy import stats

from toolorch.core.records import ANSWER_TOOL, expert_tool_name
from toolorch.core.seeds import stable_seed
from toolorch.eval.runner import EvalRow
from toolorch.runtime.rewards import user_utility

GENERALISATION_BLOCKS = ("unseen_pricing", "unseen_tool")
BASELINES = ("random", "cascade", "prompted", "oracle")
FRONTIER_COST_SHARE = 0.3  # the trained policy should match the strongest expert at <= 30% of its cost
METRICS = ("accuracy", "cost_usd", "latency_s", "turns", "utility", "user_utility")
PAIRED_METRICS = ("accuracy", "cost_usd", "utility", "user_utility")
CPT_LEVELS = {"cpt50": 0.5, "cpt80": 0.8}
POWER = 0.8  # a margin's `detectable`: the true difference its 95% interval excludes this often
EXPERT_TOOL_PREFIX = expert_tool_name("")  # "ask_": every expert's tool is named ask_<expert>


def is_baseline(policy: str) -> bool:
    return policy in BASELINES or policy.startswith("only:")


def metric_arrays(rows: list[EvalRow], a: float, unit: float) -> dict[str, np.ndarray]:
    correct = np.array([r.correct for r in rows], dtype=float)
    cost = np.array([r.cost_usd for r in rows], dtype=float)
    latency = np.array([r.latency_s for r in rows], dtype=float)
    w = {k: np.array([r.user_weights[k] for r in rows], dtype=float) for k in ("accuracy", "cost", "latency")}
    return {
        "accuracy": correct,
        "cost_usd": cost,
        "latency_s": latency,
        "turns": np.array([r.turns for r in rows], dtype=float),
        "utility": a * correct - (1 - a) * cost / unit,
        "user_utility": user_utility(correct, cost, latency, w, unit),
    }


def bca_ci(values: np.ndarray, samples: int, seed: int) -> list[float]:
    """95% BCa interval of the mean of `values`; [mean, mean] where BCa is undefined."""
    if len(values) < 2 or np.ptp(values) == 0:
        # One task, or nothing varies: every resample's mean is the mean, and BCa's acceleration
        # is 0/0 (scipy would warn and return NaN). The mean, not values[0], so lo <= mean <= hi
        # holds to the last bit.
        mean = float(values.mean())
        return [mean, mean]
    # `rng=`: `random_state=` is its transitional alias under SPEC 7 (the same draws in scipy 1.17),
    # which warns once scipy sets the alias's end version
    res = stats.bootstrap((values,), np.mean, n_resamples=samples, confidence_level=0.95, method="BCa",
                          rng=np.random.default_rng(seed))
    return [float(res.confidence_interval.low), float(res.confidence_interval.high)]


def tool_mix(rows: list[EvalRow]) -> dict[str, float]:
    """Share of all calls that went to each kind of tool (db, search, code) or each expert."""
    totals: dict[str, int] = defaultdict(int)
    for r in rows:
        for key, n in r.mix_counts.items():
            totals[key] += n
    calls = sum(totals.values())
    return {k: totals[k] / calls for k in sorted(totals)} if calls else {}


def small_stats(rows: list[EvalRow], a: float, unit: float) -> dict[str, Any]:
    arrays = metric_arrays(rows, a, unit)
    return {"n": len(rows), **{m: float(arrays[m].mean()) for m in ("accuracy", "cost_usd", "utility", "user_utility")}}


def policy_stats(rows: list[EvalRow], a: float, unit: float, samples: int, seed: int) -> dict[str, Any]:
    # in task order: the resamples (and the float sums) then do not depend on the order rows were saved in
    rows = sorted(rows, key=lambda r: r.task_id)
    arrays = metric_arrays(rows, a, unit)
    by_category: dict[str, list[EvalRow]] = defaultdict(list)
    for r in rows:
        by_category[r.category].append(r)
    return {
        "n": len(rows),
        **{m: float(arrays[m].mean()) for m in METRICS},
        "calls_per_task": float(np.mean([sum(r.tool_counts.values()) for r in rows])),
        # tasks where the policy wrote a call no tool takes (each one a wasted turn)
        "malformed_share": float(np.mean([r.malformed_turns > 0 for r in rows])),
        "tool_mix": tool_mix(rows),
        "ci95": {m: bca_ci(arrays[m], samples, stable_seed(seed, m)) for m in METRICS},
        # the tool mix per category: does the policy use tools where they are cheaper than an expert?
        "by_category": {c: {**small_stats(by_category[c], a, unit), "tool_mix": tool_mix(by_category[c])}
                        for c in sorted(by_category)},
    }


def group(rows: Iterable[EvalRow], *keys: str) -> dict[tuple, list[EvalRow]]:
    out: dict[tuple, list[EvalRow]] = defaultdict(list)
    for r in rows:
        out[tuple(getattr(r, k) for k in keys)].append(r)
    return dict(out)


def block_policies(rows: list[EvalRow], block: str, a: float, unit: float, samples: int,
                   seed: int) -> dict[str, dict[str, Any]]:
    groups = group((r for r in rows if r.block == block), "policy")
    return {p: policy_stats(g, a, unit, samples, stable_seed(seed, block, p)) for (p,), g in sorted(groups.items())}


def pareto_points(rows: list[EvalRow], main: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Main-block policies plus each swept preference point; `on_front` among non-oracle points."""
    points = [{"label": p, "policy": p, "cost_weight": None, "n": s["n"], "accuracy": s["accuracy"],
               "cost_usd": s["cost_usd"], "upper_bound": p == "oracle"} for p, s in main.items()]
    for (policy, w), g in sorted(group((r for r in rows if r.block == "pareto"), "policy", "cost_weight").items()):
        points.append({"label": f"{policy} (cost weight {w:g})", "policy": policy, "cost_weight": w, "n": len(g),
                       "accuracy": float(np.mean([r.correct for r in g])),
                       "cost_usd": float(np.mean([r.cost_usd for r in g])), "upper_bound": False})
    attainable = [p for p in points if not p["upper_bound"]]
    for p in points:
        p["on_front"] = not p["upper_bound"] and not any(dominates(q, p) for q in attainable)
    return points


def dominates(q: dict[str, Any], p: dict[str, Any]) -> bool:
    """q is at least as accurate and as cheap as p, and strictly better in one."""
    return (q["accuracy"] >= p["accuracy"] and q["cost_usd"] <= p["cost_usd"]
            and (q["accuracy"] > p["accuracy"] or q["cost_usd"] < p["cost_usd"]))


def heldout_split(rows: list[EvalRow], a: float, unit: float) -> dict[str, Any]:
    """(c) held-out environments vs held-out templates, per policy (main block)."""
    main = [r for r in rows if r.block == "main"]
    known = bool(main) and all(r.env_seen is not None for r in main)
    out: dict[str, Any] = {"grouping": "train_overlap" if known else "env_only", "policies": {}}
    for (policy,), g in sorted(group(main, "policy").items()):
        entry: dict[str, Any] = {"by_env": {e: small_stats(eg, a, unit) for (e,), eg in sorted(group(g, "env").items())}}
        if known:
            splits = {
                "unseen_env": [r for r in g if not r.env_seen],
                "seen_env_unseen_template": [r for r in g if r.env_seen and not r.template_seen],
                "seen_env_seen_template": [r for r in g if r.env_seen and r.template_seen],
            }
            entry.update({k: small_stats(v, a, unit) for k, v in splits.items() if v})
        out["policies"][policy] = entry
    return out


def generalisation(rows: list[EvalRow], a: float, unit: float, samples: int, seed: int) -> dict[str, Any]:
    """Each shifted block next to the main block on the same tasks (deltas: shifted - main)."""
    main = group((r for r in rows if r.block == "main"), "policy", "task_id")
    out: dict[str, Any] = {}
    for block in GENERALISATION_BLOCKS:
        stats = block_policies(rows, block, a, unit, samples, seed)
        if not stats:
            continue
        for policy, s in stats.items():
            ids = {r.task_id for r in rows if r.block == block and r.policy == policy}
            base = [main[(policy, t)][0] for t in sorted(ids) if (policy, t) in main]
            if base:
                ref = small_stats(base, a, unit)
                s["main_same_tasks"] = ref
                s["delta_accuracy"] = s["accuracy"] - ref["accuracy"]
                s["delta_cost_usd"] = s["cost_usd"] - ref["cost_usd"]
        out[block] = {"policies": stats}
    out["heldout_envs"] = heldout_split(rows, a, unit)
    return out


def one_per_task(rows: list[EvalRow], policy: str) -> dict[str, EvalRow]:
    """A policy's rows by task id; two rows for one task would make the pairing ambiguous."""
    by_task: dict[str, EvalRow] = {}
    for r in rows:
        if r.task_id in by_task:
            raise ValueError(f"{policy}: more than one main-block row for task {r.task_id!r}; "
                             "paired margins need one row per (policy, task)")
        by_task[r.task_id] = r
    return by_task


def margin(diffs: np.ndarray, samples: int, seed: int) -> dict[str, Any]:
    """Mean of per-task differences, its BCa interval, and whether that excludes zero."""
    # BCa of the difference array: resampling tasks and taking mean(d) is what paired=True on the
    # two arrays would do with mean(x) - mean(y), and the constant-difference check stays one line.
    lo, hi = bca_ci(diffs, samples, seed)
    # an end that is zero but for rounding (a resample of +0.05s and -0.45s summing to -5e-17) is zero
    tol = 1e-9 * float(np.abs(diffs).max())
    return {"mean": float(diffs.mean()), "ci95": [lo, hi], "above_zero": lo > tol, "below_zero": hi < -tol,
            "detectable": detectable(diffs)}


def detectable(diffs: np.ndarray, power: float = POWER) -> float | None:
    """The smallest true mean difference that a 95% interval on these many tasks, at this spread,
    excludes with probability `power` (normal approximation). A real margin below it is
    likely to show an interval that holds zero: it says how many tasks a claim needs."""
    if diffs.size < 2:
        return None
    z = stats.norm.ppf(0.975) + stats.norm.ppf(power)
    return float(z * diffs.std(ddof=1) / np.sqrt(diffs.size))


def paired_margins(rows: list[EvalRow], trained: str | None, a: float, unit: float, samples: int,
                   seed: int) -> dict[str, dict[str, Any]]:
    """The trained policy minus every other main-block policy, task by task (matched by task id)."""
    if trained is None:
        return {}
    by_policy = {p: one_per_task(g, p) for (p,), g in group((r for r in rows if r.block == "main"), "policy").items()}
    mine = by_policy[trained]
    out: dict[str, dict[str, Any]] = {}
    for baseline, theirs in sorted(by_policy.items()):
        if baseline == trained:
            continue
        shared = sorted(mine.keys() & theirs.keys())
        if not shared:
            out[baseline] = {"n": 0, **{m: None for m in PAIRED_METRICS}}
            continue
        ours = metric_arrays([mine[t] for t in shared], a, unit)
        base = metric_arrays([theirs[t] for t in shared], a, unit)
        out[baseline] = {"n": len(shared), **{
            m: margin(ours[m] - base[m], samples, stable_seed(seed, "paired", baseline, m)) for m in PAIRED_METRICS},
            "by_category": category_margins([mine[t].category for t in shared], ours, base, samples,
                                            stable_seed(seed, "paired", baseline))}
    return out


def category_margins(categories: list[str], ours: dict[str, np.ndarray], base: dict[str, np.ndarray], samples: int,
                     seed: int) -> dict[str, dict[str, Any]]:
    """The utilities' margins within each category with two tasks or more: where a margin comes
    from, and how a held-out set's category mix moves it."""
    cats = np.array(categories)
    return {c: {"n": int((cats == c).sum()), **{m: margin((ours[m] - base[m])[cats == c], samples,
                                                           stable_seed(seed, c, m)) for m in ("utility", "user_utility")}}
            for c in sorted(set(categories)) if (cats == c).sum() >= 2}


def single_experts(policies: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p: s for p, s in policies.items() if p.startswith("only:")}


def strongest_expert(policies: dict[str, dict[str, Any]]) -> str | None:
    """The most accurate `only:` policy; of equally accurate ones, the cheapest."""
    experts = single_experts(policies)
    return max(experts, key=lambda p: (experts[p]["accuracy"], -experts[p]["cost_usd"])) if experts else None


def weakest_expert(policies: dict[str, dict[str, Any]]) -> str | None:
    """The least accurate `only:` policy; of equally accurate ones, the cheapest."""
    experts = single_experts(policies)
    return min(experts, key=lambda p: (experts[p]["accuracy"], experts[p]["cost_usd"])) if experts else None


def is_expert_route(route: str) -> bool:
    # `answer` without a model string stays `answer`: still a call addressed to an expert
    return route.startswith(EXPERT_TOOL_PREFIX) or route == ANSWER_TOOL


def strong_share(rows: list[EvalRow], strong_tool: str) -> float:
    """Share of the rows' expert calls that went to the strong expert (0 without expert calls).

    Counted on routes (`tool_counts`), where `answer(model=m)` counts as a call to m like
    `ask_m`: `mix_counts` keys every `answer` call as `answer`, whatever model wrote it.
    """
    experts = sum(n for r in rows for route, n in r.tool_counts.items() if is_expert_route(route))
    strong = sum(r.tool_counts.get(strong_tool, 0) for r in rows)
    return strong / experts if experts else 0.0


def pgr(accuracy: float, weak: float, strong: float) -> float:
    """Performance gap recovered: 0 at the weakest expert's accuracy, 1 at the strongest's."""
    return (accuracy - weak) / (strong - weak)


def best_per_share(curve: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(share, PGR) sorted by share, one point per share: the best PGR reached at that share
    (of two routers spending the same share on S, the better one is the attainable curve)."""
    best: dict[float, float] = {}
    for x, y in curve:
        best[x] = max(y, best.get(x, y))
    return sorted(best.items())


def apgr(curve: list[tuple[float, float]]) -> float:
    """Area under the piecewise-linear PGR curve over strong share, the curve clipped to [0, 1].

    `curve`: (share, PGR) sorted by share, from share 0 to 1. Segments are split where they cross
    PGR 0 or 1 first, so the clipped area is exact (clipping only the points would not be).
    """
    xs, ys = [curve[0][0]], [curve[0][1]]
    for (x0, y0), (x1, y1) in zip(curve, curve[1:]):
        for level in sorted((lv for lv in (0.0, 1.0) if min(y0, y1) < lv < max(y0, y1)), reverse=y1 < y0):
            xs.append(x0 + (level - y0) / (y1 - y0) * (x1 - x0))
            ys.append(level)
        xs.append(x1)
        ys.append(y1)
    y = np.clip(ys, 0.0, 1.0)
    return float(np.sum(np.diff(xs) * (y[1:] + y[:-1]) / 2))


def cpt(curve: list[tuple[float, float]], target: float) -> float | None:
    """Smallest strong share at which the piecewise-linear curve reaches PGR `target` (None: never)."""
    if curve[0][1] >= target:
        return curve[0][0]
    for (x0, y0), (x1, y1) in zip(curve, curve[1:]):
        if y0 < target <= y1:
            return x0 + (target - y0) / (y1 - y0) * (x1 - x0)
    return None


def trained_points(rows: list[EvalRow], trained: str) -> list[tuple[str, float | None, list[EvalRow]]]:
    """(label, cost weight, rows) of the trained policy's main-block point and each swept point."""
    out: list[tuple[str, float | None, list[EvalRow]]] = [
        (trained, None, [r for r in rows if r.block == "main" and r.policy == trained])]
    swept = group((r for r in rows if r.block == "pareto" and r.policy == trained), "cost_weight")
    out += [(f"{trained} (cost weight {w:g})", w, g) for (w,), g in sorted(swept.items())]
    return out


def routing_gap(policies: dict[str, dict[str, Any]], trained: str | None, strong: str | None,
                weak: str | None) -> str | None:
    """Why PGR is undefined for this run, or None when it is defined."""
    if trained is None:
        return "no trained policy was evaluated: there is no routing curve"
    if strong is None or weak is None:
        return "no single-expert (only:) policy was evaluated: PGR needs a weakest and a strongest expert"
    if policies[strong]["accuracy"] == policies[weak]["accuracy"]:
        return (f"the strongest ({strong}) and weakest ({weak}) single experts are equally accurate "
                f"({policies[strong]['accuracy']:.3f}): PGR divides by their gap, which is zero")
    return None


def routing(rows: list[EvalRow], policies: dict[str, dict[str, Any]], trained: str | None) -> dict[str, Any]:
    """RouteLLM's PGR / APGR / CPT of the trained policy's points between W (share 0) and S (share 1)."""
    strong, weak = strongest_expert(policies), weakest_expert(policies)
    out: dict[str, Any] = {"strongest": strong, "weakest": weak, "points": [], "apgr": None,
                           **{k: None for k in CPT_LEVELS}}
    reason = routing_gap(policies, trained, strong, weak)
    if reason is not None:
        out["note"] = reason
        return out
    acc_s, acc_w = policies[strong]["accuracy"], policies[weak]["accuracy"]
    strong_tool = expert_tool_name(strong.removeprefix("only:"))
    points = [{"label": f"{weak} (anchor)", "cost_weight": None, "n": policies[weak]["n"], "accuracy": acc_w,
               "strong_share": 0.0, "pgr": 0.0, "anchor": True}]
    for label, w, g in trained_points(rows, trained):
        acc = float(np.mean([r.correct for r in g]))
        points.append({"label": label, "cost_weight": w, "n": len(g), "accuracy": acc,
                       "strong_share": strong_share(g, strong_tool), "pgr": pgr(acc, acc_w, acc_s), "anchor": False})
    points.append({"label": f"{strong} (anchor)", "cost_weight": None, "n": policies[strong]["n"],
                   "accuracy": acc_s, "strong_share": 1.0, "pgr": 1.0, "anchor": True})
    points.sort(key=lambda p: (p["strong_share"], p["pgr"]))
    curve = best_per_share([(p["strong_share"], p["pgr"]) for p in points])
    out.update(points=points, apgr=apgr(curve), **{k: cpt(curve, level) for k, level in CPT_LEVELS.items()})
    out["note"] = (f"strong share: calls to {strong_tool} (or answer with model "
                   f"{strong.removeprefix('only:')}) over all expert calls (ask_*, answer); anchors: {weak} at "
                   f"(0, 0), {strong} at (1, 1); APGR clips PGR to [0, 1]")
    return out


def routing_headroom(rows: list[EvalRow], a: float, unit: float, samples: int, seed: int) -> dict[str, Any] | None:
    """The category router's utility and its paired margin over the best single expert, and on
    user utility the router that reads the category and the user's weights (None without two
    single experts scored on the same tasks)."""
    main = group((r for r in rows if r.block == "main" and r.policy.startswith("only:")), "policy")
    by_expert = {p: one_per_task(g, p) for (p,), g in main.items()}
    if len(by_expert) < 2:
        return None
    tasks = sorted(set.intersection(*(set(t) for t in by_expert.values())))
    if not tasks:
        return None
    arrays = {p: metric_arrays([by_task[t] for t in tasks], a, unit) for p, by_task in by_expert.items()}
    first = by_expert[sorted(by_expert)[0]]
    categories = [first[t].category for t in tasks]
    users = [",".join(f"{first[t].user_weights[k]:.3f}" for k in ("accuracy", "cost", "latency")) for t in tasks]
    out = router_bound({p: m["utility"] for p, m in arrays.items()}, categories, samples, stable_seed(seed, "headroom"))
    out = {"n": len(tasks), **out, "category_choice": out.pop("choice")}
    user = router_bound({p: m["user_utility"] for p, m in arrays.items()},
                        [f"{c} | {u}" for c, u in zip(categories, users)], samples, stable_seed(seed, "headroom-user"))
    out["user_utility"] = {**user, "groups": len(user.pop("choice"))}
    return out


def router_bound(utility: dict[str, np.ndarray], keys: list[str], samples: int, seed: int) -> dict[str, Any]:
    """Each task routed to the single expert with the best mean utility on its key's tasks (chosen
    on these tasks: an optimistic bound), against the best single expert, paired by task.

    `held_out_choice` is the same router chosen without the task it routes (each task by the
    other tasks of its key; by all other tasks where it is its key's only one): what a router
    learnt from these tasks can expect on a new one, free of the bound's luck of the draw."""
    def best_on(tasks: np.ndarray) -> str:
        return max(sorted(utility), key=lambda p: utility[p][tasks].mean())

    n = len(keys)
    keyed = np.array(keys)
    best = best_on(np.ones(n, dtype=bool))
    choice = {k: best_on(keyed == k) for k in sorted(set(keys))}
    routed = np.array([utility[choice[k]][i] for i, k in enumerate(keys)])
    held_out = utility[best].copy()  # a lone task (n = 1) has nothing to choose by
    for i, k in enumerate(keys):
        others = (keyed == k) & (np.arange(n) != i)
        if not others.any():  # its key's only task: chosen by every other task
            others = np.arange(n) != i
        if others.any():
            held_out[i] = utility[best_on(others)][i]
    return {"best_single_expert": best, "best_single_utility": float(utility[best].mean()), "choice": choice,
            "router_utility": float(routed.mean()), "margin": margin(routed - utility[best], samples, seed),
            "held_out_choice": {"router_utility": float(held_out.mean()),
                                "margin": margin(held_out - utility[best], samples, stable_seed(seed, "held-out"))}}


def trained_policy(policies: dict[str, Any]) -> str | None:
    for name in ("grpo", "sft"):
        if name in policies:
            return name
    return next((p for p in policies if not is_baseline(p)), None)


def verdict(policies: dict[str, dict[str, Any]], points: list[dict[str, Any]]) -> dict[str, Any]:
    """Does the trained policy match the strongest expert at <= 30% of its cost, and dominate
    the prompted router and the cascade? Computed, never asserted."""
    trained = trained_policy(policies)
    experts = single_experts(policies)
    strongest = strongest_expert(policies)
    out: dict[str, Any] = {"trained": trained, "strongest_expert": strongest, "reaches_strongest_at_30pct": None,
                           "dominates": {}, "missing": []}
    if trained is None:
        out["sentence"] = "No trained checkpoint was evaluated, so there is no verdict on the orchestrator."
        return out
    mine = [p for p in points if p["policy"] == trained]
    t = policies[trained]
    parts = []
    if strongest is not None:
        s = experts[strongest]
        ratio = t["cost_usd"] / s["cost_usd"] if s["cost_usd"] > 0 else float("inf")
        ok = t["accuracy"] >= s["accuracy"] and ratio <= FRONTIER_COST_SHARE
        out.update(reaches_strongest_at_30pct=ok, cost_ratio_to_strongest=ratio)
        if t["accuracy"] < s["accuracy"]:
            out["missing"].append(f"accuracy {100 * (s['accuracy'] - t['accuracy']):.1f} points short of {strongest}")
        if ratio > FRONTIER_COST_SHARE:
            out["missing"].append(f"mean cost is {ratio:.0%} of {strongest}'s (target <= 30%)")
        parts.append(f"{'reaches' if ok else 'does not reach'} the strongest single expert "
                     f"({strongest}: accuracy {s['accuracy']:.1%}) at no more than 30% of its cost "
                     f"(it scores {t['accuracy']:.1%} at {ratio:.0%} of that cost)")
    for rival in ("prompted", "cascade"):
        rival_point = next((p for p in points if p["policy"] == rival and p["cost_weight"] is None), None)
        if rival_point is not None:
            won = any(dominates(p, rival_point) for p in mine)
            out["dominates"][rival] = won
            if not won:
                out["missing"].append(f"no {trained} point is at least as accurate and as cheap as {rival}")
            parts.append(f"{'dominates' if won else 'does not dominate'} the {rival} "
                         f"{'router' if rival == 'prompted' else 'baseline'}")
    claims = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else "".join(parts)
    out["sentence"] = f"The trained policy {trained} " + (claims or "was evaluated without baselines") + "."
    return out


def summarize(rows: list[EvalRow], utility_a: float = 0.5, cost_unit_usd: float = 0.01,
              bootstrap_samples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """policies (main block), pareto points, generalisation blocks, the trained policy's paired
    margins and routing metrics, the routing headroom, and the verdict."""
    policies = block_policies(rows, "main", utility_a, cost_unit_usd, bootstrap_samples, seed)
    points = pareto_points(rows, policies)
    trained = trained_policy(policies)
    return {
        "policies": policies,
        "pareto": points,
        "generalisation": generalisation(rows, utility_a, cost_unit_usd, bootstrap_samples, seed),
        "paired": paired_margins(rows, trained, utility_a, cost_unit_usd, bootstrap_samples, seed),
        "routing": routing(rows, policies, trained),
        "headroom": routing_headroom(rows, utility_a, cost_unit_usd, bootstrap_samples, seed),
        "verdict": verdict(policies, points),
    }
