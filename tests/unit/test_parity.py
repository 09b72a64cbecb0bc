"""Train/serve token parity: an episode served through OpenAIPolicy reaches the server's chat
template as exactly the token ids training reads (chat.tokenize_chat), with the tiny model's
template and with one that renders `tools=`.

Default tier: the server is scripted (FakeOpenAI answering as vLLM's hermes parser does) and
the served tokens are the tokenizer's own apply_chat_template of what the server received,
which is how vLLM renders a request. tests/unit/test_vllm_parity.py asks a real vLLM server.
"""
from __future__ import annotations

import pytest
from chat_templates import with_tools_template
from fake_openai import FakeOpenAI, hermes_message
from transformers import AutoTokenizer

from toolorch.runtime.chat import prompt_ids, tokenize_chat
from toolorch.runtime.episode import run_episode
from toolorch.runtime.policies import Generation, OpenAIPolicy
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
