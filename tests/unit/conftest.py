"""Fixtures for the model backends: a tiny shop world, a tiny random-init model, a real vLLM server."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# tests/ is on sys.path: pytest imports tests/conftest.py from there
from backends import missing_backend
from vllm_server import VLLMServer

from toolorch.core.config import Config, EpisodeConfig
from toolorch.core.records import Preference, Task, ToolCall, ToolSpec
from toolorch.runtime.env import Document, Environment, EnvSpec
from toolorch.runtime.modeling import TinyModelSpec, build_tiny_model
from toolorch.runtime.parsing import render_call
from toolorch.runtime.prompts import system_prompt
from toolorch.runtime.tools import code_tool

VLLM_PYTHON_ENV = "TOOLORCH_VLLM_PYTHON"


def shop_spec() -> EnvSpec:
    return EnvSpec(
        name="shop",
        description="A small hardware shop.",
        ddl=["CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL, stock INTEGER)"],
        tools=[
            ToolSpec(name="item_price", description="Price of an item by name.", kind="db", latency_s=0.5,
                     parameters={"type": "object", "properties": {"name": {"type": "string"}},
                                 "required": ["name"]},
                     sql="SELECT price FROM items WHERE name = :name"),
            ToolSpec(name="low_stock", description="Items with fewer than 5 in stock.", kind="db",
                     sql="SELECT name FROM items WHERE stock < 5 ORDER BY name", latency_s=0.5),
            ToolSpec(name="search", description="Search the shop's documents.", kind="search", cost_usd=0.001,
                     parameters={"type": "object", "properties": {"query": {"type": "string"}},
                                 "required": ["query"]}),
        ],
    )


def build_shop(folder: Path) -> Environment:
    rows = {"items": [{"id": 1, "name": "hammer", "price": 12.5, "stock": 3},
                      {"id": 2, "name": "saw", "price": 20.0, "stock": 8},
                      {"id": 3, "name": "drill", "price": 55.0, "stock": 1}]}
    docs = [Document(id="d1", title="Returns", text="Tools may be returned within 30 days."),
            Document(id="d2", title="Hours", text="The shop opens at 8 and closes at 18.")]
    return Environment.create(folder, shop_spec(), rows, docs)


def model_corpus() -> list[str]:
    """Representative text for the tokenizer: the system prompt, tool calls and answers."""
    tools = shop_spec().tools + [code_tool(5.0)]
    calls = [ToolCall(name="item_price", arguments={"name": n}) for n in ("hammer", "saw", "drill")]
    calls += [ToolCall(name="low_stock"), ToolCall(name="search", arguments={"query": "return policy"}),
              ToolCall(name="run_python", arguments={"code": "print(sum([12.5, 20.0]))"})]
    texts = [system_prompt(tools, Preference()), system_prompt(tools, Preference(cost=2.0, deny=["search"]))]
    texts += [render_call(c) for c in calls] + ["<answer>12.5</answer>", "<answer>drill, hammer</answer>"]
    return texts * 4


@pytest.fixture(scope="session")
def shop_env(tmp_path_factory) -> Environment:
    return build_shop(tmp_path_factory.mktemp("envs") / "shop")


@pytest.fixture
def shop_task() -> Task:
    return Task(id="shop-price-hammer", env="shop", question="How much does a hammer cost?", answer="12.5",
                answer_type="number", gold_calls=[ToolCall(name="item_price", arguments={"name": "hammer"})])


@pytest.fixture
def short_episodes() -> Config:
    return Config(episode=EpisodeConfig(max_turns=3, max_tokens=200))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    spec = TinyModelSpec(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1)
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny", model_corpus(), spec, seed=0)


@pytest.fixture(scope="session")
def vllm_python() -> str:
    """The vLLM venv's Python (vLLM is not in the project's environment)."""
    python = os.environ.get(VLLM_PYTHON_ENV)
    if not python:
        missing_backend("the vLLM CPU server venv",
                        f"{VLLM_PYTHON_ENV} is unset: run scripts/vllm-venv.sh and export its last line")
    if not os.access(python, os.X_OK):
        missing_backend("the vLLM CPU server venv", f"{VLLM_PYTHON_ENV}={python} is not an executable")
    return python


@pytest.fixture(scope="session")
def vllm_server(request, tmp_path_factory, vllm_python):
    model_dir = request.getfixturevalue("tiny_model_dir")  # only built when the server will run
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    server = VLLMServer.start(vllm_python, model_dir, log)
    yield server
    server.stop()
