"""synth-envs and synth-tasks run end to end in tmp_path (3 small domains to stay fast)."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml
from kfp_sink import MetricsSink
from typer.testing import CliRunner

from toolorch.core.config import ConfigError
from toolorch.core.jsonl import read_jsonl
from toolorch.core.records import Task
from toolorch.ops.kfp_io import resolve_config, run_stage
from toolorch.runtime.preferences import PROFILES, preference_kind
from toolorch.stages import load_profile, synth_envs, synth_tasks
from toolorch.synth.tau2 import data_dir as tau2_data_dir

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["stages.synth_envs.domains=[library, bank, school]", "stages.synth_envs.rows_per_table=[50, 60]",
         "stages.synth_envs.tau2_domains=[]",
         "stages.synth_tasks.heldout_envs=1", "stages.synth_tasks.heldout_template_fraction=0.25"]


def _cfg(*extra: str):
    return load_profile(ROOT / "configs" / "tiny.yaml", SMALL + list(extra))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    cfg = _cfg()
    env_metrics = synth_envs.run(cfg, root / "envs", root / "metrics/synth_envs.json")
    task_metrics = synth_tasks.run(cfg, root / "envs", root / "tasks", root / "metrics/synth_tasks.json")
    return root, env_metrics, task_metrics


def test_synth_envs_writes_envs_metrics_and_resolved_config(built):
    root, metrics, _ = built
    assert sorted(p.name for p in (root / "envs").iterdir() if p.is_dir()) == ["bank", "library", "school"]
    for env in ("bank", "library", "school"):
        assert {p.name for p in (root / "envs" / env).iterdir()} == {"env.json", "db.sqlite", "docs.jsonl",
                                                                       "synth.json"}
    saved = json.loads((root / "metrics/synth_envs.json").read_text())
    assert saved == metrics and metrics["envs"] == 3 and set(metrics["per_domain"]) == {"bank", "library", "school"}
    assert all(3 <= d["tables"] <= 5 and d["rows"] >= 150 for d in metrics["per_domain"].values())
    resolved = yaml.safe_load((root / "envs/config.resolved.yaml").read_text())
    assert resolved["stages"]["synth_envs"]["domains"] == ["library", "bank", "school"]
    assert not list(root.glob(".*building*"))


def test_synth_tasks_writes_verified_split_tasks(built):
    root, _, metrics = built
    train = read_jsonl(root / "tasks/train.jsonl", Task)
    held = read_jsonl(root / "tasks/heldout.jsonl", Task)
    split = json.loads((root / "tasks/split.json").read_text())
    assert metrics["verified"] == metrics["tasks"] == len(train) + len(held) > 60
    assert {t.split for t in train} == {"train"} and {t.split for t in held} == {"heldout"}
    assert len(split["heldout_envs"]) == 1 and not {t.env for t in train} & set(split["heldout_envs"])
    assert not {t.template for t in train} & {t.template for t in held}
    assert set(metrics["heldout_kind"]) == {"env", "template"}
    assert sum(metrics["per_category"].values()) == metrics["tasks"] and len(metrics["per_category"]) == 5
    for split_name in ("train", "heldout"):
        assert abs(sum(metrics["category_share"][split_name].values()) - 1) < 0.01
    assert metrics["tasks_per_s"] > 0 and metrics["verified_tasks_per_s"] > 0
    assert (root / "tasks/config.resolved.yaml").exists()
    assert json.loads((root / "metrics/synth_tasks.json").read_text()) == metrics


@pytest.mark.slow
def test_reruns_are_byte_identical(built, tmp_path):
    root, _, _ = built
    cfg = _cfg()
    synth_envs.run(cfg, tmp_path / "envs", tmp_path / "m1.json")
    synth_tasks.run(cfg, tmp_path / "envs", tmp_path / "tasks", tmp_path / "m2.json")
    for part in ("envs/library/env.json", "envs/bank/docs.jsonl", "tasks/train.jsonl", "tasks/heldout.jsonl",
                 "tasks/split.json"):
        assert (tmp_path / part).read_bytes() == (root / part).read_bytes(), part


def test_more_heldout_fillings_leave_training_tasks_and_the_split_as_they_were(built, tmp_path):
    """`heldout_tasks_per_template` adds fillings to held-out templates only: training tasks, the
    split and the held-out tasks of one filling stay byte for byte; a template never exceeds its
    count, and the added tasks re-verify like the rest."""
    root, _, more_metrics = built
    assert _cfg().stages.synth_tasks.heldout_tasks_per_template == 3  # the profile's setting, which `built` used
    one = synth_tasks.run(_cfg("stages.synth_tasks.heldout_tasks_per_template=1"), root / "envs",
                          tmp_path / "tasks", tmp_path / "m.json")
    assert (tmp_path / "tasks/train.jsonl").read_bytes() == (root / "tasks/train.jsonl").read_bytes()
    assert (tmp_path / "tasks/split.json").read_bytes() == (root / "tasks/split.json").read_bytes()
    held_one = read_jsonl(tmp_path / "tasks/heldout.jsonl", Task)
    held_more = read_jsonl(root / "tasks/heldout.jsonl", Task)
    assert held_more[:len(held_one)] == held_one and one["heldout_more"] == 0
    assert len(held_more) == len(held_one) + more_metrics["heldout_more"] > len(held_one)
    per_template = Counter(t.template for t in held_more)
    assert max(per_template.values()) == 3 and set(per_template) == {t.template for t in held_one}
    assert len({t.id for t in held_more}) == len(held_more) and more_metrics["verified"] == more_metrics["tasks"]


def test_a_task_that_does_not_reverify_fails_the_stage(built, tmp_path, monkeypatch):
    root, _, _ = built
    real = synth_tasks.synthesize_tasks

    def one_wrong(envs, cfg, per_template, seed, workers, **mix):
        tasks, more, rejected = real(envs[:1], cfg, 1, seed, workers, **mix)
        tasks[0] = tasks[0].model_copy(update={"answer": "certainly not this"})
        return tasks, more, rejected

    monkeypatch.setattr(synth_tasks, "synthesize_tasks", one_wrong)
    cfg = _cfg("stages.synth_tasks.heldout_envs=0")
    with pytest.raises(synth_tasks.VerificationError, match="1/.* tasks do not re-verify"):
        synth_tasks.run(cfg, root / "envs", tmp_path / "tasks", tmp_path / "m.json")
    assert not (tmp_path / "tasks").exists() and not (tmp_path / "m.json").exists()


def test_a_failing_run_leaves_the_previous_output(tmp_path, monkeypatch):
    cfg = load_profile(ROOT / "configs" / "tiny.yaml",
                      ["stages.synth_envs.domains=[library, bank]", "stages.synth_envs.rows_per_table=[50, 55]",
                       "stages.synth_envs.tau2_domains=[]"])
    synth_envs.run(cfg, tmp_path / "envs", tmp_path / "m.json")
    before = (tmp_path / "envs/bank/env.json").read_bytes()

    def broken(settings):
        class Broken:
            def generate(self, domain, seed, out_dir):
                raise ValueError(f"generator broke on {domain}")
        return Broken()

    monkeypatch.setattr(synth_envs, "make_generator", broken)
    with pytest.raises(ValueError, match="generator broke"):
        synth_envs.run(cfg, tmp_path / "envs", tmp_path / "m.json")
    assert (tmp_path / "envs/bank/env.json").read_bytes() == before


@pytest.mark.parametrize("value,mix", [
    ("cost_averse=3, latency_averse=1", {"cost_averse": 3.0, "latency_averse": 1.0}),
    ("balanced", {"balanced": 1.0}),
    ({"accuracy_first": 2}, {"accuracy_first": 2.0}),
    ("", {}),
])
def test_preference_mix_setting_reads_pairs_names_and_mappings(value, mix):
    assert synth_tasks.SynthTasksSettings(preference_mix=value).preference_mix == mix


@pytest.mark.parametrize("value,match", [("thrifty=1", "unknown preference profile 'thrifty'"),
                                         ("cost_averse=-1", "cost_averse: weight -1.0 is negative"),
                                         ("cost_averse=0", "weights sum to 0"),
                                         ("cost_averse=lots", "cost_averse=lots: weight 'lots' is not a number")])
def test_bad_preference_mix_names_the_problem(value, match):
    with pytest.raises(ValueError, match=match):
        synth_tasks.SynthTasksSettings(preference_mix=value)


def test_preference_mix_pipeline_parameter_reaches_the_tasks(built, tmp_path):
    """The pipeline's `preference_mix` parameter, through the resolve-config and synth-tasks steps."""
    root, _, _ = built
    config = resolve_config(str(ROOT / "configs" / "tiny.yaml"), 0, SMALL, tmp_path / "config.yaml",
                            preference_mix="cost_averse=3,latency_averse=1")
    metrics = run_stage("synth_tasks", config, MetricsSink(tmp_path / "m.json"), {"synth_envs": root / "envs"},
                        tmp_path / "tasks")
    kinds = Counter()
    for kind, n in metrics["per_preference"].items():
        kinds[kind.split("+")[0]] += n
    assert set(kinds) == {"cost_averse", "latency_averse"} and kinds["cost_averse"] > 2 * kinds["latency_averse"]
    tasks = read_jsonl(tmp_path / "tasks/train.jsonl", Task) + read_jsonl(tmp_path / "tasks/heldout.jsonl", Task)
    assert len(tasks) == metrics["tasks"] and all(t.preference.cost > 0 and t.preference.latency > 0 for t in tasks)


def test_bad_settings_are_rejected_with_the_field_named(tmp_path):
    with pytest.raises(ConfigError, match=r"--set stages.synth_envs.domains: .*unknown domain\(s\) \[.casino.\]"):
        _cfg("stages.synth_envs.domains=[casino]")
    with pytest.raises(ConfigError, match="rows_per_table"):
        _cfg("stages.synth_envs.rows_per_table=[9, 3]")
    with pytest.raises(ConfigError, match="--set stages.synth_tasks.heldout_template_fraction: Input should be less"):
        _cfg("stages.synth_tasks.heldout_template_fraction=1.5")
    with pytest.raises(ConfigError, match=r"heldout_tasks_per_template \(1\) is below tasks_per_template \(2\)"):
        _cfg("stages.synth_tasks.tasks_per_template=2", "stages.synth_tasks.heldout_tasks_per_template=1")
    with pytest.raises(FileNotFoundError, match="run synth-envs first"):
        synth_tasks.run(_cfg(), tmp_path / "missing", tmp_path / "t", tmp_path / "m.json")


@pytest.mark.slow  # imports every stage module
def test_stage_commands_are_registered_on_toolorch():
    from toolorch.cli import app

    runner = CliRunner()
    for name in ("synth-envs", "synth-tasks"):
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, result.output
        assert "--config" in result.output and "--set" in result.output


@pytest.mark.slow
def test_tau2_world_joins_as_heldout_env_verified_by_final_state(tmp_path):
    from toolorch.runtime.env import Environment
    from toolorch.runtime.episode import run_episode
    from toolorch.runtime.policies import AskToolPolicy, PlanPolicy
    from toolorch.runtime.tools import Toolbox

    cfg = load_profile(None, ["stages.synth_envs.domains=[library,bank,clinic]",
                             "stages.synth_envs.tau2_domains=[airline]", "stages.synth_tasks.heldout_envs=1"])
    synth_envs.run(cfg, tmp_path / "envs", tmp_path / "m1.json")
    metrics = synth_tasks.run(cfg, tmp_path / "envs", tmp_path / "tasks", tmp_path / "m2.json")
    assert "tau2_airline" in metrics["heldout_envs"]
    train = read_jsonl(tmp_path / "tasks/train.jsonl", Task)
    tau2 = [t for t in read_jsonl(tmp_path / "tasks/heldout.jsonl", Task) if t.env == "tau2_airline"]
    assert len(tau2) == 50 and all(t.final_state for t in tau2)
    assert not any(t.env == "tau2_airline" for t in train)
    # imported tasks serve users drawn like everyone else's, not 50 accuracy-first ones
    kinds = Counter(preference_kind(t.preference).split("+")[0] for t in tau2)
    assert set(kinds) == set(PROFILES) and max(kinds.values()) < 25
    env = Environment.load(tmp_path / "envs/tau2_airline")
    writer = next(t for t in tau2 if t.answer.startswith("state:") and len(t.gold_calls) > 2)
    with env.session() as s:  # following the gold actions reaches the expected world
        assert run_episode(writer, PlanPolicy(writer.gold_calls), Toolbox(cfg.catalog(), s), cfg.episode.limits()).correct
    with env.session() as s:  # answering without acting leaves the world unchanged: wrong
        assert not run_episode(writer, AskToolPolicy("search"), Toolbox(cfg.catalog(), s), cfg.episode.limits()).correct


@pytest.mark.slow
def test_tau2_retail_and_telecom_keep_tau2s_own_split(tmp_path):
    cfg = load_profile(None, ["stages.synth_envs.domains=[library,bank]", "stages.synth_tasks.imported_holdout=test",
                             "stages.synth_envs.tau2_domains=[retail,telecom]", "stages.synth_tasks.heldout_envs=1"])
    envs_metrics = synth_envs.run(cfg, tmp_path / "envs", tmp_path / "m1.json")
    assert envs_metrics["per_domain"]["tau2_retail"]["imported_tasks"] == 114
    assert envs_metrics["per_domain"]["tau2_retail"]["unconverted_tasks"] == 0
    assert envs_metrics["per_domain"]["tau2_telecom"]["imported_tasks"] == 5
    assert envs_metrics["per_domain"]["tau2_telecom"]["unconverted_tasks"] == 109
    metrics = synth_tasks.run(cfg, tmp_path / "envs", tmp_path / "tasks", tmp_path / "m2.json")
    # tau2's own split: its test tasks held out, its train tasks train
    assert not {"tau2_retail", "tau2_telecom"} & set(metrics["heldout_envs"])
    heldout = read_jsonl(tmp_path / "tasks/heldout.jsonl", Task)
    train = read_jsonl(tmp_path / "tasks/train.jsonl", Task)
    test_ids = {f"tau2-retail-{i}" for i in json.loads((tau2_data_dir("retail") / "split_tasks.json").read_text())["test"]}
    assert {t.id for t in heldout if t.env == "tau2_retail"} == test_ids and len(test_ids) == 40
    assert sum(t.env == "tau2_retail" for t in train) == 74
    # telecom's two train tasks ask a test task's very question (only the device state differs): held out too
    assert sum(t.env == "tau2_telecom" for t in heldout) == 5
    # no held-out tau2 task shares its template (scenario) with a training task
    assert not {t.template for t in heldout if t.env.startswith("tau2_")} & {t.template for t in train}
    assert metrics["heldout_kind"]["template"] >= 40
