"""Held-out episodes played by a deployed toolorch gateway, scored as in-process eval scores a checkpoint.

    episodes = GatewayEpisodes.from_spec("gateway:http://127.0.0.1:8000/v1#toolorch", seed=0, max_new_tokens=48)
    traj = episodes.play(task, toolbox, limits)   # toolbox: the block's, to check the gateway's prompt

Each task goes to the gateway as one chat completion carrying the whole task record (`task`,
serve.contract): the gateway runs the episode on its own orchestrator, tools and world (its
`--envs-dir`) and answers with the episode record, which eval turns into a row with the same
code as every other policy's. The request names what in-process eval would use: greedy
sampling, this lineup's per-turn tokens and the block's limits; its seed is the lineup's seed
plus the turns played so far, as an in-process HFPolicy counts its calls across tasks. A
gateway whose episode did not start from the prompt in-process eval would show (another
catalog, world or preference rendering) is an error, not a score.
"""
from __future__ import annotations

import os
from typing import Any

from toolorch.core.catalog import EpisodeLimits
from toolorch.core.errors import RunFailed
from toolorch.core.records import Task, Trajectory
from toolorch.runtime.episode import initial_messages
from toolorch.runtime.openai_chat import EndpointError, complete, make_client
from toolorch.runtime.policies import POLICY_KEY_ENV
from toolorch.runtime.prompts import tool_schemas
from toolorch.runtime.tools import Toolbox

DEFAULT_MODEL = "toolorch"  # the gateway's traffic split, as users get it; a variant name pins one


def gateway_spec(spec: str) -> tuple[str, str]:
    """`gateway:<base_url>#<model>` -> (base_url, model)."""
    url, _, model = spec.removeprefix("gateway:").partition("#")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"policy '{spec}': expected gateway:<http(s) base URL of toolorch serve>#<model>")
    return url, model or DEFAULT_MODEL


class GatewayEpisodes:
    def __init__(self, base_url: str, model: str, seed: int, max_new_tokens: int, timeout_s: float = 1800.0,
                 attempts: int = 3):
        self.name = f"gateway:{model}"
        self.model = model
        self.seed = seed
        self.max_new_tokens = max_new_tokens
        self.client = make_client(base_url, os.environ.get(POLICY_KEY_ENV, ""), timeout_s)
        self.attempts = attempts
        self.turns = 0  # played so far: the next episode's seed offset

    @classmethod
    def from_spec(cls, spec: str, **settings: Any) -> GatewayEpisodes:
        return cls(*gateway_spec(spec), **settings)

    def play(self, task: Task, toolbox: Toolbox, limits: EpisodeLimits) -> Trajectory:
        try:
            resp = complete(self.client, attempts=self.attempts, model=self.model,
                            messages=[{"role": "user", "content": task.question}], temperature=0.0,
                            seed=self.seed + self.turns, max_tokens=limits.max_tokens, extra_body={
                                "task": task.model_dump(mode="json"), "max_turn_tokens": self.max_new_tokens,
                                "max_turns": limits.max_turns, "max_cost_usd": limits.budget_usd})
        except EndpointError as e:
            raise RunFailed(f"{self.name}, task {task.id}: {e}") from None
        record = (resp.model_extra or {}).get("toolorch", {}).get("trajectory")
        if record is None:
            raise RunFailed(f"{self.name}, task {task.id}: the reply has no toolorch.trajectory "
                            f"(is {self.client.base_url} a toolorch gateway started with --envs-dir?)")
        traj = Trajectory.model_validate(record)
        self.check_prompt(traj, task, toolbox)
        self.turns += len(traj.turns)
        return traj

    def check_prompt(self, traj: Trajectory, task: Task, toolbox: Toolbox) -> None:
        expected = initial_messages(task, toolbox)
        if traj.messages[:2] != expected or traj.tools != tool_schemas(toolbox.specs, task.preference):
            raise RunFailed(f"{self.name}, task {task.id}: the gateway's episode did not start from the prompt and "
                            "tools in-process eval uses (is it serving the same profile's catalog and worlds?)")
