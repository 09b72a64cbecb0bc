"""The sandbox's limits hold per call: scratch cleanup, reaping, disk and memory budgets, the deadline.

Each test is code a model could write by accident (or on purpose), run through `run_python`."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from sandbox_helpers import (  # the fixtures are autouse
    marker,
    no_host_scratch,  # noqa: F401
    processes_named,
    rename_self,
    sandbox_available,  # noqa: F401
)

from toolorch.runtime.env import sandbox, sandbox_command
from toolorch.runtime.env.sandbox import run_python

GRACE_S = 0.5  # a call may pass its deadline by its teardown: measured ~0.01-0.04 s on 2 cores


def test_a_tree_3000_levels_deep_goes_with_the_call():
    code = (
        "import os\n"
        "for level in range(3000):\n"
        "    os.mkdir('d')\n"
        "    os.chdir('d')\n"
        "    open('f', 'w').write('x' * 4096)\n"
        "print(os.getcwd().count('/d'))\n"
    )
    result = run_python(code, timeout_s=20)
    assert result.error is None and result.stdout.split() == ["3000"]
    # the next call starts from an empty scratch: the tree went with the last call's namespace
    # (/tmp may also hold the mount point of an interpreter installed under /tmp, as in a CI clone)
    again = run_python("import os\nprint(sorted(os.listdir('.')))\nprint('d' in os.listdir('/tmp'))")
    assert again.stdout.split("\n")[:2] == ["['main.py']", "False"]


def test_the_disk_limit_is_for_all_files_of_a_call_together():
    chunk = 1 << 20
    code = (
        "import errno\n"
        "written = 0\n"
        "try:\n"
        "    for name in ('a', 'b', 'c'):\n"  # three files of 64 MiB: 192 MiB
        "        with open(name, 'wb') as f:\n"
        "            for _ in range(64):\n"
        f"                f.write(b'x' * {chunk})\n"
        "                f.flush()\n"
        f"                written += {chunk}\n"
        "finally:\n"
        "    print(written)\n"
    )
    result = run_python(code, timeout_s=10)
    assert result.error == f"disk limit exceeded ({sandbox_command.SCRATCH_BYTES >> 20} MiB of files per call)"
    written = int(result.stdout.split()[0])
    assert sandbox_command.SCRATCH_BYTES - (2 << 20) <= written <= sandbox_command.SCRATCH_BYTES


def test_making_files_forever_is_stopped_at_the_file_limit():
    """Empty files and folders take no space in the scratch's size but kernel memory, and freeing
    them takes time at the call's end: their number is capped too."""
    code = "import os\nn = 0\nwhile True:\n    os.mkdir(f'd{n}')\n    n += 1\n"
    start = time.monotonic()
    result = run_python(code, timeout_s=10)
    assert result.error == f"file limit exceeded: more than {sandbox_command.SCRATCH_FILES} files and folders, program stopped"
    assert result.exit_code is None
    assert time.monotonic() - start < 5  # stopped for the count, well before the deadline


def forking_allocators(mib: int, children: int) -> str:
    """Code that forks `children` processes that each try to allocate `mib` MiB and report
    (allocated?, VmPeak MiB) once all of them hold their memory at the same time."""
    return (
        "import os, re, time\n"
        "def peak():\n"
        "    return int(re.search(r'VmPeak:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) >> 10\n"
        "report_r, report_w = os.pipe()\n"
        "hold_r, hold_w = os.pipe()\n"
        "kids, refused = [], 0\n"
        f"for _ in range({children}):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except BlockingIOError:\n"
        "        refused += 1\n"
        "        continue\n"
        "    if pid == 0:\n"
        "        try:\n"
        f"            block = bytearray({mib} << 20)\n"
        "            ok = 1\n"
        "        except MemoryError:\n"
        "            ok = 0\n"
        "        os.write(report_w, f'{ok} {peak()}\\n'.encode())\n"
        "        os.close(hold_w)\n"
        "        os.read(hold_r, 1)\n"  # keep the memory until every child has reported
        "        os._exit(0)\n"
        "    kids.append(pid)\n"
        "with os.fdopen(report_r) as lines:\n"
        "    reports = [lines.readline() for _ in kids]\n"
        "os.close(hold_w)\n"
        "for pid in kids:\n"
        "    os.waitpid(pid, 0)\n"
        "print(len(kids), refused, peak(), ' '.join(r.strip().replace(' ', ':') for r in reports))\n"
    )


def parse_allocators(stdout: str) -> tuple[int, int, int, list[tuple[int, int]]]:
    forked, refused, main_peak, *reports = stdout.split()
    return int(forked), int(refused), int(main_peak), [tuple(map(int, r.split(":"))) for r in reports]


def test_three_processes_cannot_take_more_than_the_calls_memory_together():
    # the case: 3 processes x ~288 MiB = 863 MiB against a 512 MB budget
    result = run_python(forking_allocators(mib=288, children=3), timeout_s=10, memory_mb=512)
    assert result.error is None, result.observation()
    forked, refused, main_peak, reports = parse_allocators(result.stdout)
    assert (forked, refused) == (3, 0)
    assert [ok for ok, _ in reports] == [0, 0, 0]  # each is refused at its share
    assert main_peak + sum(peak for _, peak in reports) <= 512


def test_the_calls_memory_is_usable_by_several_processes_and_no_more_start():
    per_process = sandbox_command.process_memory_mb(512)
    result = run_python(forking_allocators(mib=per_process - 40, children=5), timeout_s=10, memory_mb=512)
    assert result.error is None, result.observation()
    forked, refused, main_peak, reports = parse_allocators(result.stdout)
    assert (forked, refused) == (sandbox_command.MAX_PROCESSES - 1, 5 - forked)
    assert all(ok for ok, _ in reports)
    assert sum(peak for _, peak in reports) >= forked * (per_process - 40)  # they really held it at once
    assert main_peak + sum(peak for _, peak in reports) <= 512


def test_memory_outside_any_address_space_is_refused():
    code = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "def errno_of(result):\n"
        "    return ctypes.get_errno() if result == -1 else 'allowed'\n"
        "try:\n"
        "    os.memfd_create('ram')\n"
        "    print('memfd allowed')\n"
        "except OSError as e:\n"
        "    print('memfd', e.errno)\n"
        "print('shmget', errno_of(libc.shmget(0, 1 << 30, 0o1600)))\n"  # IPC_PRIVATE, IPC_CREAT
        "print('msgget', errno_of(libc.msgget(0, 0o1600)))\n"
    )
    result = run_python(code)
    assert result.error is None
    assert result.stdout.splitlines() == ["memfd 1", "shmget 1", "msgget 1"]  # EPERM


REAPER_PROBE = """
import ctypes, json, os, sys
from pathlib import Path
from toolorch.runtime.env.sandbox import run_python

libc = ctypes.CDLL(None, use_errno=True)
# PR_SET_CHILD_SUBREAPER: orphans below us come to us, as they come to PID 1 in a container
assert libc.prctl(36, 1, 0, 0, 0) == 0
for code, timeout_s in json.loads(sys.argv[1]):
    run_python(code, timeout_s=timeout_s)
children = []
for stat in Path('/proc').glob('[0-9]*/stat'):
    try:
        head, tail = stat.read_text().rsplit(')', 1)
    except OSError:
        continue
    state, ppid = tail.split()[:2]
    if int(ppid) == os.getpid():
        children.append([head.split(' (', 1)[1], state])
print(json.dumps(children))
"""


def test_no_child_is_left_behind_when_orphans_come_to_us():
    """Run as PID 1 in a container does: as a subreaper (a helper process, so pytest itself is not one)."""
    daemon = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(60)\n"
        "    os._exit(0)\n"
        "print('parent exits')\n"
    )
    calls = [["print(1)", 5], ["import sys\nsys.exit(3)", 5], ["while True:\n    pass", 0.5], [daemon, 5]] * 2
    src = str(Path(sandbox.__file__).parents[3])
    probe = subprocess.run([sys.executable, "-c", REAPER_PROBE, json.dumps(calls)], check=False,
                           capture_output=True, text=True, timeout=60,
                           env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"})
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stdout) == []  # before the fix: one zombie bwrap per call


def detached_sleeper(name: str) -> str:
    """Code that starts a grandchild in a session of its own, which ignores hangups and
    terminations, writes its pid file, renames itself `name` and sleeps for a minute."""
    return (
        "import os, signal, time\n"
        "ready_r, ready_w = os.pipe()\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
        "        signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        + "        " + rename_self(name) +
        "        open('daemon.pid', 'w').write(str(os.getpid()))\n"
        "        os.write(ready_w, b'1')\n"
        "        for fd in (0, 1, 2):\n"
        "            os.close(fd)\n"
        "        time.sleep(60)\n"
        "    os._exit(0)\n"
        "os.read(ready_r, 1)\n"
        "pid = int(open('daemon.pid').read())\n"
        "os.kill(pid, 0)\n"  # it runs
        "print('daemon', pid, flush=True)\n"
    )


def test_a_detached_grandchild_ends_with_the_call():
    name = marker()
    start = time.monotonic()
    result = run_python(detached_sleeper(name), timeout_s=5)
    elapsed = time.monotonic() - start
    assert result.error is None and result.exit_code == 0
    assert result.stdout.split()[0] == "daemon"
    assert elapsed < 5  # the call ended with its main program, not at the deadline
    assert processes_named(name) == []


def test_a_call_never_outlives_its_deadline_nor_leaves_a_process():
    name = marker()
    code = detached_sleeper(name) + (
        "import subprocess, sys\n"  # and a background process in a new session, then spin
        f"subprocess.Popen([sys.executable, '-c', {rename_self(name)!r} + 'import time; time.sleep(60)'],\n"
        "                 start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "while True:\n"
        "    pass\n"
    )
    start = time.monotonic()
    result = run_python(code, timeout_s=1.5)
    elapsed = time.monotonic() - start
    assert result.error == "timed out after 1.5s" and result.stdout.split()[0] == "daemon"
    assert elapsed < 1.5 + GRACE_S
    assert processes_named(name) == []
