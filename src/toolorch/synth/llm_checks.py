"""Validation of a teacher's answers for `llm_envs`: each check raises `Invalid` with a reason.

Every check works on a scratch in-memory SQLite database, so what passes here is what
`Environment.create` will accept (same DDL, same row order, foreign keys enforced on
insert), and every tool has been run against the real rows with example arguments.
"""
from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from toolorch.core.records import ToolSpec
from toolorch.runtime.env.world import ToolError, check_arguments

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.S)
_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_CREATE = re.compile(r"^\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?[\"`\[]?([A-Za-z_][A-Za-z0-9_]*)", re.I)
# Statements a teacher must never smuggle into DDL or a tool: they reach outside the schema or change it.
_FORBIDDEN = re.compile(r"\b(ATTACH|DETACH|PRAGMA|DROP|ALTER|VACUUM|REINDEX|LOAD_EXTENSION|TRIGGER)\b", re.I)
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_][A-Za-z0-9_]*)")
_SCALARS = (str, int, float, bool, type(None))
_RESERVED_TOOLS = {"search", "run_python"}


class Invalid(ValueError):
    """A teacher answer that fails validation; the message is the recorded reason."""


@dataclass(frozen=True)
class CheckedTool:
    """A tool that ran: its spec, the arguments it ran with, what it returned (first rows), its `noun`."""

    spec: ToolSpec
    args: dict[str, Any]
    result: list[tuple[Any, ...]]
    noun: str | None


def parse_json_object(text: str) -> dict[str, Any]:
    """The JSON object in a reply: a ```json fence if any, else the outermost {...}."""
    fenced = _FENCE.findall(text)
    if not fenced and "{" not in text and "[" not in text:
        raise Invalid("no JSON object found in the reply")
    candidates = fenced + [text]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start:end + 1])
    error = "no JSON object found"
    for c in candidates:
        try:
            obj = json.loads(c)
        except json.JSONDecodeError as e:
            error = f"bad JSON: {e}"
            continue
        if isinstance(obj, dict):
            return obj
        error = f"expected a JSON object, got {type(obj).__name__}"
    raise Invalid(error)


def _single_statement(sql: str, what: str) -> str:
    sql = sql.strip().rstrip(";").strip()
    if not sql:
        raise Invalid(f"{what}: empty statement")
    forbidden = _FORBIDDEN.search(_strip_literals(sql))
    if forbidden:
        raise Invalid(f"{what}: forbidden keyword {forbidden.group(1).upper()}")
    if _has_second_statement(sql):
        raise Invalid(f"{what}: more than one SQL statement")
    return sql


def _has_second_statement(sql: str) -> bool:
    """True when a ';' outside quotes is followed by more SQL."""
    quote = None
    for i, ch in enumerate(sql):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"`":
            quote = ch
        elif ch == ";" and sql[i + 1:].strip():
            return True
    return False


def scratch_db(ddl: list[str]) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute("PRAGMA foreign_keys = ON")
    for stmt in ddl:
        conn.execute(stmt)
    return conn


def tables_of(conn: sqlite3.Connection) -> dict[str, list[str]]:
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY rowid")]
    return {n: [c[1] for c in conn.execute(f"PRAGMA table_info({n})")] for n in names}


def check_schema(obj: dict[str, Any], bounds: tuple[int, int]) -> dict[str, Any]:
    """{"description", "ddl": [CREATE TABLE ...]} -> the cleaned description and DDL."""
    ddl, description = obj.get("ddl"), obj.get("description")
    if not isinstance(ddl, list) or not all(isinstance(s, str) for s in ddl):
        raise Invalid("schema: 'ddl' must be a list of CREATE TABLE strings")
    if not bounds[0] <= len(ddl) <= bounds[1]:
        raise Invalid(f"schema: {len(ddl)} tables, expected {bounds[0]}-{bounds[1]}")
    if not isinstance(description, str) or not description.strip():
        raise Invalid("schema: 'description' must be a non-empty string")
    clean = []
    for i, stmt in enumerate(ddl):
        stmt = _single_statement(stmt, f"schema: ddl[{i}]")
        m = _CREATE.match(stmt)
        if not m:
            raise Invalid(f"schema: ddl[{i}] is not a CREATE TABLE statement")
        if not _IDENT.match(m.group(1)) or m.group(1).lower().startswith("sqlite"):
            raise Invalid(f"schema: table name '{m.group(1)}' is not allowed")
        clean.append(stmt)
    try:
        conn = scratch_db(clean)
    except sqlite3.Error as e:
        raise Invalid(f"schema: DDL does not execute: {e}") from None
    with conn:
        _check_references(conn)
    return {"ddl": clean, "description": description.strip()}


def _check_references(conn: sqlite3.Connection) -> None:
    tables = tables_of(conn)
    for table, cols in tables.items():
        for col in cols:
            if not _IDENT.match(col):
                raise Invalid(f"schema: column name '{table}.{col}' is not a plain identifier")
        for fk in conn.execute(f"PRAGMA foreign_key_list({table})"):
            parent, to = fk[2], fk[4]
            if parent not in tables:
                raise Invalid(f"schema: {table} references missing table '{parent}'")
            if to is not None and to not in tables[parent]:
                raise Invalid(f"schema: {table} references missing column '{parent}.{to}'")


def check_rows(obj: dict[str, Any], ddl: list[str]) -> dict[str, list[dict[str, Any]]]:
    """{table: [row, ...]} -> rows in table order, each inserted and foreign-key checked."""
    conn = scratch_db(ddl)
    try:
        tables = tables_of(conn)
        missing = [t for t in tables if not obj.get(t)]
        if missing:
            raise Invalid(f"rows: no rows for table(s) {', '.join(missing)}")
        extra = [t for t in obj if t not in tables]
        if extra:
            raise Invalid(f"rows: unknown table(s) {', '.join(map(str, extra))}")
        ordered: dict[str, list[dict[str, Any]]] = {}
        for table in tables:  # DDL order, which is what Environment.create inserts in
            ordered[table] = [_insert(conn, table, tables[table], row, i) for i, row in enumerate(obj[table])]
        bad = conn.execute("PRAGMA foreign_key_check").fetchall()
        if bad:
            raise Invalid(f"rows: {len(bad)} rows break foreign keys, e.g. table {bad[0][0]} row {bad[0][1]}")
        return ordered
    finally:
        conn.close()


def _insert(conn: sqlite3.Connection, table: str, cols: list[str], row: Any, i: int) -> dict[str, Any]:
    if not isinstance(row, dict) or not row:
        raise Invalid(f"rows: {table}[{i}] is not a non-empty object")
    unknown = [c for c in row if c not in cols]
    if unknown:
        raise Invalid(f"rows: {table}[{i}] has unknown column(s) {', '.join(map(str, unknown))}")
    nested = [c for c, v in row.items() if not isinstance(v, _SCALARS)]
    if nested:
        raise Invalid(f"rows: {table}[{i}].{nested[0]} is not a scalar value")
    names = ", ".join(row)
    marks = ", ".join(f":{c}" for c in row)
    try:
        conn.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", row)
    except sqlite3.Error as e:
        raise Invalid(f"rows: {table}[{i}] rejected by the database: {e}") from None
    return dict(row)


def check_tools(obj: dict[str, Any], ddl: list[str], rows: dict[str, list[dict[str, Any]]],
                bounds: tuple[int, int]) -> list[CheckedTool]:
    """{"tools": [...]} -> tools whose SQL ran and returned rows for their example arguments."""
    items = obj.get("tools")
    if not isinstance(items, list) or not bounds[0] <= len(items) <= bounds[1]:
        raise Invalid(f"tools: expected a list of {bounds[0]}-{bounds[1]} tools")
    conn = scratch_db(ddl)
    try:
        for table, table_rows in rows.items():
            for row in table_rows:
                conn.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join(':' + c for c in row)})", row)
        conn.execute("PRAGMA query_only = ON")  # a tool that writes fails here, whatever its text says
        _bound_work(conn)
        checked: list[CheckedTool] = []
        for i, item in enumerate(items):
            tool = _tool(conn, item, i, rows)
            if tool.spec.name in {c.spec.name for c in checked} | _RESERVED_TOOLS:
                raise Invalid(f"tools: duplicate or reserved tool name '{tool.spec.name}'")
            checked.append(tool)
        return checked
    finally:
        conn.close()


def _bound_work(conn: sqlite3.Connection, max_steps: int = 5_000_000) -> None:
    """Abort the step's queries past ~max_steps VM instructions in total: a cross join must not hang the stage."""
    calls = [0]

    def tick() -> int:
        calls[0] += 1
        return int(calls[0] * 1000 > max_steps)

    conn.set_progress_handler(tick, 1000)


def _tool(conn: sqlite3.Connection, item: Any, i: int, rows: dict[str, list[dict[str, Any]]]) -> CheckedTool:
    if not isinstance(item, dict):
        raise Invalid(f"tools[{i}]: not an object")
    what = f"tools[{i}] ({item.get('name')!r})"
    params = item.get("parameters") or {"type": "object", "properties": {}, "required": []}
    if not isinstance(params, dict) or not isinstance(params.get("properties", {}), dict):
        raise Invalid(f"{what}: 'parameters' must be a JSON-schema object with 'properties'")
    params = {"type": "object", "properties": params.get("properties", {}), "required": params.get("required", [])}
    sql = _single_statement(str(item.get("sql") or ""), what)
    if not re.match(r"^\s*(SELECT|WITH)\b", sql, re.I):
        raise Invalid(f"{what}: the SQL must be a single SELECT")
    try:
        spec = ToolSpec(name=item.get("name"), description=str(item.get("description") or "").strip() or "-",
                        parameters=params, kind="db", sql=sql, latency_s=0.2 + 0.2 * (" JOIN " in sql.upper()))
    except ValidationError as e:
        first = e.errors()[0]
        raise Invalid(f"{what}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    _check_params(spec, what)
    args = item.get("example_arguments") or sample_arguments(spec, rows)
    try:
        check_arguments(spec, args)
        result = conn.execute(sql, {k: args.get(k) for k in spec.parameters["properties"]}).fetchmany(5)
    except ToolError as e:
        raise Invalid(f"{what}: example arguments: {e}") from None
    except sqlite3.Error as e:
        raise Invalid(f"{what}: SQL fails: {e}") from None
    if not result:
        raise Invalid(f"{what}: returned no rows for example arguments {json.dumps(args, default=str)[:200]}")
    noun = item.get("noun")
    return CheckedTool(spec=spec, args=args, result=[tuple(r) for r in result],
                       noun=noun if isinstance(noun, str) and noun.strip() else None)


def _check_params(spec: ToolSpec, what: str) -> None:
    props = spec.parameters["properties"]
    for name, schema in props.items():
        if not _IDENT.match(str(name)) or not isinstance(schema, dict):
            raise Invalid(f"{what}: parameter '{name}' needs a plain name and a schema object")
    used = set(_PARAM.findall(_strip_literals(spec.sql or "")))
    undeclared = used - set(props)
    if undeclared:
        raise Invalid(f"{what}: SQL uses undeclared parameter(s) {', '.join(sorted(undeclared))}")
    unused = set(props) - used
    if unused:
        raise Invalid(f"{what}: declared parameter(s) never used in SQL: {', '.join(sorted(unused))}")
    bad_required = [r for r in spec.parameters["required"] if r not in props]
    if bad_required:
        raise Invalid(f"{what}: required parameter(s) not declared: {', '.join(map(str, bad_required))}")


def _strip_literals(sql: str) -> str:
    return re.sub(r"'(?:[^']|'')*'", "''", sql)


def sample_arguments(spec: ToolSpec, rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Arguments from one row of the table whose columns cover most parameters (by name)."""
    props = spec.parameters["properties"]
    best = max(rows.items(), key=lambda kv: sum(p in (kv[1][0] if kv[1] else {}) for p in props), default=None)
    if best is None or not best[1]:
        return {}
    row = best[1][0]
    return {p: row[p] for p in props if p in row}


def check_documents(obj: dict[str, Any], max_docs: int) -> list[dict[str, str]]:
    """{"documents": [{title, text, question?, answer?}]} -> cleaned documents.

    A question/answer pair is kept only when the answer appears verbatim in the text,
    so a document question is verifiable against its document.
    """
    docs = obj.get("documents")
    if not isinstance(docs, list) or not 1 <= len(docs) <= max_docs:
        raise Invalid(f"documents: expected a list of 1-{max_docs} documents")
    out = []
    for i, d in enumerate(docs):
        if not isinstance(d, dict) or not str(d.get("title") or "").strip() or len(str(d.get("text") or "")) < 20:
            raise Invalid(f"documents[{i}]: needs a title and a text of at least 20 characters")
        doc = {"title": str(d["title"]).strip()[:200], "text": str(d["text"]).strip()[:4000]}
        question, answer = str(d.get("question") or "").strip(), str(d.get("answer") or "").strip()
        if question and answer and answer.casefold() in doc["text"].casefold():
            doc.update(question=question, answer=answer)
        out.append(doc)
    return out
