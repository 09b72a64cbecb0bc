"""Source files a toolorch module can import (static: module-level and function-level imports)."""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def module_file(name: str) -> Path | None:
    base = SRC / Path(*name.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _imported(file: Path, module: str) -> list[str]:
    package = module if file.name == "__init__.py" else module.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names += [base] + [f"{base}.{a.name}" for a in node.names]
    return names


def toolorch_closure(module: str) -> set[Path]:
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen or not name.startswith("toolorch"):
            continue
        file = module_file(name)
        if file is None:
            continue
        seen[name] = file
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))] + _imported(file, name)
    return set(seen.values())
