"""Preflight (toolorch.ops.preflight) against real HTTP servers on 127.0.0.1 (tests/fake_openai.py):
each openai expert is called once with its key; a missing key, a refused key or a dead endpoint
fails in seconds, naming the expert; simulated experts are not called. Also: an openai expert
whose key variable is unset refuses to build, so a run cannot train on error observations."""
from __future__ import annotations

import socket
import time

import pytest
import yaml
from fake_openai import FakeOpenAI

from toolorch.core.catalog import CatalogExpert, Price
from toolorch.core.config import load_config
from toolorch.ops.preflight import EXPERT_KEYS, check_experts, main, preflight, unmounted_keys
from toolorch.runtime.experts import ExpertError, OpenAIExpert
from toolorch.stages import load_profile

KEY_VAR = "TOOLORCH_EXPERTS_API_KEY"


def dead_url() -> str:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def catalog(*experts: dict):
    rows = [{"backend": "openai", "price": "mini", "model": "m", "api_key_env": KEY_VAR, **e} for e in experts]
    rows.append({"name": "sim", "backend": "simulated", "price": "mini"})
    return load_config(None, [f"experts={yaml.safe_dump(rows, default_flow_style=True).strip()}"]).catalog()


def test_every_openai_expert_is_called_once_with_its_key():
    with FakeOpenAI(lambda body: "OK") as a, FakeOpenAI(lambda body: "OK") as b:
        problems = check_experts(catalog({"name": "a", "base_url": a.url}, {"name": "b", "base_url": b.url}),
                                 env={KEY_VAR: "k-123"})
    assert problems == []
    for fake in (a, b):
        assert len(fake.requests) == 1 and fake.requests[0]["model"] == "m" and fake.requests[0]["max_tokens"] == 1
        assert {k.lower(): v for k, v in fake.headers[0].items()}["authorization"] == "Bearer k-123"


def test_missing_key_refused_key_and_dead_endpoint_name_the_expert():
    with FakeOpenAI(lambda body: 401) as refusing, FakeOpenAI(lambda body: "OK") as fine:
        cat = catalog({"name": "refused", "base_url": refusing.url}, {"name": "dead", "base_url": dead_url()},
                      {"name": "keyless", "base_url": fine.url, "api_key_env": "TOOLORCH_NOT_SET_ANYWHERE"},
                      {"name": "fine", "base_url": fine.url})
        start = time.monotonic()
        problems = check_experts(cat, env={KEY_VAR: "k"}, timeout_s=2.0)
        took = time.monotonic() - start
    assert [p.split("'")[1] for p in problems] == ["refused", "dead", "keyless"]
    assert "refused the request" in problems[0] and "unreachable" in problems[1]
    assert "TOOLORCH_NOT_SET_ANYWHERE is not set" in problems[2]
    assert len(fine.requests) == 1  # the keyless expert was never called
    assert took < 10, f"preflight took {took:.1f}s"
    assert all("k" not in p.split(":")[-1].split() for p in problems)  # no key value in a message


def test_cli_fails_with_one_line_per_expert(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    profile = tmp_path / "p.yaml"
    profile.write_text(yaml.safe_dump({"experts": [
        {"name": "hosted", "backend": "openai", "price": "frontier", "model": "gpt-5", "base_url": dead_url(),
         "api_key_env": "OPENAI_API_KEY"},
        {"name": "odd", "backend": "openai", "price": "mini", "model": "m", "base_url": dead_url(),
         "api_key_env": "SOME_OTHER_KEY"}]}))
    assert main(["--config", str(profile), "--timeout-s", "1"]) == 2
    err = capsys.readouterr().err
    assert "expert odd: SOME_OTHER_KEY is not a key the pods get" in err
    assert "expert 'hosted': its key variable OPENAI_API_KEY is not set" in err


def test_a_simulated_profile_passes_without_a_network():
    preflight("configs/smol.yaml", timeout_s=1.0)
    preflight("configs/tiny.yaml", timeout_s=1.0)


def test_the_paper_profile_names_only_keys_the_pods_get():
    cat = load_profile("configs/paper.yaml").catalog()
    assert unmounted_keys(cat) == []
    assert {e.api_key_env for e in cat.experts if e.api_key_env} <= set(EXPERT_KEYS)


def test_an_openai_expert_without_its_key_refuses_to_build(monkeypatch):
    monkeypatch.delenv(KEY_VAR, raising=False)
    cfg = CatalogExpert(name="x", backend="openai", price=Price(input=1, output=1), model="m",
                        base_url="http://127.0.0.1:9/v1", api_key_env=KEY_VAR)
    with pytest.raises(ExpertError, match=f"'x': its key variable {KEY_VAR} is not set"):
        OpenAIExpert(cfg)
    monkeypatch.setenv(KEY_VAR, "k")
    assert OpenAIExpert(cfg).name == "x"
    assert OpenAIExpert(cfg.model_copy(update={"api_key_env": None})).name == "x"  # a keyless local server
