"""The held-out check's paired GRPO - SFT margin, per kind of world."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from toolorch.eval.heldout import paired_reward_margin, world_kind


def _rollouts(envs: list[str]) -> list[SimpleNamespace]:
    return [SimpleNamespace(task=SimpleNamespace(id=f"t{i}", env=env)) for i, env in enumerate(envs)]


def test_world_kind_sets_tau2_apart():
    assert world_kind("tau2_retail") == "tau2" and world_kind("tau2_airline") == "tau2"
    assert world_kind("airline") == "synthesized" and world_kind("library") == "synthesized"


def test_the_margin_per_world_is_the_mean_of_that_worlds_task_differences():
    envs = ["library", "bank", "library", "tau2_retail", "tau2_airline", "tau2_retail", "tau2_telecom"]
    rollouts = _rollouts(envs)
    rng = np.random.default_rng(0)
    seeds = (0, 1)
    runs = {(name, s): rollouts for name in ("sft", "grpo") for s in seeds}
    # GRPO gains on the synthesized worlds and loses on tau2's
    gain = {"library": 0.3, "bank": 0.2, "tau2_retail": -0.4, "tau2_airline": -0.2, "tau2_telecom": -0.5}
    base = {(s, i): float(rng.uniform(0, 0.5)) for s in seeds for i in range(len(envs))}
    rewards = {("sft", s): [base[(s, i)] for i in range(len(envs))] for s in seeds}
    rewards |= {("grpo", s): [base[(s, i)] + gain[env] for i, env in enumerate(envs)] for s in seeds}
    m = paired_reward_margin(runs, rewards, "sft", "grpo", seeds)
    assert m["n"] == 7 and m["mean"] == pytest.approx(np.mean([gain[e] for e in envs]))
    synth, tau2 = m["by_world"]["synthesized"], m["by_world"]["tau2"]
    assert synth["n"] == 3 and synth["mean"] == pytest.approx(np.mean([0.3, 0.2, 0.3]))
    assert tau2["n"] == 4 and tau2["mean"] == pytest.approx(np.mean([-0.4, -0.2, -0.4, -0.5]))
    assert tau2["below_zero"] and synth["above_zero"]  # constant gains per task: the intervals are tight
    # a kind of world with one task has no interval: it is left out, not reported as n=1
    lone = paired_reward_margin({k: v[:4] for k, v in runs.items()}, {k: v[:4] for k, v in rewards.items()},
                                "sft", "grpo", seeds)
    assert set(lone["by_world"]) == {"synthesized"}
