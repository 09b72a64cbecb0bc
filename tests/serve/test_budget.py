"""Budgets hold under concurrency: worst-case reservations before each call, settled after."""
from __future__ import annotations

import asyncio

import httpx2
import pytest
from gateway_server import GatewayServer, tiny_served

from toolorch.serve.budget import BudgetExceeded, Ledger, RequestBudget
from toolorch.serve.gateway import Settings
from toolorch.serve.keys import ApiKey, Keyring

KEY_BUDGET = 0.01


def test_ledger_reserves_worst_case_and_settles_actual(tmp_path):
    ledger = Ledger({"team": 0.010}, tmp_path / "ledger.sqlite")
    a, b = RequestBudget(1.0), RequestBudget(0.005)
    hold = ledger.reserve(a, "team", 0.006)
    with pytest.raises(BudgetExceeded) as key_short:
        ledger.reserve(b, "team", 0.0041)  # 0.004 left in the key's budget while 0.006 is held
    assert key_short.value.kind == "key"
    with pytest.raises(BudgetExceeded) as cost_short:
        ledger.reserve(b, "team", 0.0055)  # over the request's own max_cost_usd first
    assert cost_short.value.kind == "cost"
    ledger.settle(hold, 0.001)  # the call cost less than its worst case: the rest is free again
    ledger.settle(hold, 0.001)  # settling twice charges once
    assert ledger.key_left("team") == pytest.approx(0.009) and a.spent_usd == pytest.approx(0.001)
    ledger.close()
    again = Ledger({"team": 0.010}, tmp_path / "ledger.sqlite")  # a restart keeps the spend
    assert again.spent["team"] == pytest.approx(0.001)


def test_100_concurrent_requests_never_exceed_the_key_budget(tmp_path):
    keys = Keyring([ApiKey(name="team", key="secret-team-key", budget_usd=KEY_BUDGET)])
    # Experts sleep 1% of their declared latency (~60 ms for mini): all 100 are in flight together.
    settings = Settings(served=tiny_served(), orchestrators=[("default", "only:mini")],
                        simulated_latency_scale=0.01, ledger_path=tmp_path / "ledger.sqlite")
    with GatewayServer(settings, keys) as gw:
        async def one(client: httpx2.AsyncClient, i: int) -> httpx2.Response:
            return await client.post("/chat/completions", json={
                "model": "toolorch", "messages": [{"role": "user", "content": f"Question {i}: what is {i}+1?"}]})

        async def burst() -> list[httpx2.Response]:
            headers = {"Authorization": "Bearer secret-team-key"}
            async with httpx2.AsyncClient(base_url=gw.url, headers=headers, timeout=60) as client:
                return await asyncio.gather(*(one(client, i) for i in range(100)))

        responses = asyncio.run(burst())
        ledger = gw.gateway.ledger
        charged = sum(r.json()["toolorch"]["cost_usd"] for r in responses if r.status_code == 200)
        statuses = [r.status_code for r in responses]
        spent, reserved = ledger.spent["team"], ledger.reserved["team"]
    assert spent <= KEY_BUDGET + 1e-12 and charged == pytest.approx(spent)
    assert reserved == pytest.approx(0.0, abs=1e-12)  # every reservation settled
    assert statuses.count(200) >= 5  # a mini round trip costs ~$0.0007: some fit...
    assert set(statuses) <= {200, 429} and 429 in statuses  # ...and the rest are refused up front
    for r in responses:
        if r.status_code == 429:
            assert r.json()["error"]["code"] == "budget_exceeded" and r.headers["retry-after"]
        else:
            assert r.json()["choices"][0]["finish_reason"] in ("stop", "budget_exhausted")
