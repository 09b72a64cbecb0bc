"""tau2-bench retail import: our SQL tools replaying gold actions reach the state tau2's own tool code reaches."""
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
from toolorch.synth import tau2

# One task per kind of write action, plus gold actions tau2 itself rejects, reads only, no action.
FAST = {"20": "modify 4 items (last-item pricing)", "40": "modify payment", "0": "exchange", "5": "return",
        "66": "cancel", "22": "order + user address", "12": "return to a non-original method (rejected)",
        "105": "exchange a gift card cannot cover (rejected)", "25": "reads only", "24": "no action"}


@pytest.fixture(scope="module", autouse=True)
def _tau2_installed() -> None:
    require_tau2("retail")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Environment:
    return tau2.build_env("retail", tmp_path_factory.mktemp("tau2_retail"))


@pytest.fixture(scope="module")
def raw_db() -> dict[str, Any]:
    return tau2.load_db("retail")


@pytest.fixture(scope="module")
def raw_tasks() -> dict[str, dict[str, Any]]:
    return {t["id"]: t for t in tau2.load_tasks("retail")}


def read(session: Any, env: Environment, tool: str, **arguments: str) -> Any:
    return json.loads(session.call(env.tool(tool), ToolCall(name=tool, arguments=arguments)))


def test_import_keeps_every_record(env: Environment, raw_db: dict[str, Any]) -> None:
    with env.session() as s:
        count = {t: s.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in (
            "products", "variants", "users", "orders", "order_items")}
    assert count == {"products": 50, "variants": sum(len(p["variants"]) for p in raw_db["products"].values()),
                     "users": 500, "orders": 1000,
                     "order_items": sum(len(o["items"]) for o in raw_db["orders"].values())}
    assert any("Cancel" in d.title or "cancel" in d.text for d in env.docs)


def test_untouched_import_equals_tau2_initial_state(env: Environment, raw_db: dict[str, Any]) -> None:
    assert state_diff(tau2.replay(env, []), tau2_state("retail", raw_db, [])) == []


def test_read_tools_answer_like_tau2(env: Environment, raw_db: dict[str, Any]) -> None:
    """Every field of a sample of users, orders and products, read through our SQL tools,
    against tau2's own read tools on its own DB (not through our `flatten`)."""
    ref = reference_tools("retail", raw_db)
    with env.session() as s:
        for uid in list(raw_db["users"])[:40]:
            ours, want = read(s, env, "get_user_details", user_id=uid), ref.get_user_details(uid).model_dump()
            ours["payment_methods"] = {k: {f: v for f, v in m.items() if v is not None}
                                       for k, m in ours["payment_methods"].items()}
            assert ours == want, uid
            u = raw_db["users"][uid]
            found = [s.call(env.tool(t), ToolCall(name=t, arguments=a)) for t, a in (
                ("find_user_id_by_email", {"email": u["email"].upper()}),
                ("find_user_id_by_name_zip", {"first_name": u["name"]["first_name"].lower(),
                                              "last_name": u["name"]["last_name"], "zip": u["address"]["zip"]}))]
            assert found == [uid, uid]
        for oid in list(raw_db["orders"])[:80]:
            assert read(s, env, "get_order_details", order_id=oid) == ref.get_order_details(oid).model_dump(), oid
        for pid in raw_db["products"]:
            assert read(s, env, "get_product_details", product_id=pid) == ref.get_product_details(
                pid).model_dump(), pid
        assert read(s, env, "list_all_product_types") == json.loads(ref.list_all_product_types())


@pytest.mark.parametrize("task_id", sorted(FAST, key=int))
def test_gold_actions_replay_to_tau2_state(task_id: str, env: Environment, raw_db: dict[str, Any],
                                           raw_tasks: dict[str, dict[str, Any]]) -> None:
    assert check_replay(env, "retail", raw_db, raw_tasks[task_id]) == []


def test_quirks_and_rejections_are_exercised(env: Environment, raw_tasks: dict[str, dict[str, Any]]) -> None:
    # task 20 modifies 4 items to different variants: tau2 prices them all at the last one
    names = [c.name for c in tau2.convert_task(env, "retail", raw_tasks["20"]).gold_calls]
    assert names.count("replace_order_item") == 4 and names.count("reprice_order_item") >= 1
    # task 12's return to a non-original payment method is rejected by tau2: no return call
    calls = tau2.convert_task(env, "retail", raw_tasks["12"]).gold_calls
    assert not any(c.name in {"add_return_item", "request_return"} for c in calls)
    assert any(c.name == "transfer_to_human_agents" for c in calls)


def test_a_wrong_call_changes_the_state_tau2_expects(env: Environment, raw_db: dict[str, Any],
                                                     raw_tasks: dict[str, dict[str, Any]]) -> None:
    # The comparison is sharp: dropping the last-item repricing of a modification is caught.
    raw = raw_tasks["20"]
    task = tau2.convert_task(env, "retail", raw)
    calls = [c for c in task.gold_calls if c.name != "reprice_order_item"]
    want = tau2_state("retail", raw_db, raw["evaluation_criteria"]["actions"])
    assert state_diff(tau2.replay(env, calls), want) != [] and state_diff(tau2.replay(env, task.gold_calls),
                                                                          want) == []


def test_task_fields(env: Environment, raw_tasks: dict[str, dict[str, Any]]) -> None:
    cancel = tau2.convert_task(env, "retail", raw_tasks["66"], split="heldout")
    assert [c.name for c in cancel.gold_calls][-1] == "cancel_order"
    assert cancel.answer.startswith("state:") and cancel.category == "multi_hop" and cancel.split == "heldout"
    assert cancel.env == "tau2_retail" and cancel.template == "tau2/retail/66"  # each scenario its own template
    info = raw_tasks["43"]["evaluation_criteria"]["communicate_info"]
    task = tau2.convert_task(env, "retail", raw_tasks["43"])
    assert task.answer_type == "list" and task.answer == ", ".join(info)


@pytest.mark.slow
def test_every_retail_task_replays_exactly(tmp_path: Path, raw_db: dict[str, Any]) -> None:
    result = tau2.import_tau2("retail", tmp_path)
    assert result.unconverted == {} and len(result.tasks) == 114
    assert sum(t.split == "heldout" for t in result.tasks) == 40
    mismatched = {}
    for raw in tau2.load_tasks("retail"):
        diff = check_replay(result.env, "retail", raw_db, raw)
        if diff:
            mismatched[raw["id"]] = diff
    assert mismatched == {}
