"""SFT sharded with FSDP2 over 2 gloo processes takes the steps one process takes, and rank 0
writes a checkpoint that loads back as a plain HF model. The 2-process runs go through the
launcher the sft component uses beyond one GPU (toolorch.ops.pytorchjob, local mode: torchrun)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch
from transformers import AutoModelForCausalLM

from toolorch.core.config import save_config
from toolorch.stages import as_profile
from toolorch.stages.stage import flag

SRC = Path(__file__).parents[3] / "src"
TINY = {"vocab_size": 512, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 2, "num_key_value_heads": 1}


def _config(world, folder: Path, **sft) -> Path:
    # 14 chats of ~455 tokens, one a row; 3 rows a step, so one rank gets 2 rows and the other 1
    stages = {"sft": {"tiny": TINY, "epochs": 2, "lr": 3e-3, "max_len": 512, "rows_per_step": 3,
                      "rows_per_micro": 1, "threads": 1, **sft}}
    return save_config(as_profile(world.cfg.model_copy(update={"stages": stages})), folder)


def _sft(nproc: int, config: Path, world, out: Path) -> dict:
    from toolorch.ops.pytorchjob import launch_stage

    env = {"OMP_NUM_THREADS": "1", "TOOLORCH_DEVICE": "cpu", "PYTHONPATH": str(SRC),
           "TOOLORCH_GRPO_LAUNCH": "local", "TOOLORCH_LOCAL_NPROC": str(nproc)}
    inputs = {"trajectories_path": str(world.trajectories_path)}
    outputs = {"out_dir": str(out / "model"), "metrics_path": str(out / "metrics.json")}
    if nproc == 1:  # the plain stage command, as the sft component runs on one GPU
        cmd = [sys.executable, "-m", "toolorch.stages.sft", "--config", str(config)]
        cmd += [a for k, v in {**inputs, **outputs}.items() for a in (flag(k), v)]
        done = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    else:
        with mock.patch.dict(os.environ, env):  # launch_local's torchrun inherits the environment
            assert launch_stage("sft", config, inputs, outputs, timeout_s=300) == "local"
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def one_process(world, tmp_path_factory):
    root = tmp_path_factory.mktemp("sft_one")
    return root, _sft(1, _config(world, root), world, root)


@pytest.mark.slow
def test_fsdp2_sft_on_two_processes_matches_one_process(world, one_process, tmp_path):
    root, one = one_process
    two = _sft(2, _config(world, tmp_path), world, tmp_path)
    assert two["steps"] == one["steps"] == 10 and two["trained_tokens_per_epoch"] == one["trained_tokens_per_epoch"]
    for key in ("loss_first", "loss_last", "loss_last_epoch_mean"):
        assert two[key] == pytest.approx(one[key], rel=1e-4), key
    assert two["loss_last"] < two["loss_first"]  # it trained
    assert two["parameters"] == one["parameters"]  # counted whole, not one rank's shard
    a = AutoModelForCausalLM.from_pretrained(root / "model")
    b = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    assert b.lm_head.weight.data_ptr() == b.model.embed_tokens.weight.data_ptr()  # still tied
    ref = a.state_dict()
    for k, w in b.state_dict().items():
        torch.testing.assert_close(w, ref[k], rtol=1e-4, atol=1e-4)
    assert (tmp_path / "model" / "config.resolved.yaml").is_file()
    assert (tmp_path / "model" / "tokenizer.json").is_file()


@pytest.mark.slow
def test_bf16_compute_keeps_fp32_master_weights(world, one_process, tmp_path):
    """precision: bf16 with activation checkpointing: bf16 forward/backward under FSDP2's
    MixedPrecisionPolicy, AdamW on the fp32 shards; the checkpoint is fp32 and near the fp32 run."""
    _, one = one_process
    two = _sft(2, _config(world, tmp_path, precision="bf16", activation_checkpointing=True), world, tmp_path)
    assert two["loss_first"] == pytest.approx(one["loss_first"], rel=2e-2)
    assert two["loss_last"] == pytest.approx(one["loss_last"], rel=2e-2)
    assert two["loss_first"] != one["loss_first"]  # bf16 did run
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "model", dtype="auto")
    assert {p.dtype for p in model.parameters()} == {torch.float32}
