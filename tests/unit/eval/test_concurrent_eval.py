"""Held-out check and eval runs with many workers give byte-identical results to the serial run
(sampled HF rollouts, simulated experts, scripted baselines and a greedy HF policy)."""
from __future__ import annotations

import json

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from toolorch.core.config import Config
from toolorch.eval.baselines import cascade_maker, random_maker, shared_maker
from toolorch.eval.heldout import HeldoutConfig, heldout_report
from toolorch.eval.runner import Block, run_policy
from toolorch.runtime.episode import Runtime
from toolorch.runtime.modeling import TinyModelSpec, build_tiny_model
from toolorch.runtime.policies import HFPolicy
from toolorch.runtime.rewards import RewardConfig

SPEC = TinyModelSpec(vocab_size=400, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                     num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048)


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    """Two random-init tiny chat models (different seeds): they babble, and sample differently."""
    texts = ["Who wrote Engines?", "Which book came out in 1843?", "How many copies are there?"] * 20
    root = tmp_path_factory.mktemp("tiny_models")
    return [build_tiny_model(root / f"m{seed}", texts, SPEC, seed=seed) for seed in (0, 1)]


def _short(cfg: Config) -> Config:
    return cfg.model_copy(update={"episode": cfg.episode.model_copy(update={"max_turns": 3})})


def test_heldout_report_is_the_same_with_any_number_of_workers(tiny_dirs, library_env, heldout_tasks, sim_config):
    tokenizer = AutoTokenizer.from_pretrained(tiny_dirs[0])
    models = {name: AutoModelForCausalLM.from_pretrained(d).eval() for name, d in zip(("sft", "grpo"), tiny_dirs)}
    runtime = Runtime.from_config(_short(sim_config))
    reports = []
    for workers in (1, 3):
        hc = HeldoutConfig(seeds=(0, 1), temperature=1.0, max_new_tokens=8, reward=RewardConfig(),
                           with_code=False, workers=workers, preference_seeds=(1,))
        reports.append(json.dumps(heldout_report(models, tokenizer, heldout_tasks[:4], {"minilib": library_env},
                                                 runtime, hc), sort_keys=True))
    assert reports[0] == reports[1]
    report = json.loads(reports[0])
    assert report["tasks"] == 4 and len(report["grpo"]["reward_per_seed"]) == 2
    assert report["preference"]["seeds"] == [1] and report["preference"]["cost_averse_cost_usd"] > 0
    # episodes really ran: every policy's orchestrator tokens cost something
    assert report["sft"]["cost_usd"] > 0 and report["grpo"]["cost_usd"] > 0
    # every task ran at every seed: the paired margin's mean is the difference of the policies' means
    paired = report["reward_margin_paired"]
    assert paired["n"] == 4 and paired["mean"] == pytest.approx(report["reward_margin"])
    assert paired["ci95"][0] <= paired["mean"] <= paired["ci95"][1]
    assert paired["by_world"]["synthesized"]["n"] == 4 and "tau2" not in paired["by_world"]


def test_the_check_samples_one_world_per_batch_and_keeps_task_order(tiny_dirs, library_env, heldout_tasks, sim_config,
                                                                   monkeypatch):
    """A run's tasks, interleaved from two worlds, are rolled out one world per batch (a batch pads
    every prompt to its longest) and come back in the run's task order."""
    from toolorch.eval import heldout

    tokenizer = AutoTokenizer.from_pretrained(tiny_dirs[0])
    model = AutoModelForCausalLM.from_pretrained(tiny_dirs[0]).eval()
    other = [t.model_copy(update={"env": "otherlib", "id": f"other.{t.id}"}) for t in heldout_tasks[:3]]
    tasks = [t for pair in zip(heldout_tasks[:3], other) for t in pair]
    calls: list[list[str]] = []
    real = heldout.run_rollouts

    def recording(jobs, *args, **kwargs):
        calls.append([task.env for task, _ in jobs])
        return real(jobs, *args, **kwargs)

    monkeypatch.setattr(heldout, "run_rollouts", recording)
    hc = HeldoutConfig(seeds=(0,), temperature=1.0, max_new_tokens=8, reward=RewardConfig(), with_code=False,
                       preference_seeds=(0,))
    rollouts = heldout.run_policy(model, tokenizer, tasks, {"minilib": library_env, "otherlib": library_env},
                                  Runtime.from_config(_short(sim_config)), hc, seed=0)
    assert sorted(calls) == [["minilib"] * 3, ["otherlib"] * 3]
    assert [r.task.id for r in rollouts] == [t.id for t in tasks]


def test_preference_runs_take_their_own_tasks(tiny_dirs, library_env, heldout_tasks, sim_config):
    tokenizer = AutoTokenizer.from_pretrained(tiny_dirs[0])
    models = {name: AutoModelForCausalLM.from_pretrained(d).eval() for name, d in zip(("sft", "grpo"), tiny_dirs)}
    hc = HeldoutConfig(seeds=(0,), temperature=1.0, max_new_tokens=8, reward=RewardConfig(), with_code=False,
                       preference_seeds=(0,))
    report = heldout_report(models, tokenizer, heldout_tasks[:4], {"minilib": library_env},
                            Runtime.from_config(_short(sim_config)), hc, preference_tasks=heldout_tasks[:2])
    assert report["tasks"] == 4 and report["preference"]["tasks"] == 2
    assert report["margin_exceeds_seed_spread"] is None  # one sampling seed: no spread to compare against


def test_eval_rows_are_the_same_with_any_number_of_workers(tiny_dirs, library_env, heldout_tasks, sim_config):
    block = Block.build("main", _short(sim_config))
    envs = {"minilib": library_env}
    hf = HFPolicy(tiny_dirs[0], max_new_tokens=12, seed=0, name="tiny")
    makers = {"random": random_maker(0, 3), "cascade": cascade_maker(block.runtime.catalog), "tiny": shared_maker(hf)}
    for name, make in makers.items():
        serial = [r.model_dump_json() for r in run_policy(heldout_tasks, envs, block, name, make)]
        concurrent = [r.model_dump_json() for r in run_policy(heldout_tasks, envs, block, name, make, workers=4)]
        assert serial == concurrent, name
        assert [json.loads(r)["task_id"] for r in serial] == [t.id for t in heldout_tasks]


def test_two_policies_that_ask_one_expert_differently_meet_one_outcome(library_env, heldout_tasks):
    """`answer(model="coin")` and the only:coin baseline (which calls `ask_coin`) send the expert
    different prompts; in the eval they still meet one draw per task, so their paired margin is
    zero on every task. Drawn per prompt, as training draws, the two disagree on some tasks."""
    from toolorch.core.catalog import ExpertConfig, SimulatedProfile
    from toolorch.core.records import ToolCall
    from toolorch.eval.baselines import _emit, only_expert_maker
    from toolorch.runtime.parsing import render_call

    class AnswerWithCoin:
        name = "answer-coin"

        def generate(self, messages, tools=None):
            return _emit(render_call(ToolCall(name="answer", arguments={"model": "coin"})), messages)

    cfg = Config(experts=[ExpertConfig(name="coin", price="mini", simulated=SimulatedProfile(default_accuracy=0.5))])
    envs = {"minilib": library_env}
    tasks = [t.model_copy(update={"id": f"{t.id}-{i}"}) for i in range(8) for t in heldout_tasks]

    def outcomes(block):
        rows = {name: run_policy(tasks, envs, block, name, make) for name, make in
                (("answer", lambda task, toolbox: AnswerWithCoin()), ("only", only_expert_maker("coin", False)))}
        return [[r.correct for r in rows[name]] for name in ("answer", "only")]

    paired = Block.build("main", cfg)
    answered, asked = outcomes(paired)
    assert answered == asked and 0 < sum(answered) < len(tasks)  # one draw, and a draw it is
    per_prompt = Block("main", Runtime.of(cfg.catalog(), cfg.episode.eval_limits(), cfg.seed))
    answered, asked = outcomes(per_prompt)
    assert answered != asked
