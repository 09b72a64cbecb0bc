"""Base model weights as a pipeline artifact: fetched from S3/MinIO (or a mounted volume) into it.

    fetch_base("s3://toolorch-models/Qwen3-8B", weights_dir)   # what the base-weights component does
    overrides = base_overrides(weights_dir)                     # ["stages.sft.base=<weights_dir>"], or []

The pipeline's `base-weights` task fetches the folder once; KFP's cache hands the same artifact
to every later run with the same URI (so a URI names one immutable version of the weights), and
sft trains from it. An empty URI keeps the profile's `stages.sft.base` (the tiny model, or a
folder in the image): the artifact then holds only a note saying so.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from toolorch.ops.storage import S3Store, is_s3

PROFILE_BASE = "PROFILE_BASE"  # the note's file name


def fetch_base(uri: str, out: str | Path) -> Path:
    """The HF model folder at `uri` (s3://... or a local path) into `out`."""
    out = Path(out)
    if not uri:
        out.mkdir(parents=True, exist_ok=True)
        (out / PROFILE_BASE).write_text("no base_model_uri: sft trains the profile's stages.sft.base\n")
        return out
    if is_s3(uri):
        S3Store().download_dir(uri, out)
    elif Path(uri).is_dir():
        shutil.copytree(uri, out, dirs_exist_ok=True)
    else:
        raise FileNotFoundError(f"base_model_uri {uri}: neither an s3:// URL nor a folder")
    if not (out / "config.json").is_file():
        raise FileNotFoundError(f"base_model_uri {uri}: not an HF model folder (no config.json)")
    return out


def base_overrides(weights_dir: str | Path) -> list[str]:
    """The config override that points sft at fetched weights; none for the profile's own base."""
    weights_dir = Path(weights_dir)
    return [] if (weights_dir / PROFILE_BASE).exists() else [f"stages.sft.base={weights_dir}"]
