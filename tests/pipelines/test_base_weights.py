"""Base weights as a pipeline artifact (toolorch.ops.weights), and how pipelines/full.yaml wires them,
sft's size and the DVC publishing."""
from __future__ import annotations

import configparser
import os
from pathlib import Path

import pytest
import yaml

from toolorch.ops.storage import S3Store
from toolorch.ops.weights import PROFILE_BASE, base_overrides, fetch_base

ROOT = Path(__file__).resolve().parents[2]
PIPELINE, _ = list(yaml.safe_load_all((ROOT / "pipelines" / "full.yaml").read_text()))
TASKS = PIPELINE["root"]["dag"]["tasks"]
PARAMS = PIPELINE["root"]["inputDefinitions"]["parameters"]


def _hf_folder(path: Path) -> Path:
    (path / "sub").mkdir(parents=True)
    (path / "config.json").write_text('{"model_type": "qwen2"}')
    (path / "model.safetensors").write_bytes(os.urandom(70_000))
    (path / "sub" / "tokenizer.json").write_text("{}")
    return path


def test_weights_from_s3_land_whole_and_point_sft_at_them(tmp_path, s3_server, monkeypatch):
    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    store = S3Store()
    store.ensure_bucket("models")
    src = _hf_folder(tmp_path / "src")
    store.push(src, "s3://models/qwen/v1")
    out = fetch_base("s3://models/qwen/v1", tmp_path / "weights")
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == \
        {p.relative_to(src): p.read_bytes() for p in src.rglob("*") if p.is_file()}
    assert base_overrides(out) == [f"stages.sft.base={out}"]


def test_no_uri_keeps_the_profile_base(tmp_path):
    out = fetch_base("", tmp_path / "weights")
    assert (out / PROFILE_BASE).is_file() and base_overrides(out) == []


def test_a_folder_uri_is_copied_and_a_bad_one_named(tmp_path):
    out = fetch_base(str(_hf_folder(tmp_path / "pvc" / "qwen")), tmp_path / "weights")
    assert (out / "sub" / "tokenizer.json").is_file()
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty: not an HF model folder"):
        fetch_base(str(tmp_path / "empty"), tmp_path / "w2")
    with pytest.raises(FileNotFoundError, match="nowhere: neither an s3:// URL nor a folder"):
        fetch_base(str(tmp_path / "nowhere"), tmp_path / "w3")


def test_sft_trains_from_the_base_weights_artifact():
    assert TASKS["base-weights"]["inputs"]["parameters"]["uri"]["componentInputParameter"] == "base_model_uri"
    assert PARAMS["base_model_uri"]["defaultValue"] == ""
    base = TASKS["sft"]["inputs"]["artifacts"]["base"]["taskOutputArtifact"]
    assert base == {"outputArtifactKey": "weights", "producerTask": "base-weights"}
    assert TASKS["base-weights"]["cachingOptions"]["enableCache"]  # fetched once, then served from the cache


def test_sft_size_is_a_parameter_one_gpu_by_default():
    inputs = TASKS["sft"]["inputs"]["parameters"]
    assert inputs["nodes"]["componentInputParameter"] == "sft_nodes"
    assert inputs["gpus_per_node"]["componentInputParameter"] == "sft_gpus_per_node"
    assert PARAMS["sft_nodes"]["defaultValue"] == 1 and PARAMS["sft_gpus_per_node"]["defaultValue"] == 1


def test_data_is_published_to_the_repos_dvc_remote_after_validation():
    [group] = [t for n, t in TASKS.items() if n.startswith("condition-")]
    assert group["triggerPolicy"]["condition"] == "inputs.parameter_values['pipelinechannel--dvc_remote'] != ''"
    assert "validate" in group["dependentTasks"]
    publish = PIPELINE["components"][group["componentRef"]["name"]]["dag"]["tasks"]["dvc-publish"]
    assert set(publish["inputs"]["artifacts"]) == {"envs", "tasks", "passk"}
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / ".dvc" / "config")
    assert PARAMS["dvc_remote"]["defaultValue"] == cfg["'remote \"minio\"'"]["url"]  # what a workstation pulls from
