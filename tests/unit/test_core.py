import pytest

from toolorch.core.records import Preference, Task, Usage, is_correct, normalize_answer


def test_usage_adds_up():
    u = Usage(tokens_in=1, tokens_out=2, cost_usd=0.5, latency_s=1.0) + Usage(tokens_in=3, cost_usd=0.25)
    assert u == Usage(tokens_in=4, tokens_out=2, cost_usd=0.75, latency_s=1.0)


@pytest.mark.parametrize("a,b,kind,same", [
    ("42", "42.0", "number", True), ("$1,200", "1200", "number", True), ("3.14159", "3.14", "number", True),
    ("41", "42", "number", False), ("Ada  Byron.", "ada byron", "string", True), ("b, a", "a,b", "list", True),
    ("a, b", "a", "list", False), ("True", "yes", "bool", True), ("no", "yes", "bool", False),
])
def test_normalize_answer(a, b, kind, same):
    assert (normalize_answer(a, kind) == normalize_answer(b, kind)) is same


def test_is_correct_none_is_wrong():
    t = Task(id="t", env="e", question="q", answer="1", answer_type="number")
    assert not is_correct(None, t) and is_correct("1.0", t)


def test_preference_rendering():
    text = Preference(accuracy=1, cost=3, latency=0, deny=["ask_frontier"], prefer=["search"]).render()
    assert "accuracy 25%" in text and "cost 75%" in text and "latency 0%" in text
    assert "Keep the dollar cost low" in text
    assert "Never use: ask_frontier." in text and "Prefer: search." in text
    assert "Only these tools" not in text
    assert "Only these tools may be used: search." in Preference(allow=["search"]).render()
    assert "Getting the answer right matters most." in Preference().render()


def test_preference_permits():
    p = Preference(allow=["a", "b"], deny=["b"])
    assert p.permits("a") and not p.permits("b") and not p.permits("c")
    assert Preference().permits("anything")


def test_preference_rejects_negative_weights():
    with pytest.raises(ValueError):
        Preference(cost=-1)


def test_preference_shares_sum_to_one_and_default_to_accuracy():
    assert Preference(accuracy=1.0, cost=2.0, latency=1.0).shares() == {"accuracy": 0.25, "cost": 0.5, "latency": 0.25}
    assert Preference(accuracy=0.0, cost=0.0, latency=0.0).shares() == {"accuracy": 1.0, "cost": 0.0, "latency": 0.0}
