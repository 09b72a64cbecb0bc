"""A stage's work split over shards and merged back, the merge equal to one process's output.

    shard = Shard(1, 3)                              # the second of three
    mine = shard.select(tasks, key=lambda t: t.id)   # stable: a task's shard never depends on the run
    write_part(out_dir, shard, records, seconds)     # part.jsonl + part.json, one line per (position, record)
    positioned = read_parts(part_dirs, "passk")      # every position of every part, in canonical order

A task belongs to shard `stable_seed("shard", key) % count`, so each shard's content is fixed by
the data alone, and per-task seeds (core.seeds.stable_seed on task ids) never see the shard. A
shard writes its records with their position in the unsharded order; the merge puts them back
in that order and the stage writes its outputs exactly as one process would. The KFP pipeline
(pipelines/full.py) runs one task per shard under `dsl.ParallelFor` and retries a failed shard
alone; toolorch.ops.kfp_io.run_shard and merge_shards are its component bodies.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

from toolorch.core.errors import RunFailed
from toolorch.core.jsonl import read_objects, write_json
from toolorch.core.seeds import stable_seed

T = TypeVar("T")
PART_RECORDS = "part.jsonl"
PART_META = "part.json"
# Fault injection for retry drills: "<stage>:<shard>:<marker file>" makes that shard fail on its
# first attempt only (the marker file records that it has failed once).
FAIL_ONCE_ENV = "TOOLORCH_FAIL_SHARD_ONCE"


class ShardError(RunFailed):
    """Shard parts that do not add up to one whole run (missing, duplicated or foreign)."""


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index} of {self.count}: need 0 <= shard < shards and shards >= 1")

    def owns(self, key: str) -> bool:
        return stable_seed("shard", key) % self.count == self.index

    def positions(self, items: Sequence[T], key: Callable[[T], str]) -> list[int]:
        """Positions (in `items`) of the items this shard owns, in order."""
        return [i for i, item in enumerate(items) if self.owns(key(item))]

    def select(self, items: Sequence[T], key: Callable[[T], str]) -> list[T]:
        return [items[i] for i in self.positions(items, key)]


def write_part(out_dir: Path, shard: Shard, stage: str, records: Iterable[tuple[int, dict[str, Any]]],
               total: int, seconds: float, **extra: Any) -> dict[str, Any]:
    """One shard's output: (position, record) lines and what the merge checks them against."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = 0
    with (out_dir / PART_RECORDS).open("w", encoding="utf-8") as f:
        for position, record in records:
            f.write(json.dumps({"position": position, "record": record}, ensure_ascii=False) + "\n")
            n += 1
    meta = {"stage": stage, "shard": shard.index, "shards": shard.count, "total": total, "records": n,
            "seconds": round(seconds, 3), **extra}
    write_json(out_dir / PART_META, meta)
    return meta


def read_parts(part_dirs: Sequence[str | Path], stage: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every record of every part, ordered by position, and the parts' metadata (in shard order,
    each with the `dir` it was read from). The parts must be shards 0..n-1 of one run of `stage`."""
    metas = [{**_read_meta(Path(d), stage), "dir": str(d)} for d in part_dirs]
    if not metas:
        raise ShardError(f"{stage}: no shard parts to merge")
    count = metas[0]["shards"]
    shards = sorted(m["shard"] for m in metas)
    if shards != list(range(count)) or any(m["shards"] != count or m["total"] != metas[0]["total"] for m in metas):
        raise ShardError(f"{stage}: parts are shards {shards} of {[m['shards'] for m in metas]}, "
                         f"need each of 0..{count - 1} of one run once")
    positioned: list[tuple[Any, dict[str, Any]]] = []
    for d in part_dirs:
        for lineno, line in read_objects(Path(d) / PART_RECORDS, "shard part"):
            if "position" not in line or "record" not in line:
                raise ShardError(f"{Path(d) / PART_RECORDS}:{lineno}: needs 'position' and 'record'")
            positioned.append((line["position"], line["record"]))
    keys = [_sort_key(p) for p, _ in positioned]
    if len(set(keys)) != len(keys):
        raise ShardError(f"{stage}: two parts hold a record at the same position")
    order = sorted(range(len(positioned)), key=keys.__getitem__)
    return [positioned[i][1] for i in order], sorted(metas, key=lambda m: m["shard"])


def _sort_key(position: Any) -> tuple[int, ...]:
    return tuple(position) if isinstance(position, list) else (position,)


def _read_meta(part_dir: Path, stage: str) -> dict[str, Any]:
    path = part_dir / PART_META
    if not path.is_file():
        raise ShardError(f"{part_dir}: not a shard part (no {PART_META})")
    meta = json.loads(path.read_text(encoding="utf-8"))
    if meta.get("stage") != stage:
        raise ShardError(f"{path}: a part of stage {meta.get('stage')!r}, not {stage!r}")
    return meta


def fail_once_if_asked(stage: str, shard: Shard) -> None:
    """The injected first-attempt failure of FAIL_ONCE_ENV, for showing a shard retried alone."""
    spec = os.environ.get(FAIL_ONCE_ENV, "")
    if not spec:
        return
    name, index, marker = spec.split(":", 2)
    if name == stage and int(index) == shard.index and not Path(marker).exists():
        Path(marker).write_text("failed once\n", encoding="utf-8")
        raise RunFailed(f"{stage} shard {shard.index}/{shard.count}: injected failure ({FAIL_ONCE_ENV})")
