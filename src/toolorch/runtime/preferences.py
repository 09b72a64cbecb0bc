"""Sampled user preferences for synthesized tasks: objective weights plus expert allow/deny lists.

A seeded mix of accuracy-first, cost-averse, latency-averse and balanced users; some
also deny the priciest expert or prefer the cheapest (named as their tools, e.g. ask_frontier).
"""
from __future__ import annotations

import random

from toolorch.core.catalog import Catalog
from toolorch.core.records import Preference, Task
from toolorch.runtime.tools import expert_tool_name

# Weights are relative; an averse user weighs its concern above accuracy, so render() names it first.
PROFILES: dict[str, dict[str, float]] = {
    "accuracy_first": {"accuracy": 1.0, "cost": 0.0, "latency": 0.0},
    "cost_averse": {"accuracy": 1.0, "cost": 2.0, "latency": 0.2},
    "latency_averse": {"accuracy": 1.0, "cost": 0.2, "latency": 2.0},
    "balanced": {"accuracy": 1.0, "cost": 0.5, "latency": 0.5},
}
DENY_SHARE = 0.15  # users who forbid the priciest expert
PREFER_SHARE = 0.15  # users who ask for the cheapest expert


def expert_tools_by_price(catalog: Catalog) -> list[str]:
    """Expert tool names, cheapest output price first."""
    experts = sorted(catalog.experts, key=lambda e: (e.price.output, e.name))
    return [expert_tool_name(e.name) for e in experts]


def sample_preference(catalog: Catalog, seed: int, profile: str | None = None) -> Preference:
    """A seeded user: a random profile (or the one named) plus, for some users, a deny or prefer list."""
    if profile is not None and profile not in PROFILES:
        raise ValueError(f"unknown preference profile {profile!r}; known: {sorted(PROFILES)}")
    rng = random.Random(seed)
    drawn = rng.choice(sorted(PROFILES))  # drawn even when named, so the deny/prefer roll is the same
    pref = Preference(**PROFILES[profile or drawn])
    experts = expert_tools_by_price(catalog)
    roll = rng.random()
    if len(experts) >= 2 and roll < DENY_SHARE:
        pref.deny = [experts[-1]]
    elif experts and roll < DENY_SHARE + PREFER_SHARE:
        pref.prefer = [experts[0]]
    return pref


def with_user(task: Task, catalog: Catalog, seed: int, profile: str | None = None) -> Task:
    """`task` as asked by a user drawn with `seed` (of `profile` when named)."""
    return task.model_copy(update={"preference": sample_preference(catalog, seed, profile)})


def preference_kind(pref: Preference) -> str:
    """The profile a preference was drawn from, for metrics."""
    weights = {"accuracy": pref.accuracy, "cost": pref.cost, "latency": pref.latency}
    name = next((k for k, v in PROFILES.items() if v == weights), "custom")
    return name + ("+deny" if pref.deny else "") + ("+prefer" if pref.prefer else "")
