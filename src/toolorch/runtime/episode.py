"""The episode runner: policy <-> tools, turn by turn, with full accounting.

    traj = run_episode(task, policy, toolbox, limits)   # limits: cfg.episode.limits()

Each turn the policy reads the chat and the episode's tool schemas (the chat template's
`tools=`, recorded in the trajectory) and writes one message; it is parsed (Hermes tool
call or final answer); a call is executed by the toolbox and its result appended as a
`tool` message; the `answer` tool's expert reply is the final answer. Malformed output,
unknown or forbidden tools and tool failures become error observations: the loop goes
on. Limits (turns, policy tokens, dollars) end the episode as a failure with the reason
recorded.
"""
from __future__ import annotations

from dataclasses import dataclass

from toolorch.core.catalog import Catalog, EpisodeLimits
from toolorch.core.config import Config
from toolorch.core.records import Observation, Task, Trajectory, Turn, Usage, is_correct
from toolorch.runtime.env.world import EnvSession
from toolorch.runtime.experts import Expert, build_experts
from toolorch.runtime.parsing import parse_assistant
from toolorch.runtime.policies import Policy, answer_from_observation
from toolorch.runtime.prompts import system_prompt, tool_schemas
from toolorch.runtime.tools import Toolbox


def initial_messages(task: Task, toolbox: Toolbox) -> list[dict[str, str]]:
    description = toolbox.session.env.spec.description if toolbox.session is not None else ""
    return [
        {"role": "system", "content": system_prompt(toolbox.specs, task.preference, description,
                                                    toolbox.catalog.tools.describe_db_tools)},
        {"role": "user", "content": task.question},
    ]


def reaches_final_state(task: Task, toolbox: Toolbox) -> bool:
    if task.final_state is None:
        return True
    return toolbox.session is not None and toolbox.session.fingerprint() == task.final_state


def run_episode(task: Task, policy: Policy, toolbox: Toolbox, limits: EpisodeLimits) -> Trajectory:
    price = toolbox.catalog.orchestrator
    messages = initial_messages(task, toolbox)
    tools = tool_schemas(toolbox.specs, task.preference)
    turns: list[Turn] = []
    total = Usage()
    tokens_out = 0
    answer: str | None = None
    stop = "max_turns"
    for index in range(limits.max_turns):
        gen = policy.generate(messages, tools)
        own = Usage(tokens_in=gen.tokens_in, tokens_out=gen.tokens_out,
                    cost_usd=price.cost(gen.tokens_in, gen.tokens_out),
                    latency_s=gen.tokens_out / limits.policy_tokens_per_s)
        total += own
        tokens_out += gen.tokens_out
        messages.append({"role": "assistant", "content": gen.text})
        parsed = parse_assistant(gen.text)
        if parsed.answer is not None:
            turns.append(Turn(index=index, text=gen.text, policy_usage=own))
            answer, stop = parsed.answer, "answer"
            break
        if parsed.call is None:
            obs = Observation(tool="", content=f"error: {parsed.error}", error=True)
        elif not (task.preference.permits(parsed.call.name) and task.preference.permits(parsed.call.route)):
            obs = Observation(tool=parsed.call.name, error=True,
                              content=f"error: the user does not allow '{parsed.call.route}'")
        else:
            obs = toolbox.call(parsed.call, task)
        total += obs.usage
        messages.append({"role": "tool", "content": obs.content})
        turns.append(Turn(index=index, text=gen.text, policy_usage=own, call=parsed.call, observation=obs))
        if obs.final and not obs.error:
            answer, stop = answer_from_observation(obs.content), "answer"
            break
        if tokens_out >= limits.max_tokens:
            stop = "max_tokens"
            break
        if total.cost_usd >= limits.budget_usd:
            stop = "budget"
            break
    return Trajectory(
        task_id=task.id, env=task.env, policy=policy.name, messages=messages, tools=tools, turns=turns,
        answer=answer, correct=stop == "answer" and is_correct(answer, task) and reaches_final_state(task, toolbox),
        stop_reason=stop, usage=total,
    )


@dataclass(frozen=True)
class Runtime:
    """What every episode of a run shares: the price catalog, the limits and the built experts.

    Training, eval and serving each hold one and run every episode through it.
    """

    catalog: Catalog
    limits: EpisodeLimits
    experts: dict[str, Expert]

    @classmethod
    def of(cls, catalog: Catalog, limits: EpisodeLimits, seed: int = 0) -> Runtime:
        return cls(catalog, limits, build_experts(catalog, seed))

    @classmethod
    def from_config(cls, cfg: Config) -> Runtime:
        return cls.of(cfg.catalog(), cfg.episode.limits(), cfg.seed)

    def toolbox(self, session: EnvSession | None, with_code: bool = True) -> Toolbox:
        return Toolbox(self.catalog, session, self.experts, with_code=with_code)

    def run(self, task: Task, policy: Policy, toolbox: Toolbox) -> Trajectory:
        return run_episode(task, policy, toolbox, self.limits)
