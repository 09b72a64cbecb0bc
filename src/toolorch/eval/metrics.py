"""Every reported number, computed from the saved per-task rows alone.

    summary = summarize(rows, utility_a=0.5, cost_unit_usd=0.01, bootstrap_samples=1000, seed=0)

Utility per task is `u = a * correct - (1 - a) * cost_usd / cost_unit_usd`: cost is
measured in units of `cost_unit_usd` dollars (cents by default) so that the two terms
are of comparable size. Intervals are 95% percentile bootstraps over tasks, seeded
per (block, policy, point) so they do not depend on evaluation order.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable

import numpy as np

from toolorch.core.seeds import stable_seed
from toolorch.eval.runner import EvalRow

GENERALISATION_BLOCKS = ("unseen_pricing", "unseen_tool")
BASELINES = ("random", "cascade", "prompted", "oracle")
FRONTIER_COST_SHARE = 0.3  # the trained policy should match the strongest expert at <= 30% of its cost
METRICS = ("accuracy", "cost_usd", "latency_s", "turns", "utility")


def is_baseline(policy: str) -> bool:
    return policy in BASELINES or policy.startswith("only:")


def metric_arrays(rows: list[EvalRow], a: float, unit: float) -> dict[str, np.ndarray]:
    correct = np.array([r.correct for r in rows], dtype=float)
    cost = np.array([r.cost_usd for r in rows], dtype=float)
    return {
        "accuracy": correct,
        "cost_usd": cost,
        "latency_s": np.array([r.latency_s for r in rows], dtype=float),
        "turns": np.array([r.turns for r in rows], dtype=float),
        "utility": a * correct - (1 - a) * cost / unit,
    }


def bootstrap_ci(values: np.ndarray, samples: int, seed: int) -> list[float]:
    """95% percentile interval of the mean of `values` (resampled with replacement)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(samples, len(values)))
    lo, hi = np.percentile(values[idx].mean(axis=1), [2.5, 97.5])
    return [float(lo), float(hi)]


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
    return {"n": len(rows), **{m: float(arrays[m].mean()) for m in ("accuracy", "cost_usd", "utility")}}


def policy_stats(rows: list[EvalRow], a: float, unit: float, samples: int, seed: int) -> dict[str, Any]:
    arrays = metric_arrays(rows, a, unit)
    by_category: dict[str, list[EvalRow]] = defaultdict(list)
    for r in rows:
        by_category[r.category].append(r)
    return {
        "n": len(rows),
        **{m: float(arrays[m].mean()) for m in METRICS},
        "calls_per_task": float(np.mean([sum(r.tool_counts.values()) for r in rows])),
        "tool_mix": tool_mix(rows),
        "ci95": {m: bootstrap_ci(arrays[m], samples, stable_seed(seed, m)) for m in METRICS},
        "by_category": {c: small_stats(by_category[c], a, unit) for c in sorted(by_category)},
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


def trained_policy(policies: dict[str, Any]) -> str | None:
    for name in ("grpo", "sft"):
        if name in policies:
            return name
    return next((p for p in policies if not is_baseline(p)), None)


def verdict(policies: dict[str, dict[str, Any]], points: list[dict[str, Any]]) -> dict[str, Any]:
    """Does the trained policy match the strongest expert at <= 30% of its cost, and dominate
    the prompted router and the cascade? Computed, never asserted."""
    trained = trained_policy(policies)
    experts = {p: s for p, s in policies.items() if p.startswith("only:")}
    strongest = max(experts, key=lambda p: (experts[p]["accuracy"], -experts[p]["cost_usd"])) if experts else None
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
    """policies (main block), pareto points, generalisation blocks and the verdict."""
    policies = block_policies(rows, "main", utility_a, cost_unit_usd, bootstrap_samples, seed)
    points = pareto_points(rows, policies)
    return {
        "policies": policies,
        "pareto": points,
        "generalisation": generalisation(rows, utility_a, cost_unit_usd, bootstrap_samples, seed),
        "verdict": verdict(policies, points),
    }
