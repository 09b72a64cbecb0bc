"""Typed records that flow through every stage: tasks, tools, calls, trajectories.

One piece of data can be followed end to end with these types alone:
a `Task` (from synthesis) is run by the episode runner into a `Trajectory`
of `Turn`s (each with a `ToolCall` and its `Observation`), accounted in `Usage`.
"""
from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Category = Literal["lookup", "multi_hop", "aggregate", "document", "reasoning"]
CATEGORIES: tuple[str, ...] = ("lookup", "multi_hop", "aggregate", "document", "reasoning")
ToolKind = Literal["db", "search", "code", "expert", "http", "mcp"]  # http, mcp: served by the gateway
StopReason = Literal["answer", "max_turns", "max_tokens", "budget", "latency"]  # latency: a serving deadline


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Usage(Record):
    """Resources one step (or a whole episode) consumed."""

    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            tokens_in=self.tokens_in + other.tokens_in,
            tokens_out=self.tokens_out + other.tokens_out,
            cost_usd=self.cost_usd + other.cost_usd,
            latency_s=self.latency_s + other.latency_s,
        )


class Preference(Record):
    """What the user cares about: objective weights and tool constraints.

    Weights are relative; `allow` (None = every tool), `deny` and `prefer` name tools.
    """

    accuracy: float = Field(1.0, ge=0)
    cost: float = Field(0.0, ge=0)
    latency: float = Field(0.0, ge=0)
    allow: list[str] | None = None
    deny: list[str] = []
    prefer: list[str] = []

    def permits(self, tool: str) -> bool:
        return tool not in self.deny and (self.allow is None or tool in self.allow)

    def shares(self) -> dict[str, float]:
        """The weights on accuracy, cost and latency scaled to sum to 1 (all accuracy when they
        weigh nothing): the user's trade-off, as the reward and the eval both read it."""
        total = self.accuracy + self.cost + self.latency
        if total <= 0:
            return {"accuracy": 1.0, "cost": 0.0, "latency": 0.0}
        return {"accuracy": self.accuracy / total, "cost": self.cost / total, "latency": self.latency / total}

    def render(self) -> str:
        """The preference in words, as the orchestrator reads it in its system prompt."""
        total = self.accuracy + self.cost + self.latency or 1.0
        parts = [
            f"accuracy {self.accuracy / total:.0%}",
            f"cost {self.cost / total:.0%}",
            f"latency {self.latency / total:.0%}",
        ]
        lines = ["User preference: weigh " + ", ".join(parts) + "."]
        main = max(("accuracy", "cost", "latency"), key=lambda k: getattr(self, k))
        lines.append(
            {
                "accuracy": "Getting the answer right matters most.",
                "cost": "Keep the dollar cost low; use expensive experts only when needed.",
                "latency": "Answer fast; avoid slow tools.",
            }[main]
        )
        if self.allow is not None:
            lines.append("Only these tools may be used: " + ", ".join(self.allow) + ".")
        if self.deny:
            lines.append("Never use: " + ", ".join(self.deny) + ".")
        if self.prefer:
            lines.append("Prefer: " + ", ".join(self.prefer) + ".")
        return "\n".join(lines)


class ToolSpec(Record):
    """One tool the orchestrator may call: an OpenAI function schema plus price tags.

    `sql` holds the parameterised query of a `db` tool (named `:params`);
    `expert` names the expert model behind an `expert` tool.
    """

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    description: str
    parameters: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
    kind: ToolKind
    cost_usd: float = Field(0.0, ge=0)
    latency_s: float = Field(0.0, ge=0)
    sql: str | None = None
    expert: str | None = None

    def openai_schema(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


ANSWER_TOOL = "answer"  # ToolOrchestra's `answer` family: an expert writes the final answer


def expert_tool_name(expert: str) -> str:
    """The tool that consults one expert, e.g. ask_frontier."""
    return "ask_" + re.sub(r"[^A-Za-z0-9_]", "_", expert)


class ToolCall(Record):
    name: str
    arguments: dict[str, Any] = {}

    @property
    def route(self) -> str:
        """The tool this call really uses: `answer(model=m)` uses expert m, like `ask_m`.

        Preferences (allow/deny/prefer), rewards and tool mixes speak of routes.
        """
        model = self.arguments.get("model")
        if self.name == ANSWER_TOOL and isinstance(model, str):
            return expert_tool_name(model)
        return self.name


class Observation(Record):
    """A tool's result as the orchestrator sees it; errors are observations too."""

    tool: str
    content: str
    error: bool = False
    usage: Usage = Usage()
    final: bool = False  # the content is the episode's final answer (the `answer` tool)


class Turn(Record):
    index: int
    text: str  # the policy's raw output for this turn
    policy_usage: Usage
    call: ToolCall | None = None
    observation: Observation | None = None
    # the output was no call the episode offers: unparseable, an unknown tool, or arguments its
    # schema rejects (`answer(model="")`). A call that fits and then fails (no such row) is not.
    malformed: bool = False


class Task(Record):
    """A question with a verifiable answer, computed by executing `gold_calls`."""

    id: str
    env: str
    question: str
    answer: str
    answer_type: Literal["string", "number", "list", "bool"] = "string"
    category: Category = "lookup"
    difficulty: int = Field(1, ge=1)
    template: str = ""
    gold_calls: list[ToolCall] = []
    preference: Preference = Preference()
    split: Literal["train", "heldout"] = "train"
    # Fingerprint of the world's tables after the gold calls (tasks that change the world, e.g.
    # tau2 bookings): an episode is then correct only if it leaves the world in this state.
    final_state: str | None = None


class Trajectory(Record):
    task_id: str
    env: str
    policy: str
    messages: list[dict[str, Any]]  # the full chat, system prompt first
    tools: list[dict[str, Any]] = []  # the OpenAI schemas the chat was rendered with (chat template `tools=`)
    turns: list[Turn]
    answer: str | None = None
    correct: bool = False
    stop_reason: StopReason
    usage: Usage

    def tool_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for t in self.turns:
            if t.call is not None:
                counts[t.call.route] = counts.get(t.call.route, 0) + 1
        return counts


def normalize_answer(value: str, answer_type: str) -> str:
    """Canonical form used to compare a prediction with a gold answer."""
    text = str(value).strip().strip(".").strip()
    if answer_type == "number":
        try:
            number = float(text.replace(",", "").replace("$", ""))
        except ValueError:
            return text.casefold()
        if math.isfinite(number) and abs(number - round(number)) < 1e-9:
            return str(int(round(number)))
        return f"{number:.2f}"
    if answer_type == "list":
        items = [i.strip().casefold() for i in text.strip("[]").replace(";", ",").split(",")]
        return ", ".join(sorted(i.strip("'\"") for i in items if i))
    if answer_type == "bool":
        low = text.casefold()
        return {"true": "yes", "1": "yes", "false": "no", "0": "no"}.get(low, low)
    return " ".join(text.casefold().split())


STATE_PREFIX = "state:"


def is_correct(prediction: str | None, task: Task) -> bool:
    """The reply's check. A task whose answer is a state fingerprint is judged on the world alone."""
    if prediction is None:
        return False
    if task.answer.startswith(STATE_PREFIX):
        return True
    return normalize_answer(prediction, task.answer_type) == normalize_answer(task.answer, task.answer_type)
