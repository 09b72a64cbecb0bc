"""A run's datasets pushed into the DVC remote by toolorch.ops.dvc_publish come back byte for byte
through a workstation's `dvc pull` of the emitted pointers, and a version a workstation pushed
comes back through `fetch`, against a real S3 server that checks credentials. The slow test does
it through a whole local KFP run, which also trains sft from base weights fetched as an artifact."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from toolorch.ops import dvc_publish
from toolorch.ops.storage import S3Store

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def tree_bytes(path: Path) -> dict[str, bytes]:
    if path.is_file():
        return {"": path.read_bytes()}
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def workstation_env(s3_server) -> dict[str, str]:
    return {**os.environ, **s3_server.env(), "PATH": f"{BIN}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def sh(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{' '.join(cmd)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def workstation_clone(tmp: Path, remote_url: str, s3_server) -> tuple[Path, dict[str, str]]:
    """A fresh clone of this repository's DVC setup: its .dvc/config (remote `minio`), with the
    remote pointed at the test bucket and the endpoint in config.local, as scripts/tiny.sh does."""
    env = workstation_env(s3_server)
    clone = tmp / "workstation"
    clone.mkdir()
    sh(["git", "init", "-q"], clone, env)
    sh(["dvc", "init", "-q"], clone, env)
    shutil.copy(ROOT / ".dvc" / "config", clone / ".dvc" / "config")
    sh(["dvc", "remote", "modify", "minio", "url", remote_url], clone, env)
    sh(["dvc", "remote", "modify", "--local", "minio", "endpointurl", s3_server.endpoint], clone, env)
    return clone, env


def pull_run(pointers: Path, clone: Path, env: dict[str, str], run: str) -> Path:
    """What the README tells a workstation to do with a run's pointer artifact."""
    dest = clone / "data" / "runs" / run
    dest.mkdir(parents=True)
    for p in pointers.glob("*.dvc"):
        shutil.copy(p, dest / p.name)
    sh(["git", "add", "-A"], clone, env)
    sh(["git", "commit", "-qm", f"data of run {run}"], clone, env)
    sh(["dvc", "pull", "-R", f"data/runs/{run}"], clone, env)
    return dest


@pytest.fixture
def remote(s3_server, monkeypatch) -> str:
    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    bucket = f"dvc-{uuid.uuid4().hex[:10]}"
    S3Store().ensure_bucket(bucket)  # as scripts/tiny.sh does before a workstation's first dvc push
    return f"s3://{bucket}/cache"


def test_pushed_datasets_pull_into_a_workstation_byte_for_byte(tmp_path, remote, s3_server):
    envs = tmp_path / "run" / "envs"
    (envs / "library").mkdir(parents=True)
    (envs / "library" / "db.sqlite").write_bytes(os.urandom(40_000))
    (envs / "library" / "env.json").write_text('{"name": "library"}\n')
    tasks = tmp_path / "run" / "tasks.jsonl"
    tasks.write_text('{"id": "t1"}\n{"id": "t2"}\n')
    hashes = dvc_publish.push({"envs": envs, "tasks": tasks}, remote, tmp_path / "pointers")
    assert hashes["envs"].endswith(".dir") and len(hashes["tasks"]) == 32
    assert sorted(p.name for p in (tmp_path / "pointers").iterdir()) == ["envs.dvc", "tasks.dvc"]

    clone, env = workstation_clone(tmp_path, remote, s3_server)
    pulled = pull_run(tmp_path / "pointers", clone, env, "r1")
    assert tree_bytes(pulled / "envs") == tree_bytes(envs)
    assert (pulled / "tasks").read_bytes() == tasks.read_bytes()
    # the pointers are the workstation's own: its DVC sees the pulled data as unchanged
    assert "modified" not in sh(["dvc", "status", "data/runs/r1/envs.dvc", "data/runs/r1/tasks.dvc"], clone, env)

def test_a_version_a_workstation_pushed_is_fetched_by_its_pointer(tmp_path, remote, s3_server):
    clone, env = workstation_clone(tmp_path, remote, s3_server)
    data = clone / "data" / "passk"
    data.mkdir(parents=True)
    (data / "trajectories.jsonl").write_bytes(os.urandom(5_000))
    (data / "tasks.jsonl").write_text('{"id": "t"}\n')
    sh(["dvc", "add", "data/passk"], clone, env)
    sh(["dvc", "push"], clone, env)
    got = dvc_publish.fetch(clone / "data" / "passk.dvc", remote, tmp_path / "fetched" / "passk")
    assert tree_bytes(got) == tree_bytes(data)
    spec = dvc_publish.versions([clone / "data" / "passk.dvc"])  # what a data component is handed
    assert dvc_publish.fetch_version("passk", spec, remote, tmp_path / "by_md5")
    assert tree_bytes(tmp_path / "by_md5") == tree_bytes(data)


def test_a_file_that_is_not_a_pointer_is_named(tmp_path):
    bad = tmp_path / "x.dvc"
    bad.write_text("stages: {}\n")
    with pytest.raises(ValueError, match="x.dvc: not a .dvc pointer"):
        dvc_publish.pointer_md5(bad)



def test_versions_come_from_the_lock_or_pointers_and_are_checked(tmp_path):
    lock = tmp_path / "dvc.lock"
    lock.write_text(yaml.safe_dump({"schema": "2.0", "stages": {
        "synth_envs": {"cmd": "x", "outs": [{"path": "data/envs", "md5": "a" * 32 + ".dir", "hash": "md5"}]},
        "passk": {"cmd": "y", "outs": [{"path": "data/passk", "md5": "b" * 32 + ".dir", "hash": "md5"},
                                       {"path": "metrics/passk.json", "md5": "c" * 32, "hash": "md5"}]}}}))
    spec = dvc_publish.versions([lock])
    assert spec == f"envs={'a' * 32}.dir,passk={'b' * 32}.dir"
    assert dvc_publish.parse_versions(spec) == {"envs": "a" * 32 + ".dir", "passk": "b" * 32 + ".dir"}
    assert dvc_publish.parse_versions("") == {}
    with pytest.raises(ValueError, match="data_from_dvc 'models=.*expected name=md5"):
        dvc_publish.parse_versions(f"models={'a' * 32}")
    with pytest.raises(ValueError, match="dvc_remote is empty"):
        dvc_publish.fetch_version("envs", spec, "", tmp_path / "out")
    assert not dvc_publish.fetch_version("tasks", spec, "s3://unused", tmp_path / "out")  # not named: computed


@pytest.mark.slow
def test_a_local_kfp_run_publishes_its_datasets_and_trains_from_fetched_weights(tmp_path, remote, s3_server,
                                                                                  monkeypatch):
    from test_kfp_local_run import kfp_local_run
    from transformers import AutoConfig

    from toolorch.runtime.modeling import TinyModelSpec, build_tiny_model

    monkeypatch.setenv("TOOLORCH_GRPO_LAUNCH", "local")
    monkeypatch.chdir(tmp_path)
    spec = TinyModelSpec(vocab_size=400, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1)
    base = build_tiny_model(tmp_path / "base", ["The library holds books; ask an expert."] * 20, spec, seed=5)
    run = kfp_local_run(tmp_path / "kfp", dvc_remote=remote, base_model_uri=str(base))

    clone, env = workstation_clone(tmp_path, remote, s3_server)
    pulled = pull_run(run["pointers"], clone, env, "kfp")
    for name in ("envs", "tasks", "passk"):
        assert tree_bytes(pulled / name) == tree_bytes(run[name]), name
    assert (pulled / "envs" / "library" / "db.sqlite").is_file()

    # the workstation makes a new passk version (one trajectory fewer) and pushes it; a second
    # run started from the workstation's versions trains on exactly those bytes
    trajectories = pulled / "passk" / "trajectories.jsonl"
    lines = trajectories.read_bytes().splitlines(keepends=True)
    trajectories.unlink()  # it may be a link into DVC's cache
    trajectories.write_bytes(b"".join(lines[:-1]))
    sh(["dvc", "add", "data/runs/kfp/passk"], clone, env)
    sh(["dvc", "push"], clone, env)
    versions = dvc_publish.versions(sorted(pulled.glob("*.dvc")))
    again = kfp_local_run(tmp_path / "kfp2", dvc_remote=remote, data_from_dvc=versions)
    for name in ("envs", "tasks", "passk"):
        assert tree_bytes(again[name]) == tree_bytes(pulled / name), name
    executor_output = json.loads((again["passk"].parent / "executor_output.json").read_text())
    assert executor_output["artifacts"]["metrics"]["artifacts"][0]["metadata"] == {"from_dvc": 1.0}  # fetched
    assert json.loads(again["metrics/sft"].read_text())["trajectories"] >= 1  # it trained on them

    # sft trained from the fetched weights, and grpo and eval took its checkpoint
    assert tree_bytes(run["base"]) == tree_bytes(base)
    assert f"base: {run['base']}" in (run["sft"] / "config.resolved.yaml").read_text()
    trained = AutoConfig.from_pretrained(run["sft"])
    assert (trained.hidden_size, trained.vocab_size) == (48, AutoConfig.from_pretrained(base).vocab_size)
    assert AutoConfig.from_pretrained(run["grpo"]).hidden_size == 48


def test_a_missing_version_fails_with_one_line_naming_the_remote(tmp_path, remote):
    pointer = tmp_path / "passk.dvc"
    pointer.write_text("outs:\n- md5: 0123456789abcdef0123456789abcdef.dir\n  path: passk\n  hash: md5\n")
    done = subprocess.run([sys.executable, "-m", "toolorch.ops.dvc_publish", "fetch", remote, str(pointer),
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert done.returncode == 1, done.stderr
    assert f"DVC remote {remote}" in done.stderr and "Traceback" not in done.stderr
