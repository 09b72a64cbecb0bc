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


def sample_preference(catalog: Catalog, seed: int, profile: str | None = None,
                      mix: dict[str, float] | None = None) -> Preference:
    """A seeded user: a profile drawn from `mix` (profile -> relative weight; none or empty: all
    equally likely), or the one named, plus, for some users, a deny or prefer list."""
    if profile is not None and profile not in PROFILES:
        raise ValueError(f"unknown preference profile {profile!r}; known: {sorted(PROFILES)}")
    rng = random.Random(seed)
    # drawn even when named, so the deny/prefer roll is the same
    drawn = rng.choices(*zip(*sorted(check_mix(mix).items())))[0] if mix else rng.choice(sorted(PROFILES))
    pref = Preference(**PROFILES[profile or drawn])
    experts = expert_tools_by_price(catalog)
    roll = rng.random()
    if len(experts) >= 2 and roll < DENY_SHARE:
        pref.deny = [experts[-1]]
    elif experts and roll < DENY_SHARE + PREFER_SHARE:
        pref.prefer = [experts[0]]
    return pref


def check_mix(mix: dict[str, float]) -> dict[str, float]:
    """`mix` itself, once its profiles are known and its weights >= 0 with a positive sum."""
    unknown = sorted(set(mix) - set(PROFILES))
    if unknown:
        raise ValueError(f"unknown preference profile {unknown[0]!r}; known: {sorted(PROFILES)}")
    for name, weight in mix.items():
        if weight < 0:
            raise ValueError(f"{name}: weight {weight} is negative")
    if mix and sum(mix.values()) <= 0:
        raise ValueError(f"weights sum to 0: {mix}")
    return mix


def parse_mix(value: str | dict[str, float]) -> dict[str, float]:
    """A preference mix from a mapping or its text form ("cost_averse=3, balanced=1"; a bare name
    weighs 1; "" is no mix), as the `preference_mix` pipeline parameter passes it."""
    if isinstance(value, dict):
        return check_mix({str(k): float(v) for k, v in value.items()})
    mix: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in str(value).split(","))):
        name, _, weight = item.partition("=")
        try:
            mix[name.strip()] = float(weight) if weight.strip() else 1.0
        except ValueError:
            raise ValueError(f"{item}: weight {weight.strip()!r} is not a number") from None
    return check_mix(mix)


def with_user(task: Task, catalog: Catalog, seed: int, profile: str | None = None) -> Task:
    """`task` as asked by a user drawn with `seed` (of `profile` when named)."""
    return task.model_copy(update={"preference": sample_preference(catalog, seed, profile)})


def preference_kind(pref: Preference) -> str:
    """The profile a preference was drawn from, for metrics."""
    weights = {"accuracy": pref.accuracy, "cost": pref.cost, "latency": pref.latency}
    name = next((k for k, v in PROFILES.items() if v == weights), "custom")
    return name + ("+deny" if pref.deny else "") + ("+prefer" if pref.prefer else "")
