"""Serving: the orchestration gateway behind an OpenAI-compatible API."""
