"""Every error the gateway answers has OpenAI's shape, status and a string code; the SDK reads them."""
from __future__ import annotations

import threading
import time

import httpx2
import openai
import pytest
from gateway_server import GatewayServer, tiny_served

from toolorch.serve.errors import upstream_message
from toolorch.serve.gateway import Settings
from toolorch.serve.keys import ApiKey, Keyring, KeysError, load_keyring

KEY = "secret-key-of-team-a"
ASK = {"model": "toolorch", "messages": [{"role": "user", "content": "What is 2+2?"}]}


def assert_openai_error(resp: httpx2.Response, status: int, code: str, param: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    err = body["error"]
    assert err["code"] == code and isinstance(err["message"], str) and err["message"]
    assert err["param"] == param
    return err


@pytest.fixture(scope="module")
def gw():
    keys = Keyring([ApiKey(name="team-a", key=KEY, budget_usd=5.0)])
    # mini sleeps 30% of its declared ~6 s: long enough to hold the only admission slot
    settings = Settings(served=tiny_served(), orchestrators=[("default", "only:mini")], max_inflight=1,
                        simulated_latency_scale=0.3)
    with GatewayServer(settings, keys) as server:
        yield server


def post(gw, body, key=KEY, **kw):
    return httpx2.post(gw.url + "/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"},
                      timeout=30, **kw)


@pytest.mark.parametrize("change,param,code", [
    ({"max_cost_usd": -1}, "max_cost_usd", "invalid_value"),
    ({"max_turns": 0}, "max_turns", "invalid_value"),
    ({"preference": "greedy"}, "preference.profile", "invalid_value"),
    ({"preference": {"deny": ["ask_gpt9"]}}, "preference.deny", "invalid_value"),
    ({"tools": [{"type": "function"}]}, "tools", "unsupported_parameter"),
    ({"messages": [{"role": "user", "content": " "}]}, "messages", "invalid_request"),
])
def test_400_names_the_field(gw, change, param, code):
    err = assert_openai_error(post(gw, {**ASK, **change}), 400, code, param)
    assert err["type"] == "invalid_request_error"


def test_400_on_a_body_that_is_not_json(gw):
    resp = httpx2.post(gw.url + "/chat/completions", content=b"{not json", timeout=10,
                      headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert_openai_error(resp, 400, "invalid_json")


def test_401_unknown_or_missing_key(gw):
    assert assert_openai_error(post(gw, ASK, key="wrong-key-123"), 401, "invalid_api_key")["type"] \
        == "authentication_error"
    assert_openai_error(httpx2.post(gw.url + "/chat/completions", json=ASK, timeout=10), 401, "missing_api_key")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gw.url, api_key="wrong-key-123").chat.completions.create(**ASK)


def test_404_unknown_model_and_route(gw):
    assert_openai_error(post(gw, {**ASK, "model": "gpt-9"}), 404, "model_not_found", "model")
    assert_openai_error(httpx2.get(gw.root + "/v1/nothing", timeout=10), 404, "not_found")
    with pytest.raises(openai.NotFoundError):
        openai.OpenAI(base_url=gw.url, api_key=KEY).chat.completions.create(**{**ASK, "model": "gpt-9"})


def test_429_when_not_even_the_first_call_fits(gw):
    resp = post(gw, {**ASK, "max_cost_usd": 1e-7})
    assert_openai_error(resp, 429, "budget_exceeded", "max_cost_usd")
    assert int(resp.headers["retry-after"]) > 0


def test_503_beyond_max_inflight_with_retry_after(gw):
    slow = threading.Thread(target=post, args=(gw, ASK))
    slow.start()
    deadline = time.monotonic() + 10
    while gw.gateway.inflight < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    resp = post(gw, ASK)
    slow.join()
    assert_openai_error(resp, 503, "overloaded")
    assert resp.headers["retry-after"] == "1"
    metrics = httpx2.get(gw.root + "/metrics").text
    assert 'toolorch_requests_total{code="overloaded",orchestrator="default",status="503"} 1.0' in metrics


@pytest.mark.parametrize("raw,message,code", [
    (b'{"object": "error", "message": "bad", "type": "BadRequestError", "code": 400}', "bad", "400"),  # vLLM
    (b'{"error": "text only"}', "text only", None),  # production-stack
    (b"<html>502 Bad Gateway</html>", "<html>502 Bad Gateway</html>", None),  # a proxy
    (b'{"error": {"message": "slow down", "code": "rate_limit"}}', "slow down", "rate_limit"),
])
def test_upstream_errors_are_normalised(raw, message, code):
    assert upstream_message(raw) == (message, code)


def test_keys_file_errors_never_show_the_secret(tmp_path):
    bad = tmp_path / "keys.yaml"
    bad.write_text("keys:\n  - {name: 'bad name!', key: 'super-secret-value'}\n")
    with pytest.raises(KeysError) as e:
        load_keyring({"TOOLORCH_API_KEYS_FILE": str(bad)})
    assert "keys.0.name" in str(e.value) and "super-secret-value" not in str(e.value)
    assert load_keyring({}).open


@pytest.mark.parametrize("message,status,code", [
    ("http://e/v1 unreachable after 3 attempts: APITimeoutError: Request timed out.", 504, "engine_timeout"),
    ("http://e/v1 unreachable after 3 attempts: APIConnectionError: Connection error.", 503, "engine_unavailable"),
    ("http://e/v1 refused the request: Error code: 400", 502, "engine_error"),
])
def test_engine_failures_map_to_gateway_statuses(message, status, code):
    from toolorch.serve.orchestrators import engine_error

    e = engine_error(message)
    assert (e.status, e.code) == (status, code) and e.body()["error"]["type"] == "server_error"
