"""artifact_diff (the KFP-vs-dvc equality check): what two runs may write differently passes, a
changed row, token, scalar or training state does not."""
from __future__ import annotations

import random
import shutil
import sqlite3
import time
from pathlib import Path

import torch
from artifact_diff import tree_differences, without_timings

from toolorch.train.checkpoint import save_state


def _run(root: Path, rows: list[tuple[int, str]], loss: float, lr: float = 0.1) -> Path:
    """A small output folder as a stage writes one: a database, a tokenizer file, TensorBoard
    scalars and a training checkpoint."""
    from torch.utils.tensorboard import SummaryWriter

    root.mkdir(parents=True)
    with sqlite3.connect(root / "db.sqlite") as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", rows)
    conn.close()
    (root / "tokenizer.json").write_text('{"vocab": {"a": 0}}')
    writer = SummaryWriter(log_dir=str(root / "tensorboard"))
    writer.add_scalar("loss", loss, 1)
    writer.add_scalar("train_seconds", time.perf_counter(), 1)  # a timing: may differ
    writer.close()
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    random.random()  # the global Python RNG moves on, as the host process pleases
    save_state(root / "state", model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), 1, 2)
    return root


def test_equal_runs_pass_though_their_bytes_differ_where_they_may(tmp_path):
    a = _run(tmp_path / "a", [(1, "x"), (2, "y")], loss=0.5)
    time.sleep(1.1)  # another event-file name (it holds the second)
    b = _run(tmp_path / "b", [(1, "x"), (2, "y")], loss=0.5)
    assert (a / "state/step-00000001/.metadata").read_bytes() != (b / "state/step-00000001/.metadata").read_bytes()
    assert (a / "state/step-00000001/meta.pkl").read_bytes() != (b / "state/step-00000001/meta.pkl").read_bytes()
    assert {p.name for p in (a / "tensorboard").iterdir()} != {p.name for p in (b / "tensorboard").iterdir()}
    assert tree_differences(a, b) == []


def test_a_changed_row_token_scalar_or_state_is_named(tmp_path):
    a = _run(tmp_path / "a", [(1, "x"), (2, "y")], loss=0.5)
    b = _run(tmp_path / "b", [(1, "x"), (2, "z")], loss=0.25, lr=0.2)
    (b / "tokenizer.json").write_text('{"vocab": {"b": 0}}')
    (b / "extra.txt").write_text("")
    assert tree_differences(a, b) == [
        f"extra.txt: only in {b}", "db.sqlite: tables differ: ['t']",
        "state/step-00000001/__0_0.distcp: bytes differ",  # the optimizer's lr
        "state/step-00000001/meta.pkl: contents differ",  # the schedule's base lr
        "tensorboard/events.out.tfevents.*: contents differ", "tokenizer.json: bytes differ"]
    shutil.rmtree(b / "state")
    assert f"state/step-00000001/meta.pkl: only in {a}" in tree_differences(a, b)


def test_timings_are_dropped_at_any_depth():
    metrics = {"loss": 1.0, "train_seconds": 3.0, "per": {"tokens_per_s": 9.0, "n": 2},
               "history": [{"step": 1, "rollout_seconds": 0.1}]}
    assert without_timings(metrics) == {"loss": 1.0, "per": {"n": 2}, "history": [{"step": 1}]}


def _curves(root: Path, total: float, seconds: float) -> Path:
    """dvclive curves and their report, as the training stages write them (toolorch.train.curves)."""
    from toolorch.train.curves import write_curves
    from toolorch.train.scalars import ScalarLog

    log = ScalarLog(root / "tensorboard", curves=root / "dvclive")
    for step in (1, 2):
        log.write(step, {"reward/total": total * step, "train_seconds": seconds * step, "kl": 0.01})
    log.close()
    write_curves(root / "dvclive", root / "curves", "grpo")
    return root


def test_curves_differ_only_by_what_they_measure_not_how_long_it_took(tmp_path):
    ours, theirs = _curves(tmp_path / "a", 0.5, 1.25), _curves(tmp_path / "b", 0.5, 7.5)
    assert (ours / "curves" / "report.md").read_bytes() != (theirs / "curves" / "report.md").read_bytes()
    assert tree_differences(ours, theirs) == []
    changed = _curves(tmp_path / "c", 0.25, 1.25)
    assert set(tree_differences(ours, changed)) == {
        "curves/reward.png: bytes differ", "curves/report.md: contents differ", "dvclive/metrics.json: contents differ",
        "dvclive/plots/metrics/reward/total.tsv: bytes differ", "tensorboard/events.out.tfevents.*: contents differ"}
