"""Expert models behind one interface: simulated, replay, openai (any compatible endpoint), hf.

An expert answers a prompt and reports what it consumed. Only the `simulated`
backend may look at the task's gold answer: it is the declared offline stand-in
for real models and every report that uses it says so.
"""
from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from toolorch.core.catalog import Catalog, CatalogExpert, SimulatedProfile
from toolorch.core.records import Task, normalize_answer
from toolorch.core.seeds import stable_seed
from toolorch.runtime.endpoint_gate import endpoint_gate
from toolorch.runtime.openai_chat import (
    EndpointError,
    complete,
    make_client,
    reply_text,
)


class ExpertError(RuntimeError):
    """An expert that could not answer (dead endpoint, missing replay row, ...)."""


@dataclass(frozen=True)
class ExpertReply:
    text: str
    tokens_in: int
    tokens_out: int
    latency_s: float


class Expert(Protocol):
    name: str

    def ask(self, prompt: str, task: Task | None = None) -> ExpertReply: ...


def approx_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def decoy_answer(gold: str, answer_type: str, rng: random.Random) -> str:
    """A plausible wrong answer of the same type, different from gold after normalisation."""
    if answer_type == "number":
        try:
            x = float(gold)
            wrong = x + rng.choice([-3, -2, -1, 1, 2, 3]) * (1 if x == int(x) else 0.37)
            return str(int(wrong)) if x == int(x) else f"{wrong:.2f}"
        except ValueError:
            pass
    if answer_type == "bool":
        return "no" if normalize_answer(gold, "bool") == "yes" else "yes"
    if answer_type == "list":
        items = [i.strip() for i in gold.split(",") if i.strip()]
        return ", ".join(items[:-1]) if len(items) > 1 else "none"
    if len(gold.strip()) == 1 and gold.strip().isalpha():  # a multiple-choice letter: another letter
        return rng.choice([c for c in "ABCDE" if c != gold.strip().upper()])
    words = gold.split()
    if len(words) > 1:
        rng.shuffle(words)
        if " ".join(words) != gold:
            return " ".join(words)
    return gold[::-1].title() if gold[::-1].casefold() != gold.casefold() else gold + " II"


def usage_draw(profile: SimulatedProfile, rng: random.Random) -> tuple[int, float]:
    """Output tokens and latency (s) of one simulated call: normal draws around the declared means."""
    tokens_out = max(1, int(rng.gauss(profile.tokens_out_mean, profile.tokens_out_mean * 0.2)))
    latency = max(0.1, rng.gauss(profile.latency_s_mean, profile.latency_s_mean * 0.2))
    return tokens_out, round(latency, 3)


class SimulatedExpert:
    """Declared profile: accuracy by category and difficulty, token and latency draws.

    An answer is one draw per (seed, task, prompt): asked again in the same words, the expert says
    the same. With `per_task`, one draw per (seed, task) whatever the prompt: two policies that send
    a task to this expert meet one outcome however they word the call (`answer(model=...)` or an
    `ask_<expert>` tool), so a paired margin between them is their routes' difference, not the luck
    of a prompt's hash. The eval, the held-out check and the gateway's graded held-out tasks draw
    per task (`Runtime.one_draw_per_task`); pass@k and GRPO's rollouts still draw per prompt, the
    data the committed models were trained on. `redrawn` gives an expert with fresh draws, as a
    sampled model answers anew each time (training rollouts)."""

    def __init__(self, cfg: CatalogExpert, seed: int = 0, per_task: bool = False):
        self.cfg = cfg
        self.name = cfg.name
        self.profile = cfg.simulated
        self.seed = seed
        self.per_task = per_task

    def redrawn(self, key: int) -> SimulatedExpert:
        return SimulatedExpert(self.cfg, stable_seed(self.seed, "draw", key), self.per_task)

    def accuracy(self, task: Task) -> float:
        p = self.profile.accuracy.get(task.category, self.profile.default_accuracy)
        return max(0.0, min(1.0, p - self.profile.difficulty_decay * (task.difficulty - 1)))

    def ask(self, prompt: str, task: Task | None = None) -> ExpertReply:
        if task is None:
            raise ExpertError(f"simulated expert '{self.name}' needs the task it simulates")
        key = (task.id,) if self.per_task else (task.id, prompt)
        rng = random.Random(stable_seed(self.seed, self.name, *key))
        right = rng.random() < self.accuracy(task)
        value = task.answer if right else decoy_answer(task.answer, task.answer_type, rng)
        tokens_out, latency = usage_draw(self.profile, rng)
        return ExpertReply(f"Answer: {value}", approx_tokens(prompt) + 40, tokens_out, latency)


class ReplayExpert:
    """Recorded responses keyed by (task id, expert name), as in RouterBench."""

    def __init__(self, cfg: CatalogExpert):
        self.name = cfg.name
        if not cfg.replay_file or not Path(cfg.replay_file).exists():
            raise ExpertError(f"replay expert '{cfg.name}': replay_file {cfg.replay_file!r} not found")
        self.rows: dict[str, dict] = {}
        with open(cfg.replay_file, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    if row["expert"] == cfg.name:
                        self.rows[row["task_id"]] = row
                except (json.JSONDecodeError, KeyError, TypeError) as e:
                    raise ExpertError(f"{cfg.replay_file}:{lineno}: bad replay row ({e})") from None

    def ask(self, prompt: str, task: Task | None = None) -> ExpertReply:
        row = self.rows.get(task.id if task else "")
        if row is None:
            raise ExpertError(f"replay expert '{self.name}' has no response for task {task.id if task else None}")
        return ExpertReply(row["text"], int(row["tokens_in"]), int(row["tokens_out"]), float(row["latency_s"]))


class OpenAIExpert:
    """Any OpenAI-compatible chat endpoint, with a timeout and bounded retries with backoff."""

    def __init__(self, cfg: CatalogExpert, backoff_s: float = 0.5):
        if not cfg.base_url or not cfg.model:
            raise ExpertError(f"openai expert '{cfg.name}' needs base_url and model")
        self.name = cfg.name
        self.cfg = cfg
        self.backoff_s = backoff_s
        key = os.environ.get(cfg.api_key_env, "") if cfg.api_key_env else ""
        if cfg.api_key_env and not key:  # else every call would be an error observation, and training goes on
            raise ExpertError(f"openai expert '{cfg.name}': its key variable {cfg.api_key_env} is not set")
        self.client = make_client(cfg.base_url, key, cfg.timeout_s)
        self.gate = endpoint_gate(cfg.base_url, cfg.max_concurrency, cfg.requests_per_s)

    def ask(self, prompt: str, task: Task | None = None) -> ExpertReply:
        start = time.monotonic()
        try:
            resp = complete(
                self.client, attempts=self.cfg.max_retries + 1, backoff_s=self.backoff_s, gate=self.gate,
                model=self.cfg.model,
                messages=[{"role": "user", "content": prompt}], max_tokens=self.cfg.max_tokens, temperature=0.0,
            )
        except EndpointError as e:
            raise ExpertError(f"expert '{self.name}': {e}") from None
        text = reply_text(resp)
        usage = resp.usage
        return ExpertReply(
            text,
            usage.prompt_tokens if usage else approx_tokens(prompt),
            usage.completion_tokens if usage else approx_tokens(text),
            time.monotonic() - start,
        )


class HFExpert:
    """A local transformers causal LM."""

    def __init__(self, cfg: CatalogExpert):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not cfg.model or not Path(cfg.model).exists():
            raise ExpertError(f"hf expert '{cfg.name}': model dir {cfg.model!r} not found")
        self.name = cfg.name
        self.cfg = cfg
        self.tokenizer = AutoTokenizer.from_pretrained(cfg.model)
        self.model = AutoModelForCausalLM.from_pretrained(cfg.model).eval()
        pad = self.tokenizer.pad_token_id  # may be 0: test against None, not falsiness
        self.pad_token_id = pad if pad is not None else self.tokenizer.eos_token_id

    def ask(self, prompt: str, task: Task | None = None) -> ExpertReply:
        import torch

        ids = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )["input_ids"]
        start = time.monotonic()
        with torch.no_grad():
            out = self.model.generate(ids, max_new_tokens=self.cfg.max_tokens, do_sample=False,
                                      pad_token_id=self.pad_token_id)
        new = out[0, ids.shape[1]:]
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        return ExpertReply(text, int(ids.shape[1]), int(new.shape[0]), time.monotonic() - start)


def build_expert(cfg: CatalogExpert, seed: int = 0) -> Expert:
    if cfg.backend == "simulated":
        return SimulatedExpert(cfg, seed)
    if cfg.backend == "replay":
        return ReplayExpert(cfg)
    if cfg.backend == "openai":
        return OpenAIExpert(cfg)
    return HFExpert(cfg)


def build_experts(catalog: Catalog, seed: int = 0) -> dict[str, Expert]:
    """Every expert of the catalog, by name."""
    return {e.name: build_expert(e, seed) for e in catalog.experts}
