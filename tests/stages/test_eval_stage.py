"""The eval stage on the fixture world: outputs, their shape, and numbers recomputed from results.jsonl."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from toolorch.core.config import Config
from toolorch.core.jsonl import read_jsonl, write_jsonl
from toolorch.core.records import Task
from toolorch.eval.metrics import summarize
from toolorch.eval.runner import EvalRow
from toolorch.stages import as_profile
from toolorch.stages import eval as eval_stage

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "eval"))
from eval_tasks import library_tasks  # the held-out tasks of the unit tests
from hf_openai_server import serve_hf

SCRIPTED = ["only:*", "random", "cascade", "oracle"]
POLICY_KEYS = {"n", "accuracy", "cost_usd", "latency_s", "turns", "utility", "user_utility", "tool_mix", "ci95", "by_category",
               "calls_per_task", "malformed_share"}


def _world(tmp_path: Path, library_env) -> tuple[Path, Path]:
    envs = tmp_path / "envs"
    envs.mkdir()
    (envs / "minilib").symlink_to(library_env.db_path.parent, target_is_directory=True)
    tasks = tmp_path / "tasks" / "heldout.jsonl"
    write_jsonl(tasks, library_tasks())
    train = [Task(id="tr-1", env="minilib", question="Who wrote Notes?", answer="Ada Byron",
                  template="author_of_title"),
             Task(id="tr-2", env="otherlib", question="?", answer="x", template="book_of_year")]
    write_jsonl(tasks.parent / "train.jsonl", train)
    return tasks, envs


def _cfg(sim_config: Config, **settings) -> Config:
    stage = {"bootstrap_samples": 200, "aux_max_tasks": 5, **settings}
    return as_profile(sim_config.model_copy(update={"stages": {"eval": stage}}))


def _recomputed(metrics: dict, results: Path) -> dict:
    c = metrics["config"]
    return summarize(read_jsonl(results, EvalRow), c["utility_a"], c["cost_unit_usd"], c["bootstrap_samples"],
                     c["seed"])


def test_stage_writes_outputs_and_every_number_is_recomputable(tmp_path, library_env, sim_config):
    tasks, envs = _world(tmp_path, library_env)
    out, metrics_path = tmp_path / "reports" / "eval", tmp_path / "metrics" / "eval.json"
    cfg = _cfg(sim_config, policies=["grpo", *SCRIPTED], utility_a=0.7)
    eval_stage.run(cfg, tasks, envs, tmp_path / "models", out, metrics_path)
    metrics = json.loads(metrics_path.read_text())
    for name in ("results.jsonl", "report.md", "pareto.png", "config.resolved.yaml"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert set(metrics["policies"]) == {"only:frontier", "only:mini", "random", "cascade", "oracle"}
    assert all(set(s) == POLICY_KEYS and s["n"] == 8 for s in metrics["policies"].values())
    assert metrics["simulated_experts"] is True and metrics["config"]["utility_a"] == 0.7
    assert any("grpo: no checkpoint" in n for n in metrics["notes"])  # skipped, not a crash
    assert set(metrics["generalisation"]) == {"unseen_pricing", "unseen_tool", "heldout_envs"}
    assert "only:frontier" not in metrics["generalisation"]["unseen_tool"]["policies"]  # frontier withheld
    assert all(s["n"] == 5 for s in metrics["generalisation"]["unseen_pricing"]["policies"].values())
    held = metrics["generalisation"]["heldout_envs"]
    assert held["grouping"] == "train_overlap"
    assert held["policies"]["oracle"]["seen_env_seen_template"]["n"] == 3  # the author_of_title tasks
    assert held["policies"]["oracle"]["seen_env_unseen_template"]["n"] == 5
    assert metrics["paired"] == {} and "no trained policy" in metrics["routing"]["note"]  # grpo was skipped

    recomputed = _recomputed(metrics, out / "results.jsonl")
    for key in ("policies", "pareto", "generalisation", "paired", "routing", "verdict"):
        assert recomputed[key] == metrics[key], key

    report = (out / "report.md").read_text()
    assert report.splitlines()[2].startswith("**Verdict:** No trained checkpoint")
    assert "simulated" in report and "units of $0.01" in report and "![Pareto plot](pareto.png)" in report
    frontier = metrics["policies"]["only:frontier"]
    assert f"{frontier['accuracy']:.3f}" in report and "| multi_hop" not in report.split("## Per category")[0]


def test_stage_rejects_bad_settings_and_missing_envs(tmp_path, library_env, sim_config):
    tasks, envs = _world(tmp_path, library_env)
    with pytest.raises(ValueError, match="unknown policy 'gpt'"):
        eval_stage.run(_cfg(sim_config, policies=["gpt"]), tasks, envs, tmp_path / "m", tmp_path / "o",
                       tmp_path / "e.json")
    with pytest.raises(ValueError, match="no expert 'nope'"):
        eval_stage.run(_cfg(sim_config, policies=["only:nope"]), tasks, envs, tmp_path / "m", tmp_path / "o",
                       tmp_path / "e.json")
    with pytest.raises(ValueError, match=r"'openai:127.0.0.1:8000/v1#m': expected openai:<http\(s\) base URL>"):
        eval_stage.run(_cfg(sim_config, policies=["openai:127.0.0.1:8000/v1#m"]), tasks, envs, tmp_path / "m",
                       tmp_path / "o", tmp_path / "e.json")
    with pytest.raises(FileNotFoundError, match="no_envs: no environments folder"):
        eval_stage.run(_cfg(sim_config, policies=["random"]), tasks, tmp_path / "no_envs", tmp_path / "m",
                       tmp_path / "o", tmp_path / "e.json")


@pytest.mark.slow
def test_checkpoints_sweep_and_ad_hoc_cli(tmp_path, library_env, sim_config):
    from typer.testing import CliRunner

    from toolorch.cli import app
    from toolorch.core.config import save_config
    from toolorch.runtime.modeling import TinyModelSpec, build_tiny_model

    tasks, envs = _world(tmp_path, library_env)
    spec = TinyModelSpec(vocab_size=320, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1)
    grpo = build_tiny_model(tmp_path / "models" / "grpo", [t.question for t in library_tasks()] * 5, spec)
    cfg = _cfg(sim_config, policies=["grpo", "only:frontier", "cascade", "prompted", "oracle"],
               prompted_base=str(grpo), max_new_tokens=6, cost_weights=[0.0, 1.0], aux_max_tasks=3,
               generalisation={"policies": ["grpo", "cascade"]})
    cfg = cfg.model_copy(update={"episode": cfg.episode.model_copy(update={"max_turns": 2})})
    out, metrics_path = tmp_path / "out", tmp_path / "eval.json"
    metrics = eval_stage.run(cfg, tasks, envs, tmp_path / "models", out, metrics_path)
    assert {"grpo", "prompted", "cascade", "oracle"} <= set(metrics["policies"])
    sweep = [p for p in metrics["pareto"] if p["cost_weight"] is not None]
    assert [(p["policy"], p["cost_weight"], p["n"]) for p in sweep] == [("grpo", 0.0, 3), ("grpo", 1.0, 3)]
    assert metrics["verdict"]["trained"] == "grpo" and set(metrics["verdict"]["dominates"]) == {"prompted",
                                                                                              "cascade"}
    assert set(metrics["generalisation"]["unseen_pricing"]["policies"]) == {"grpo", "cascade"}
    assert _recomputed(metrics, out / "results.jsonl")["pareto"] == json.loads(metrics_path.read_text())["pareto"]
    swept_prompts = [r for r in read_jsonl(out / "results.jsonl", EvalRow) if r.block == "pareto"]
    assert {r.preference.split(",")[1] for r in swept_prompts} == {"cost=0", "cost=1"}

    config = save_config(cfg, tmp_path)
    result = CliRunner().invoke(app, ["eval", "--config", str(config), "--checkpoint", str(grpo),
                                      "--tasks-path", str(tasks), "--envs-dir", str(envs), "--out-dir",
                                      str(tmp_path / "adhoc"), "--metrics-path", str(tmp_path / "adhoc.json")])
    assert result.exit_code == 0, result.output
    adhoc = json.loads((tmp_path / "adhoc.json").read_text())
    assert set(adhoc["policies"]) == {"grpo"} and "acc=" in result.output
    assert (tmp_path / "adhoc" / "pareto.png").exists()


@pytest.mark.slow
def test_an_orchestrator_served_over_http_scores_exactly_as_in_process(tmp_path, library_env, sim_config,
                                                                        trained_tiny_dir):
    """The same checkpoint, once in process (HFPolicy) and once behind an OpenAI-compatible server
    (OpenAIPolicy, tool calls parsed server side): every row of every block is the same."""
    tasks, envs = _world(tmp_path, library_env)
    local = f"hf:{trained_tiny_dir}"
    out, metrics_path = tmp_path / "out", tmp_path / "eval.json"
    with serve_hf(trained_tiny_dir) as server:
        served = f"openai:{server.url}#orchestrator"
        cfg = _cfg(sim_config, policies=[local, served, "cascade"], sweep_policies=[local, served],
                   cost_weights=[0.0, 1.0], aux_max_tasks=3)
        metrics = eval_stage.run(cfg, tasks, envs, tmp_path / "models", out, metrics_path)
    rows = read_jsonl(out / "results.jsonl", EvalRow)
    by_policy = {name: [r.model_dump(exclude={"policy"}) for r in rows if r.policy == name]
                 for name in ("model", "openai:orchestrator")}
    assert by_policy["model"] == by_policy["openai:orchestrator"]
    assert len(by_policy["model"]) == 8 + 2 * 3 + 2 * 3  # main, pareto (two weights), two shifted blocks
    turns = sum(r["turns"] for r in by_policy["model"])
    assert len(server.requests) == turns > len(by_policy["model"])  # one request per turn, and tools were used
    assert all(r["tools"] and r["temperature"] == 0 for r in server.requests)

    def numbers(stats: dict) -> dict:  # ci95 is bootstrapped with a seed drawn from the policy's name
        return {k: v for k, v in stats.items() if k != "ci95"}

    assert numbers(metrics["policies"]["model"]) == numbers(metrics["policies"]["openai:orchestrator"])
    for block in ("unseen_pricing", "unseen_tool"):
        shifted = metrics["generalisation"][block]["policies"]
        assert numbers(shifted["model"]) == numbers(shifted["openai:orchestrator"])
