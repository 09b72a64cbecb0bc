"""The eval stage split over shards: a shard's rows written as a part, the parts merged into one run.

    eval.run(cfg, ..., shard=Shard(1, 3))    # rows of the tasks shard 1 owns, in every block -> part
    merge(cfg, [part0, part1, part2], out_dir, metrics_path)   # results.jsonl, report, metrics

Each row carries its place in one process's order: (the run_policy call it came from, the
task's place in that call's task list). Every shard makes the same calls in the same order (the
lineup sees every task, whatever the shard), so sorting by that place gives one process's
results.jsonl, and the metrics, bootstrap and report computed from it, byte for byte. Wall times
per block/policy are the slowest shard's (the shards run side by side). Benchmarks run once,
in shard 0, whose files the merge copies.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolorch.core.config import Config
from toolorch.core.jsonl import write_json
from toolorch.eval.runner import EvalRow
from toolorch.stages.shards import (
    PART_META,
    PART_RECORDS,
    ShardError,
    read_parts,
    write_part,
)

if TYPE_CHECKING:
    from toolorch.stages.eval import Evaluation


def write_shard(ev: Evaluation, context: dict[str, Any], out_dir: Path, metrics_path: Path) -> dict[str, Any]:
    if len(ev.positions) != len(ev.rows):
        raise ShardError(f"eval: {len(ev.rows)} rows but {len(ev.positions)} places recorded")
    records = ((list(place), row.model_dump(mode="json")) for place, row in zip(ev.positions, ev.rows))
    meta = write_part(Path(out_dir), ev.shard, "eval", records, total=ev.runs, seconds=sum(ev.wall_s.values()),
                      context=context, wall_s=ev.wall_s)
    write_json(metrics_path, {k: v for k, v in meta.items() if k not in ("context", "wall_s")})
    return meta


def merge(cfg: Config, part_dirs: list[Path], out_dir: Path, metrics_path: Path) -> dict[str, Any]:
    """One run's eval outputs from the shards' parts."""
    from toolorch.stages.eval import write_outputs  # eval imports this module

    records, metas = read_parts(part_dirs, "eval")
    first = metas[0]
    # notes name each shard's own scratch folder; benchmarks ran in shard 0 only
    contexts = [{k: v for k, v in m["context"].items() if k not in ("notes", "benchmarks")} for m in metas]
    if any(c != contexts[0] for c in contexts):
        raise ShardError("eval: the shards ran with different tasks, lineups or blocks")
    wall_s: dict[str, float] = {}
    for m in metas:
        for key, seconds in m["wall_s"].items():
            wall_s[key] = max(wall_s.get(key, 0.0), seconds)
    out_dir = Path(out_dir)
    _copy_extras(Path(first["dir"]), out_dir)
    rows = [EvalRow.model_validate(r) for r in records]
    return write_outputs(cfg, cfg.stages.eval, rows, first["context"], wall_s, out_dir, metrics_path)


def _copy_extras(part_dir: Path, out_dir: Path) -> None:
    """What shard 0 wrote besides its part (the benchmarks' files)."""
    for path in part_dir.iterdir():
        if path.name in (PART_META, PART_RECORDS):
            continue
        target = out_dir / path.name
        if path.is_dir():
            shutil.copytree(path, target, dirs_exist_ok=True)
        else:
            out_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
