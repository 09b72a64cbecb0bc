"""A training job's progress on a Prometheus endpoint, one per node (its local rank 0), scraped
through manifests/podmonitor-training.yaml and drawn by helm/dashboards/training.json.

    exporter = TrainingExporter.from_env(node_main())     # serves when TOOLORCH_METRICS_PORT is set
    with Progress("grpo", total, watchers=watchers(exporter)) as progress: ...
    exporter.close()

Every rank sees the same step scalars (rewards are gathered over ranks, token counts summed), so
each node's endpoint reports the job's numbers and its own GPU memory; with one endpoint per pod
every scrape target of a multi-node job is up, whichever pod rank 0 landed on.

Series (label `stage`: sft, grpo; `job`, `namespace`, `pod` come from the scrape):
    toolorch_train_step / toolorch_train_total_steps / toolorch_train_eta_seconds
    toolorch_train_tokens_per_second / toolorch_train_samples_per_second
    toolorch_train_reward{term}            the reward terms (outcome, cost, ..., total) of the last step
    toolorch_train_value{name}             the other scalars: loss, kl, accuracy, lr, ...
    toolorch_train_gpu_memory_bytes        allocated CUDA memory (absent without a GPU)
"""
from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, start_http_server

PORT_ENV = "TOOLORCH_METRICS_PORT"
# scalars kept as toolorch_train_value{name}: a bounded set, never per-tool or per-user keys
VALUES = ("loss", "kl", "entropy", "accuracy", "lr", "grad_norm", "cost_usd", "latency_s", "clip_fraction",
          "groups_kept", "groups_filtered")


class TrainingExporter:
    def __init__(self, port: int | None = None, addr: str = "0.0.0.0"):
        self.registry = CollectorRegistry()
        gauge = lambda name, doc, labels=(): Gauge(name, doc, ("stage", *labels), registry=self.registry)  # noqa: E731
        self.step = gauge("toolorch_train_step", "Optimizer steps done.")
        self.total = gauge("toolorch_train_total_steps", "Optimizer steps the run will take.")
        self.eta = gauge("toolorch_train_eta_seconds", "Estimated seconds to the last step.")
        self.tokens = gauge("toolorch_train_tokens_per_second", "Tokens processed per second (recent steps).")
        self.samples = gauge("toolorch_train_samples_per_second", "Samples (rollouts, rows) per second.")
        self.reward = gauge("toolorch_train_reward", "Reward terms of the last step.", ("term",))
        self.value = gauge("toolorch_train_value", "Other training scalars of the last step.", ("name",))
        self.gpu = gauge("toolorch_train_gpu_memory_bytes", "Allocated CUDA memory.")
        self.server: Any = None
        if port is not None:
            self.server, _ = start_http_server(port, addr=addr, registry=self.registry)

    @classmethod
    def from_env(cls, serves: bool) -> TrainingExporter | None:
        """An exporter serving on $TOOLORCH_METRICS_PORT when `serves`; None otherwise or when unset."""
        raw = os.environ.get(PORT_ENV, "")
        if not serves or not raw:
            return None
        if not raw.isdigit():
            raise ValueError(f"{PORT_ENV}={raw!r} is not a port number")
        return cls(int(raw))

    def update(self, label: str, numbers: dict[str, float]) -> None:
        self.step.labels(label).set(numbers["step"])
        self.total.labels(label).set(numbers["total_steps"])
        self.eta.labels(label).set(numbers["eta_s"])
        self.tokens.labels(label).set(numbers["tokens_per_s"])
        self.samples.labels(label).set(numbers["samples_per_s"])
        for key, value in numbers.items():
            if key.startswith("reward/"):
                self.reward.labels(label, key.removeprefix("reward/")).set(value)
            elif key in VALUES:
                self.value.labels(label, key).set(value)
        memory = gpu_memory_bytes()
        if memory is not None:
            self.gpu.labels(label).set(memory)

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def node_main() -> bool:
    """Local rank 0: the process of its node (pod) that serves the endpoint."""
    return int(os.environ.get("LOCAL_RANK", "0")) == 0


def gpu_memory_bytes() -> float | None:
    import torch

    return float(torch.cuda.memory_allocated()) if torch.cuda.is_available() else None


def watchers(exporter: TrainingExporter | None) -> list[TrainingExporter]:
    return [exporter] if exporter is not None else []
