"""Full training state through torch.distributed.checkpoint: resume = the same run.

    save_state(folder, model, optimizer, scheduler, step=5, data_position=40)
    step, data_position = load_state(folder, model, optimizer, scheduler)

Saved: model and optimizer (sharded under FSDP2, plain on one process), the LR
scheduler, every RNG (python, torch CPU, CUDA when present), the step, the data
position and the config it was trained with (`config_changes` tells whether a run may
resume it). A checkpoint is written to `<folder>.tmp` and renamed, so a process killed
mid-save leaves the previous checkpoint intact.
"""
from __future__ import annotations

import pickle
import random
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.distributed as tdist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

META = "meta.pkl"


def _rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _rank() -> int:
    return tdist.get_rank() if tdist.is_initialized() else 0


def _barrier() -> None:
    if tdist.is_initialized():
        tdist.barrier()


def save_state(folder: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler, step: int, data_position: int,
               config: dict[str, Any] | None = None) -> Path:
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    if _rank() == 0 and tmp.exists():
        shutil.rmtree(tmp)
    _barrier()
    model_sd, optim_sd = get_state_dict(model, optimizer)
    dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(tmp))
    if _rank() == 0:
        meta = {"step": step, "data_position": data_position, "scheduler": scheduler.state_dict(),
                "rng": _rng_state(), "config": config}
        (tmp / META).write_bytes(pickle.dumps(meta))
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    _barrier()
    return folder


def has_state(folder: str | Path) -> bool:
    return (Path(folder) / META).exists()


def saved_config(folder: str | Path) -> dict[str, Any] | None:
    """The config a checkpoint was trained with (None when it recorded none)."""
    meta = pickle.loads((Path(folder) / META).read_bytes())  # our own file, written by save_state
    return meta.get("config")


def config_changes(saved: Any, current: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ, each as `key (saved -> current)`."""
    if isinstance(saved, dict) and isinstance(current, dict):
        return [change for key in sorted(saved.keys() | current.keys(), key=str)
                for change in config_changes(saved.get(key), current.get(key), f"{prefix}{key}.")]
    if isinstance(saved, list) and isinstance(current, list) and len(saved) == len(current):
        return [change for i, (a, b) in enumerate(zip(saved, current))
                for change in config_changes(a, b, f"{prefix}{i}.")]
    return [] if saved == current else [f"{prefix.rstrip('.')} ({saved!r} -> {current!r})"]


def load_state(folder: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler) -> tuple[int, int]:
    """Restore in place; returns (step, data_position) to continue from."""
    folder = Path(folder)
    if not has_state(folder):
        raise FileNotFoundError(f"{folder}: no training checkpoint ({META} missing)")
    model_sd, optim_sd = get_state_dict(model, optimizer)
    state = {"model": model_sd, "optim": optim_sd}
    dcp.load(state, checkpoint_id=str(folder))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    meta = pickle.loads((folder / META).read_bytes())  # our own file, written by save_state
    scheduler.load_state_dict(meta["scheduler"])
    _set_rng_state(meta["rng"])
    return int(meta["step"]), int(meta["data_position"])
