"""Shared fixtures: a small hand-declared world (two tables, SQL tools, a few documents) and a
tiny orchestrator trained on it (trained_tiny.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from toolorch.core.catalog import ExpertConfig, SimulatedProfile
from toolorch.core.config import Config
from toolorch.core.records import Task, ToolCall, ToolSpec
from toolorch.runtime.env import Document, Environment, EnvSpec


def _str_arg(name: str) -> dict:
    return {"type": "object", "properties": {name: {"type": "string"}}, "required": [name]}


def build_library(folder: Path) -> Environment:
    spec = EnvSpec(
        name="minilib",
        description="A small lending library.",
        ddl=[
            "CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT)",
            "CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT NOT NULL, "
            "author_id INTEGER NOT NULL REFERENCES authors(id), year INTEGER, copies INTEGER)",
        ],
        tools=[
            ToolSpec(name="book_author_id", description="Author id of a book by title.", kind="db",
                     parameters=_str_arg("title"), sql="SELECT author_id FROM books WHERE title = :title",
                     latency_s=0.5),
            ToolSpec(name="author_name", description="Author name by id.", kind="db",
                     parameters={"type": "object", "properties": {"author_id": {"type": "integer"}},
                                 "required": ["author_id"]},
                     sql="SELECT name FROM authors WHERE id = :author_id", latency_s=0.5),
            ToolSpec(name="books_by_year", description="Titles published in a year.", kind="db",
                     parameters={"type": "object", "properties": {"year": {"type": "integer"}},
                                 "required": ["year"]},
                     sql="SELECT title FROM books WHERE year = :year ORDER BY title", latency_s=0.5),
            ToolSpec(name="total_copies", description="Copies of all books.", kind="db",
                     sql="SELECT SUM(copies) FROM books", latency_s=0.5),
            ToolSpec(name="search", description="Search the library's documents.", kind="search",
                     parameters=_str_arg("query"), cost_usd=0.001, latency_s=1.0),
        ],
    )
    rows = {
        "authors": [{"id": 1, "name": "Ada Byron", "country": "UK"},
                    {"id": 2, "name": "Kurt Vonn", "country": "DE"}],
        "books": [{"id": 1, "title": "Engines", "author_id": 1, "year": 1843, "copies": 3},
                  {"id": 2, "title": "Notes", "author_id": 1, "year": 1842, "copies": 2},
                  {"id": 3, "title": "Proofs", "author_id": 2, "year": 1931, "copies": 5}],
    }
    docs = [
        Document(id="d1", title="Late fees", text="Late fees are 25 cents per day per book."),
        Document(id="d2", title="Opening hours", text="The library opens at 9 and closes at 17 on weekdays."),
        Document(id="d3", title="Membership", text="Membership is free for residents."),
    ]
    return Environment.create(folder, spec, rows, docs)


@pytest.fixture(scope="session")
def library_env(tmp_path_factory) -> Environment:
    return build_library(tmp_path_factory.mktemp("envs") / "minilib")


@pytest.fixture(scope="session")
def trained_tiny_dir(tmp_path_factory, library_env) -> Path:
    from trained_tiny import train_tiny  # imports the sft stage: only when a test asks

    return train_tiny(tmp_path_factory.mktemp("trained_tiny"), library_env)


@pytest.fixture
def author_task() -> Task:
    return Task(id="minilib-author-engines", env="minilib", question="Who wrote Engines?", answer="Ada Byron",
                category="multi_hop", difficulty=2, template="author_of_title",
                gold_calls=[ToolCall(name="book_author_id", arguments={"title": "Engines"}),
                            ToolCall(name="author_name", arguments={"author_id": "$prev"})])


@pytest.fixture
def sim_config() -> Config:
    return Config(experts=[
        ExpertConfig(name="frontier", price="frontier",
                     simulated=SimulatedProfile(default_accuracy=1.0, tokens_out_mean=500, latency_s_mean=20)),
        ExpertConfig(name="mini", price="mini",
                     simulated=SimulatedProfile(default_accuracy=0.0, tokens_out_mean=200, latency_s_mean=5)),
    ])
