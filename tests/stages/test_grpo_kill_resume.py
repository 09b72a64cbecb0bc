"""SIGKILL anywhere, a save included: the grpo stage resumes from its last complete checkpoint and
its later steps equal the uninterrupted run's (same losses, rewards, weights).

Each run is a real process (`python -m toolorch.stages.grpo` through grpo_killer.py) on a tiny
model, with a checkpoint every step. The kills land at every instant of a save (shards half
written, index written, meta written, LATEST written but not renamed, renamed but old folders
not yet deleted) and at seeded random times.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from grpo_world import grpo_world
from transformers import AutoModelForCausalLM

from toolorch.train.checkpoint import latest

pytestmark = pytest.mark.slow

KILLER = Path(__file__).with_name("grpo_killer.py")
SRC = Path(__file__).resolve().parents[2] / "src"
STEPS = 5


@pytest.fixture(scope="module")
def setup(tmp_path_factory, library_env):
    return grpo_world(tmp_path_factory.mktemp("grpo_kill"), library_env, steps=STEPS)


def _grpo(setup, out: Path, point: str = "none", nth: int = 0, kill_after_s: float | None = None):
    """Run the stage in its own process; returns (exit code, seconds it ran)."""
    world, sft_dir, config = setup
    cmd = [sys.executable, str(KILLER), point, str(nth), "--config", str(config), "--sft-dir", str(sft_dir),
           "--tasks-path", str(world.tasks_path), "--envs-dir", str(world.envs_dir),
           "--heldout-path", str(out.parent / "none.jsonl"), "--out-dir", str(out),
           "--metrics-path", str(out.parent / f"{out.name}.json")]
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out_text, _ = proc.communicate(timeout=kill_after_s)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        out_text, _ = proc.communicate()
    code = proc.returncode
    assert code in (0, -signal.SIGKILL), out_text.decode()[-3000:]
    return code, time.monotonic() - start


def _step(out: Path) -> int:
    name = latest(out / "state")
    return int(name.split("-")[1]) if name else 0


def _steady(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if "seconds" not in k and "per_s" not in k} for h in history]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return AutoModelForCausalLM.from_pretrained(folder).state_dict()


def test_sigkill_anywhere_resumes_the_same_run(setup, tmp_path):
    code, whole_s = _grpo(setup, tmp_path / "whole")
    assert code == 0
    whole = json.loads((tmp_path / "whole.json").read_text())["history"]
    out = tmp_path / "killed"
    # (where in a save, which save of that process, the checkpoint LATEST names after the kill)
    plan = [("shards", 2, 1),   # in step 2's save, shards half written: step 1 stays
            ("meta", 2, 2),     # resumed at 1; in step 3's save, before meta.pkl: step 2 stays
            ("commit", 1, 2),   # resumed at 2; step 3 complete, LATEST not yet written
            ("rename", 1, 2),   # LATEST.tmp written and synced, not yet renamed
            ("cleanup", 1, 3)]  # LATEST on step 3, step 2's folder not yet deleted
    for point, nth, want in plan:
        code, _ = _grpo(setup, out, point, nth)
        assert code == -signal.SIGKILL, f"{point}: the run was not killed"
        assert _step(out) == want, f"killed at {point}: LATEST names step {_step(out)}, expected {want}"
    rng = random.Random(7)
    for _ in range(2):  # and at random instants: whatever the instant, the checkpoint never goes back
        before = _step(out)
        _grpo(setup, out, kill_after_s=rng.uniform(0.3, 0.8) * whole_s)
        assert _step(out) >= before
    resumed_at = _step(out)
    code, _ = _grpo(setup, out)
    assert code == 0
    finished = json.loads((tmp_path / "killed.json").read_text())
    assert finished["resumed_from"] == resumed_at, "resumed, not restarted"
    rest = finished["history"]
    # the history holds every step once: those logged before each kill up to its checkpoint, the rest
    # from the run that finished; a restarted run would differ from the uninterrupted one's
    assert [h["step"] for h in rest] == list(range(1, STEPS + 1))
    for got, want in zip(_steady(rest), _steady(whole), strict=True):
        assert got == pytest.approx(want, rel=1e-5, abs=1e-7), f"step {want['step']}"
    a, b = _weights(tmp_path / "whole"), _weights(out)
    assert all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-7) for k in a)
    assert sorted(p.name for p in (out / "state").iterdir()) == ["LATEST", f"step-{STEPS:08d}"]
