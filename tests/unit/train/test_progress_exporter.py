"""Progress lines at a steady cadence and the training exporter's Prometheus endpoint, scraped over HTTP."""
from __future__ import annotations

import logging
import socket
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from toolorch.core.progress import Progress
from toolorch.train.exporter import TrainingExporter


def test_progress_logs_first_last_and_on_cadence(caplog, monkeypatch):
    clock = iter([0.0, 1.0, 2.0, 3.0, 14.0, 15.0])  # began, then one reading per update
    monkeypatch.setattr("toolorch.core.progress.time.perf_counter", lambda: next(clock))
    caplog.set_level(logging.INFO, logger="toolorch.progress")
    with Progress("grpo", total=5, show=("reward/",), every_s=10) as progress:
        for step in range(1, 6):
            progress.update(step, {"reward/total": 0.25 * step, "lr": 1e-3}, tokens=100, samples=8)
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(" | ")[0] for line in lines] == ["grpo step 1/5 (20%)", "grpo step 4/5 (80%)",
                                                        "grpo step 5/5 (100%)"]
    # step 4 at 14 s: 4 updates, 3.5 s each, 1 left; 300 tokens over the 13 s since the last line
    assert lines[1] == "grpo step 4/5 (80%) | reward/total 1 | 23 tokens/s 1.85 samples/s | elapsed 0:00:14 ETA 0:00:04"
    assert "lr" not in lines[1]


def test_eta_counts_units_not_updates(caplog, monkeypatch):
    # a batch of 60 episodes finished 35 s in: 660 left at 35/60 s each; a run resumed at step 6
    # of 10 whose first step took 5 s: 3 left at 5 s each
    clock = iter([0.0, 35.0, 100.0, 105.0])
    monkeypatch.setattr("toolorch.core.progress.time.perf_counter", lambda: next(clock))
    caplog.set_level(logging.INFO, logger="toolorch.progress")
    with Progress("held-out check", total=720, unit="episode") as progress:
        progress.update(60, samples=60)
    with Progress("grpo", total=10) as progress:
        progress.resumed_at(6)
        progress.update(7)
    first, resumed = (r.getMessage() for r in caplog.records)
    assert first.startswith("held-out check episode 60/720 (8%)") and first.endswith("ETA 0:06:25")
    assert resumed.endswith("elapsed 0:00:05 ETA 0:00:15")


def test_progress_cadence_rejects_a_bad_setting(monkeypatch):
    monkeypatch.setenv("TOOLORCH_LOG_EVERY", "often")
    with pytest.raises(ValueError, match="TOOLORCH_LOG_EVERY='often'"):
        Progress("sft", total=3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_exporter_serves_progress_over_http(monkeypatch):
    port = _free_port()
    monkeypatch.setenv("TOOLORCH_METRICS_PORT", str(port))
    assert TrainingExporter.from_env(serves=False) is None
    exporter = TrainingExporter.from_env(serves=True)
    try:
        progress = Progress("grpo", total=10, watchers=[exporter], every_s=1e9)
        progress.update(3, {"reward/total": 0.4, "reward/cost": -0.02, "loss": 0.1, "tool_mix/search": 0.5},
                        tokens=640, samples=32)
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        exporter.close()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("toolorch_train_step", (("stage", "grpo"),))] == 3
    assert samples[("toolorch_train_total_steps", (("stage", "grpo"),))] == 10
    assert samples[("toolorch_train_reward", (("stage", "grpo"), ("term", "total")))] == 0.4
    assert samples[("toolorch_train_reward", (("stage", "grpo"), ("term", "cost")))] == -0.02
    assert samples[("toolorch_train_value", (("name", "loss"), ("stage", "grpo")))] == 0.1
    assert samples[("toolorch_train_tokens_per_second", (("stage", "grpo"),))] > 0
    assert samples[("toolorch_train_samples_per_second", (("stage", "grpo"),))] > 0
    assert not any("tool_mix" in str(key) for key in samples)  # per-tool keys stay out of the label set


def test_exporter_port_must_be_a_number(monkeypatch):
    monkeypatch.setenv("TOOLORCH_METRICS_PORT", "http")
    with pytest.raises(ValueError, match="not a port number"):
        TrainingExporter.from_env(serves=True)
