"""tests/backends.py: a missing backend skips a test here and fails it in CI (CI=true)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from backends import import_backend, in_ci, missing_backend

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("value,expected", [("true", True), ("TRUE", True), ("1", True), (" yes ", True),
                                            ("", False), ("false", False), ("0", False)])
def test_ci_is_read_from_the_environment(value, expected):
    assert in_ci({"CI": value}) is expected
    assert in_ci({}) is False


def test_missing_backend_skips_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="bwrap unavailable: not on PATH"):
        missing_backend("bwrap", "not on PATH")


def test_missing_backend_fails_in_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"bwrap unavailable: not on PATH \(CI=true"):
        missing_backend("bwrap", "not on PATH")


def test_import_backend_names_the_module_and_the_hint(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert import_backend("json", "json", "stdlib").dumps([]) == "[]"
    with pytest.raises(pytest.fail.Exception, match=r"no_such_mod_xyz.*pip install it"):
        import_backend("no_such_mod_xyz", "xyz", "pip install it")


@pytest.mark.parametrize("ci,code,outcome", [("", 0, "1 skipped"), ("true", 1, "1 failed")])
def test_a_run_with_a_missing_backend_fails_only_in_ci(tmp_path, ci, code, outcome):
    (tmp_path / "test_needs_backend.py").write_text(textwrap.dedent("""
        from backends import import_backend

        def test_needs_it():
            import_backend("no_such_mod_xyz", "xyz", "pip install it")
    """))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(HERE), "CI": ci}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(tmp_path)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == code, run.stdout[-2000:]
    assert outcome in run.stdout and "xyz unavailable: cannot import no_such_mod_xyz" in run.stdout
