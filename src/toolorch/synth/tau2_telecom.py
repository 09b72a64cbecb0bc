"""tau2-bench telecom as a toolorch environment: TOML DB -> SQLite tables, the agent's tools -> db tools.

    PYTHONPATH=src python -c "from pathlib import Path; from toolorch.synth.tau2 import import_tau2; \
        r = import_tau2('telecom', Path('/tmp/telecom')); print(len(r.tasks), len(r.unconverted))"

Tables: plans, devices, customers (address flattened; payment methods, line ids and bill ids
kept as JSON text), lines, bills, bill_line_items. A bill's `total_due` is not stored: it is
the sum of its line items (the importer checks that the two agree), so a charge is one row.

Telecom is a two-sided world: the customer also acts, on a simulated phone (tau2's user
tools: toggle airplane mode, reseat the SIM, ...), and most tasks are graded on that phone's
state. A toolorch task has no user device, so only tau2's 114 base tasks (the 2285 `full`
ones are combinations of them) whose gold actions are all the agent's, and whose world the
DB alone sets up, become tasks; the rest are listed in `unconverted` with the reason
(`unconvertible`): gold actions by the user, or agent-side initialization actions (e.g. a
line suspended for an overdue bill) that the task's DB would need before it starts.

Writes: suspend_line, resume_line, enable_roaming, disable_roaming and send_payment_request
are one statement each, as in tau2; refuel_data becomes refuel_data (the line) +
add_refuel_charge (a line item on the customer's draft bill; tau2 would open a new bill with
a random id when there is none, which we reject). tau2's clock is fixed at 2025-02-25.
"""
from __future__ import annotations

import json
from typing import Any

from toolorch.core.records import ToolCall, ToolSpec
from toolorch.synth.tau2 import I, N, Run, S, call, tool, transfer_tool

TODAY = "2025-02-25"
TASK_SPLIT = "base"
POLICY_FILE = "main_policy.md"
_ADDRESS = ("street", "city", "state", "zip_code")
_COLUMNS = {
    "plans": ("plan_id", "name", "data_limit_gb", "price_per_month", "data_refueling_price_per_gb"),
    "devices": ("device_id", "device_type", "model", "imei", "is_esim_capable", "activated", "activation_date",
                "last_esim_transfer_date"),
    "customers": ("customer_id", "full_name", "date_of_birth", "email", "phone_number", *_ADDRESS, "account_status",
                  "payment_methods", "line_ids", "bill_ids", "created_at", "last_extension_date",
                  "goodwill_credit_used_this_year"),
    "lines": ("line_id", "phone_number", "status", "plan_id", "device_id", "data_used_gb", "data_refueling_gb",
              "roaming_enabled", "contract_end_date", "last_plan_change_date", "last_sim_replacement_date",
              "suspension_start_date"),
    "bills": ("bill_id", "customer_id", "period_start", "period_end", "issue_date", "due_date", "status"),
}
_JSON_COLUMNS = ("payment_methods", "line_ids", "bill_ids")

DDL = [f"CREATE TABLE {table} ({cols[0]} TEXT PRIMARY KEY, {', '.join(cols[1:])})" for table, cols in _COLUMNS.items()]
DDL.append("CREATE TABLE bill_line_items (bill_id TEXT NOT NULL REFERENCES bills(bill_id), position INTEGER NOT NULL, "
           "description TEXT NOT NULL, amount REAL NOT NULL, date TEXT NOT NULL, item_type TEXT NOT NULL, "
           "PRIMARY KEY (bill_id, position))")


def unconvertible(raw: dict[str, Any]) -> str | None:
    """Why a telecom task cannot be a toolorch task, or None."""
    actions = (raw.get("evaluation_criteria") or {}).get("actions") or []
    user = sorted({a["name"] for a in actions if a.get("requestor") == "user"})
    if user:
        return f"needs the customer's device actions {user} (tau2 user tools; no toolorch tool acts on a phone)"
    setup = [a["func_name"] for a in (raw.get("initial_state") or {}).get("initialization_actions") or []
             if a.get("env_type") == "assistant"]
    if setup:
        return f"needs a per-task initial DB state (agent-side initialization {setup}); one world serves all tasks"
    return None


# ---- TOML DB -> rows ------------------------------------------------------------------------

def flatten(db: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """tau2's telecom DB (its TOML / model_dump(mode="json")) -> rows per table."""
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in (*_COLUMNS, "bill_line_items")}
    for table, cols in _COLUMNS.items():
        for record in db[table]:
            flat = {**record, **(record.get("address") or {})}
            rows[table].append({c: _cell(c, flat.get(c)) for c in cols})
    for bill in db["bills"]:
        items = bill.get("line_items") or []
        if abs(sum(i["amount"] for i in items) - bill["total_due"]) > 1e-6:
            raise ValueError(f"bill {bill['bill_id']}: total_due {bill['total_due']} is not the sum of its items")
        rows["bill_line_items"] += [{"bill_id": bill["bill_id"], "position": i, **item} for i, item in enumerate(items)]
    return rows


def _cell(column: str, value: Any) -> Any:
    if column in _JSON_COLUMNS:
        return json.dumps(value or [])
    return int(value) if isinstance(value, bool) else value


# ---- tools ----------------------------------------------------------------------------------

def _json(table: str, alias: str) -> str:
    """json_object over a table's columns (JSON-text columns embedded as JSON)."""
    parts = []
    for c in _COLUMNS[table]:
        value = f"json({alias}.{c})" if c in _JSON_COLUMNS else f"{alias}.{c}"
        parts.append(f"'{c}', {value}")
    return "json_object(" + ", ".join(parts) + ")"


_BILL_JSON = ("json_object(" + ", ".join(f"'{c}', b.{c}" for c in _COLUMNS["bills"][:-1])
              + ", 'total_due', (SELECT COALESCE(SUM(amount), 0) FROM bill_line_items i WHERE i.bill_id = b.bill_id)"
              ", 'line_items', json((SELECT json_group_array(json_object('description', i.description, 'amount', "
              "i.amount, 'date', i.date, 'item_type', i.item_type)) FROM (SELECT * FROM bill_line_items "
              "WHERE bill_id = b.bill_id ORDER BY position) i)), 'status', b.status)")
_OWNS = "EXISTS (SELECT 1 FROM json_each(c.line_ids) j WHERE j.value = :line_id)"
_LINE_OF = f"line_id = :line_id AND EXISTS (SELECT 1 FROM customers c WHERE c.customer_id = :customer_id AND {_OWNS})"


def read_tools() -> list[ToolSpec]:
    return [
        tool("get_customer_by_phone", "Find a customer by their contact phone number or one of their lines' numbers.",
             f"""SELECT {_json('customers', 'c')} AS customer FROM customers c WHERE c.phone_number = :phone_number
             OR EXISTS (SELECT 1 FROM lines l JOIN json_each(c.line_ids) j ON j.value = l.line_id
               WHERE l.phone_number = :phone_number) ORDER BY c.rowid LIMIT 1""", {"phone_number": S}),
        tool("get_customer_by_id", "Get a customer by id.",
             f"SELECT {_json('customers', 'c')} AS customer FROM customers c WHERE c.customer_id = :customer_id",
             {"customer_id": S}),
        tool("get_customer_by_name", "Find customers by full name (case-insensitive) and date of birth (YYYY-MM-DD).",
             f"""SELECT json_group_array(json(customer)) AS customers FROM (SELECT {_json('customers', 'c')}
             AS customer FROM customers c WHERE lower(c.full_name) = lower(:full_name) AND c.date_of_birth = :dob
             ORDER BY c.rowid)""",
             {"full_name": S, "dob": S}),
        tool("get_details_by_id", "Details of a customer (C...), line (L...), device (D...), bill (B...) or plan (P...).",
             f"""SELECT {_json('lines', 'x')} AS details FROM lines x WHERE x.line_id = :id
             UNION ALL SELECT {_json('devices', 'x')} FROM devices x WHERE x.device_id = :id
             UNION ALL SELECT {_BILL_JSON} FROM bills b WHERE b.bill_id = :id
             UNION ALL SELECT {_json('customers', 'x')} FROM customers x WHERE x.customer_id = :id
             UNION ALL SELECT {_json('plans', 'x')} FROM plans x WHERE x.plan_id = :id""", {"id": S}),
        tool("get_bills_for_customer", "A customer's bills, newest issue date first, at most `limit`.",
             f"""SELECT json_group_array(json(bill)) AS bills FROM (SELECT {_BILL_JSON} AS bill FROM bills b
             JOIN customers c ON c.customer_id = :customer_id
             AND EXISTS (SELECT 1 FROM json_each(c.bill_ids) j WHERE j.value = b.bill_id)
             ORDER BY b.issue_date DESC LIMIT :limit)""", {"customer_id": S, "limit": I}),
        tool("get_data_usage", f"A line's data used, refuelled and limit this billing cycle (today is {TODAY}).",
             f"""SELECT json_object('line_id', l.line_id, 'data_used_gb', l.data_used_gb, 'data_limit_gb',
               p.data_limit_gb, 'data_refueling_gb', l.data_refueling_gb, 'cycle_end_date',
               date('{TODAY}', 'start of month', '+1 month', '-1 day')) AS usage
             FROM lines l JOIN plans p ON p.plan_id = l.plan_id WHERE l.{_LINE_OF}""",
             {"customer_id": S, "line_id": S}),
        transfer_tool(),
    ]


def write_tools() -> list[ToolSpec]:
    line = {"customer_id": S, "line_id": S}
    return [
        tool("suspend_line", f"Suspend an active line (from today, {TODAY}).", f"""
             UPDATE lines SET status = 'Suspended', suspension_start_date = '{TODAY}'
             WHERE {_LINE_OF} AND status = 'Active' AND :reason IS NOT NULL RETURNING line_id, status""",
             {**line, "reason": S}),
        tool("resume_line", "Resume a suspended (or pending activation) line.", f"""
             UPDATE lines SET status = 'Active', suspension_start_date = NULL
             WHERE {_LINE_OF} AND status IN ('Suspended', 'Pending Activation') RETURNING line_id, status""", line),
        tool("enable_roaming", "Enable international roaming on a line.",
             f"UPDATE lines SET roaming_enabled = 1 WHERE {_LINE_OF} RETURNING line_id, roaming_enabled", line),
        tool("disable_roaming", "Disable international roaming on a line.",
             f"UPDATE lines SET roaming_enabled = 0 WHERE {_LINE_OF} RETURNING line_id, roaming_enabled", line),
        tool("send_payment_request", "Ask the customer to pay one of their bills (none may already await payment).",
             """UPDATE bills SET status = 'Awaiting Payment' WHERE bill_id = :bill_id AND EXISTS (SELECT 1 FROM
             customers c, json_each(c.bill_ids) j WHERE c.customer_id = :customer_id AND j.value = :bill_id)
             AND NOT EXISTS (SELECT 1 FROM bills o WHERE o.customer_id = :customer_id
               AND o.status = 'Awaiting Payment') RETURNING bill_id, status""", {"customer_id": S, "bill_id": S}),
        tool("refuel_data", "Add data (GB, > 0) to a line for this cycle; then add_refuel_charge bills it.", f"""
             UPDATE lines SET data_refueling_gb = data_refueling_gb + :gb_amount
             WHERE {_LINE_OF} AND :gb_amount > 0 RETURNING line_id, data_refueling_gb""", {**line, "gb_amount": N}),
        tool("add_refuel_charge", "Charge a data refuel (GB x the line's plan price per GB) on the customer's draft "
             "bill.", f"""
             INSERT INTO bill_line_items (bill_id, position, description, amount, date, item_type)
             SELECT b.bill_id, (SELECT COALESCE(MAX(position) + 1, 0) FROM bill_line_items WHERE bill_id = b.bill_id),
               'Data refueling: ' || :gb_amount || ' GB at $' || p.data_refueling_price_per_gb || '/GB',
               :gb_amount * p.data_refueling_price_per_gb, '{TODAY}', 'Charge'
             FROM customers c JOIN json_each(c.bill_ids) j JOIN bills b ON b.bill_id = j.value AND b.status = 'Draft'
             JOIN lines l ON l.{_LINE_OF} JOIN plans p ON p.plan_id = l.plan_id
             WHERE c.customer_id = :customer_id ORDER BY j.key LIMIT 1 RETURNING bill_id, amount""",
             {**line, "gb_amount": N}),
    ]


def tools() -> list[ToolSpec]:
    return read_tools() + write_tools()


# ---- tau2 actions -> our calls ---------------------------------------------------------------

def _refuel(args: dict[str, Any], run: Run) -> list[ToolCall]:
    return [call(run, "refuel_data", args, must_change=True), call(run, "add_refuel_charge", args, must_change=True)]


DIRECT = {"suspend_line", "resume_line", "enable_roaming", "disable_roaming", "send_payment_request"}
WRITES = {"refuel_data": _refuel}
PLANNER_SQL: dict[str, str] = {}
