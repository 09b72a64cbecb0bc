import json
from collections import Counter

import pytest

from toolorch.core.catalog import ExpertConfig, SimulatedProfile
from toolorch.core.records import Task, normalize_answer
from toolorch.core.seeds import stable_seed
from toolorch.runtime.experts import (
    ExpertError,
    ReplayExpert,
    SimulatedExpert,
    decoy_answer,
)


def _tasks(n, category="lookup", difficulty=1, answer="Ada Byron", kind="string"):
    return [Task(id=f"t{i}", env="e", question="q", answer=answer, answer_type=kind, category=category,
                 difficulty=difficulty) for i in range(n)]


def test_simulated_accuracy_follows_profile():
    cfg = ExpertConfig(name="x", price="mini", simulated=SimulatedProfile(
        accuracy={"lookup": 0.8, "reasoning": 0.2}, difficulty_decay=0.1))
    expert = SimulatedExpert(cfg, seed=0)

    def rate(tasks):
        return sum(expert.ask("q", t).text == f"Answer: {t.answer}" for t in tasks) / len(tasks)

    assert abs(rate(_tasks(400)) - 0.8) < 0.06
    assert abs(rate(_tasks(400, "reasoning")) - 0.2) < 0.06
    assert abs(rate(_tasks(400, difficulty=4)) - 0.5) < 0.07


def test_simulated_is_deterministic_and_seeded():
    cfg = ExpertConfig(name="x", price="mini")
    t = _tasks(1)[0]
    assert SimulatedExpert(cfg, 0).ask("q", t) == SimulatedExpert(cfg, 0).ask("q", t)
    replies = Counter(SimulatedExpert(cfg, s).ask("q", t).tokens_out for s in range(20))
    assert len(replies) > 5
    with pytest.raises(ExpertError, match="needs the task"):
        SimulatedExpert(cfg).ask("q")


def test_a_per_task_expert_gives_one_answer_however_it_is_asked():
    """The eval's experts: two policies that send a task to one expert in different words meet one
    outcome (a paired margin is their routes' difference); the longer prompt still costs more tokens.
    The training experts draw per prompt, so the same two calls can meet different outcomes."""
    cfg = ExpertConfig(name="x", price="mini", simulated=SimulatedProfile(accuracy={"lookup": 0.5}))
    short, long = "q", "Please answer this question about the library, with care: q"
    tasks = _tasks(200)
    for seed in range(3):
        paired = SimulatedExpert(cfg, seed, per_task=True)
        for t in tasks:
            a, b = paired.ask(short, t), paired.ask(long, t)
            assert (a.text, a.tokens_out, a.latency_s) == (b.text, b.tokens_out, b.latency_s)
            assert b.tokens_in > a.tokens_in
        assert paired.redrawn(7).per_task  # a fresh draw keeps the keying
    per_prompt = SimulatedExpert(cfg, 0)
    split = sum((per_prompt.ask(short, t).text == f"Answer: {t.answer}") != (per_prompt.ask(long, t).text == f"Answer: {t.answer}")
                for t in tasks)
    assert 60 < split < 140  # two independent coin flips at 0.5 disagree half the time
    # and the per-task draw is still a draw: across tasks the expert is right about half the time
    right = sum(SimulatedExpert(cfg, 0, per_task=True).ask(short, t).text == f"Answer: {t.answer}" for t in tasks)
    assert 70 < right < 130


def test_one_draw_per_task_runtime_rekeys_only_simulated_experts(tmp_path):
    from toolorch.core.config import Config
    from toolorch.runtime.episode import Runtime

    f = tmp_path / "r.jsonl"
    f.write_text(json.dumps({"task_id": "t0", "expert": "rec", "text": "hi", "tokens_in": 3, "tokens_out": 4,
                             "latency_s": 1.5}) + "\n")
    experts = [ExpertConfig(name="sim", price="mini"),
               ExpertConfig(name="rec", price="mini", backend="replay", replay_file=str(f))]
    cfg = Config(experts=experts, stages={})
    runtime = Runtime.of(cfg.catalog(), cfg.episode.limits(), seed=3)
    paired = runtime.one_draw_per_task()
    assert not runtime.experts["sim"].per_task and paired.experts["sim"].per_task
    assert paired.experts["sim"].seed == runtime.experts["sim"].seed == 3
    assert paired.experts["rec"] is runtime.experts["rec"]


def test_a_redrawn_expert_answers_one_task_anew_with_its_declared_odds():
    cfg = ExpertConfig(name="x", price="mini", simulated=SimulatedProfile(accuracy={"lookup": 0.7}))
    task = _tasks(1)[0]
    fixed = SimulatedExpert(cfg, seed=0)
    assert len({fixed.ask("q", task).text for _ in range(20)}) == 1  # eval: one draw per task

    def right(expert):
        return expert.ask("q", task).text == f"Answer: {task.answer}"

    draws = [fixed.redrawn(k) for k in range(400)]
    assert abs(sum(map(right, draws)) / len(draws) - 0.7) < 0.07
    assert [right(e) for e in draws[:50]] == [right(fixed.redrawn(k)) for k in range(50)]  # keyed, not random
    assert all(e.ask("q", task) == e.ask("q", task) for e in draws[:20])  # within a draw, asked again: the same


@pytest.mark.parametrize("gold,kind", [("42", "number"), ("3.50", "number"), ("Ada Byron", "string"),
                                       ("Ada", "string"), ("yes", "bool"), ("a, b", "list"), ("anna", "string")])
def test_decoys_are_wrong(gold, kind):
    import random
    for s in range(10):
        wrong = decoy_answer(gold, kind, random.Random(s))
        assert normalize_answer(wrong, kind) != normalize_answer(gold, kind)


def test_stable_seed_is_stable():
    assert stable_seed(1, "a") == stable_seed(1, "a") != stable_seed(1, "b")


def test_replay(tmp_path):
    f = tmp_path / "r.jsonl"
    f.write_text(json.dumps({"task_id": "t0", "expert": "x", "text": "hi", "tokens_in": 3, "tokens_out": 4,
                             "latency_s": 1.5}) + "\n")
    e = ReplayExpert(ExpertConfig(name="x", price="mini", backend="replay", replay_file=str(f)))
    assert e.ask("q", _tasks(1)[0]).tokens_out == 4
    with pytest.raises(ExpertError, match="no response for task t1"):
        e.ask("q", _tasks(2)[1])
    f.write_text("{broken\n")
    with pytest.raises(ExpertError, match="r.jsonl:1: bad replay row"):
        ReplayExpert(ExpertConfig(name="x", price="mini", backend="replay", replay_file=str(f)))


def test_a_multiple_choice_decoy_is_another_choice():
    import random

    from toolorch.eval.adapters.judge import ExactMatchJudge
    decoys = {decoy_answer("B", "string", random.Random(s)) for s in range(30)}
    assert decoys <= {"A", "C", "D", "E"} and len(decoys) > 1
    assert not any(ExactMatchJudge().judge("q", "B", d).correct for d in decoys)
