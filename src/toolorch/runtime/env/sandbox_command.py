"""The bwrap command line behind `run_python`: mounts, per-call limits, the launcher, the seccomp
program, and the descriptors that feed them.

`sandbox.py` runs and watches the command; this module only says what the
sandbox looks like (see sandbox.py's docstring for the boundary as a whole).
`python -m pytest tests/unit/test_sandbox.py tests/unit/test_sandbox_limits.py` exercises both.
"""
from __future__ import annotations

import math
import os
import platform
import struct
import sys
from pathlib import Path

SANDBOX_DIR = "/sandbox"  # where the scratch tmpfs is mounted inside
SANDBOX_ID = 1000  # uid and gid inside
HOST_ID_WHEN_ROOT = 65534  # host uid/gid the sandbox maps to when we run as root ("nobody")
# Tasks (processes and threads) of the sandbox user. Each gets 1/MAX_PROCESSES of the call's
# memory budget as its address space, so this also sets how big one process may grow.
MAX_PROCESSES = 4
MAX_OPEN_FILES = 256
SCRATCH_BYTES = 64 << 20  # size of the scratch tmpfs: every file the call writes, together
# Files and folders in the scratch, which its size does not count (each holds ~750 bytes of kernel
# memory, and freeing 100k of them delays the call's end by ~0.4 s); sandbox.py checks it.
SCRATCH_FILES = 20_000
NUMERIC_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# Host paths needed to start Python; on merged-/usr systems all but /usr are links.
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime")

# Runs inside the sandbox as its PID 1 (bwrap --as-pid-1): set the limits, drop to the sandbox user,
# start the user's program, reap whatever ends up here, and end when the program ends, which
# makes the kernel kill every other process in the namespace. bwrap waits for this process
# itself, so no process of the sandbox is ever orphaned to the runner (bwrap's own init was,
# and became a zombie wherever the runner's PID 1 does not reap).
LAUNCHER = """\
import os, resource, sys
cpu_s, as_bytes, nproc, nofile, ident, started_fd = map(int, sys.argv[1:7])
nproc += 1  # this init runs as the sandbox user too
for limit, value in ((resource.RLIMIT_CPU, cpu_s), (resource.RLIMIT_AS, as_bytes),
                     (resource.RLIMIT_NPROC, nproc), (resource.RLIMIT_NOFILE, nofile),
                     (resource.RLIMIT_CORE, 0)):
    hard = value + 1 if limit == resource.RLIMIT_CPU else value  # SIGXCPU first, SIGKILL a second later
    resource.setrlimit(limit, (value, hard))
if os.getuid() != ident:  # leaving namespace-root clears every capability
    os.setgroups([])
    os.setresgid(ident, ident, ident)
    os.setresuid(ident, ident, ident)
os.chdir(sys.argv[7])
os.environ["PWD"] = sys.argv[7]
os.write(started_fd, b"1")  # tells the host that the sandbox is set up: what follows is the user's code
os.close(started_fd)
program = os.fork()
if program == 0:
    os.execv(sys.executable, [sys.executable, "-I", "-B", sys.argv[8]])
while True:
    pid, status = os.wait()
    if pid == program:
        code = os.waitstatus_to_exitcode(status)
        os._exit(code if code >= 0 else 128 - code)  # killed by signal N: 128 + N, as a shell says
"""


def process_memory_mb(memory_mb: int) -> int:
    """Address space of each sandboxed process: the call's budget split over the task limit."""
    return memory_mb // MAX_PROCESSES


def bwrap_command(bwrap: str, timeout_s: float, memory_mb: int, as_root: bool) -> list[str]:
    """The bwrap argv; "{name_fd}" placeholders are filled with descriptors by the caller."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": SANDBOX_DIR, "TMPDIR": SANDBOX_DIR,
           "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
           # numeric libraries start a thread per core, which the task limit would refuse
           **{name: "1" for name in NUMERIC_THREAD_VARS}}
    limits = [math.ceil(timeout_s) + 1, process_memory_mb(memory_mb) << 20, MAX_PROCESSES, MAX_OPEN_FILES,
              SANDBOX_ID, "{started_fd}"]
    if as_root:  # we write the uid map (see sandbox.py); the launcher keeps just enough to drop to it
        identity = ["--userns-block-fd", "{block_fd}", "--cap-drop", "ALL",
                    "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:  # bwrap maps the sandbox uid to ours, which is not root: RLIMIT_NPROC applies as is
        identity = ["--uid", str(SANDBOX_ID), "--gid", str(SANDBOX_ID)]
    python = _python_mounts()
    # /tmp leads to the scratch dir, unless this Python lives under /tmp (e.g. a checkout there):
    # then /tmp is its parent folder and TMPDIR alone points code at the scratch dir.
    tmp_link = [] if _mounts_under(python, "/tmp") else ["--symlink", SANDBOX_DIR, "/tmp"]
    return [
        bwrap, "--unshare-all", "--unshare-user", *identity, "--as-pid-1", "--die-with-parent", "--new-session",
        "--clearenv", *[a for k, v in env.items() for a in ("--setenv", k, v)],
        *_system_mounts(), *python,
        "--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev",
        # the scratch lives in the sandbox's own mount namespace: the kernel frees it with the
        # last process, so nothing is left on the host to clean up
        "--perms", "1777", "--size", str(SCRATCH_BYTES), "--tmpfs", SANDBOX_DIR,
        "--perms", "0444", "--file", "{code_fd}", f"{SANDBOX_DIR}/main.py",
        *tmp_link, "--remount-ro", "/",
        "--chdir", "/",  # the launcher moves into SANDBOX_DIR once it is the sandbox user
        "--info-fd", "{info_fd}", "--seccomp", "{seccomp_fd}",
        "--", sys.executable, "-I", "-S", "-B", "-c", LAUNCHER, *map(str, limits), SANDBOX_DIR, "main.py",
    ]


def _mounts_under(args: list[str], folder: str) -> bool:
    """Whether a bwrap mount in `args` (--ro-bind/--bind/--symlink SRC DEST) has DEST under `folder`."""
    dests = [args[i + 2] for i, a in enumerate(args[:-2]) if a in ("--ro-bind", "--ro-bind-try", "--bind", "--symlink")]
    return any(_is_under(d, folder) for d in dests)


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


# --- the descriptors bwrap reads and writes ------------------------------------------------

class SetupFds:
    """Descriptors shared with bwrap: the program's source (a memfd bwrap copies into the
    scratch), its info report, the uid-map go-ahead, the seccomp program, and the launcher's
    "set up, starting the code" byte."""

    def __init__(self, source: bytes, as_root: bool):
        self.code_read = os.memfd_create("main.py", os.MFD_CLOEXEC)
        with open(self.code_read, "wb", closefd=False) as code:
            code.write(source)
        os.lseek(self.code_read, 0, os.SEEK_SET)
        self.info_read, self.info_write = os.pipe()
        self.started_read, self.started_write = os.pipe()
        self.block_read, self.block_write = os.pipe() if as_root else (None, None)
        self.seccomp_read = None
        program = seccomp_filter()
        if program is not None:
            self.seccomp_read, seccomp_write = os.pipe()
            os.write(seccomp_write, program)  # far below a pipe's capacity
            os.close(seccomp_write)

    def fill(self, arg: str) -> str:
        return {"{code_fd}": str(self.code_read), "{info_fd}": str(self.info_write),
                "{block_fd}": str(self.block_read), "{seccomp_fd}": str(self.seccomp_read),
                "{started_fd}": str(self.started_write)}.get(arg, arg)

    def for_bwrap(self) -> tuple[int, ...]:
        ends = (self.code_read, self.info_write, self.block_read, self.seccomp_read, self.started_write)
        return tuple(fd for fd in ends if fd is not None)

    def close_bwrap_ends(self) -> None:
        for fd in self.for_bwrap():
            os.close(fd)
        self.code_read = self.info_write = self.block_read = self.seccomp_read = self.started_write = None

    def close_all(self) -> None:
        self.close_bwrap_ends()
        for fd in (self.info_read, self.block_write, self.started_read):
            if fd is not None:
                os.close(fd)
        self.info_read = self.block_write = self.started_read = None


# --- the seccomp program ------------------------------------------------------------------

# architecture: (audit arch, unshare, clone, shmget, msgget, memfd_create); clone3 is 435 on both
_SYSCALLS = {"x86_64": (0xC000003E, 272, 56, 29, 68, 319), "aarch64": (0xC00000B7, 97, 220, 194, 186, 279)}
_CLONE3 = 435
_CLONE_NEWUSER = 0x10000000
_LOAD, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW, _KILL, _ERRNO = 0x7FFF0000, 0x80000000, 0x00050000
_EPERM, _ENOSYS = 1, 38


def seccomp_filter() -> bytes | None:
    """A classic-BPF seccomp program for the sandbox (bwrap's own --disable-userns cannot be
    combined with writing the uid map ourselves).

    - unshare/clone with CLONE_NEWUSER get EPERM, so no nested namespace hands capabilities back;
      clone3, whose flags a filter cannot read, gets ENOSYS (libc then falls back to clone);
    - shmget, msgget and memfd_create get EPERM: SysV shared memory and message queues and
      memfd files hold RAM that no process's address space (RLIMIT_AS) accounts for;
    - other ABIs (32-bit, x32) are killed.
    None on architectures we have no syscall table for."""
    if platform.machine() not in _SYSCALLS:
        return None
    arch, unshare, clone, shmget, msgget, memfd_create = _SYSCALLS[platform.machine()]
    program = [  # (code, jump-if-true label, jump-if-false label, k); None: fall through
        ("", _LOAD, None, None, 4),                     # A = arch
        ("", _JEQ, None, "kill", arch),
        ("", _LOAD, None, None, 0),                     # A = syscall number
        ("", _JGE, "kill", None, 0x40000000),           # x32 ABI
        ("", _JEQ, "enosys", None, _CLONE3),
        *[("", _JEQ, "eperm", None, nr) for nr in (shmget, msgget, memfd_create)],
        ("", _JEQ, "flags", None, unshare),
        ("", _JEQ, "flags", "allow", clone),
        ("flags", _LOAD, None, None, 16),               # A = low half of the first argument (the flags)
        ("", _JSET, "eperm", None, _CLONE_NEWUSER),
        ("allow", _RET, None, None, _ALLOW),
        ("eperm", _RET, None, None, _ERRNO | _EPERM),
        ("enosys", _RET, None, None, _ERRNO | _ENOSYS),
        ("kill", _RET, None, None, _KILL),
    ]
    return _assemble(program)


def _assemble(program: list[tuple]) -> bytes:
    """Turn (label, code, true-label, false-label, k) rows into BPF: jumps count the rows skipped."""
    where = {row[0]: i for i, row in enumerate(program) if row[0]}

    def skip(pc: int, label: str | None) -> int:
        return 0 if label is None else where[label] - pc - 1

    return b"".join(struct.pack("=HBBI", code, skip(pc, true), skip(pc, false), k)
                    for pc, (_, code, true, false, k) in enumerate(program))
