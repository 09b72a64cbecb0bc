"""HLE and FRAMES question files a user supplies, as toolorch tasks in a small "open" world.

    cases = load_hle(Path("hle.jsonl")).cases          # HLE: id, question, answer, answer_type, category, image...
    cases = load_frames(Path("frames.jsonl")).cases    # FRAMES: Prompt, Answer, wiki_links / wikipedia_link_N
    env = build_open_env(Path("bench_envs/open"), documents=Path("wiki.jsonl"))
    rows = run_qa(cases, env, maker, "grpo", Runtime.from_config(cfg), judge)
    summary = summarize_qa(rows)

Nothing is downloaded: the files are the datasets' rows as JSONL (one object a line), with
the public datasets' field names or their common variants (see `HLE_FIELDS`, `FRAMES_FIELDS`).
A malformed row is a `QAFormatError` naming the file and line. HLE rows with an image are
skipped by default (the text-only subset ToolOrchestra reports), and listed as skipped.

The "open" world has no tables: its tools are `search` over the optional document JSONL
(id, title, text) and the config's experts (`ask_<expert>`, `answer`). Answers are graded
by a `Judge` (an LLM over an OpenAI-compatible endpoint, or exact match).
"""
from __future__ import annotations

import ast
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from toolorch.core.jsonl import JsonlError, read_objects
from toolorch.core.records import Record, Task
from toolorch.eval.adapters.judge import Judge
from toolorch.eval.baselines import PolicyMaker
from toolorch.runtime.env.world import Document, Environment, EnvSpec, search_tool
from toolorch.runtime.episode import Runtime

OPEN_ENV = "open"
# Accepted names per field, first match wins (the public datasets' names first).
HLE_FIELDS = {"id": ("id", "question_id", "uid"), "question": ("question", "Question", "prompt", "problem"),
              "answer": ("answer", "Answer", "gold_answer", "final_answer")}
FRAMES_FIELDS = {"id": ("id", "Unnamed: 0", "index", "idx"), "question": ("Prompt", "prompt", "question", "Question"),
                 "answer": ("Answer", "answer", "gold_answer", "final_answer")}
DOC_FIELDS = {"id": ("id", "doc_id", "_id", "docid"), "title": ("title", "Title"),
              "text": ("text", "contents", "content", "body")}
_URL = re.compile(r"https?://[^\s'\",\]]+")


class QAFormatError(ValueError):
    """A benchmark file that cannot be read: the message names the file and line."""


@dataclass(frozen=True)
class QACase:
    task: Task
    benchmark: str  # hle | frames
    subject: str  # HLE's category, FRAMES' reasoning types: reported separately
    links: tuple[str, ...] = ()  # FRAMES: the Wikipedia pages the answer needs


@dataclass
class QAFile:
    path: Path
    cases: list[QACase] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # row id -> why it is not a case
    ids: set[str] = field(default_factory=set, repr=False)


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        yield from read_objects(path, "benchmark file")
    except JsonlError as e:
        raise QAFormatError(str(e)) from None


def _field(row: dict[str, Any], names: tuple[str, ...], where: str, required: bool = True) -> str | None:
    for name in names:
        value = row.get(name)
        if value is None:
            continue
        if isinstance(value, (dict, list)):
            raise QAFormatError(f"{where}: field '{name}' must be text or a number, got {type(value).__name__}")
        text = str(value).strip()
        if text:
            return text
    if required:
        raise QAFormatError(f"{where}: no non-empty field among {', '.join(repr(n) for n in names)}")
    return None


def _add(out: QAFile, case: QACase, where: str) -> None:
    if case.task.id in out.ids:
        raise QAFormatError(f"{where}: duplicate id '{case.task.id}'")
    out.ids.add(case.task.id)
    out.cases.append(case)


def _task(benchmark: str, row_id: str, question: str, answer: str, category: str) -> Task:
    return Task(id=f"{benchmark}-{row_id}", env=OPEN_ENV, question=question, answer=answer, category=category,
                template=benchmark, split="heldout")  # type: ignore[arg-type]


def load_hle(path: Path, text_only: bool = True, max_tasks: int | None = None) -> QAFile:
    """Humanity's Last Exam rows (cais/hle fields) -> reasoning tasks."""
    out = QAFile(Path(path))
    for lineno, row in _rows(path):
        where = f"{path}:{lineno}"
        row_id = _field(row, HLE_FIELDS["id"], where, required=False) or str(lineno)
        if text_only and str(row.get("image") or "").strip():
            out.skipped[row_id] = "has an image (text-only evaluation)"
            continue
        task = _task("hle", row_id, _field(row, HLE_FIELDS["question"], where) or "",
                     _field(row, HLE_FIELDS["answer"], where) or "", "reasoning")
        subject = _field(row, ("category", "raw_subject", "subject"), where, required=False) or "unknown"
        _add(out, QACase(task, "hle", subject), where)
        if max_tasks is not None and len(out.cases) >= max_tasks:
            break
    return out


def frames_links(row: dict[str, Any]) -> tuple[str, ...]:
    """`wiki_links` (a list, or its Python/JSON text) or the `wikipedia_link_N` columns."""
    raw = row.get("wiki_links")
    links: list[str] = []
    if isinstance(raw, list):
        links = [str(x) for x in raw]
    elif isinstance(raw, str) and raw.strip():
        try:
            parsed = ast.literal_eval(raw)
            links = [str(x) for x in parsed] if isinstance(parsed, (list, tuple)) else _URL.findall(raw)
        except (ValueError, SyntaxError):
            links = _URL.findall(raw)
    if not links:
        keys = sorted((k for k in row if k.startswith("wikipedia_link_")),
                      key=lambda k: int(re.sub(r"\D", "", k) or 0))
        links = [str(row[k]).strip() for k in keys if row[k] and str(row[k]).strip()]
    return tuple(links)


def load_frames(path: Path, max_tasks: int | None = None) -> QAFile:
    """FRAMES rows (google/frames-benchmark fields) -> document tasks."""
    out = QAFile(Path(path))
    for lineno, row in _rows(path):
        where = f"{path}:{lineno}"
        row_id = _field(row, FRAMES_FIELDS["id"], where, required=False) or str(lineno)
        task = _task("frames", row_id, _field(row, FRAMES_FIELDS["question"], where) or "",
                     _field(row, FRAMES_FIELDS["answer"], where) or "", "document")
        subject = _field(row, ("reasoning_types", "reasoning_type"), where, required=False) or "unknown"
        _add(out, QACase(task, "frames", subject, frames_links(row)), where)
        if max_tasks is not None and len(out.cases) >= max_tasks:
            break
    return out


def load_documents(path: Path) -> list[Document]:
    docs, seen = [], set()
    for lineno, row in _rows(path):
        where = f"{path}:{lineno}"
        doc_id = _field(row, DOC_FIELDS["id"], where, required=False) or str(lineno)
        if doc_id in seen:
            raise QAFormatError(f"{where}: duplicate document id '{doc_id}'")
        seen.add(doc_id)
        docs.append(Document(id=doc_id, title=_field(row, DOC_FIELDS["title"], where, required=False) or "",
                             text=_field(row, DOC_FIELDS["text"], where) or ""))
    return docs


def build_open_env(folder: Path, documents: Path | None = None) -> Environment:
    """No tables; `search` only when there are documents to search (each session indexes them)."""
    docs = load_documents(documents) if documents is not None else []
    spec = EnvSpec(name=OPEN_ENV, ddl=[], tools=[search_tool()] if docs else [],
                   description="Open-domain questions: no database; consult the experts"
                               + (" and search the supplied documents." if docs else "."))
    return Environment.create(folder, spec, {}, docs)


class QARow(Record):
    """One policy's answer to one benchmark question, as the judge graded it."""

    benchmark: str
    policy: str
    task_id: str
    subject: str
    gold: str
    answer: str | None = None
    correct: bool
    judge: str
    judge_failed: bool = False
    judge_reply: str = ""
    stop_reason: str
    cost_usd: float
    latency_s: float
    turns: int
    tool_counts: dict[str, int] = {}


def run_qa(cases: list[QACase], env: Environment, make: PolicyMaker, policy_name: str, runtime: Runtime,
           judge: Judge) -> list[QARow]:
    rows = []
    for case in cases:
        with env.session() as session:
            toolbox = runtime.toolbox(session, with_code=False)
            traj = runtime.run(case.task, make(case.task, toolbox), toolbox)
        verdict = judge.judge(case.task.question, case.task.answer, traj.answer, case.task.answer_type)
        rows.append(QARow(benchmark=case.benchmark, policy=policy_name, task_id=case.task.id, subject=case.subject,
                          gold=case.task.answer, answer=traj.answer, correct=verdict.correct is True,
                          judge=judge.name, judge_failed=verdict.failed, judge_reply=verdict.raw[:200],
                          stop_reason=traj.stop_reason, cost_usd=traj.usage.cost_usd,
                          latency_s=traj.usage.latency_s, turns=len(traj.turns), tool_counts=traj.tool_counts()))
    return rows


def score_predictions(cases: list[QACase], predictions: dict[str, str | None], judge: Judge,
                      policy: str = "predictions") -> list[QARow]:
    """Grade answers made elsewhere (task id -> answer; a missing id counts as no answer)."""
    rows = []
    for case in cases:
        answer = predictions.get(case.task.id)
        verdict = judge.judge(case.task.question, case.task.answer, answer, case.task.answer_type)
        rows.append(QARow(benchmark=case.benchmark, policy=policy, task_id=case.task.id, subject=case.subject,
                          gold=case.task.answer, answer=answer, correct=verdict.correct is True, judge=judge.name,
                          judge_failed=verdict.failed, judge_reply=verdict.raw[:200], stop_reason="answer",
                          cost_usd=0.0, latency_s=0.0, turns=0))
    return rows


def _mean(values: list[float]) -> float:
    return float(sum(values) / len(values)) if values else 0.0


def summarize_qa(rows: list[QARow]) -> dict[str, dict[str, Any]]:
    """benchmark -> policy -> n, accuracy (judge failures count as not correct), judge failures,
    cost, latency, turns and accuracy per subject."""
    groups: dict[tuple[str, str], list[QARow]] = {}
    for r in rows:
        groups.setdefault((r.benchmark, r.policy), []).append(r)
    out: dict[str, dict[str, Any]] = {}
    for (bench, policy), g in sorted(groups.items()):
        subjects: dict[str, list[QARow]] = {}
        for r in g:
            subjects.setdefault(r.subject, []).append(r)
        out.setdefault(bench, {})[policy] = {
            "n": len(g),
            "accuracy": _mean([float(r.correct) for r in g]),
            "judge_failures": sum(r.judge_failed for r in g),
            "cost_usd": _mean([r.cost_usd for r in g]),
            "latency_s": _mean([r.latency_s for r in g]),
            "turns": _mean([float(r.turns) for r in g]),
            "stop_reasons": dict(sorted(Counter(r.stop_reason for r in g).items())),
            "by_subject": {s: {"n": len(sg), "accuracy": _mean([float(r.correct) for r in sg])}
                           for s, sg in sorted(subjects.items())},
        }
    return out
