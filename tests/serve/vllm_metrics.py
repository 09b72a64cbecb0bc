"""vLLM's real Prometheus series, recorded from a live vLLM CPU server so that dashboards and
alerts can be checked offline against names the engine really exports (a wrong name shows
"No Data" in Grafana and never fails by itself).

Re-record after a vLLM upgrade (starts the server of scripts/vllm-venv.sh, ~2 min):

    PYTHONPATH=src TOOLORCH_VLLM_PYTHON="$(bash scripts/vllm-venv.sh | tail -n 1)" \\
        .venv/bin/python tests/serve/vllm_metrics.py

The asset holds one sample name per line with its label names: `name<TAB>label,label`.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

ASSET = Path(__file__).with_name("assets") / "vllm_metric_names.txt"
HEADER = ("# vLLM's Prometheus sample names and label names, scraped from a live vLLM CPU server\n"
          "# after a few chat completions. Rewrite with: python tests/serve/vllm_metrics.py\n")


def scrape(base_url: str) -> str:
    """The text exposition of the server at `base_url` (.../v1)."""
    root = base_url.removesuffix("/v1")
    with urllib.request.urlopen(f"{root}/metrics", timeout=10) as resp:
        return resp.read().decode()


def vllm_series(exposition: str) -> dict[str, set[str]]:
    """Every `vllm:` sample name with the label names it carries."""
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name.startswith("vllm:"):
                series.setdefault(sample.name, set()).update(sample.labels)
    return series


def exercise(base_url: str, model: str, requests: int = 3) -> None:
    """A few short completions, so that every latency histogram has observations."""
    body = json.dumps({"model": model, "max_tokens": 8,
                       "messages": [{"role": "user", "content": "hello"}]}).encode()
    for _ in range(requests):
        req = urllib.request.Request(f"{base_url}/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            json.load(resp)


def read_asset(path: Path = ASSET) -> dict[str, set[str]]:
    series: dict[str, set[str]] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, labels = line.partition("\t")
            series[name] = set(filter(None, labels.split(",")))
    return series


def format_asset(series: dict[str, set[str]]) -> str:
    return HEADER + "".join(f"{name}\t{','.join(sorted(labels))}\n" for name, labels in sorted(series.items()))


def tiny_model(out_dir: Path) -> Path:
    """A random-init Qwen2 small enough to load in seconds; its words do not matter here."""
    from toolorch.runtime.modeling import TinyModelSpec, build_tiny_model

    spec = TinyModelSpec(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1)
    return build_tiny_model(out_dir, ["hello world, how are you today?"] * 8, spec, seed=0)


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: vllm_server
    from vllm_server import VLLMServer

    python = os.environ.get("TOOLORCH_VLLM_PYTHON")
    if not python:
        sys.exit("TOOLORCH_VLLM_PYTHON is unset: export the last line of scripts/vllm-venv.sh")
    with tempfile.TemporaryDirectory() as tmp:
        server = VLLMServer.start(python, tiny_model(Path(tmp) / "model"),
                                  Path(tmp) / "server.log")
        try:
            exercise(server.base_url, server.model)
            series = vllm_series(scrape(server.base_url))
        finally:
            server.stop()
    ASSET.parent.mkdir(parents=True, exist_ok=True)
    ASSET.write_text(format_asset(series))
    print(f"{len(series)} vLLM series -> {ASSET}")


if __name__ == "__main__":
    main()
