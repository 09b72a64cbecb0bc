"""The simulated expert server as a real process, called with the official openai SDK."""
from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
from sim_server import SimServer, get_json

from toolorch.core.config import load_config
from toolorch.serve.sim_experts import Faults, simulated_reply

ROOT = Path(__file__).resolve().parents[2]
PROFILES = {e.name: e.simulated for e in load_config(ROOT / "configs/tiny.yaml").experts}
SLOW_SCALE = 0.05  # frontier's ~20 s draw becomes ~1 s
FAULTS = Faults(fail_rate=0.1, fail_status=429, timeout_rate=0.05, hang_s=30.0, seed=7)


def client(server: SimServer, timeout: float = 10.0) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", timeout=timeout, max_retries=0)


def ask(c: openai.OpenAI, model: str, prompt: str):
    return c.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}])


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    with SimServer.start(tmp_path_factory.mktemp("plain") / "sim.log", "--latency-scale", "0") as server:
        yield server


@pytest.fixture(scope="module")
def slow(tmp_path_factory):
    log = tmp_path_factory.mktemp("slow") / "sim.log"
    with SimServer.start(log, "--latency-scale", str(SLOW_SCALE), "--max-inflight", "2") as server:
        yield server


def test_reply_is_labelled_simulated_with_the_declared_usage(plain):
    c = client(plain)
    for name, profile in PROFILES.items():
        prompt = f"How many copies of Dune does the library hold? ({name})"
        reply = ask(c, name, prompt)
        expected = simulated_reply(name, profile, 0, prompt)
        assert reply.model == name
        assert reply.choices[0].message.content.startswith(f"[simulated {name}] ")
        assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (expected.tokens_in, expected.tokens_out)
        assert reply.usage.total_tokens == expected.tokens_in + expected.tokens_out
        assert reply.model_extra["simulated"] == {"latency_s": expected.latency_s, "slept_s": 0.0}
        assert ask(c, name, prompt).usage == reply.usage  # seeded by the prompt: the same draw again


def test_usage_follows_each_declared_profile(plain):
    c = client(plain)
    for name, profile in PROFILES.items():
        tokens = [ask(c, name, f"question {i}").usage.completion_tokens for i in range(30)]
        assert abs(statistics.mean(tokens) - profile.tokens_out_mean) < 0.15 * profile.tokens_out_mean
        assert len(set(tokens)) > 20  # a draw per prompt, not a constant


def test_max_tokens_caps_the_completion(plain):
    reply = client(plain).chat.completions.create(
        model="frontier", messages=[{"role": "user", "content": "q"}], max_tokens=7)
    assert reply.usage.completion_tokens == 7 and reply.choices[0].finish_reason == "length"


def test_request_id_is_echoed(plain):
    raw = client(plain).chat.completions.with_raw_response.create(
        model="mini", messages=[{"role": "user", "content": "q"}], extra_headers={"X-Request-Id": "abc-1"})
    assert raw.headers["x-request-id"] == "abc-1"
    with pytest.raises(openai.NotFoundError) as e:  # errors carry it too
        client(plain).chat.completions.create(model="nope", messages=[{"role": "user", "content": "q"}],
                                              extra_headers={"X-Request-Id": "abc-2"})
    assert e.value.response.headers["x-request-id"] == "abc-2"


def test_models_and_health_list_the_profiles_experts(plain):
    assert [m.id for m in client(plain).models.list()] == list(PROFILES)
    health = get_json(f"{plain.root_url}/health")
    assert health["simulated"] is True and health["experts"] == sorted(PROFILES)


def test_unknown_model_and_bad_bodies_get_openai_shaped_errors(plain):
    c = client(plain)
    with pytest.raises(openai.NotFoundError) as e:
        ask(c, "gpt-nine", "q")
    assert e.value.status_code == 404
    assert (e.value.code, e.value.param, e.value.type) == ("model_not_found", "model", "invalid_request_error")
    assert "frontier" in e.value.message  # names what exists
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="mini", messages=[])
    assert e.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="mini", messages=[{"role": "user", "content": "q"}], stream=True)
    assert e.value.param == "stream"


def test_latency_is_slept_times_the_scale(plain, slow):
    prompt = "Which branch holds the most books?"
    declared = simulated_reply("frontier", PROFILES["frontier"], 0, prompt).latency_s
    start = time.monotonic()
    reply = ask(client(slow), "frontier", prompt)
    elapsed = time.monotonic() - start
    want = declared * SLOW_SCALE
    assert reply.model_extra["simulated"]["slept_s"] == pytest.approx(want, abs=1e-3)
    assert want * 0.95 <= elapsed < want + 2.0  # generous: this is not a timing benchmark
    start = time.monotonic()
    ask(client(plain), "frontier", prompt)
    assert time.monotonic() - start < want  # scale 0: no sleep at all


def test_beyond_max_inflight_answers_503_with_retry_after(slow):
    c = client(slow)

    def call(i: int):
        try:
            return ask(c, "frontier", f"slow question {i}")
        except openai.APIStatusError as e:
            return e

    with ThreadPoolExecutor(5) as pool:
        outcomes = list(pool.map(call, range(5)))
    refused = [o for o in outcomes if isinstance(o, openai.APIStatusError)]
    assert len(refused) == 3  # two slots, each held ~1 s: the other three are refused, not queued
    for e in refused:
        assert (e.status_code, e.code, e.response.headers["retry-after"]) == (503, "overloaded", "1")
    assert slow.stats()["peak_inflight"] == 2


def test_fault_rates_over_200_calls_are_the_seeded_ones(tmp_path):
    flags = ["--latency-scale", "0", "--fail-rate", str(FAULTS.fail_rate), "--fail-status", str(FAULTS.fail_status),
             "--timeout-rate", str(FAULTS.timeout_rate), "--hang-s", str(FAULTS.hang_s), "--seed", str(FAULTS.seed)]
    seen = {"ok": 0, "429": 0, "timeout": 0}
    with SimServer.start(tmp_path / "sim.log", *flags) as server:
        c = client(server, timeout=0.5)
        for i in range(200):
            try:
                ask(c, "mini", f"question {i}")
                seen["ok"] += 1
            except openai.RateLimitError as e:
                assert (e.code, e.type) == ("simulated_fault", "rate_limit_error")
                assert e.response.headers["retry-after"] == "1"
                seen["429"] += 1
            except openai.APITimeoutError:
                seen["timeout"] += 1
        stats = server.stats()
    drawn = [FAULTS.for_call(k) for k in range(200)]
    assert seen == {"ok": drawn.count(None), "429": drawn.count("fail"), "timeout": drawn.count("hang")}
    assert 10 <= seen["429"] <= 30 and 3 <= seen["timeout"] <= 18  # ~20 and ~10: the rates, roughly
    assert stats["injected"] == {"429": seen["429"], "hang": seen["timeout"]} and stats["calls"] == 200
