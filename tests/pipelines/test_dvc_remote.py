"""`dvc push` / `dvc pull` through the S3 remote, against a real S3 server that checks credentials."""
from __future__ import annotations

import configparser
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from toolorch.ops.storage import S3Settings, S3Store

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(cmd: list[str], cwd: Path, env: dict[str, str], ok: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if ok and done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return done


@pytest.fixture
def dvc_repo(tmp_path, s3_server):
    bucket = f"dvc-{uuid.uuid4().hex[:10]}"
    S3Store(S3Settings(endpoint=s3_server.endpoint, access_key=s3_server.access_key,
                       secret_key=s3_server.secret_key)).ensure_bucket(bucket)
    env = {**os.environ, **s3_server.env(), "PATH": f"{BIN}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    repo = tmp_path / "repo"
    repo.mkdir()
    _run(["git", "init", "-q"], repo, env)
    _run(["dvc", "init", "-q"], repo, env)
    _run(["dvc", "remote", "add", "-d", "minio", f"s3://{bucket}/cache"], repo, env)
    # The endpoint is per machine: it goes to the git-ignored config.local, as scripts/tiny.sh does.
    _run(["dvc", "remote", "modify", "--local", "minio", "endpointurl", s3_server.endpoint], repo, env)
    data = repo / "data" / "envs"
    data.mkdir(parents=True)
    (data / "env.json").write_text('{"name": "library"}\n')
    (data / "db.sqlite").write_bytes(os.urandom(50_000))
    _run(["dvc", "add", "data/envs"], repo, env)
    return repo, env, bucket


@pytest.mark.slow
def test_push_then_pull_restores_the_data(dvc_repo, s3_server):
    repo, env, bucket = dvc_repo
    before = {p.name: p.read_bytes() for p in (repo / "data" / "envs").iterdir()}
    _run(["dvc", "push"], repo, env)
    assert any((s3_server.root / bucket / "cache").rglob("*")), "nothing reached the S3 bucket"
    _run(["rm", "-rf", "data/envs", ".dvc/cache"], repo, env)
    _run(["dvc", "pull"], repo, env)
    assert {p.name: p.read_bytes() for p in (repo / "data" / "envs").iterdir()} == before


@pytest.mark.slow
def test_push_with_wrong_secret_fails(dvc_repo):
    repo, env, _ = dvc_repo
    done = _run(["dvc", "push"], repo, {**env, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}, ok=False)
    assert done.returncode != 0
    assert "SignatureDoesNotMatch" in done.stdout + done.stderr or "403" in done.stdout + done.stderr


def test_repo_remote_is_s3_with_the_endpoint_kept_local():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / ".dvc" / "config")
    assert cfg["core"]["remote"] == "minio"
    remote = cfg["'remote \"minio\"'"]  # DVC writes section names quoted
    assert remote["url"].startswith("s3://")
    assert "access_key_id" not in remote and "secret_access_key" not in remote
