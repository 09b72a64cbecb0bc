"""sft and grpo stages end to end on CPU with a tiny model: outputs, metrics, determinism, resume."""
from __future__ import annotations

import json

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM
from unit.train.world import build_world

from toolorch.core.config import Config, save_config
from toolorch.core.jsonl import write_jsonl
from toolorch.stages import as_profile, grpo, sft

pytestmark = pytest.mark.slow

TINY = {"vocab_size": 512, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 2, "num_key_value_heads": 1}


@pytest.fixture(scope="module")
def world(tmp_path_factory, library_env):
    return build_world(tmp_path_factory.mktemp("stage_world"), library_env)


def _cfg(world, **grpo_settings) -> Config:
    stages = {"sft": {"tiny": TINY, "epochs": 3, "lr": 3e-3, "max_len": 2048, "rows_per_step": 2},
              "grpo": {"steps": 2, "tasks_per_step": 2, "group_size": 4, "max_new_tokens": 16, "lr": 1e-3,
                       "with_code": False, "heldout": {"enabled": False}, **grpo_settings}}
    return as_profile(world.cfg.model_copy(update={"stages": stages, "episode": world.cfg.episode.model_copy(
        update={"max_turns": 3})}))


@pytest.fixture(scope="module")
def sft_dir(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("sft")
    sft.run(_cfg(world), world.trajectories_path, out / "model", out / "metrics.json")
    return out


def test_sft_writes_checkpoint_and_learns(sft_dir):
    metrics = json.loads((sft_dir / "metrics.json").read_text())
    assert metrics["trajectories"] == 14 and metrics["steps"] >= 3
    assert metrics["loss_last"] < metrics["loss_first"]
    assert (sft_dir / "model" / "config.resolved.yaml").exists()
    assert "<|im_start|>" in (sft_dir / "model" / "tokenizer_config.json").read_text() or \
        (sft_dir / "model" / "chat_template.jinja").exists()
    AutoModelForCausalLM.from_pretrained(sft_dir / "model")


def test_sft_is_deterministic(world, sft_dir, tmp_path):
    sft.run(_cfg(world), world.trajectories_path, tmp_path / "again", tmp_path / "m.json")
    a = AutoModelForCausalLM.from_pretrained(sft_dir / "model").state_dict()
    b = AutoModelForCausalLM.from_pretrained(tmp_path / "again").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_sft_rejects_missing_base(world, tmp_path):
    with pytest.raises(FileNotFoundError, match="not an HF model folder"):
        cfg = _cfg(world)
        cfg.stages.sft = cfg.stages.sft.model_copy(update={"base": str(tmp_path)})
        sft.run(cfg, world.trajectories_path, tmp_path / "o", tmp_path / "m.json")


def test_grpo_trains_logs_and_checks_heldout(world, sft_dir, tmp_path):
    heldout = tmp_path / "heldout.jsonl"
    write_jsonl(heldout, [t.model_copy(update={"split": "heldout"}) for t in world.tasks[:3]])
    cfg = _cfg(world, heldout={"enabled": True, "max_tasks": 3, "seeds": [0, 1, 2]})
    out = tmp_path / "grpo"
    metrics = grpo.run(cfg, sft_dir / "model", world.tasks_path, world.envs_dir, out, tmp_path / "g.json", heldout)
    assert metrics["completed"] and metrics["steps_done"] == 2 and len(metrics["history"]) == 2
    last = metrics["last"]
    for key in ("reward/outcome", "reward/cost", "reward/total", "accuracy", "cost_usd", "latency_s",
                "groups_kept", "groups_filtered", "rollout_tokens_per_s"):
        assert key in last
    assert last["groups_kept"] + last["groups_filtered"] == 2
    assert last["reward/cost"] <= 0 and last["reward/deny"] <= 0
    ho = metrics["heldout"]
    assert len(ho["sft"]["reward_per_seed"]) == 3 and "reward_margin" in ho
    assert isinstance(ho["margin_exceeds_seed_spread"], bool)
    assert {"cost_averse_cost_usd", "accuracy_first_cost_usd"} <= set(ho["preference"])
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert json.loads((tmp_path / "g.json").read_text())["steps_done"] == 2
    AutoModelForCausalLM.from_pretrained(out)


TIMING = ("rollout_seconds", "train_seconds", "rollout_tokens_per_s", "train_tokens_per_s")


def _steady(history: list[dict]) -> list[dict]:
    """A run's history without wall-clock numbers."""
    return [{k: v for k, v in h.items() if k not in TIMING} for h in history]


def _weights(folder):
    return AutoModelForCausalLM.from_pretrained(folder).state_dict()


def test_grpo_resume_continues_the_same_run(world, sft_dir, tmp_path):
    """Killed after step 1 and run again, GRPO gives the uninterrupted run's steps 2-3 and weights:
    the same tasks (data position), samples (RNG), optimizer and schedule."""
    cfg = _cfg(world, steps=3, checkpoint_every=1, min_group_std=0.0)
    whole = grpo.run(cfg, sft_dir / "model", world.tasks_path, world.envs_dir, tmp_path / "a", tmp_path / "a.json",
                     tmp_path / "no_heldout.jsonl")
    stopped = _cfg(world, steps=3, checkpoint_every=1, stop_after=1)
    first = grpo.run(stopped, sft_dir / "model", world.tasks_path, world.envs_dir, tmp_path / "b", tmp_path / "b.json",
                     tmp_path / "no_heldout.jsonl")
    assert not first["completed"] and first["steps_done"] == 1
    rest = grpo.run(cfg, sft_dir / "model", world.tasks_path, world.envs_dir, tmp_path / "b", tmp_path / "b.json",
                     tmp_path / "no_heldout.jsonl")
    # the resumed run's history holds the steps before the restart too (history.jsonl beside the model)
    assert rest["completed"] and rest["resumed_from"] == 1 and [h["step"] for h in rest["history"]] == [1, 2, 3]
    assert rest["history"][0] == first["history"][0]
    # step 2 trains (a group with reward spread): a resume that lost its place would sample other
    # tasks there, and train other weights
    assert whole["history"][1]["groups_kept"] >= 1 and whole["history"][1]["tokens"] > 0
    resumed, uninterrupted = _steady(rest["history"]), _steady(whole["history"])
    assert [h.keys() for h in resumed] == [h.keys() for h in uninterrupted]
    for got, want in zip(resumed, uninterrupted):
        assert got == pytest.approx(want, rel=1e-5, abs=1e-7), f"step {want['step']}"
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-7) for k in a)
    assert not all(torch.equal(a[k], v) for k, v in _weights(sft_dir / "model").items())  # it did train
    # run again once finished (a changed held-out check re-runs it): nothing trains, nothing is lost
    again = grpo.run(cfg, sft_dir / "model", world.tasks_path, world.envs_dir, tmp_path / "b", tmp_path / "b.json",
                     tmp_path / "no_heldout.jsonl")
    assert again["history"] == rest["history"] and again["last"] == rest["last"]


def _grpo_cli(world, sft_dir, config, out, *extra):
    from typer.testing import CliRunner

    from toolorch.cli import app

    return CliRunner().invoke(app, ["grpo", "--config", str(config), "--sft-dir", str(sft_dir / "model"),
                                    "--tasks-path", str(world.tasks_path), "--envs-dir", str(world.envs_dir),
                                    "--out-dir", str(out), "--metrics-path", str(out.parent / f"{out.name}.json"),
                                    "--heldout-path", str(out.parent / "no_heldout.jsonl"),
                                    *extra])


def test_grpo_rerun_with_another_training_config_refuses_unless_fresh(world, sft_dir, tmp_path):
    config = save_config(_cfg(world, steps=1), tmp_path, "grpo.yaml")
    out = tmp_path / "grpo"
    assert _grpo_cli(world, sft_dir, config, out).exit_code == 0
    kept = {name: (out / name).read_bytes() for name in ("model.safetensors", "config.resolved.yaml")}

    changed = _grpo_cli(world, sft_dir, config, out, "--set", "stages.grpo.lr=0.005", "--set", "seed=1")
    assert changed.exit_code == 2, changed.output
    assert "stages.grpo.lr (0.001 -> 0.005)" in changed.output and "seed (0 -> 1)" in changed.output
    assert "--fresh" in changed.output and "Traceback" not in changed.output
    assert {name: (out / name).read_bytes() for name in kept} == kept  # nothing trained, nothing claimed

    # how the run goes (threads, checkpoints, held-out check) is not what it trains: it resumes
    same = _grpo_cli(world, sft_dir, config, out, "--set", "stages.grpo.threads=1",
                     "--set", "stages.grpo.checkpoint_every=1")
    assert same.exit_code == 0, same.output
    assert (out / "model.safetensors").read_bytes() == kept["model.safetensors"]

    fresh = _grpo_cli(world, sft_dir, config, out, "--set", "stages.grpo.lr=0.005", "--fresh")
    assert fresh.exit_code == 0, fresh.output
    assert yaml.safe_load((out / "config.resolved.yaml").read_text())["stages"]["grpo"]["lr"] == 0.005
    grpo.run(_cfg(world, steps=1, lr=0.005), sft_dir / "model", world.tasks_path, world.envs_dir,
             tmp_path / "new", tmp_path / "new.json", tmp_path / "no_heldout.jsonl")
    started_over, new = _weights(out), _weights(tmp_path / "new")
    assert all(torch.equal(started_over[k], new[k]) for k in new)
