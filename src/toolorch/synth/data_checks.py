"""Data-quality gates: Great Expectations suites over environments, tasks and trajectories.

    frames = {"tasks": task_frame(...), ...}          # plain pandas, built without GE
    results = run_suites(frames, CheckSettings(), docs_dir=Path("data_docs"))

Each suite validates one pandas frame (one row per environment, table, task,
category, held-out task or trajectory); derived columns (`reverifies`,
`env_in_train`, `share`, ...) turn cross-file rules into column expectations, so
every failure is reported as `<suite>: <expectation>(<column>)`. All suites run in
one ephemeral GE context (importing GE costs ~5 s: it happens only in `run_suites`),
with progress bars and analytics off and Data Docs written to an explicit folder.
"""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from toolorch.core.errors import RunFailed
from toolorch.core.jsonl import read_objects
from toolorch.core.records import CATEGORIES

ANSWER_TYPES = ["string", "number", "list", "bool"]
SUITES = ("environments", "env_tables", "tasks", "task_balance", "split", "trajectories")
# The columns that name a row of each suite's frame (and, for tasks, why it failed to re-verify):
# a failed expectation reports its failing rows by these (GE's unexpected_index_column_names).
ROW_KEYS = {"environments": ["env"], "env_tables": ["env", "table"], "tasks": ["id", "reverify_error"],
            "task_balance": ["category"], "split": ["id"], "trajectories": ["task_id", "policy"]}


class CheckSettings(BaseModel):
    """`stages.validate` in a profile YAML: the ranges the data must stay within."""

    model_config = ConfigDict(extra="forbid")

    tools_per_env: tuple[int, int] = (8, 20)
    tables_per_env: tuple[int, int] = (3, 5)
    rows_per_table: tuple[int, int] = (50, 300)
    min_docs_per_env: int = Field(1, ge=0)
    difficulty: tuple[int, int] = (1, 6)
    gold_calls_per_task: tuple[int, int] = (1, 8)
    tool_calls_per_trajectory: tuple[int, int] = (1, 8)
    category_share: tuple[float, float] = (0.05, 0.6)  # each category's share of the kept train tasks
    heldout_envs: list[str] | None = None  # declared env-held-out envs; None = those with no train task
    # worlds imported from benchmarks keep their own shape: size and task-shape ranges skip them
    imported_generators: list[str] = ["tau2"]
    docs_dir: str = "reports/data_docs"
    write_data_docs: bool = True  # rendering costs ~2 s; quick checks may skip it
    workers: int = Field(2, ge=1, le=64)  # threads re-verifying tasks (sandbox runs are subprocesses)


class ValidationFailed(RunFailed):
    """At least one suite failed; the message lists each failing expectation by name and column,
    with its first failing rows (`rows`: name -> "id=t7, reverify_error=..."), where it has rows."""

    def __init__(self, failures: list[str], rows: dict[str, str] | None = None):
        self.failures = failures
        rows = rows or {}
        super().__init__("data validation failed:\n  " + "\n  ".join(
            f"{name} [{rows[name]}]" if name in rows else name for name in failures))


@dataclass
class SuiteResult:
    name: str
    success: bool
    evaluated: int
    failed: list[dict[str, Any]] = field(default_factory=list)

    def failure_names(self) -> list[str]:
        return [f"{self.name}: {f['expectation']}" for f in self.failed]

    def failure_rows(self) -> dict[str, str]:
        """failure name -> its first failing rows by their keys (ROW_KEYS), for failures that have rows."""
        out = {}
        for name, f in zip(self.failure_names(), self.failed):
            rows = f.get("rows", [])[:3]
            if rows:
                more = (f.get("unexpected_count") or 0) - len(rows)
                out[name] = "; ".join(", ".join(f"{k}={v}" for k, v in row.items()) for row in rows) + \
                    (f" and {more} more" if more > 0 else "")
        return out


# ---------------------------------------------------------------- reading

def read_records(path: str | Path) -> list[dict[str, Any]]:
    """JSONL rows as plain dicts: the checks must see bad rows (nulls, wrong types) to report them."""
    return [row for _, row in read_objects(path)]


def question_key(text: Any) -> str | None:
    """Questions that differ only in case, spacing or punctuation are the same question."""
    if not isinstance(text, str):
        return None
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


# ---------------------------------------------------------------- frames

def environment_frames(envs_dir: str | Path, imported_generators: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per environment folder, and one per (environment, table).

    `imported` marks worlds imported from a benchmark (their generator, from synth.json, is in
    `imported_generators`): they keep the benchmark's shape, so size ranges skip them.
    """
    envs, tables = [], []
    for folder in sorted(p for p in Path(envs_dir).iterdir() if (p / "env.json").exists()):
        spec = json.loads((folder / "env.json").read_text())
        counts, fk_bad = _table_counts(folder / "db.sqlite")
        n_docs = sum(1 for line in (folder / "docs.jsonl").open() if line.strip()) \
            if (folder / "docs.jsonl").exists() else 0
        imported = _generator(folder) in imported_generators
        envs.append({"env": spec.get("name"), "folder": folder.name, "imported": imported,
                     "n_tools": len(spec.get("tools", [])), "n_tables": len(counts), "n_docs": n_docs,
                     "fk_violations": fk_bad})
        tables += [{"env": spec.get("name"), "table": t, "rows": n, "imported": imported} for t, n in counts.items()]
    return (pd.DataFrame(envs, columns=["env", "folder", "imported", "n_tools", "n_tables", "n_docs",
                                        "fk_violations"]),
            pd.DataFrame(tables, columns=["env", "table", "rows", "imported"]))


def _generator(folder: Path) -> str | None:
    """Which generator built an environment (synth.json), None when it does not say."""
    try:
        return json.loads((folder / "synth.json").read_text()).get("generator")
    except (OSError, ValueError, AttributeError):
        return None


def _table_counts(db: Path) -> tuple[dict[str, int], int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        counts = {n: conn.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0] for n in names}
        fk_bad = len(conn.execute("PRAGMA foreign_key_check").fetchall())
    finally:
        conn.close()
    return counts, fk_bad


def task_frame(rows: list[dict[str, Any]], reverify_errors: list[str | None],
               imported_envs: set[str] = frozenset()) -> pd.DataFrame:
    """One row per task; `reverify_errors[i]` is None when executing row i's gold calls gives its answer.
    Tasks of imported worlds (`imported`) come with the benchmark: shape ranges skip them."""
    records = []
    for r, reason in zip(rows, reverify_errors, strict=True):
        records.append({
            "imported": r.get("env") in imported_envs,
            "id": r.get("id"), "split": r.get("split"), "env": r.get("env"), "question": r.get("question"),
            "answer": r.get("answer") if r.get("answer") != "" else None,
            "answer_type": r.get("answer_type", "string"), "category": r.get("category"),
            "difficulty": r.get("difficulty"), "template": r.get("template") or None,
            "n_gold_calls": len(r.get("gold_calls") or []), "reverifies": reason is None, "reverify_error": reason,
        })
    return pd.DataFrame(records, columns=["imported", "id", "split", "env", "question", "answer", "answer_type",
                                          "category",
                                          "difficulty", "template", "n_gold_calls", "reverifies",
                                          "reverify_error"])


def category_share_frame(kept_train: list[dict[str, Any]]) -> pd.DataFrame:
    """Each category's share of the kept train tasks (missing categories count as 0)."""
    total = len(kept_train) or 1
    counts = {c: 0 for c in CATEGORIES}
    for r in kept_train:
        counts[r.get("category")] = counts.get(r.get("category"), 0) + 1
    return pd.DataFrame([{"category": c, "tasks": n, "share": n / total} for c, n in counts.items()],
                        columns=["category", "tasks", "share"])


def split_frame(train: list[dict[str, Any]], heldout: list[dict[str, Any]],
                heldout_envs: list[str] | None) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Held-out tasks with what they share with train, and the train values they must avoid.

    A held-out task is env-held-out when its environment is declared held out (or, with no
    declaration, has no train task); otherwise it is template-held-out, and its template
    must never appear in train.
    """
    train_envs = sorted({str(r.get("env")) for r in train})
    declared = set(heldout_envs) if heldout_envs is not None else {str(r.get("env")) for r in heldout} - set(train_envs)
    rows = [{"id": r.get("id"), "question_key": question_key(r.get("question")), "env": r.get("env"),
             "template": r.get("template") or None, "env_heldout": r.get("env") in declared} for r in heldout]
    frame = pd.DataFrame(rows, columns=["id", "question_key", "env", "template", "env_heldout"])
    train_values = {
        "ids": sorted({str(r.get("id")) for r in train}),
        "question_keys": sorted({k for r in train if (k := question_key(r.get("question")))}),
        "templates": sorted({str(r["template"]) for r in train if r.get("template")}),
        "envs": train_envs,
    }
    return frame, train_values


def trajectory_frame(rows: list[dict[str, Any]], tasks_by_id: dict[str, Any],
                     is_correct: Callable[[Any, Any], bool]) -> pd.DataFrame:
    """One row per trajectory; `answer_matches` re-checks its answer against the kept task."""
    records = []
    for r in rows:
        usage = r.get("usage") or {}
        turns = r.get("turns") or []
        task = tasks_by_id.get(r.get("task_id"))
        records.append({
            "task_id": r.get("task_id"), "policy": r.get("policy"), "correct": r.get("correct") is True,
            "answer_matches": task is not None and is_correct(r.get("answer"), task),
            "n_tool_calls": sum(1 for t in turns if t.get("call") is not None),
            "cost_usd": usage.get("cost_usd"), "latency_s": usage.get("latency_s"),
            "stop_reason": r.get("stop_reason"),
        })
    return pd.DataFrame(records, columns=["task_id", "policy", "correct", "answer_matches", "n_tool_calls",
                                          "cost_usd", "latency_s", "stop_reason"])


# ---------------------------------------------------------------- suites

def suite_expectations(s: CheckSettings, env_names: list[str], kept_ids: list[str],
                       train_values: dict[str, list[str]]) -> dict[str, list[Any]]:
    import great_expectations.expectations as gxe

    def between(column: str, bounds: tuple[float, float]) -> Any:
        return gxe.ExpectColumnValuesToBeBetween(column=column, min_value=bounds[0], max_value=bounds[1])

    def generated_between(column: str, bounds: tuple[float, float]) -> Any:
        return gxe.ExpectColumnValuesToBeBetween(column=column, min_value=bounds[0], max_value=bounds[1],
                                                 row_condition="imported==False", condition_parser="pandas")

    def not_null(*columns: str) -> list[Any]:
        return [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in columns]

    return {
        "environments": [
            gxe.ExpectTableRowCountToBeBetween(min_value=1), gxe.ExpectColumnValuesToBeUnique(column="env"),
            generated_between("n_tools", s.tools_per_env), generated_between("n_tables", s.tables_per_env),
            gxe.ExpectColumnValuesToBeBetween(column="n_docs", min_value=s.min_docs_per_env),
            gxe.ExpectColumnValuesToBeInSet(column="fk_violations", value_set=[0]),
        ],
        "env_tables": [generated_between("rows", s.rows_per_table),
                       gxe.ExpectCompoundColumnsToBeUnique(column_list=["env", "table"])],
        "tasks": [
            gxe.ExpectTableRowCountToBeBetween(min_value=1), *not_null("id", "question", "answer"),
            gxe.ExpectColumnValuesToBeUnique(column="id"),
            gxe.ExpectColumnValuesToBeInSet(column="category", value_set=list(CATEGORIES)),
            gxe.ExpectColumnValuesToBeInSet(column="answer_type", value_set=ANSWER_TYPES),
            gxe.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "heldout"]),
            gxe.ExpectColumnValuesToBeInSet(column="env", value_set=env_names),
            generated_between("difficulty", s.difficulty), generated_between("n_gold_calls", s.gold_calls_per_task),
            gxe.ExpectColumnValuesToBeInSet(column="reverifies", value_set=[True]),
        ],
        "task_balance": [between("share", s.category_share)],
        "split": [
            gxe.ExpectColumnValuesToNotBeInSet(column="id", value_set=train_values["ids"]),
            gxe.ExpectColumnValuesToNotBeInSet(column="question_key", value_set=train_values["question_keys"]),
            gxe.ExpectColumnValuesToNotBeInSet(column="template", value_set=train_values["templates"],
                                               row_condition="env_heldout==False", condition_parser="pandas"),
            gxe.ExpectColumnValuesToNotBeInSet(column="env", value_set=train_values["envs"],
                                               row_condition="env_heldout==True", condition_parser="pandas"),
        ],
        "trajectories": [
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValuesToBeInSet(column="task_id", value_set=kept_ids),
            gxe.ExpectColumnValuesToBeInSet(column="correct", value_set=[True]),
            gxe.ExpectColumnValuesToBeInSet(column="answer_matches", value_set=[True]),
            between("n_tool_calls", s.tool_calls_per_trajectory),
            *not_null("cost_usd", "latency_s"),
            gxe.ExpectColumnValuesToBeBetween(column="cost_usd", min_value=0),
            gxe.ExpectColumnValuesToBeBetween(column="latency_s", min_value=0),
            gxe.ExpectColumnValuesToBeInSet(column="stop_reason", value_set=["answer"]),
        ],
    }


def expectation_name(config: Any) -> str:
    kwargs = config.kwargs
    target = kwargs.get("column") or ",".join(kwargs.get("column_list") or []) or "table"
    condition = kwargs.get("row_condition")
    if isinstance(condition, dict):  # GE stores a pandas condition as a pass-through filter
        condition = condition.get("pass_through_filter", condition)
    where = f" where {condition}" if condition else ""
    return f"{config.type}({target}){where}"


def _failure(result: Any) -> dict[str, Any]:
    info = result.result or {}
    failure = {"expectation": expectation_name(result.expectation_config),
               "unexpected_count": info.get("unexpected_count"),
               "examples": [_plain(v) for v in (info.get("partial_unexpected_list") or [])[:5]]}
    keys = info.get("unexpected_index_column_names") or []
    rows = [{k: _plain(row.get(k)) for k in keys} for row in (info.get("partial_unexpected_index_list") or [])[:10]]
    if rows:
        failure["rows"] = rows
    if "observed_value" in info:
        failure["observed_value"] = _plain(info["observed_value"])
    if result.exception_info and result.exception_info.get("raised_exception"):
        failure["error"] = str(result.exception_info.get("exception_message"))[:300]
    return failure


def _plain(value: Any) -> Any:
    """JSON-safe form of a GE value (numpy scalars, NaN)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return None if value != value else value
    return value.item() if hasattr(value, "item") else str(value)


def _gx_context(docs_dir: Path | None) -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    # In-memory stores, no default temp docs site, no analytics: only our own site is written.
    config = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
                               analytics_enabled=False,
                               progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False))
    context = gx.get_context(mode="ephemeral", project_config=config)
    if docs_dir is not None:
        if docs_dir.exists():
            shutil.rmtree(docs_dir)  # one run's docs, not an accumulating history
        context.add_data_docs_site(site_name="toolorch", site_config={
            "class_name": "SiteBuilder",
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir.resolve())},
        })
    return context


def run_suites(frames: dict[str, pd.DataFrame], expectations: dict[str, list[Any]],
               docs_dir: Path | None = None) -> list[SuiteResult]:
    """Validate each frame against its suite in one context; write Data Docs when `docs_dir` is given."""
    import great_expectations as gx

    context = _gx_context(Path(docs_dir) if docs_dir is not None else None)
    source = context.data_sources.add_pandas("toolorch")
    results = []
    for name, frame in frames.items():
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
        suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations[name]))
        definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
        keys = [c for c in ROW_KEYS.get(name, []) if c in frame.columns]
        run = definition.run(batch_parameters={"dataframe": frame},
                             result_format={"result_format": "SUMMARY", "unexpected_index_column_names": keys})
        failed = [_failure(r) for r in run.results if not r.success]
        results.append(SuiteResult(name, bool(run.success), len(run.results), failed))
    if docs_dir is not None:
        context.build_data_docs(site_names=["toolorch"])
    return results


def report_html(results: list[SuiteResult]) -> str:
    """One self-contained page of the validation (no scripts, no external styles: it renders
    offline, in the KFP UI's HTML viewer): each suite's verdict, each failed expectation with its
    failing rows by key. GE's own Data Docs site (beside it) loads its styles from CDNs."""
    def cell(value: Any) -> str:
        return f"<td>{html.escape(str(value))}</td>"

    ok = all(r.success for r in results)
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>toolorch data checks</title><style>",
             "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:1.5em}",
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}",
             ".pass{color:#176f2c}.fail{color:#b00020}</style></head><body>",
             f"<h1 class='{'pass' if ok else 'fail'}'>Data checks: {'all suites passed' if ok else 'FAILED'}</h1>",
             "<table><tr><th>suite</th><th>verdict</th><th>expectations</th><th>failed</th></tr>"]
    for r in results:
        verdict = f"<td class='{'pass' if r.success else 'fail'}'>{'pass' if r.success else 'fail'}</td>"
        parts.append(f"<tr>{cell(r.name)}{verdict}{cell(r.evaluated)}{cell(len(r.failed))}</tr>")
    parts.append("</table>")
    for r in results:
        if not r.failed:
            continue
        parts += [f"<h2 class='fail'>{html.escape(r.name)}</h2>",
                  "<table><tr><th>expectation</th><th>failing rows</th><th>rows by key</th><th>observed</th></tr>"]
        for f in r.failed:
            rows = "<br>".join(html.escape(", ".join(f"{k}={v}" for k, v in row.items())) for row in f.get("rows", []))
            observed = f.get("observed_value", f.get("examples", f.get("error", "")))
            parts.append(f"<tr>{cell(f['expectation'])}{cell(f.get('unexpected_count'))}<td>{rows}</td>"
                         f"{cell(observed)}</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
