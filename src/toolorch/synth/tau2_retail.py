"""tau2-bench retail as a toolorch environment: JSON DB -> SQLite tables, tau2 tools -> db tools.

    PYTHONPATH=src python -c "from pathlib import Path; from toolorch.synth.tau2 import import_tau2; \
        print(len(import_tau2('retail', Path('/tmp/retail')).tasks))"

Tables (nested records flattened; options, tracking ids and fulfilled item ids stay JSON text):
    products, variants, users, payment_methods, orders, order_items, order_fulfillments,
    order_payments, exchange_items (side 'old' / 'new'), return_items.
A user's `orders` list is not stored: it is `orders.user_id` in table order (the importer
checks that the two agree). Amounts are kept to the cent: tau2 leaves float noise in the
payment of an item modification (e.g. 12.340000000000003), which both sides round.

Each tau2 read tool is one SELECT (nested results built with SQLite's JSON functions).
tau2 write tools become the smallest set of one-statement tools that reproduces their
state change (`WRITES`; the two address changes are one tool as they are):
    cancel_pending_order -> refund_order_payments, adjust_gift_card (per gift-card payment), cancel_order
    modify_pending_order_items -> add_order_payment (+ adjust_gift_card), replace_order_item x N
                          (+ reprice_order_item, see below), mark_order_items_modified
    modify_pending_order_payment -> add_order_payment x 2 (+ adjust_gift_card for gift cards)
    exchange_delivered_order_items -> add_exchange_item x N, request_exchange
    return_delivered_order_items -> add_return_item x N, request_return
    calculate -> run_python (the toolbox's code tool)
tau2's quirks are kept so states match: modifying several items prices every one of them
(and copies its options) at the last new item (`reprice_order_item`), a duplicated item id
is matched to the first item still carrying it, and cancelling refunds every history entry.
Gift-card balances carry CHECK (>= 0), which is what rejects an overdrawn gift card.
"""
from __future__ import annotations

import json
from typing import Any

from toolorch.core.records import ToolCall, ToolSpec
from toolorch.synth.tau2 import ActionFailed, I, N, Run, S, call, tool, transfer_tool

_ADDRESS = ("address1", "address2", "city", "country", "state", "zip")
_PENDING_OK = "status LIKE '%pending%'"  # tau2's loose pending check (address and payment changes)

DDL = [
    "CREATE TABLE products (product_id TEXT PRIMARY KEY, name TEXT NOT NULL)",
    "CREATE TABLE variants (item_id TEXT PRIMARY KEY, product_id TEXT NOT NULL REFERENCES products(product_id), "
    "options TEXT NOT NULL, available INTEGER NOT NULL, price REAL NOT NULL)",
    "CREATE TABLE users (user_id TEXT PRIMARY KEY, first_name TEXT NOT NULL, last_name TEXT NOT NULL, "
    + ", ".join(f"{a} TEXT" for a in _ADDRESS) + ", email TEXT NOT NULL)",
    "CREATE TABLE payment_methods (user_id TEXT NOT NULL REFERENCES users(user_id), payment_method_id TEXT NOT NULL, "
    "source TEXT NOT NULL, brand TEXT, last_four TEXT, balance REAL CHECK (balance IS NULL OR balance >= 0), "
    "PRIMARY KEY (user_id, payment_method_id))",
    "CREATE TABLE orders (order_id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(user_id), "
    + ", ".join(f"{a} TEXT" for a in _ADDRESS) + ", status TEXT NOT NULL, cancel_reason TEXT, "
    "exchange_payment_method_id TEXT, exchange_price_difference REAL, return_payment_method_id TEXT)",
    "CREATE TABLE order_items (order_id TEXT NOT NULL REFERENCES orders(order_id), position INTEGER NOT NULL, "
    "name TEXT NOT NULL, product_id TEXT NOT NULL, item_id TEXT NOT NULL, price REAL NOT NULL, "
    "options TEXT NOT NULL, PRIMARY KEY (order_id, position))",
    "CREATE TABLE order_fulfillments (order_id TEXT NOT NULL REFERENCES orders(order_id), position INTEGER NOT NULL, "
    "tracking_ids TEXT NOT NULL, item_ids TEXT NOT NULL, PRIMARY KEY (order_id, position))",
    "CREATE TABLE order_payments (order_id TEXT NOT NULL REFERENCES orders(order_id), position INTEGER NOT NULL, "
    "transaction_type TEXT NOT NULL CHECK (transaction_type IN ('payment', 'refund')), amount REAL NOT NULL, "
    "payment_method_id TEXT NOT NULL, PRIMARY KEY (order_id, position))",
    "CREATE TABLE exchange_items (order_id TEXT NOT NULL REFERENCES orders(order_id), "
    "side TEXT NOT NULL CHECK (side IN ('old', 'new')), item_id TEXT NOT NULL)",
    "CREATE TABLE return_items (order_id TEXT NOT NULL REFERENCES orders(order_id), item_id TEXT NOT NULL)",
]


# ---- JSON DB -> rows ------------------------------------------------------------------------

def flatten(db: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """tau2's retail DB (as its JSON / model_dump) -> rows per table, parents first."""
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in (
        "products", "variants", "users", "payment_methods", "orders", "order_items", "order_fulfillments",
        "order_payments", "exchange_items", "return_items")}
    for p in db["products"].values():
        rows["products"].append({"product_id": p["product_id"], "name": p["name"]})
        rows["variants"] += [{"item_id": v["item_id"], "product_id": p["product_id"], "options": json.dumps(
            v["options"]), "available": int(v["available"]), "price": v["price"]} for v in p["variants"].values()]
    for u in db["users"].values():
        owned = [k for k, o in db["orders"].items() if o["user_id"] == u["user_id"]]
        if u["orders"] != owned:
            raise ValueError(f"user {u['user_id']} lists orders {u['orders']}, but owns {owned} in that order")
        rows["users"].append({"user_id": u["user_id"], **u["name"], **{a: u["address"][a] for a in _ADDRESS},
                              "email": u["email"]})
        rows["payment_methods"] += [{"user_id": u["user_id"], "payment_method_id": pid, "source": m["source"],
                                     "brand": m.get("brand"), "last_four": m.get("last_four"),
                                     "balance": m.get("balance")} for pid, m in u["payment_methods"].items()]
    for o in db["orders"].values():
        _flatten_order(o, rows)
    return rows


def _flatten_order(o: dict[str, Any], rows: dict[str, list[dict[str, Any]]]) -> None:
    oid = o["order_id"]
    diff = o.get("exchange_price_difference")
    rows["orders"].append({"order_id": oid, "user_id": o["user_id"], **{a: o["address"][a] for a in _ADDRESS},
                           "status": o["status"], "cancel_reason": o.get("cancel_reason"),
                           "exchange_payment_method_id": o.get("exchange_payment_method_id"),
                           "exchange_price_difference": None if diff is None else round(diff, 2),
                           "return_payment_method_id": o.get("return_payment_method_id")})
    rows["order_items"] += [{"order_id": oid, "position": i, **{k: it[k] for k in ("name", "product_id", "item_id",
                             "price")}, "options": json.dumps(it["options"])} for i, it in enumerate(o["items"])]
    rows["order_fulfillments"] += [{"order_id": oid, "position": i, "tracking_ids": json.dumps(f["tracking_id"]),
                                    "item_ids": json.dumps(f["item_ids"])} for i, f in enumerate(o["fulfillments"])]
    rows["order_payments"] += [{"order_id": oid, "position": i, "transaction_type": p["transaction_type"],
                                "amount": round(p["amount"], 2), "payment_method_id": p["payment_method_id"]}
                               for i, p in enumerate(o["payment_history"])]
    for side, key in (("old", "exchange_items"), ("new", "exchange_new_items")):
        rows["exchange_items"] += [{"order_id": oid, "side": side, "item_id": i} for i in o.get(key) or []]
    rows["return_items"] += [{"order_id": oid, "item_id": i} for i in o.get("return_items") or []]


# ---- tools ----------------------------------------------------------------------------------

_ADDR_JSON = "json_object(" + ", ".join(f"'{a}', {{t}}.{a}" for a in _ADDRESS) + ")"
_NEXT = "(SELECT COALESCE(MAX(position) + 1, 0) FROM order_payments WHERE order_id = :order_id)"
_ORDER_ITEM = ("EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = :order_id AND i.item_id = :item_id)")


def read_tools() -> list[ToolSpec]:
    return [
        tool("find_user_id_by_email", "Find a user id by email (case-insensitive).",
             "SELECT user_id FROM users WHERE lower(email) = lower(:email) ORDER BY rowid LIMIT 1", {"email": S}),
        tool("find_user_id_by_name_zip", "Find a user id by first name, last name (case-insensitive) and zip code.",
             """SELECT user_id FROM users WHERE lower(first_name) = lower(:first_name)
             AND lower(last_name) = lower(:last_name) AND zip = :zip ORDER BY rowid LIMIT 1""",
             {"first_name": S, "last_name": S, "zip": S}),
        tool("get_user_details", "Get the details of a user: name, address, email, payment methods and order ids.",
             f"""SELECT json_object('user_id', u.user_id, 'name', json_object('first_name', u.first_name,
               'last_name', u.last_name), 'address', {_ADDR_JSON.format(t='u')}, 'email', u.email,
               'payment_methods', json((SELECT json_group_object(m.payment_method_id, json_object('source', m.source,
                  'id', m.payment_method_id, 'brand', m.brand, 'last_four', m.last_four, 'balance', m.balance))
                  FROM (SELECT * FROM payment_methods WHERE user_id = u.user_id ORDER BY rowid) m)),
               'orders', json((SELECT json_group_array(o.order_id) FROM (SELECT order_id FROM orders
                  WHERE user_id = u.user_id ORDER BY rowid) o))) AS user
             FROM users u WHERE u.user_id = :user_id""", {"user_id": S}),
        tool("get_order_details", "Get the status and details of an order (ids start with '#').", f"""
             SELECT json_object('order_id', o.order_id, 'user_id', o.user_id, 'address', {_ADDR_JSON.format(t='o')},
               'items', json((SELECT json_group_array(json_object('name', i.name, 'product_id', i.product_id,
                  'item_id', i.item_id, 'price', i.price, 'options', json(i.options))) FROM (SELECT * FROM
                  order_items WHERE order_id = o.order_id ORDER BY position) i)),
               'status', o.status,
               'fulfillments', json((SELECT json_group_array(json_object('tracking_id', json(f.tracking_ids),
                  'item_ids', json(f.item_ids))) FROM (SELECT * FROM order_fulfillments WHERE order_id = o.order_id
                  ORDER BY position) f)),
               'payment_history', json((SELECT json_group_array(json_object('transaction_type', p.transaction_type,
                  'amount', p.amount, 'payment_method_id', p.payment_method_id)) FROM (SELECT * FROM order_payments
                  WHERE order_id = o.order_id ORDER BY position) p)),
               'cancel_reason', o.cancel_reason,
               'exchange_items', json((SELECT CASE WHEN COUNT(*) > 0 THEN json_group_array(item_id) END FROM (SELECT item_id FROM exchange_items
                  WHERE order_id = o.order_id AND side = 'old' ORDER BY item_id))),
               'exchange_new_items', json((SELECT CASE WHEN COUNT(*) > 0 THEN json_group_array(item_id) END FROM (SELECT item_id FROM exchange_items
                  WHERE order_id = o.order_id AND side = 'new' ORDER BY item_id))),
               'exchange_payment_method_id', o.exchange_payment_method_id,
               'exchange_price_difference', o.exchange_price_difference,
               'return_items', json((SELECT CASE WHEN COUNT(*) > 0 THEN json_group_array(item_id) END FROM (SELECT item_id FROM return_items
                  WHERE order_id = o.order_id ORDER BY item_id))),
               'return_payment_method_id', o.return_payment_method_id) AS "order"
             FROM orders o WHERE o.order_id = :order_id""", {"order_id": S}),
        tool("get_product_details", "Get a product's variants (item id, options, availability, price).", """
             SELECT json_object('name', p.name, 'product_id', p.product_id, 'variants', json((SELECT
               json_group_object(v.item_id, json_object('item_id', v.item_id, 'options', json(v.options),
               'available', json(CASE v.available WHEN 1 THEN 'true' ELSE 'false' END), 'price', v.price))
               FROM (SELECT * FROM variants WHERE product_id = p.product_id ORDER BY rowid) v))) AS product
             FROM products p WHERE p.product_id = :product_id""", {"product_id": S}),
        tool("list_all_product_types", "List every product type: name -> product id, sorted by name.",
             "SELECT json_group_object(name, product_id) AS products FROM (SELECT * FROM products ORDER BY name)"),
        transfer_tool(),
    ]


def _address_props() -> dict[str, Any]:
    return {a: S for a in ("address1", "address2", "city", "state", "country", "zip")}


def write_tools() -> list[ToolSpec]:
    addr_set = ", ".join(f"{a} = :{a}" for a in _ADDRESS)
    return [
        tool("modify_pending_order_address", "Change the shipping address of a pending order.",
             f"UPDATE orders SET {addr_set} WHERE order_id = :order_id AND {_PENDING_OK} RETURNING order_id",
             {"order_id": S, **_address_props()}),
        tool("modify_user_address", "Change a user's default address.",
             f"UPDATE users SET {addr_set} WHERE user_id = :user_id RETURNING user_id", {"user_id": S,
                                                                                      **_address_props()}),
        tool("refund_order_payments", "Append a refund for every entry of a pending order's payment history "
             "(before cancel_order).", f"""
             INSERT INTO order_payments (order_id, position, transaction_type, amount, payment_method_id)
             SELECT p.order_id, p.position + {_NEXT}, 'refund', p.amount, p.payment_method_id FROM order_payments p
             JOIN orders o ON o.order_id = p.order_id AND o.status = 'pending' WHERE p.order_id = :order_id
             ORDER BY p.position RETURNING payment_method_id, amount""", {"order_id": S}),
        tool("cancel_order", "Cancel a pending order with a reason ('no longer needed' or 'ordered by mistake').",
             """UPDATE orders SET status = 'cancelled', cancel_reason = :reason WHERE order_id = :order_id
             AND status = 'pending' AND :reason IN ('no longer needed', 'ordered by mistake')
             RETURNING order_id, status""", {"order_id": S, "reason": {"type": "string", "enum": [
                 "no longer needed", "ordered by mistake"]}}),
        tool("adjust_gift_card", "Add an amount (negative: deduct) to a user's gift card balance, kept to the cent "
             "(fails if it would go below 0).", """UPDATE payment_methods SET balance = ROUND(balance + :amount, 2)
             WHERE user_id = :user_id AND payment_method_id = :payment_method_id AND source = 'gift_card'
             RETURNING balance""", {"user_id": S, "payment_method_id": S, "amount": N}),
        tool("add_order_payment", "Record a payment or refund (a positive amount, to the cent) on an order with one "
             "of its user's payment methods.", f"""
             INSERT INTO order_payments (order_id, position, transaction_type, amount, payment_method_id)
             SELECT o.order_id, {_NEXT}, :transaction_type, ROUND(:amount, 2), m.payment_method_id FROM orders o
             JOIN payment_methods m ON m.user_id = o.user_id AND m.payment_method_id = :payment_method_id
             WHERE o.order_id = :order_id RETURNING position, amount""", {
                 "order_id": S, "transaction_type": {"type": "string", "enum": ["payment", "refund"]}, "amount": N,
                 "payment_method_id": S}),
        tool("replace_order_item", "Replace the item at a position (0-based) of a pending order with another "
             "available variant of the same product, at that variant's price and options.", """
             UPDATE order_items SET item_id = v.item_id, price = v.price, options = v.options FROM variants v
             WHERE order_items.order_id = :order_id AND order_items.position = :position AND v.item_id = :new_item_id
             AND v.product_id = order_items.product_id AND v.available = 1 AND v.item_id != order_items.item_id
             AND (SELECT status FROM orders WHERE order_id = :order_id) = 'pending'
             RETURNING item_id, price""", {"order_id": S, "position": I, "new_item_id": S}),
        tool("reprice_order_item", "Set the price and options of the item at a position (0-based) of an order to "
             "those of a variant (tau2 prices every item of one modification at its last new item).", """
             UPDATE order_items SET price = v.price, options = v.options FROM variants v
             WHERE order_items.order_id = :order_id AND order_items.position = :position AND v.item_id = :item_id
             RETURNING price""", {"order_id": S, "position": I, "item_id": S}),
        tool("mark_order_items_modified", "Mark a pending order as 'pending (item modified)' (after its items "
             "were replaced: it cannot be modified again).", """
             UPDATE orders SET status = 'pending (item modified)' WHERE order_id = :order_id AND status = 'pending'
             RETURNING status""", {"order_id": S}),
        tool("add_exchange_item", "Add one exchange (an item of a delivered order for an available variant of the "
             "same product) to the order's exchange request; then request_exchange.", """
             INSERT INTO exchange_items (order_id, side, item_id)
             SELECT o.order_id, s.side, CASE s.side WHEN 'old' THEN :item_id ELSE :new_item_id END
             FROM orders o JOIN (SELECT 'old' AS side UNION ALL SELECT 'new') s
             WHERE o.order_id = :order_id AND o.status = 'delivered' AND """ + _ORDER_ITEM + """
             AND EXISTS (SELECT 1 FROM variants v JOIN order_items i ON i.order_id = :order_id
               AND i.item_id = :item_id AND i.product_id = v.product_id WHERE v.item_id = :new_item_id
               AND v.available = 1) RETURNING side, item_id""", {"order_id": S, "item_id": S, "new_item_id": S}),
        tool("request_exchange", "Request the exchange of the items added with add_exchange_item; the price "
             "difference (to the cent) is paid or refunded with the given payment method (a gift card must cover "
             "it).", """
             WITH d(diff) AS (SELECT ROUND(
                 (SELECT SUM(v.price) FROM exchange_items e JOIN variants v ON v.item_id = e.item_id
                  WHERE e.order_id = :order_id AND e.side = 'new')
                 - (SELECT SUM((SELECT i.price FROM order_items i WHERE i.order_id = e.order_id
                    AND i.item_id = e.item_id ORDER BY i.position LIMIT 1)) FROM exchange_items e
                    WHERE e.order_id = :order_id AND e.side = 'old'), 2))
             UPDATE orders SET status = 'exchange requested', exchange_payment_method_id = :payment_method_id,
               exchange_price_difference = (SELECT diff FROM d)
             WHERE order_id = :order_id AND status = 'delivered'
             AND EXISTS (SELECT 1 FROM exchange_items WHERE order_id = :order_id)
             AND EXISTS (SELECT 1 FROM payment_methods m, d WHERE m.user_id = orders.user_id
               AND m.payment_method_id = :payment_method_id AND (m.source != 'gift_card' OR m.balance >= d.diff))
             RETURNING status, exchange_price_difference""", {"order_id": S, "payment_method_id": S}),
        tool("add_return_item", "Add an item of a delivered order to its return request; then request_return.",
             f"""INSERT INTO return_items (order_id, item_id) SELECT order_id, :item_id FROM orders
             WHERE order_id = :order_id AND status = 'delivered' AND {_ORDER_ITEM} RETURNING item_id""",
             {"order_id": S, "item_id": S}),
        tool("request_return", "Request the return of the items added with add_return_item, refunded to the "
             "original payment method or a gift card.", """
             UPDATE orders SET status = 'return requested', return_payment_method_id = :payment_method_id
             WHERE order_id = :order_id AND status = 'delivered'
             AND EXISTS (SELECT 1 FROM return_items WHERE order_id = :order_id)
             AND EXISTS (SELECT 1 FROM payment_methods m WHERE m.user_id = orders.user_id
               AND m.payment_method_id = :payment_method_id AND (m.source = 'gift_card' OR m.payment_method_id =
               (SELECT payment_method_id FROM order_payments WHERE order_id = :order_id ORDER BY position LIMIT 1)))
             RETURNING status""", {"order_id": S, "payment_method_id": S}),
    ]


def tools() -> list[ToolSpec]:
    return read_tools() + write_tools()


# ---- tau2 actions -> our calls ---------------------------------------------------------------

def _order(run: Run, order_id: str) -> dict[str, Any]:
    rows = run("_order", {"order_id": order_id})
    if not rows:
        raise ActionFailed(f"order {order_id} not found")
    return rows[0]


def _gift_card(run: Run, user_id: str, payment_method_id: str, amount: float) -> list[ToolCall]:
    source = run("_source", {"user_id": user_id, "payment_method_id": payment_method_id})
    if not source or source[0]["source"] != "gift_card" or amount == 0:
        return []
    return [call(run, "adjust_gift_card", {"user_id": user_id, "payment_method_id": payment_method_id,
                                           "amount": amount}, must_change=True)]


def _cancel(args: dict[str, Any], run: Run) -> list[ToolCall]:
    order = _order(run, args["order_id"])
    calls = [call(run, "refund_order_payments", {"order_id": order["order_id"]}, must_change=True)]
    for p in run("_payments", {"order_id": order["order_id"]})[:order["payments"]]:  # not the refunds just added
        calls += _gift_card(run, order["user_id"], p["payment_method_id"], p["amount"])
    return calls + [call(run, "cancel_order", {"order_id": order["order_id"], "reason": args["reason"]},
                         must_change=True)]


def _modify_items(args: dict[str, Any], run: Run) -> list[ToolCall]:
    order = _order(run, args["order_id"])
    oid, pm = order["order_id"], args["payment_method_id"]
    items = run("_items", {"order_id": oid})
    current = [i["item_id"] for i in items]
    positions, diff, last = [], 0.0, None
    for old_id, new_id in zip(args["item_ids"], args["new_item_ids"], strict=True):
        if old_id not in current:
            raise ActionFailed(f"item {old_id} not in order {oid}")
        pos = current.index(old_id)  # tau2 takes the first item still carrying the id
        variant = run("_variant", {"item_id": new_id})
        if not variant:
            raise ActionFailed(f"no variant {new_id}")
        diff += variant[0]["price"] - items[pos]["price"]
        current[pos], last = new_id, new_id
        positions.append((pos, new_id))
    kind = "payment" if diff > 0 else "refund"
    calls = [call(run, "add_order_payment", {"order_id": oid, "transaction_type": kind, "amount": round(abs(diff), 2),
                                             "payment_method_id": pm}, must_change=True)]
    calls += _gift_card(run, order["user_id"], pm, -round(diff, 2))
    for pos, new_id in positions:
        calls.append(call(run, "replace_order_item", {"order_id": oid, "position": pos, "new_item_id": new_id},
                          must_change=True))
    for pos, new_id in positions:
        if new_id != last:
            calls.append(call(run, "reprice_order_item", {"order_id": oid, "position": pos, "item_id": last},
                              must_change=True))
    return calls + [call(run, "mark_order_items_modified", {"order_id": oid}, must_change=True)]


def _modify_payment(args: dict[str, Any], run: Run) -> list[ToolCall]:
    order = _order(run, args["order_id"])
    oid, new = order["order_id"], args["payment_method_id"]
    first = run("_payments", {"order_id": oid})
    if order["payments"] != 1 or first[0]["transaction_type"] != "payment" or first[0]["payment_method_id"] == new:
        raise ActionFailed(f"order {oid} must have exactly one payment, by another method than {new}")
    old, amount = first[0]["payment_method_id"], first[0]["amount"]
    pay = {"order_id": oid, "amount": amount}
    return [call(run, "add_order_payment", {**pay, "transaction_type": "payment", "payment_method_id": new},
                 must_change=True),
            call(run, "add_order_payment", {**pay, "transaction_type": "refund", "payment_method_id": old},
                 must_change=True),
            *_gift_card(run, order["user_id"], new, -amount), *_gift_card(run, order["user_id"], old, amount)]


def _exchange(args: dict[str, Any], run: Run) -> list[ToolCall]:
    oid = args["order_id"]
    calls = [call(run, "add_exchange_item", {"order_id": oid, "item_id": old, "new_item_id": new}, must_change=True)
             for old, new in zip(args["item_ids"], args["new_item_ids"], strict=True)]
    return calls + [call(run, "request_exchange", {"order_id": oid, "payment_method_id": args["payment_method_id"]},
                         must_change=True)]


def _return(args: dict[str, Any], run: Run) -> list[ToolCall]:
    oid = args["order_id"]
    calls = [call(run, "add_return_item", {"order_id": oid, "item_id": i}, must_change=True) for i in args["item_ids"]]
    return calls + [call(run, "request_return", {"order_id": oid, "payment_method_id": args["payment_method_id"]},
                         must_change=True)]


DIRECT = {"modify_pending_order_address", "modify_user_address"}  # writes that are one of our tools as they are
WRITES = {"cancel_pending_order": _cancel, "modify_pending_order_items": _modify_items,
          "modify_pending_order_payment": _modify_payment, "exchange_delivered_order_items": _exchange,
          "return_delivered_order_items": _return}

# Queries the converter itself uses to read state (not tools the orchestrator sees).
PLANNER_SQL = {
    "_order": "SELECT o.*, (SELECT COUNT(*) FROM order_payments p WHERE p.order_id = o.order_id) AS payments "
              "FROM orders o WHERE o.order_id = :order_id",
    "_payments": "SELECT position, transaction_type, amount, payment_method_id FROM order_payments "
                 "WHERE order_id = :order_id ORDER BY position",
    "_items": "SELECT position, item_id, price FROM order_items WHERE order_id = :order_id ORDER BY position",
    "_variant": "SELECT item_id, price FROM variants WHERE item_id = :item_id",
    "_source": "SELECT source FROM payment_methods WHERE user_id = :user_id AND payment_method_id = :payment_method_id",
}
