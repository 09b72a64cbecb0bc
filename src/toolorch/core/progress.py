"""Progress of long work (training steps, evaluated tasks) as log lines a pod log keeps.

    configure_logging()                                   # once, in a command's entry point
    with Progress("grpo", total=10, show=("reward/", "loss")) as progress:
        progress.update(step, scalars, tokens=812, samples=32)

Every update is counted; a line goes through `logging` (logger `toolorch.progress`) at the first
update, the last, and then every `TOOLORCH_LOG_EVERY` seconds (default 10):

    grpo step 3/10 (30%) | reward/total 0.412 loss -0.017 | 812 tokens/s 4.1 samples/s | elapsed 0:00:12 ETA 0:00:28

so a pod log (no terminal) reads step, rates, elapsed and ETA at a steady cadence. A rich bar
is drawn only when stderr is a terminal. `watchers` (e.g. train.exporter.TrainingExporter) get
every update's numbers too.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from datetime import timedelta
from typing import Any, Protocol, Sequence

LOG = logging.getLogger("toolorch.progress")
DEFAULT_EVERY_S = 10.0


class Watcher(Protocol):
    def update(self, label: str, numbers: dict[str, float]) -> None: ...


def configure_logging(level: int = logging.INFO) -> None:
    """Timestamped lines on stderr for toolorch's loggers (kept if the process already set a handler);
    without a terminal, libraries' progress bars are turned off (see quiet_progress_bars)."""
    if not sys.stderr.isatty():
        quiet_progress_bars()
    root = logging.getLogger("toolorch")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(level)


def quiet_progress_bars() -> None:
    """No tqdm bars (transformers' "Loading weights", the Hub's downloads) in a pod log: redrawn with
    carriage returns, they are a wall of half lines there. Env vars for libraries imported later,
    the libraries' switches for those already imported."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()


def log_every_s() -> float:
    raw = os.environ.get("TOOLORCH_LOG_EVERY", "")
    try:
        return float(raw) if raw else DEFAULT_EVERY_S
    except ValueError:
        raise ValueError(f"TOOLORCH_LOG_EVERY={raw!r} is not a number of seconds") from None


def clock(seconds: float) -> str:
    return str(timedelta(seconds=round(max(0.0, seconds))))


class Progress:
    """`total`: the step the work ends at; the ETA is the time per unit done here times the units
    left. `start`: where the work begins (a resumed run's step), so a run resumed at step 6 of 10
    estimates from its own pace, and an update may finish many units at once (a batch of episodes)."""

    def __init__(self, label: str, total: int, show: Sequence[str] = (), enabled: bool = True,
                 watchers: Sequence[Watcher] = (), every_s: float | None = None, unit: str = "step", start: int = 0):
        self.label, self.total, self.show, self.unit = label, max(1, total), tuple(show), unit
        self.start = start
        self.counts_tokens = False
        self.enabled, self.watchers = enabled, list(watchers)
        self.every_s = log_every_s() if every_s is None else every_s
        self.began = self.window_began = time.perf_counter()
        self.window_tokens = self.window_samples = 0.0
        self.last_logged: float | None = None
        self.bar: Any = None

    def __enter__(self) -> Progress:
        if self.enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            self.bar = Bar(TextColumn(self.label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                           transient=True)
            self.bar.start()
            self.bar_task = self.bar.add_task(self.label, total=self.total)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()

    def resumed_at(self, done: int) -> None:
        """The work resumes at `done`: the ETA counts only what is done from here."""
        self.start = done

    def update(self, done: int, scalars: dict[str, float] | None = None, tokens: float = 0, samples: float = 0) -> None:
        """`done` updates finished so far (the step number after it); `tokens`/`samples` this update
        processed. Watchers hear every update; lines and the bar only come when `enabled` (rank 0)."""
        now = time.perf_counter()
        self.counts_tokens = self.counts_tokens or tokens > 0
        self.window_tokens += tokens
        self.window_samples += samples
        window = max(now - self.window_began, 1e-9)
        elapsed = now - self.began
        numbers = {"step": float(done), "total_steps": float(self.total), "elapsed_s": elapsed,
                   "eta_s": elapsed / max(done - self.start, 1) * max(0, self.total - done),
                   "tokens_per_s": self.window_tokens / window, "samples_per_s": self.window_samples / window,
                   **(scalars or {})}
        for watcher in self.watchers:
            watcher.update(self.label, numbers)
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(self.bar_task, completed=done)
        if self.last_logged is None or done >= self.total or now - self.last_logged >= self.every_s:
            LOG.info(self.line(done, numbers))
            self.last_logged, self.window_began = now, now
            self.window_tokens = self.window_samples = 0.0

    def line(self, done: int, numbers: dict[str, float]) -> str:
        shown = " ".join(f"{k} {v:.4g}" for k, v in numbers.items() if k.startswith(self.show) and self.show)
        rates = f"{numbers['tokens_per_s']:.0f} tokens/s " if self.counts_tokens else ""
        rates += f"{numbers['samples_per_s']:.3g} samples/s"
        parts = [f"{self.label} {self.unit} {done}/{self.total} ({100 * done / self.total:.0f}%)", shown, rates,
                 f"elapsed {clock(numbers['elapsed_s'])} ETA {clock(numbers['eta_s'])}"]
        return " | ".join(p for p in parts if p)
