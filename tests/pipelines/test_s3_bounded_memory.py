"""A transfer's memory is bounded whatever the file's size: a 512 MiB file goes up to and comes back
from a real S3 server (rclone serve s3) in a process whose whole address space is capped at 256 MiB.
The test deletes its three copies (source, the server's, the one read back) when done: left behind,
1.5 GiB would starve every later test on a machine with little free disk."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from toolorch.ops.storage import S3Settings, S3Store

MiB = 1 << 20
LIMIT, SIZE = 256 * MiB, 512 * MiB
SCRIPT = Path(__file__).with_name("s3_transfer_limited.py")
SRC = Path(__file__).resolve().parents[2] / "src"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(8 * MiB):
            digest.update(chunk)
    return digest.hexdigest()


def _run(limit: int, path: Path, url: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(limit), str(path), url], env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_a_file_larger_than_the_memory_limit_round_trips(s3_server, tmp_path):
    bucket = f"big-{uuid.uuid4().hex[:10]}"
    S3Store(S3Settings(endpoint=s3_server.endpoint, access_key=s3_server.access_key,
                       secret_key=s3_server.secret_key)).ensure_bucket(bucket)
    big = tmp_path / "model-00001-of-00001.safetensors"
    block = os.urandom(MiB)
    with big.open("wb") as f:
        for i in range(SIZE // MiB):  # every MiB differs: a misplaced part would show
            f.write(i.to_bytes(8, "little") + block[8:])
    # glibc reserves 64 MiB of address space per thread arena (unused, yet counted by RLIMIT_AS)
    env = {**os.environ, **s3_server.env(), "MALLOC_ARENA_MAX": "2", "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}

    stored, back = s3_server.root / bucket / "models" / "grpo" / big.name, Path(f"{big}.back")
    try:
        done = _run(LIMIT, big, f"s3://{bucket}/models/grpo/{big.name}", env)
        assert done.returncode == 0, done.stderr[-3000:]
        _, peak_kib, _, rss_kib = done.stdout.split()
        assert int(peak_kib) * 1024 <= LIMIT < SIZE
        assert stored.stat().st_size == SIZE
        assert _sha256(back) == _sha256(big)
        print(f"{SIZE // MiB} MiB up and down under RLIMIT_AS={LIMIT // MiB} MiB: VmPeak {int(peak_kib) // 1024} MiB, "
              f"VmHWM {int(rss_kib) // 1024} MiB")

        # the limit is real: reading the file whole, as a single PUT would, fails under it
        whole = subprocess.run([sys.executable, "-c", "import resource, sys; l = int(sys.argv[1]); "
                                "resource.setrlimit(resource.RLIMIT_AS, (l, l)); open(sys.argv[2], 'rb').read()",
                                str(LIMIT), str(big)], capture_output=True, text=True, timeout=120)
        assert whole.returncode != 0 and "MemoryError" in whole.stderr
    finally:
        for path in (big, back, stored):
            path.unlink(missing_ok=True)
