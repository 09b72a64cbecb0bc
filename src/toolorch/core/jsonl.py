"""JSONL files of typed records; a bad line is reported by file and line number."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

M = TypeVar("M", bound=BaseModel)


class JsonlError(ValueError):
    """A JSONL line that is not valid JSON or does not match its schema."""


def read_jsonl(path: str | Path, model: type[M]) -> list[M]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    records: list[M] = []
    for lineno, line in _lines(path):
        try:
            records.append(model.model_validate_json(line))
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "<root>"
            raise JsonlError(f"{path}:{lineno}: invalid {model.__name__}: {where}: {first['msg']}") from None
    return records


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of every non-blank line; bytes that are not UTF-8 are named by line."""
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise JsonlError(f"{path}:{lineno}: not UTF-8 text (byte {e.start + 1})") from None
            if line.strip():
                yield lineno, line.rstrip("\r\n")


def read_objects(path: str | Path, what: str = "file") -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, JSON object) per non-blank line, untyped: for checks that must see bad values.

    Raises FileNotFoundError, or JsonlError naming file:line for a line that is not a JSON object.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what}")
    for lineno, line in _lines(path):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise JsonlError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise JsonlError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
        yield lineno, row


def write_jsonl(path: str | Path, records: Iterable[BaseModel]) -> int:
    """Write atomically (temp file + rename) so a killed stage leaves no half file; a record that
    cannot be written (text that is not valid Unicode) is a JsonlError naming it, and the
    previous file stays."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for n, r in enumerate(records, start=1):
                f.write(_json_line(r, path, n))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return n


def _json_line(record: BaseModel, path: Path, n: int) -> str:
    try:
        return record.model_dump_json() + "\n"
    except PydanticSerializationError as e:
        raise JsonlError(f"{path}: record {n} ({type(record).__name__}) cannot be written: {e}") from None


def write_json(path: str | Path, obj: object) -> None:
    """Atomically, through a temp file of this call's own: processes that write the same file at
    once (the ranks of a torchrun job) never rename each other's."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide metrics from other readers
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
