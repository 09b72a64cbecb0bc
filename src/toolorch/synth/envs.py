"""Environment synthesis (ToolScale phase 1): domain -> SQLite world, db tools, documents.

A domain is a declaration (see `synth/domains/`): tables whose columns carry value
generators and foreign keys, db tools (parameterised SQL; each argument names the
column its sample values come from, which is what lets task synthesis fill slots),
and facts that live only in documents. `ProceduralGenerator` turns a declaration and
a seed into an `Environment` folder; every generator implements `EnvGenerator`.

    env = ProceduralGenerator(rows_per_table=(50, 120)).generate("library", seed=0, out_dir=Path("envs"))
"""
from __future__ import annotations

import random
import shutil
import sqlite3
from pathlib import Path
from typing import Any, Protocol

from faker import Faker

from toolorch.core.records import ToolCall
from toolorch.runtime.env.world import (
    Document,
    Environment,
    EnvSession,
    EnvSpec,
    ToolError,
    search_tool,
)
from toolorch.synth.domain import (
    Col,
    DbTool,
    Domain,
    FactQA,
    SynthHints,
    Table,
    synth_seed,
)
from toolorch.synth.domains import get_domain

HINTS_FILE = "synth.json"
IMPORTED_TASKS = "tasks.jsonl"  # tasks that come with an imported environment (tau2-bench)


class EnvGenerator(Protocol):
    """Builds one environment of a domain into `out_dir/<env name>` and returns it."""

    def generate(self, domain: str, seed: int, out_dir: Path) -> Environment: ...


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

    def __init__(self, rows_per_table: tuple[int, int]):  # stages.synth_envs.rows_per_table
        lo, hi = rows_per_table
        if not 1 <= lo <= hi:
            raise ValueError(f"rows_per_table must satisfy 1 <= min <= max, got {rows_per_table}")
        self.rows_per_table = (lo, hi)

    def generate(self, domain: str, seed: int, out_dir: Path) -> Environment:

        decl = get_domain(domain)
        s = synth_seed(seed, decl.name)
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
