"""The gateway's world: a world folder (SQL tools + its documents) or a folder of documents to search.

    env = load_world(Path("worlds/retail"))                      # env.json, db.sqlite, docs.jsonl
    env = documents_world(Path("docs/"), Path(tmp) / "docs-env")  # .txt/.md files and .jsonl rows

Each request gets its own `EnvSession` (a private in-memory copy, so SQL tools may write
without touching other requests), searched with the runtime's SQLite FTS5 index.
"""
from __future__ import annotations

from pathlib import Path

from toolorch.core.jsonl import read_jsonl
from toolorch.runtime.env.world import Document, Environment, EnvSpec, search_tool

TEXT_SUFFIXES = (".txt", ".md")


def load_world(folder: Path) -> Environment:
    return Environment.load(folder)


def read_documents(folder: Path) -> list[Document]:
    if not folder.is_dir():
        raise FileNotFoundError(f"tools.documents: {folder} is not a folder")
    docs: list[Document] = []
    for path in sorted(folder.rglob("*")):
        if path.suffix in TEXT_SUFFIXES and path.is_file():
            docs.append(Document(id=str(path.relative_to(folder)), title=path.stem.replace("_", " "),
                                 text=path.read_text(encoding="utf-8", errors="replace")))
        elif path.suffix == ".jsonl" and path.is_file():
            docs.extend(read_jsonl(path, Document))
    ids = [d.id for d in docs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"tools.documents: {folder}: document ids must be unique")
    if not docs:
        raise ValueError(f"tools.documents: {folder} has no .txt, .md or .jsonl documents")
    return docs


def documents_world(folder: Path, out: Path) -> Environment:
    """A world with no tables whose one tool is `search` over the folder's documents."""
    docs = read_documents(folder)
    spec = EnvSpec(name="documents", ddl=[], tools=[search_tool()],
                   description="Search the supplied documents; consult the experts.")
    return Environment.create(out, spec, {}, docs)
