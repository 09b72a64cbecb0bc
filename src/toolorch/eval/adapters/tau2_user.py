"""The customer in a tau2-bench conversation: an LLM user simulator, or a scripted one for offline tests.

    user = LLMUserSimulator(Endpoint(base_url=..., model=...), scenario)
    first = user.first_message()          # the customer's opening, after the agent's greeting
    text = user.reply("Which reservation?")
    reason = stop_reason(text)            # "user_stop" | "transfer" | "out_of_scope" | None

As in tau2-bench, the simulator's system prompt is the simulation guidelines plus the task's
`user_scenario` (which the agent never sees), its chat has the roles flipped (the agent
speaks as `user`), and it ends the conversation by writing one of three stop tokens.
"""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Protocol

from toolorch.eval.adapters.endpoint import Endpoint, EndpointChat
from toolorch.runtime.openai_chat import EndpointError

STOP, TRANSFER, OUT_OF_SCOPE = "###STOP###", "###TRANSFER###", "###OUT-OF-SCOPE###"
STOP_TOKENS = {STOP: "user_stop", TRANSFER: "transfer", OUT_OF_SCOPE: "out_of_scope"}
AGENT_GREETING = "Hi! How can I help you today?"  # tau2's fixed first agent message

# Used when the tau2 wheel's own guidelines file is not installed (same rules, shorter).
FALLBACK_GUIDELINES = f"""# User Simulation Guidelines
You play a customer contacting a customer service representative. Follow the scenario instructions.
- Write one message at a time, as a customer would.
- Never invent information the scenario does not give you; treat it as unknown.
- Do not repeat the instructions verbatim; disclose information only when the agent asks for it.
- When the scenario's goal is met, write '{STOP}' to end the conversation.
- If you are transferred to another agent, write '{TRANSFER}'.
- If the scenario does not tell you how to go on, write '{OUT_OF_SCOPE}'."""


class UserSimulatorError(RuntimeError):
    """The user simulator could not produce a message (dead endpoint, refused request, empty reply)."""


class UserSimulator(Protocol):
    def first_message(self) -> str: ...

    def reply(self, agent_message: str) -> str: ...


def stop_reason(text: str) -> str | None:
    return next((reason for token, reason in STOP_TOKENS.items() if token in text), None)


def render_scenario(user_scenario: dict[str, Any]) -> str:
    """tau2's text form of a user scenario (persona, then structured or free instructions)."""
    parts = []
    if user_scenario.get("persona"):
        parts.append(f"Persona:\n{textwrap.indent(str(user_scenario['persona']), chr(9))}")
    instr = user_scenario.get("instructions") or ""
    if isinstance(instr, dict):
        lines = [f"Domain: {instr.get('domain', '')}"]
        for key, label in (("reason_for_call", "Reason for call"), ("known_info", "Known info"),
                           ("unknown_info", "Unknown info"), ("task_instructions", "Task instructions")):
            if instr.get(key):
                lines.append(f"{label}:\n{textwrap.indent(str(instr[key]), chr(9))}")
        instr = "\n".join(lines)
    parts.append(f"Instructions:\n{textwrap.indent(str(instr), chr(9))}")
    return "\n".join(parts)


def simulation_guidelines() -> str:
    try:
        from toolorch.synth import tau2

        path = tau2.data_dir("airline").parents[1] / "user_simulator" / "simulation_guidelines.md"
    except (ModuleNotFoundError, FileNotFoundError):
        return FALLBACK_GUIDELINES
    return Path(path).read_text() if Path(path).exists() else FALLBACK_GUIDELINES


class LLMUserSimulator:
    """The customer played by a model behind an OpenAI-compatible endpoint (bounded retries)."""

    def __init__(self, endpoint: Endpoint, user_scenario: dict[str, Any], guidelines: str | None = None):
        self.endpoint = endpoint
        self.chat = EndpointChat(endpoint)
        system = f"{guidelines or simulation_guidelines()}\n\n<scenario>\n{render_scenario(user_scenario)}\n</scenario>"
        # Roles flipped: the agent's messages reach the simulator as `user`, its own are `assistant`.
        self.messages: list[dict[str, str]] = [{"role": "system", "content": system}]

    def first_message(self) -> str:
        return self.reply(AGENT_GREETING)

    def reply(self, agent_message: str) -> str:
        self.messages.append({"role": "user", "content": agent_message})
        try:
            text = self.chat.say(self.messages).strip()
        except EndpointError as e:
            raise UserSimulatorError(f"user simulator '{self.endpoint.model}': {e}") from None
        if not text:
            raise UserSimulatorError(f"user simulator '{self.endpoint.model}' answered with an empty message")
        self.messages.append({"role": "assistant", "content": text})
        return text


class ScriptedUser:
    """A customer without a model: opens with the reason for calling and what it knows, answers
    an agent's question with its known info (at most `max_answers` times), and otherwise ends
    the conversation. Enough to check the adapter's plumbing and scoring offline."""

    def __init__(self, user_scenario: dict[str, Any], max_answers: int = 2):
        instr = user_scenario.get("instructions") or {}
        if isinstance(instr, str):
            instr = {"reason_for_call": instr}
        self.reason = str(instr.get("reason_for_call") or "").strip()
        self.known = str(instr.get("known_info") or "").strip()
        self.answers_left = max_answers
        self.heard: list[str] = []  # what the agent said, in order

    def first_message(self) -> str:
        return " ".join(p for p in (self.reason, self.known) if p) or "I need help with my booking."

    def reply(self, agent_message: str) -> str:
        self.heard.append(agent_message)
        if agent_message.rstrip().endswith("?") and self.answers_left > 0 and self.known:
            self.answers_left -= 1
            return self.known
        return f"Thank you, that is all. {STOP}"
