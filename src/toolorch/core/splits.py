"""Dedup and the train/held-out split of synthesized tasks.

Held out twice over, so evaluation measures generalisation: whole environments
(unseen schemas and tools) and, inside the training environments, whole templates
(unseen question shapes over familiar tools). Nothing from either leaks into train.
"""
from __future__ import annotations

import random
import re

from pydantic import BaseModel

from toolorch.core.records import Task, normalize_answer
from toolorch.core.seeds import stable_seed

_NON_WORD = re.compile(r"[^a-z0-9]+")


def question_words(task: Task) -> str:
    """The question ignoring case, punctuation and spacing."""
    return _NON_WORD.sub(" ", task.question.casefold()).strip()


def question_key(task: Task) -> tuple[str, str, str]:
    """Near-identical = same env, same words ignoring case/punctuation/spacing, same answer."""
    return task.env, question_words(task), normalize_answer(task.answer, task.answer_type)


def dedup(tasks: list[Task]) -> tuple[list[Task], int]:
    """Keep the first task of each id and of each near-identical question; returns (kept, dropped)."""
    seen_ids: set[str] = set()
    seen_keys: set[tuple[str, str, str]] = set()
    kept: list[Task] = []
    for t in tasks:
        key = question_key(t)
        if t.id in seen_ids or key in seen_keys:
            continue
        seen_ids.add(t.id)
        seen_keys.add(key)
        kept.append(t)
    return kept, len(tasks) - len(kept)


class SplitPlan(BaseModel):
    """Which environments and templates are held out (saved as split.json beside the tasks)."""

    heldout_envs: list[str]
    heldout_templates: list[str]  # templates of training environments

    def split_of(self, task: Task) -> str:
        held = task.env in self.heldout_envs or task.template in self.heldout_templates
        return "heldout" if held else "train"

    def heldout_kind(self, task: Task) -> str | None:
        if task.env in self.heldout_envs:
            return "env"
        return "template" if task.template in self.heldout_templates else None


def plan_split(tasks: list[Task], heldout_envs: int, heldout_template_fraction: float, seed: int) -> SplitPlan:
    envs = sorted({t.env for t in tasks})
    if heldout_envs >= len(envs) and envs:
        raise ValueError(f"heldout_envs={heldout_envs} leaves no training environment (have {len(envs)})")
    rng = random.Random(seed)
    held_envs = sorted(rng.sample(envs, heldout_envs))
    held_templates: list[str] = []
    for env in envs:
        if env in held_envs:
            continue
        names = sorted({t.template for t in tasks if t.env == env})
        n = round(len(names) * heldout_template_fraction)
        held_templates += sorted(rng.sample(names, n))
    return SplitPlan(heldout_envs=held_envs, heldout_templates=held_templates)


def apply_split(tasks: list[Task], plan: SplitPlan) -> list[Task]:
    return [t.model_copy(update={"split": plan.split_of(t)}) for t in tasks]


def stratified_subsample(tasks: list[Task], limit: int | None, seed: int) -> list[Task]:
    """At most `limit` tasks, keeping each category's share (largest remainders), seeded."""
    if limit is None or len(tasks) <= limit:
        return list(tasks)
    by_cat: dict[str, list[Task]] = {}
    for t in tasks:
        by_cat.setdefault(t.category, []).append(t)
    exact = {c: limit * len(g) / len(tasks) for c, g in by_cat.items()}
    quota = {c: int(x) for c, x in exact.items()}
    for c in sorted(exact, key=lambda c: (quota[c] - exact[c], c))[: limit - sum(quota.values())]:
        quota[c] += 1
    rng = random.Random(stable_seed(seed, "subsample", limit))
    keep = {t.id for c in sorted(by_cat) for t in rng.sample(by_cat[c], quota[c])}
    return [t for t in tasks if t.id in keep]  # original order
