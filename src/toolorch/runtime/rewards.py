"""The GRPO reward: outcome, efficiency and preference terms, each kept separately.

    terms = group_rewards([EpisodeOutcome.of(t) for t in group], task.preference, RewardConfig())
    adv, kept = group_advantages([t.total for t in terms])

Per trajectory in a rollout group (one task, G samples):

    outcome    1 if verified correct, else `wrong` (<= 0)
    cost       -cost_weight * k_cost * minmax(cost_usd)           (every trajectory)
    latency    -latency_weight * k_latency * minmax(latency_s)    (every trajectory)
    deny       -deny_weight * (1 - 0.5**violations)               (every trajectory)
    prefer     +prefer_weight * share of calls to preferred tools  (correct only)

`minmax` normalises over the whole group, so dollars and seconds are on the same [0, 1]
scale whatever their units; the group's most expensive sample gets 1. Higher cost gives a
larger penalty: the sign ToolOrchestra's released code got wrong (it stored min/max of
-cost and applied them to +cost).

The price is charged on every try, right or wrong, as a user pays it: an expensive expert
must earn its price through the answers it gets right. Charged on correct answers only (as
ToolOrchestra does), a thrifty user's reward still favours an expert that is right a little
more often at many times the price, because the price then counts only on the tasks both
experts get right; the preference could hardly change the route.

An episode that ends without an answer (malformed calls until the turn limit, say) is
charged the group's full efficiency penalties, whatever it spent: otherwise failing
cheaply would beat trying, and a policy that expects a question to go wrong would learn
to break its own tool call rather than pay an expert.

`kind: utility` is the other reward: the user's own utility, the number the eval reports as
`user_utility`, with the deny and prefer terms beside it:

    outcome    w_acc * (1 if correct else `wrong`)
    cost       -w_cost * cost_usd / cost_unit_usd
    latency    -w_lat * latency_s / latency_unit_s

with the user's weights scaled to sum to 1 (`Preference.shares`). Training on it trains the
trade-off the user states and the eval scores: a latency-averse user's correct answer is worth
a third of an accuracy-first one's, and a minute of waiting as much as a right answer. The
ToolOrchestra reward keeps every correct answer above every wrong one, so there any user ends
up treated as nearly accuracy-first; here a wrong cheap answer can beat a right dear one when the
user weighs cost that much, as they asked. An episode without an answer is still charged the
group's largest cost and latency.

`k_cost` and `k_latency` come from the task's preference: a floor (so that among two
correct answers the cheaper one always wins, even for an accuracy-only user) plus the
preference's share of weight on cost / latency. Accuracy's share enters through the
denominator: the more a user weighs accuracy, the less efficiency counts.

Ordering guarantees (tested, incl. property-based):
- any correct trajectory scores above any wrong one: `cost_weight + latency_weight +
  deny_weight < 1` bounds the penalties of a correct one above 0, and a wrong one scores
  at most `wrong` <= 0 (the prefer bonus is for correct ones only);
- of two correct trajectories that agree on tool use, the one that is no more expensive
  and no slower, and strictly cheaper or faster, scores strictly higher.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from toolorch.core.records import Preference, Trajectory

TERMS = ("outcome", "cost", "latency", "deny", "prefer")
LATENCY_UNIT_S = 60.0  # user utility: a minute of waiting weighs as much as a correct answer
COST_UNIT_USD = 0.01  # user utility: a cent weighs as much as a correct answer


def user_utility(correct: Any, cost_usd: Any, latency_s: Any, shares: dict[str, Any],
                 cost_unit_usd: float = COST_UNIT_USD, latency_unit_s: float = LATENCY_UNIT_S) -> Any:
    """The user's utility of an answer (floats or arrays): their accuracy, cost and latency
    shares times correctness, cents and minutes. The eval's `user_utility` and the `utility` reward."""
    return (shares["accuracy"] * correct - shares["cost"] * cost_usd / cost_unit_usd
            - shares["latency"] * latency_s / latency_unit_s)


class RewardConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # toolorchestra: outcome plus group-normalised efficiency terms; utility: the user's own utility
    kind: Literal["toolorchestra", "utility"] = "toolorchestra"
    wrong: float = Field(0.0, le=0.0)  # reward of a wrong answer (0 or a small negative)
    cost_unit_usd: float = Field(COST_UNIT_USD, gt=0)  # utility: dollars that weigh as much as a right answer
    latency_unit_s: float = Field(LATENCY_UNIT_S, gt=0)  # utility: seconds that weigh as much as a right answer
    # toolorchestra only: the efficiency terms' weights and floor
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
    answered: bool = True  # False: the episode ended without a final answer (bad calls, turn limit, budget)

    @classmethod
    def of(cls, traj: Trajectory) -> EpisodeOutcome:
        tools = tuple(t.call.route for t in traj.turns if t.call is not None)
        return cls(traj.correct, traj.usage.cost_usd, traj.usage.latency_s, tools, traj.stop_reason == "answer")


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
    w = pref.shares()
    return floor + (1 - floor) * w["cost"], floor + (1 - floor) * w["latency"]


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
    if cfg.kind == "utility":
        return utility_rewards(group, pref, cfg)
    k_cost, k_latency = efficiency_coefficients(pref, cfg.efficiency_floor)
    norm_cost = [c if o.answered else 1.0 for o, c in zip(group, minmax([o.cost_usd for o in group]))]
    norm_latency = [x if o.answered else 1.0 for o, x in zip(group, minmax([o.latency_s for o in group]))]
    return [RewardTerms(
        outcome=1.0 if o.correct else cfg.wrong,
        cost=-cfg.cost_weight * k_cost * c,
        latency=-cfg.latency_weight * k_latency * lat,
        deny=-cfg.deny_weight * (1.0 - 0.5 ** deny_violations(o.tools, pref)),
        prefer=cfg.prefer_weight * prefer_share(o.tools, pref) if o.correct else 0.0,
    ) for o, c, lat in zip(group, norm_cost, norm_latency)]


def utility_rewards(group: list[EpisodeOutcome], pref: Preference, cfg: RewardConfig) -> list[RewardTerms]:
    """`kind: utility`: each term is the user's share times correctness, cents or minutes."""
    w = pref.shares()
    worst_cost = max((o.cost_usd for o in group), default=0.0)
    worst_latency = max((o.latency_s for o in group), default=0.0)
    return [RewardTerms(
        outcome=w["accuracy"] * (1.0 if o.correct else cfg.wrong),
        cost=-w["cost"] * (o.cost_usd if o.answered else worst_cost) / cfg.cost_unit_usd,
        latency=-w["latency"] * (o.latency_s if o.answered else worst_latency) / cfg.latency_unit_s,
        deny=-cfg.deny_weight * (1.0 - 0.5 ** deny_violations(o.tools, pref)),
        prefer=cfg.prefer_weight * prefer_share(o.tools, pref) if o.correct else 0.0,
    ) for o in group]


def group_advantages(rewards: list[float], eps: float = 1e-6, clip: float = 3.0,
                     min_std: float = 0.0, scale_by_std: bool = True) -> tuple[np.ndarray, bool]:
    """GRPO advantages (r - mean) / (std + eps), or r - mean without `scale_by_std`, clipped
    to [-clip, clip].

    Returns (advantages of shape [G], kept). A group whose reward std is <= `min_std`
    (e.g. all right or all wrong) carries no learning signal: kept is False and the
    advantages are zero.

    Dividing by the std makes every kept group push equally hard, whatever its spread: in a
    group that is all right (or all wrong) an accuracy-first user's small cost term then
    pushes to the cheap expert as hard as a right-versus-wrong group pushes to the better
    one, so the preference's weights no longer set how much cost counts. `scale_by_std=False`
    (Dr. GRPO) keeps rewards on their own scale.
    """
    r = np.asarray(rewards, dtype=np.float64)
    std = float(r.std()) if r.size else 0.0
    if r.size < 2 or std <= max(min_std, 1e-12):
        return np.zeros_like(r), False
    centred = r - r.mean()
    return np.clip(centred / (std + eps) if scale_by_std else centred, -clip, clip), True
