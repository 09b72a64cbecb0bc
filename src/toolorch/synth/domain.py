"""The declaration language of a procedural domain: tables, columns with value generators,
db tools (parameterised SQL) and document facts, plus the hints that task synthesis reads.

A domain module in `synth/domains/` declares one `Domain` with these types; `synth.envs`
turns it into an SQLite world.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Callable, Literal

from faker import Faker

from toolorch.core.records import Record, ToolSpec

Gen = Callable[[Faker, random.Random], Any]
ROLES = ("value", "list", "aggregate", "rows")


# ---- declarations -------------------------------------------------------------------------

@dataclass(frozen=True)
class Col:
    name: str
    type: str  # SQL type: TEXT, INTEGER or REAL
    gen: Gen | None = None  # value generator; None for a foreign key
    ref: str | None = None  # parent table: the value is an existing parent id
    unique: bool = False  # lookups by this column must find one row


@dataclass(frozen=True)
class Table:
    name: str
    cols: tuple[Col, ...]

    def ddl(self) -> str:
        parts = ["id INTEGER PRIMARY KEY"]
        for c in self.cols:
            extra = " UNIQUE" if c.unique else ""
            extra += f" REFERENCES {c.ref}(id)" if c.ref else ""
            parts.append(f"{c.name} {c.type} NOT NULL{extra}")
        return f"CREATE TABLE {self.name} ({', '.join(parts)})"


@dataclass(frozen=True)
class Arg:
    name: str
    source: str  # "table.column" whose values are valid arguments
    type: str = "string"  # JSON-schema type
    quote: bool = False  # quote literal values in questions (titles, not names)


@dataclass(frozen=True)
class DbTool:
    """A db tool plus the words task synthesis needs to ask about it.

    role: value (one value) | list (group_concat of values) | aggregate (count/sum/avg/max)
    | rows (JSON rows whose numeric `value_col` run_python aggregates).
    `noun` names what one call returns ("the author of {title}"); `returns` is the
    "table.column" of a value result that other tools accept, and `entity` how that
    result is referred to when it feeds them ("the book most recently borrowed by {member}").
    """

    name: str
    description: str
    sql: str
    args: tuple[Arg, ...]
    noun: str
    role: str = "value"
    answer_type: str = "string"
    returns: str | None = None
    entity: str | None = None
    value_col: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"{self.name}: role must be one of {ROLES}, got '{self.role}'")
        if self.role == "rows" and not self.value_col:
            raise ValueError(f"{self.name}: a rows tool names the numeric value_col run_python aggregates")
        missing = [a.name for a in self.args if "{" + a.name + "}" not in self.noun]
        if missing:
            raise ValueError(f"{self.name}: noun must mention every argument, missing {missing}")

    def spec(self) -> ToolSpec:
        props = {a.name: {"type": a.type, "description": f"{a.source.split('.')[1].replace('_', ' ')}"}
                 for a in self.args}
        latency = {"value": 0.2, "list": 0.4, "rows": 0.5, "aggregate": 0.8}[self.role]
        latency += 0.2 if " JOIN " in self.sql.upper() else 0.0
        return ToolSpec(name=self.name, description=self.description, kind="db", sql=self.sql,
                        parameters={"type": "object", "properties": props, "required": [a.name for a in self.args]},
                        cost_usd=0.0, latency_s=round(latency, 2))


@dataclass(frozen=True)
class Fact:
    """A fact only the documents hold; one of `values` is drawn per environment."""

    key: str
    title: str
    text: str  # contains {v} (the value) and may use {org}
    values: tuple[str, ...]
    question: str  # may use {org}
    answer_type: str = "string"


class FactQA(Record):
    """A question a document answers, with the answer as it appears verbatim in that document."""

    key: str
    doc_id: str
    question: str
    answer: str
    answer_type: Literal["string", "number", "list", "bool"] = "string"


class SynthHints(Record):
    """What task synthesis needs beyond env.json (saved as synth.json in the env folder).

    Any generator writes these: the words and argument sources of each db tool, and
    the document facts with their answers.
    """

    generator: str
    domain: str
    seed: int
    tools: list[DbTool]
    facts: list[FactQA]


@dataclass(frozen=True)
class Domain:
    name: str
    description: str  # may use {org}
    org: Gen  # the organisation's name, e.g. "Riverton Public Library"
    tables: tuple[Table, ...]
    tools: tuple[DbTool, ...]
    facts: tuple[Fact, ...]

    def tool(self, name: str) -> DbTool:
        return next(t for t in self.tools if t.name == name)


# ---- value generators used by the domain modules ------------------------------------------

def pick(*choices: Any) -> Gen:
    return lambda f, r: r.choice(choices)


def between(lo: int, hi: int) -> Gen:
    return lambda f, r: r.randint(lo, hi)


def money(lo: float, hi: float) -> Gen:
    return lambda f, r: round(r.uniform(lo, hi), 2)


def day(start: str = "2024-01-01", span_days: int = 365) -> Gen:
    """An ISO date from a fixed base (never relative to today: outputs must not drift)."""
    base = date.fromisoformat(start)
    return lambda f, r: (base + timedelta(days=r.randint(0, span_days))).isoformat()


def code(prefix: str, digits: int = 5) -> Gen:
    return lambda f, r: f"{prefix}-{r.randint(10 ** (digits - 1), 10 ** digits - 1)}"


def person(f: Faker, r: random.Random) -> str:
    """A plain "First Last" name (Faker's name() adds titles like "Dr." or "DVM")."""
    return f"{f.first_name()} {f.last_name()}"


def synth_seed(*parts: object) -> int:
    """The synthesizer's seeds (':'-joined, 48 bits). It differs from core.seeds.stable_seed only so
    that the worlds and tasks already built stay byte-identical; use stable_seed everywhere else."""
    return int(hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:12], 16)
