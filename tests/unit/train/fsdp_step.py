"""One GRPO step under torchrun (FSDP2 when WORLD_SIZE > 1); rank 0 writes the loss and weights.

    python -m torch.distributed.run --nproc-per-node 2 tests/unit/train/fsdp_step.py MODEL SAMPLES OUT
"""
import json
import sys

import torch
from transformers import AutoModelForCausalLM

from toolorch.runtime.chat import Sample
from toolorch.train.distributed import close, full_state_dict, init_distributed, shard
from toolorch.train.grpo import StepConfig, grpo_step


def main(model_dir: str, samples_path: str, out_path: str) -> None:
    torch.set_num_threads(1)
    dist = init_distributed()
    model = shard(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32), dist)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    rows = json.load(open(samples_path))
    samples = [Sample(r["ids"], r["trained"], r["weight"]) for r in rows][dist.rank::dist.world]
    stats = grpo_step(model, None, optimizer, scheduler, samples, StepConfig(rows_per_micro=1), 0, dist)
    weights = full_state_dict(model, dist)
    if dist.main:
        torch.save({"stats": stats, "weights": weights}, out_path)
    close(dist)


if __name__ == "__main__":
    main(*sys.argv[1:4])
