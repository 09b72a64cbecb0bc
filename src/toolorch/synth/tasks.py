"""Task synthesis (ToolScale phase 2): environment -> questions whose answers come from executing gold calls.

Templates are derived from an environment's tool hints (`synth.json`), one per
(category, tool or tool chain or fact):
    lookup     one value/list tool                              [db]
    multi_hop  a tool whose result is the next tool's argument  [db, db(, db)] via "$prev"
    aggregate  a count/sum/avg/max tool, or rows + run_python   [db] | [db, run_python]
    document   a fact only the documents hold                   [search]
    reasoning  arithmetic/comparison over two looked-up values  [db, db, run_python]
Slots (tool arguments) are sampled from the DB; each draft's gold calls are executed
through a real Toolbox and the answer is what they return (`synth.gold`).

    tasks, more, rejected = synthesize_env_tasks(env, cfg.catalog(), per_template=1, seed=0)
"""
from __future__ import annotations

import hashlib
import json
import random
import sqlite3
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from toolorch.core.catalog import Catalog
from toolorch.core.records import Task, ToolCall
from toolorch.runtime.env.world import Environment
from toolorch.runtime.gold import PREV, GoldError, gold_answer
from toolorch.runtime.preferences import sample_preference
from toolorch.runtime.tools import Toolbox
from toolorch.synth.domain import Arg, DbTool, FactQA, SynthHints, synth_seed
from toolorch.synth.envs import load_hints

VALUE_FORMS = ("What is {noun}?", "Can you tell me {noun}?", "Please look up {noun}.", "I need to know {noun}.")
LIST_FORMS = ("What are {noun}?", "List {noun}.", "Which are {noun}?")
ROWS_FORMS = {
    "sum": ("What is the total {label} over {noun}?", "Add up the {label} across {noun}."),
    "max": ("What is the largest {label} among {noun}?", "Among {noun}, what is the highest {label}?"),
    "avg": ("What is the average {label} over {noun}, rounded to 2 decimals?",
            "Compute the mean {label} across {noun} (2 decimals)."),
}
ROWS_CODE = {"sum": "round(sum(values), 2)", "max": "max(values)", "avg": "round(sum(values) / len(values), 2)"}
PAIR_FORMS = {
    "diff": ("What is {a} minus {b}?",
             "How much greater is {a} than {b}? Give a negative number if it is smaller."),
    "compare": ("Is {a} greater than {b}?", "Is {a} larger than {b}? Answer yes or no."),
}
PAIR_CODE = {"diff": "print(round(a - b, 2))", "compare": "print('yes' if a > b else 'no')"}
PAIR_TYPE = {"diff": "number", "compare": "bool"}


@dataclass
class Draft:
    """A task before execution: the answer is filled in by running `calls`."""

    slots: dict[str, Any]
    question: str
    calls: list[ToolCall]
    answer_type: str
    fact_answer: str | None = None


@dataclass(frozen=True)
class Template:
    key: str  # "<category>.<tool or chain or fact>"
    category: str
    draft: Callable[[Context, random.Random], Draft]


@dataclass
class Context:
    """What templates draw on while synthesizing one environment's tasks."""

    env: Environment
    hints: SynthHints
    toolbox: Toolbox
    _rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def rows(self, table: str) -> list[dict[str, Any]]:
        if table not in self._rows:
            conn = sqlite3.connect(f"file:{self.env.db_path}?mode=ro", uri=True)
            conn.row_factory = sqlite3.Row
            try:
                self._rows[table] = [dict(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY id")]
            finally:
                conn.close()
        return self._rows[table]

    def sample_args(self, tool: DbTool, rng: random.Random) -> dict[str, Any]:
        """Argument values from real rows; args over one table come from one row, so they match."""
        picked: dict[str, dict[str, Any]] = {}
        args: dict[str, Any] = {}
        for a in tool.args:
            table, col = a.source.split(".")
            if table not in picked:
                picked[table] = rng.choice(self.rows(table))
            args[a.name] = picked[table][col]
        return args

    def observe(self, call: ToolCall) -> str:
        obs = self.toolbox.call(call)
        if obs.error:
            raise GoldError(f"{call.name} failed: {obs.content[:200]}")
        return obs.content


def _render(arg: Arg, value: Any) -> str:
    return f"'{value}'" if arg.quote else str(value)


def phrase(tool: DbTool, args: dict[str, Any], entity: bool = False) -> str:
    words = (tool.entity or tool.noun) if entity else tool.noun
    return words.format(**{a.name: _render(a, args[a.name]) for a in tool.args})


def _ask(forms: tuple[str, ...], rng: random.Random, **words: str) -> str:
    return rng.choice(forms).format(**words)


# ---- templates ------------------------------------------------------------------------------

def single_tool(tool: DbTool) -> Callable[[Context, random.Random], Draft]:
    def draft(ctx: Context, rng: random.Random) -> Draft:
        args = ctx.sample_args(tool, rng)
        forms = LIST_FORMS if tool.role == "list" else VALUE_FORMS
        return Draft(args, _ask(forms, rng, noun=phrase(tool, args)), [ToolCall(name=tool.name, arguments=args)],
                     tool.answer_type)
    return draft


def chain(tools: list[DbTool]) -> Callable[[Context, random.Random], Draft]:
    """tools[0] with sampled args, each later tool fed the previous result ("$prev")."""
    def draft(ctx: Context, rng: random.Random) -> Draft:
        args = ctx.sample_args(tools[0], rng)
        calls = [ToolCall(name=tools[0].name, arguments=args)]
        words = phrase(tools[0], args, entity=True)
        for i, tool in enumerate(tools[1:], start=1):
            name = tool.args[0].name
            calls.append(ToolCall(name=tool.name, arguments={name: PREV}))
            words = tool.noun.format(**{name: words}) if i == len(tools) - 1 else \
                (tool.entity or tool.noun).format(**{name: words})
        last = tools[-1]
        forms = LIST_FORMS if last.role == "list" else VALUE_FORMS
        return Draft(args, _ask(forms, rng, noun=words), calls, last.answer_type)
    return draft


def rows_op(tool: DbTool, op: str) -> Callable[[Context, random.Random], Draft]:
    def draft(ctx: Context, rng: random.Random) -> Draft:
        args = ctx.sample_args(tool, rng)
        rows_call = ToolCall(name=tool.name, arguments=args)
        rows = ctx.observe(rows_call)
        if not rows.startswith("[{"):
            raise GoldError(f"{tool.name} returned no rows to aggregate")
        code = (f"import json\nrows = json.loads({rows!r})\nvalues = [row[{tool.value_col!r}] for row in rows]\n"
                f"print({ROWS_CODE[op]})")
        label = (tool.value_col or "").replace("_", " ")
        question = _ask(ROWS_FORMS[op], rng, label=label, noun=phrase(tool, args))
        return Draft(args, question, [rows_call, ToolCall(name="run_python", arguments={"code": code})], "number")
    return draft


def pair_op(tool: DbTool, op: str) -> Callable[[Context, random.Random], Draft]:
    """Two lookups of one numeric tool, combined in the sandbox (the expert-worthy kind)."""
    def draft(ctx: Context, rng: random.Random) -> Draft:
        first, second = ctx.sample_args(tool, rng), ctx.sample_args(tool, rng)
        if first == second:
            raise GoldError("both lookups drew the same arguments")
        calls = [ToolCall(name=tool.name, arguments=first), ToolCall(name=tool.name, arguments=second)]
        a, b = (_number(ctx.observe(c)) for c in calls)
        calls.append(ToolCall(name="run_python", arguments={"code": f"a = {a}\nb = {b}\n{PAIR_CODE[op]}"}))
        question = _ask(PAIR_FORMS[op], rng, a=phrase(tool, first), b=phrase(tool, second))
        return Draft({"a": first, "b": second}, question, calls, PAIR_TYPE[op])
    return draft


def _number(text: str) -> str:
    try:
        float(text)
    except ValueError:
        raise GoldError(f"expected a number, got {text[:60]!r}") from None
    return text


def document(fact: FactQA) -> Callable[[Context, random.Random], Draft]:
    def draft(ctx: Context, rng: random.Random) -> Draft:
        call = ToolCall(name="search", arguments={"query": fact.question})
        return Draft({"fact": fact.key}, fact.question, [call], fact.answer_type, fact_answer=fact.answer)
    return draft


def templates(hints: SynthHints) -> list[Template]:
    tools = hints.tools
    out: list[Template] = []
    for t in tools:
        if t.role in ("value", "list"):
            out.append(Template(f"lookup.{t.name}", "lookup", single_tool(t)))
        elif t.role == "aggregate":
            out.append(Template(f"aggregate.{t.name}", "aggregate", single_tool(t)))
        elif t.role == "rows" and t.value_col:
            out += [Template(f"aggregate.{t.name}.{op}", "aggregate", rows_op(t, op)) for op in ROWS_CODE]
        if t.answer_type == "number" and len(t.args) == 1 and t.role in ("value", "aggregate"):
            out += [Template(f"reasoning.{op}.{t.name}", "reasoning", pair_op(t, op)) for op in PAIR_CODE]
    for path in chains(tools):
        out.append(Template("multi_hop." + ".".join(t.name for t in path), "multi_hop", chain(path)))
    out += [Template(f"document.{f.key}", "document", document(f)) for f in hints.facts]
    return out


def chains(tools: list[DbTool], max_len: int = 3) -> Iterator[list[DbTool]]:
    """Tool paths where each value result is the single argument of the next tool."""
    def feeds(a: DbTool, b: DbTool) -> bool:
        return a.role == "value" and a.returns is not None and len(b.args) == 1 and b.args[0].source == a.returns \
            and b.role != "rows"

    def extend(path: list[DbTool]) -> Iterator[list[DbTool]]:
        if len(path) >= 2:
            yield path
        if len(path) < max_len:
            for b in tools:
                if b not in path and feeds(path[-1], b):
                    yield from extend(path + [b])
    for a in tools:
        yield from extend([a])


# ---- synthesis ------------------------------------------------------------------------------

def task_id(env: str, template: str, slots: dict[str, Any]) -> str:
    digest = hashlib.sha1(json.dumps(slots, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"{env}.{template}.{digest}"


def synthesize_env_tasks(env: Environment, catalog: Catalog, per_template: int, seed: int,
                         attempts_per_task: int = 4, preference_mix: dict[str, float] | None = None,
                         more_per_template: int = 0) -> tuple[list[Task], list[Task], Counter[str]]:
    """Tasks for one environment, each answered by executing its gold calls and asked by a user
    drawn from `preference_mix` (runtime.preferences); then up to `more_per_template` further
    fillings of each template (the split keeps them for held-out templates only), and rejections
    by reason. The first list is the same whatever `more_per_template` is."""
    hints = load_hints(env)
    rejected: Counter[str] = Counter()
    tasks: list[Task] = []
    more: list[Task] = []
    with env.session() as session:
        ctx = Context(env, hints, Toolbox(catalog, session, experts={}, with_code=True))
        for template in templates(hints):
            first, extra = _fill(ctx, template, catalog, per_template, more_per_template, seed, attempts_per_task,
                                 rejected, preference_mix)
            tasks += first
            more += extra
    return tasks, more, rejected


def _fill(ctx: Context, template: Template, catalog: Catalog, per_template: int, more_per_template: int, seed: int,
          attempts_per_task: int, rejected: Counter[str], preference_mix: dict[str, float] | None,
          ) -> tuple[list[Task], list[Task]]:
    """`per_template` distinct fillings in `per_template * attempts_per_task` tries, then up to
    `more_per_template` more from the same random stream, so the first ones never change."""
    template_id = f"{ctx.env.name}.{template.key}"
    rng = random.Random(synth_seed(seed, template_id))
    made: dict[str, Task] = {}

    def draw(target: int, tries: int) -> None:
        for _ in range(tries):
            if len(made) >= target:
                return
            try:
                draft = template.draft(ctx, rng)
                tid = task_id(ctx.env.name, template.key, draft.slots)
                if tid in made:
                    continue
                answer = gold_answer(ctx.toolbox, draft.calls, draft.fact_answer)
            except GoldError as e:
                rejected[_reason_kind(str(e))] += 1
                continue
            made[tid] = Task(id=tid, env=ctx.env.name, question=draft.question, answer=answer,
                             answer_type=draft.answer_type, category=template.category,  # type: ignore[arg-type]
                             difficulty=len(draft.calls), template=template_id, gold_calls=draft.calls,
                             preference=sample_preference(catalog, synth_seed(seed, tid), mix=preference_mix))

    draw(per_template, per_template * attempts_per_task)
    first = len(made)
    if more_per_template:
        draw(first + more_per_template, more_per_template * attempts_per_task)
    tasks = list(made.values())
    return tasks[:first], tasks[first:]


def _reason_kind(message: str) -> str:
    """Group rejection messages by kind for the metrics (values differ, kinds repeat)."""
    for kind in ("returned nothing", "failed", "more than the policy can see", "did not return the document",
                 "expected a number", "same arguments", "no rows to aggregate"):
        if kind in message:
            return kind
    return "other"


def synthesize_tasks(envs: list[Environment], catalog: Catalog, per_template: int, seed: int,
                     workers: int = 1, preference_mix: dict[str, float] | None = None, more_per_template: int = 0,
                     ) -> tuple[list[Task], list[Task], Counter[str]]:
    """Tasks of many environments (`synthesize_env_tasks`), in environment order whatever the
    number of workers.

    Threads suffice: most of the time goes to sandbox subprocesses and SQLite, outside the GIL.
    """
    def one(env: Environment) -> tuple[list[Task], list[Task], Counter[str]]:
        return synthesize_env_tasks(env, catalog, per_template, seed, preference_mix=preference_mix,
                                    more_per_template=more_per_template)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(one, envs))
    rejected: Counter[str] = Counter()
    for _, _, r in results:
        rejected.update(r)
    return [t for tasks, _, _ in results for t in tasks], [t for _, more, _ in results for t in more], rejected
