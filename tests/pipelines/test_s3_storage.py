"""toolorch.ops.storage against a real S3 server (rclone serve s3 on 127.0.0.1) and a dead endpoint."""
from __future__ import annotations

import time
import uuid

import pytest
from s3_server import free_port

from toolorch.ops.storage import (
    S3Settings,
    S3Store,
    StorageError,
    StorageUnavailable,
    s3_staged,
    split_s3,
)

# a wedged S3 server fails these tests in minutes, not after the suite's 900 s per test
pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def store(s3_server) -> S3Store:
    return S3Store(S3Settings(endpoint=s3_server.endpoint, access_key=s3_server.access_key,
                              secret_key=s3_server.secret_key))


@pytest.fixture
def bucket(store) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    assert store.ensure_bucket(name) is True
    return name


def _tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_ensure_bucket_creates_once(store, s3_server):
    name = f"made-{uuid.uuid4().hex[:10]}"
    assert store.ensure_bucket(name) is True
    assert store.ensure_bucket(name) is False
    assert (s3_server.root / name).is_dir()


def test_folder_round_trip(store, bucket, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.jsonl").write_text('{"x": 1}\n')
    (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 40)
    assert store.upload_dir(src, f"s3://{bucket}/run/envs") == 2
    assert store.keys(f"s3://{bucket}/run/envs") == ["run/envs/a.jsonl", "run/envs/sub/b.bin"]
    dst = tmp_path / "dst"
    (dst).mkdir()
    (dst / "stale.txt").write_text("old")  # a pull replaces the folder, it does not merge
    assert store.download_dir(f"s3://{bucket}/run/envs", dst) == 2
    assert _tree(dst) == _tree(src)


def test_pull_picks_file_or_folder(store, bucket, tmp_path):
    f = tmp_path / "metrics.json"
    f.write_text('{"acc": 0.5}')
    store.push(f, f"s3://{bucket}/m/metrics.json")
    store.pull(f"s3://{bucket}/m/metrics.json", tmp_path / "back.json")
    assert (tmp_path / "back.json").read_text() == '{"acc": 0.5}'
    store.pull(f"s3://{bucket}/m", tmp_path / "folder")
    assert (tmp_path / "folder" / "metrics.json").read_text() == '{"acc": 0.5}'


def test_missing_prefix_is_a_clear_error(store, bucket, tmp_path):
    with pytest.raises(StorageError, match="nothing stored under"):
        store.download_dir(f"s3://{bucket}/nope", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def _requests(store: S3Store) -> list[str]:
    """Every HTTP request the store's client sends, retries included."""
    sent: list[str] = []
    store.client.meta.events.register("before-send.s3", lambda request, **_: sent.append(request.method))
    return sent


def test_wrong_credentials_are_refused_without_retry(s3_server, bucket):
    bad = S3Store(S3Settings(endpoint=s3_server.endpoint, access_key=s3_server.access_key, secret_key="wrong-secret"))
    sent = _requests(bad)
    with pytest.raises(StorageError, match="SignatureDoesNotMatch.*AWS_SECRET_ACCESS_KEY") as e:
        bad.keys(f"s3://{bucket}/x")
    assert not isinstance(e.value, StorageUnavailable)
    assert sent == ["GET"]


def test_dead_endpoint_retries_with_jittered_backoff_then_names_it():
    endpoint = f"http://127.0.0.1:{free_port()}"
    dead = S3Store(S3Settings(endpoint=endpoint, access_key="k" * 8, secret_key="s" * 8, attempts=4))
    sent = _requests(dead)
    start = time.monotonic()
    with pytest.raises(StorageUnavailable, match=f"{endpoint} unreachable: list_objects_v2 failed 4 times"):
        dead.keys("s3://bucket/x")
    assert len(sent) == 4
    assert time.monotonic() - start < 10  # full jitter: at most 1 + 2 + 4 s of sleep
    with pytest.raises(StorageUnavailable, match="unreachable: upload failed 4 times"):
        dead.upload_file(__file__, "s3://bucket/x.py")


def test_a_multipart_upload_and_ranged_download_round_trip(store, bucket, tmp_path):
    big = tmp_path / "shard.bin"
    with big.open("wb") as f:
        for i in range(20):  # 20 MiB: three 8 MiB parts
            f.write(bytes([i]) * (1 << 20))
    sent = _requests(store)
    store.upload_file(big, f"s3://{bucket}/w/shard.bin")
    assert sent.count("PUT") == 3 and sent.count("POST") == 2  # 3 parts; create + complete the upload
    store.download_file(f"s3://{bucket}/w/shard.bin", tmp_path / "back" / "shard.bin")
    assert (tmp_path / "back" / "shard.bin").read_bytes() == big.read_bytes()
    assert [p.name for p in (tmp_path / "back").iterdir()] == ["shard.bin"]  # no temp file left


def test_staged_uploads_outputs_only_on_success(store, bucket, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "train.jsonl").write_text("a\nb\n")
    store.upload_dir(src, f"s3://{bucket}/tasks")
    with s3_staged({"tasks_dir": f"s3://{bucket}/tasks"}, {"out_dir": f"s3://{bucket}/out", "local": str(tmp_path / "l")},
                   store=store) as paths:
        assert paths["local"] == str(tmp_path / "l")
        lines = (tmp_path / paths["tasks_dir"] / "train.jsonl").read_text().splitlines()
        out = tmp_path / paths["out_dir"]
        out.mkdir(parents=True)
        (out / "count.txt").write_text(str(len(lines)))
    assert store.keys(f"s3://{bucket}/out") == ["out/count.txt"]
    with pytest.raises(RuntimeError, match="stage broke"):
        with s3_staged({}, {"out_dir": f"s3://{bucket}/failed"}, store=store) as paths:
            (tmp_path / "x").mkdir()
            raise RuntimeError("stage broke")
    assert store.keys(f"s3://{bucket}/failed") == []


def test_split_s3_rejects_other_schemes():
    assert split_s3("s3://b/a/b/") == ("b", "a/b")
    with pytest.raises(StorageError, match="not an s3:// URL"):
        split_s3("/tmp/x")


@pytest.mark.slow
def test_run_stage_reads_and_writes_s3(store, bucket, s3_server, tmp_path):
    """A stage run end to end over s3:// paths, as a PyTorchJob replica runs grpo."""
    import os
    import subprocess
    import sys

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("seed: 1\nstages:\n  synth_envs:\n    domains: [library]\n")
    store.upload_file(cfg, f"s3://{bucket}/run/config.yaml")
    env = {**os.environ, **s3_server.env()}
    done = subprocess.run([sys.executable, "-m", "toolorch.ops.storage_cli", "run-stage", "synth_envs",
                           "--config", f"s3://{bucket}/run/config.yaml", "--out", f"out_dir=s3://{bucket}/run/envs",
                           "--out", f"metrics_path=s3://{bucket}/run/metrics/synth_envs.json"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    keys = store.keys(f"s3://{bucket}/run")
    assert "run/envs/library/env.json" in keys and "run/metrics/synth_envs.json" in keys
    dead = {**env, "TOOLORCH_S3_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    done = subprocess.run([sys.executable, "-m", "toolorch.ops.storage_cli", "pull", f"s3://{bucket}/run", str(tmp_path / "x")],
                          env=dead, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "unreachable" in done.stderr and "Traceback" not in done.stderr
