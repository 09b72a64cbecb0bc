"""The GRPO loop's vLLM rollout engine (the GPU path) on vLLM's CPU build: same samples as HF
generate, and the trainer's weights reach it after a step."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.vllm
def test_vllm_engine_samples_like_hf_and_follows_the_trainer(vllm_python, tiny_model_dir, tmp_path):
    out = tmp_path / "out.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    proc = subprocess.run([vllm_python, str(Path(__file__).with_name("vllm_sync.py")), str(tiny_model_dir), str(out)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = json.loads(out.read_text())
    before, after = runs["before"], runs["after"]
    assert before["vllm"] == before["hf"]  # greedy: the same tokens from both engines
    assert after["vllm"] == after["hf"]  # the pushed weights are the trainer's
    assert after["hf"] != before["hf"]  # and the step did change the policy
