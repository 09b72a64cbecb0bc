"""Train/serve token parity: an episode served through OpenAIPolicy reaches the server's chat
template as exactly the token ids training reads (chat.tokenize_chat), with the tiny model's
template and with one that renders `tools=`.

Default tier: the server is scripted (FakeOpenAI answering as vLLM's hermes parser does) and
the served tokens are the tokenizer's own apply_chat_template of what the server received,
which is how vLLM renders a request. Marker `vllm`: the trained tiny checkpoint served by the
vLLM CPU build with the deployed flags (scripts/serve-orchestrator.sh): its /tokenize gives
the trained ids, and its episodes through OpenAIPolicy are HFPolicy's, greedy, to the token.
"""
from __future__ import annotations

import json
import urllib.request

import pytest
from chat_templates import TOOLS_TEMPLATE, with_tools_template
from fake_openai import FakeOpenAI, hermes_message
from transformers import AutoTokenizer
from unit.train.world import world_config, world_tasks
from vllm_server import VLLMServer

from toolorch.runtime.chat import prompt_ids, tokenize_chat
from toolorch.runtime.episode import run_episode
from toolorch.runtime.policies import Generation, HFPolicy, OpenAIPolicy, wire_messages
from toolorch.runtime.tools import Toolbox

SCRIPT = [
    '<tool_call>{"name": "item_price", "arguments": {"name": "hammer"}}</tool_call>',
    "<tool_call>{oops</tool_call>",  # the parser returns it raw; the episode records an error
    '<think>check with an expert</think><tool_call>{"name": "ask_frontier", "arguments": '
    '{"question": "How much does a hammer cost?"}}</tool_call>',
    "<answer>12.5</answer>",
]


def step_of(messages: list[dict]) -> int:
    return sum(m["role"] == "assistant" for m in messages)


class Scripted:
    """The turns a trained policy wrote, replayed in process (the training side)."""

    name = "scripted"

    def generate(self, messages, tools=None):
        return Generation(SCRIPT[step_of(messages)], 1, 1)


def episode(policy, env, task, cfg):
    with env.session() as session:
        return run_episode(task, policy, Toolbox(cfg.catalog(), session), cfg.episode.limits())


def served_ids(tokenizer, messages, tools, generation_prompt: bool) -> list[int]:
    """The ids a server renders for a request: the template over exactly what it was sent."""
    return list(tokenizer.apply_chat_template(messages, tools=tools, add_generation_prompt=generation_prompt,
                                              return_dict=True)["input_ids"])


@pytest.fixture(params=["tiny template", "tools template"])
def tokenizer(request, tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    return tok if request.param == "tiny template" else with_tools_template(tok)


def test_a_served_episode_is_the_trained_token_sequence(tokenizer, shop_env, shop_task, sim_config):
    trained = episode(Scripted(), shop_env, shop_task, sim_config)
    with FakeOpenAI(lambda body: hermes_message(SCRIPT[step_of(body["messages"])])) as server:
        served = episode(OpenAIPolicy(server.url, "tiny"), shop_env, shop_task, sim_config)
    assert [t.text for t in served.turns] == SCRIPT and served.messages == trained.messages
    assert served.tools == trained.tools and len(trained.tools) == 7
    assert [bool(t.observation.error) for t in trained.turns[:3]] == [False, True, False]

    ids, _ = tokenize_chat(tokenizer, trained.messages, trained.tools)
    assistant_at = [i for i, m in enumerate(trained.messages) if m["role"] == "assistant"]
    assert len(server.requests) == len(assistant_at) == 4
    for request, at in zip(server.requests, assistant_at):  # every turn's prompt, as the server renders it
        assert request["tools"] == trained.tools
        assert served_ids(tokenizer, request["messages"], request["tools"], True) == \
            prompt_ids(tokenizer, trained.messages[:at], trained.tools)
    whole = server.requests[-1]["messages"] + [{"role": "assistant", "content": SCRIPT[-1]}]
    assert served_ids(tokenizer, whole, trained.tools, False) == ids  # the chat SFT trains on


# --- a real vLLM CPU server, started with scripts/serve-orchestrator.sh (marker `vllm`) ---------

MAX_NEW = 48  # tokens per turn, in process and served alike


@pytest.fixture(scope="module")
def vllm_orchestrator(vllm_python, trained_tiny_dir, tmp_path_factory):
    """The trained tiny checkpoint served as in production, plus request templates for one test."""
    log = tmp_path_factory.mktemp("vllm_parity") / "server.log"
    server = VLLMServer.start(vllm_python, trained_tiny_dir, log, model="orchestrator",
                              extra_args=("--trust-request-chat-template",))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def hf_episodes(trained_tiny_dir, library_env):
    """Each world task run in process by HFPolicy, greedy: the reference trajectories."""
    policy = HFPolicy(trained_tiny_dir, max_new_tokens=MAX_NEW)
    return [episode(policy, library_env, task, world_config()) for task in world_tasks()]


def post(server, path: str, payload: dict) -> dict:
    url = server.base_url.removesuffix("/v1") + path
    request = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as resp:
        return json.load(resp)


def vllm_ids(server, messages, tools, generation_prompt: bool, template: str | None = None) -> list[int]:
    payload = {"model": server.model, "messages": wire_messages(messages), "tools": tools,
               "add_generation_prompt": generation_prompt}
    if template is not None:
        payload["chat_template"] = template
    return post(server, "/tokenize", payload)["tokens"]


@pytest.mark.vllm
@pytest.mark.parametrize("template", [None, TOOLS_TEMPLATE], ids=["checkpoint template", "tools template"])
def test_vllm_tokenizes_a_served_chat_into_the_trained_ids(vllm_orchestrator, trained_tiny_dir, hf_episodes,
                                                           template):
    tok = AutoTokenizer.from_pretrained(trained_tiny_dir)
    if template is not None:
        tok.chat_template = template
    traj = max(hf_episodes, key=lambda t: len(t.turns))
    assert len(traj.turns) >= 3 and traj.tools
    ids, _ = tokenize_chat(tok, traj.messages, traj.tools)
    assert vllm_ids(vllm_orchestrator, traj.messages, traj.tools, False, template) == ids
    for at in [i for i, m in enumerate(traj.messages) if m["role"] == "assistant"][:3]:
        assert vllm_ids(vllm_orchestrator, traj.messages[:at], traj.tools, True, template) == \
            prompt_ids(tok, traj.messages[:at], traj.tools)


@pytest.mark.vllm
def test_vllm_with_the_hermes_parser_plays_the_same_episodes_as_hf_greedy(vllm_orchestrator, hf_episodes,
                                                                          library_env):
    policy = OpenAIPolicy(vllm_orchestrator.base_url, vllm_orchestrator.model, max_tokens=MAX_NEW)
    served = [episode(policy, library_env, task, world_config()) for task in world_tasks()]
    for hf, vllm in zip(hf_episodes, served):
        # Text, tokens, cost, answer: all the same. They could differ only where the parser loses
        # text (a call's spacing, words after it) or vLLM keeps special tokens HF's decode drops;
        # this model writes its calls as it was trained to, canonically.
        assert vllm.model_dump(exclude={"policy"}) == hf.model_dump(exclude={"policy"}), hf.task_id
    observed = [t.observation for traj in served for t in traj.turns if t.observation is not None]
    assert sum(not o.error for o in observed) >= 5 and any(o.error for o in observed)  # calls that ran, and not

    first = served[0].turns[0]
    assert first.call is not None  # and vLLM parsed it: the reply holds tool_calls, not the text
    reply = post(vllm_orchestrator, "/v1/chat/completions", {
        "model": vllm_orchestrator.model, "messages": served[0].messages[:2], "tools": served[0].tools,
        "max_tokens": MAX_NEW, "temperature": 0})["choices"][0]
    assert reply["finish_reason"] == "tool_calls" and not reply["message"]["content"]
    assert [c["function"]["name"] for c in reply["message"]["tool_calls"]] == [first.call.name]
