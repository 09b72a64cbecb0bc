"""tau2-bench telecom import: which tasks convert (and why the rest cannot), and our SQL tools
replaying the agent's actions reach the DB state tau2's own tool code reaches."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tau2_reference import (
    check_replay,
    reference_tools,
    require_tau2,
    state_diff,
    tau2_state,
)

from toolorch.core.records import ToolCall
from toolorch.runtime.env.world import Environment
from toolorch.synth import tau2, tau2_telecom


@pytest.fixture(scope="module", autouse=True)
def _tau2_installed() -> None:
    require_tau2("telecom")


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tau2.Tau2Import:
    return tau2.import_tau2("telecom", tmp_path_factory.mktemp("tau2_telecom"))


@pytest.fixture(scope="module")
def env(imported: tau2.Tau2Import) -> Environment:
    return imported.env


@pytest.fixture(scope="module")
def raw_db() -> dict[str, Any]:
    return tau2.load_db("telecom")


def agent_replay_diff(env: Environment, raw_db: dict[str, Any], actions: list[dict[str, Any]]) -> list[str]:
    calls, _ = tau2._convert_actions(env, tau2_telecom, actions)
    return state_diff(tau2.replay(env, calls), tau2_state("telecom", raw_db, actions))


def test_base_tasks_convert_or_say_why(imported: tau2.Tau2Import, raw_db: dict[str, Any]) -> None:
    assert len(imported.tasks) + len(imported.unconverted) == 114  # the base split; `full` combines them
    assert len(imported.tasks) == 5 and sum(t.split == "heldout" for t in imported.tasks) == 3
    device = [w for w in imported.unconverted.values() if "customer's device actions" in w]
    setup = [w for w in imported.unconverted.values() if "per-task initial DB state" in w]
    assert (len(device), len(setup)) == (94, 15) and "toggle_" in device[0] and "suspend_line_for_overdue_bill" in setup[0]
    for task in imported.tasks:  # the SIM is PIN-locked: the agent must hand over, leaving the DB as it was
        assert [c.name for c in task.gold_calls] == ["transfer_to_human_agents"] and task.answer.startswith("state:")
        raw = next(r for r in tau2.load_tasks("telecom") if f"tau2-telecom-{r['id']}" == task.id)
        assert check_replay(imported.env, "telecom", raw_db, raw) == []


def test_import_keeps_every_record(env: Environment, raw_db: dict[str, Any]) -> None:
    with env.session() as s:
        count = {t: s.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tau2_telecom._COLUMNS}
    assert count == {t: len(raw_db[t]) for t in tau2_telecom._COLUMNS}
    assert state_diff(tau2.replay(env, []), tau2_state("telecom", raw_db, [])) == []


def test_read_tools_answer_like_tau2(env: Environment, raw_db: dict[str, Any]) -> None:
    ref = reference_tools("telecom", raw_db)
    with env.session() as s:
        def read(name: str, **arguments: Any) -> Any:
            return json.loads(s.call(env.tool(name), ToolCall(name=name, arguments=arguments)))

        for table, key in (("lines", "line_id"), ("devices", "device_id"), ("plans", "plan_id"),
                           ("customers", "customer_id"), ("bills", "bill_id")):
            for record in raw_db[table]:
                want = ref.get_details_by_id(record[key]).model_dump(mode="json")
                ours = read("get_details_by_id", id=record[key])
                want.update(want.pop("address", None) or {})
                assert {k: ours[k] for k in want} == {k: (int(v) if isinstance(v, bool) else v)
                                                      for k, v in want.items()}, record[key]
        usage = read("get_data_usage", customer_id="C1001", line_id="L1002")
        assert usage == json.loads(json.dumps(ref.get_data_usage("C1001", "L1002"), default=str))
        assert [b["bill_id"] for b in read("get_bills_for_customer", customer_id="C1001", limit=2)] == [
            b.bill_id for b in ref.get_bills_for_customer("C1001", 2)]
        assert read("get_customer_by_phone", phone_number="555-123-2003")["customer_id"] == \
            ref.get_customer_by_phone("555-123-2003").customer_id


def test_agent_writes_replay_to_tau2_state(env: Environment, raw_db: dict[str, Any]) -> None:
    """Every agent write tool (and a rejected call: suspending a suspended line) against tau2's tools."""
    line = {"customer_id": "C1001", "line_id": "L1002"}
    actions = [{"name": "enable_roaming", "arguments": line},
               {"name": "refuel_data", "arguments": {**line, "gb_amount": 2.0}},
               {"name": "suspend_line", "arguments": {**line, "reason": "travel"}},
               {"name": "suspend_line", "arguments": {**line, "reason": "again"}},
               {"name": "resume_line", "arguments": {"customer_id": "C1001", "line_id": "L1003"}},
               {"name": "send_payment_request", "arguments": {"customer_id": "C1001", "bill_id": "B1002"}},
               {"name": "disable_roaming", "arguments": {"customer_id": "C1002", "line_id": "L1004"}}]
    assert agent_replay_diff(env, raw_db, actions) == []
    # sharp: the refuel's bill line item is part of the state compared
    calls, _ = tau2._convert_actions(env, tau2_telecom, actions)
    assert state_diff(tau2.replay(env, [c for c in calls if c.name != "add_refuel_charge"]),
                      tau2_state("telecom", raw_db, actions)) != []


def test_agent_side_gold_actions_replay_to_tau2_state(env: Environment, raw_db: dict[str, Any]) -> None:
    """The agent's gold actions of every base task whose DB needs no per-task setup (most also need
    the customer's device, so they are not tasks here): our tools reach tau2's agent-side DB state."""
    checked = 0
    for raw in tau2.load_tasks("telecom"):
        setup = [a for a in raw["initial_state"]["initialization_actions"] or [] if a["env_type"] == "assistant"]
        agent = [a for a in raw["evaluation_criteria"]["actions"] or [] if a.get("requestor") == "assistant"]
        if setup or not agent:
            continue
        assert agent_replay_diff(env, raw_db, agent) == [], raw["id"]
        checked += 1
    assert checked >= 5


def test_refuel_without_a_draft_bill_is_rejected(env: Environment) -> None:
    # tau2 opens a bill with a random id there; we cannot reproduce it, so the call changes nothing
    with pytest.raises(tau2.ActionFailed, match="add_refuel_charge"), env.session() as s:
        tau2.convert_action(tau2_telecom, "refuel_data", {"customer_id": "C1002", "line_id": "L1004",
                                                          "gb_amount": 1.0},
                            tau2.session_runner(s, tau2_telecom.tools(), tau2_telecom.PLANNER_SQL))


def test_domain_files(tmp_path: Path) -> None:
    assert any("roaming" in d.text.lower() for d in tau2.policy_documents("telecom"))
    assert tau2.load_db("telecom")["plans"][0]["plan_id"] == "P1001"  # read from db.toml
