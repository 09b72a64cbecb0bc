"""What stages read and write: environments and tasks checked on the way in, outputs built aside
and moved into place, the resolved config and metrics beside them; progress lines meanwhile.

    envs = load_envs(envs_dir, {t.env for t in tasks})   # runtime.env's; a corrupt db.sqlite fails by name
    with staged({"out_dir": Path("out/passk")}) as paths:  # out/.passk.partial until it succeeds
        ...
"""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from toolorch.core.config import Config, save_config
from toolorch.core.errors import RunFailed
from toolorch.core.jsonl import read_jsonl, write_json
from toolorch.core.progress import Progress
from toolorch.core.records import Task
from toolorch.synth.envs import replace_folder


class progress_bar:
    """Counted progress of long work (tasks done): log lines with rate, elapsed and ETA, and a bar
    on a terminal (toolorch.core.progress); the calls of rich's Progress the stages make."""

    def __init__(self, label: str, enabled: bool = True):
        self.label, self.enabled, self.done = label, enabled, 0
        self.progress: Progress | None = None

    def __enter__(self) -> progress_bar:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def add_task(self, label: str, total: int, info: str = "") -> int:
        self.progress = Progress(label, total, enabled=self.enabled, unit="task").__enter__()
        return 0

    def advance(self, job: int, n: int = 1) -> None:
        self.done += n
        if self.progress is not None:
            self.progress.update(self.done, samples=n)


def finish(cfg: Config, out_dir: str | Path, metrics: dict[str, Any], metrics_path: str | Path) -> dict[str, Any]:
    """Save the resolved config beside the outputs and the metrics JSON (read by dvc and KFP)."""
    save_config(cfg, out_dir)
    write_json(metrics_path, metrics)
    return metrics


def read_tasks(path: str | Path, what: str) -> list[Task]:
    """Tasks from a JSONL file (a bad line is named by file and line); none at all is a failure."""
    tasks = read_jsonl(path, Task)
    if not tasks:
        raise RunFailed(f"{path}: no {what} tasks")
    return tasks


def checkpoint_dir(folder: str | Path, what: str) -> Path:
    """An HF checkpoint folder that exists (FileNotFoundError naming it otherwise)."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: no {what} checkpoint (no config.json)")
    return folder


# What sft and grpo write beside the model: the state a run resumes from and the run's curves and
# logs, whose bytes depend on the run (timings, event-file names), not on the model.
TRAINING_RECORDS = ("state", "tensorboard", "dvclive", "curves", "history.jsonl")


def model_files(folder: str | Path) -> list[Path]:
    """A checkpoint folder's files that make the model (weights, config, tokenizer, ...), sorted;
    not its TRAINING_RECORDS: two runs that trained the same model give the same files."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and p.relative_to(folder).parts[0] not in TRAINING_RECORDS)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def staged(folders: dict[str, Path]) -> Iterator[dict[str, Path]]:
    """Each output folder built in a hidden sibling (`.name.partial`) and moved into place when the
    block succeeds; when it fails the partial folders are removed and the old outputs stay."""
    partial = {k: p.with_name(f".{p.name}.partial") for k, p in folders.items()}
    for p in partial.values():
        _remove(p)
    try:
        yield partial
    except BaseException:
        for p in partial.values():
            _remove(p)
        raise
    for key, p in partial.items():
        if p.exists() and os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 wrote them
            folders[key].parent.mkdir(parents=True, exist_ok=True)
            replace_folder(p, folders[key])
