"""HFExpert and HFPolicy on a tiny random-init model: real tokenizer counts, seeded sampling, episodes."""
from __future__ import annotations

import pytest
import torch
from chat_templates import with_tools_template

from toolorch.core.catalog import DEFAULT_PRICES, CatalogExpert
from toolorch.runtime.episode import initial_messages, run_episode
from toolorch.runtime.experts import HFExpert, build_expert
from toolorch.runtime.policies import HFPolicy
from toolorch.runtime.prompts import tool_schemas
from toolorch.runtime.tools import Toolbox

STOP_REASONS = {"answer", "max_turns", "max_tokens", "budget"}


def template_length(tokenizer, messages, tools=None) -> int:
    return len(tokenizer.apply_chat_template(messages, tools=tools, add_generation_prompt=True,
                                             return_dict=True)["input_ids"])


def greedy_new_tokens(model, tokenizer, messages, max_new_tokens: int) -> torch.Tensor:
    ids = torch.tensor([tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                      return_dict=True)["input_ids"]])
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    return out[0, ids.shape[1]:]


@pytest.fixture(scope="module")
def hf_policy(tiny_model_dir) -> HFPolicy:
    return HFPolicy(tiny_model_dir, max_new_tokens=24)


def test_hf_expert_counts_real_tokens(tiny_model_dir):
    cfg = CatalogExpert(name="local", backend="hf", price=DEFAULT_PRICES["mini"], model=str(tiny_model_dir),
                        max_tokens=16)
    expert = build_expert(cfg)
    assert isinstance(expert, HFExpert)
    prompt = "What does a hammer cost?"
    reply = expert.ask(prompt)
    messages = [{"role": "user", "content": prompt}]
    new = greedy_new_tokens(expert.model, expert.tokenizer, messages, 16)
    assert reply.tokens_in == template_length(expert.tokenizer, messages)
    assert reply.tokens_out == len(new) > 0
    assert reply.text == expert.tokenizer.decode(new, skip_special_tokens=True)
    assert reply.latency_s > 0
    assert expert.ask(prompt).text == reply.text  # greedy: same prompt, same answer


def test_hf_expert_rejects_missing_model_dir(tmp_path):
    from toolorch.runtime.experts import ExpertError

    cfg = CatalogExpert(name="local", backend="hf", price=DEFAULT_PRICES["mini"], model=str(tmp_path / "nope"))
    with pytest.raises(ExpertError, match="not found"):
        build_expert(cfg)


def test_hf_policy_counts_real_tokens(hf_policy, shop_env, shop_task, short_episodes):
    with shop_env.session() as session:
        messages = initial_messages(shop_task, Toolbox(short_episodes.catalog(), session, experts={}))
    gen = hf_policy.generate(messages)
    new = greedy_new_tokens(hf_policy.model, hf_policy.tokenizer, messages, 24)
    assert gen.tokens_in == template_length(hf_policy.tokenizer, messages)
    assert gen.tokens_out == len(new) > 0
    assert gen.text == hf_policy.tokenizer.decode(new, skip_special_tokens=True)


def test_hf_policy_reads_the_tools_its_template_renders(tiny_model_dir, hf_policy, shop_env, shop_task,
                                                       short_episodes):
    tok = with_tools_template(hf_policy.tokenizer)
    policy = HFPolicy(tiny_model_dir, max_new_tokens=4, model=hf_policy.model, tokenizer=tok)
    with shop_env.session() as session:
        toolbox = Toolbox(short_episodes.catalog(), session, experts={})
        messages = initial_messages(shop_task, toolbox)
    tools = tool_schemas(toolbox.specs, shop_task.preference)
    gen = policy.generate(messages, tools)
    assert gen.tokens_in == template_length(tok, messages, tools) > template_length(tok, messages) + 100


def test_hf_policy_seeded_sampling_is_reproducible(tiny_model_dir, hf_policy):
    messages = [{"role": "user", "content": "Which items are low on stock?"}]

    def texts(seed: int) -> list[str]:
        policy = HFPolicy(tiny_model_dir, max_new_tokens=24, temperature=1.0, seed=seed,
                          model=hf_policy.model, tokenizer=hf_policy.tokenizer)
        return [policy.generate(messages).text for _ in range(2)]

    first = texts(seed=3)
    assert texts(seed=3) == first
    assert first[0] != first[1]  # each turn draws anew
    assert texts(seed=4) != first


def test_hf_policy_episode_survives_random_output(hf_policy, shop_env, shop_task, short_episodes):
    with shop_env.session() as session:
        toolbox = Toolbox(short_episodes.catalog(), session, experts={})
        traj = run_episode(shop_task, hf_policy, toolbox, short_episodes.episode.limits())
    assert traj.stop_reason in STOP_REASONS
    assert traj.policy == hf_policy.name
    assert 1 <= len(traj.turns) <= short_episodes.episode.max_turns
    assert all(t.policy_usage.tokens_in > 0 and t.policy_usage.tokens_out > 0 for t in traj.turns)
    answered = traj.stop_reason == "answer"
    for turn in traj.turns[:-1] if answered else traj.turns:
        assert turn.observation is not None and turn.observation.content
    assert traj.turns[0].policy_usage.tokens_in == template_length(hf_policy.tokenizer, traj.messages[:2])
    assert traj.usage.tokens_in == sum(t.policy_usage.tokens_in for t in traj.turns)
    assert traj.usage.tokens_out == sum(t.policy_usage.tokens_out for t in traj.turns)
    assert traj.messages[-1]["role"] == ("assistant" if answered else "tool")
