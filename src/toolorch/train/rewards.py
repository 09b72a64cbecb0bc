"""The GRPO reward: outcome, efficiency and preference terms, each kept separately.

    terms = group_rewards([EpisodeOutcome.of(t) for t in group], task.preference, RewardConfig())
    adv, kept = group_advantages([t.total for t in terms])

Per trajectory in a rollout group (one task, G samples):

    outcome    1 if verified correct, else `wrong` (<= 0)
    cost       -cost_weight * k_cost * minmax(cost_usd)       (correct only)
    latency    -latency_weight * k_latency * minmax(latency_s)   (correct only)
    deny       -deny_weight * (1 - 0.5**violations)             (every trajectory)
    prefer     +prefer_weight * share of calls to preferred tools  (correct only)

`minmax` normalises over the group's *correct* trajectories, so dollars and seconds are
on the same [0, 1] scale whatever their units; the most expensive correct sample gets 1.
Higher cost gives a larger penalty: the sign ToolOrchestra's released code got wrong
(it stored min/max of -cost and applied them to +cost).

`k_cost` and `k_latency` come from the task's preference: a floor (so that among two
correct answers the cheaper one always wins, even for an accuracy-only user) plus the
preference's share of weight on cost / latency. Accuracy's share enters through the
denominator: the more a user weighs accuracy, the less efficiency counts.

Ordering guarantees (tested, incl. property-based):
- any correct trajectory scores above any wrong one: efficiency and prefer terms never
  apply to wrong ones and `cost_weight + latency_weight + deny_weight < 1` bounds the
  penalties of a correct one;
- of two correct trajectories that agree on tool use, the one that is no more expensive
  and no slower, and strictly cheaper or faster, scores strictly higher.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from toolorch.core import Preference, Trajectory

TERMS = ("outcome", "cost", "latency", "deny", "prefer")


class RewardConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    wrong: float = Field(0.0, le=0.0)  # reward of a wrong answer (0 or a small negative)
    cost_weight: float = Field(0.4, ge=0)
    latency_weight: float = Field(0.2, ge=0)
    efficiency_floor: float = Field(0.1, ge=0, le=1)  # share of the efficiency weights every user gets
    deny_weight: float = Field(0.3, ge=0)
    prefer_weight: float = Field(0.05, ge=0)

    @model_validator(mode="after")
    def _correct_beats_wrong(self) -> RewardConfig:
        if self.cost_weight + self.latency_weight + self.deny_weight >= 1.0:
            raise ValueError("cost_weight + latency_weight + deny_weight must be < 1, "
                             "or a penalised correct answer could score below a wrong one")
        return self


@dataclass(frozen=True)
class EpisodeOutcome:
    """What the reward reads from one trajectory."""

    correct: bool
    cost_usd: float
    latency_s: float
    tools: tuple[str, ...] = ()  # names of the tools called, in order (attempts included)

    @classmethod
    def of(cls, traj: Trajectory) -> EpisodeOutcome:
        tools = tuple(t.call.route for t in traj.turns if t.call is not None)
        return cls(traj.correct, traj.usage.cost_usd, traj.usage.latency_s, tools)


@dataclass(frozen=True)
class RewardTerms:
    outcome: float
    cost: float
    latency: float
    deny: float
    prefer: float

    @property
    def total(self) -> float:
        return self.outcome + self.cost + self.latency + self.deny + self.prefer

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "total": self.total}


def efficiency_coefficients(pref: Preference, floor: float) -> tuple[float, float]:
    """(k_cost, k_latency) in [floor, 1]: the preference's weight share on cost / latency."""
    total = pref.accuracy + pref.cost + pref.latency
    share_cost = pref.cost / total if total > 0 else 0.0
    share_latency = pref.latency / total if total > 0 else 0.0
    return floor + (1 - floor) * share_cost, floor + (1 - floor) * share_latency


def minmax(values: list[float]) -> list[float]:
    """Scale to [0, 1] over `values`; all-equal values map to 0 (no one is penalised)."""
    if not values:
        return []
    lo, hi = min(values), max(values)
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        return [0.0] * len(values)
    return [(v - lo) / (hi - lo) for v in values]


def deny_violations(tools: tuple[str, ...], pref: Preference) -> int:
    return sum(1 for t in tools if not pref.permits(t))


def prefer_share(tools: tuple[str, ...], pref: Preference) -> float:
    if not tools or not pref.prefer:
        return 0.0
    return sum(1 for t in tools if t in pref.prefer) / len(tools)


def group_rewards(group: list[EpisodeOutcome], pref: Preference, cfg: RewardConfig) -> list[RewardTerms]:
    """Reward terms for one rollout group (same task, same preference)."""
    k_cost, k_latency = efficiency_coefficients(pref, cfg.efficiency_floor)
    correct_idx = [i for i, o in enumerate(group) if o.correct]
    norm_cost = dict(zip(correct_idx, minmax([group[i].cost_usd for i in correct_idx])))
    norm_latency = dict(zip(correct_idx, minmax([group[i].latency_s for i in correct_idx])))
    terms = []
    for i, o in enumerate(group):
        deny = -cfg.deny_weight * (1.0 - 0.5 ** deny_violations(o.tools, pref))
        if o.correct:
            terms.append(RewardTerms(
                outcome=1.0,
                cost=-cfg.cost_weight * k_cost * norm_cost[i],
                latency=-cfg.latency_weight * k_latency * norm_latency[i],
                deny=deny,
                prefer=cfg.prefer_weight * prefer_share(o.tools, pref),
            ))
        else:
            terms.append(RewardTerms(outcome=cfg.wrong, cost=0.0, latency=0.0, deny=deny, prefer=0.0))
    return terms


def group_advantages(rewards: list[float], eps: float = 1e-6, clip: float = 3.0,
                     min_std: float = 0.0) -> tuple[np.ndarray, bool]:
    """GRPO advantages (r - mean) / (std + eps), clipped to [-clip, clip].

    Returns (advantages of shape [G], kept). A group whose reward std is <= `min_std`
    (e.g. all right or all wrong) carries no learning signal: kept is False and the
    advantages are zero.
    """
    r = np.asarray(rewards, dtype=np.float64)
    std = float(r.std()) if r.size else 0.0
    if r.size < 2 or std <= max(min_std, 1e-12):
        return np.zeros_like(r), False
    return np.clip((r - r.mean()) / (std + eps), -clip, clip), True
