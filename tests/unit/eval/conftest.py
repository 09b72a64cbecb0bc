"""Fixtures of the eval tests."""
from __future__ import annotations

import pytest
from eval_tasks import library_tasks

from toolorch.core.records import Task


@pytest.fixture
def heldout_tasks() -> list[Task]:
    return library_tasks()
