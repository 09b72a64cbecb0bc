"""Bad input through the real commands: one message naming the file, line or key, exit 2 for bad
usage and 1 for a failed run, no traceback, no output left behind, and no secret in any output."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner
from unit.train.world import build_world

from toolorch.cli import app
from toolorch.core.config import save_config
from toolorch.stages import STAGES, as_profile, declaration

ROOT = Path(__file__).resolve().parents[2]
CANARY = "sk-canary-0d6f1e2a9b"
DEAD = "http://127.0.0.1:9"  # the discard port: nothing listens there


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, library_env):
    root = tmp_path_factory.mktemp("bad_inputs")
    world = build_world(root / "world", library_env)
    files = {"envs": world.envs_dir, "tasks": world.tasks_path, "trajectories": world.trajectories_path}
    files["config"] = save_config(as_profile(world.cfg), root)
    bad_envs = root / "bad_envs"
    shutil.copytree(world.envs_dir / "minilib", bad_envs / "minilib")
    (bad_envs / "minilib" / "db.sqlite").write_bytes(b"this is not a database " * 64)
    (bad_envs / "minilib" / "synth.json").write_text("{}")  # looks like a generated world to synth-tasks
    files["bad_envs"] = bad_envs
    lines = world.tasks_path.read_text().splitlines()
    files["truncated_tasks"] = root / "truncated_tasks.jsonl"
    files["truncated_tasks"].write_text("\n".join(lines[:2] + [lines[2][: len(lines[2]) // 2]]) + "\n")
    files["mistyped_tasks"] = root / "mistyped_tasks.jsonl"
    files["mistyped_tasks"].write_text("\n".join(lines[:2] + [lines[2].replace('"difficulty":', '"difficulty":"x","_":')]))
    traj = world.trajectories_path.read_text().splitlines()
    files["truncated_trajectories"] = root / "truncated_trajectories.jsonl"
    files["truncated_trajectories"].write_text(traj[0] + "\n" + traj[1][:-40] + "\n")
    files["canary_config"] = root / "canary.yaml"
    files["canary_config"].write_text(f"experts:\n  - name: frontier\n    price: frontier\n    api_key: {CANARY}\n")
    files["typo_config"] = root / "typo.yaml"
    files["typo_config"].write_text("seed: 1\nstages:\n  eval:\n    max_taks: 3\n")
    files["broken_config"] = root / "broken.yaml"
    files["broken_config"].write_text("seed: 1\nepisode: {max_turns: 3\n")
    return files


def _episode(f, *extra):
    return ["run-episode", "--env", str(f["envs"] / "minilib"), "--tasks", str(f["tasks"]),
            "--config", str(f["config"]), *extra]


def _stage(name, f, *extra):
    return [declaration(name).command, "--config", str(f["config"]), *extra]


# (case, argv builder, exit code, what the message must name)
CASES = [
    ("episode-unknown-policy", lambda f: _episode(f, "--policy", "nope"), 2, ["--policy: unknown policy 'nope'"]),
    ("episode-dead-endpoint", lambda f: _episode(f, "--policy", f"openai:{DEAD}#m"), 1, [DEAD, "unreachable"]),
    ("episode-truncated-jsonl", lambda f: _episode(f, "--tasks", str(f["truncated_tasks"])), 1,
     ["truncated_tasks.jsonl:3: invalid Task"]),
    ("episode-corrupt-sqlite", lambda f: _episode(f, "--env", str(f["bad_envs"] / "minilib")), 1,
     ["minilib/db.sqlite: not a readable SQLite database"]),
    ("episode-missing-config", lambda f: _episode(f, "--config", "nope/missing.yaml"), 2,
     ["nope/missing.yaml: no such config file"]),
    ("episode-bad-set", lambda f: _episode(f, "--set", "episode.max_turns=0"), 2,
     ["--set episode.max_turns: Input should be greater than or equal to 1"]),
    ("passk-unknown-section", lambda f: _stage("passk", f, "--set", "stages.pask.k=3"), 2,
     ["stages.pask: unknown section; did you mean `passk`?"]),
    ("passk-mistyped-jsonl", lambda f: _stage("passk", f, "--tasks-path", str(f["mistyped_tasks"])), 1,
     ["mistyped_tasks.jsonl:3: invalid Task"]),
    ("passk-dead-teacher", lambda f: _stage("passk", f, "--envs-dir", str(f["envs"]), "--tasks-path", str(f["tasks"]),
                                            "--set", "stages.passk.teacher=openai", "--set",
                                            f"stages.passk.openai={{base_url: '{DEAD}/v1', model: m, max_retries: 0, "
                                            "api_key_env: TOOLORCH_POLICY_API_KEY}",
                                            "--set", "stages.passk.max_endpoint_failures=1"), 1,
     ["teacher endpoint failed", DEAD]),
    ("passk-credential-in-config", lambda f: _stage("passk", f, "--config", str(f["canary_config"])), 2,
     ["canary.yaml: experts.0.api_key: looks like a credential", "api_key_env"]),
    ("passk-corrupt-sqlite", lambda f: _stage("passk", f, "--envs-dir", str(f["bad_envs"]),
                                              "--tasks-path", str(f["tasks"])), 1, ["minilib/db.sqlite"]),
    ("synth-tasks-bad-value", lambda f: _stage("synth_tasks", f, "--set", "stages.synth_tasks.heldout_envs=-1"), 2,
     ["--set stages.synth_tasks.heldout_envs: Input should be greater than or equal to 0"]),
    ("synth-tasks-missing-envs", lambda f: _stage("synth_tasks", f, "--envs-dir", "nope/envs"), 2,
     ["nope/envs: no environments folder (run synth-envs first)"]),
    ("synth-tasks-typo-in-file", lambda f: _stage("synth_tasks", f, "--config", str(f["typo_config"])), 2,
     ["typo.yaml:4: stages.eval.max_taks: unknown key; did you mean `max_tasks`?"]),
    ("synth-tasks-corrupt-sqlite", lambda f: _stage("synth_tasks", f, "--envs-dir", str(f["bad_envs"])), 1,
     ["minilib/db.sqlite: not a readable SQLite database"]),
    ("sft-truncated-jsonl", lambda f: _stage("sft", f, "--trajectories-path", str(f["truncated_trajectories"])), 1,
     ["truncated_trajectories.jsonl:2: invalid Trajectory"]),
    ("sft-mistyped-set", lambda f: _stage("sft", f, "--set", "stages.sft.epochs=many"), 2,
     ["--set stages.sft.epochs: Input should be a valid integer"]),
    ("sft-invalid-yaml", lambda f: _stage("sft", f, "--config", str(f["broken_config"])), 2,
     ["broken.yaml:3: not valid YAML"]),
    ("sft-credential-in-set", lambda f: _stage("sft", f, "--set", f"stages.sft.api_key={CANARY}"), 2,
     ["--set: stages.sft.api_key: looks like a credential"]),
    ("grpo-missing-checkpoint", lambda f: _stage("grpo", f, "--sft-dir", "nope/sft", "--tasks-path", str(f["tasks"]),
                                                 "--envs-dir", str(f["envs"])), 2,
     ["nope/sft: no SFT checkpoint (no config.json)"]),
    ("grpo-mistyped-jsonl", lambda f: _stage("grpo", f, "--tasks-path", str(f["mistyped_tasks"])), 1,
     ["mistyped_tasks.jsonl:3: invalid Task"]),
    ("grpo-bad-choice", lambda f: _stage("grpo", f, "--set", "stages.grpo.preferences=everyone"), 2,
     ["--set stages.grpo.preferences: Input should be 'task', 'resample' or 'contrast'"]),
    ("eval-unknown-policy", lambda f: _stage("eval", f, "--set", "stages.eval.policies=[gpt]"), 2,
     ["--set stages.eval.policies: unknown policy 'gpt'"]),
    ("eval-missing-tasks", lambda f: _stage("eval", f, "--tasks-path", "nope/heldout.jsonl"), 2,
     ["nope/heldout.jsonl: no such file"]),
    ("eval-set-without-value", lambda f: _stage("eval", f, "--set", "seed"), 2,
     ["--set: an override must look like key=value"]),
    ("eval-corrupt-sqlite", lambda f: _stage("eval", f, "--tasks-path", str(f["tasks"]),
                                             "--envs-dir", str(f["bad_envs"])), 1, ["minilib/db.sqlite"]),
]


@pytest.mark.parametrize("case,argv,code,named", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_clear_message_and_leaves_nothing(inputs, tmp_path, monkeypatch, case, argv, code, named):
    monkeypatch.setenv("TOOLORCH_POLICY_API_KEY", CANARY)  # the key the openai policy and teacher would send
    cwd = tmp_path / "cwd"  # default paths are relative: nothing may appear here either
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    args = argv(inputs)
    outputs = []
    if args[0] != "run-episode":
        outputs = [tmp_path / "out", tmp_path / "metrics.json"]
        args += ["--out-dir", str(outputs[0]), "--metrics-path", str(outputs[1])]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    for text in named:
        assert text in result.output, result.output
    assert CANARY not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output  # one message
    assert not any(p.exists() for p in outputs) and list(tmp_path.iterdir()) == [cwd]
    assert list(cwd.iterdir()) == []


@pytest.mark.parametrize("stage", STAGES)
def test_an_unknown_section_stops_every_stage_before_any_work(stage, tmp_path):
    result = CliRunner().invoke(app, [declaration(stage).command, "--config", str(ROOT / "configs" / "tiny.yaml"),
                                      "--set", "stages.pask.k=3", "--out-dir" if stage != "validate" else "--docs-dir",
                                      str(tmp_path / "out"), "--metrics-path", str(tmp_path / "m.json")])
    assert result.exit_code == 2
    assert result.output.strip() == (f"{declaration(stage).command}: error: --set stages.pask.k: stages.pask: "
                                     "unknown section; did you mean `passk`?")
    assert list(tmp_path.iterdir()) == []


def test_the_module_entry_point_exits_2_without_a_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, "-m", "toolorch.stages.grpo", "--config", str(ROOT / "configs/tiny.yaml"),
                           "--set", "stages.pask.k=3", "--out-dir", str(tmp_path / "g")], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 2
    assert "stages.pask: unknown section; did you mean `passk`?" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout and list(tmp_path.iterdir()) == []
    debug = subprocess.run([sys.executable, "-m", "toolorch.stages.grpo", "--config", str(ROOT / "configs/tiny.yaml"),
                            "--set", "stages.pask.k=3", "--debug"], capture_output=True, text=True, env=env,
                           cwd=tmp_path, timeout=300)
    assert debug.returncode != 0 and "ConfigError" in debug.stderr and "Traceback" in debug.stderr
