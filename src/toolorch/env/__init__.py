"""Environments: a SQLite world, its tools, its documents, and the code sandbox."""
from toolorch.env.world import Document, EnvSpec, Environment, EnvSession, ToolError

__all__ = ["Document", "EnvSpec", "Environment", "EnvSession", "ToolError"]
