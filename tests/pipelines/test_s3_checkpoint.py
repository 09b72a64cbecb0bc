"""GRPO's training state straight to S3 (torch.distributed.checkpoint through fsspec's s3fs) on the
local S3 server: what a PyTorchJob's ranks write, so a restarted replica resumes."""
from __future__ import annotations

import uuid

import pytest
import torch

from toolorch.ops.storage import S3Settings, S3Store
from toolorch.train.checkpoint import clear_state, has_state, latest, load_state, save_state, saved_config

# a wedged S3 server fails these tests in minutes, not after the suite's 900 s per test
pytestmark = pytest.mark.timeout(240)


def _training(seed: int):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    return model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 4))


def _step(model, opt, sched, x):
    loss = model(x).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    return loss.item()


@pytest.fixture
def state_url(s3_server, monkeypatch):
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    bucket = f"ckpt-{uuid.uuid4().hex[:10]}"
    S3Store(S3Settings.from_env()).ensure_bucket(bucket)
    return f"s3://{bucket}/pytorchjobs/grpo-1/state"


def test_state_saved_to_s3_resumes_the_same_run(state_url, s3_server):
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(0))
    model, opt, sched = _training(0)
    whole = [_step(model, opt, sched, x) for _ in range(6)]

    model, opt, sched = _training(0)
    assert not has_state(state_url)
    for step in range(1, 4):
        _step(model, opt, sched, x)
        save_state(state_url, model, opt, sched, step=step, data_position=2 * step, config={"lr": 0.01})
    assert latest(state_url) == "step-00000003" and saved_config(state_url) == {"lr": 0.01}
    stored = sorted(p.name for p in (s3_server.root / state_url[5:]).iterdir())
    assert stored == ["LATEST", "step-00000003"]  # the older checkpoints went once the new one was complete

    model, opt, sched = _training(1)  # another process: other initial weights
    assert load_state(state_url, model, opt, sched) == (3, 6)
    assert [_step(model, opt, sched, x) for _ in range(3)] == pytest.approx(whole[3:], rel=1e-6)

    clear_state(state_url)
    assert not has_state(state_url)
