"""Training scalars: means over rollout records, tool mix, and cost per kind of user."""
from __future__ import annotations

import pytest

from toolorch.runtime.rewards import TERMS
from toolorch.train.scalars import rollout_scalars


def _record(user: str, cost: float, correct: bool, tools: list[str]) -> dict:
    terms = {k: 0.0 for k in TERMS} | {"outcome": float(correct), "total": float(correct)}
    return {"terms": terms, "correct": correct, "cost_usd": cost, "latency_s": 1.0, "turns": len(tools),
            "tools": tools, "user": user}


def test_scalars_split_cost_by_user_and_share_tool_calls():
    out = rollout_scalars([
        _record("accuracy_first", 0.006, True, ["answer"]),
        _record("accuracy_first", 0.004, False, ["search", "answer"]),
        _record("cost_averse+deny", 0.0003, True, ["answer"]),
    ])
    assert out["cost_usd_by_user/accuracy_first"] == pytest.approx(0.005)
    assert out["cost_usd_by_user/cost_averse+deny"] == pytest.approx(0.0003)
    assert out["tool_mix/answer"] == pytest.approx(0.75) and out["tool_mix/search"] == pytest.approx(0.25)
    assert out["accuracy"] == pytest.approx(2 / 3) and out["reward/total"] == pytest.approx(2 / 3)
    assert rollout_scalars([]) == {}
