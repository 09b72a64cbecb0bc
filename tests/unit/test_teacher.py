"""The scripted pass@k teacher: grounded answers, seeded route sampling, routes that differ in cost."""
import pytest

from toolorch.core.records import Preference, Task, ToolCall
from toolorch.runtime.episode import run_episode
from toolorch.runtime.teacher import (
    ROUTES,
    RoutePolicy,
    ScriptedTeacher,
    TeacherRoutes,
    cheap_expert_odds,
    grounded_answer,
    grounded_in,
)
from toolorch.runtime.tools import Toolbox


def _task(answer, answer_type="string", **kw):
    return Task(id="t", env="minilib", question="q?", answer=answer, answer_type=answer_type, **kw)


def _run(env, task, policy, cfg):
    with env.session() as session:
        return run_episode(task, policy, Toolbox(cfg.catalog(), session, with_code=False), cfg.episode.limits())


@pytest.mark.parametrize("observations,answer,answer_type,expected", [
    (["10"], "1", "number", False),  # '1' is not in '10'
    (['[{"n": 10}, {"n": 1}]'], "1", "number", True),
    (["total: 1,204.50 dollars"], "1204.5", "number", True),
    (['[{"name": "Ada Byron"}]'], "Ada Byron", "string", True),
    (['[{"name": "Ada Byronson"}]'], "Ada Byron", "string", False),
    (["Ada"], "Ada Byron", "string", False),
    (['["Notes", "Engines"]'], "Engines, Notes", "list", True),
    (['["Notes"]'], "Engines, Notes", "list", False),
    (["yes"], "yes", "bool", True),
    (["False"], "no", "bool", True),
    (["0"], "no", "bool", False),  # a count of 0 is not a "no"
    (["the answer is yes, probably"], "yes", "bool", False),  # bools only from a whole observation
    ([], "x", "string", False),
])
def test_grounding_reads_only_what_tools_returned(observations, answer, answer_type, expected):
    assert grounded_in(observations, _task(answer, answer_type)) is expected


def test_ungrounded_answer_is_the_last_observation():
    task = _task("Ada Byron")
    assert grounded_answer(task, ["1", "Answer: Kurt Vonn"]) == "Kurt Vonn"
    assert grounded_answer(task, ['[{"name": "Ada Byron", "id": 1}]']) == "Ada Byron"
    assert grounded_answer(task, []) == "unknown"


def test_gold_route_solves_a_multi_hop_task(library_env, author_task, sim_config):
    traj = _run(library_env, author_task, RoutePolicy(author_task, author_task.gold_calls, "gold"), sim_config)
    assert traj.correct and traj.answer == "Ada Byron" and traj.policy == "teacher:gold"
    assert [t.call.name for t in traj.turns if t.call] == ["book_author_id", "author_name"]


def test_teacher_cannot_leak_an_answer_the_tools_contradict(library_env, author_task, sim_config):
    wrong = author_task.model_copy(update={"answer": "Kurt Vonn"})  # the DB says Ada Byron
    traj = _run(library_env, wrong, RoutePolicy(wrong, wrong.gold_calls, "gold"), sim_config)
    assert traj.answer == "Ada Byron" and not traj.correct


def _routes(teacher, task, n=40, tools=None):
    return [teacher.policy(task, i, tools).route for i in range(n)]


def test_route_sampling_is_seeded_and_covers_every_route(author_task, sim_config):
    a = _routes(ScriptedTeacher(sim_config.catalog(), TeacherRoutes(), seed=0), author_task)
    b = _routes(ScriptedTeacher(sim_config.catalog(), TeacherRoutes(), seed=0), author_task)
    c = _routes(ScriptedTeacher(sim_config.catalog(), TeacherRoutes(), seed=1), author_task)
    assert a == b and a != c
    assert set(a) == set(ROUTES)


def test_routes_differ_in_cost_and_outcome(library_env, author_task, sim_config):
    teacher = ScriptedTeacher(sim_config.catalog(), TeacherRoutes(), seed=0)
    author_task = author_task.model_copy(update={"preference": Preference(accuracy=1, cost=1)})  # either expert
    seen = {}
    for i in range(60):
        policy = teacher.policy(author_task, i)
        key = policy.route if policy.route != "expert" else policy.calls[0].route
        if key not in seen:
            seen[key] = _run(library_env, author_task, policy, sim_config)
    assert set(seen) == {"gold", "extra", "partial", "ask_frontier", "ask_mini"}
    gold, extra = seen["gold"], seen["extra"]
    assert gold.correct and extra.correct and seen["ask_frontier"].correct  # frontier accuracy 1.0 here
    assert not seen["partial"].correct and not seen["ask_mini"].correct  # a skipped hop; mini accuracy 0.0
    assert seen["ask_mini"].answer != author_task.answer  # the expert's wrong answer, not the gold one
    assert gold.usage.cost_usd < extra.usage.cost_usd < seen["ask_frontier"].usage.cost_usd
    assert gold.usage.latency_s < extra.usage.latency_s < seen["ask_frontier"].usage.latency_s
    assert len(extra.turns) == len(gold.turns) + 1


def test_partial_route_skips_hops_and_never_uses_unseen_values(author_task, sim_config):
    teacher = ScriptedTeacher(sim_config.catalog(), TeacherRoutes(gold=0, expert=0, extra=0, partial=1), seed=0)
    three_hops = author_task.model_copy(update={"gold_calls": [
        ToolCall(name="book_author_id", arguments={"title": "Engines"}),
        ToolCall(name="book_author_id", arguments={"title": "Proofs"}),
        ToolCall(name="run_python", arguments={"code": "a = 1\nb = 2\nprint(a + b)"}),  # embeds hop results
    ]})
    cuts = set()
    for i in range(30):
        policy = teacher.policy(three_hops, i)
        assert policy.route == "partial" and policy.calls == three_hops.gold_calls[: len(policy.calls)]
        cuts.add(len(policy.calls))
    assert cuts == {0, 1, 2}  # a prefix of the plan: the code never runs without its inputs
    one_hop = Task(id="c", env="minilib", question="How many copies?", answer="10", answer_type="number",
                   gold_calls=[ToolCall(name="total_copies")])
    assert teacher.policy(one_hop, 0).calls == []  # answers without looking


def test_denied_and_missing_tools_are_never_routed(author_task, sim_config):
    teacher = ScriptedTeacher(sim_config.catalog(), TeacherRoutes(), seed=0)
    no_experts = author_task.model_copy(update={"preference": Preference(deny=["ask_frontier", "ask_mini"])})
    assert "expert" not in _routes(teacher, no_experts)
    policies = [teacher.policy(author_task, i, {"book_author_id", "author_name"}) for i in range(40)]
    assert all(c.name in {"book_author_id", "author_name"} for p in policies for c in p.calls)


def test_a_user_who_forbids_the_frontier_still_gets_an_expert(author_task, sim_config):
    experts_only = ScriptedTeacher(sim_config.catalog(), TeacherRoutes(gold=0, expert=1, extra=0, partial=0), seed=0)
    exacting = author_task.model_copy(update={"preference": Preference(accuracy=1, deny=["ask_frontier"])})
    routes = {experts_only.policy(exacting, i).calls[0].route for i in range(40)}
    assert routes == {"ask_mini"}  # the frontier pick falls back to the permitted expert


def test_all_zero_route_weights_are_rejected(sim_config):
    with pytest.raises(ValueError, match="at least one route"):
        ScriptedTeacher(sim_config.catalog(), TeacherRoutes(gold=0, expert=0, extra=0, partial=0))
    with pytest.raises(ValueError):
        TeacherRoutes(gold=-1)


def test_the_expert_the_teacher_picks_follows_the_preference(author_task, sim_config):
    experts_only = ScriptedTeacher(sim_config.catalog(), TeacherRoutes(gold=0, expert=1, extra=0, partial=0), seed=0)

    def cheap_share(pref):
        task = author_task.model_copy(update={"preference": pref})
        picks = [experts_only.policy(task, i).calls[0].route for i in range(300)]
        return picks.count("ask_mini") / len(picks)

    thrifty, exacting = Preference(accuracy=2, cost=3), Preference(accuracy=1, cost=0)
    assert cheap_expert_odds(thrifty) == pytest.approx(0.7) and cheap_expert_odds(exacting) == 0.15
    assert cheap_expert_odds(Preference(accuracy=1, cost=1)) == 0.5
    assert cheap_expert_odds(Preference(accuracy=0, cost=5, latency=5)) == 0.85  # both choices stay in the data
    assert 0.6 < cheap_share(thrifty) < 0.8 and 0.08 < cheap_share(exacting) < 0.22


def test_every_user_sees_every_expert_demonstrated(author_task, sim_config):
    # with three experts the cheaper side is split between the two cheaper ones: GRPO's groups
    # can only learn that the middle one suits a question if the SFT policy ever names it
    three = sim_config.model_copy(update={"experts": [*sim_config.experts, sim_config.experts[1].model_copy(
        update={"name": "qwen-32b", "price": "qwen-32b"})]})
    experts_only = ScriptedTeacher(three.catalog(), TeacherRoutes(gold=0, expert=1, extra=0, partial=0), seed=0)
    for pref, dear_share in ((Preference(accuracy=1), 0.85), (Preference(accuracy=1, cost=4), 0.15)):
        task = author_task.model_copy(update={"preference": pref})
        picks = [experts_only.policy(task, i).calls[0].route for i in range(600)]
        shares = {m: picks.count(m) / len(picks) for m in ("ask_frontier", "ask_mini", "ask_qwen_32b")}
        assert abs(shares["ask_frontier"] - dear_share) < 0.05
        assert abs(shares["ask_mini"] - shares["ask_qwen_32b"]) < 0.07 and shares["ask_mini"] > 0.04
    denied = author_task.model_copy(update={"preference": Preference(accuracy=1, deny=["ask_frontier"])})
    assert {experts_only.policy(denied, i).calls[0].route for i in range(60)} == {"ask_mini", "ask_qwen_32b"}
