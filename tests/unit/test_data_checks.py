"""Frames behind the data-quality suites, and the suites themselves on small hand-made frames."""
import json
import sqlite3

import pandas as pd
import pytest

from toolorch.core.records import CATEGORIES
from toolorch.synth.data_checks import (
    CheckSettings,
    ValidationFailed,
    category_share_frame,
    environment_frames,
    question_key,
    read_records,
    report_html,
    run_suites,
    split_frame,
    suite_expectations,
)


def test_question_key_ignores_case_spacing_and_punctuation():
    assert question_key("Who wrote  'Engines'?") == question_key("who wrote engines") == "who wrote engines"
    assert question_key(None) is None


def test_read_records_reports_the_bad_line(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"id": "a", "answer": null}\n\n[1, 2]\n')
    with pytest.raises(ValueError, match=r"t.jsonl:3: expected a JSON object"):
        read_records(path)
    path.write_text('{"id": "a", "answer": null}\n{"id": \n')
    with pytest.raises(ValueError, match=r"t.jsonl:2: not valid JSON"):
        read_records(path)
    path.write_text('{"id": "a", "answer": null}\n')
    assert read_records(path) == [{"id": "a", "answer": None}]  # nulls reach the checks


def test_environment_frames_count_tables_rows_and_broken_foreign_keys(library_env, tmp_path):
    envs, tables = environment_frames(library_env.db_path.parent.parent, ["tau2"])
    row = envs.set_index("env").loc["minilib"]
    assert (row.n_tools, row.n_tables, row.n_docs, row.fk_violations) == (5, 2, 3, 0)
    assert dict(zip(tables.table, tables.rows)) == {"authors": 2, "books": 3}
    # a row pointing at a missing author: written with foreign keys off, as a buggy generator might
    broken = tmp_path / "envs" / "broken"
    broken.mkdir(parents=True)
    (broken / "env.json").write_text(json.dumps({"name": "broken", "tools": []}))
    conn = sqlite3.connect(broken / "db.sqlite")
    conn.execute("CREATE TABLE a (id INTEGER PRIMARY KEY)")
    conn.execute("CREATE TABLE b (id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES a(id))")
    conn.execute("INSERT INTO b VALUES (1, 99)")
    conn.commit()
    conn.close()
    (broken / "synth.json").write_text(json.dumps({"generator": "tau2"}))
    envs, tables = environment_frames(tmp_path / "envs", ["tau2"])
    row = envs.set_index("env").loc["broken"]
    assert (row.fk_violations, row.n_docs, row.imported) == (1, 0, True)
    assert tables.imported.all()


def test_category_shares_include_missing_categories():
    frame = category_share_frame([{"category": "lookup"}] * 3 + [{"category": "document"}])
    shares = dict(zip(frame.category, frame.share))
    assert set(shares) == set(CATEGORIES)
    assert shares["lookup"] == 0.75 and shares["document"] == 0.25 and shares["reasoning"] == 0


def test_split_frame_classifies_heldout_tasks():
    train = [{"id": "a", "env": "bank", "question": "Q1", "template": "t1"}]
    heldout = [{"id": "b", "env": "bank", "question": "Q2", "template": "t2"},
               {"id": "c", "env": "shop", "question": "Q3", "template": "t1"}]
    frame, values = split_frame(train, heldout, heldout_envs=None)
    assert list(frame.env_heldout) == [False, True]  # shop has no train task
    assert values == {"ids": ["a"], "question_keys": ["q1"], "templates": ["t1"], "envs": ["bank"]}
    frame, _ = split_frame(train, heldout, heldout_envs=["bank"])  # declared: bank tasks leak into train
    assert list(frame.env_heldout) == [True, False]


def _clean_frames():
    tasks = pd.DataFrame({
        "id": ["a", "b"], "split": ["train", "heldout"], "env": ["bank", "bank"], "question": ["Q1", "Q2"],
        "answer": ["1", "x"], "answer_type": ["number", "string"], "category": ["lookup", "document"],
        "difficulty": [1, 2], "template": ["t1", "t2"], "n_gold_calls": [1, 2], "reverifies": [True, True],
        "imported": [False, False],
    })
    split = pd.DataFrame({"id": ["b"], "question_key": ["q2"], "env": ["bank"], "template": ["t2"],
                          "env_heldout": [False]})
    return {"tasks": tasks, "split": split}


def _expectations(settings=CheckSettings()):
    all_suites = suite_expectations(settings, ["bank"], ["a"], {"ids": ["a"], "question_keys": ["q1"],
                                                                "templates": ["t1"], "envs": ["bank"]})
    return {k: all_suites[k] for k in ("tasks", "split")}


def test_suites_pass_clean_frames_and_write_data_docs(tmp_path):
    results = run_suites(_clean_frames(), _expectations(), docs_dir=tmp_path / "docs")
    assert [(r.name, r.success, r.failed) for r in results] == [("tasks", True, []), ("split", True, [])]
    assert (tmp_path / "docs" / "index.html").exists()
    pages = list((tmp_path / "docs" / "validations").rglob("*.html"))
    assert {p.parts[-4] for p in pages} == {"tasks", "split"}


def test_shape_ranges_skip_tasks_of_imported_worlds():
    frames = _clean_frames()
    frames["tasks"].loc[1, ["difficulty", "n_gold_calls", "imported"]] = [20, 0, True]  # a tau2 task
    assert all(r.success for r in run_suites(frames, _expectations()))
    frames["tasks"].loc[1, "imported"] = False
    failed = {f["expectation"] for r in run_suites(frames, _expectations()) for f in r.failed}
    assert failed == {"expect_column_values_to_be_between(difficulty) where imported==False",
                      "expect_column_values_to_be_between(n_gold_calls) where imported==False"}


def test_each_failure_is_named_by_expectation_and_column():
    frames = _clean_frames()
    frames["tasks"].loc[1, ["id", "category", "reverifies"]] = ["a", "poetry", False]
    frames["split"].loc[0, "template"] = "t1"  # a template-held-out task whose template is in train
    results = {r.name: r for r in run_suites(frames, _expectations())}
    assert {f["expectation"] for f in results["tasks"].failed} == {
        "expect_column_values_to_be_unique(id)",
        "expect_column_values_to_be_in_set(category)",
        "expect_column_values_to_be_in_set(reverifies)",
    }
    failed = {f["expectation"]: f for f in results["split"].failed}
    assert list(failed) == ["expect_column_values_to_not_be_in_set(template) where env_heldout==False"]
    assert failed[list(failed)[0]]["examples"] == ["t1"]
    assert results["tasks"].failure_names()[0].startswith("tasks: expect_")


def test_a_failure_names_its_failing_rows_and_the_page_shows_them_offline():
    frames = _clean_frames()
    frames["tasks"]["reverify_error"] = None
    frames["tasks"].loc[1, ["reverifies", "reverify_error"]] = [False, "gold calls give 'Ada', not 'Ada Byron'"]
    results = run_suites(frames, _expectations())
    tasks = {r.name: r for r in results}["tasks"]
    failure = {f["expectation"]: f for f in tasks.failed}["expect_column_values_to_be_in_set(reverifies)"]
    task_id = frames["tasks"].loc[1, "id"]
    assert failure["rows"] == [{"id": task_id, "reverify_error": "gold calls give 'Ada', not 'Ada Byron'"}]
    message = str(ValidationFailed(tasks.failure_names(), tasks.failure_rows()))
    assert f"tasks: expect_column_values_to_be_in_set(reverifies) [id={task_id}, reverify_error=gold calls" in message
    page = report_html(results)
    assert "FAILED" in page and f"id={task_id}" in page and "not &#x27;Ada Byron&#x27;" in page
    assert "<script" not in page and "http" not in page  # nothing to fetch: renders offline
