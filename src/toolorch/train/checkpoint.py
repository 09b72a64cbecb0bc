"""Full training state through torch.distributed.checkpoint, on a local/shared folder or S3: resume = the same run.

    save_state(root, model, optimizer, scheduler, step=5, data_position=40)
    step, data_position = load_state(root, model, optimizer, scheduler)

`root` is a folder (a shared volume on a cluster) or an s3:// URL (MinIO/S3 through fsspec's
s3fs, endpoint and keys from TOOLORCH_S3_ENDPOINT / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
Every rank writes its own shards. Saved: model and optimizer (sharded under FSDP2, plain on one
process), the LR scheduler, every RNG (python, torch CPU, CUDA when present), the step, the data
position and the config it was trained with (`config_changes` tells whether a run may resume it).

Layout and why a kill at any instant loses nothing:
    root/step-00000005/   one complete checkpoint (DCP shards, .metadata, meta.pkl)
    root/LATEST           "step-00000005": the last complete one
A save writes a new step folder, and only once every rank's shards and meta.pkl are there does
rank 0 point LATEST at it (a rename on a file system, one PUT on S3: both all-or-nothing); then
older folders go. A kill before that leaves LATEST on the previous checkpoint, after it on the new
one; a half-written folder is never read and is cleared by the next save.
"""
from __future__ import annotations

import os
import pickle
import random
import re
from typing import Any

import torch
import torch.distributed as tdist
import torch.distributed.checkpoint as dcp
from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem
from torch.distributed.checkpoint._fsspec_filesystem import FsspecReader, FsspecWriter  # not re-exported by torch 2.13
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

META = "meta.pkl"
LATEST = "LATEST"
_STEP_DIR = re.compile(r"step-\d{8}")


def storage_options(root: str) -> dict[str, Any]:
    """fsspec options: the S3 endpoint and keys from the environment for s3://, none for a folder."""
    if not str(root).startswith("s3://"):
        return {}
    env = os.environ
    options: dict[str, Any] = {"key": env.get("AWS_ACCESS_KEY_ID") or None,
                               "secret": env.get("AWS_SECRET_ACCESS_KEY") or None,
                               "client_kwargs": {"region_name": env.get("TOOLORCH_S3_REGION", "us-east-1")},
                               # ranged reads: some S3 servers (MinIO, rclone) send the whole object's
                               # checksum with a part of it, which botocore would then reject
                               "config_kwargs": {"retries": {"mode": "standard", "max_attempts": 5},
                                                 "response_checksum_validation": "when_required"}}
    if env.get("TOOLORCH_S3_ENDPOINT"):
        options["endpoint_url"] = env["TOOLORCH_S3_ENDPOINT"]
    return options


def _fs(root: str | os.PathLike) -> tuple[AbstractFileSystem, str]:
    root = os.fspath(root)
    fs, path = url_to_fs(root, **storage_options(root))
    return fs, path.rstrip("/")


def _url(root: str | os.PathLike, name: str) -> str:
    return f"{os.fspath(root).rstrip('/')}/{name}"


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


def latest(root: str | os.PathLike) -> str | None:
    """The name of the last complete checkpoint's folder, or None when there is none."""
    fs, path = _fs(root)
    try:
        name = fs.cat_file(f"{path}/{LATEST}").decode().strip()
    except FileNotFoundError:
        return None
    if not _STEP_DIR.fullmatch(name):
        raise ValueError(f"{_url(root, LATEST)}: {name!r} is not a checkpoint folder name")
    return name


def _write(fs: AbstractFileSystem, file: str, data: bytes) -> None:
    """Write a small file all or nothing: temp file, fsync, rename on a file system; one PUT on S3."""
    if not isinstance(fs, LocalFileSystem):
        fs.pipe_file(file, data)  # readers see the old object or the new one, never a part
        return
    with open(f"{file}.tmp", "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(f"{file}.tmp", file)


def _drop_all_but(fs: AbstractFileSystem, path: str, keep: str | None) -> None:
    for entry in fs.ls(path, detail=False) if fs.exists(path) else []:
        name = entry.rstrip("/").rsplit("/", 1)[-1]
        if _STEP_DIR.fullmatch(name) and name != keep:
            fs.rm(entry, recursive=True)


def save_state(root: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler, step: int, data_position: int,
               config: dict[str, Any] | None = None) -> str:
    """Write a checkpoint of `step` (every rank calls this); returns its folder name."""
    fs, path = _fs(root)
    name = f"step-{step:08d}"
    if latest(root) == name:  # already saved: nothing has trained since
        return name
    if _rank() == 0:
        fs.makedirs(path, exist_ok=True)
        if fs.exists(f"{path}/{name}"):  # left by a save killed half way
            fs.rm(f"{path}/{name}", recursive=True)
    _barrier()
    model_sd, optim_sd = get_state_dict(model, optimizer)
    target = _url(root, name)
    dcp.save({"model": model_sd, "optim": optim_sd}, storage_writer=FsspecWriter(target, **storage_options(target)))
    if _rank() == 0:
        meta = {"step": step, "data_position": data_position, "scheduler": scheduler.state_dict(),
                "rng": _rng_state(), "config": config}
        _write(fs, f"{path}/{name}/{META}", pickle.dumps(meta))
        _write(fs, f"{path}/{LATEST}", name.encode())  # the commit: from here on, resume reads this one
        _drop_all_but(fs, path, keep=name)
    _barrier()
    return name


def has_state(root: str | os.PathLike) -> bool:
    return latest(root) is not None


def clear_state(root: str | os.PathLike) -> None:
    """Forget every checkpoint under `root` (LATEST first, so a kill half way leaves none to resume)."""
    fs, path = _fs(root)
    if fs.exists(f"{path}/{LATEST}"):
        fs.rm_file(f"{path}/{LATEST}")
    _drop_all_but(fs, path, keep=None)


def _meta(root: str | os.PathLike) -> tuple[str, dict[str, Any]]:
    name = latest(root)
    if name is None:
        raise FileNotFoundError(f"{_url(root, LATEST)}: no training checkpoint")
    fs, path = _fs(root)
    return name, pickle.loads(fs.cat_file(f"{path}/{name}/{META}"))  # our own file, written by save_state


def saved_config(root: str | os.PathLike) -> dict[str, Any] | None:
    """The config the last checkpoint was trained with (None when it recorded none)."""
    return _meta(root)[1].get("config")


def config_changes(saved: Any, current: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ, each as `key (saved -> current)`."""
    if isinstance(saved, dict) and isinstance(current, dict):
        return [change for key in sorted(saved.keys() | current.keys(), key=str)
                for change in config_changes(saved.get(key), current.get(key), f"{prefix}{key}.")]
    if isinstance(saved, list) and isinstance(current, list) and len(saved) == len(current):
        return [change for i, (a, b) in enumerate(zip(saved, current))
                for change in config_changes(a, b, f"{prefix}{i}.")]
    return [] if saved == current else [f"{prefix.rstrip('.')} ({saved!r} -> {current!r})"]


def load_state(root: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler) -> tuple[int, int]:
    """Restore the last complete checkpoint in place; returns (step, data_position) to continue from."""
    name, meta = _meta(root)
    model_sd, optim_sd = get_state_dict(model, optimizer)
    state = {"model": model_sd, "optim": optim_sd}
    source = _url(root, name)
    dcp.load(state, storage_reader=FsspecReader(source, **storage_options(source)))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    scheduler.load_state_dict(meta["scheduler"])
    _set_rng_state(meta["rng"])
    return int(meta["step"]), int(meta["data_position"])
