"""OpenAI-compatible backends: retries and failures against scripted local HTTP servers (default
tier), and OpenAIExpert / OpenAIPolicy against a real vLLM CPU server (marker `vllm`)."""
from __future__ import annotations

import json
import time
import urllib.request

import pytest
from fake_openai import DROP, FakeOpenAI, hermes_message
from vllm_server import free_port

from toolorch.core.catalog import ExpertConfig
from toolorch.core.config import Config, EpisodeConfig
from toolorch.core.records import ToolCall
from toolorch.runtime.episode import run_episode
from toolorch.runtime.experts import ExpertError, OpenAIExpert
from toolorch.runtime.openai_chat import EndpointError, valid_unicode
from toolorch.runtime.parsing import parse_assistant
from toolorch.runtime.policies import OpenAIPolicy, PlanPolicy, wire_messages
from toolorch.runtime.tools import Toolbox

STOP_REASONS = {"answer", "max_turns", "max_tokens", "budget"}
ANSWER = "<answer>12.5</answer>"


def scripted_endpoint(script: list[int | bytes | object]) -> FakeOpenAI:
    """Answers requests with `script`'s entries in turn (an HTTP status, raw bytes or DROP), then 200s."""
    script = list(script)

    def reply(body: dict) -> int | bytes | object | str:
        out = script.pop(0) if script else 200
        return ANSWER if out == 200 else out

    return FakeOpenAI(reply, usage=(11, 7))


def expert_config(base_url: str, max_retries: int = 2, model: str = "scripted", name: str = "remote") -> ExpertConfig:
    return ExpertConfig(name=name, backend="openai", price="mini", base_url=base_url, model=model,
                        max_retries=max_retries, timeout_s=5, max_tokens=16)


# --- failures and retries (no vLLM needed) -------------------------------------------------------

def test_dead_endpoint_fails_after_bounded_retries():
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    expert = OpenAIExpert(expert_config(url, max_retries=2), backoff_s=0.2)
    start = time.monotonic()
    with pytest.raises(ExpertError, match=r"unreachable after 3 attempts") as err:
        expert.ask("hello")
    elapsed = time.monotonic() - start
    assert url in str(err.value) and "remote" in str(err.value)
    # Both backoff sleeps happened and the call is bounded (the exact attempt count is pinned
    # by the dropped-connection test below, which can count them).
    assert 0.2 + 0.4 <= elapsed < 10.0


@pytest.mark.parametrize("retries", [0, 3])
def test_dropped_connections_are_retried_exactly_max_retries_times(retries):
    with scripted_endpoint([DROP] * 10) as endpoint:
        with pytest.raises(ExpertError, match=rf"after {retries + 1} attempts: APIConnectionError"):
            OpenAIExpert(expert_config(endpoint.url, max_retries=retries), backoff_s=0.01).ask("hi")
        assert len(endpoint.requests) == retries + 1


@pytest.mark.parametrize("status", [500, 503, 429])
def test_transient_errors_are_retried_then_succeed(status):
    with scripted_endpoint([status, status]) as endpoint:
        reply = OpenAIExpert(expert_config(endpoint.url, max_retries=2), backoff_s=0.01).ask("hi")
    assert len(endpoint.requests) == 3
    assert reply.text == "<answer>12.5</answer>"
    assert (reply.tokens_in, reply.tokens_out) == (11, 7)  # the server's usage, not an estimate
    assert reply.latency_s > 0


def test_persistent_server_errors_exhaust_retries():
    with scripted_endpoint([500] * 10) as endpoint:
        with pytest.raises(ExpertError, match=r"after 3 attempts: InternalServerError"):
            OpenAIExpert(expert_config(endpoint.url, max_retries=2), backoff_s=0.01).ask("hi")
    assert len(endpoint.requests) == 3


@pytest.mark.parametrize("status", [400, 401, 404])
def test_client_errors_fail_fast_without_retries(status):
    with scripted_endpoint([status] * 10) as endpoint:
        start = time.monotonic()
        with pytest.raises(ExpertError, match="refused the request") as err:
            OpenAIExpert(expert_config(endpoint.url, max_retries=3), backoff_s=1.0).ask("hi")
        assert time.monotonic() - start < 1.0  # no backoff sleep
    assert len(endpoint.requests) == 1
    assert endpoint.url in str(err.value)


@pytest.mark.parametrize("body", [b"<html>gateway</html>", b'{"object": "list"}', b'{"choices": "x"}',
                                  b'{"choices": []}'])
def test_malformed_success_bodies_are_clear_errors(body):
    with scripted_endpoint([body] * 3) as endpoint:
        with pytest.raises(ExpertError, match="answered with") as err:
            OpenAIExpert(expert_config(endpoint.url, max_retries=2), backoff_s=0.01).ask("hi")
    assert endpoint.url in str(err.value)
    assert len(endpoint.requests) == 1  # the same request would get the same body


def test_toolbox_turns_a_dead_expert_into_an_error_observation(shop_env, shop_task):
    url = f"http://127.0.0.1:{free_port()}/v1"
    cfg = Config(episode=EpisodeConfig(max_turns=3), experts=[expert_config(url, max_retries=1)])
    policy = PlanPolicy([ToolCall(name="ask_remote", arguments={"question": shop_task.question}),
                         ToolCall(name="item_price", arguments={"name": "hammer"})])
    with shop_env.session() as session:
        traj = run_episode(shop_task, policy, Toolbox(cfg.catalog(), session), cfg.episode.limits())
    first, second = traj.turns[0].observation, traj.turns[1].observation
    assert first.error and "unreachable after 2 attempts" in first.content and url in first.content
    assert not second.error and second.content == "12.5"  # the episode went on after the failure
    assert traj.stop_reason == "answer" and traj.correct


PRICE_CALL = '<tool_call>{"name": "item_price", "arguments": {"name": "hammer"}}</tool_call>'
SCHEMAS = [{"type": "function", "function": {"name": "item_price", "description": "Price of an item.",
                                              "parameters": {"type": "object", "properties": {}}}}]


def test_openai_policy_sends_the_chat_as_training_renders_it_and_reports_server_usage():
    messages = [{"role": "system", "content": "sys"}, {"role": "user", "content": "q"},
                {"role": "assistant", "content": PRICE_CALL}, {"role": "tool", "content": "12.5"}]
    with scripted_endpoint([503]) as endpoint:
        policy = OpenAIPolicy(endpoint.url, "scripted", temperature=0.7, max_tokens=9, seed=42)
        gen = policy.generate(messages, SCHEMAS)
    request = endpoint.requests[-1]
    assert len(endpoint.requests) == 2  # one retry after the 503
    assert request["messages"] == messages  # a `tool` turn, the assistant's own text: as in training
    assert request["tools"] == SCHEMAS
    assert (request["model"], request["seed"], request["temperature"], request["max_tokens"]) == \
        ("scripted", 42, 0.7, 9)
    assert (gen.text, gen.tokens_in, gen.tokens_out) == ("<answer>12.5</answer>", 11, 7)


def test_openai_policy_without_tools_sends_no_tools_field():
    with scripted_endpoint([]) as endpoint:
        OpenAIPolicy(endpoint.url, "scripted").generate([{"role": "user", "content": "q"}])
    assert "tools" not in endpoint.requests[-1]


@pytest.mark.parametrize("text", [
    PRICE_CALL,
    "<think>the price tool</think>" + PRICE_CALL,
    PRICE_CALL + '<tool_call>{"name": "low_stock", "arguments": {}}</tool_call>',
    '<tool_call>{"name": "item_price", "arguments": {"name": "h\u00e9"}}</tool_call>',
    '<tool_call>{"name": "item_price", "arguments": "{\\"name\\": \\"saw\\"}"}</tool_call>',  # a JSON string
    '<tool_call>{"name": "item_price", "arguments": [1]}</tool_call>',  # not an object
    '<tool_call>{"name": "item_price"}</tool_call>',  # the parser refuses it: raw text comes back
    "<tool_call>{oops</tool_call>",
    "<answer>12.5</answer>",
])
def test_parsed_tool_calls_come_back_as_the_text_the_model_wrote(text):
    """The hermes parser's reply is turned back into the model's text (it was written canonically)."""
    with FakeOpenAI(lambda body: hermes_message(text)) as endpoint:
        gen = OpenAIPolicy(endpoint.url, "scripted").generate([{"role": "user", "content": "q"}], SCHEMAS)
    assert gen.text == text
    assert parse_assistant(gen.text) == parse_assistant(text)


def test_a_call_the_model_spaced_differently_comes_back_canonical_with_the_same_call():
    text = '<tool_call> {"name":"item_price","arguments":{"name":"saw"}} </tool_call> trailing words'
    with FakeOpenAI(lambda body: hermes_message(text)) as endpoint:
        gen = OpenAIPolicy(endpoint.url, "scripted").generate([{"role": "user", "content": "q"}], SCHEMAS)
    assert gen.text == '<tool_call>{"name": "item_price", "arguments": {"name": "saw"}}</tool_call>'
    assert parse_assistant(gen.text) == parse_assistant(text)


def test_openai_policy_spec(monkeypatch):
    monkeypatch.setenv("TOOLORCH_POLICY_API_KEY", "k-1")
    policy = OpenAIPolicy.from_spec("openai:http://127.0.0.1:8000/v1#grpo", max_tokens=48)
    assert (policy.name, str(policy.client.base_url), policy.client.api_key, policy.max_tokens) == \
        ("openai:grpo", "http://127.0.0.1:8000/v1/", "k-1", 48)
    assert OpenAIPolicy.from_spec("openai:http://h/v1").model == "orchestrator"
    with pytest.raises(ValueError, match=r"openai:<http\(s\) base URL>#<model>"):
        OpenAIPolicy.from_spec("openai:127.0.0.1:8000/v1#grpo")


def test_openai_policy_dead_endpoint_raises_endpoint_error():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(EndpointError, match=r"unreachable after 2 attempts") as err:
        OpenAIPolicy(url, "m", max_retries=1).generate([{"role": "user", "content": "q"}])
    assert url in str(err.value)


# --- a real vLLM CPU server -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def template_length(tokenizer, messages) -> int:
    return len(tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"])


def raw_chat(server, payload: dict) -> dict:
    request = urllib.request.Request(f"{server.base_url}/chat/completions", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as resp:
        return json.load(resp)


@pytest.mark.vllm
def test_vllm_serves_the_tiny_model_with_our_chat_template(vllm_server, tokenizer):
    assert vllm_server.models() == ["tiny"]
    messages = [{"role": "system", "content": "You are an orchestrator."}, {"role": "user", "content": "hi"}]
    body = raw_chat(vllm_server, {"model": "tiny", "messages": messages, "max_tokens": 8, "temperature": 0})
    assert body["usage"]["prompt_tokens"] == template_length(tokenizer, messages)
    assert 0 < body["usage"]["completion_tokens"] <= 8


@pytest.mark.vllm
def test_openai_expert_answers_from_vllm(vllm_server, tokenizer):
    expert = OpenAIExpert(expert_config(vllm_server.base_url, model=vllm_server.model))
    prompt = "How much does a hammer cost?"
    reply = expert.ask(prompt)
    usage = raw_chat(vllm_server, {"model": "tiny", "messages": [{"role": "user", "content": prompt}],
                                   "max_tokens": 16, "temperature": 0.0})["usage"]
    assert isinstance(reply.text, str)
    assert reply.tokens_in == usage["prompt_tokens"] == template_length(tokenizer, [{"role": "user",
                                                                                    "content": prompt}])
    assert reply.tokens_out == usage["completion_tokens"] > 0
    assert reply.latency_s > 0


@pytest.mark.vllm
def test_openai_expert_tool_is_accounted_by_the_toolbox(vllm_server, shop_env, shop_task):
    cfg = Config(experts=[expert_config(vllm_server.base_url, model=vllm_server.model, name="tiny")])
    with shop_env.session() as session:
        obs = Toolbox(cfg.catalog(), session).call(ToolCall(name="ask_tiny", arguments={"question": "hi"}), shop_task)
    assert not obs.error
    assert obs.usage.tokens_in > 0 and 0 < obs.usage.tokens_out <= 16
    assert obs.usage.cost_usd == pytest.approx(cfg.price("mini").cost(obs.usage.tokens_in, obs.usage.tokens_out))


@pytest.mark.vllm
def test_openai_policy_episode_survives_random_output(vllm_server, tokenizer, shop_env, shop_task, short_episodes):
    policy = OpenAIPolicy(vllm_server.base_url, vllm_server.model, temperature=1.0, max_tokens=24, seed=0)
    with shop_env.session() as session:
        traj = run_episode(shop_task, policy, Toolbox(short_episodes.catalog(), session, experts={}), short_episodes.episode.limits())
    assert traj.stop_reason in STOP_REASONS
    answered = traj.stop_reason == "answer"
    for turn in traj.turns[:-1] if answered else traj.turns:
        assert turn.observation is not None and turn.observation.content
    assistant_at = [i for i, m in enumerate(traj.messages) if m["role"] == "assistant"]
    assert len(assistant_at) == len(traj.turns)
    for turn, at in zip(traj.turns, assistant_at):  # the server counted exactly the chat it was sent
        assert turn.policy_usage.tokens_in == template_length(tokenizer, wire_messages(traj.messages[:at]))
        assert 0 < turn.policy_usage.tokens_out <= 24
    assert traj.usage.tokens_out == sum(t.policy_usage.tokens_out for t in traj.turns)


@pytest.mark.vllm
def test_openai_policy_seeded_sampling_is_reproducible(vllm_server):
    messages = [{"role": "user", "content": "Which items are low on stock?"}]

    def sample(seed: int) -> str:
        return OpenAIPolicy(vllm_server.base_url, vllm_server.model, temperature=1.0, max_tokens=24,
                            seed=seed).generate(messages).text

    first = sample(5)
    assert sample(5) == first
    assert sample(6) != first


# --- text that is not valid Unicode -----------------------------------------------------------------

def test_unpaired_surrogates_in_model_text_are_replaced():
    assert valid_unicode("a\ud800b\udfffc") == "a\ufffdb\ufffdc"
    assert valid_unicode("\ud83d\ude00 ok") == "\U0001F600 ok"  # a pair of halves is the character it encodes
    assert valid_unicode("plain é 😀") == "plain é 😀"


def test_policy_and_expert_replies_with_a_lone_surrogate_are_valid_text():
    # json.dumps writes "\ud800" as an escape: valid JSON whose string no UTF-8 encoder accepts
    with FakeOpenAI(lambda body: "<answer>12.5 \ud800</answer>") as endpoint:
        gen = OpenAIPolicy(endpoint.url, "scripted").generate([{"role": "user", "content": "q"}])
        reply = OpenAIExpert(expert_config(endpoint.url)).ask("q")
    assert gen.text == reply.text == "<answer>12.5 \ufffd</answer>"


def test_a_request_holding_a_lone_surrogate_is_not_blamed_on_the_endpoint():
    with scripted_endpoint([]) as endpoint:
        with pytest.raises(EndpointError) as err:
            OpenAIPolicy(endpoint.url, "scripted").generate([{"role": "user", "content": "q \ud800"}])
    message = str(err.value)
    assert "not JSON" not in message and "answered" not in message
    assert "cannot be encoded as UTF-8" in message and "'\\ud800'" in message and endpoint.url in message
    assert endpoint.requests == []  # nothing was sent


def test_run_episode_survives_model_text_with_a_lone_surrogate(shop_env, shop_task, tmp_path):
    from typer.testing import CliRunner

    from toolorch.cli import app
    from toolorch.core.jsonl import write_jsonl

    write_jsonl(tmp_path / "tasks.jsonl", [shop_task])
    call = '<tool_call>{"name": "item_price", "arguments": {"name": "hammer"}}</tool_call>'

    def reply(body: dict) -> str:
        first = not any(m["role"] == "assistant" for m in body["messages"])
        return f"thinking \ud800 {call}" if first else "<answer>12.5 \udc00</answer>"

    with FakeOpenAI(reply) as endpoint:
        args = ["run-episode", "--env", str(shop_env.db_path.parent), "--tasks", str(tmp_path / "tasks.jsonl"),
                "--policy", f"openai:{endpoint.url}#scripted"]
        as_json = CliRunner().invoke(app, [*args, "--json"])
        printed = CliRunner().invoke(app, args)
    assert as_json.exit_code == 0, as_json.output
    traj = json.loads(as_json.stdout)  # the trajectory is stdout; log lines go to stderr
    assert [t["text"] for t in traj["turns"]] == [f"thinking \ufffd {call}", "<answer>12.5 \ufffd</answer>"]
    assert traj["turns"][0]["observation"]["content"] == "12.5" and traj["stop_reason"] == "answer"
    assert printed.exit_code == 0, printed.output
    assert "thinking \ufffd" in printed.output
