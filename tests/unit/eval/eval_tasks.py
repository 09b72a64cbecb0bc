"""Held-out tasks on the fixture library world (tests/conftest.py), one or more per category."""
from __future__ import annotations

from toolorch.core.records import Preference, Task, ToolCall


def library_tasks() -> list[Task]:
    def author(title: str, name: str, i: int) -> Task:
        return Task(id=f"minilib-author-{i}", env="minilib", question=f"Who wrote {title}?", answer=name,
                    category="multi_hop", difficulty=2, template="author_of_title", split="heldout",
                    gold_calls=[ToolCall(name="book_author_id", arguments={"title": title}),
                                ToolCall(name="author_name", arguments={"author_id": "$prev"})])

    return [
        author("Engines", "Ada Byron", 1),
        author("Proofs", "Kurt Vonn", 2),
        author("Notes", "Ada Byron", 3),
        Task(id="minilib-copies", env="minilib", question="How many copies does the library hold in total?",
             answer="10", answer_type="number", category="aggregate", template="total_copies", split="heldout",
             gold_calls=[ToolCall(name="total_copies")], preference=Preference(accuracy=1, cost=1)),
        Task(id="minilib-1842", env="minilib", question="Which book was published in 1842?", answer="Notes",
             category="lookup", template="book_of_year", split="heldout",
             gold_calls=[ToolCall(name="books_by_year", arguments={"year": 1842})]),
        Task(id="minilib-1931", env="minilib", question="Which book was published in 1931?", answer="Proofs",
             category="lookup", template="book_of_year", split="heldout",
             gold_calls=[ToolCall(name="books_by_year", arguments={"year": 1931})]),
        Task(id="minilib-fees", env="minilib", question="How much is the late fee per day per book?",
             answer="25 cents", category="document", template="doc_fact", split="heldout",
             gold_calls=[ToolCall(name="search", arguments={"query": "late fees"})]),
        Task(id="minilib-opening", env="minilib", question="At what hour does the library open on weekdays?",
             answer="9", answer_type="number", category="document", template="doc_fact", split="heldout",
             gold_calls=[ToolCall(name="search", arguments={"query": "opening hours"})]),
    ]
