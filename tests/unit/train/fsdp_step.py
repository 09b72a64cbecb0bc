"""Two GRPO steps under torchrun (FSDP2 when WORLD_SIZE > 1); rank 0 writes each step's statistics
and the final weights.

    python -m torch.distributed.run --nproc-per-node 2 tests/unit/train/fsdp_step.py MODEL SAMPLES OUT [SPLIT]

SPLIT ("3,1", "4,0") is how many of the samples each rank gets, in order (default: every
world-th sample), so that ranks can have unequal work or none, as when a step's kept groups do
not divide evenly. Each sample is its own micro-batch, so unequal samples mean unequal
micro-batches: the ranks with fewer must still join every FSDP collective.
"""
import json
import os
import sys
from datetime import timedelta

import torch
import torch.distributed as tdist
from transformers import AutoModelForCausalLM

from toolorch.runtime.chat import Sample
from toolorch.train.distributed import (
    Dist,
    close,
    full_state_dict,
    init_distributed,
    shard,
)
from toolorch.train.grpo import StepConfig, grpo_step

STEPS = 2
# a collective that no other rank joins fails after this, instead of gloo's 30 minutes
COLLECTIVE_TIMEOUT = timedelta(seconds=60)


def rank_samples(samples: list[Sample], dist: Dist, split: str) -> list[Sample]:
    if not split:
        return samples[dist.rank::dist.world]
    counts = [int(c) for c in split.split(",")]
    if len(counts) != dist.world or sum(counts) != len(samples):
        raise SystemExit(f"split {split} does not share {len(samples)} samples over {dist.world} ranks")
    start = sum(counts[:dist.rank])
    return samples[start:start + counts[dist.rank]]


def main(model_dir: str, samples_path: str, out_path: str, split: str = "") -> None:
    torch.set_num_threads(1)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        tdist.init_process_group("gloo", timeout=COLLECTIVE_TIMEOUT)  # init_distributed keeps this group
    dist = init_distributed()
    model = shard(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32), dist)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    rows = json.load(open(samples_path))
    samples = rank_samples([Sample(r["ids"], r["trained"], r["weight"]) for r in rows], dist, split)
    cfg = StepConfig(rows_per_micro=1, share_prompts=False)
    stats = [grpo_step(model, None, optimizer, scheduler, samples, cfg, 0, dist) for _ in range(STEPS)]
    weights = full_state_dict(model, dist)
    if dist.main:
        torch.save({"stats": stats, "weights": weights}, out_path)
    close(dist)


if __name__ == "__main__":
    main(*sys.argv[1:5])
