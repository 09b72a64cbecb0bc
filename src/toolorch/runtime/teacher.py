"""The pass@k teacher: who makes the demonstrations that become SFT data.

    teacher = ScriptedTeacher(cfg.catalog(), TeacherRoutes(), seed=0)
    policy = teacher.policy(task, sample=3)       # one trajectory's policy
    traj = run_episode(task, policy, toolbox, cfg.episode.limits())

Offline, the teacher is a scripted *stochastic* policy built per task. It may read
the task's gold plan (it is a teacher, not the student), but its answer is grounded:
it answers with the gold answer only if that value appears in what the tools
returned, otherwise with what the last observation says. Each trajectory samples a
route with a seeded RNG, and the routes differ in cost so that "most efficient
first" means something:

    gold     follow the gold plan (db / search / code tools)
    expert   an expert writes the final answer (`answer` tool): the priciest as often as the
             user's preference weighs accuracy, otherwise one of the cheaper ones
    extra    the gold plan with a wasted call in front of it
    partial  a wrong plan: skip the last hops and answer early (one-call plans: no tools)

Online, the teacher is any OpenAI-compatible chat model (`OpenAIPolicy`), sampled
with a different seed per trajectory.
"""
from __future__ import annotations

import copy
import random
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from toolorch.core.catalog import Catalog
from toolorch.core.records import (
    ANSWER_TOOL,
    Preference,
    Task,
    ToolCall,
    normalize_answer,
)
from toolorch.core.seeds import stable_seed
from toolorch.runtime.chat import Tools
from toolorch.runtime.endpoint_gate import endpoint_gate
from toolorch.runtime.env import Environment
from toolorch.runtime.experts import Expert
from toolorch.runtime.policies import (
    Generation,
    PlanPolicy,
    Policy,
    answer_from_observation,
    prompt_tokens,
)
from toolorch.runtime.tools import Toolbox, expert_tool_name

Route = Literal["gold", "expert", "extra", "partial"]
ROUTES: tuple[Route, ...] = ("gold", "expert", "extra", "partial")


class TeacherRoutes(BaseModel):
    """Relative weights of the scripted teacher's routes (normalised when sampled)."""

    model_config = ConfigDict(extra="forbid")

    gold: float = Field(0.4, ge=0)
    expert: float = Field(0.3, ge=0)
    extra: float = Field(0.15, ge=0)
    partial: float = Field(0.15, ge=0)


class OnlineTeacher(BaseModel):
    """An OpenAI-compatible chat model as the teacher (the key is read from `api_key_env`)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str
    model: str
    api_key_env: str | None = None
    temperature: float = Field(0.7, ge=0, le=2)  # > 0 so that k samples differ
    max_tokens: int = Field(256, ge=1)
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)
    # per process (one KFP shard): calls in flight and started per second (None: unlimited)
    max_concurrency: int = Field(8, ge=1, le=1024)
    requests_per_s: int | None = Field(None, ge=1)


# ---------------------------------------------------------------- grounding

_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")
_BOOL_WORDS = {"yes", "no", "true", "false"}


def _mentions(text: str, value: str) -> bool:
    """`value` occurs in `text` as a whole token (so gold '1' is not found in '10')."""
    value = value.strip()
    if not value:
        return False
    pattern = r"(?<![\w.])" + re.escape(value.casefold()) + r"(?![\w]|\.\d)"
    return re.search(pattern, text.casefold()) is not None


def grounded_in(observations: list[str], task: Task) -> bool:
    """Whether the gold answer can be read off what the tools returned."""
    gold = normalize_answer(task.answer, task.answer_type)
    for text in observations:
        whole = answer_from_observation(text)
        # a bool is read only from a yes/no/true/false reply: a count of 0 does not say "no"
        if task.answer_type == "bool" and whole.casefold() not in _BOOL_WORDS:
            continue
        if normalize_answer(whole, task.answer_type) == gold:
            return True
        if task.answer_type == "number":
            if any(normalize_answer(n, "number") == gold for n in _NUMBER.findall(text)):
                return True
        elif task.answer_type == "list":
            items = [i.strip() for i in task.answer.strip("[]").replace(";", ",").split(",") if i.strip()]
            if items and all(_mentions(text, i) for i in items):
                return True
        elif task.answer_type != "bool" and _mentions(text, task.answer):
            return True
    return False


def grounded_answer(task: Task, observations: list[str]) -> str:
    """The teacher's final answer: gold when the tools showed it, else the last observation."""
    if grounded_in(observations, task):
        return task.answer
    return answer_from_observation(observations[-1] if observations else None)


def tool_observations(messages: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for m in messages if m["role"] == "tool"]


# ---------------------------------------------------------------- routes

class RoutePolicy:
    """Emits a fixed list of calls (with "$prev" substitution), then a grounded answer."""

    def __init__(self, task: Task, calls: list[ToolCall], route: Route):
        self.name = f"teacher:{route}"
        self.route = route
        self.task = task
        self.calls = calls
        self._plan = PlanPolicy(calls, name=self.name)

    def generate(self, messages: list[dict[str, Any]], tools: Tools = None) -> Generation:
        step = sum(1 for m in messages if m["role"] == "assistant")
        if step < len(self.calls):
            return self._plan.generate(messages)
        text = f"<answer>{grounded_answer(self.task, tool_observations(messages))}</answer>"
        return Generation(text, prompt_tokens(messages), max(1, len(text) // 4))


ODDS_RANGE = (0.15, 0.85)  # every user's demonstrations show every expert now and then


def cheap_expert_odds(pref: Preference) -> float:
    """How often the teacher hands a task to one of the cheaper experts rather than the priciest.

    Decisive, as a strong teacher reading the preference would be: a user who weighs cost and
    latency above accuracy mostly gets a cheap expert, one who weighs accuracy above them the
    priciest one (twice the distance of their weight share from an even split), kept within
    ODDS_RANGE. The demonstrations are all the tiny policy has to learn the preference from
    before GRPO, so the teacher leans hard; but not all the way: GRPO learns which expert suits
    which question only from groups whose rollouts name different experts, and a policy that
    never saw an accuracy-first user sent to the 32B model never samples it.
    """
    w = pref.shares()
    share = w["cost"] + w["latency"]
    return min(ODDS_RANGE[1], max(ODDS_RANGE[0], 0.5 + 2.0 * (share - 0.5)))


def pick_expert(by_price: list[str], pref: Preference, rng: random.Random) -> str:
    """The priciest expert, or (with cheap_expert_odds) one of the cheaper ones at random. The
    teacher knows the prices and the user, not which expert suits the question: that is GRPO's
    to find. A user who forbids the pick gets a permitted expert rather than no delegation."""
    cheap = rng.random() < cheap_expert_odds(pref)
    pick = rng.choice(by_price[:-1]) if cheap and len(by_price) > 1 else by_price[-1]
    permitted = [m for m in by_price if pref.permits(expert_tool_name(m))]
    if pick in permitted or not permitted:
        return pick
    return rng.choice(permitted)


class ScriptedTeacher:
    """Builds one seeded, stochastic route policy per (task, sample)."""

    def __init__(self, catalog: Catalog, routes: TeacherRoutes, seed: int = 0, search_tool: str = "search"):
        self.weights = routes.model_dump()
        if sum(self.weights.values()) <= 0:
            raise ValueError("teacher routes: at least one route weight must be positive")
        self.seed = seed
        self.experts = [e.name for e in catalog.by_price()]  # cheapest first
        self.search_tool = search_tool

    def policy(self, task: Task, sample: int, tool_names: set[str] | None = None) -> RoutePolicy:
        rng = random.Random(stable_seed(self.seed, "teacher", task.id, sample))
        options = self._options(task, rng, tool_names)
        routes = [r for r in ROUTES if r in options and self.weights[r] > 0]
        if not routes:  # nothing permitted: follow the gold plan and let verification judge it
            return RoutePolicy(task, list(task.gold_calls), "gold")
        route = rng.choices(routes, weights=[self.weights[r] for r in routes])[0]
        return RoutePolicy(task, options[route], route)

    def _options(self, task: Task, rng: random.Random, tool_names: set[str] | None) -> dict[Route, list[ToolCall]]:
        gold = [c.model_copy(deep=True) for c in task.gold_calls]
        options: dict[Route, list[ToolCall]] = {"gold": gold, "partial": self._cut_short(gold, rng)}
        if self.experts:  # the expert writes the final answer (ToolOrchestra's `answer`)
            model = pick_expert(self.experts, task.preference, rng)
            options["expert"] = [ToolCall(name=ANSWER_TOOL, arguments={"model": model})]
        if gold:
            options["extra"] = [self._wasted_call(task, gold, rng, tool_names)] + gold

        def usable(calls: list[ToolCall]) -> bool:
            return all(task.preference.permits(c.route) and (tool_names is None or c.name in tool_names)
                       for c in calls)

        return {route: calls for route, calls in options.items() if usable(calls)}

    def _wasted_call(self, task: Task, gold: list[ToolCall], rng: random.Random,
                     tool_names: set[str] | None) -> ToolCall:
        """A call that costs without helping: search the question, or repeat the first hop."""
        candidates = [gold[0]]
        if tool_names is None or self.search_tool in tool_names:
            candidates.append(ToolCall(name=self.search_tool, arguments={"query": task.question}))
        return copy.deepcopy(rng.choice(candidates))

    @staticmethod
    def _cut_short(gold: list[ToolCall], rng: random.Random) -> list[ToolCall]:
        """Skip the remaining hops from a random one on and answer early; a one-call plan
        becomes 'answer without looking'. Later hops are cut too, never kept without their
        inputs: gold code embeds the values earlier hops returned, and running it after a
        skipped hop would reach the answer with a value the trajectory never saw."""
        return gold[: rng.randrange(len(gold))] if gold else []


def online_policy(settings: OnlineTeacher, seed: int, sample: int) -> Policy:
    from toolorch.runtime.policies import OpenAIPolicy

    return OpenAIPolicy(settings.base_url, settings.model, api_key_env=settings.api_key_env,
                        temperature=settings.temperature, max_tokens=settings.max_tokens,
                        timeout_s=settings.timeout_s, max_retries=settings.max_retries,
                        seed=stable_seed(seed, "online-teacher", sample) % (2**31),
                        gate=endpoint_gate(settings.base_url, settings.max_concurrency, settings.requests_per_s))


def reverify(task: Task, env: Environment, catalog: Catalog, experts: dict[str, Expert] | None = None) -> str | None:
    """None when executing the task's gold calls, in a fresh session, gives its answer (or, for a
    world-changing task, its final state); otherwise the reason. Checked apart from the teacher
    because a simulated expert reads the gold answer: it could 'solve' a broken task."""
    from toolorch.runtime.gold import verify, verify_state

    if task.final_state:
        return verify_state(task, env, catalog)
    with env.session() as session:
        return verify(task, Toolbox(catalog, session, experts=experts))
