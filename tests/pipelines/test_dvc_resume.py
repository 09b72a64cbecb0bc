"""`dvc repro` on a copy of the repository (configs/tiny.yaml shrunk in the copy): a no-op re-run
skips every stage, a run killed mid-stage resumes at that stage without redoing finished ones, and
one killed mid-GRPO resumes GRPO from its last checkpoint."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from grpo_world import grpo_world

from toolorch.train.checkpoint import latest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SMALL = {"synth_envs": {"domains": ["library", "bank", "clinic"], "tau2_domains": []},
         "synth_tasks": {"heldout_envs": 1},
         "passk": {"k": 8, "max_tasks": 60}}  # long enough (~10 s) to be killed in the middle


def _copy_repo(dst: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file() and not rel.startswith(("data/", "models/", "metrics/", "reports/")):
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            (dst / rel).write_bytes(src.read_bytes())


@pytest.fixture
def repo(tmp_path):
    repo = tmp_path / "repo"
    _copy_repo(repo)
    profile = yaml.safe_load((repo / "configs" / "tiny.yaml").read_text())
    for stage, settings in SMALL.items():
        profile["stages"][stage].update(settings)
    (repo / "configs" / "tiny.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    return repo, env


def _repro(repo: Path, env: dict, *args: str) -> str:
    done = subprocess.run(["dvc", "repro", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _kill_during(repo: Path, env: dict, stage: str, target: str) -> None:
    """Start `dvc repro target`, SIGKILL its whole process group once `stage` has started."""
    log = (repo / "repro.log").open("w")
    proc = subprocess.Popen(["dvc", "repro", target], cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 600
    while f"Running stage '{stage}'" not in (repo / "repro.log").read_text():
        assert proc.poll() is None and time.monotonic() < deadline, (repo / "repro.log").read_text()
        time.sleep(0.2)
    time.sleep(1)  # mid-stage
    assert proc.poll() is None, "the stage finished before it could be killed: give it more work"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.mark.slow
def test_noop_rerun_and_resume_after_kill(repo):
    repo, env = repo
    first = _repro(repo, env, "synth_tasks")
    assert "Running stage 'synth_envs'" in first and "Running stage 'synth_tasks'" in first
    envs_lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["synth_envs"]

    start = time.monotonic()
    again = _repro(repo, env, "synth_tasks")
    assert "Running stage" not in again and "didn't change" in again
    noop_s = time.monotonic() - start

    _kill_during(repo, env, "passk", "passk")
    status = subprocess.run(["dvc", "status", "passk"], cwd=repo, env=env, capture_output=True, text=True).stdout
    assert "passk" in status and "synth_tasks" not in status.split("passk")[0]

    resumed = _repro(repo, env, "passk")
    assert "Stage 'synth_envs' didn't change" in resumed and "Stage 'synth_tasks' didn't change" in resumed
    assert "Running stage 'passk'" in resumed
    assert yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["synth_envs"] == envs_lock
    lines = (repo / "data" / "passk" / "trajectories.jsonl").read_text().splitlines()
    assert lines and all(line.startswith("{") and line.endswith("}") for line in lines)
    clean = subprocess.run(["dvc", "status", "passk"], cwd=repo, env=env, capture_output=True, text=True).stdout
    assert "up to date" in clean
    assert noop_s < 60, f"no-op re-run took {noop_s:.0f}s"


def _place(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, dst) if src.is_dir() else shutil.copy(src, dst)


def _grpo_history(repo: Path) -> list[int]:
    return [h["step"] for h in json.loads((repo / "metrics" / "grpo.json").read_text())["history"]]


@pytest.mark.slow
def test_a_killed_repro_resumes_grpo_mid_run(repo, tmp_path, library_env):
    """dvc keeps models/grpo (persist): `dvc repro` killed after GRPO's step-2 checkpoint resumes
    from the checkpoint, not from step 1; a change of params afterwards trains anew."""
    repo, env = repo
    world, sft_dir, config = grpo_world(tmp_path / "world", library_env, steps=6)
    shutil.copy(config, repo / "configs" / "tiny.yaml")  # grpo's profile, over this world's envs and tasks
    _place(sft_dir, repo / "models" / "sft")
    _place(world.tasks_path, repo / "data" / "passk" / "tasks.jsonl")
    _place(world.envs_dir, repo / "data" / "envs")
    _place(world.tasks_path, repo / "data" / "tasks" / "heldout.jsonl")
    log = (repo / "repro.log").open("w")
    proc = subprocess.Popen(["dvc", "repro", "--single-item", "grpo"], cwd=repo, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 600
    while latest(repo / "models" / "grpo" / "state") not in ("step-00000002", "step-00000003"):
        assert proc.poll() is None and time.monotonic() < deadline, (repo / "repro.log").read_text()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    killed_at = int(latest(repo / "models" / "grpo" / "state").split("-")[1])
    assert killed_at < 6, "grpo finished before it could be killed: give it more steps"

    resumed = _repro(repo, env, "--single-item", "grpo")
    assert "Running stage 'grpo'" in resumed
    grpo_metrics = json.loads((repo / "metrics" / "grpo.json").read_text())
    assert grpo_metrics["resumed_from"] == killed_at, "resumed from the checkpoint, not restarted"
    assert _grpo_history(repo) == list(range(1, 7))  # every step once: those before the kill kept

    profile = yaml.safe_load((repo / "configs" / "tiny.yaml").read_text())
    profile["stages"]["grpo"]["lr"] = 0.002
    (repo / "configs" / "tiny.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    _repro(repo, env, "--single-item", "grpo")
    assert _grpo_history(repo) == list(range(1, 7)), "another config trains anew"
