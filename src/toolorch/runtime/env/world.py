"""A SQLite-backed world: schema + rows, tools that query it, a document corpus.

On disk an environment is a folder:
    env.json     EnvSpec (name, description, DDL, tool specs)
    db.sqlite    the rows
    docs.jsonl   the document corpus (searched with SQLite FTS5 / bm25)

Each episode gets an `EnvSession` over a private in-memory copy of the DB, so
tools may write (tau2-style actions) without touching the files or other episodes.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any, Iterable

from pydantic import ValidationError

from toolorch.core.errors import RunFailed
from toolorch.core.jsonl import read_jsonl, write_jsonl
from toolorch.core.records import STATE_PREFIX, Record, ToolCall, ToolSpec


class ToolError(Exception):
    """A tool call that cannot run: the message is shown to the policy as an observation."""


class Document(Record):
    id: str
    title: str
    text: str


class EnvSpec(Record):
    name: str
    description: str
    ddl: list[str]  # CREATE TABLE statements, foreign keys included
    tools: list[ToolSpec]


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def _coerce(value: Any, want: str | None) -> Any:
    """Models often write numbers as strings ("3"); accept them when they parse cleanly."""
    if isinstance(value, str) and want in ("integer", "number"):
        try:
            number = float(value.strip())
        except ValueError:
            return value
        if want == "integer" and number.is_integer():
            return int(number)
        if want == "number":
            return int(number) if number.is_integer() else number
    return value


def check_arguments(spec: ToolSpec, args: dict[str, Any]) -> dict[str, Any]:
    """Validate `args` against the subset of JSON schema tools use (types, required, enum).

    Returns the arguments with numeric strings coerced; raises ToolError naming the problem.
    """
    props: dict[str, Any] = spec.parameters.get("properties", {})
    missing = [k for k in spec.parameters.get("required", []) if k not in args]
    if missing:
        raise ToolError(f"{spec.name}: missing required argument(s): {', '.join(missing)}")
    checked: dict[str, Any] = {}
    for key, raw in args.items():
        if key not in props:
            raise ToolError(f"{spec.name}: unknown argument '{key}' (expected: {', '.join(props) or 'none'})")
        want = props[key].get("type")
        value = _coerce(raw, want)
        types = _JSON_TYPES.get(want, (object,))
        if isinstance(value, bool) and want in ("integer", "number"):
            raise ToolError(f"{spec.name}: argument '{key}' must be {want}, got boolean")
        if not isinstance(value, types):
            raise ToolError(f"{spec.name}: argument '{key}' must be {want}, got {type(value).__name__}")
        if "enum" in props[key] and value not in props[key]["enum"]:
            raise ToolError(f"{spec.name}: argument '{key}' must be one of {props[key]['enum']}")
        checked[key] = value
    return checked


_WORD = re.compile(r"[A-Za-z0-9]+")


def fts_query(text: str) -> str:
    """Turn free text into a safe FTS5 query (quoted terms OR-ed): user text is never FTS syntax."""
    terms = [w for w in _WORD.findall(text) if len(w) > 1][:32]
    return " OR ".join(f'"{t}"' for t in terms)


class Environment:
    def __init__(self, spec: EnvSpec, db_path: Path, docs: list[Document]):
        self.spec = spec
        self.db_path = db_path
        self.docs = docs

    @property
    def name(self) -> str:
        return self.spec.name

    @classmethod
    def load(cls, folder: str | Path) -> Environment:
        folder = Path(folder)
        for part in ("env.json", "db.sqlite", "docs.jsonl"):
            if not (folder / part).exists():
                raise FileNotFoundError(f"environment {folder} has no {part}")
        spec = EnvSpec.model_validate_json((folder / "env.json").read_text())
        return cls(spec, folder / "db.sqlite", read_jsonl(folder / "docs.jsonl", Document))

    @classmethod
    def create(cls, folder: str | Path, spec: EnvSpec, rows: dict[str, list[dict[str, Any]]],
               docs: list[Document]) -> Environment:
        """Write a new environment: executes the DDL, inserts rows, checks foreign keys."""
        folder = Path(folder)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        db = folder / "db.sqlite"
        conn = sqlite3.connect(db)
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            for stmt in spec.ddl:
                conn.execute(stmt)
            for table, table_rows in rows.items():
                for row in table_rows:
                    cols = ", ".join(row)
                    marks = ", ".join(f":{c}" for c in row)
                    conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", row)
            bad = conn.execute("PRAGMA foreign_key_check").fetchall()
            if bad:
                raise ValueError(f"{spec.name}: {len(bad)} rows break foreign keys, e.g. {bad[0]}")
            conn.commit()
        finally:
            conn.close()
        (folder / "env.json").write_text(spec.model_dump_json(indent=2))
        write_jsonl(folder / "docs.jsonl", docs)
        return cls(spec, db, docs)

    def tool(self, name: str) -> ToolSpec | None:
        return next((t for t in self.spec.tools if t.name == name), None)

    def session(self) -> EnvSession:
        return EnvSession(self)


class EnvSession:
    """One episode's private, writable view of an environment."""

    def __init__(self, env: Environment):
        self.env = env
        src = sqlite3.connect(f"file:{env.db_path}?mode=ro", uri=True)
        # Used by one thread at a time, not always the one that opened it (the gateway's tool pool).
        self.conn = sqlite3.connect(":memory:", check_same_thread=False)
        src.backup(self.conn)
        src.close()
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.conn.execute("CREATE VIRTUAL TABLE _docs USING fts5(id UNINDEXED, title, text)")
        self.conn.executemany(
            "INSERT INTO _docs (id, title, text) VALUES (?, ?, ?)", [(d.id, d.title, d.text) for d in env.docs]
        )

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> EnvSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run_sql(self, spec: ToolSpec, args: dict[str, Any]) -> list[dict[str, Any]]:
        assert spec.sql is not None
        params = {k: args.get(k) for k in spec.parameters.get("properties", {})}
        try:
            cur = self.conn.execute(spec.sql, params)
            rows = [dict(r) for r in cur.fetchmany(50)]
            self.conn.commit()
        except sqlite3.Error as e:
            raise ToolError(f"{spec.name}: database error: {e}") from None
        return rows

    def search(self, query: str, k: int = 3) -> list[dict[str, str]]:
        q = fts_query(query)
        if not q:
            raise ToolError("search: the query has no searchable words")
        rows = self.conn.execute(
            "SELECT id, title, text FROM _docs WHERE _docs MATCH ? ORDER BY bm25(_docs) LIMIT ?", (q, k)
        ).fetchall()
        return [dict(r) for r in rows]

    def call(self, spec: ToolSpec, call: ToolCall) -> str:
        """Run a db or search tool; returns the observation text. Raises ToolError."""
        args = check_arguments(spec, call.arguments)
        if spec.kind == "db":
            return format_rows(self.run_sql(spec, args))
        if spec.kind == "search":
            hits = self.search(str(args.get("query", "")))
            if not hits:
                return "no documents found"
            return "\n\n".join(f"[{h['id']}] {h['title']}\n{h['text']}" for h in hits)
        raise ToolError(f"{spec.name}: kind '{spec.kind}' is not served by the environment")

    def fingerprint(self) -> str:
        """A short hash of every table's rows: equal worlds, equal fingerprints."""
        blob = repr(sorted(table_state(self.conn).items()))
        return STATE_PREFIX + hashlib.sha256(blob.encode()).hexdigest()[:16]

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Every user table's rows, ordered: compare world states (e.g. tau2 gold actions)."""
        names = [
            r[0] for r in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE '\\_%' ESCAPE '\\' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        return {n: [dict(r) for r in self.conn.execute(f"SELECT * FROM {n} ORDER BY rowid")] for n in names}


def table_state(conn: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every user table's rows sorted by all columns: an order-free state, fast on 25k-row worlds."""
    names = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE '\\_%' ESCAPE '\\' "
        "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    out = {}
    for name in names:
        width = len(conn.execute(f"SELECT * FROM {name} LIMIT 0").description)
        order = ", ".join(str(i + 1) for i in range(width))
        out[name] = [tuple(r) for r in conn.execute(f"SELECT * FROM {name} ORDER BY {order}")]
    return out


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A single value prints bare (what a question asks for); otherwise JSON rows."""
    if not rows:
        return "no rows"
    if len(rows) == 1 and len(rows[0]) == 1:
        return str(next(iter(rows[0].values())))
    return json.dumps(rows, ensure_ascii=False, default=str)


SEARCH_COST_USD = 0.001
SEARCH_LATENCY_S = 1.0


def search_tool() -> ToolSpec:
    return ToolSpec(name="search", kind="search", cost_usd=SEARCH_COST_USD, latency_s=SEARCH_LATENCY_S,
                    description="Search the policies, FAQs and notes of this organisation; returns the top documents.",
                    parameters={"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]})


def check_database(db: Path) -> None:
    """RunFailed naming the file when `db` is not a sound SQLite database."""
    try:
        with closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as e:
        raise RunFailed(f"{db}: not a readable SQLite database ({e})") from None
    if verdict != "ok":
        raise RunFailed(f"{db}: SQLite integrity check failed ({verdict})")


def load_env(folder: Path) -> Environment:
    """One environment folder, its database checked: a broken file is named, not met mid-run."""
    try:
        env = Environment.load(folder)
    except ValidationError as e:
        first = e.errors()[0]
        raise RunFailed(f"{folder / 'env.json'}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    check_database(env.db_path)
    return env


def load_envs(envs_dir: str | Path, names: Iterable[str]) -> dict[str, Environment]:
    """The named environments of `envs_dir`, by name; a missing folder is a FileNotFoundError."""
    envs_dir = Path(envs_dir)
    if not envs_dir.is_dir():
        raise FileNotFoundError(f"{envs_dir}: no environments folder (run synth-envs first)")
    names = sorted(set(names))
    missing = [n for n in names if not (envs_dir / n / "env.json").is_file()]
    if missing:
        raise FileNotFoundError(f"{envs_dir}: no environment folder for {', '.join(missing)}")
    return {n: load_env(envs_dir / n) for n in names}
