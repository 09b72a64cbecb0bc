"""toolorch synth-tasks --config configs/tiny.yaml

Questions with answers computed by executing gold calls, split train / held-out.

    python -m toolorch.stages.synth_tasks --config configs/tiny.yaml
    toolorch synth-tasks --config configs/tiny.yaml --set stages.synth_tasks.tasks_per_template=2

Reads the environments synth-envs made (`--envs-dir`); settings from `stages.synth_tasks`.
Writes, in its output folder (`--out-dir`):
    train.jsonl, heldout.jsonl   Task records
    split.json                   held-out environments and held-out templates
    config.resolved.yaml
and its metrics (`--metrics-path`): counts per env/category/difficulty/split, category
shares, rejections by reason, tasks/s and verified tasks/s.
Held out twice over: whole environments, and within the training environments whole
templates (metrics record which kind each held-out task is). Every kept task is
re-verified (its gold calls executed again in a fresh session must give its answer, or
for world-changing tasks reach its final state): one failure fails the stage. Tasks that
come with imported environments (tau2-bench, `synth_envs.tau2_domains`) join as whole held-out
environments (`imported_holdout: all`), or keep the benchmark's own split (`test`): its test
tasks held out (each is its own template), its train tasks train, so the policy has read the
world's long prompts before it is scored on unseen tasks there. The folder is built aside and
swapped in. Sharded (KFP), each shard drafts and verifies the environments it owns
(`run(..., shard=Shard(i, n))`) and `merge` deduplicates, splits and writes them as one process
would (toolorch.stages.shards).
"""
from __future__ import annotations

import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from toolorch.core.catalog import Catalog
from toolorch.core.config import Config
from toolorch.core.errors import RunFailed
from toolorch.core.jsonl import read_jsonl, write_json, write_jsonl
from toolorch.core.records import CATEGORIES, Task
from toolorch.core.splits import SplitPlan, apply_split, dedup, plan_split, question_words
from toolorch.runtime.env import Environment, load_envs
from toolorch.runtime.gold import verify_tasks
from toolorch.runtime.preferences import parse_mix, preference_kind, sample_preference
from toolorch.stages.io import finish
from toolorch.stages.shards import Shard, read_parts, write_part
from toolorch.stages.stage import Input, Stage
from toolorch.synth.domain import synth_seed
from toolorch.synth.envs import HINTS_FILE, IMPORTED_TASKS, replace_folder
from toolorch.synth.tasks import synthesize_tasks


class SynthTasksSettings(BaseModel):
    """`stages.synth_tasks` in a profile YAML."""

    model_config = ConfigDict(extra="forbid")

    tasks_per_template: int = Field(1, ge=1, le=1000)  # distinct slot fillings per template
    # fillings of each held-out template (default: tasks_per_template). More held-out tasks narrow
    # the eval's paired intervals; training tasks stay exactly those of `tasks_per_template`
    heldout_tasks_per_template: int | None = Field(None, ge=1, le=1000)
    heldout_envs: int = Field(2, ge=0)  # whole environments held out
    heldout_template_fraction: float = Field(0.2, ge=0.0, lt=1.0)  # of each training env's templates
    seed_offset: int = 0  # task seed = cfg.seed + seed_offset
    workers: int = Field(2, ge=1, le=64)  # threads (sandbox runs are subprocesses)
    # imported worlds (tau2-bench): every task held out, or only the benchmark's test split (its
    # train split trains). Held out whole, a world's prompts (2x a synthesized one's tokens) reach
    # a policy only at test time, where the tiny profile's GRPO updates broke the call
    imported_holdout: Literal["all", "test"] = "all"
    # profile -> relative weight of the users who ask the tasks ("cost_averse=3, balanced=1" or a
    # mapping; the pipeline's `preference_mix`); empty: every profile equally likely
    preference_mix: dict[str, float] = {}

    @model_validator(mode="after")
    def _heldout_at_least_train(self) -> "SynthTasksSettings":
        if self.heldout_tasks_per_template is not None and self.heldout_tasks_per_template < self.tasks_per_template:
            raise ValueError(f"heldout_tasks_per_template ({self.heldout_tasks_per_template}) is below "
                             f"tasks_per_template ({self.tasks_per_template}): held-out templates keep at least "
                             "as many fillings as training ones")
        return self

    def more_per_template(self) -> int:
        """Fillings drafted beyond `tasks_per_template` for the held-out templates."""
        return (self.heldout_tasks_per_template or self.tasks_per_template) - self.tasks_per_template

    @field_validator("preference_mix", mode="before")
    @classmethod
    def _read_mix(cls, value: Any) -> dict[str, float]:
        return parse_mix(value if isinstance(value, dict) else str(value))


class VerificationError(RunFailed):
    """Some synthesized tasks do not re-verify: their gold calls no longer give their answer."""


def synthesizable_envs(envs_dir: Path) -> list[Environment]:
    """Every environment of `envs_dir` that carries the generator's hints (synth-envs made it)."""
    envs_dir = Path(envs_dir)
    if not envs_dir.is_dir():
        raise FileNotFoundError(f"{envs_dir}: no environments folder (run synth-envs first)")
    names = [p.name for p in envs_dir.iterdir() if (p / "env.json").exists() and (p / HINTS_FILE).exists()]
    if not names:
        raise FileNotFoundError(f"{envs_dir}: no environment folders with env.json and {HINTS_FILE}")
    return list(load_envs(envs_dir, names).values())


def imported_tasks(envs: list[Environment], catalog: Catalog, seed: int,
                   preference_mix: dict[str, float] | None = None) -> list[Task]:
    """Tasks shipped with imported environments (tau2-bench), in the benchmark's own split. They
    come without a user of ours, so each gets one drawn like a synthesized task's (seeded by its id):
    left at the default, every imported task would be an accuracy-first user's and outweigh the
    other users."""
    tasks: list[Task] = []
    for env in envs:
        path = env.db_path.parent / IMPORTED_TASKS
        if path.exists():
            tasks += [t.model_copy(update={"preference": sample_preference(
                catalog, synth_seed(seed, t.id), mix=preference_mix)}) for t in read_jsonl(path, Task)]
    return tasks


def run(cfg: Config, envs_dir: Path, out_dir: Path, metrics_path: Path, shard: Shard | None = None) -> dict[str, Any]:
    """The stage; with `shard`, only the environments that shard owns, written as a part for `merge`."""
    settings: SynthTasksSettings = cfg.stages.synth_tasks
    envs = synthesizable_envs(envs_dir)
    mine = shard.select(envs, lambda e: e.name) if shard else envs
    start = time.perf_counter()
    drafted, more, rejected = synthesize_tasks(mine, cfg.catalog(), settings.tasks_per_template,
                                               cfg.seed + settings.seed_offset, settings.workers,
                                               preference_mix=settings.preference_mix,
                                               more_per_template=settings.more_per_template())
    imported = imported_tasks(mine, cfg.catalog(), cfg.seed + settings.seed_offset, settings.preference_mix)
    synth_s = time.perf_counter() - start
    check_verified(mine, dedup(drafted + more)[0] + imported, cfg, settings.workers)  # duplicates are per environment
    verify_s = time.perf_counter() - start - synth_s
    if shard is not None:
        place = {e.name: i for i, e in enumerate(envs)}
        records = [((order, place[t.env], i), {"kind": kind, "task": t.model_dump(mode="json")})
                   for order, (kind, group) in enumerate((("drafted", drafted), ("imported", imported), ("more", more)))
                   for i, t in enumerate(group)]
        meta = write_part(Path(out_dir), shard, "synth_tasks", records, total=len(envs), seconds=synth_s + verify_s,
                          rejected=dict(rejected), synth_seconds=synth_s, verify_seconds=verify_s)
        write_json(metrics_path, meta)
        return meta
    return write_tasks(cfg, settings, drafted, rejected, imported, synth_s, verify_s, Path(out_dir), metrics_path, more)


def merge(cfg: Config, part_dirs: list[Path], out_dir: Path, metrics_path: Path) -> dict[str, Any]:
    """The shards' parts as one run's outputs, byte for byte (timings: the slowest shard's)."""
    records, metas = read_parts(part_dirs, "synth_tasks")
    tasks = {kind: [Task.model_validate(r["task"]) for r in records if r["kind"] == kind]
             for kind in ("drafted", "imported", "more")}
    rejected: Counter[str] = Counter()
    for m in metas:
        rejected.update(m["rejected"])
    return write_tasks(cfg, cfg.stages.synth_tasks, tasks["drafted"], rejected, tasks["imported"],
                       max(m["synth_seconds"] for m in metas), max(m["verify_seconds"] for m in metas),
                       Path(out_dir), metrics_path, tasks["more"])


def check_verified(envs: list[Environment], tasks: list[Task], cfg: Config, workers: int) -> None:
    """Every task's gold calls, executed again in a fresh session, give its answer (or final state)."""
    failures = verify_tasks(envs, tasks, cfg.catalog(), workers)
    if failures:
        listed = "; ".join(f"{tid}: {why}" for tid, why in failures[:10])
        raise VerificationError(f"{len(failures)}/{len(tasks)} tasks do not re-verify: {listed}")


def write_tasks(cfg: Config, settings: SynthTasksSettings, drafted: list[Task], rejected: Counter[str],
                imported: list[Task], synth_s: float, verify_s: float, out_dir: Path,
                metrics_path: Path, more: list[Task]) -> dict[str, Any]:
    """Deduplicated, split tasks (imported ones as `imported_holdout` says) with their split plan
    and metrics. The split is planned on `drafted` alone; of `more` (further fillings of the same
    templates) only the held-out ones are kept, after the held-out tasks they add to."""
    kept, duplicates = dedup(drafted)
    plan = plan_split(kept, settings.heldout_envs, settings.heldout_template_fraction,
                      synth_seed(cfg.seed + settings.seed_offset, "split"))
    templates = {t.template for t in kept}
    held_more = [t for t in more if t.template in templates and plan.split_of(t) == "heldout"]
    with_more = dedup(kept + held_more)[0]  # keeps `kept` whole and in order: it was deduplicated
    tasks = apply_split(with_more, plan)
    if imported:
        plan = hold_out_imported(plan, imported, settings.imported_holdout)
        tasks += apply_split(imported, plan)
    write_outputs(out_dir, tasks, plan)
    metrics = task_metrics(tasks, plan)
    metrics.update(
        drafted=len(drafted), duplicates_dropped=duplicates, heldout_more=len(with_more) - len(kept),
        rejected=dict(sorted(rejected.items())),
        verified=len(tasks), synth_seconds=round(synth_s, 3), verify_seconds=round(verify_s, 3),
        tasks_per_s=round(len(tasks) / max(synth_s, 1e-9), 2),
        verified_tasks_per_s=round(len(tasks) / max(synth_s + verify_s, 1e-9), 2),
    )
    return finish(cfg, out_dir, metrics, metrics_path)


def hold_out_imported(plan: SplitPlan, imported: list[Task],
                      holdout: Literal["all", "test"]) -> SplitPlan:
    """`plan` with the imported worlds held out whole ("all"), or their test tasks ("test"). A
    train task asking a test task's very question (telecom's scenarios differ only in the hidden
    device state) is held out with it: the data checks would rightly call it a leak."""
    if holdout == "all":
        return plan.model_copy(update={"heldout_envs": sorted({*plan.heldout_envs, *(t.env for t in imported)})})
    test_questions = {(t.env, question_words(t)) for t in imported if t.split == "heldout"}
    is_held = {t.id: t.split == "heldout" or (t.env, question_words(t)) in test_questions for t in imported}
    held = {t.template for t in imported if is_held[t.id]}
    shared = held & {t.template for t in imported if not is_held[t.id]}
    if shared:  # a template in both splits would leak its held-out tasks' shape into training
        raise ValueError(f"imported tasks share templates across their splits: {sorted(shared)[:5]}")
    return plan.model_copy(update={"heldout_templates": sorted({*plan.heldout_templates, *held})})


def write_outputs(out_dir: Path, tasks: list[Task], plan: SplitPlan) -> None:
    building = out_dir.with_name(f".{out_dir.name}.building")
    if building.exists():
        shutil.rmtree(building)
    write_jsonl(building / "train.jsonl", [t for t in tasks if t.split == "train"])
    write_jsonl(building / "heldout.jsonl", [t for t in tasks if t.split == "heldout"])
    write_json(building / "split.json", plan.model_dump())
    replace_folder(building, out_dir)


def _counts(values: list[Any]) -> dict[str, int]:
    return {str(k): v for k, v in sorted(Counter(values).items())}


def task_metrics(tasks: list[Task], plan: SplitPlan) -> dict[str, Any]:
    def shares(split: str) -> dict[str, float]:
        pool = [t for t in tasks if t.split == split]
        return {c: round(sum(t.category == c for t in pool) / max(len(pool), 1), 3) for c in CATEGORIES}

    return {
        "tasks": len(tasks),
        "per_env": _counts([t.env for t in tasks]),
        "per_category": _counts([t.category for t in tasks]),
        "per_difficulty": _counts([t.difficulty for t in tasks]),
        "per_split": _counts([t.split for t in tasks]),
        "per_answer_type": _counts([t.answer_type for t in tasks]),
        "per_preference": _counts([preference_kind(t.preference) for t in tasks]),
        "category_share": {"train": shares("train"), "heldout": shares("heldout")},
        "heldout_kind": _counts([plan.heldout_kind(t) for t in tasks if t.split == "heldout"]),
        "heldout_envs": plan.heldout_envs,
        "heldout_templates": len(plan.heldout_templates),
        "templates": len({t.template for t in tasks}),
    }


STAGE = Stage(
    "synth_tasks", SynthTasksSettings, run,
    lambda m: (f"synth-tasks: {m['tasks']} tasks ({m['per_split']}), {m['per_category']}, "
               f"{m['verified_tasks_per_s']:.1f} verified tasks/s"),
    inputs={"envs_dir": Input("synth_envs")},
    outputs={"out_dir": "data/tasks"},
    reads=("episode", "experts"),
    merge=merge,
)

if __name__ == "__main__":
    from toolorch.stages.command import main

    main("synth_tasks")
