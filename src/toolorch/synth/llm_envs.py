"""LLM environment generator: a teacher model writes the schema, rows, tools and documents.

As in ToolScale, the teacher (any OpenAI-compatible endpoint) is prompted step by step:
schema (CREATE TABLE DDL with foreign keys) -> rows (JSON per table) -> tools (name,
description, JSON-schema parameters, one parameterised SELECT with `:params`, example
arguments) -> documents. Everything it returns is validated against a scratch SQLite
database before it is kept; an invalid answer is rejected with its reason (`Rejection`)
and the step is asked again, with the reason as feedback, up to `max_attempts` times.
A domain that exhausts its attempts yields a `GenerationFailure` instead of raising,
so a stage can count it and move on.

    gen = LLMGenerator("http://127.0.0.1:8000/v1", "teacher", api_key_env="TEACHER_KEY")
    result = gen.generate("veterinary clinic", seed=0, out_dir=Path("envs"))
    if isinstance(result, GenerationFailure): print(result.reason, result.rejections)

Generated tools are read-only (lookups, filters, joins, aggregates): a teacher's write
statement cannot be checked for intent the way a query's result can.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Callable

from toolorch.core.records import Record
from toolorch.runtime.env.world import Document, Environment, EnvSpec, search_tool
from toolorch.synth.domain import Arg, DbTool, FactQA, SynthHints
from toolorch.synth.envs import write_environment
from toolorch.synth.llm_checks import (
    CheckedTool,
    Invalid,
    check_documents,
    check_rows,
    check_schema,
    check_tools,
    parse_json_object,
)

STEPS = ("schema", "rows", "tools", "documents")


class Rejection(Record):
    """One teacher answer that failed validation (or a request that failed)."""

    step: str
    attempt: int  # 1-based, within the step
    reason: str


class GenerationFailure(Record):
    """A domain the teacher could not produce a valid environment for."""

    domain: str
    step: str  # the step whose attempts ran out
    reason: str
    rejections: list[Rejection]


def env_name(domain: str) -> str:
    """A folder- and identifier-safe environment name for a free-text domain."""
    name = re.sub(r"[^a-z0-9]+", "_", domain.casefold()).strip("_")
    return name[:48] or "domain"


_SYSTEM = ("You design realistic, self-consistent SQLite worlds for training tool-using assistants. "
           "Answer with one JSON object inside a ```json fence and nothing else.")

_ASK = {
    "schema": (
        "Step: schema. Domain: {domain}.\n"
        "Design {min_tables}-{max_tables} related tables. Return {{\"description\": \"one sentence about the "
        "organisation\", \"ddl\": [\"CREATE TABLE ...\", ...]}}. Each table has an INTEGER PRIMARY KEY `id`; "
        "child tables reference parents with REFERENCES parent(id); parents come first. Column names are "
        "snake_case; use TEXT, INTEGER or REAL."),
    "rows": (
        "Step: rows. Domain: {domain}.\nSchema:\n{ddl}\n"
        "Return {{\"<table>\": [{{\"<column>\": value, ...}}, ...], ...}} with {rows} realistic rows per "
        "table, every table present. Ids start at 1; every foreign key value must be an existing parent id."),
    "tools": (
        "Step: tools. Domain: {domain}.\nSchema:\n{ddl}\nSample rows:\n{sample}\n"
        "Return {{\"tools\": [...]}} with {min_tools}-{max_tools} read-only tools (lookups, filters, joins, "
        "aggregates). Each tool: {{\"name\": \"snake_case\", \"description\": \"...\", \"parameters\": "
        "{{\"type\": \"object\", \"properties\": {{\"p\": {{\"type\": \"string\"}}}}, \"required\": [\"p\"]}}, "
        "\"sql\": \"one SELECT using :p\", \"example_arguments\": {{\"p\": \"a value from the rows\"}}, "
        "\"noun\": \"what one call returns, e.g. the phone number of {{p}}\"}}. "
        "Each tool must return at least one row for its example arguments."),
    "documents": (
        "Step: documents. Domain: {domain}. Organisation: {description}\n"
        "Return {{\"documents\": [{{\"title\": \"...\", \"text\": \"...\", \"question\": \"...\", "
        "\"answer\": \"...\"}}, ...]}}: {docs} short policy or FAQ documents (2-6 sentences each) with facts "
        "that are not in the database; `question` asks for one such fact and `answer` quotes it from `text`."),
}


class LLMGenerator:
    """Teacher-driven `EnvGenerator`; `generate` returns an Environment or a GenerationFailure.

    Args:
        base_url: the teacher's OpenAI-compatible endpoint (".../v1").
        model: the served model name.
        api_key_env: name of the environment variable that holds the key (never the key).
        max_attempts: answers asked per step before the domain fails.
        timeout_s: per request.
        request_attempts: transport retries per request (connection errors, 5xx), with backoff.
    """

    def __init__(self, base_url: str, model: str, api_key_env: str | None = None, max_attempts: int = 3,
                 timeout_s: float = 120.0, request_attempts: int = 2, max_tokens: int = 3072,
                 temperature: float = 0.7, rows_per_table: int = 8, tables: tuple[int, int] = (2, 5),
                 tools: tuple[int, int] = (4, 12), docs: int = 4):
        if max_attempts < 1 or request_attempts < 1:
            raise ValueError("max_attempts and request_attempts must be >= 1")
        self.base_url, self.model, self.api_key_env = base_url, model, api_key_env
        self.max_attempts, self.timeout_s, self.request_attempts = max_attempts, timeout_s, request_attempts
        self.max_tokens, self.temperature = max_tokens, temperature
        self.rows_per_table, self.tables, self.tools, self.docs = rows_per_table, tables, tools, docs
        self.rejections: dict[str, list[Rejection]] = {}  # by domain, kept across calls for the stage's counts
        self._client: Any = None

    def generate(self, domain: str, seed: int, out_dir: Path) -> Environment | GenerationFailure:
        rejections: list[Rejection] = []
        self.rejections[domain] = rejections
        state: dict[str, Any] = {"domain": domain}
        try:
            for step in STEPS:
                if not self._run_step(step, state, seed, rejections):
                    last = rejections[-1].reason if rejections else "no answer"
                    return GenerationFailure(domain=domain, step=step, rejections=list(rejections),
                                             reason=f"{step}: no valid answer in {self.max_attempts} attempts "
                                                    f"(last: {last})")
            name = env_name(domain)
            spec = EnvSpec(name=name, description=state["description"], ddl=state["ddl"],
                           tools=[c.spec for c in state["tools"]] + [search_tool()])
            docs, facts = _documents(state["documents"], name)
            hints = SynthHints(generator="llm", domain=name, seed=seed, facts=facts,
                               tools=tool_hints(state["tools"], state["rows"]))
            return write_environment(Path(out_dir), spec, state["rows"], docs, hints)
        except Exception as e:  # a bug or a disk error must still leave a record, not end the stage
            rejections.append(Rejection(step="write", attempt=1, reason=f"{e.__class__.__name__}: {e}"))
            return GenerationFailure(domain=domain, step="write", reason=rejections[-1].reason,
                                     rejections=list(rejections))

    def counts(self) -> dict[str, Any]:
        """Rejections by step and in total, over every domain generated so far."""
        by_step = {s: 0 for s in (*STEPS, "write")}
        for rs in self.rejections.values():
            for r in rs:
                by_step[r.step] = by_step.get(r.step, 0) + 1
        return {"rejected": sum(by_step.values()), "rejected_by_step": by_step}

    # ---- steps ---------------------------------------------------------------------------

    def _run_step(self, step: str, state: dict[str, Any], seed: int, rejections: list[Rejection]) -> bool:
        check = self._checks()[step]
        feedback: str | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                text = self._ask(step, state, seed + attempt - 1, feedback)
                state.update(check(parse_json_object(text), state))
                return True
            except Invalid as e:
                reason = str(e)
            except Exception as e:  # the endpoint, or anything unexpected: recorded, never raised
                reason = f"{e.__class__.__name__}: {e}"
            rejections.append(Rejection(step=step, attempt=attempt, reason=reason[:500]))
            feedback = reason[:500]
        return False

    def _checks(self) -> dict[str, Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]]:
        return {
            "schema": lambda obj, st: check_schema(obj, self.tables),
            "rows": lambda obj, st: {"rows": check_rows(obj, st["ddl"])},
            "tools": lambda obj, st: {"tools": check_tools(obj, st["ddl"], st["rows"], self.tools)},
            "documents": lambda obj, st: {"documents": check_documents(obj, max_docs=max(3 * self.docs, 10))},
        }

    def _ask(self, step: str, state: dict[str, Any], seed: int, feedback: str | None) -> str:
        from toolorch.runtime.openai_chat import complete, make_client, reply_text

        if self._client is None:
            key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
            self._client = make_client(self.base_url, key, self.timeout_s)
        messages = [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": self._prompt(step, state)}]
        if feedback:
            messages.append({"role": "user", "content": f"Your previous answer was rejected: {feedback}\n"
                                                        "Fix it and answer again."})
        resp = complete(self._client, attempts=self.request_attempts, model=self.model, messages=messages,
                        max_tokens=self.max_tokens, temperature=self.temperature, seed=seed)
        content = reply_text(resp)
        if not content:
            raise Invalid("the teacher returned an empty message")
        return content

    def _prompt(self, step: str, state: dict[str, Any]) -> str:
        ddl = "\n".join(state.get("ddl", []))
        sample = {t: rs[:2] for t, rs in state.get("rows", {}).items()}
        return _ASK[step].format(
            domain=state["domain"], min_tables=self.tables[0], max_tables=self.tables[1], ddl=ddl,
            rows=self.rows_per_table, sample=json.dumps(sample, ensure_ascii=False),
            min_tools=self.tools[0], max_tools=self.tools[1], docs=self.docs,
            description=state.get("description", ""))


def _documents(checked: list[dict[str, str]], name: str) -> tuple[list[Document], list[FactQA]]:
    docs, facts = [], []
    for i, d in enumerate(checked):
        doc_id = f"{name}-doc-{i + 1:02d}"
        docs.append(Document(id=doc_id, title=d["title"], text=d["text"]))
        if "question" in d:
            facts.append(FactQA(key=f"doc{i + 1}", doc_id=doc_id, question=d["question"], answer=d["answer"],
                                answer_type="number" if _is_number(d["answer"]) else "string"))
    return docs, facts


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", "").replace("$", ""))
    except ValueError:
        return False
    return True


_AGGREGATE = re.compile(r"\b(COUNT|SUM|AVG|MAX|MIN|TOTAL)\s*\(", re.I)


def tool_hints(checked: list[CheckedTool], rows: dict[str, list[dict[str, Any]]]) -> list[DbTool]:
    """Hints for task synthesis, for tools whose example call gave one value and whose
    arguments trace back to a table column (the slot values a question can be asked about)."""
    hints = []
    for c in checked:
        if len(c.result) != 1 or len(c.result[0]) != 1 or c.result[0][0] is None:
            continue  # a question needs exactly one answer value
        props = c.spec.parameters["properties"]
        args = [Arg(name=p, source=src, type=props[p].get("type", "string"))
                for p in props if (src := column_of(p, c.args.get(p), rows))]
        if len(args) != len(props):
            continue
        sql = c.spec.sql or ""
        role = "aggregate" if _AGGREGATE.search(sql) else "list" if "GROUP_CONCAT" in sql.upper() else "value"
        slots = set(re.findall(r"{(\w+)}", c.noun or ""))
        noun = c.noun if c.noun and slots == set(props) else (
            f"the {c.spec.name.replace('_', ' ')} for " + " and ".join(f"{{{p}}}" for p in props)
            if props else f"the {c.spec.name.replace('_', ' ')}")
        answer_type = "number" if isinstance(c.result[0][0], (int, float)) else "string"
        hints.append(DbTool(name=c.spec.name, description=c.spec.description, sql=sql, args=tuple(args),
                            noun=noun, role=role, answer_type=answer_type))
    return hints


def column_of(param: str, value: Any, rows: dict[str, list[dict[str, Any]]]) -> str | None:
    """The "table.column" holding `value`, preferring a column named like the parameter."""
    found = [(t, col) for t, rs in rows.items() for r in rs for col, v in r.items() if v == value and value is not None]
    for t, col in found:
        if col == param:
            return f"{t}.{col}"
    return f"{found[0][0]}.{found[0][1]}" if found else None
