"""The vLLM rollout engine against the trainer, run with the vLLM venv's Python (vLLM is not in
the project's environment):

    PYTHONPATH=src $TOOLORCH_VLLM_PYTHON tests/unit/train/vllm_sync.py MODEL_DIR OUT.json

Greedy rollouts of vLLM and of HF generate agree on the SFT weights; one real GRPO step on the
trainer, pushed through the loop's `sync_engine`, changes vLLM's rollouts to the new policy's.
"""
import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from toolorch.runtime.chat import Sample, encode, render
from toolorch.runtime.rollout import HFEngine, VLLMEngine
from toolorch.train.distributed import Dist
from toolorch.train.grpo import StepConfig, grpo_step, with_advantage
from toolorch.train.loop import TrainState, sync_engine


def main(model_dir: str, out_path: str) -> None:
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    prompts = [encode(tok, render(tok, [{"role": "user", "content": q}], generation_prompt=True))
               for q in ("How much does a hammer cost?", "Which items are in stock?", "Who sells drills?")]
    hf = HFEngine(model, tok, max_new_tokens=12, temperature=0.0)
    vllm = VLLMEngine(model_dir, tok, max_new_tokens=12, temperature=0.0, max_model_len=512, dtype="float32")
    before = {"hf": hf.sample(prompts, 0), "vllm": vllm.sample(prompts, 0)}

    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    samples = [with_advantage(Sample(p + c, [False] * len(p) + [True] * len(c)), a)
               for p, c, a in zip(prompts, before["hf"], (1.0, -1.0, -1.0))]
    grpo_step(model, None, optimizer, scheduler, samples, StepConfig(), tok.pad_token_id, Dist())
    state = TrainState(model, model, None, tok, optimizer, scheduler, Dist(), vllm=vllm)
    sync_engine(state)
    after = {"hf": hf.sample(prompts, 0), "vllm": vllm.sample(prompts, 0)}
    json.dump({"before": before, "after": after}, open(out_path, "w"))


if __name__ == "__main__":
    main(*sys.argv[1:])
