"""The route probe: P(expert) at the answer call, scored on the tokens the policy would emit."""
from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from toolorch.core.records import ANSWER_TOOL, Preference, ToolCall
from toolorch.eval.route_probe import expert_odds, probe
from toolorch.runtime.chat import encode, render
from toolorch.runtime.env import Environment
from toolorch.runtime.episode import initial_messages
from toolorch.runtime.parsing import render_call
from toolorch.runtime.preferences import PROFILES
from toolorch.runtime.tools import Toolbox


def _model(folder):
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


def _messages(world, task):
    env = Environment.load(world.envs_dir / task.env)
    with env.session() as session:
        return initial_messages(task, Toolbox(world.cfg.catalog(), session))


def test_odds_match_whole_sequence_likelihoods(world, tiny_tokenizer):
    folder, tok = tiny_tokenizer
    model = _model(folder)
    messages = _messages(world, world.tasks[0])
    experts = [e.name for e in world.cfg.experts]
    odds = expert_odds(model, tok, messages, experts)

    # independently: the log-likelihood of each whole sequence, prompt included (the shared
    # prompt's part is the same for every expert, so it cancels in the normalisation)
    totals = []
    for e in experts:
        ids = encode(tok, render(tok, messages, generation_prompt=True)
                     + render_call(ToolCall(name=ANSWER_TOOL, arguments={"model": e})))
        with torch.no_grad():
            logp = model(input_ids=torch.tensor([ids])).logits.log_softmax(-1)[0]
        totals.append(sum(float(logp[i - 1, t]) for i, t in enumerate(ids) if i > 0))
    expected = torch.softmax(torch.tensor(totals), dim=0).tolist()
    assert list(odds) == experts
    assert sum(odds.values()) == pytest.approx(1.0)
    for e, p in zip(experts, expected):
        assert odds[e] == pytest.approx(p, rel=1e-4)


def test_table_averages_each_category_and_user(world, tiny_tokenizer):
    folder, tok = tiny_tokenizer
    model = _model(folder)
    tasks = world.tasks[:4]
    envs = {t.env: Environment.load(world.envs_dir / t.env) for t in tasks}
    table = probe(model, tok, tasks, envs, world.cfg.catalog(), ["accuracy_first", "cost_averse"])
    assert set(table) == {"accuracy_first", "cost_averse"}
    categories = {t.category for t in tasks}
    for rows in table.values():
        assert set(rows) == categories | {"all"}
        for odds in rows.values():
            assert sum(odds.values()) == pytest.approx(1.0)
    # "all" is the task-weighted mean of the per-task odds
    per_task = [expert_odds(model, tok, _messages(world, t.model_copy(
        update={"preference": Preference(**PROFILES["cost_averse"])})), [e.name for e in world.cfg.experts])
        for t in tasks]
    mean_frontier = sum(o["frontier"] for o in per_task) / len(per_task)
    assert table["cost_averse"]["all"]["frontier"] == pytest.approx(mean_frontier, rel=1e-5)


def test_a_missing_config_or_checkpoint_is_one_message_not_a_traceback(tmp_path):
    from typer.testing import CliRunner
    import typer

    from toolorch.eval.route_probe import main

    app = typer.Typer()
    app.command()(main)
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("")
    for args, message in (([str(tmp_path), "--config", str(tmp_path / "nope.yaml")], "no such config file"),
                          ([str(tmp_path / "missing")], "tasks.jsonl: no held-out tasks")):
        done = CliRunner().invoke(app, [*args, "--tasks", str(tasks), "--envs-dir", str(tmp_path)])
        assert done.exit_code in (1, 2) and message in done.output and "Traceback" not in done.output, done.output
