"""Environments: a SQLite world, its tools, its documents, and the code sandbox."""
from toolorch.runtime.env.world import (
    Document,
    Environment,
    EnvSession,
    EnvSpec,
    ToolError,
    load_env,
    load_envs,
)

__all__ = ["Document", "EnvSpec", "Environment", "EnvSession", "ToolError", "load_env", "load_envs"]
