"""Rollouts through the real episode runner, token in / token out, batched in lockstep.

    engine = HFEngine(model, tokenizer, max_new_tokens=64, temperature=1.0)
    rollouts = run_rollouts([(task, env)] * 8, Runtime.from_config(cfg), engine, seed=0)

Each episode runs `toolorch.runtime.episode.run_episode` in its own thread with a
`TokenPolicy`. Its `generate` call blocks in a `LockstepSampler` until every live
episode has asked, then one batched `generate` serves them all (sorted by episode, so
the batches and the seeded samples are the same on every run). The policy keeps the
exact token ids it was prompted with and sampled - never a re-tokenization of the
text - so the trainer scores the very tokens that were sampled. Generated tokens are
marked trained; system, user and tool tokens, and the template's glue, are not.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from toolorch.core.records import Task, Trajectory
from toolorch.core.seeds import stable_seed
from toolorch.runtime.chat import Sample, Tools, encode, render, suffix
from toolorch.runtime.env import Environment
from toolorch.runtime.episode import Runtime
from toolorch.runtime.modeling import attention_implementation, model_device, precision_context
from toolorch.runtime.policies import Generation
from toolorch.runtime.sampling import KVStore, SamplingSettings, sample_shared


class Engine(Protocol):
    tokenizer: Any

    def sample(self, prompts: list[list[int]], seed: int) -> list[list[int]]: ...


def fitting(prompts: list[list[int]], room: int, eos: int) -> tuple[list[int], list[list[int]]]:
    """(indices of the prompts that leave room to generate, outputs pre-filled with [eos]):
    an over-long chat ends its turn at once."""
    return [i for i, p in enumerate(prompts) if len(p) <= room], [[eos] for _ in prompts]


def end_of_turn(new: list[int], eos: int) -> list[int]:
    """Sampled ids up to and including the first end-of-turn."""
    return new[: new.index(eos) + 1] if eos in new else new


class HFEngine:
    """Batched sampling with a transformers model: each distinct prompt is prefilled once and
    its samples decode from the shared KV cache (`sampling.sample_shared`); turn after turn,
    each conversation's cache is kept and only the new tokens are prefilled (`forget` drops
    it: `run_rollouts` does so when it ends, before the weights change)."""

    def __init__(self, model: Any, tokenizer: Any, max_new_tokens: int = 64, temperature: float = 1.0,
                 min_new_tokens: int = 0, precision: str = "fp32"):
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.min_new_tokens = min_new_tokens
        self.precision = precision  # bf16: sample under autocast, as the trainer's forward runs
        self.max_positions = getattr(model.config, "max_position_embeddings", 1 << 30)
        self.store = KVStore()

    def forget(self) -> None:
        self.store.clear()

    def sample(self, prompts: list[list[int]], seed: int) -> list[list[int]]:
        """prompts: B lists of ids -> B lists of new ids, each cut after its first end-of-turn."""
        eos, pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        fits, out = fitting(prompts, self.max_positions - self.max_new_tokens, eos)
        if not fits:
            return out
        settings = SamplingSettings(self.max_new_tokens, self.temperature, eos, pad, self.min_new_tokens)
        was_training = self.model.training
        self.model.eval()
        try:
            with (precision_context(self.precision, model_device(self.model)),
                  attention_implementation(self.model, "sdpa")):
                new = sample_shared(self.model, [prompts[i] for i in fits], settings, seed, self.store)
        finally:
            self.model.train(was_training)
        for row, i in enumerate(fits):
            out[i] = end_of_turn(new[row], eos)
        return out


class VLLMEngine:
    """Batched sampling with vLLM, the GPU rollout engine; the trainer pushes its weights
    with `load_weights` after every optimizer step, so rollouts always come from the
    current policy. vLLM is imported here only: it is not a dependency of the trainer's
    environment (on CPU it lives in its own venv, see scripts/vllm-venv.sh).

    The engine runs in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0) so that a weight
    push is a function call on the model rather than a copy through a socket.
    """

    def __init__(self, model_dir: str, tokenizer: Any, max_new_tokens: int = 64, temperature: float = 1.0,
                 max_model_len: int = 4096, gpu_memory_utilization: float = 0.3, dtype: str = "auto",
                 **engine_args: Any):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM

        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.max_model_len = max_model_len
        # a group's G samples share their prompt, and turn k+1 extends turn k's tokens: prefix
        # caching computes those blocks once (reset after every weight push, see load_weights)
        engine_args.setdefault("enable_prefix_caching", True)
        self.llm = LLM(model=str(model_dir), dtype=dtype, max_model_len=max_model_len, enforce_eager=True,
                       gpu_memory_utilization=gpu_memory_utilization, seed=0, **engine_args)

    def sample(self, prompts: list[list[int]], seed: int) -> list[list[int]]:
        """prompts: B lists of ids -> B lists of new ids, each cut after its first end-of-turn."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        eos = self.tokenizer.eos_token_id
        fits, out = fitting(prompts, self.max_model_len - self.max_new_tokens, eos)
        if not fits:
            return out
        params = [SamplingParams(temperature=self.temperature, max_tokens=self.max_new_tokens, seed=seed * 1009 + i,
                                 stop_token_ids=[eos], detokenize=False) for i in fits]
        results = self.llm.generate([TokensPrompt(prompt_token_ids=prompts[i]) for i in fits], params, use_tqdm=False)
        for i, result in zip(fits, results):
            out[i] = end_of_turn(list(result.outputs[0].token_ids), eos)
        return out

    def load_weights(self, state_dict: dict[str, Any]) -> None:
        """Replace the served weights with the trainer's (full, unsharded) state dict."""
        # reload_weights re-runs each layer's post-load step: the CPU backend repacks its GEMM
        # weights there, so a plain model.load_weights would write into weights it no longer reads
        weights = [(name, t.detach()) for name, t in state_dict.items()]
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(weights)})
        self.llm.reset_prefix_cache()  # cached KV blocks were computed with the old weights


class LockstepSampler:
    """Collects one request from every live episode, then samples them as one batch."""

    def __init__(self, engine: Engine, workers: int, seed: int):
        self.engine = engine
        self.active = set(range(workers))
        self.pending: dict[int, list[int]] = {}
        self.results: dict[int, list[int] | BaseException] = {}
        self.round = 0
        self.seed = seed
        self.tokens_sampled = 0
        self.cv = threading.Condition()

    def sample(self, worker: int, prompt: list[int]) -> list[int]:
        with self.cv:
            self.pending[worker] = prompt
            self._run_if_complete()
            while worker not in self.results:
                self.cv.wait()
            result = self.results.pop(worker)
        if isinstance(result, BaseException):
            raise RuntimeError("batched sampling failed") from result
        return result

    def finish(self, worker: int) -> None:
        with self.cv:
            self.active.discard(worker)
            self._run_if_complete()

    def _run_if_complete(self) -> None:
        if not self.pending or len(self.pending) < len(self.active):
            return
        batch = sorted(self.pending.items())
        self.pending = {}
        try:
            outs: list[Any] = self.engine.sample([p for _, p in batch], self.seed * 100_003 + self.round)
            self.tokens_sampled += sum(len(o) for o in outs)
        except BaseException as e:  # every waiting episode must wake up and fail, never hang
            outs = [e] * len(batch)
        self.round += 1
        for (worker, _), out in zip(batch, outs):
            self.results[worker] = out
        self.cv.notify_all()


class TokenPolicy:
    """A `Policy` whose turns come from the sampler; records ids and the trained mask."""

    def __init__(self, sampler: LockstepSampler, worker: int, name: str = "grpo"):
        self.name = name
        self.sampler = sampler
        self.worker = worker
        self.tokenizer = sampler.engine.tokenizer
        self.ids: list[int] = []
        self.trained: list[bool] = []
        self.seen = 0  # messages already in `ids`
        self.last_text = ""
        self.last_ended = False
        self.spans: list[tuple[int, int]] = []  # each turn's sampled tokens: [start, end) in `ids`

    def _extend(self, ids: list[int], trained: bool) -> None:
        self.ids += ids
        self.trained += [trained] * len(ids)

    def _catch_up(self, messages: list[dict[str, Any]], tools: Tools) -> None:
        """Append the tokens of messages added since the last turn, up to the generation prompt."""
        tok = self.tokenizer
        if self.seen:  # close our own last message the way the template does
            head = render(tok, messages[: self.seen - 1], tools, generation_prompt=True) + self.last_text
            close = suffix(render(tok, messages[: self.seen], tools), head)
            if self.last_ended and close.startswith(tok.eos_token):
                close = close[len(tok.eos_token):]
            self._extend(encode(tok, close), False)
        before = render(tok, messages[: self.seen], tools)
        self._extend(encode(tok, suffix(render(tok, messages, tools, generation_prompt=True), before)), False)

    def generate(self, messages: list[dict[str, Any]], tools: Tools = None) -> Generation:
        self._catch_up(messages, tools)
        prompt_len = len(self.ids)
        new = self.sampler.sample(self.worker, list(self.ids))
        self._extend(new, True)
        self.spans.append((prompt_len, len(self.ids)))
        self.last_ended = bool(new) and new[-1] == self.tokenizer.eos_token_id
        self.last_text = self.tokenizer.decode(new, skip_special_tokens=True)
        self.seen = len(messages) + 1  # + the assistant message the runner appends
        return Generation(self.last_text, prompt_len, len(new))

    def sample(self) -> Sample:
        return Sample(list(self.ids), list(self.trained))


@dataclass
class Rollout:
    task: Task
    trajectory: Trajectory
    sample: Sample  # ids [L], trained [L]
    spans: list[tuple[int, int]] = field(default_factory=list)  # trajectory.turns[k]'s tokens: sample.ids[a:b]


def run_rollouts(jobs: list[tuple[Task, Environment]], runtime: Runtime, engine: Engine, seed: int,
                 with_code: bool = True, redraw: bool = False) -> tuple[list[Rollout], int]:
    """Run every (task, env) episode concurrently; returns (rollouts in job order, tokens sampled).
    `redraw`: the simulated experts draw their answers afresh, once per task (keyed by `seed` and the
    task id): the episodes of one task meet the same draws, so what separates them is what they did."""
    sampler = LockstepSampler(engine, len(jobs), seed)
    results: list[Rollout | BaseException | None] = [None] * len(jobs)

    def work(i: int) -> None:
        example, env = jobs[i]
        policy = TokenPolicy(sampler, i)
        try:
            drawn = runtime.redrawn(stable_seed(seed, example.id)) if redraw else runtime
            seen, task = drawn.for_example(example)  # as declared, or under aliases and prices
            with env.session() as session:
                traj = seen.run(task, policy, seen.toolbox(session, with_code=with_code))
            results[i] = Rollout(task, traj, policy.sample(), policy.spans)
        except BaseException as e:
            results[i] = e
        finally:
            sampler.finish(i)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(jobs))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        getattr(engine, "forget", lambda: None)()  # kept caches belong to these rollouts' weights
    for r in results:
        if isinstance(r, BaseException):
            raise RuntimeError(f"rollout failed: {r}") from r
    return [r for r in results if isinstance(r, Rollout)], sampler.tokens_sampled
