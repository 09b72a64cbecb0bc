"""One code path for 1 process (CPU), N processes (CPU/gloo) and N GPUs (NCCL), with FSDP2.

    dist = init_distributed()          # reads torchrun's RANK / WORLD_SIZE / LOCAL_RANK
    model = shard(model, dist)         # fully_shard per decoder layer, then the root
    model = shard(model, dist, param_dtype=torch.bfloat16)  # bf16 compute, fp32 master weights and reductions
    full = full_state_dict(model, dist)  # every rank gets unsharded tensors (rollout engine sync)
    save_hf(model, full_state_dict(model, dist, rank0_only=True), out_dir, dist)  # SFT's checkpoint

FSDP1 segfaults gathering a full state dict on CPU; FSDP2 with the
torch.distributed.checkpoint state-dict API does not.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as tdist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    device: str = "cpu"

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, values: list[float]) -> list[float]:
        """Sum a list of numbers over ranks (float64, so token counts stay exact)."""
        if self.world == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
        return t.tolist()

    def max(self, value: float) -> float:
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
        return float(t.item())

    def gather(self, obj: object) -> list[object]:
        if self.world == 1:
            return [obj]
        out: list[object] = [None] * self.world
        tdist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            tdist.barrier()


def default_device() -> str:
    """The GPU when there is one, else the CPU; TOOLORCH_DEVICE=cpu forces the CPU."""
    wanted = os.environ.get("TOOLORCH_DEVICE", "")
    if wanted:
        return wanted
    return "cuda" if torch.cuda.is_available() else "cpu"


def init_distributed() -> Dist:
    """A process group when launched by torchrun with WORLD_SIZE > 1; otherwise a single process
    (on the GPU when there is one)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist(device=default_device())
    rank = int(os.environ["RANK"])
    if default_device().startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        backend, device = "nccl", f"cuda:{local}"
    else:
        backend, device = "gloo", "cpu"
    if not tdist.is_initialized():
        tdist.init_process_group(backend)
    return Dist(rank, world, device)


def shard(model: torch.nn.Module, dist: Dist, param_dtype: torch.dtype | None = None) -> torch.nn.Module:
    """FSDP2: each decoder layer is a unit, the root holds embeddings, norm and head.

    `param_dtype` (bf16): forward and backward run in it on gathered copies of the parameters,
    while the sharded parameters (what AdamW updates) stay fp32 and gradients are reduced in fp32.
    """
    if dist.world == 1:
        return model.to(dist.device)
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32) if param_dtype else None
    kwargs = {"mp_policy": policy} if policy else {}
    model.to(dist.device)
    for layer in decoder_layers(model):
        fully_shard(layer, **kwargs)
    fully_shard(model, **kwargs)
    return model


def checkpoint_activations(model: torch.nn.Module) -> None:
    """Recompute each decoder layer's activations in backward (HF's non-reentrant checkpointing,
    which FSDP2 supports); apply before sharding."""
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    inner = getattr(model, "model", model)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise ValueError(f"{type(model).__name__} has no .model.layers to shard")
    return list(layers)


def full_state_dict(model: torch.nn.Module, dist: Dist, rank0_only: bool = False) -> dict[str, torch.Tensor]:
    """Unsharded weights on every rank; `rank0_only`: in rank 0's CPU memory only (the other
    ranks get {}), so a model larger than one GPU can be gathered. Every rank must call it."""
    if dist.world == 1:
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
    )

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=rank0_only))


def save_hf(model: torch.nn.Module, weights: dict[str, torch.Tensor], out_dir: str | Path, dist: Dist) -> None:
    """Rank 0 writes `weights` (a full state dict) as an HF checkpoint of `model`'s architecture.

    A sharded model cannot save_pretrained itself, so an empty (meta) copy of its class takes
    the gathered tensors; one process saves the model as it is.
    """
    if not dist.main:
        return
    if dist.world == 1:
        model.save_pretrained(out_dir)
        return
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(model.config, dtype=next(iter(weights.values())).dtype)
    plain.load_state_dict(weights, assign=True)
    plain.tie_weights()
    plain.save_pretrained(out_dir)


def close(dist: Dist) -> None:
    if dist.world > 1 and tdist.is_initialized():
        tdist.destroy_process_group()
