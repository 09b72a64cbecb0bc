"""A tiny orchestrator that has learned to call tools, for tests that compare two engines or two
paths on real Hermes calls (a random-init model writes no parseable call).

    model_dir = train_tiny(root, library_env)      # ~30 s of SFT on 2 busy cores

It is SFT'd (the sft stage, seeded) on the library world's tasks, each delegated the same
way: ask_mini, total_copies, then answer(model=frontier). The run is kept short, so the
model is not perfect: besides the plan's calls it writes calls to tools that do not exist,
calls without the model argument and calls that are not JSON, and some episodes run out of
turns - errors and lengths for two engines to agree on.
"""
from __future__ import annotations

from pathlib import Path

from unit.train.world import world_config, world_tasks

from toolorch.core.jsonl import write_jsonl
from toolorch.core.records import ToolCall
from toolorch.runtime.env import Environment
from toolorch.runtime.episode import run_episode
from toolorch.runtime.policies import PlanPolicy
from toolorch.runtime.tools import Toolbox
from toolorch.stages import as_profile, sft

PLAN = [ToolCall(name="ask_mini"), ToolCall(name="total_copies"),
        ToolCall(name="answer", arguments={"model": "frontier"})]
SFT = {"tiny": {"vocab_size": 512, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                "num_attention_heads": 2, "num_key_value_heads": 1},
       "epochs": 16, "lr": 1e-2, "warmup_steps": 2, "max_len": 1024, "rows_per_step": 1}


def train_tiny(root: Path, env: Environment) -> Path:
    cfg = world_config()
    trajectories = []
    for task in world_tasks():
        with env.session() as session:
            trajectories.append(run_episode(task, PlanPolicy(PLAN), Toolbox(cfg.catalog(), session),
                                            cfg.episode.limits()))
    write_jsonl(root / "trajectories.jsonl", trajectories)
    sft.run(as_profile(cfg.model_copy(update={"stages": {"sft": SFT}})), root / "trajectories.jsonl", root / "model",
            root / "sft.json")
    return root / "model"
