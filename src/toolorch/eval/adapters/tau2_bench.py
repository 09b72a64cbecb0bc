"""tau2-bench (airline) as a conversation benchmark for any toolorch policy.

    env, cases, unconverted = load_cases("airline", Path("bench_envs"), split="test")
    rows = run_tau2(cases, env, maker, "grpo", Runtime.from_config(cfg), user_factory=llm_users(endpoint))
    summary = summarize_tau2(rows)

The agent is the orchestrator policy. As in ToolOrchestra, it gets the domain's tools (the
tau2 tools imported by `toolorch.synth.tau2` as db tools, search over the policy, the code
tool for tau2's `calculate`) plus the expert tools of the config (`ask_<expert>`, and
`answer(model=...)`, with which the chosen expert writes the agent's next message).
A message without a tool call goes to the customer, who answers through a user simulator
(`tau2_user`); the conversation ends when the customer writes a stop token, or at
`max_steps` agent steps or the episode budget.

Scoring follows tau2 (airline's reward basis DB x COMMUNICATE): reward 1 when the customer
ended the conversation, the DB ends in the state the gold actions produce (`EnvSession.
fingerprint` vs `Task.final_state`), and every `communicate_info` string appears in what
the agent told the customer (case-insensitive, commas ignored, as tau2 checks it).
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

from toolorch.core.catalog import EpisodeLimits
from toolorch.core.records import Observation, Record, Task, Turn, Usage
from toolorch.eval.adapters.endpoint import Endpoint
from toolorch.eval.adapters.tau2_user import (
    LLMUserSimulator,
    ScriptedUser,
    UserSimulator,
    UserSimulatorError,
    stop_reason,
)
from toolorch.eval.baselines import PolicyMaker
from toolorch.runtime.env.world import Environment, ToolError
from toolorch.runtime.episode import Runtime
from toolorch.runtime.parsing import parse_assistant
from toolorch.runtime.policies import PlanPolicy, Policy, answer_from_observation
from toolorch.runtime.prompts import system_prompt, tool_schemas
from toolorch.runtime.tools import Toolbox
from toolorch.synth import tau2

USER_STOPS = ("user_stop", "transfer", "out_of_scope")  # tau2 scores only conversations the user ended
CONVERSATION_NOTE = (
    "You are a customer-service agent talking with a customer. A message without a tool call "
    "(plain text or <answer>...</answer>) is sent to the customer, who then replies; the "
    "conversation goes on until the customer ends it. Make changes to the database only as the "
    "policy allows and after the customer confirms them."
)


@dataclass(frozen=True)
class Tau2Case:
    task: Task  # gold_calls and final_state come from the importer
    user_scenario: dict[str, Any]  # what the user simulator knows; the agent never sees it
    communicate_info: tuple[str, ...]
    tau2_id: str


class Tau2Result(Record):
    """One policy's conversation on one tau2 task, scored."""

    policy: str
    task_id: str
    tau2_id: str
    category: str
    reward: float
    db_match: bool
    missing_info: list[str] = []
    stop_reason: str
    error: str | None = None
    cost_usd: float
    latency_s: float
    agent_steps: int
    user_turns: int
    tool_counts: dict[str, int] = {}
    messages: list[dict[str, Any]]  # the agent's chat, then the closing user message


UserFactory = Callable[[Tau2Case], UserSimulator]


def llm_users(endpoint: Endpoint) -> UserFactory:
    return lambda case: LLMUserSimulator(endpoint, case.user_scenario)


def scripted_users(case: Tau2Case) -> UserSimulator:
    return ScriptedUser(case.user_scenario)


# ---- tasks -------------------------------------------------------------------------------------

def select_raw(domain: str, split: Literal["test", "train", "all"], ids: list[str] | None,
               max_tasks: int | None) -> list[dict[str, Any]]:
    raws = tau2.load_tasks(domain)
    if ids is not None:
        known = {r["id"] for r in raws}
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise ValueError(f"tau2 {domain}: no task(s) {unknown}")
        raws = [r for r in raws if r["id"] in set(ids)]
    elif split != "all":
        splits = json.loads((tau2.data_dir(domain) / "split_tasks.json").read_text())
        raws = [r for r in raws if r["id"] in set(splits[split])]
    return raws[:max_tasks] if max_tasks is not None else raws


def load_cases(domain: str, out_dir: Path, split: Literal["test", "train", "all"] = "test",
               ids: list[str] | None = None, max_tasks: int | None = None
               ) -> tuple[Environment, list[Tau2Case], dict[str, str]]:
    """The imported world and one case per tau2 task; tasks the importer cannot convert are
    returned with the reason instead (never silently dropped)."""
    env = tau2.build_env(domain, Path(out_dir) / f"tau2_{domain}")
    cases, unconverted = [], {}
    for raw in select_raw(domain, split, ids, max_tasks):
        try:
            task = tau2.convert_task(env, domain, raw, "heldout")
        except (tau2.ActionFailed, ToolError, KeyError, TypeError) as e:
            unconverted[raw["id"]] = f"{e.__class__.__name__}: {e}"
            continue
        info = (raw.get("evaluation_criteria") or {}).get("communicate_info") or []
        cases.append(Tau2Case(task, raw.get("user_scenario") or {}, tuple(str(i) for i in info), raw["id"]))
    return env, cases, unconverted


def gold_agent(case: Tau2Case) -> Policy:
    """Replays the task's gold calls, then tells the customer the facts tau2 expects: the
    adapter's own check (it must score 1 on every task), never a baseline."""
    closing = "Your request is complete." + "".join(f" {i}." for i in case.communicate_info)
    return PlanPolicy(case.task.gold_calls, name="gold", answer=lambda _prev: closing)


# ---- the conversation --------------------------------------------------------------------------

def agent_prompt(toolbox: Toolbox, case: Tau2Case, policy_text: str) -> str:
    env = toolbox.session.env.spec
    base = system_prompt(toolbox.specs, case.task.preference, env.description, toolbox.catalog.tools.describe_db_tools)
    # a conversation has many user turns, all the customer's: the operator's preference stays in the system prompt
    return "\n\n".join(p for p in (base, case.task.preference.render(), CONVERSATION_NOTE,
                                    policy_text and f"Policy:\n{policy_text}") if p)


def transcript(messages: list[dict[str, Any]], tail: int = 40) -> str:
    """The conversation as an expert reads it (customer, agent and tool lines)."""
    names = {"user": "Customer", "assistant": "Agent", "tool": "Tool result"}
    lines = [f"{names[m['role']]}: {m['content']}" for m in messages[1:] if m["role"] in names]
    return ("Customer-service conversation so far:\n" + "\n".join(lines[-tail:])
            + "\n\nWrite the agent's next message to the customer.")


class Conversation:
    """One agent-customer conversation over a private session of the world, with accounting."""

    def __init__(self, case: Tau2Case, policy: Policy, toolbox: Toolbox, limits: EpisodeLimits, user: UserSimulator,
                 policy_text: str):
        self.case, self.policy, self.toolbox, self.limits, self.user = case, policy, toolbox, limits, user
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": agent_prompt(toolbox, case, policy_text)}]
        self.tools = tool_schemas(toolbox.specs, case.task.preference)
        self.said: list[str] = []  # what reached the customer
        self.turns: list[Turn] = []
        self.total = Usage()
        self.user_turns = 0
        self.error: str | None = None

    def run(self, max_steps: int) -> str:
        """Runs to the end; returns the stop reason."""
        try:
            self.messages.append({"role": "user", "content": self.user.first_message()})
        except UserSimulatorError as e:
            self.error = str(e)
            return "user_error"
        for index in range(max_steps):
            said = self.step(index)
            if said is not None:
                reason = self.to_customer(said)
                if reason is not None:
                    return reason
            if self.total.cost_usd >= self.limits.budget_usd:
                return "budget"
        return "max_steps"

    def step(self, index: int) -> str | None:
        """One agent turn; returns the message it sends the customer, if any."""
        limits = self.limits
        gen = self.policy.generate(self.messages, self.tools)
        own = Usage(tokens_in=gen.tokens_in, tokens_out=gen.tokens_out,
                    cost_usd=self.toolbox.catalog.orchestrator.cost(gen.tokens_in, gen.tokens_out),
                    latency_s=gen.tokens_out / limits.policy_tokens_per_s)
        self.total += own
        self.messages.append({"role": "assistant", "content": gen.text})
        parsed = parse_assistant(gen.text)
        if parsed.answer is not None:
            self.turns.append(Turn(index=index, text=gen.text, policy_usage=own))
            return parsed.answer
        obs = self.observe(parsed)
        self.total += obs.usage
        self.messages.append({"role": "tool", "content": obs.content})
        self.turns.append(Turn(index=index, text=gen.text, policy_usage=own, call=parsed.call, observation=obs))
        return answer_from_observation(obs.content) if obs.final and not obs.error else None

    def observe(self, parsed: Any) -> Observation:
        call, preference = parsed.call, self.case.task.preference
        if call is None:
            return Observation(tool="", content=f"error: {parsed.error}", error=True)
        if not (preference.permits(call.name) and preference.permits(call.route)):
            return Observation(tool=call.name, error=True, content=f"error: the user does not allow '{call.route}'")
        # Experts read the conversation, not the user's hidden scenario (the imported task's question).
        view = self.case.task.model_copy(update={"question": transcript(self.messages)})
        return self.toolbox.call(call, view)

    def to_customer(self, text: str) -> str | None:
        self.said.append(text)
        try:
            reply = self.user.reply(text)
        except UserSimulatorError as e:
            self.error = str(e)
            return "user_error"
        self.user_turns += 1
        self.messages.append({"role": "user", "content": reply})
        return stop_reason(reply)


def missing_info(case: Tau2Case, said: list[str]) -> list[str]:
    """communicate_info strings no agent message contains (tau2: lower-cased, commas dropped)."""
    texts = [s.lower().replace(",", "") for s in said]
    return [i for i in case.communicate_info if not any(i.lower() in t for t in texts)]


def run_conversation(case: Tau2Case, policy: Policy, toolbox: Toolbox, limits: EpisodeLimits, user: UserSimulator,
                     max_steps: int = 50, policy_text: str = "") -> Tau2Result:
    conv = Conversation(case, policy, toolbox, limits, user, policy_text)
    stop = conv.run(max_steps)
    db_match = case.task.final_state is None or toolbox.session.fingerprint() == case.task.final_state
    missing = missing_info(case, conv.said)
    counts = Counter(t.call.route for t in conv.turns if t.call is not None)
    return Tau2Result(
        policy=policy.name, task_id=case.task.id, tau2_id=case.tau2_id, category=case.task.category,
        reward=float(stop in USER_STOPS and db_match and not missing), db_match=db_match, missing_info=missing,
        stop_reason=stop, error=conv.error, cost_usd=conv.total.cost_usd, latency_s=conv.total.latency_s,
        agent_steps=len(conv.turns), user_turns=conv.user_turns, tool_counts=dict(sorted(counts.items())),
        messages=conv.messages,
    )


def run_tau2(cases: list[Tau2Case], env: Environment, make: PolicyMaker, policy_name: str, runtime: Runtime,
             user_factory: UserFactory, max_steps: int = 50,
             policy_in_prompt: bool = True) -> list[Tau2Result]:
    policy_text = (tau2.data_dir(env.name.removeprefix("tau2_")) / "policy.md").read_text() if policy_in_prompt else ""
    rows = []
    for case in cases:
        with env.session() as session:
            toolbox = runtime.toolbox(session)
            result = run_conversation(case, make(case.task, toolbox), toolbox, runtime.limits, user_factory(case), max_steps,
                                      policy_text)
            rows.append(result.model_copy(update={"policy": policy_name}))
    return rows


# ---- numbers -----------------------------------------------------------------------------------

def _mean(values: list[float]) -> float:
    return float(sum(values) / len(values)) if values else 0.0


def summarize_tau2(rows: list[Tau2Result]) -> dict[str, Any]:
    """Per policy: n, reward (tau2's pass^1), its two parts, cost, latency, steps, stop reasons."""
    by_policy: dict[str, list[Tau2Result]] = {}
    for r in rows:
        by_policy.setdefault(r.policy, []).append(r)
    out = {}
    for policy, group in sorted(by_policy.items()):
        out[policy] = {
            "n": len(group),
            "reward": _mean([r.reward for r in group]),
            "db_match": _mean([float(r.db_match) for r in group]),
            "communicated": _mean([float(not r.missing_info) for r in group]),
            "cost_usd": _mean([r.cost_usd for r in group]),
            "latency_s": _mean([r.latency_s for r in group]),
            "agent_steps": _mean([float(r.agent_steps) for r in group]),
            "user_turns": _mean([float(r.user_turns) for r in group]),
            "stop_reasons": dict(sorted(Counter(r.stop_reason for r in group).items())),
            "by_category": {c: {"n": len(g), "reward": _mean([r.reward for r in g])}
                            for c, g in sorted(_by(group, "category").items())},
        }
    return out


def _by(rows: list[Tau2Result], key: str) -> dict[str, list[Tau2Result]]:
    out: dict[str, list[Tau2Result]] = {}
    for r in rows:
        out.setdefault(getattr(r, key), []).append(r)
    return out
