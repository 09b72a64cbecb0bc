"""The paper's base model comes from the object store into the sft pod's cache (kfp_io.fetch_base,
runtime.model_store) over a real S3 server on 127.0.0.1: pulled once, moved into place whole, found
in the cache after; `tiny` and wheel models are not fetched."""
from __future__ import annotations

import json

import pytest

from toolorch.ops.kfp_io import fetch_base
from toolorch.ops.storage import S3Settings, S3Store
from toolorch.runtime.model_store import MODELS, ModelStoreError, StoredModel, resolve_model


def test_an_s3_base_is_pulled_into_the_cache_once(s3_server, tmp_path, monkeypatch):
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TOOLORCH_MODEL_CACHE", str(tmp_path / "cache"))
    store = S3Store(S3Settings.from_env())
    store.ensure_bucket("toolorch-models")
    model = tmp_path / "hf"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "qwen3"}))
    (model / "model.safetensors").write_bytes(b"\0" * 1024)
    store.push(model, "s3://toolorch-models/Toy-8B")
    monkeypatch.setitem(MODELS, "toy-8b", StoredModel("org/Toy-8B", s3="s3://toolorch-models/Toy-8B"))

    fetch_base("toy-8b")
    cached = tmp_path / "cache" / "toy-8b"
    assert (cached / "model.safetensors").read_bytes() == b"\0" * 1024
    assert resolve_model("toy-8b") == cached  # the stage finds it without a pull
    fetch_base("tiny")  # neither a store name nor an S3 model: nothing to fetch
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["toy-8b"]


def test_a_fetch_without_a_model_leaves_no_half_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TOOLORCH_MODEL_CACHE", str(tmp_path))
    monkeypatch.setitem(MODELS, "empty", StoredModel("org/empty", s3="s3://b/empty"))
    with pytest.raises(ModelStoreError, match="no config.json"):
        resolve_model("empty", pull=lambda url, folder: (folder / "junk").write_text("x"))
    assert list(tmp_path.iterdir()) == []
