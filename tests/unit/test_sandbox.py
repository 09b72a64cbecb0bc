"""The Python sandbox: each test attacks one side of the boundary and checks
the clear error, that nothing was reached, and that nothing is left behind."""
from __future__ import annotations

import os
import socket
import sys
import time
import uuid
from pathlib import Path

import pytest
from sandbox_helpers import (  # the fixtures are autouse
    marker,
    no_host_scratch,  # noqa: F401
    processes_named,
    rename_self,
    sandbox_available,  # noqa: F401
)

from toolorch.runtime.env import sandbox, sandbox_command
from toolorch.runtime.env.sandbox import SandboxResult, run_python


def test_normal_code_prints_imports_and_uses_its_scratch_dir():
    code = (
        "import json, math, os, tempfile\n"
        "open('notes.txt', 'w').write('kept')\n"
        "open(os.path.join(tempfile.gettempdir(), 'other.txt'), 'w').write('also')\n"
        "print(json.dumps({'pi': round(math.pi, 4)}), open('notes.txt').read(), os.getcwd())\n"
        "print(sorted(os.listdir('.')), tempfile.gettempdir())\n"
    )
    result = run_python(code)
    assert isinstance(result, SandboxResult)
    assert result.error is None and result.exit_code == 0
    assert result.stdout.splitlines() == [
        '{"pi": 3.1416} kept /sandbox',
        "['main.py', 'notes.txt', 'other.txt'] /sandbox",
    ]
    assert result.observation() == result.stdout.rstrip("\n")
    assert 0 < result.wall_s < 5


def test_syntax_error_is_reported_with_the_message_and_line():
    result = run_python("x = 1\nprint(x\n")
    assert result.exit_code == 1
    assert result.error is not None and result.error.startswith("exited with code 1: SyntaxError")
    observation = result.observation()
    assert "'(' was never closed" in observation and 'main.py", line 2' in observation
    assert observation.splitlines()[-1] == f"error: {result.error}"


def test_network_is_unreachable_even_on_the_hosts_loopback():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        port = server.getsockname()[1]
        code = (
            "import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            "    print('connected')\n"
            "except OSError as e:\n"
            "    print('refused', type(e).__name__)\n"
        )
        result = run_python(code)
        with pytest.raises(BlockingIOError):
            server.accept()  # nobody ever reached the server
    assert result.error is None
    assert result.stdout.startswith("refused ConnectionRefusedError")


def test_writes_outside_the_scratch_dir_are_refused(tmp_path):
    targets = [tmp_path / "escaped.txt", Path.cwd() / f"escaped-{uuid.uuid4().hex}.txt",
               Path(sys.prefix) / "escaped.txt", Path("/escaped.txt")]
    code = f"for path in {[str(t) for t in targets]!r}:\n" + (
        "    try:\n"
        "        open(path, 'w').write('x')\n"
        "        print('WROTE', path)\n"
        "    except OSError as e:\n"
        "        print('refused', type(e).__name__)\n"
    )
    result = run_python(code)
    assert result.error is None
    assert "WROTE" not in result.stdout
    assert result.stdout.count("refused") == len(targets)
    assert not any(t.exists() for t in targets)


def test_parent_environment_secrets_are_not_visible(monkeypatch):
    secret = uuid.uuid4().hex
    monkeypatch.setenv("TOOLORCH_TEST_SECRET", secret)
    code = (
        "import os\n"
        "print(sorted(os.environ))\n"
        "print(os.environ.get('TOOLORCH_TEST_SECRET'))\n"
        "for pid in os.listdir('/proc'):\n"
        "    if pid.isdigit():\n"
        "        try:\n"
        "            print(open(f'/proc/{pid}/environ', 'rb').read())\n"
        "        except OSError:\n"
        "            pass\n"
    )
    result = run_python(code)
    assert result.error is None
    assert secret not in result.stdout and secret not in result.stderr
    expected = sorted(["HOME", "LANG", "PATH", "PWD", "PYTHONDONTWRITEBYTECODE", "TMPDIR",
                       *sandbox_command.NUMERIC_THREAD_VARS])
    assert result.stdout.splitlines()[:2] == [str(expected), "None"]


def test_secret_files_outside_are_invisible(tmp_path):
    secret = uuid.uuid4().hex
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(secret)
    code = (
        "import os\n"
        f"for path in [{str(secret_file)!r}, '/root/.bash_history', '/etc/shadow', '/etc/hostname']:\n"
        "    try:\n"
        "        print(open(path).read())\n"
        "    except OSError as e:\n"
        "        print(type(e).__name__)\n"
        "print(sorted(os.listdir('/etc')))\n"
    )
    result = run_python(code)
    assert result.error is None
    assert secret not in result.stdout
    lines = result.stdout.splitlines()
    assert lines[:4] == ["FileNotFoundError"] * 4
    assert set(eval(lines[4])) <= {os.path.basename(p) for p in sandbox_command.ETC_FILES}  # only the linker's files


def test_fork_bomb_is_stopped_and_leaves_no_process():
    name = marker()
    code = rename_self(name) + "import os\nwhile True:\n    os.fork()\n"
    start = time.monotonic()
    result = run_python(code, timeout_s=5)
    assert time.monotonic() - start < 5
    assert result.error == f"process limit reached ({sandbox.MAX_PROCESSES} processes and threads)"
    assert "BlockingIOError" in result.stderr
    assert processes_named(name) == []


def test_fork_bomb_that_ignores_errors_is_capped_then_killed():
    name = marker()
    code = rename_self(name) + (
        "import os, time\n"
        "alive = 1\n"
        "while True:\n"
        "    try:\n"
        "        if os.fork() == 0: alive = 0\n"
        "    except OSError:\n"
        "        print(len([p for p in os.listdir('/proc') if p.isdigit()]), flush=True)\n"
        "        time.sleep(0.2)\n"
    )
    result = run_python(code, timeout_s=1)
    assert result.error == "timed out after 1s" and result.exit_code is None
    counts = [int(n) for n in result.stdout.split()]
    assert counts and max(counts) <= sandbox.MAX_PROCESSES + 1  # + the namespace's init
    assert processes_named(name) == []


def test_memory_bomb_is_stopped():
    result = run_python("x = bytearray(1 << 31)\nprint('allocated')", memory_mb=256)
    assert result.error == "memory limit exceeded (256 MB per call: 64 MB per process)"
    assert "allocated" not in result.stdout and "MemoryError" in result.stderr


def test_infinite_loop_times_out_and_its_children_die_with_it():
    name = marker()
    code = rename_self(name) + "import os, time\nif os.fork() == 0:\n    time.sleep(60)\nwhile True:\n    pass\n"
    start = time.monotonic()
    result = run_python(code, timeout_s=1)
    elapsed = time.monotonic() - start
    assert result.error == "timed out after 1s" and result.exit_code is None
    assert result.observation() == "error: timed out after 1s"
    assert 1 <= elapsed < 3.5
    assert processes_named(name) == []


def test_printing_forever_is_capped_and_stopped():
    start = time.monotonic()
    result = run_python("while True:\n    print('spam' * 50)", timeout_s=5, max_output_chars=1000)
    assert time.monotonic() - start < 4  # stopped for volume, not by the timeout
    assert result.error.startswith("output limit exceeded") and result.exit_code is None
    shown, note = result.stdout.split("\n...[output truncated: ")
    assert len(shown) == 1000 and set(shown.replace("\n", "")) == set("spam")
    assert "more bytes" in note
    assert result.observation().endswith(f"error: {result.error}")


def test_exit_codes_and_user_stderr_never_raise():
    result = run_python("import sys\nsys.stderr.write('bwrap: not really\\n')\nsys.exit(3)")
    assert result.exit_code == 3
    assert result.error == "exited with code 3: bwrap: not really"


def test_a_sandbox_that_cannot_start_raises_a_clear_error(monkeypatch):
    monkeypatch.setattr(sandbox, "bwrap_executable", lambda: "/nonexistent/bwrap")
    with pytest.raises(RuntimeError, match="could not start.*nonexistent"):
        run_python("print(1)")
    monkeypatch.setattr(sandbox, "bwrap_executable", lambda: "/bin/false")
    with pytest.raises(RuntimeError, match="could not start: bwrap exited with code 1"):
        run_python("print(1)")


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="timeout_s"):
        run_python("pass", timeout_s=0)
    with pytest.raises(ValueError, match="memory_mb"):
        run_python("pass", memory_mb=1)
    with pytest.raises(TypeError, match="code must be a string"):
        run_python(b"pass")  # type: ignore[arg-type]


def test_seccomp_program_refuses_new_user_namespaces():
    result = run_python(
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "print(libc.unshare(0x10000000), ctypes.get_errno())\n"
    )
    assert result.error is None
    assert result.stdout.split() == ["-1", "1"]  # EPERM
