"""Differences between two runs' output folders, file by file, for files that should be equal.

    tree_differences(kfp_dir, chain_dir)   # [] when every file matches; else one line per difference

Bytes must match, except where two runs of the same code legitimately write different bytes;
those files are compared by what they hold instead:
    *.sqlite                 schema and every row of every table (in rowid order), then bytes
    tensorboard event files  their names hold a wall-clock time, host and pid, and each event a
                             wall time: the scalars by tag and step, timings aside
    state/step-*/.metadata   torch.distributed.checkpoint's index records the absolute path it
                             was written to and a random save id: the tensor metadata
    state/step-*/meta.pkl    the step, data position, LR schedule, torch RNG and config; not the
                             state of Python's global `random`, which the grpo stage neither seeds
                             nor draws from: every process starts it from os.urandom
    dvclive/                 a curve that is a duration or a rate (its TSV, its key in metrics.json)
    history.jsonl            the same keys in each step's row
    curves/                  report.md with the last value of such curves masked; a chart that
                             draws one of them is not compared (the TSVs it draws are)
"""
from __future__ import annotations

import json
import pickle
import re
import sqlite3
from pathlib import Path
from typing import Any, Callable

TIMING = ("second", "per_s", "_s_", "throughput", "elapsed", "wall")
EVENTS = "events.out.tfevents."


def is_timing(key: str) -> bool:
    return any(t in key for t in TIMING)


def without_timings(data: Any) -> Any:
    """`data` (parsed JSON) with every key that names a duration or a rate dropped, at any depth."""
    if isinstance(data, dict):
        return {k: without_timings(v) for k, v in data.items() if not is_timing(str(k))}
    if isinstance(data, list):
        return [without_timings(v) for v in data]
    return data


def comparable(metrics: dict[str, Any]) -> Any:
    """Metrics without timings; a path a stage read or wrote counts by its last part only (the two
    runs keep their files in different folders)."""
    def unpathed(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: unpathed(x) for k, x in v.items()}
        if isinstance(v, list):
            return [unpathed(x) for x in v]
        return v.rsplit("/", 1)[-1] if isinstance(v, str) and "/" in v else v

    return unpathed(without_timings(metrics))


def sqlite_contents(path: Path) -> dict[str, Any]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        schema = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall()
        tables = [name for kind, name, _ in schema if kind == "table" and not name.startswith("sqlite_")]
        rows = {t: conn.execute(f'SELECT * FROM "{t}" ORDER BY rowid').fetchall() for t in tables}
        return {"schema": schema, "user_version": conn.execute("PRAGMA user_version").fetchone(), "rows": rows}


def event_scalars(path: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(path), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
            if not is_timing(tag)}


def checkpoint_index(path: Path) -> Any:
    from torch.distributed.checkpoint import FileSystemReader

    return FileSystemReader(str(path.parent)).read_metadata().state_dict_metadata


def checkpoint_meta(path: Path) -> dict[str, Any]:
    import torch

    meta = pickle.loads(path.read_bytes())  # written by toolorch.train.checkpoint in this run
    rng = meta.pop("rng")
    return {**meta, "torch_rng": torch.as_tensor(rng["torch"]).tolist()}


def _sqlite_difference(a: Path, b: Path) -> str | None:
    ours, theirs = sqlite_contents(a), sqlite_contents(b)
    if ours != theirs:
        tables = sorted(t for t in ours["rows"].keys() | theirs["rows"].keys()
                        if ours["rows"].get(t) != theirs["rows"].get(t))
        return f"tables differ: {tables}" if tables else "schema differs"
    return None if a.read_bytes() == b.read_bytes() else "same tables, different bytes"


def curve_report(path: Path) -> str:
    """report.md with the last value of each timing curve masked ("rollout_seconds 1.23" -> "rollout_seconds *")."""
    return re.sub(r"([\w./-]+) (-?[\d.]+(?:e[+-]?\d+)?)",
                  lambda m: f"{m.group(1)} *" if is_timing(m.group(1)) else m.group(0), path.read_text())


def _chart_difference(a: Path, b: Path) -> str | None:
    """A chart of curves/ (drawn from dvclive/ beside it by toolorch.train.curves, one per folder of
    curves, "scalars" for the top level): bytes, unless it draws a timing curve."""
    metrics = a.parent.parent / "dvclive" / "plots" / "metrics"
    drawn = [t for t in metrics.rglob("*.tsv")
             if (t.parent.relative_to(metrics).as_posix().replace("/", "_").strip(".") or "scalars") == a.stem]
    if any(is_timing(t.stem) for t in drawn):
        return None
    return None if a.read_bytes() == b.read_bytes() else "bytes differ"


def _same_by(read: Callable[[Path], Any]) -> Callable[[Path, Path], str | None]:
    return lambda a, b: None if read(a) == read(b) else "contents differ"


def _compare(rel: str) -> Callable[[Path, Path], str | None]:
    if rel.endswith(".sqlite"):
        return _sqlite_difference
    if EVENTS in rel:
        return _same_by(event_scalars)
    if "state/step-" in rel and rel.endswith("/.metadata"):
        return _same_by(checkpoint_index)
    if "state/step-" in rel and rel.endswith("/meta.pkl"):
        return _same_by(checkpoint_meta)
    if "dvclive/plots/metrics/" in rel and is_timing(Path(rel).stem):
        return lambda a, b: None
    if rel.endswith("dvclive/metrics.json"):
        return _same_by(lambda p: without_timings(json.loads(p.read_text())))
    if rel.endswith("history.jsonl"):
        return _same_by(lambda p: [without_timings(json.loads(line)) for line in p.read_text().splitlines()])
    if rel.endswith("curves/report.md"):
        return _same_by(curve_report)
    if "curves/" in rel and rel.endswith(".png"):
        return _chart_difference
    return lambda a, b: None if a.read_bytes() == b.read_bytes() else "bytes differ"


def _files(root: Path) -> dict[str, Path]:
    """Relative path -> file; an event file is keyed by its folder (its name is a timestamp)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            rel = p.relative_to(root).as_posix()
            out[rel.rsplit(EVENTS, 1)[0] + EVENTS + "*" if EVENTS in rel else rel] = p
    return out


def tree_differences(ours: Path, theirs: Path) -> list[str]:
    a, b = _files(ours), _files(theirs)
    out = [f"{rel}: only in {ours if rel in a else theirs}" for rel in sorted(a.keys() ^ b.keys())]
    for rel in sorted(a.keys() & b.keys()):
        why = _compare(rel)(a[rel], b[rel])
        if why:
            out.append(f"{rel}: {why}")
    return out
