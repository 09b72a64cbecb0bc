"""One code path for 1 process (CPU), N processes (CPU/gloo) and N GPUs (NCCL), with FSDP2.

    dist = init_distributed()          # reads torchrun's RANK / WORLD_SIZE / LOCAL_RANK
    model = shard(model, dist)         # fully_shard per decoder layer, then the root
    full = full_state_dict(model, dist)  # every rank gets unsharded tensors (rollout engine sync)

FSDP1 segfaults gathering a full state dict on CPU; FSDP2 with the
torch.distributed.checkpoint state-dict API does not.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

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


def shard(model: torch.nn.Module, dist: Dist) -> torch.nn.Module:
    """FSDP2: each decoder layer is a unit, the root holds embeddings, norm and head."""
    if dist.world == 1:
        return model.to(dist.device)
    from torch.distributed.fsdp import fully_shard

    model.to(dist.device)
    for layer in decoder_layers(model):
        fully_shard(layer)
    fully_shard(model)
    return model


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    inner = getattr(model, "model", model)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise ValueError(f"{type(model).__name__} has no .model.layers to shard")
    return list(layers)


def full_state_dict(model: torch.nn.Module, dist: Dist) -> dict[str, torch.Tensor]:
    """Unsharded weights on every rank (on CPU)."""
    if dist.world == 1:
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
    )

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=False))


def close(dist: Dist) -> None:
    if dist.world > 1 and tdist.is_initialized():
        tdist.destroy_process_group()
