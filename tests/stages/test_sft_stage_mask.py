"""The sft stage trains on exactly the assistant tokens of its chats: checked on the batches the
stage's own training loop scores, not on the collate helper alone."""
from __future__ import annotations

import json
from collections import Counter

import pytest
import torch
from transformers import AutoTokenizer
from unit.train.world import build_world

from toolorch.runtime.chat import IGNORE, encode
from toolorch.stages import as_profile, sft
from toolorch.train import sft as sft_loop

TINY = {"vocab_size": 512, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
        "num_attention_heads": 2, "num_key_value_heads": 1}


@pytest.mark.parametrize("share_prompts", [False, True])
def test_sft_stage_trains_exactly_the_assistant_tokens(library_env, tmp_path, monkeypatch, share_prompts):
    world = build_world(tmp_path / "world", library_env)
    scored: list[torch.Tensor] = []
    score = sft_loop.nll_sum

    def recording(model, batch):  # the labels each loss is taken over (position 0 predicts nothing)
        scored.append(batch["labels"][:, 1:][batch["labels"][:, 1:] != IGNORE].cpu())
        return score(model, batch)

    monkeypatch.setattr(sft_loop, "nll_sum", recording)
    cfg = as_profile(world.cfg.model_copy(update={"stages": {"sft": {"tiny": TINY, "epochs": 1, "max_len": 2048,
                                                                     "warmup_steps": 0,
                                                                     "share_prompts": share_prompts}}}))
    metrics = sft.run(cfg, world.trajectories_path, tmp_path / "model", tmp_path / "metrics.json")

    tok = AutoTokenizer.from_pretrained(tmp_path / "model")
    # ChatML: an assistant turn trains its content and end-of-turn, never the header, the system
    # prompt, the question or a tool's reply
    want = Counter(i for t in world.trajectories for m in t.messages if m["role"] == "assistant"
                   for i in encode(tok, m["content"] + "<|im_end|>\n"))
    got = Counter(int(i) for labels in scored for i in labels)
    assert got == want
    assert metrics["trained_tokens_per_epoch"] == sum(want.values())
    assert json.loads((tmp_path / "metrics.json").read_text())["trajectories"] == len(world.trajectories)
    # shared rows hold each common prompt once: fewer tokens computed for the same trained ones
    if share_prompts:
        assert metrics["row_tokens"] < 0.7 * metrics["tokens"]
    else:
        assert metrics["row_tokens"] == metrics["tokens"]
