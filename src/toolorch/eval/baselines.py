"""The scripted baselines the trained orchestrator is compared with.

None of them reads a task's gold answer or gold calls; each sees what any policy
sees (the chat) plus the toolbox it was built for:

    only:<expert>  ask that one expert the question (optionally with retrieved documents
                   as context) and answer with its reply; never calls another expert
    random         each turn a seeded random permitted tool with generic arguments,
                   then the last observation as the answer
    cascade        ask experts cheapest first; stop as soon as two answers agree
                   (self-consistency instead of a gold check), else trust the dearest

`PolicyMaker` builds one policy per (task, toolbox): scripted baselines need the
tool list and a per-task seed; a loaded model is simply returned again.
"""
from __future__ import annotations

import random
import re
from typing import Any, Callable

from toolorch.core.catalog import Catalog
from toolorch.core.records import Task, ToolCall, ToolSpec, normalize_answer
from toolorch.core.seeds import stable_seed
from toolorch.runtime.chat import Tools
from toolorch.runtime.experts import approx_tokens
from toolorch.runtime.parsing import render_call
from toolorch.runtime.policies import (
    Generation,
    Policy,
    answer_from_observation,
    last_observation,
    prompt_tokens,
    question_of,
)
from toolorch.runtime.tools import Toolbox, expert_tool_name

PolicyMaker = Callable[[Task, Toolbox], Policy]


def _emit(text: str, messages: list[dict[str, Any]]) -> Generation:
    return Generation(text, prompt_tokens(messages), approx_tokens(text))


def _step(messages: list[dict[str, Any]]) -> int:
    return sum(1 for m in messages if m["role"] == "assistant")


def experts_by_price(catalog: Catalog) -> list[str]:
    """Expert names, cheapest first (output price, then input price: experts mostly write)."""
    return [e.name for e in catalog.by_price()]


class OnlyExpertPolicy:
    """One expert with the basic tools: optionally search the documents, then ask the expert.

    With `search` on, the question goes to the expert with the top documents as context
    (the non-model tools a frontier model would use); the answer is the expert's reply.
    """

    def __init__(self, expert: str, search_tool: str | None = None):
        self.name = f"only:{expert}"
        self.expert_tool = expert_tool_name(expert)
        self.search_tool = search_tool

    def generate(self, messages: list[dict[str, Any]], tools: Tools = None) -> Generation:
        step, question = _step(messages), question_of(messages)
        plan: list[ToolCall] = []
        if self.search_tool:
            plan.append(ToolCall(name=self.search_tool, arguments={"query": question}))
        if step < len(plan):
            return _emit(render_call(plan[step]), messages)
        if step == len(plan):
            context = last_observation(messages) if self.search_tool else None
            prompt = question if not context else f"{question}\n\nContext from the documents:\n{context}"
            return _emit(render_call(ToolCall(name=self.expert_tool, arguments={"question": prompt})), messages)
        return _emit(f"<answer>{answer_from_observation(last_observation(messages))}</answer>", messages)


_INT = re.compile(r"-?\d+")


def generic_arguments(spec: ToolSpec, question: str, previous: str | None) -> dict[str, Any]:
    """Arguments any router could write without knowing the task: the question for text,
    the first number seen (in the last observation, else the question) for numbers."""
    numbers = _INT.findall(previous or "") or _INT.findall(question) or ["1"]
    args: dict[str, Any] = {}
    for key, prop in spec.parameters.get("properties", {}).items():
        kind = prop.get("type")
        if prop.get("enum"):
            args[key] = prop["enum"][0]
        elif kind in ("integer", "number"):
            args[key] = int(numbers[0])
        elif kind == "boolean":
            args[key] = True
        elif kind == "string":
            args[key] = f"print({question!r})" if spec.kind == "code" else question
    return args


class RandomRouterPolicy:
    """Seeded per task: 1..max_calls random permitted tools, then the last observation."""

    def __init__(self, task: Task, tools: list[ToolSpec], seed: int, max_calls: int):
        self.name = "random"
        self.rng = random.Random(stable_seed(seed, "random-router", task.id))
        self.tools = [t for t in tools if task.preference.permits(t.name)]
        self.n_calls = self.rng.randint(1, max_calls) if self.tools else 0

    def generate(self, messages: list[dict[str, Any]], tools: Tools = None) -> Generation:
        if _step(messages) < self.n_calls:
            spec = self.rng.choice(self.tools)
            args = generic_arguments(spec, question_of(messages), last_observation(messages))
            return _emit(render_call(ToolCall(name=spec.name, arguments=args)), messages)
        return _emit(f"<answer>{answer_from_observation(last_observation(messages))}</answer>", messages)


class CascadePolicy:
    """Ask experts cheapest first; answer once two replies agree, else with the dearest one's.

    Agreement between independent models is the confidence signal: it needs no gold answer.
    """

    def __init__(self, experts: list[str], answer_type: str = "string"):
        self.name = "cascade"
        self.tools = [expert_tool_name(e) for e in experts]
        self.answer_type = answer_type  # how replies are compared (the task's declared answer format)

    def generate(self, messages: list[dict[str, Any]], tools: Tools = None) -> Generation:
        replies = [answer_from_observation(m["content"]) for m in messages if m["role"] == "tool"]
        agreed = self._agreed(replies)
        if agreed is None and len(replies) < len(self.tools):
            call = ToolCall(name=self.tools[len(replies)], arguments={"question": question_of(messages)})
            return _emit(render_call(call), messages)
        answer = agreed if agreed is not None else (replies[-1] if replies else "unknown")
        return _emit(f"<answer>{answer}</answer>", messages)

    def _agreed(self, replies: list[str]) -> str | None:
        seen: dict[str, str] = {}
        for reply in replies:
            if reply.startswith("error:"):
                continue
            key = normalize_answer(reply, self.answer_type)
            if key in seen:
                return seen[key]
            seen[key] = reply
        return None


def only_expert_maker(expert: str, with_search: bool) -> PolicyMaker:
    def make(task: Task, toolbox: Toolbox) -> Policy:
        search = next((s.name for s in toolbox.specs if s.kind == "search" and task.preference.permits(s.name)),
                      None) if with_search else None
        return OnlyExpertPolicy(expert, search)
    return make


def random_maker(seed: int, max_calls: int) -> PolicyMaker:
    return lambda task, toolbox: RandomRouterPolicy(task, toolbox.specs, seed, max_calls)


def cascade_maker(catalog: Catalog) -> PolicyMaker:
    def make(task: Task, toolbox: Toolbox) -> Policy:
        order = [e for e in experts_by_price(catalog)
                 if e in toolbox.experts and task.preference.permits(expert_tool_name(e))]
        return CascadePolicy(order, task.answer_type)
    return make


def shared_maker(policy: Policy) -> PolicyMaker:
    """A loaded model serves every task."""
    return lambda task, toolbox: policy
