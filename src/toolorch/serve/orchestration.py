"""One request's orchestration: the episode loop driven asynchronously, and what it answers.

    outcome = await orchestrate(task, orchestrator, price, tools, limits, run, options.sampling)

The task is the user's messages (or, for eval through the gateway, a held-out task record); the loop is runtime.episode's (`arun_episode`), with the
served orchestrator writing the turns (`EnginePolicy`) and the gateway's toolbox running the
calls. Each turn first reserves its worst case (prompt bytes x input price + the policy's
max new tokens x output price); a budget or deadline that runs out mid-task ends the episode
with the answer so far (`budget_exhausted`).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from toolorch.core.catalog import EpisodeLimits, Price
from toolorch.core.records import Task, Trajectory
from toolorch.runtime.episode import Halt, arun_episode
from toolorch.runtime.policies import Generation, answer_from_observation
from toolorch.serve.contract import Sampling
from toolorch.serve.errors import ApiError
from toolorch.serve.orchestrators import Orchestrator
from toolorch.serve.run import RequestRun, Step
from toolorch.serve.toolbox import GatewayToolbox, worst_prompt_tokens

FINISH = {"answer": "stop", "budget": "budget_exhausted", "latency": "budget_exhausted",
          "max_turns": "max_turns", "max_tokens": "length"}
DENIED = "error: the user does not allow"


class EnginePolicy:
    """The served orchestrator behind the async driver: reserves, respects the deadline, times."""

    def __init__(self, orchestrator: Orchestrator, price: Price, run: RequestRun, sampling: Sampling):
        self.name = orchestrator.name
        self.orch = orchestrator
        self.policy = orchestrator.for_request(run.request_id, sampling)
        self.max_new_tokens = sampling.max_turn_tokens or orchestrator.max_new_tokens
        self.price = price
        self.run = run

    async def agenerate(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Generation | Halt:
        self.run.begin_turn()
        if self.run.left_s() <= 0:
            return self.run.halt_latency()
        prompt = sum(worst_prompt_tokens(m["content"]) for m in messages)
        hold = self.run.reserve(self.price.cost(prompt, self.max_new_tokens))
        if isinstance(hold, Halt):
            return hold
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            gen = await self.run.upstream(asyncio.wait_for(self.orch.generate(self.policy, messages, tools),
                                                            self.run.left_s()))
        except asyncio.TimeoutError:
            return self.run.halt_latency()  # the reservation is charged when the request ends
        except ApiError:
            self.run.settle(hold, 0.0)  # the engine did not answer: nothing to pay
            raise
        self.run.generations.append(loop.time() - t0)
        self.run.settle(hold, self.price.cost(gen.tokens_in, gen.tokens_out))
        return gen


@dataclass
class Outcome:
    traj: Trajectory
    answer: str
    finish_reason: str
    steps: list[Step]
    wall_s: float  # from the request's arrival to the end of its orchestration


def best_answer(traj: Trajectory) -> str:
    """The answer, or when the episode stopped early the last useful tool result (an expert's first)."""
    if traj.answer is not None:
        return traj.answer
    observed = [t.observation for t in traj.turns if t.observation is not None and not t.observation.error]
    experts = [o for o in observed if o.tool.startswith("ask_") or o.tool == "answer"]
    last = (experts or observed or [None])[-1]
    return answer_from_observation(last.content) if last is not None else ""


def trace_steps(traj: Trajectory, run: RequestRun) -> list[Step]:
    """Each orchestrator turn and each tool call, merged from the trajectory and what the gateway measured."""
    steps: list[Step] = []
    for turn, measured in zip(traj.turns, run.generations):
        u = turn.policy_usage
        steps.append(Step(turn=turn.index, kind="orchestrator", tokens_in=u.tokens_in, tokens_out=u.tokens_out,
                          cost_usd=u.cost_usd, latency_s=round(measured, 6)))
        if turn.call is None and turn.observation is None:
            continue
        record = run.tools.get(id(turn.call)) if turn.call is not None else None
        obs = turn.observation
        if record is not None:
            steps.append(Step(turn=turn.index, kind=record.kind, tool=turn.call.name if turn.call else None,
                              expert=record.expert, tokens_in=record.tokens_in, tokens_out=record.tokens_out,
                              cost_usd=record.cost_usd, latency_s=round(record.latency_s, 6), status=record.status,
                              retries=record.retries, fallback=record.fallback, error=record.error))
        elif obs is not None:
            denied = obs.content.startswith(DENIED)
            steps.append(Step(turn=turn.index, kind="none" if turn.call is None else "denied",
                              tool=turn.call.name if turn.call else None, cost_usd=obs.usage.cost_usd,
                              status="denied" if denied else "error", error=obs.content))
    return steps


async def orchestrate(task: Task, orchestrator: Orchestrator, price: Price, tools: GatewayToolbox,
                      limits: EpisodeLimits, run: RequestRun, sampling: Sampling) -> Outcome:
    policy = EnginePolicy(orchestrator, price, run, sampling)
    try:
        traj = await arun_episode(task, policy, tools, limits)
    except BaseException:
        run.release_all()
        raise
    if not traj.turns and traj.stop_reason == "budget":
        kind = run.exhausted or "cost"
        raise ApiError(429, "budget exceeded: not even the first orchestrator turn fits "
                            + ("the API key's remaining budget" if kind == "key" else "max_cost_usd"),
                       "budget_exceeded", "max_cost_usd" if kind == "cost" else None, retry_after_s=60)
    run.release_all()
    return Outcome(traj, best_answer(traj), FINISH[traj.stop_reason], trace_steps(traj, run),
                   time.perf_counter() - run.started)
