"""Budgets that hold under concurrency: reserve a call's worst case before making it, settle after.

    ledger = Ledger(budgets={"team-a": 25.0}, path=Path("ledger.sqlite"))   # path None: memory only
    request = RequestBudget(limit_usd=0.05)
    hold = ledger.reserve(request, "team-a", worst_case_usd)   # BudgetExceeded("cost" | "key")
    ...the call...
    ledger.settle(hold, actual_usd)

Atomicity: every method is synchronous and runs on the gateway's one event loop, so no other
coroutine runs between the check and the reservation (no lock needed, none can be forgotten).
Spend per key is written through to SQLite on every settle, so a restart keeps what each key
has spent; reservations are in memory (a crash releases them, which is what a reservation means).
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

EPS = 1e-12


class BudgetExceeded(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind  # "cost" (the request's max_cost_usd) or "key" (the API key's budget)


@dataclass
class RequestBudget:
    limit_usd: float
    spent_usd: float = 0.0
    reserved_usd: float = 0.0

    def left(self) -> float:
        return self.limit_usd - self.spent_usd - self.reserved_usd


@dataclass
class Hold:
    request: RequestBudget
    key: str
    amount_usd: float
    settled: bool = False


class Ledger:
    def __init__(self, budgets: dict[str, float | None], path: Path | None = None):
        self.budgets = budgets
        self.reserved: dict[str, float] = {}
        # Opened where the gateway is built, used only on its event loop thread.
        self.conn = sqlite3.connect(str(path) if path else ":memory:", isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS spend (key TEXT PRIMARY KEY, spent_usd REAL NOT NULL)")
        self.spent: dict[str, float] = dict(self.conn.execute("SELECT key, spent_usd FROM spend").fetchall())

    def key_left(self, key: str) -> float | None:
        limit = self.budgets.get(key)
        if limit is None:
            return None
        return limit - self.spent.get(key, 0.0) - self.reserved.get(key, 0.0)

    def can_afford(self, request: RequestBudget, key: str, amount: float) -> str | None:
        """None if `amount` fits both budgets now, else the kind that does not fit."""
        if amount > request.left() + EPS:
            return "cost"
        left = self.key_left(key)
        return "key" if left is not None and amount > left + EPS else None

    def reserve(self, request: RequestBudget, key: str, amount: float) -> Hold:
        kind = self.can_afford(request, key, amount)
        if kind == "cost":
            raise BudgetExceeded("cost", f"the request's max_cost_usd leaves ${request.left():.6f}, "
                                         f"the next call may cost ${amount:.6f}")
        if kind == "key":
            raise BudgetExceeded("key", f"the API key's budget leaves ${max(self.key_left(key) or 0, 0):.6f}, "
                                        f"the next call may cost ${amount:.6f}")
        request.reserved_usd += amount
        self.reserved[key] = self.reserved.get(key, 0.0) + amount
        return Hold(request, key, amount)

    def settle(self, hold: Hold, actual: float) -> None:
        """Release the reservation and charge what the call really cost (once)."""
        if hold.settled:
            return
        hold.settled = True
        hold.request.reserved_usd -= hold.amount_usd
        hold.request.spent_usd += actual
        self.reserved[hold.key] -= hold.amount_usd
        self.spent[hold.key] = self.spent.get(hold.key, 0.0) + actual
        if actual:
            self.conn.execute("INSERT INTO spend (key, spent_usd) VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                              "SET spent_usd = spent_usd + excluded.spent_usd", (hold.key, actual))

    def close(self) -> None:
        self.conn.close()
