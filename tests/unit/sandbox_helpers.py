"""Fixtures and helpers shared by the sandbox tests: skip where bwrap cannot run, find the sandbox's processes from the host."""
from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import pytest
from backends import missing_backend

from toolorch.runtime.env.sandbox import run_python


@pytest.fixture(scope="module", autouse=True)
def sandbox_available():
    """Autouse in a module that imports it: skip where bwrap cannot run (e.g. no user namespaces)."""
    try:
        run_python("pass", timeout_s=10)
    except RuntimeError as e:  # e.g. a runner without user namespaces; under CI=true this fails
        missing_backend("the bubblewrap sandbox", str(e))


@pytest.fixture(autouse=True)
def no_host_scratch(tmp_path, monkeypatch):
    """Autouse in a module that imports it: point tempfile at a folder of this test's own, then
    check the host got no scratch dir in it (the scratch lives only in the sandbox's mount namespace)."""
    parent = tmp_path / "scratch-parent"
    parent.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(parent))
    yield parent
    assert list(parent.iterdir()) == [], "a scratch dir was left on the host"


def marker() -> str:
    return "tsb" + uuid.uuid4().hex[:10]  # fits a 15-char process name


def processes_named(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == name:
                found.append(int(entry.name))
        except OSError:
            continue  # exited while we looked
    return found


def rename_self(name: str) -> str:
    """Sandboxed code that renames its process (inherited by its children) so the host can find it."""
    return f"open('/proc/self/comm', 'w').write({name!r})\n"
