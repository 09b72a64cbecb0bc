"""tau2-bench airline as a toolorch environment: JSON DB -> SQLite tables, tau2 tools -> db tools.

Tables (nested records flattened, lists keep a `position` where their order means something):
    airports, flights, flight_dates (status, seats and prices per cabin, times per status),
    users, payment_methods, saved_passengers, reservations, reservation_flights,
    reservation_passengers, reservation_payments.
A user's `reservations` list is not stored: it is `reservations.user_id` (the importer
checks that the two agree), and a reservation's flights are read back in date order.

Each tau2 read tool is one SELECT (nested results built with SQLite's JSON functions).
tau2 write tools run several changes with checks in Python; each becomes the smallest
set of one-statement tools that reproduces its state change (`convert_action`):
    book_reservation   -> create_reservation, add_reservation_flight x F, add_reservation_passenger x P,
                          reserve_seats, then per payment add_reservation_payment (+ deduct_gift_card
                          or use_certificate, by the payment method's source)
    cancel_reservation -> refund_reservation_payments, cancel_reservation
    update_reservation_flights -> remove_reservation_flight (dropped or re-cabined flights),
                          set_reservation_cabin (if changed), add_reservation_flight (new ones),
                          add_reservation_payment + deduct_gift_card (price difference, if any)
    update_reservation_baggages -> update_reservation_baggages, add_reservation_payment
                          + deduct_gift_card (50 per extra non-free bag, if any)
    update_reservation_passengers -> update_reservation_passenger x P
    send_certificate   -> send_certificate
    calculate          -> run_python (the toolbox's code tool)
tau2's own quirks are kept so states match: its clock is fixed at 2024-05-15T15:00:00,
new ids come from fixed lists (HATHAT.., certificate_3221322..), cancelling refunds every
payment but releases no seats, and changing flights charges the difference without
touching seat counts. Balances and seats carry CHECK (>= 0), which is what rejects an
overdrawn gift card or a full flight.
"""
from __future__ import annotations

from typing import Any

from toolorch.core.records import ToolCall, ToolSpec
from toolorch.synth.tau2 import ActionFailed, I, Run, S, call, transfer_tool
from toolorch.synth.tau2 import tool as _tool

NOW = "2024-05-15T15:00:00"
CABINS = ("basic_economy", "economy", "business")
AIRPORTS = [("SFO", "San Francisco"), ("JFK", "New York"), ("LAX", "Los Angeles"), ("ORD", "Chicago"),
            ("DFW", "Dallas"), ("DEN", "Denver"), ("SEA", "Seattle"), ("ATL", "Atlanta"), ("MIA", "Miami"),
            ("BOS", "Boston"), ("PHX", "Phoenix"), ("IAH", "Houston"), ("LAS", "Las Vegas"), ("MCO", "Orlando"),
            ("EWR", "Newark"), ("CLT", "Charlotte"), ("MSP", "Minneapolis"), ("DTW", "Detroit"),
            ("PHL", "Philadelphia"), ("LGA", "LaGuardia")]
_TIMES = ("estimated_departure_time_est", "estimated_arrival_time_est", "actual_departure_time_est",
          "actual_arrival_time_est")

DDL = [
    "CREATE TABLE airports (iata TEXT PRIMARY KEY, city TEXT NOT NULL)",
    "CREATE TABLE flights (flight_number TEXT PRIMARY KEY, origin TEXT NOT NULL, destination TEXT NOT NULL, "
    "scheduled_departure_time_est TEXT NOT NULL, scheduled_arrival_time_est TEXT NOT NULL)",
    "CREATE TABLE flight_dates (flight_number TEXT NOT NULL REFERENCES flights(flight_number), date TEXT NOT NULL, "
    "status TEXT NOT NULL, "
    + ", ".join(f"available_{c} INTEGER CHECK (available_{c} >= 0)" for c in CABINS) + ", "
    + ", ".join(f"price_{c} INTEGER" for c in CABINS) + ", "
    + ", ".join(f"{t} TEXT" for t in _TIMES) + ", PRIMARY KEY (flight_number, date))",
    "CREATE TABLE users (user_id TEXT PRIMARY KEY, first_name TEXT NOT NULL, last_name TEXT NOT NULL, "
    "address1 TEXT, address2 TEXT, city TEXT, country TEXT, state TEXT, zip TEXT, email TEXT, dob TEXT, "
    "membership TEXT NOT NULL)",
    "CREATE TABLE payment_methods (user_id TEXT NOT NULL REFERENCES users(user_id), payment_id TEXT NOT NULL, "
    "source TEXT NOT NULL, brand TEXT, last_four TEXT, amount REAL CHECK (amount IS NULL OR amount >= 0), "
    "PRIMARY KEY (user_id, payment_id))",
    "CREATE TABLE saved_passengers (user_id TEXT NOT NULL REFERENCES users(user_id), position INTEGER NOT NULL, "
    "first_name TEXT NOT NULL, last_name TEXT NOT NULL, dob TEXT NOT NULL, PRIMARY KEY (user_id, position))",
    "CREATE TABLE reservations (reservation_id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(user_id), "
    "origin TEXT NOT NULL, destination TEXT NOT NULL, flight_type TEXT NOT NULL, cabin TEXT NOT NULL, "
    "created_at TEXT NOT NULL, total_baggages INTEGER NOT NULL, nonfree_baggages INTEGER NOT NULL, "
    "insurance TEXT NOT NULL, status TEXT)",
    "CREATE TABLE reservation_flights (reservation_id TEXT NOT NULL REFERENCES reservations(reservation_id), "
    "flight_number TEXT NOT NULL, date TEXT NOT NULL, origin TEXT NOT NULL, destination TEXT NOT NULL, "
    "price INTEGER NOT NULL, PRIMARY KEY (reservation_id, flight_number, date), "
    "FOREIGN KEY (flight_number, date) REFERENCES flight_dates(flight_number, date))",
    "CREATE TABLE reservation_passengers (reservation_id TEXT NOT NULL REFERENCES reservations(reservation_id), "
    "position INTEGER NOT NULL, first_name TEXT NOT NULL, last_name TEXT NOT NULL, dob TEXT NOT NULL, "
    "PRIMARY KEY (reservation_id, position))",
    "CREATE TABLE reservation_payments (reservation_id TEXT NOT NULL REFERENCES reservations(reservation_id), "
    "position INTEGER NOT NULL, payment_id TEXT NOT NULL, amount INTEGER NOT NULL, "
    "PRIMARY KEY (reservation_id, position))",
]


# ---- JSON DB -> rows ------------------------------------------------------------------------

def flatten(db: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """tau2's airline DB (as its JSON / model_dump) -> rows per table, parents first."""
    rows: dict[str, list[dict[str, Any]]] = {
        "airports": [{"iata": i, "city": c} for i, c in AIRPORTS], "flights": [], "flight_dates": [],
        "users": [], "payment_methods": [], "saved_passengers": [], "reservations": [],
        "reservation_flights": [], "reservation_passengers": [], "reservation_payments": []}
    for f in db["flights"].values():
        rows["flights"].append({k: f[k] for k in ("flight_number", "origin", "destination",
                                                  "scheduled_departure_time_est", "scheduled_arrival_time_est")})
        for day, d in f["dates"].items():
            row = {"flight_number": f["flight_number"], "date": day, "status": d["status"]}
            for c in CABINS:
                row[f"available_{c}"] = (d.get("available_seats") or {}).get(c)
                row[f"price_{c}"] = (d.get("prices") or {}).get(c)
            row.update({t: d.get(t) for t in _TIMES})
            rows["flight_dates"].append(row)
    for u in db["users"].values():
        _flatten_user(u, db["reservations"], rows)
    for r in db["reservations"].values():
        _flatten_reservation(r, rows)
    return rows


def _flatten_user(u: dict[str, Any], reservations: dict[str, Any], rows: dict[str, list[dict[str, Any]]]) -> None:
    owned = sorted(k for k, r in reservations.items() if r["user_id"] == u["user_id"])
    if sorted(u["reservations"]) != owned:
        raise ValueError(f"user {u['user_id']} lists reservations {u['reservations']}, but owns {owned}")
    a = u["address"]
    rows["users"].append({"user_id": u["user_id"], **u["name"], **{k: a.get(k) for k in
                          ("address1", "address2", "city", "country", "state", "zip")},
                          "email": u["email"], "dob": u["dob"], "membership": u["membership"]})
    for pid, m in u["payment_methods"].items():
        amount = m.get("amount")
        rows["payment_methods"].append({"user_id": u["user_id"], "payment_id": pid, "source": m["source"],
                                        "brand": m.get("brand"), "last_four": m.get("last_four"),
                                        "amount": None if amount is None else float(amount)})
    for i, p in enumerate(u["saved_passengers"]):
        rows["saved_passengers"].append({"user_id": u["user_id"], "position": i, **p})


def _flatten_reservation(r: dict[str, Any], rows: dict[str, list[dict[str, Any]]]) -> None:
    rid = r["reservation_id"]
    rows["reservations"].append({k: r.get(k) for k in (
        "reservation_id", "user_id", "origin", "destination", "flight_type", "cabin", "created_at",
        "total_baggages", "nonfree_baggages", "insurance", "status")})
    for f in r["flights"]:
        rows["reservation_flights"].append({"reservation_id": rid, **{k: f[k] for k in (
            "flight_number", "date", "origin", "destination", "price")}})
    for i, p in enumerate(r["passengers"]):
        rows["reservation_passengers"].append({"reservation_id": rid, "position": i, **p})
    for i, p in enumerate(r["payment_history"]):
        rows["reservation_payments"].append({"reservation_id": rid, "position": i, "payment_id": p["payment_id"],
                                             "amount": p["amount"]})


# ---- tools ----------------------------------------------------------------------------------

_FLIGHT_JSON = ("json_object('flight_number', f.flight_number, 'origin', f.origin, 'destination', f.destination, "
                "'scheduled_departure_time_est', f.scheduled_departure_time_est, 'scheduled_arrival_time_est', "
                "f.scheduled_arrival_time_est, 'date', d.date, 'available_seats', json_object("
                + ", ".join(f"'{c}', d.available_{c}" for c in CABINS) + "), 'prices', json_object("
                + ", ".join(f"'{c}', d.price_{c}" for c in CABINS) + "))")
_NEXT = "(SELECT COALESCE(MAX(position) + 1, 0) FROM {table} WHERE reservation_id = :reservation_id)"
_PRICE = "CASE r.cabin " + " ".join(f"WHEN '{c}' THEN d.price_{c}" for c in CABINS) + " END"


def read_tools() -> list[ToolSpec]:
    return [
        _tool("get_user_details", "Get the details of a user: profile, payment methods, saved passengers and "
              "reservation ids.", """
            SELECT json_object('user_id', u.user_id, 'name', json_object('first_name', u.first_name, 'last_name',
              u.last_name), 'address', json_object('address1', u.address1, 'address2', u.address2, 'city', u.city,
              'country', u.country, 'state', u.state, 'zip', u.zip), 'email', u.email, 'dob', u.dob,
              'membership', u.membership,
              'payment_methods', json((SELECT json_group_array(json_object('id', m.payment_id, 'source', m.source,
                 'brand', m.brand, 'last_four', m.last_four, 'amount', m.amount)) FROM payment_methods m
                 WHERE m.user_id = u.user_id)),
              'saved_passengers', json((SELECT json_group_array(json_object('first_name', p.first_name, 'last_name',
                 p.last_name, 'dob', p.dob)) FROM (SELECT * FROM saved_passengers WHERE user_id = u.user_id
                 ORDER BY position) p)),
              'reservations', json((SELECT json_group_array(r.reservation_id) FROM reservations r
                 WHERE r.user_id = u.user_id))) AS user
            FROM users u WHERE u.user_id = :user_id""", {"user_id": S}),
        _tool("get_reservation_details", "Get the details of a reservation: flights, passengers, payments.", """
            SELECT json_object('reservation_id', r.reservation_id, 'user_id', r.user_id, 'origin', r.origin,
              'destination', r.destination, 'flight_type', r.flight_type, 'cabin', r.cabin,
              'flights', json((SELECT json_group_array(json_object('flight_number', f.flight_number, 'date', f.date,
                 'origin', f.origin, 'destination', f.destination, 'price', f.price)) FROM (SELECT * FROM
                 reservation_flights WHERE reservation_id = r.reservation_id ORDER BY date) f)),
              'passengers', json((SELECT json_group_array(json_object('first_name', p.first_name, 'last_name',
                 p.last_name, 'dob', p.dob)) FROM (SELECT * FROM reservation_passengers WHERE reservation_id =
                 r.reservation_id ORDER BY position) p)),
              'payment_history', json((SELECT json_group_array(json_object('payment_id', p.payment_id, 'amount',
                 p.amount)) FROM (SELECT * FROM reservation_payments WHERE reservation_id = r.reservation_id
                 ORDER BY position) p)),
              'created_at', r.created_at, 'total_baggages', r.total_baggages, 'nonfree_baggages',
              r.nonfree_baggages, 'insurance', r.insurance, 'status', r.status) AS reservation
            FROM reservations r WHERE r.reservation_id = :reservation_id""", {"reservation_id": S}),
        _tool("search_direct_flight", "Search direct flights with seats for sale between two airports on a date "
              "(YYYY-MM-DD).", f"""
            SELECT json_group_array(json(flight)) AS flights FROM (SELECT {_FLIGHT_JSON} AS flight
            FROM flights f JOIN flight_dates d ON d.flight_number = f.flight_number
            WHERE f.origin = :origin AND f.destination = :destination AND d.date = :date AND d.status = 'available'
            ORDER BY f.flight_number)""", {"origin": S, "destination": S, "date": S}, latency_s=0.5),
        _tool("search_onestop_flight", "Search one-stop connections (two flights) between two airports on a date.",
              f"""
            SELECT json_group_array(json(connection)) AS connections FROM (SELECT json_array({_FLIGHT_JSON},
              {_FLIGHT_JSON.replace('f.', 'g.').replace('d.', 'e.')}) AS connection
            FROM flights f JOIN flight_dates d ON d.flight_number = f.flight_number
            JOIN flights g ON g.origin = f.destination AND g.destination = :destination
            JOIN flight_dates e ON e.flight_number = g.flight_number AND e.status = 'available'
              AND e.date = CASE WHEN f.scheduled_arrival_time_est LIKE '%+1%' THEN date(:date, '+1 day')
                                ELSE :date END
              AND g.scheduled_departure_time_est >= f.scheduled_arrival_time_est
            WHERE f.origin = :origin AND d.date = :date AND d.status = 'available'
            ORDER BY f.flight_number, g.flight_number)""", {"origin": S, "destination": S, "date": S}, latency_s=0.8),
        _tool("list_all_airports", "List every airport (IATA code and city).",
              "SELECT iata, city FROM airports ORDER BY rowid"),
        _tool("get_flight_status", "The status of a flight on a date.",
              "SELECT status FROM flight_dates WHERE flight_number = :flight_number AND date = :date",
              {"flight_number": S, "date": S}),
        transfer_tool(),
    ]


def write_tools() -> list[ToolSpec]:
    return [
        _tool("create_reservation", f"Create an empty reservation for a user (created now, {NOW}); returns its id. "
              "Then add flights, passengers, reserve seats and add payments.", f"""
            INSERT INTO reservations (reservation_id, user_id, origin, destination, flight_type, cabin, created_at,
              total_baggages, nonfree_baggages, insurance, status)
            SELECT n.column1, u.user_id, :origin, :destination, :flight_type, :cabin, '{NOW}', :total_baggages,
              :nonfree_baggages, :insurance, NULL
            FROM (VALUES ('HATHAT'), ('HATHAU'), ('HATHAV')) n JOIN users u ON u.user_id = :user_id
            WHERE n.column1 NOT IN (SELECT reservation_id FROM reservations) ORDER BY n.column1 LIMIT 1
            RETURNING reservation_id""",
              {"user_id": S, "origin": S, "destination": S, "flight_type": {"type": "string",
               "enum": ["one_way", "round_trip"]}, "cabin": {"type": "string", "enum": list(CABINS)},
               "total_baggages": I, "nonfree_baggages": I, "insurance": {"type": "string", "enum": ["yes", "no"]}}),
        _tool("add_reservation_flight", "Add a flight (must be available on that date) to a reservation at the "
              "current price of the reservation's cabin.", f"""
            INSERT INTO reservation_flights (reservation_id, flight_number, date, origin, destination, price)
            SELECT r.reservation_id, f.flight_number, d.date, f.origin, f.destination, {_PRICE}
            FROM reservations r JOIN flight_dates d ON d.flight_number = :flight_number AND d.date = :date
            JOIN flights f ON f.flight_number = d.flight_number
            WHERE r.reservation_id = :reservation_id AND d.status = 'available'
            RETURNING flight_number, date, price""", {"reservation_id": S, "flight_number": S, "date": S}),
        _tool("add_reservation_passenger", "Append a passenger to a reservation.", f"""
            INSERT INTO reservation_passengers (reservation_id, position, first_name, last_name, dob)
            SELECT reservation_id, {_NEXT.format(table='reservation_passengers')}, :first_name, :last_name, :dob
            FROM reservations WHERE reservation_id = :reservation_id RETURNING position""",
              {"reservation_id": S, "first_name": S, "last_name": S, "dob": S}),
        _tool("reserve_seats", "Take one seat per passenger in the reservation's cabin on each of its flights "
              "(once, after adding its flights and passengers).", """
            UPDATE flight_dates AS d SET """ + ", ".join(
                f"available_{c} = d.available_{c} - (CASE WHEN x.cabin = '{c}' THEN x.n ELSE 0 END)"
                for c in CABINS) + """
            FROM (SELECT rf.flight_number, rf.date, r.cabin, (SELECT COUNT(*) FROM reservation_passengers p
                  WHERE p.reservation_id = r.reservation_id) AS n
                  FROM reservation_flights rf JOIN reservations r ON r.reservation_id = rf.reservation_id
                  WHERE r.reservation_id = :reservation_id) AS x
            WHERE d.flight_number = x.flight_number AND d.date = x.date
            RETURNING flight_number, date""", {"reservation_id": S}),
        _tool("add_reservation_payment", "Record a payment (negative: a refund) on a reservation with one of its "
              "user's payment methods.", f"""
            INSERT INTO reservation_payments (reservation_id, position, payment_id, amount)
            SELECT r.reservation_id, {_NEXT.format(table='reservation_payments')}, m.payment_id, :amount
            FROM reservations r JOIN payment_methods m ON m.user_id = r.user_id AND m.payment_id = :payment_id
            WHERE r.reservation_id = :reservation_id RETURNING position, amount""",
              {"reservation_id": S, "payment_id": S, "amount": I}),
        _tool("deduct_gift_card", "Deduct an amount from a user's gift card balance (fails if it would go below 0).",
              """UPDATE payment_methods SET amount = amount - :amount WHERE user_id = :user_id
              AND payment_id = :payment_id AND source = 'gift_card' RETURNING amount""",
              {"user_id": S, "payment_id": S, "amount": {"type": "number"}}),
        _tool("use_certificate", "Use up a user's travel certificate (it is removed).", """
            DELETE FROM payment_methods WHERE user_id = :user_id AND payment_id = :payment_id
            AND source = 'certificate' RETURNING payment_id, amount""", {"user_id": S, "payment_id": S}),
        _tool("refund_reservation_payments", "Append a refund (negative amount) for every payment of a reservation.",
              f"""
            INSERT INTO reservation_payments (reservation_id, position, payment_id, amount)
            SELECT reservation_id, position + {_NEXT.format(table='reservation_payments')}, payment_id, -amount
            FROM reservation_payments WHERE reservation_id = :reservation_id ORDER BY position
            RETURNING payment_id, amount""", {"reservation_id": S}),
        _tool("cancel_reservation", "Mark a reservation cancelled (refund its payments first).", """
            UPDATE reservations SET status = 'cancelled' WHERE reservation_id = :reservation_id
            RETURNING reservation_id, status""", {"reservation_id": S}),
        _tool("update_reservation_baggages", "Set a reservation's total and non-free bag counts (charge 50 per "
              "added non-free bag with add_reservation_payment).", """
            UPDATE reservations SET total_baggages = :total_baggages, nonfree_baggages = :nonfree_baggages
            WHERE reservation_id = :reservation_id RETURNING total_baggages, nonfree_baggages""",
              {"reservation_id": S, "total_baggages": I, "nonfree_baggages": I}),
        _tool("set_reservation_cabin", "Change a reservation's cabin class.", """
            UPDATE reservations SET cabin = :cabin WHERE reservation_id = :reservation_id RETURNING cabin""",
              {"reservation_id": S, "cabin": {"type": "string", "enum": list(CABINS)}}),
        _tool("remove_reservation_flight", "Remove one flight from a reservation.", """
            DELETE FROM reservation_flights WHERE reservation_id = :reservation_id
            AND flight_number = :flight_number AND date = :date RETURNING flight_number, date, price""",
              {"reservation_id": S, "flight_number": S, "date": S}),
        _tool("update_reservation_passenger", "Replace the passenger at a position (0-based) of a reservation.", """
            UPDATE reservation_passengers SET first_name = :first_name, last_name = :last_name, dob = :dob
            WHERE reservation_id = :reservation_id AND position = :position RETURNING position""",
              {"reservation_id": S, "position": I, "first_name": S, "last_name": S, "dob": S}),
        _tool("send_certificate", "Send a travel certificate of an amount to a user (as compensation).", """
            INSERT INTO payment_methods (user_id, payment_id, source, brand, last_four, amount)
            SELECT u.user_id, n.column1, 'certificate', NULL, NULL, :amount
            FROM (VALUES ('certificate_3221322'), ('certificate_3221323'), ('certificate_3221324')) n
            JOIN users u ON u.user_id = :user_id
            WHERE n.column1 NOT IN (SELECT payment_id FROM payment_methods WHERE user_id = :user_id)
            ORDER BY n.column1 LIMIT 1 RETURNING payment_id, amount""", {"user_id": S, "amount": I}),
    ]


def tools() -> list[ToolSpec]:
    return read_tools() + write_tools()


# ---- tau2 actions -> our calls ---------------------------------------------------------------

def _pay(run: Run, rid: str, user_id: str, payment_id: str, amount: float) -> list[ToolCall]:
    calls = [call(run, "add_reservation_payment", {"reservation_id": rid, "payment_id": payment_id,
                                                    "amount": amount}, must_change=True)]
    source = run("_source", {"user_id": user_id, "payment_id": payment_id})
    if source and source[0]["source"] == "gift_card":
        calls.append(call(run, "deduct_gift_card", {"user_id": user_id, "payment_id": payment_id,
                                                     "amount": amount}, must_change=True))
    elif source and source[0]["source"] == "certificate":
        calls.append(call(run, "use_certificate", {"user_id": user_id, "payment_id": payment_id}, must_change=True))
    return calls


def _book(args: dict[str, Any], run: Run) -> list[ToolCall]:
    head = {k: args[k] for k in ("user_id", "origin", "destination", "flight_type", "cabin", "total_baggages",
                                 "nonfree_baggages", "insurance")}
    created = run("create_reservation", head)
    if not created:
        raise ActionFailed("create_reservation created nothing (unknown user or no free reservation id)")
    rid = created[0]["reservation_id"]
    calls = [ToolCall(name="create_reservation", arguments=head)]
    for f in args["flights"]:
        calls.append(call(run, "add_reservation_flight", {"reservation_id": rid, "flight_number": f["flight_number"],
                                                           "date": f["date"]}, must_change=True))
    for p in args["passengers"]:
        calls.append(call(run, "add_reservation_passenger", {"reservation_id": rid, **p}, must_change=True))
    calls.append(call(run, "reserve_seats", {"reservation_id": rid}, must_change=True))
    for p in args["payment_methods"]:
        calls += _pay(run, rid, args["user_id"], p["payment_id"], p["amount"])
    return calls


def _cancel(args: dict[str, Any], run: Run) -> list[ToolCall]:
    rid = {"reservation_id": args["reservation_id"]}
    return [call(run, "refund_reservation_payments", rid), call(run, "cancel_reservation", rid, must_change=True)]


def _reservation(run: Run, rid: str) -> dict[str, Any]:
    rows = run("_reservation", {"reservation_id": rid})
    if not rows:
        raise ActionFailed(f"reservation {rid} not found")
    return rows[0]


def _update_baggages(args: dict[str, Any], run: Run) -> list[ToolCall]:
    r = _reservation(run, args["reservation_id"])
    fee = 50 * max(0, args["nonfree_baggages"] - r["nonfree_baggages"])
    calls = [call(run, "update_reservation_baggages", {k: args[k] for k in (
        "reservation_id", "total_baggages", "nonfree_baggages")}, must_change=True)]
    return calls + (_pay(run, r["reservation_id"], r["user_id"], args["payment_id"], fee) if fee else [])


def _update_flights(args: dict[str, Any], run: Run) -> list[ToolCall]:
    r = _reservation(run, args["reservation_id"])
    rid, cabin = r["reservation_id"], args["cabin"]
    old = {(f["flight_number"], f["date"]) for f in run("_flights", {"reservation_id": rid})}
    old_total = sum(f["price"] for f in run("_flights", {"reservation_id": rid})) * r["passengers"]
    new = [(f["flight_number"], f["date"]) for f in args["flights"]]
    kept = {k for k in new if k in old and cabin == r["cabin"]}  # tau2 keeps these at their old price
    calls = [call(run, "remove_reservation_flight", {"reservation_id": rid, "flight_number": fn, "date": d},
                   must_change=True) for fn, d in sorted(old - kept)]
    if cabin != r["cabin"]:
        calls.append(call(run, "set_reservation_cabin", {"reservation_id": rid, "cabin": cabin}, must_change=True))
    calls += [call(run, "add_reservation_flight", {"reservation_id": rid, "flight_number": fn, "date": d},
                    must_change=True) for fn, d in new if (fn, d) not in kept]
    new_total = sum(f["price"] for f in run("_flights", {"reservation_id": rid})) * r["passengers"]
    diff = new_total - old_total
    return calls + (_pay(run, rid, r["user_id"], args["payment_id"], diff) if diff else [])


def _update_passengers(args: dict[str, Any], run: Run) -> list[ToolCall]:
    r = _reservation(run, args["reservation_id"])
    if len(args["passengers"]) != r["passengers"]:
        raise ActionFailed("number of passengers does not match")
    return [call(run, "update_reservation_passenger", {"reservation_id": r["reservation_id"], "position": i, **p},
                  must_change=True) for i, p in enumerate(args["passengers"])]


DIRECT = {"send_certificate"}  # writes that are one of our tools as they are
WRITES = {
    "book_reservation": _book, "cancel_reservation": _cancel, "update_reservation_baggages": _update_baggages,
    "update_reservation_flights": _update_flights, "update_reservation_passengers": _update_passengers,
}

# Queries the converter itself uses to read state (not tools the orchestrator sees).
PLANNER_SQL = {
    "_source": "SELECT source FROM payment_methods WHERE user_id = :user_id AND payment_id = :payment_id",
    "_reservation": "SELECT r.*, (SELECT COUNT(*) FROM reservation_passengers p WHERE p.reservation_id = "
                    "r.reservation_id) AS passengers FROM reservations r WHERE r.reservation_id = :reservation_id",
    "_flights": "SELECT flight_number, date, price FROM reservation_flights WHERE reservation_id = :reservation_id",
}
