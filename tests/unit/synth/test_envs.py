from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from toolorch.core.records import ToolCall
from toolorch.synth.domains import DOMAIN_NAMES, get_domain
from toolorch.synth.envs import ProceduralGenerator, check_environment, load_hints

SMALL_ROWS = (50, 70)  # as conftest.all_envs


def _dump(env) -> list:
    conn = sqlite3.connect(env.db_path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return [(t, conn.execute(f"SELECT * FROM {t} ORDER BY id").fetchall()) for t in tables]
    finally:
        conn.close()


def test_eight_distinct_domains_with_declared_shapes(all_envs):
    assert len({e.name for e in all_envs}) == len(DOMAIN_NAMES) >= 8
    for env in all_envs:
        db_tools = [t for t in env.spec.tools if t.kind == "db"]
        assert 3 <= len(env.spec.ddl) <= 5, env.name
        assert 8 <= len(db_tools) <= 20, env.name
        assert [t.name for t in env.spec.tools if t.kind == "search"] == ["search"]
        assert 10 <= len(env.docs) <= 40
        assert sum("REFERENCES" in ddl for ddl in env.spec.ddl) >= 2, "child tables carry foreign keys"
        for t in db_tools:
            assert t.cost_usd == 0.0 and 0.2 <= t.latency_s <= 1.0
            assert set(t.parameters["required"]) == set(t.parameters["properties"])
            assert all(f":{p}" in t.sql for p in t.parameters["properties"])
        search = env.tool("search")
        assert search.cost_usd == 0.001 and search.latency_s == 1.0


def test_rows_are_in_range_and_foreign_keys_hold(all_envs):
    for env in all_envs:
        for table, rows in _dump(env):
            assert SMALL_ROWS[0] <= len(rows) <= SMALL_ROWS[1], (env.name, table)
        conn = sqlite3.connect(env.db_path)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        conn.close()


def test_every_tool_runs_on_values_from_the_db(all_envs):
    for env in all_envs:
        hints = load_hints(env)
        conn = sqlite3.connect(env.db_path)
        with env.session() as session:
            for tool in hints.tools:
                args = {}
                for a in tool.args:
                    table, col = a.source.split(".")
                    args[a.name] = conn.execute(f"SELECT {col} FROM {table} ORDER BY id DESC LIMIT 1").fetchone()[0]
                out = session.call(env.tool(tool.name), ToolCall(name=tool.name, arguments=args))
                assert out and not out.startswith("error"), (env.name, tool.name, out)
        conn.close()
        assert check_environment(env)["tools"] == len(env.spec.tools)


def test_document_facts_are_stated_verbatim_and_found_by_search(all_envs):
    for env in all_envs:
        docs = {d.id: d for d in env.docs}
        with env.session() as session:
            for fact in load_hints(env).facts:
                assert fact.answer in docs[fact.doc_id].text
                hits = session.search(fact.question)
                assert fact.doc_id in [h["id"] for h in hits], (env.name, fact.key)


def test_same_seed_is_byte_identical_and_other_seeds_differ(tmp_path):
    gen = ProceduralGenerator(rows_per_table=SMALL_ROWS)
    a, b = gen.generate("bank", 7, tmp_path / "a"), gen.generate("bank", 7, tmp_path / "b")
    c = gen.generate("bank", 8, tmp_path / "c")
    for part in ("env.json", "docs.jsonl", "synth.json"):
        assert (tmp_path / "a/bank" / part).read_bytes() == (tmp_path / "b/bank" / part).read_bytes()
    assert _dump(a) == _dump(b)
    assert _dump(a) != _dump(c)
    assert (tmp_path / "a/bank/env.json").read_text() != (tmp_path / "c/bank/env.json").read_text()


def test_broken_foreign_keys_are_rejected(all_envs, tmp_path):
    import shutil

    env = all_envs[0]
    folder = tmp_path / env.name
    shutil.copytree(env.db_path.parent, folder)
    conn = sqlite3.connect(folder / "db.sqlite")
    child = next(t for t in get_domain(env.name).tables if any(c.ref for c in t.cols))
    ref_col = next(c.name for c in child.cols if c.ref)
    conn.execute(f"UPDATE {child.name} SET {ref_col} = 99999 WHERE id = 1")
    conn.commit()
    conn.close()
    from toolorch.runtime.env import Environment

    with pytest.raises(ValueError, match="foreign keys"):
        check_environment(Environment.load(folder))


def test_bad_generator_input_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown domain 'casino'"):
        ProceduralGenerator(rows_per_table=SMALL_ROWS).generate("casino", 0, tmp_path)
    with pytest.raises(ValueError, match="rows_per_table"):
        ProceduralGenerator(rows_per_table=(10, 5))
    assert not any(Path(tmp_path).iterdir())
