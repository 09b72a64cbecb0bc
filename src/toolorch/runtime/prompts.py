"""What the orchestrator is shown: the system prompt (tools with their prices and latencies),
the user's turn (the question, then the user's preference in words) and the same tools as
OpenAI function schemas, which every path passes to the chat template (chat.render) and an
OpenAI-compatible server (`tools=`).

The preference closes the user's turn, right before the orchestrator's first call: it travels
with each request, and a small model reads it there. With the preference at the end of the
system prompt, behind the tool list and the question, the tiny profile's SFT model named each
expert at the same rate for every user (P(frontier) on its own training prompts 0.43 for
accuracy-first users and 0.44 for cost-averse ones, against 0.86 and 0.22 in its data); at the
end of the user's turn it learnt 0.73 against 0.15 from the same demonstrations and settings."""
from __future__ import annotations

from typing import Any

from toolorch.core.records import ANSWER_TOOL, Preference, ToolSpec, expert_tool_name

INSTRUCTIONS = (
    "You are an orchestrator. Solve the user's task by calling tools, one call per turn, "
    "then give the final answer.\n"
    'Call a tool as <tool_call>{"name": "...", "arguments": {...}}</tool_call>.\n'
    "Give the final answer as <answer>...</answer>."
)


def offered(spec: ToolSpec, preference: Preference) -> ToolSpec:
    """`spec` as this user is offered it: `answer` names only the models the user allows."""
    model = spec.parameters.get("properties", {}).get("model", {})
    if spec.name != ANSWER_TOOL or "enum" not in model:
        return spec
    allowed = [m for m in model["enum"] if preference.permits(expert_tool_name(m))]
    properties = {**spec.parameters["properties"], "model": {**model, "enum": allowed}}
    return spec.model_copy(update={"parameters": {**spec.parameters, "properties": properties}})


def visible_tools(tools: list[ToolSpec], preference: Preference) -> list[ToolSpec]:
    """The tools the user permits, as offered to them."""
    return [offered(t, preference) for t in tools if preference.permits(t.name)]


def tool_schemas(tools: list[ToolSpec], preference: Preference) -> list[dict[str, Any]]:
    """The chat template's `tools=`: the very tools the system prompt lists, as OpenAI schemas."""
    return [t.openai_schema() for t in visible_tools(tools, preference)]


def describe_tool(spec: ToolSpec, describe_db: bool = True) -> str:
    def kind(v: dict) -> str:
        options = v.get("enum")
        return v.get("type", "any") if options is None else " | ".join(map(str, options))

    args = ", ".join(f"{k}: {kind(v)}" for k, v in spec.parameters.get("properties", {}).items())
    tags = []
    if spec.cost_usd:
        tags.append(f"${spec.cost_usd:g}/call")
    if spec.latency_s:
        tags.append(f"~{spec.latency_s:g}s")
    suffix = f" [{', '.join(tags)}]" if tags else ""
    if spec.kind == "db" and not describe_db:
        return f"- {spec.name}({args}){suffix}"
    return f"- {spec.name}({args}): {spec.description}{suffix}"


def system_prompt(tools: list[ToolSpec], preference: Preference, env_description: str = "",
                  describe_db: bool = True) -> str:
    """Instructions, the world and the tools the preference permits (it is rendered in the user's turn)."""
    parts = [INSTRUCTIONS]
    if env_description:
        parts.append(env_description)
    parts.append("Tools:\n" + "\n".join(describe_tool(t, describe_db) for t in visible_tools(tools, preference)))
    return "\n\n".join(parts)


def user_turn(question: str, preference: Preference) -> str:
    """The question, then the preference: the last thing the orchestrator reads before it acts."""
    return f"{question}\n\n{preference.render()}"
