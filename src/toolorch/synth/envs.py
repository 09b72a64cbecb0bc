"""Environment synthesis (ToolScale phase 1): domain -> SQLite world, db tools, documents.

A domain is a declaration (see `synth/domains/`): tables whose columns carry value
generators and foreign keys, db tools (parameterised SQL; each argument names the
column its sample values come from, which is what lets task synthesis fill slots),
and facts that live only in documents. `ProceduralGenerator` turns a declaration and
a seed into an `Environment` folder; every generator implements `EnvGenerator`.

    env = ProceduralGenerator(rows_per_table=(50, 120)).generate("library", seed=0, out_dir=Path("data/envs"))
"""
from __future__ import annotations

import hashlib
import random
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Callable, Literal, Protocol

from faker import Faker

from toolorch.core import Record, ToolCall, ToolSpec
from toolorch.env.world import Document, EnvSession, EnvSpec, Environment, ToolError

Gen = Callable[[Faker, random.Random], Any]
SEARCH_COST_USD = 0.001
SEARCH_LATENCY_S = 1.0
ROLES = ("value", "list", "aggregate", "rows")
HINTS_FILE = "synth.json"
IMPORTED_TASKS = "tasks.jsonl"  # tasks that come with an imported environment (tau2-bench)


class EnvGenerator(Protocol):
    """Builds one environment of a domain into `out_dir/<env name>` and returns it."""

    def generate(self, domain: str, seed: int, out_dir: Path) -> Environment: ...


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


def search_tool() -> ToolSpec:
    return ToolSpec(name="search", kind="search", cost_usd=SEARCH_COST_USD, latency_s=SEARCH_LATENCY_S,
                    description="Search the policies, FAQs and notes of this organisation; returns the top documents.",
                    parameters={"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]})


def stable_seed(*parts: object) -> int:
    """A seed from any values, identical across processes (unlike hash())."""
    return int(hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:12], 16)


# ---- generation -----------------------------------------------------------------------------

def make_rows(domain: Domain, fake: Faker, rng: random.Random, rows_per_table: tuple[int, int]
              ) -> dict[str, list[dict[str, Any]]]:
    """Rows for every table, in declaration order so each foreign key points at an existing parent."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for table in domain.tables:
        n = rng.randint(*rows_per_table)
        seen: dict[str, set[Any]] = {c.name: set() for c in table.cols if c.unique}
        rows[table.name] = [_make_row(table, i + 1, fake, rng, rows, seen) for i in range(n)]
    return rows


def _make_row(table: Table, row_id: int, fake: Faker, rng: random.Random,
              done: dict[str, list[dict[str, Any]]], seen: dict[str, set[Any]]) -> dict[str, Any]:
    row: dict[str, Any] = {"id": row_id}
    for c in table.cols:
        if c.ref is not None:
            if not done.get(c.ref):
                raise ValueError(f"{table.name}.{c.name} references {c.ref}, declared later or empty")
            row[c.name] = rng.randint(1, len(done[c.ref]))
            continue
        assert c.gen is not None, f"{table.name}.{c.name} needs a generator or a ref"
        value = c.gen(fake, rng)
        if c.unique:
            value = _unique(value, c, fake, rng, seen[c.name])
        row[c.name] = value
    return row


def _unique(value: Any, col: Col, fake: Faker, rng: random.Random, seen: set[Any]) -> Any:
    # Redraw a few times, then disambiguate with a suffix: lookups by this column need one row.
    for _ in range(20):
        if value not in seen:
            break
        value = col.gen(fake, rng)  # type: ignore[misc]
    suffix = 2
    base = value
    while value in seen:
        value, suffix = f"{base} {suffix}", suffix + 1
    seen.add(value)
    return value


def make_docs(domain: Domain, org: str, rng: random.Random) -> tuple[list[Document], list[FactQA]]:
    """One document per fact, with the question each answers and its drawn value."""
    docs, qas = [], []
    for i, fact in enumerate(domain.facts):
        v = rng.choice(fact.values)
        doc_id = f"{domain.name}-doc-{i + 1:02d}"
        docs.append(Document(id=doc_id, title=fact.title.format(org=org), text=fact.text.format(org=org, v=v)))
        qas.append(FactQA(key=fact.key, doc_id=doc_id, question=fact.question.format(org=org), answer=v,
                          answer_type=fact.answer_type))
    return docs, qas


class ProceduralGenerator:
    """Seeded offline generator over the declared domains (`synth.domains.DOMAINS`)."""

    def __init__(self, rows_per_table: tuple[int, int] = (50, 120)):
        lo, hi = rows_per_table
        if not 1 <= lo <= hi:
            raise ValueError(f"rows_per_table must satisfy 1 <= min <= max, got {rows_per_table}")
        self.rows_per_table = (lo, hi)

    def generate(self, domain: str, seed: int, out_dir: Path) -> Environment:
        from toolorch.synth.domains import get_domain

        decl = get_domain(domain)
        s = stable_seed(seed, decl.name)
        fake = Faker("en_US")
        fake.seed_instance(s)
        rng = random.Random(s)
        org = decl.org(fake, rng)
        rows = make_rows(decl, fake, rng, self.rows_per_table)
        docs, qas = make_docs(decl, org, rng)
        spec = EnvSpec(name=decl.name, description=decl.description.format(org=org),
                       ddl=[t.ddl() for t in decl.tables], tools=[t.spec() for t in decl.tools] + [search_tool()])
        hints = SynthHints(generator="procedural", domain=decl.name, seed=seed, tools=list(decl.tools), facts=qas)
        return write_environment(Path(out_dir), spec, rows, docs, hints)


def write_environment(out_dir: Path, spec: EnvSpec, rows: dict[str, list[dict[str, Any]]],
                      docs: list[Document], hints: SynthHints) -> Environment:
    """Create `out_dir/<name>` atomically: built in a temp folder, renamed into place."""
    final = out_dir / spec.name
    tmp = out_dir / f".{spec.name}.tmp"
    Environment.create(tmp, spec, rows, docs)
    (tmp / HINTS_FILE).write_text(hints.model_dump_json(indent=2))
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    return Environment.load(final)


def replace_folder(tmp: Path, final: Path) -> None:
    """Swap a fully built folder into place; a crash leaves the old folder or none, never half of one."""
    old = final.with_name(f".{final.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)


def check_environment(env: Environment) -> dict[str, int]:
    """Foreign keys hold, and every tool runs on arguments drawn from the DB; returns size counts.

    Raises ValueError naming each problem (a generator's output is rejected, never half-used).
    """
    problems: list[str] = []
    conn = sqlite3.connect(f"file:{env.db_path}?mode=ro", uri=True)
    try:
        bad = conn.execute("PRAGMA foreign_key_check").fetchall()
        if bad:
            problems.append(f"{len(bad)} rows break foreign keys, e.g. {bad[0]}")
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        rows = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
        hints = load_hints(env)
        with env.session() as session:
            for tool in hints.tools:
                problems += _tool_problems(tool, env, session, conn)
            if not session.search(env.docs[0].title if env.docs else "policy"):
                problems.append("search finds nothing for a document title")
    finally:
        conn.close()
    if problems:
        raise ValueError(f"environment {env.name} is invalid: " + "; ".join(problems))
    return {"tables": len(tables), "rows": sum(rows.values()), "tools": len(env.spec.tools), "docs": len(env.docs)}


def _tool_problems(tool: DbTool, env: Environment, session: EnvSession, conn: sqlite3.Connection) -> list[str]:
    spec = env.tool(tool.name)
    if spec is None:
        return [f"hinted tool {tool.name} is not in env.json"]
    args = {}
    for a in tool.args:
        table, col = a.source.split(".")
        row = conn.execute(f"SELECT {col} FROM {table} ORDER BY id LIMIT 1").fetchone()
        if row is None:
            return [f"{tool.name}: table {table} is empty"]
        args[a.name] = row[0]
    try:
        session.call(spec, ToolCall(name=tool.name, arguments=args))
    except ToolError as e:
        return [str(e)]
    return []


def load_hints(env: Environment) -> SynthHints:
    path = env.db_path.parent / HINTS_FILE
    if not path.exists():
        raise FileNotFoundError(f"environment {env.name} has no {HINTS_FILE}: task synthesis needs its tool hints")
    return SynthHints.model_validate_json(path.read_text())
