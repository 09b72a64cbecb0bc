"""passk and validate stages end to end on a small real world: outputs, metrics, determinism,
an online teacher behind a real HTTP server, and corrupted inputs that validate must catch."""
import json
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from toolorch.core.config import ConfigError
from toolorch.core.jsonl import read_jsonl, write_jsonl
from toolorch.core.records import Task, ToolCall, Trajectory
from toolorch.stages import load_profile, passk, validate
from toolorch.synth.data_checks import ValidationFailed

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"
# ranges for the two-table test world (the tiny profile's ranges fit generated domains)
SMALL_WORLD = ["stages.validate.tools_per_env=[1,20]", "stages.validate.tables_per_env=[1,5]",
               "stages.validate.rows_per_table=[1,300]", "stages.validate.category_share=[0,1]"]


def _task(id, question, answer, calls, **kw):
    return Task(id=id, env="minilib", question=question, answer=answer, gold_calls=calls, **kw)


def _author_calls(title):
    return [ToolCall(name="book_author_id", arguments={"title": title}),
            ToolCall(name="author_name", arguments={"author_id": "$prev"})]


TRAIN = [
    _task("a1", "Who wrote Engines?", "Ada Byron", _author_calls("Engines"), category="multi_hop", difficulty=2,
          template="author_of_title"),
    _task("c1", "How many copies does the library hold?", "10", [ToolCall(name="total_copies")],
          answer_type="number", category="aggregate", template="total_copies"),
    _task("d1", "How much are late fees per day?", "25 cents",
          [ToolCall(name="search", arguments={"query": "late fees"})], category="document", template="doc_fact"),
    _task("y1", "Which book came out in 1842?", "Notes", [ToolCall(name="books_by_year", arguments={"year": 1842})],
          category="lookup", template="title_by_year"),
    # broken: the DB says Kurt Vonn wrote Proofs
    _task("bad", "Who wrote Proofs?", "Ada Byron", _author_calls("Proofs"), category="multi_hop", difficulty=2,
          template="author_of_title"),
]
HELDOUT = [
    _task("h1", "Who was the author of Notes?", "Ada Byron", _author_calls("Notes"), category="multi_hop",
          difficulty=2, template="author_of_title_v2", split="heldout"),
    _task("h2", "When does the library open on weekdays?", "9",
          [ToolCall(name="search", arguments={"query": "opening hours"})], category="document",
          template="doc_hours", split="heldout"),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory, library_env):
    root = tmp_path_factory.mktemp("world")
    shutil.copytree(library_env.db_path.parent, root / "envs" / "minilib")
    write_jsonl(root / "tasks" / "train.jsonl", TRAIN)
    write_jsonl(root / "tasks" / "heldout.jsonl", HELDOUT)
    return root


def _passk(root, out, overrides=()):
    cfg = load_profile(TINY, ["stages.passk.progress=false", *overrides])
    return passk.run(cfg, root / "envs", root / "tasks" / "train.jsonl", out / "passk", out / "metrics" / "passk.json")


# every route, distinct trajectories: the tiny profile itself only delegates (see configs/tiny.yaml)
MIXED = ["stages.passk.k=8", "stages.passk.keep_top=4", "stages.passk.distinct=true",
         "stages.passk.resample_preferences=false",
         "stages.passk.routes={gold: 0.3, expert: 0.5, extra: 0.1, partial: 0.1}"]


@pytest.fixture(scope="module")
def passk_run(world):
    return _passk(world, world, MIXED)


def test_passk_keeps_verified_trajectories_most_efficient_first(world, passk_run):
    m = passk_run
    assert m["k"] == 8 and m["tasks_in"] == 5 and m["trajectories_run"] == 40
    assert (m["tasks_kept"], m["tasks_dropped_gold_fails"], m["tasks_dropped_unsolved"]) == (4, 1, 0)
    kept = read_jsonl(world / "passk" / "tasks.jsonl", Task)
    assert [t.id for t in kept] == ["a1", "c1", "d1", "y1"]
    trajs = [json.loads(line) for line in (world / "passk" / "trajectories.jsonl").open()]
    assert trajs and all(t["correct"] and t["stop_reason"] == "answer" for t in trajs)
    by_task = {}
    for t in trajs:
        by_task.setdefault(t["task_id"], []).append(t)
    assert set(by_task) == {"a1", "c1", "d1", "y1"}
    for group in by_task.values():
        assert len(group) <= 4  # keep_top
        costs = [(t["usage"]["cost_usd"], t["usage"]["latency_s"]) for t in group]
        assert costs == sorted(costs)
        assert group[0]["policy"] == "teacher:gold"  # the gold plan is the cheapest route here
        conversations = [json.dumps(t["messages"], sort_keys=True) for t in group]
        assert len(set(conversations)) == len(conversations)  # a route sampled twice is kept once
    stats = {r["task_id"]: r for r in json.loads((world / "passk" / "stats.json").read_text())["tasks"]}
    assert stats["a1"]["correct"] > len(by_task["a1"])  # pass@k counts every success, copies included
    assert 0 < m["pass@1"] <= m["pass@8"] <= 1
    assert set(m["by_category"]) == {"multi_hop", "aggregate", "document", "lookup"}
    assert m["by_difficulty"]["2"]["tasks"] == 2 and m["trajectories_per_s"] > 0
    assert m["route_success"]["teacher:partial"] == 0.0
    saved = json.loads((world / "metrics" / "passk.json").read_text())
    assert saved == m and (world / "passk" / "config.resolved.yaml").exists()
    stats = json.loads((world / "passk" / "stats.json").read_text())
    bad = next(r for r in stats["tasks"] if r["task_id"] == "bad")
    assert bad["gold_verifies"] is False and bad["correct"] > 0  # 'solved' by the simulated expert only


def test_passk_is_deterministic_whatever_the_workers(world, passk_run, tmp_path):
    again = _passk(world, tmp_path, [*MIXED, "stages.passk.workers=3"])
    for name in ("tasks.jsonl", "trajectories.jsonl", "stats.json"):
        assert (tmp_path / "passk" / name).read_bytes() == (world / "passk" / name).read_bytes(), name
    assert again["pass@1"] == passk_run["pass@1"]


def test_passk_can_keep_copies_so_the_teachers_frequencies_reach_sft(world, passk_run, tmp_path):
    _passk(world, tmp_path, [*MIXED, "stages.passk.keep_top=8", "stages.passk.distinct=false"])
    trajs = [json.loads(line) for line in (tmp_path / "passk" / "trajectories.jsonl").open()]
    stats = {r["task_id"]: r for r in json.loads((tmp_path / "passk" / "stats.json").read_text())["tasks"]}
    for task_id in ("a1", "c1", "d1", "y1"):
        group = [t for t in trajs if t["task_id"] == task_id]
        assert len(group) == stats[task_id]["correct"]  # every verified try, copies included
    conversations = [json.dumps(t["messages"], sort_keys=True) for t in trajs]
    assert len(set(conversations)) < len(conversations)


def test_passk_can_demonstrate_each_question_under_several_users(world, tmp_path):
    def users_by_task(out):
        _passk(world, out, [*MIXED, "stages.passk.keep_top=8", "stages.passk.distinct=false",
                            "stages.passk.resample_preferences=true"])
        users: dict[str, set[str]] = {}
        for line in (out / "passk" / "trajectories.jsonl").open():
            t = json.loads(line)
            prompt = t["messages"][1]["content"]
            users.setdefault(t["task_id"], set()).add(prompt[prompt.index("User preference"):])
        return users

    users = users_by_task(tmp_path / "a")
    assert max(len(u) for u in users.values()) > 1  # one question, several users
    assert users == users_by_task(tmp_path / "b")  # seeded


def test_unsolved_tasks_are_dropped(world, tmp_path):
    m = _passk(world, tmp_path, ["stages.passk.routes={gold: 0, expert: 0, extra: 0, partial: 1}",
                                 "stages.passk.k=2"])
    assert (m["tasks_kept"], m["tasks_dropped_unsolved"], m["pass@1"], m["pass@2"]) == (0, 5, 0.0, 0.0)
    assert (tmp_path / "passk" / "tasks.jsonl").read_text() == ""


def test_profile_settings_validate():
    cfg = load_profile(TINY)
    s = cfg.stages.passk
    assert (s.k, s.keep_top, s.distinct, s.resample_preferences) == (6, 6, False, True)
    assert cfg.stages.validate.rows_per_table == (50, 300)


def test_bad_settings_are_refused_when_the_profile_loads():
    with pytest.raises(ConfigError, match=r"--set stages.passk.k: Input should be greater than or equal to 1"):
        load_profile(None, ["stages.passk.k=0"])
    with pytest.raises(ConfigError, match="needs stages.passk.openai"):
        load_profile(None, ["stages.passk.teacher=openai"])
    with pytest.raises(ConfigError, match="stages.passk.kk: unknown key; did you mean `k`"):
        load_profile(None, ["stages.passk.kk=3"])


class ToyChatModel(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint: calls `total_copies`, then answers with what it returned."""

    requests: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        responses = [m["content"] for m in body["messages"] if m["role"] == "tool"]
        if responses:
            text = "<answer>" + responses[-1] + "</answer>"
        else:
            text = '<tool_call>{"name": "total_copies", "arguments": {}}</tool_call>'
        reply = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                 "choices": [{"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": text}}],
                 "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_online_teacher_against_a_real_server(world, tmp_path):
    root = tmp_path / "w"
    shutil.copytree(world / "envs", root / "envs")
    write_jsonl(root / "tasks" / "train.jsonl", [t for t in TRAIN if t.id in ("c1", "y1")])
    server = ThreadingHTTPServer(("127.0.0.1", 0), ToyChatModel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ToyChatModel.requests = []
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        m = _passk(root, tmp_path, [*MIXED, "stages.passk.teacher=openai", "stages.passk.k=3",
                                    f"stages.passk.openai={{base_url: '{url}', model: toy}}"])
    finally:
        server.shutdown()
    # c1 asks for the total, which the toy model reads back; y1 needs another tool, so it fails 0/3
    assert (m["tasks_kept"], m["tasks_dropped_unsolved"], m["pass@1"]) == (1, 1, 0.5)
    trajs = read_jsonl(tmp_path / "passk" / "trajectories.jsonl", Trajectory)
    # the toy model answers alike every time: the 3 successes count for pass@k, one copy is kept
    assert [t.policy for t in trajs] == ["openai:toy"] and trajs[0].answer == "10"
    assert all(any(t["function"]["name"] == "total_copies" for t in r["tools"]) for r in ToyChatModel.requests)
    assert len(ToyChatModel.requests) == 12  # 2 tasks x 3 samples x 2 turns
    assert len({r["seed"] for r in ToyChatModel.requests}) == 3  # one seed per sample
    assert all(r["temperature"] == 0.7 for r in ToyChatModel.requests)


def test_dead_teacher_endpoint_fails_cleanly(world, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    with pytest.raises(passk.PasskError, match=r"teacher endpoint failed [34] times in a row: .*unreachable"):
        _passk(world, tmp_path, ["stages.passk.teacher=openai",
                                 f"stages.passk.openai={{base_url: 'http://127.0.0.1:{port}/v1', model: m, "
                                 "max_retries: 0, timeout_s: 2}"])


# ---------------------------------------------------------------- validate

def _validate(root, out, overrides=()):
    cfg = load_profile(TINY, [*SMALL_WORLD, *overrides])
    return validate.run(cfg, root / "envs", root / "tasks" / "train.jsonl", root / "tasks" / "heldout.jsonl",
                        root / "passk" / "tasks.jsonl", root / "passk" / "trajectories.jsonl",
                        out / "docs", out / "validate.json")


@pytest.mark.slow
def test_validate_passes_the_passk_output(world, passk_run, tmp_path):
    m = _validate(world, tmp_path)
    assert m["success"] and m["failing_expectations"] == []
    assert set(m["suites"]) == {"environments", "env_tables", "tasks", "task_balance", "split", "trajectories"}
    assert m["tasks_reverified"] == 6 and m["counts"]["kept_tasks"] == 4 and m["counts"]["heldout_tasks"] == 2
    assert (tmp_path / "docs" / "index.html").exists()
    assert json.loads((tmp_path / "validate.json").read_text()) == m


def _rows(path):
    return [json.loads(line) for line in path.open()]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _dup_id(root):
    rows = _rows(root / "passk" / "tasks.jsonl")
    _write(root / "passk" / "tasks.jsonl", rows + [rows[0]])


def _null_answer(root):
    rows = _rows(root / "passk" / "tasks.jsonl")
    rows[1]["answer"] = None
    _write(root / "passk" / "tasks.jsonl", rows)


def _task_does_not_reverify(root):
    rows = _rows(root / "passk" / "tasks.jsonl")
    rows[0]["answer"] = "Kurt Vonn"  # a1: the DB says Ada Byron
    _write(root / "passk" / "tasks.jsonl", rows)


def _unverified_trajectory(root):
    rows = _rows(root / "passk" / "trajectories.jsonl")
    rows[2]["correct"] = False
    _write(root / "passk" / "trajectories.jsonl", rows)


def _orphan_trajectory(root):
    rows = _rows(root / "passk" / "trajectories.jsonl")
    rows[0]["task_id"] = "bad"  # dropped by passk
    _write(root / "passk" / "trajectories.jsonl", rows)


def _negative_cost(root):
    rows = _rows(root / "passk" / "trajectories.jsonl")
    rows[0]["usage"]["cost_usd"] = -0.01
    _write(root / "passk" / "trajectories.jsonl", rows)


def _heldout_edit(**changes):
    def corrupt(root):
        rows = _rows(root / "tasks" / "heldout.jsonl")
        rows[0].update(changes)
        _write(root / "tasks" / "heldout.jsonl", rows)
    return corrupt


# Each corruption the issue names, alone, must fail validate with its expectation named.
CORRUPTIONS = {
    "duplicate id": (_dup_id, "tasks: expect_column_values_to_be_unique(id)"),
    "null answer": (_null_answer, "tasks: expect_column_values_to_not_be_null(answer)"),
    "task answer does not re-verify": (_task_does_not_reverify, "tasks: expect_column_values_to_be_in_set(reverifies)"),
    "trajectory not verified": (_unverified_trajectory, "trajectories: expect_column_values_to_be_in_set(correct)"),
    "leak by id": (_heldout_edit(id="c1"), "split: expect_column_values_to_not_be_in_set(id)"),
    "leak by template": (_heldout_edit(template="author_of_title"),
                         "split: expect_column_values_to_not_be_in_set(template) where env_heldout==False"),
}


def _corrupted_copy(world, tmp_path, *corruptions):
    root = tmp_path / "w"
    for part in ("envs", "tasks", "passk"):
        shutil.copytree(world / part, root / part)
    for corrupt in corruptions:
        corrupt(root)
    return root


def _assert_fails_naming(root, tmp_path, expected, overrides=(), docs=False):
    with pytest.raises(ValidationFailed) as err:
        _validate(root, tmp_path, [*overrides, f"stages.validate.write_data_docs={str(docs).lower()}"])
    for name in expected:
        assert name in err.value.failures and name in str(err.value)
    saved = json.loads((tmp_path / "validate.json").read_text())
    assert saved["success"] is False and set(expected) <= set(saved["failing_expectations"])
    assert (tmp_path / "docs" / "index.html").exists() is docs
    return err.value.failures


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_validate_catches_corruption(world, passk_run, tmp_path, case):
    corrupt, expected = CORRUPTIONS[case]
    _assert_fails_naming(_corrupted_copy(world, tmp_path, corrupt), tmp_path, [expected])


@pytest.mark.slow
def test_validate_names_every_other_gate_at_once(world, passk_run, tmp_path):
    def declare_minilib_heldout(root):  # synth-tasks' split manifest says minilib is env-held-out
        (root / "tasks" / "split.json").write_text(json.dumps({"heldout_envs": ["minilib"],
                                                               "heldout_templates": []}))

    root = _corrupted_copy(world, tmp_path, _orphan_trajectory, _negative_cost,
                           _heldout_edit(question="who WROTE engines"), declare_minilib_heldout)
    failures = _assert_fails_naming(root, tmp_path, [
        "trajectories: expect_column_values_to_be_in_set(task_id)",
        "trajectories: expect_column_values_to_be_between(cost_usd)",
        "split: expect_column_values_to_not_be_in_set(question_key)",
        "split: expect_column_values_to_not_be_in_set(env) where env_heldout==True",
        "task_balance: expect_column_values_to_be_between(share)",
        "environments: expect_column_values_to_be_between(n_tools) where imported==False",
    ], overrides=["stages.validate.category_share=[0.3,1]",
                  "stages.validate.tools_per_env=[8,20]"], docs=True)  # Data Docs are written either way
    assert not any(f.startswith("tasks:") for f in failures)  # the task rows themselves are fine


@pytest.mark.slow
def test_validate_cli_exits_nonzero_and_names_the_failure(world, passk_run, tmp_path):
    from typer.testing import CliRunner

    from toolorch.cli import app

    root = _corrupted_copy(world, tmp_path, _dup_id)
    overrides = [a for o in [*SMALL_WORLD, "stages.validate.write_data_docs=false"] for a in ("--set", o)]
    result = CliRunner().invoke(app, [
        "validate", "--config", str(TINY), *overrides, "--envs-dir", str(root / "envs"),
        "--train-path", str(root / "tasks" / "train.jsonl"), "--heldout-path", str(root / "tasks" / "heldout.jsonl"),
        "--kept-tasks-path", str(root / "passk" / "tasks.jsonl"),
        "--trajectories-path", str(root / "passk" / "trajectories.jsonl"),
        "--docs-dir", str(tmp_path / "docs"), "--metrics-path", str(tmp_path / "validate.json")])
    assert result.exit_code == 1, result.output
    assert "validate: error: data validation failed" in result.output
    assert "expect_column_values_to_be_unique(id) [id=" in result.output  # the duplicated task, by id
    page = (tmp_path / "docs" / "report.html").read_text()  # the offline page, also without Data Docs
    assert "expect_column_values_to_be_unique(id)" in page and "<script" not in page
    assert json.loads((tmp_path / "validate.json").read_text())["success"] is False  # the report is kept
