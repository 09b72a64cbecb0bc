"""The `helm test` pod (helm/templates/tests/pod-test-roundtrip.yaml): its rendered command runs
here, unchanged, against a real local HTTP server that speaks the OpenAI chat completions shape
(tests/fake_openai.py) in place of the gateway, and passes only when an answer and a
consistent `usage` come back."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from chart import PREFIX, one, render
from fake_openai import FakeOpenAI

QUESTION = "What is 2 + 3? Reply with the number."


def roundtrip_pod(values: dict | None = None) -> dict:
    return one(render(values), "Pod", f"{PREFIX}-test-roundtrip")


def run_pod_command(pod: dict, gateway_root: str, secrets: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The pod's container command with its env; GATEWAY_URL points here, secretKeyRefs from `secrets`."""
    container = pod["spec"]["containers"][0]
    env = {"PATH": os.environ["PATH"]}
    for var in container["env"]:
        env[var["name"]] = var["value"] if "value" in var else (secrets or {})[var["valueFrom"]["secretKeyRef"]["key"]]
    env["GATEWAY_URL"] = gateway_root
    command = [sys.executable if container["command"][0] == "python3" else container["command"][0]] + container["command"][1:]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def test_pod_is_a_helm_test_hook_against_the_gateway_service():
    pod = roundtrip_pod()
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["restartPolicy"] == "Never"
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["GATEWAY_URL"] == f"http://{PREFIX}-gateway:8080" and env["QUESTION"] == QUESTION


def test_round_trip_passes_with_an_answer_and_usage():
    with FakeOpenAI(lambda body: "5", usage=(120, 7), models=("default", "canary")) as fake:
        result = run_pod_command(roundtrip_pod(), fake.url.removesuffix("/v1"))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["answer"] == "5" and report["model"] == "default"
    assert report["usage"] == {"prompt_tokens": 120, "completion_tokens": 7, "total_tokens": 127}
    assert fake.requests == [{"model": "default", "messages": [{"role": "user", "content": QUESTION}]}]


def test_round_trip_sends_the_key_from_the_secret_and_never_prints_it():
    pod = roundtrip_pod({"test": {"apiKey": {"secretName": "toolorch-gateway-keys", "secretKey": "api-key"}}})
    with FakeOpenAI(lambda body: "5") as fake:
        result = run_pod_command(pod, fake.url.removesuffix("/v1"), secrets={"api-key": "tk-test-1234567890"})
    assert result.returncode == 0, result.stderr
    assert fake.headers[0]["Authorization"] == "Bearer tk-test-1234567890"
    assert "tk-test-1234567890" not in result.stdout + result.stderr


@pytest.mark.parametrize("reply, expected", [
    (b'{"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": "5"}}]}', "usage lacks"),
    (b'{"choices": [{"message": {"role": "assistant", "content": ""}}], "usage": {}}', "no answer text"),
    (b'{"choices": [{"message": {"content": "5"}}], "usage": {"prompt_tokens": 3, "completion_tokens": 2, '
     b'"total_tokens": 9}}', "does not add up"),
    (b"<html>oops</html>", "not JSON"),
    (503, "HTTP 503"),
])
def test_round_trip_fails_clearly_on_a_bad_reply(reply, expected):
    with FakeOpenAI(lambda body: reply) as fake:
        result = run_pod_command(roundtrip_pod(), fake.url.removesuffix("/v1"))
    assert result.returncode == 1 and expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
