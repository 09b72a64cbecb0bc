"""One price catalog feeds the prompt's price table, the cost accounting and the toolbox."""
from __future__ import annotations

import pytest

from toolorch.core.catalog import ExpertConfig, Price
from toolorch.core.config import Config, load_config
from toolorch.core.records import Preference, Task, ToolCall
from toolorch.runtime.episode import Runtime, initial_messages
from toolorch.runtime.policies import AskToolPolicy
from toolorch.runtime.tools import Toolbox


def test_every_profile_builds_its_catalog():
    catalog = load_config("configs/tiny.yaml").catalog()
    assert catalog.names() == ["frontier", "mini", "qwen-32b"]
    assert catalog.expert("frontier").price == Price(input=1.25, output=10.0)
    assert [e.name for e in catalog.by_price()] == ["qwen-32b", "mini", "frontier"]


def test_an_unknown_price_row_is_named():
    cfg = Config(experts=[ExpertConfig(name="oracle9", price="no-such-row")])
    with pytest.raises(ValueError, match=r"experts\.oracle9\.price: no price 'no-such-row'"):
        cfg.catalog()


def test_prompt_and_accounting_read_the_same_price(sim_config, library_env, author_task):
    repriced = sim_config.model_copy(update={"prices": {**sim_config.prices, "mini": Price(input=3.0, output=7.0)}})
    runtime = Runtime.from_config(repriced)
    with library_env.session() as session:
        toolbox = runtime.toolbox(session, with_code=False)
        system = initial_messages(author_task, toolbox)[0]["content"]
        traj = runtime.run(author_task, AskToolPolicy("ask_mini"), toolbox)
    assert "ask_mini(question: string): Ask the mini model. Price $3/M input, $7/M output tokens." in system
    expert_step = traj.turns[0].observation.usage
    assert expert_step.cost_usd == pytest.approx((expert_step.tokens_in * 3.0 + expert_step.tokens_out * 7.0) / 1e6)
    policy_steps = sum(t.policy_usage.cost_usd for t in traj.turns)
    assert traj.usage.cost_usd == pytest.approx(expert_step.cost_usd + policy_steps)


def test_a_toolbox_without_a_world_still_consults_experts(sim_config):
    catalog = sim_config.catalog()
    toolbox = Toolbox(catalog, None, with_code=False)
    task = Task(id="q1", env="", question="What is 2 + 2?", answer="4", preference=Preference())
    assert {s.name for s in toolbox.specs} == {"ask_frontier", "ask_mini", "answer"}
    reply = toolbox.call(ToolCall(name="ask_frontier", arguments={}), task)
    assert not reply.error and reply.content == "Answer: 4"
    missing = toolbox.call(ToolCall(name="book_author_id", arguments={"title": "x"}), task)
    assert missing.error and "unknown tool 'book_author_id'" in missing.content


def test_a_hosted_expert_declares_its_latency_prior(sim_config, library_env):
    hosted = ExpertConfig(name="remote", backend="openai", price="mini", base_url="http://127.0.0.1:9/v1",
                          model="m", latency_s=12.5)
    catalog = sim_config.model_copy(update={"experts": [*sim_config.experts, hosted]}).catalog()
    with library_env.session() as session:
        specs = {s.name: s for s in Toolbox(catalog, session, experts={"remote": object()}).specs}
    assert specs["ask_remote"].latency_s == 12.5
    assert catalog.expert("frontier").latency_prior_s == 20  # a simulated expert's declared mean
