"""The GRPO step: sign of the policy gradient, masking, KL, resume, and 1- vs 2-process FSDP2."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from toolorch.runtime.chat import tokenize_chat
from toolorch.train.checkpoint import has_state, load_state, save_state
from toolorch.train.distributed import Dist, default_device, init_distributed
from toolorch.train.grpo import IGNORE, StepConfig, grpo_step, micro_batches, with_advantage
from toolorch.train.packing import Sample, collate, token_logprobs

ONE = Dist()


def _samples(world, tok, advantages):
    return [with_advantage(Sample(*tokenize_chat(tok, t.messages)), a)
            for t, a in zip(world.trajectories, advantages)]


def _fresh(folder, lr=1e-2):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    return model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)


def _trained_logp(model, sample, pad):
    with torch.no_grad():
        logp, _, trained = token_logprobs(model, collate([[sample]], pad))
    return float(logp.sum() / trained.sum())


@pytest.mark.parametrize("advantage,direction", [(1.0, 1), (-1.0, -1)])
def test_advantage_sign_moves_likelihood(world, tiny_tokenizer, advantage, direction):
    folder, tok = tiny_tokenizer
    model, opt, sched = _fresh(folder)
    (sample,) = _samples(world, tok, [advantage])
    before = _trained_logp(model, sample, tok.pad_token_id)
    stats = grpo_step(model, None, opt, sched, [sample], StepConfig(), tok.pad_token_id, ONE)
    after = _trained_logp(model, sample, tok.pad_token_id)
    assert (after - before) * direction > 0
    assert stats["loss"] == pytest.approx(-advantage, rel=1e-5)  # ratio 1 at the first epoch
    assert stats["clip_fraction"] == 0.0 and stats["tokens"] == sum(sample.trained[1:])


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_the_update_scores_tokens_at_the_sampling_temperature(world, tiny_tokenizer, temperature):
    """The gradient is that of -advantage x mean log softmax(logits / T) over the trained tokens:
    the distribution the rollout was drawn from, not the raw one."""
    folder, tok = tiny_tokenizer
    model, opt, sched = _fresh(folder, lr=0.0)
    (sample,) = _samples(world, tok, [1.0])
    batch = collate([[sample]], tok.pad_token_id)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   position_ids=batch["position_ids"]).logits[:, :-1].float()
    labels = batch["labels"][:, 1:]
    trained = labels != IGNORE
    logp = torch.log_softmax(logits / temperature, -1)[trained].gather(-1, labels[trained][:, None])
    (-logp.mean()).backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    grpo_step(model, None, opt, sched, [sample], StepConfig(temperature=temperature, max_grad_norm=1e9),
              tok.pad_token_id, ONE)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, expected[n], rtol=1e-4, atol=1e-7)
    if temperature != 1.0:  # and the raw distribution's gradient is another one
        assert any(not torch.allclose(p.grad, g, rtol=1e-2, atol=1e-6) for p, g in
                   zip(model.parameters(), _raw_grads(folder, sample, tok.pad_token_id)))


def _raw_grads(folder, sample, pad):
    model, opt, sched = _fresh(folder, lr=0.0)
    grpo_step(model, None, opt, sched, [sample], StepConfig(max_grad_norm=1e9), pad, ONE)
    return [p.grad for p in model.parameters()]


def test_untrained_tokens_carry_no_loss(world, tiny_tokenizer):
    folder, tok = tiny_tokenizer
    model, opt, sched = _fresh(folder)
    (sample,) = _samples(world, tok, [1.0])
    prompt_only = Sample(sample.ids, [False] * len(sample), sample.weight)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stats = grpo_step(model, None, opt, sched, [prompt_only], StepConfig(), tok.pad_token_id, ONE)
    assert stats["tokens"] == 0 and stats["loss"] == 0.0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_kl_to_reference(world, tiny_tokenizer):
    folder, tok = tiny_tokenizer
    model, opt, sched = _fresh(folder)
    ref = AutoModelForCausalLM.from_pretrained(folder).eval()
    samples = _samples(world, tok, [1.0, -1.0])
    cfg = StepConfig(kl_coef=0.1)
    first = grpo_step(model, ref, opt, sched, samples, cfg, tok.pad_token_id, ONE)
    second = grpo_step(model, ref, opt, sched, samples, cfg, tok.pad_token_id, ONE)
    assert first["kl"] == pytest.approx(0.0, abs=1e-6)  # the policy starts as the reference
    assert second["kl"] > 0.0


def test_checkpoint_resume_gives_the_same_losses(world, tiny_tokenizer, tmp_path):
    folder, tok = tiny_tokenizer
    batches = [_samples(world, tok, a) for a in ([1.0, -1.0], [-0.5, 0.5], [2.0, -2.0])]
    model, opt, sched = _fresh(folder)
    whole = [grpo_step(model, None, opt, sched, b, StepConfig(), tok.pad_token_id, ONE)["loss"] for b in batches]
    model, opt, sched = _fresh(folder)
    grpo_step(model, None, opt, sched, batches[0], StepConfig(), tok.pad_token_id, ONE)
    save_state(tmp_path / "state", model, opt, sched, step=1, data_position=2)
    model, opt, sched = _fresh(folder)  # a new process: fresh weights and optimizer
    assert load_state(tmp_path / "state", model, opt, sched) == (1, 2)
    resumed = [grpo_step(model, None, opt, sched, b, StepConfig(), tok.pad_token_id, ONE)["loss"] for b in batches[1:]]
    assert resumed == pytest.approx(whole[1:], rel=1e-6)
    assert whole[1] != pytest.approx(whole[2])


def test_shared_prompt_rows_and_separate_rows_take_the_same_step(world, tiny_tokenizer):
    folder, tok = tiny_tokenizer
    samples = _samples(world, tok, [1.0, -0.5, 2.0, 0.3])
    positions = [sum(len(s) for micro in micro_batches(samples, StepConfig(share_prompts=share, rows_per_micro=8))
                     for row in micro for s in row) for share in (True, False)]
    assert positions[0] < positions[1]  # the chats' common system prompt is written once
    results = {}
    for share in (True, False):
        model, opt, sched = _fresh(folder)
        micros = StepConfig(share_prompts=share, rows_per_micro=8)
        stats = grpo_step(model, None, opt, sched, samples, micros, tok.pad_token_id, ONE)
        results[share] = (stats, [p.grad.clone() for p in model.parameters()])
    (shared, w_shared), (separate, w_separate) = results[True], results[False]
    assert shared["tokens"] == separate["tokens"] and shared["loss"] == pytest.approx(separate["loss"], rel=1e-5)
    assert shared["grad_norm"] == pytest.approx(separate["grad_norm"], rel=1e-4)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(w_shared, w_separate))  # the gradients


def _torchrun(nproc: int, folder: Path, samples: Path, out: Path, split: str = "") -> dict:
    script = Path(__file__).with_name("fsdp_step.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOOLORCH_DEVICE": "cpu",
           "PYTHONPATH": str(Path(__file__).parents[3] / "src")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--master-port",
           str(29500 + nproc + os.getpid() % 1000), str(script), str(folder), str(samples), str(out), split]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(out)


@pytest.fixture(scope="module")
def fsdp_case(world, tiny_tokenizer, tmp_path_factory):
    """Four samples of unequal length and two GRPO steps on one process: the reference."""
    folder, tok = tiny_tokenizer
    samples = _samples(world, tok, [1.0, -1.0, 0.5, -0.5])
    root = tmp_path_factory.mktemp("fsdp")
    path = root / "samples.json"
    path.write_text(json.dumps([{"ids": s.ids, "trained": s.trained, "weight": s.weight} for s in samples]))
    return folder, path, _torchrun(1, folder, path, root / "one.pt")


@pytest.mark.slow
@pytest.mark.parametrize("split", ["3,1", "4,0"])
def test_two_process_fsdp2_steps_match_one_process_with_unequal_work(fsdp_case, tmp_path, split):
    """One rank has fewer micro-batches (or none): it runs padding batches so that every FSDP
    collective is joined (else a real multi-GPU run hangs), and the steps are the one-process steps."""
    folder, path, one = fsdp_case
    two = _torchrun(2, folder, path, tmp_path / "two.pt", split)
    assert len(one["stats"]) == len(two["stats"]) == 2
    for step, (a, b) in enumerate(zip(one["stats"], two["stats"]), start=1):
        assert b["tokens"] == a["tokens"] > 0, step
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-6), step
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4), step
    assert one["stats"][0]["grad_norm"] != pytest.approx(one["stats"][1]["grad_norm"], rel=1e-3)  # it moved
    for k, w in one["weights"].items():
        # Adam's first steps move each weight by about lr * sign(grad): where a gradient is ~0,
        # summation order (1 vs 2 ranks) may flip a tiny fraction of an lr-sized step
        torch.testing.assert_close(two["weights"][k], w, rtol=1e-4, atol=1e-4)


def _batches(world, sim_config, preferences: str, steps: int, tasks_per_step: int = 4):
    from toolorch.train.loop import LoopConfig, step_batch

    loop = LoopConfig(tasks_per_step=tasks_per_step, preferences=preferences)
    position, out = 0, []
    for _ in range(steps):
        batch, used = step_batch(world.tasks, position, loop, sim_config.catalog())
        out.append(batch)
        position += used
    return out


def test_resampled_preferences_vary_by_visit_and_replay_on_resume(world, sim_config):
    fixed = [t for b in _batches(world, sim_config, "task", 10) for t in b]
    drawn = [t for b in _batches(world, sim_config, "resample", 10) for t in b]
    assert [t.id for t in drawn] == [t.id for t in fixed]  # the same task stream
    assert [t.preference for t in fixed] == [next(w for w in world.tasks if w.id == t.id).preference for t in fixed]
    assert len({d.preference.model_dump_json() for d in drawn}) >= 4  # several kinds of user
    same_task = [d.preference for d, f in zip(drawn, fixed) if f.id == fixed[0].id]
    assert len({p.model_dump_json() for p in same_task}) > 1  # one question, different users
    assert drawn == [t for b in _batches(world, sim_config, "resample", 10) for t in b]  # a resumed run: the same


def test_contrast_batches_pair_each_task_under_the_two_profiles(world, sim_config):
    from toolorch.runtime.preferences import PROFILES, preference_kind

    batches = _batches(world, sim_config, "contrast", 12)
    stream = [t.id for b in _batches(world, sim_config, "task", 6) for t in b]
    assert [t.id for b in batches for t in b[::2]] == stream  # two positions per step, none skipped
    for batch in batches:
        assert len(batch) == 4
        for first, second in zip(batch[::2], batch[1::2]):
            assert first.id == second.id and first.question == second.question
            assert preference_kind(first.preference).split("+")[0] == "accuracy_first"
            assert preference_kind(second.preference).split("+")[0] == "cost_averse"
            # only the weights differ: the deny/prefer draw is shared
            a, b = first.preference, second.preference
            assert (a.deny, a.prefer) == (b.deny, b.prefer)
            assert second.preference.cost == PROFILES["cost_averse"]["cost"]
    extras = [t.preference.deny or t.preference.prefer for b in batches for t in b]
    assert any(extras) and not all(extras)  # deny/prefer users still appear, at their usual share


@pytest.mark.parametrize("update, match", [
    ({"tasks_per_step": 3}, "divisible"),
    ({"contrast_profiles": ["accuracy_first"]}, ">= 2"),
    ({"contrast_profiles": ["accuracy_first", "stingy"]}, "unknown"),
])
def test_contrast_settings_are_checked(update, match):
    from pydantic import ValidationError

    from toolorch.stages.grpo import GRPOSettings

    with pytest.raises(ValidationError, match=match):
        GRPOSettings.model_validate({"preferences": "contrast", "tasks_per_step": 4, **update})


def test_logits_at_trained_positions_only_match_the_full_projection(world, tiny_tokenizer, monkeypatch):
    import toolorch.train.packing as packing

    folder, tok = tiny_tokenizer
    model, _, _ = _fresh(folder)
    batch = collate([[s] for s in _samples(world, tok, [1.0, -1.0])], tok.pad_token_id)
    with torch.no_grad():
        sliced = token_logprobs(model, batch)
        monkeypatch.setattr(packing, "_LOGITS_AT_MASK", False)  # an older transformers: every position
        full = token_logprobs(model, batch)
    for a, b in zip(sliced, full):
        assert torch.allclose(a.float(), b.float(), atol=1e-5)
    assert int(sliced[2].sum()) > 0


def test_one_process_runs_on_the_gpu_when_there_is_one(monkeypatch):
    monkeypatch.delenv("TOOLORCH_DEVICE", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_device() == "cpu" and init_distributed() == Dist(0, 1, "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_device() == "cuda" and init_distributed().device == "cuda"
    monkeypatch.setenv("TOOLORCH_DEVICE", "cpu")  # a GPU machine can still run the CPU path
    assert init_distributed().device == "cpu"


def test_config_changes_name_each_differing_key():
    from toolorch.train.checkpoint import config_changes

    saved = {"seed": 0, "stages": {"grpo": {"lr": 0.001, "steps": 3}}, "experts": [{"name": "a", "price": "mini"}]}
    assert config_changes(saved, saved) == []
    now = {"seed": 1, "stages": {"grpo": {"lr": 0.002, "steps": 3, "new": True}},
           "experts": [{"name": "a", "price": "frontier"}]}
    assert config_changes(saved, now) == ["experts.0.price ('mini' -> 'frontier')", "seed (0 -> 1)",
                                          "stages.grpo.lr (0.001 -> 0.002)", "stages.grpo.new (None -> True)"]


def test_a_checkpoint_resumes_only_under_its_training_config(world, tiny_tokenizer, tmp_path):
    from toolorch.core.config import Config
    from toolorch.stages.grpo import (
        GRPOSettings,
        ResumeRefused,
        prepare_state_dir,
        training_config,
    )

    folder, _ = tiny_tokenizer
    model, opt, sched = _fresh(folder)
    cfg, s = Config(seed=0), GRPOSettings(lr=0.001)
    state = tmp_path / "state"
    save_state(state, model, opt, sched, step=1, data_position=2, config=training_config(cfg, s))
    prepare_state_dir(state, training_config(cfg, s.model_copy(update={"threads": 1, "stop_after": 2})), True, ONE)
    with pytest.raises(ResumeRefused, match=r"state: the checkpoint there was trained with another config: "
                                            r"stages.grpo.lr \(0.001 -> 0.002\)\. .*pass --fresh"):
        prepare_state_dir(state, training_config(cfg, s.model_copy(update={"lr": 0.002})), True, ONE)
    save_state(state, model, opt, sched, step=2, data_position=4)  # a checkpoint that recorded no config
    with pytest.raises(ResumeRefused, match="the checkpoint records no config"):
        prepare_state_dir(state, training_config(cfg, s), True, ONE)
    prepare_state_dir(state, training_config(cfg, s), False, ONE)  # starting over drops it
    assert not has_state(state) and not list(state.iterdir())


def test_a_change_to_the_training_code_restarts_a_run_that_may_restart(world, tiny_tokenizer, tmp_path):
    """A changed reward must not resume a checkpoint the old reward trained: settings and inputs match."""
    import shutil

    from toolorch.core.config import Config
    from toolorch.stages.grpo import (
        TRAINING_CODE,
        GRPOSettings,
        ResumeRefused,
        code_fingerprint,
        prepare_state_dir,
        training_config,
    )

    package = tmp_path / "toolorch"
    real = Path(__file__).resolve().parents[3] / "src/toolorch"
    for name in (*TRAINING_CODE, "eval"):
        shutil.copytree(real / name, package / name, ignore=shutil.ignore_patterns("__pycache__"))
    before = code_fingerprint(package)
    assert before == code_fingerprint(real)
    (package / "eval" / "report.py").write_text("# the eval does not train\n", encoding="utf-8")
    assert code_fingerprint(package) == before
    rewards = package / "runtime" / "rewards.py"
    rewards.write_text(rewards.read_text(encoding="utf-8").replace("wrong: float = Field(0.0", "wrong: float = Field(-0.1"),
                       encoding="utf-8")
    after = code_fingerprint(package)
    assert after != before

    folder, _ = tiny_tokenizer
    model, opt, sched = _fresh(folder)
    cfg, s = Config(seed=0), GRPOSettings()
    state = tmp_path / "state"
    save_state(state, model, opt, sched, step=1, data_position=2, config=training_config(cfg, s, {"code": before}))
    with pytest.raises(ResumeRefused, match=r"inputs.code \('"):
        prepare_state_dir(state, training_config(cfg, s, {"code": after}), True, ONE)
    prepare_state_dir(state, training_config(cfg, s, {"code": after}), True, ONE, restart_on_change=True)
    assert not has_state(state)
