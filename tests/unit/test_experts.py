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
