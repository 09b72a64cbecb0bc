"""`toolorch run-episode`: the trajectory as readable text (styles applied, not printed as markup)."""
from __future__ import annotations

from typer.testing import CliRunner

from toolorch.cli import app
from toolorch.core.jsonl import write_jsonl


def test_run_episode_prints_the_turns_without_markup(tmp_path, library_env, author_task):
    tasks = tmp_path / "tasks.jsonl"
    write_jsonl(tasks, [author_task])
    result = CliRunner().invoke(app, ["run-episode", "--env", str(library_env.db_path.parent), "--tasks", str(tasks),
                                      "--policy", "gold"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "task minilib-author-engines: Who wrote Engines?"
    assert sum(ln.startswith("assistant <") for ln in lines) == 3  # two tool calls and the answer
    assert "[cyan]" not in result.output and "[/]" not in result.output and "[bold]" not in result.output
    assert "answer 'Ada Byron' gold 'Ada Byron' correct=True" in result.output


def test_every_stage_is_a_command_with_the_profile_options():
    result = CliRunner().invoke(app, ["--help"])
    for command in ("synth-envs", "synth-tasks", "passk", "validate", "sft", "grpo", "eval", "run-episode"):
        assert command in result.output
    passk = CliRunner().invoke(app, ["passk", "--help"])
    for option in ("--config", "--set", "--envs-dir", "--tasks-path", "--out-dir", "--metrics-path", "--debug"):
        assert option in passk.output
