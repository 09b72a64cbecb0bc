"""Lockstep rollouts through the real episode runner keep exact, reproducible token records."""
from __future__ import annotations

import json
from collections import Counter

import pytest
from chat_templates import with_tools_template
from transformers import AutoModelForCausalLM

from toolorch.core.records import Trajectory, Turn, Usage
from toolorch.core.seeds import stable_seed
from toolorch.runtime.chat import Sample, render
from toolorch.runtime.env import Environment
from toolorch.runtime.episode import Runtime
from toolorch.runtime.rewards import RewardConfig
from toolorch.runtime.rollout import HFEngine, LockstepSampler, Rollout, run_rollouts
from toolorch.train.loop import LoopConfig, rollout_group_samples, turn_advantages


@pytest.fixture(scope="module")
def engine(tiny_tokenizer):
    folder, tok = tiny_tokenizer
    return HFEngine(AutoModelForCausalLM.from_pretrained(folder).eval(), tok, max_new_tokens=24, temperature=1.0)


def _jobs(world, n):
    env = Environment.load(world.envs_dir / "minilib")
    return [(world.tasks[i % len(world.tasks)], env) for i in range(n)]


def test_token_record_matches_the_chat(world, engine):
    cfg = world.cfg.model_copy(update={"episode": world.cfg.episode.model_copy(update={"max_turns": 3})})
    rollouts, sampled = run_rollouts(_jobs(world, 4), Runtime.from_config(cfg), engine, seed=0, with_code=False)
    assert len(rollouts) == 4 and sampled > 0
    tok = engine.tokenizer
    for r in rollouts:
        msgs = r.trajectory.messages
        assert msgs[0]["role"] == "system" and "User preference" in msgs[1]["content"]
        decoded = tok.decode(r.sample.ids)
        full = render(tok, msgs)
        assert full.startswith(decoded) and len(full) - len(decoded) <= len("<|im_end|>\n")
        # trained tokens are exactly what the policy sampled, turn by turn
        trained = [i for i, t in zip(r.sample.ids, r.sample.trained) if t]
        assert sum(t.policy_usage.tokens_out for t in r.trajectory.turns) == len(trained)
        assert r.trajectory.usage.cost_usd > 0


def test_rollouts_read_the_episode_tools_through_the_template(world, engine):
    tok = with_tools_template(engine.tokenizer)
    tools_engine = HFEngine(engine.model, tok, max_new_tokens=24, temperature=1.0)
    rollouts, _ = run_rollouts(_jobs(world, 2), Runtime.from_config(world.cfg), tools_engine, seed=0, with_code=False)
    for r in rollouts:
        traj = r.trajectory
        decoded = tok.decode(r.sample.ids)
        assert traj.tools and all(json.dumps(t) in decoded for t in traj.tools)
        full = render(tok, traj.messages, traj.tools)
        assert full.startswith(decoded) and len(full) - len(decoded) <= len("<|im_end|>\n")


def test_rollouts_are_reproducible_and_seed_dependent(world, engine):
    runs = [run_rollouts(_jobs(world, 6), Runtime.from_config(world.cfg), engine, seed=s, with_code=False)[0] for s in (3, 3, 4)]
    ids = [[r.sample.ids for r in run] for run in runs]
    assert ids[0] == ids[1]
    assert ids[0] != ids[2]


def test_redraw_gives_each_task_one_fresh_draw_shared_by_its_rollouts(world, engine, monkeypatch):
    keys = []
    real = Runtime.redrawn

    def record(self, key):
        keys.append(key)
        return real(self, key)

    monkeypatch.setattr(Runtime, "redrawn", record)
    runtime = Runtime.from_config(world.cfg)
    run_rollouts(_jobs(world, 4), runtime, engine, seed=5, with_code=False)
    assert keys == []  # eval's rollouts: every policy meets the same draws
    env = Environment.load(world.envs_dir / "minilib")
    tasks = [t for t in world.tasks[:2] for _ in range(3)]  # a group of 3 rollouts per task
    jobs = [(t, env) for t in tasks]
    run_rollouts(jobs, runtime, engine, seed=5, with_code=False, redraw=True)
    run_rollouts(jobs, runtime, engine, seed=5, with_code=False, redraw=True)
    run_rollouts(jobs, runtime, engine, seed=6, with_code=False, redraw=True)
    first, again, other = keys[:6], keys[6:12], keys[12:]
    # episodes start in threads, so keys arrive in any order: each task's 3 rollouts share its key
    assert Counter(first) == {stable_seed(5, t.id): 3 for t in world.tasks[:2]}
    assert sorted(first) == sorted(again) and not set(first) & set(other)  # keyed by step seed
    redrawn = runtime.redrawn(first[0])
    assert all(redrawn.experts[n].seed != e.seed for n, e in runtime.experts.items())


class _Broken:
    tokenizer = None

    def sample(self, prompts, seed):
        raise ValueError("engine down")


def test_engine_failure_wakes_every_episode():
    sampler = LockstepSampler(_Broken(), workers=1, seed=0)
    with pytest.raises(RuntimeError, match="batched sampling failed"):
        sampler.sample(0, [1, 2, 3])


def test_each_turns_span_holds_exactly_the_tokens_it_sampled(world, engine):
    cfg = world.cfg.model_copy(update={"episode": world.cfg.episode.model_copy(update={"max_turns": 3})})
    rollouts, _ = run_rollouts(_jobs(world, 4), Runtime.from_config(cfg), engine, seed=1, with_code=False)
    for r in rollouts:
        assert len(r.spans) == len(r.trajectory.turns)
        assert [b - a for a, b in r.spans] == [t.policy_usage.tokens_out for t in r.trajectory.turns]
        inside = {i for a, b in r.spans for i in range(a, b)}
        assert inside == {i for i, t in enumerate(r.sample.trained) if t}


def _rollout(world, turns: list[tuple[int, bool]]) -> Rollout:
    """A rollout whose turns sampled (tokens, malformed) each, after a 3-token prompt apiece."""
    ids, trained, spans, records = [], [], [], []
    for k, (n, malformed) in enumerate(turns):
        ids += [1, 2, 3]
        trained += [False] * 3
        spans.append((len(ids), len(ids) + n))
        ids += [7] * n
        trained += [True] * n
        records.append(Turn(index=k, text="", policy_usage=Usage(tokens_out=n), malformed=malformed))
    traj = Trajectory(task_id="t", env="minilib", policy="grpo", messages=[], turns=records, stop_reason="answer",
                      usage=Usage())
    return Rollout(world.tasks[0], traj, Sample(ids, trained), spans)


def test_a_malformed_turn_alone_carries_the_malformed_advantage(world):
    r = _rollout(world, [(4, True), (2, False)])
    s = turn_advantages(r, 0.3, -1.0)
    assert s.weight == [0.3] * 3 + [-1.0] * 4 + [0.3] * 3 + [0.3] * 2  # the retry keeps the episode's advantage
    assert (s.ids, s.trained) == (r.sample.ids, r.sample.trained)
    assert turn_advantages(_rollout(world, [(2, False)]), -0.2, -1.0).weight == [-0.2] * 5
    torn = _rollout(world, [(2, True)])
    torn.spans.append((9, 9))
    with pytest.raises(RuntimeError, match="2 sampled turns for 1"):
        turn_advantages(torn, 0.3, -1.0)


def test_a_group_without_signal_still_teaches_its_malformed_turns(world):
    """All right or all wrong at one price: no advantage, but a broken call is still pushed down."""
    loop = LoopConfig(group_size=3, reward=RewardConfig(cost_weight=0.0, latency_weight=0.0))
    group = [_rollout(world, [(2, False)]), _rollout(world, [(3, True), (2, False)]), _rollout(world, [(2, False)])]
    samples, records, kept = rollout_group_samples(group, loop)
    assert not kept and len(records) == 3 and len(samples) == 1
    assert samples[0].weight == [0.0] * 3 + [-1.0] * 3 + [0.0] * 5
    samples, _, kept = rollout_group_samples(group, loop.model_copy(update={"malformed_advantage": -0.5}))
    assert samples[0].weight[3:6] == [-0.5] * 3
