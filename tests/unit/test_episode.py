"""The runner on a real SQLite world: accounting to the cent, errors as observations, limits."""
import json

import pytest

from toolorch.core.catalog import ExpertConfig
from toolorch.core.config import Config
from toolorch.core.records import Preference
from toolorch.runtime.episode import Halt, arun_episode, run_episode
from toolorch.runtime.policies import AskToolPolicy, Generation, PlanPolicy
from toolorch.runtime.tools import Toolbox


class FixedPolicy:
    """Replays given texts with fixed token counts, so accounting is known exactly."""

    def __init__(self, texts, tokens_in=10_000, tokens_out=500):
        self.name = "fixed"
        self.texts = list(texts)
        self.tokens = (tokens_in, tokens_out)

    def generate(self, messages, tools=None):
        step = sum(m["role"] == "assistant" for m in messages)
        return Generation(self.texts[min(step, len(self.texts) - 1)], *self.tokens)


def _run(env, task, policy, cfg):
    with env.session() as session:
        return run_episode(task, policy, Toolbox(cfg.catalog(), session, with_code=False), cfg.episode.limits())


def test_gold_plan_multi_hop(library_env, author_task, sim_config):
    traj = _run(library_env, author_task, PlanPolicy(author_task.gold_calls), sim_config)
    assert traj.stop_reason == "answer" and traj.correct and traj.answer == "Ada Byron"
    assert [t.call.name for t in traj.turns if t.call] == ["book_author_id", "author_name"]
    assert traj.turns[1].call.arguments == {"author_id": "1"}  # "$prev" filled from the observation
    assert traj.messages[0]["role"] == "system" and "book_author_id(title: string)" in traj.messages[0]["content"]
    assert [m["role"] for m in traj.messages[1:]] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]


def test_the_preference_closes_the_users_turn(library_env, author_task, sim_config):
    # the last thing the orchestrator reads before its first call: a small model reads it there
    pref = Preference(accuracy=1, cost=2, deny=["ask_frontier"])
    traj = _run(library_env, author_task.model_copy(update={"preference": pref}),
                PlanPolicy(author_task.gold_calls), sim_config)
    system, user = traj.messages[0]["content"], traj.messages[1]["content"]
    assert user == author_task.question + "\n\n" + pref.render()
    assert user.endswith("Never use: ask_frontier.") and "User preference" not in system
    assert "- ask_frontier(" not in system  # what the preference forbids is still left out of the tool list


def test_cost_of_known_trajectory_to_the_cent(library_env, author_task, tmp_path):
    replay = tmp_path / "replay.jsonl"
    replay.write_text(json.dumps({"task_id": author_task.id, "expert": "frontier", "text": "Answer: Ada Byron",
                                  "tokens_in": 40_000, "tokens_out": 30_000, "latency_s": 12.5}) + "\n")
    cfg = Config(experts=[ExpertConfig(name="frontier", backend="replay", price="frontier",
                                       replay_file=str(replay))])
    calls = ['<tool_call>{"name": "search", "arguments": {"query": "late fees"}}</tool_call>',
             '<tool_call>{"name": "ask_frontier", "arguments": {}}</tool_call>',
             "<answer>Ada Byron</answer>"]
    traj = _run(library_env, author_task, FixedPolicy(calls), cfg)
    # policy: 3 turns x (10k in + 500 out) x $0.2/M = $0.0063
    # search: $0.001 per call; frontier: 40k x $1.25/M + 30k x $10/M = $0.35
    assert traj.correct
    assert round(traj.usage.cost_usd, 6) == pytest.approx(0.0063 + 0.001 + 0.35)
    assert f"{traj.usage.cost_usd:.2f}" == "0.36"
    # latency: policy 3 x 500 tok / 50 tok/s = 30 s; search 1 s; frontier 12.5 s
    assert traj.usage.latency_s == pytest.approx(43.5)
    assert traj.usage.tokens_in == 30_000 + 40_000 and traj.usage.tokens_out == 1_500 + 30_000


@pytest.mark.parametrize("text,needle", [
    ('<tool_call>{"name": "nope", "arguments": {}}</tool_call>', "unknown tool 'nope'"),
    ('<tool_call>{"name": "author_name", "arguments": {"author_id": "x"}}</tool_call>', "must be integer"),
    ('<tool_call>{"name": "author_name", "arguments": {}}</tool_call>', "missing required argument"),
    ('<tool_call>{"name": "author_name", "arguments": {"author_id": 1, "z": 2}}</tool_call>', "unknown argument"),
    ('<tool_call>{"name": "author_name" "arguments"}</tool_call>', "not valid JSON"),
    ('<tool_call>{"name": "search", "arguments": {"query": "!!"}}</tool_call>', "no searchable words"),
])
def test_errors_become_observations(library_env, author_task, sim_config, text, needle):
    traj = _run(library_env, author_task, FixedPolicy([text, "<answer>x</answer>"]), sim_config)
    obs = traj.turns[0].observation
    assert obs.error and needle in obs.content
    assert traj.stop_reason == "answer" and not traj.correct


@pytest.mark.parametrize("text,malformed", [
    ('<tool_call>{"name": "answer", "arguments": {"model": ""}}</tool_call>', True),  # two experts' odds leak here
    ('<tool_call>{"name": "nope", "arguments": {}}</tool_call>', True),
    ('<tool_call>{"name": "author_name", "arguments": {"author_id": "x"}}</tool_call>', True),
    ('<tool_call>{"name": "author_name" "arguments"}</tool_call>', True),
    ('<tool_call>{"name": "author_name", "arguments": {"author_id": 999}}</tool_call>', False),  # fits; finds no rows
    ('<tool_call>{"name": "search", "arguments": {"query": "!!"}}</tool_call>', False),  # fits; nothing to search
])
def test_a_turn_is_malformed_when_its_call_fits_no_offered_tool(library_env, author_task, sim_config, text,
                                                                 malformed):
    traj = _run(library_env, author_task, FixedPolicy([text, "<answer>x</answer>"]), sim_config)
    assert traj.turns[0].malformed is malformed and traj.turns[1].malformed is False
    assert traj.turns[0].observation.error or not malformed  # a malformed call still hears why


def test_forbidden_tool_is_refused(library_env, author_task, sim_config):
    task = author_task.model_copy(update={"preference": Preference(deny=["ask_frontier"])})
    traj = _run(library_env, task, AskToolPolicy("ask_frontier"), sim_config)
    assert "does not allow" in traj.turns[0].observation.content
    assert not traj.turns[0].malformed  # a well-formed call the user forbids: the deny term's business
    assert traj.usage.cost_usd < 0.001  # the frontier model was never called
    assert "- ask_frontier(" not in traj.messages[0]["content"]  # nor listed


def test_tool_exception_becomes_observation(library_env, author_task, sim_config):
    class Broken:
        name = "frontier"

        def ask(self, prompt, task=None):
            raise ZeroDivisionError("boom")

    with library_env.session() as session:
        box = Toolbox(sim_config.catalog(), session, experts={"frontier": Broken()}, with_code=False)
        traj = run_episode(author_task, AskToolPolicy("ask_frontier"), box, sim_config.episode.limits())
    assert "ZeroDivisionError: boom" in traj.turns[0].observation.content


@pytest.mark.parametrize("limit,value,reason", [
    ("max_turns", 3, "max_turns"), ("max_tokens", 1200, "max_tokens"), ("budget_usd", 0.004, "budget"),
])
def test_limits_end_episode(library_env, author_task, sim_config, limit, value, reason):
    cfg = sim_config.model_copy(update={"episode": sim_config.episode.model_copy(update={limit: value})})
    loop = FixedPolicy(['<tool_call>{"name": "total_copies", "arguments": {}}</tool_call>'])
    traj = _run(library_env, author_task, loop, cfg)
    assert traj.stop_reason == reason and not traj.correct and traj.answer is None
    assert all(t.observation.content == "10" for t in traj.turns)


def test_simulated_expert_only_policy(library_env, author_task, sim_config):
    good = _run(library_env, author_task, AskToolPolicy("ask_frontier"), sim_config)
    bad = _run(library_env, author_task, AskToolPolicy("ask_mini"), sim_config)
    assert good.correct and not bad.correct  # accuracy 1.0 vs 0.0 in the fixture's profiles
    assert good.usage.cost_usd > bad.usage.cost_usd


def test_writes_stay_in_the_session(library_env):
    with library_env.session() as s:
        s.conn.execute("UPDATE books SET copies = 0")
        assert s.snapshot()["books"][0]["copies"] == 0
    with library_env.session() as s:
        assert s.snapshot()["books"][0]["copies"] == 3


def test_answer_tool_ends_episode_with_expert_reply(library_env, author_task, sim_config):
    call = '<tool_call>{"name": "answer", "arguments": {"model": "frontier"}}</tool_call>'
    traj = _run(library_env, author_task, FixedPolicy([call, "<answer>never reached</answer>"]), sim_config)
    assert traj.stop_reason == "answer" and traj.answer == "Ada Byron" and traj.correct
    assert len(traj.turns) == 1 and traj.turns[0].observation.final
    assert traj.tool_counts() == {"ask_frontier": 1}  # the route, for preferences and tool mixes
    assert traj.usage.cost_usd > 0.004  # the frontier's reply is paid for


def test_answer_tool_respects_denied_models(library_env, author_task, sim_config):
    task = author_task.model_copy(update={"preference": Preference(deny=["ask_frontier"])})
    call = '<tool_call>{"name": "answer", "arguments": {"model": "frontier"}}</tool_call>'
    traj = _run(library_env, task, FixedPolicy([call, "<answer>x</answer>"]), sim_config)
    assert "does not allow 'ask_frontier'" in traj.turns[0].observation.content
    assert traj.turns[0].observation.usage.cost_usd == 0
    assert "- answer(model: mini)" in traj.messages[0]["content"]  # frontier not offered


def test_the_policy_reads_the_prompts_tools_as_schemas_every_turn(library_env, author_task, sim_config):
    class Recording(FixedPolicy):
        def generate(self, messages, tools=None):
            self.seen.append(tools)
            return super().generate(messages, tools)

    task = author_task.model_copy(update={"preference": Preference(deny=["ask_frontier", "search"])})
    policy = Recording(['<tool_call>{"name": "total_copies", "arguments": {}}</tool_call>', "<answer>x</answer>"])
    policy.seen = []
    traj = _run(library_env, task, policy, sim_config)
    names = [t["function"]["name"] for t in traj.tools]
    assert names == ["book_author_id", "author_name", "books_by_year", "total_copies", "ask_mini", "answer"]
    assert all(f"- {n}(" in traj.messages[0]["content"] for n in names)  # the very tools the prompt lists
    assert traj.tools[-1]["function"]["parameters"]["properties"]["model"]["enum"] == ["mini"]
    assert policy.seen == [traj.tools, traj.tools]  # both turns, the same schemas


def test_answer_tool_rejects_unknown_model(library_env, author_task, sim_config):
    call = '<tool_call>{"name": "answer", "arguments": {"model": "gpt-9"}}</tool_call>'
    traj = _run(library_env, author_task, FixedPolicy([call, "<answer>x</answer>"]), sim_config)
    assert traj.turns[0].observation.error and "must be one of" in traj.turns[0].observation.content
    assert traj.stop_reason == "answer" and traj.answer == "x"


def test_compact_prompt_lists_db_tools_without_descriptions(library_env, author_task, sim_config):
    compact = sim_config.model_copy(update={"episode": sim_config.episode.model_copy(
        update={"describe_db_tools": False})})
    full = _run(library_env, author_task, PlanPolicy(author_task.gold_calls), sim_config).messages[0]["content"]
    short = _run(library_env, author_task, PlanPolicy(author_task.gold_calls), compact).messages[0]["content"]
    assert "- book_author_id(title: string): Author id of a book by title." in full
    assert "- book_author_id(title: string) [~0.5s]" in short and "Author id of a book" not in short
    assert "- search(query: string): Search the library's documents." in short  # not a db tool
    assert len(short) < len(full)


class _Async:
    """The sync policy and toolbox behind the async driver's interfaces, optionally halting."""

    def __init__(self, policy, toolbox, halt_at_call=None):
        self.name, self.policy, self.toolbox = policy.name, policy, toolbox
        self.catalog, self.session, self.specs = toolbox.catalog, toolbox.session, toolbox.specs
        self.halt_at_call, self.calls = halt_at_call, 0

    async def agenerate(self, messages, tools):
        return self.policy.generate(messages, tools)

    async def acall(self, call, task):
        self.calls += 1
        if self.calls == self.halt_at_call:
            return Halt("latency")
        return self.toolbox.call(call, task)


def test_async_driver_runs_the_same_loop(library_env, author_task, sim_config):
    import asyncio

    sync = _run(library_env, author_task, PlanPolicy(author_task.gold_calls), sim_config)
    with library_env.session() as session:
        both = _Async(PlanPolicy(author_task.gold_calls), Toolbox(sim_config.catalog(), session, with_code=False))
        traj = asyncio.run(arun_episode(author_task, both, both, sim_config.episode.limits()))
    assert traj.model_dump() == sync.model_dump()  # every message, turn and digit


def test_driver_halt_ends_episode_with_its_reason(library_env, author_task, sim_config):
    import asyncio

    with library_env.session() as session:
        both = _Async(PlanPolicy(author_task.gold_calls), Toolbox(sim_config.catalog(), session, with_code=False),
                      halt_at_call=2)
        traj = asyncio.run(arun_episode(author_task, both, both, sim_config.episode.limits()))
    assert traj.stop_reason == "latency" and traj.answer is None and not traj.correct
    assert len(traj.turns) == 2 and traj.turns[1].call.name == "author_name" and traj.turns[1].observation is None
    assert traj.usage.cost_usd == pytest.approx(sum(t.policy_usage.cost_usd for t in traj.turns)
                                                + traj.turns[0].observation.usage.cost_usd)
