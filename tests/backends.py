"""Real backends some tests need (the vLLM CPU server venv, bubblewrap, tau2-bench's data and
tool code, TRL): without one a test skips and says what is missing; in CI (`CI=true`)
it fails instead, so a broken install cannot pass as a green run.

    from backends import import_backend, missing_backend
    missing_backend("bubblewrap", "bwrap not found")            # skip here, fail in CI
    tools = import_backend("tau2.domains.airline.tools", "tau2-bench", "pip install ...")

Every test that needs such a backend goes through these two functions (tests/ is on sys.path),
so the rule lives in one place. Call them from a test or a fixture, not at module level: a
failure while collecting would stop the whole run before any test ran.
"""
from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Mapping, NoReturn

import pytest

CI_VALUES = {"1", "true", "yes", "on"}


def in_ci(environ: Mapping[str, str] = os.environ) -> bool:
    """True when `CI` holds a true value (GitHub Actions, GitLab and most runners set CI=true)."""
    return environ.get("CI", "").strip().lower() in CI_VALUES


def missing_backend(backend: str, why: str) -> NoReturn:
    """Skip the calling test (or fixture's tests), or fail it in CI."""
    message = f"{backend} unavailable: {why}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: a test that needs it fails instead of skipping)", pytrace=False)
    pytest.skip(message)


def import_backend(module: str, backend: str, hint: str) -> ModuleType:
    """`importlib.import_module(module)`, or `missing_backend` naming the failed import and `hint`."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        missing_backend(backend, f"cannot import {module} ({e}); {hint}")
