"""The system prompt: tools with their prices and latencies, and the user's preference in words."""
from __future__ import annotations

from toolorch.core.records import ANSWER_TOOL, Preference, ToolSpec, expert_tool_name

INSTRUCTIONS = (
    "You are an orchestrator. Solve the user's task by calling tools, one call per turn, "
    "then give the final answer.\n"
    'Call a tool as <tool_call>{"name": "...", "arguments": {...}}</tool_call>.\n'
    "Give the final answer as <answer>...</answer>."
)


def describe_tool(spec: ToolSpec, preference: Preference | None = None, describe_db: bool = True) -> str:
    def kind(v: dict) -> str:
        options = v.get("enum")
        if options is None:
            return v.get("type", "any")
        if preference is not None and spec.name == ANSWER_TOOL:  # only the models the user allows
            options = [o for o in options if preference.permits(expert_tool_name(o))]
        return " | ".join(map(str, options))

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
    visible = [t for t in tools if preference.permits(t.name)]
    parts = [INSTRUCTIONS]
    if env_description:
        parts.append(env_description)
    parts.append("Tools:\n" + "\n".join(describe_tool(t, preference, describe_db) for t in visible))
    parts.append(preference.render())
    return "\n\n".join(parts)

