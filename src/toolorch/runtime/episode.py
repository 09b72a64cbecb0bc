"""The episode runner: policy <-> tools, turn by turn, with full accounting.

    traj = run_episode(task, policy, toolbox, limits)          # limits: cfg.episode.limits()
    traj = await arun_episode(task, apolicy, atools, limits)   # the serving gateway

The loop is written once, as a generator free of I/O (`episode`): it yields `Generate` and
`CallTool` requests and is sent the results. `run_episode` drives it synchronously, `arun_episode`
asynchronously; a driver may answer `Halt(reason)` to end the episode early (a budget or deadline
that only the driver can see).

Each turn the policy reads the chat and the episode's tool schemas (the chat template's
`tools=`, recorded in the trajectory) and writes one message; it is parsed (Hermes tool
call or final answer); a call is executed by the toolbox and its result appended as a
`tool` message; the `answer` tool's expert reply is the final answer. Malformed output,
unknown or forbidden tools and tool failures become error observations: the loop goes
on. Limits (turns, policy tokens, dollars) end the episode as a failure with the reason
recorded.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Generator, Protocol, Union

from toolorch.core.catalog import Catalog, EpisodeLimits, Randomisation, disguise
from toolorch.core.config import Config
from toolorch.core.records import (
    Observation,
    StopReason,
    Task,
    ToolCall,
    ToolSpec,
    Trajectory,
    Turn,
    Usage,
    is_correct,
)
from toolorch.core.seeds import stable_seed
from toolorch.runtime.env.world import EnvSession
from toolorch.runtime.experts import Expert, SimulatedExpert, build_experts
from toolorch.runtime.parsing import parse_assistant
from toolorch.runtime.policies import Generation, Policy, answer_from_observation
from toolorch.runtime.prompts import system_prompt, tool_schemas, user_turn
from toolorch.runtime.tools import Toolbox, expert_tool_name, misfit


class ToolView(Protocol):
    """What the loop reads of a toolbox: the tools it lists, their prices, the world (if any)."""

    catalog: Catalog
    session: EnvSession | None
    specs: list[ToolSpec]


def initial_messages(task: Task, toolbox: ToolView) -> list[dict[str, Any]]:
    description = toolbox.session.env.spec.description if toolbox.session is not None else ""
    return [
        {"role": "system", "content": system_prompt(toolbox.specs, task.preference, description,
                                                    toolbox.catalog.tools.describe_db_tools)},
        {"role": "user", "content": user_turn(task.question, task.preference)},
    ]


def reaches_final_state(task: Task, toolbox: ToolView) -> bool:
    if task.final_state is None:
        return True
    return toolbox.session is not None and toolbox.session.fingerprint() == task.final_state


@dataclass(frozen=True)
class Generate:
    """The episode asks its driver for the policy's next message (answer: a `Generation`); `tools`
    are the tool schemas the chat template renders."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]


@dataclass(frozen=True)
class CallTool:
    """The episode asks its driver to run a tool call (answer: its `Observation`)."""

    call: ToolCall


@dataclass(frozen=True)
class Halt:
    """A driver's answer instead of a result: end the episode now (a serving budget, deadline)."""

    reason: StopReason


Request = Union[Generate, CallTool]
Episode = Generator[Request, Union[Generation, Observation, Halt], Trajectory]


def episode(task: Task, toolbox: ToolView, limits: EpisodeLimits, policy_name: str) -> Episode:
    """The loop itself, free of I/O: it yields what it needs done and is sent the results.

    `run_episode` drives it synchronously (training, eval, the teacher) and `arun_episode`
    asynchronously (the serving gateway), so every caller runs this one loop.
    """
    price = toolbox.catalog.orchestrator
    messages = initial_messages(task, toolbox)
    tools = tool_schemas(toolbox.specs, task.preference)
    turns: list[Turn] = []
    total = Usage()
    tokens_out = 0
    answer: str | None = None
    stop: StopReason = "max_turns"
    for index in range(limits.max_turns):
        gen = yield Generate(messages, tools)
        if isinstance(gen, Halt):
            stop = gen.reason
            break
        assert isinstance(gen, Generation)
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
        malformed = parsed.call is None
        if parsed.call is None:
            obs = Observation(tool="", content=f"error: {parsed.error}", error=True)
        elif not (task.preference.permits(parsed.call.name) and task.preference.permits(parsed.call.route)):
            obs = Observation(tool=parsed.call.name, error=True,
                              content=f"error: the user does not allow '{parsed.call.route}'")
        else:
            malformed = misfit(parsed.call, toolbox.specs) is not None
            result = yield CallTool(parsed.call)
            if isinstance(result, Halt):
                turns.append(Turn(index=index, text=gen.text, policy_usage=own, call=parsed.call,
                                  malformed=malformed))
                stop = result.reason
                break
            assert isinstance(result, Observation)
            obs = result
        total += obs.usage
        messages.append({"role": "tool", "content": obs.content})
        turns.append(Turn(index=index, text=gen.text, policy_usage=own, call=parsed.call, observation=obs,
                          malformed=malformed))
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
        task_id=task.id, env=task.env, policy=policy_name, messages=messages, tools=tools, turns=turns,
        answer=answer, correct=stop == "answer" and is_correct(answer, task) and reaches_final_state(task, toolbox),
        stop_reason=stop, usage=total,
    )


def run_episode(task: Task, policy: Policy, toolbox: Toolbox, limits: EpisodeLimits) -> Trajectory:
    """Drive `episode` synchronously: the policy writes, the toolbox runs each call."""
    steps = episode(task, toolbox, limits, policy.name)
    request = next(steps)
    while True:
        result = policy.generate(request.messages, request.tools) if isinstance(request, Generate) \
            else toolbox.call(request.call, task)
        try:
            request = steps.send(result)
        except StopIteration as done:
            return done.value


class AsyncPolicy(Protocol):
    name: str

    async def agenerate(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Generation | Halt: ...


class AsyncTools(ToolView, Protocol):
    async def acall(self, call: ToolCall, task: Task) -> Observation | Halt: ...


async def arun_episode(task: Task, policy: AsyncPolicy, tools: AsyncTools, limits: EpisodeLimits) -> Trajectory:
    """Drive `episode` asynchronously (the serving gateway); either side may answer `Halt`."""
    steps = episode(task, tools, limits, policy.name)
    request = next(steps)
    while True:
        result = await policy.agenerate(request.messages, request.tools) if isinstance(request, Generate) \
            else await tools.acall(request.call, task)
        try:
            request = steps.send(result)
        except StopIteration as done:
            return done.value


@dataclass(frozen=True)
class Runtime:
    """What every episode of a run shares: the price catalog, the limits and the built experts.

    Training, eval and serving each hold one and run every episode through it.
    """

    catalog: Catalog
    limits: EpisodeLimits
    experts: dict[str, Expert]
    randomise: Randomisation | None = None  # training examples see aliases and prices (`for_example`)
    seed: int = 0

    @classmethod
    def of(cls, catalog: Catalog, limits: EpisodeLimits, seed: int = 0) -> Runtime:
        return cls(catalog, limits, build_experts(catalog, seed), seed=seed)

    @classmethod
    def from_config(cls, cfg: Config) -> Runtime:
        runtime = cls.of(cfg.catalog(), cfg.episode.limits(), cfg.seed)
        return replace(runtime, randomise=cfg.episode.randomise)

    def for_example(self, task: Task) -> tuple[Runtime, Task]:
        """The runtime and task one training example runs under: as declared, or, where the profile
        randomises, under this task's expert aliases and prices (the same for every rollout of it;
        the user's deny and prefer lists name the aliases)."""
        if self.randomise is None:
            return self, task
        catalog, real = disguise(self.catalog, self.randomise, stable_seed(self.seed, "catalog", task.id))
        experts = {shown: self.experts[name] for shown, name in real.items() if name in self.experts}
        tool = {expert_tool_name(name): expert_tool_name(shown) for shown, name in real.items()}
        pref = task.preference.model_copy(update={"deny": [tool.get(t, t) for t in task.preference.deny],
                                                  "prefer": [tool.get(t, t) for t in task.preference.prefer]})
        return (replace(self, catalog=catalog, experts=experts, randomise=None),  # disguised once
                task.model_copy(update={"preference": pref}))

    def redrawn(self, key: int) -> Runtime:
        """This runtime with its simulated experts drawing afresh under `key` (other experts are left
        as they are: a real model samples anew on its own)."""
        experts = {name: e.redrawn(key) if isinstance(e, SimulatedExpert) else e for name, e in self.experts.items()}
        return replace(self, experts=experts)

    def one_draw_per_task(self) -> Runtime:
        """This runtime with each simulated expert answering a task once, whatever the prompt
        (SimulatedExpert `per_task`): what policies scored side by side on the same tasks need."""
        experts = {name: SimulatedExpert(e.cfg, e.seed, per_task=True) if isinstance(e, SimulatedExpert) else e
                   for name, e in self.experts.items()}
        return replace(self, experts=experts)

    def toolbox(self, session: EnvSession | None, with_code: bool = True) -> Toolbox:
        return Toolbox(self.catalog, session, self.experts, with_code=with_code)

    def run(self, task: Task, policy: Policy, toolbox: Toolbox) -> Trajectory:
        return run_episode(task, policy, toolbox, self.limits)
