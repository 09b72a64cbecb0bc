"""A grpo stage ready to run as a process: the small world of unit/train/world.py, an SFT model
trained on it, and a profile (GRPO with a checkpoint every step) saved as YAML.

    world, sft_dir, config_path = grpo_world(root, library_env, steps=5)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from unit.train.world import World, build_world

from toolorch.core.config import save_config
from toolorch.stages import as_profile, sft

TINY = {"vocab_size": 512, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 2, "num_key_value_heads": 1}


def grpo_world(root: Path, library_env: Any, **grpo: Any) -> tuple[World, Path, Path]:
    world = build_world(root / "world", library_env)
    stages = {"sft": {"tiny": TINY, "epochs": 3, "lr": 3e-3, "max_len": 2048, "rows_per_step": 2},
              "grpo": {"tasks_per_step": 2, "group_size": 4, "max_new_tokens": 16, "lr": 1e-3, "with_code": False,
                       "heldout": {"enabled": False}, "checkpoint_every": 1, "threads": 1, **grpo}}
    cfg = as_profile(world.cfg.model_copy(update={"stages": stages, "episode": world.cfg.episode.model_copy(
        update={"max_turns": 3})}))
    sft.run(cfg, world.trajectories_path, root / "sft", root / "sft.json")
    return world, root / "sft", save_config(cfg, root, "grpo.yaml")
