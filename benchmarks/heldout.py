"""The held-out check's rollouts: one batch per world against one batch across worlds.

    python benchmarks/heldout.py [out.json] [--synthesized 60] [--tau2 12] [--rounds 3] [--model models/grpo]

A procedural library world and tau2-bench's airline world (its prompt is 2-3x a synthesized
one's) in the held-out set's proportions (tiny profile: 366 synthesized, 65 tau2), sampled at the check's temperature, by `--model` (a
trained policy, e.g. `models/grpo` after `dvc repro`: it calls one expert and stops, as in the
check) or else a random-init model of the tiny profile's shape whose tokenizer is trained on the
library's gold trajectories (it babbles to the turn limit, so decoding weighs more). Ours: `toolorch.eval.heldout.run_policy`, which rolls a run out one
world per batch. Baseline, side by side in the same process, alternating within each round: the
same episodes in one `run_rollouts` batch, which pads every prompt to the longest. Both sides
run the same episodes to the same stopping rules; reported: episodes/s of each and ours/baseline.
"""
from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
import typer
from transformers import AutoModelForCausalLM, AutoTokenizer

from toolorch.eval.heldout import HeldoutConfig, LockedEngine, run_policy
from toolorch.runtime.chat import chat_texts
from toolorch.runtime.episode import Runtime, run_episode
from toolorch.runtime.policies import PlanPolicy
from toolorch.runtime.rewards import RewardConfig
from toolorch.runtime.modeling import build_tiny_model
from toolorch.runtime.rollout import HFEngine, run_rollouts
from toolorch.runtime.tools import Toolbox
from toolorch.stages import load_profile
from toolorch.stages.synth_envs import SynthEnvsSettings
from toolorch.synth.envs import ProceduralGenerator
from toolorch.synth.tasks import synthesize_env_tasks
from toolorch.synth.tau2 import import_tau2

ROOT = Path(__file__).resolve().parents[1]


def random_tiny(env, tasks, cfg, out: Path) -> Path:
    """A random-init model of the profile's tiny shape, its tokenizer trained on the tasks' gold trajectories."""
    with env.session() as session:
        box = Toolbox(cfg.catalog(), session)
        gold = [run_episode(t, PlanPolicy(t.gold_calls), box, cfg.episode.limits()) for t in tasks]
    return build_tiny_model(out, chat_texts([t.messages for t in gold]), cfg.stages.sft.tiny)


def main(out: str = typer.Argument(None, help="JSON results path."),
         synthesized: int = typer.Option(60, help="Tasks of the library world."),
         tau2: int = typer.Option(12, help="Tasks of tau2's airline world."),
         rounds: int = typer.Option(3, help="Timed rounds (each side once per round)."),
         threads: int = typer.Option(2),
         model: Path = typer.Option(None, help="A trained policy folder; default: random init.")) -> dict:
    torch.set_num_threads(threads)
    cfg = load_profile(ROOT / "configs/tiny.yaml", [])
    grpo = cfg.stages.grpo
    with tempfile.TemporaryDirectory() as tmp:
        library = ProceduralGenerator(SynthEnvsSettings().rows_per_table).generate("library", seed=0,
                                                                                   out_dir=Path(tmp) / "library")
        made, _, _ = synthesize_env_tasks(library, cfg.catalog(), per_template=2, seed=0)
        airline = import_tau2("airline", Path(tmp) / "tau2_airline")
        model_dir = model or random_tiny(library, made, cfg, Path(tmp) / "model")
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        policy = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        if len(made) < synthesized or len(airline.tasks) < tau2:
            raise SystemExit(f"--synthesized {synthesized} / --tau2 {tau2}: the worlds have {len(made)} and "
                             f"{len(airline.tasks)} tasks")
        every = synthesized // max(tau2, 1)  # a tau2 task after every `every` library ones
        mixed = []
        for i, task in enumerate(airline.tasks[:tau2]):
            mixed += [*made[i * every:(i + 1) * every], task]
        mixed += made[tau2 * every:synthesized]
        envs = {library.name: library, airline.env.name: airline.env}
        runtime = Runtime.from_config(cfg).one_draw_per_task()
        hc = HeldoutConfig(seeds=(0,), temperature=grpo.heldout.temperature, max_new_tokens=grpo.max_new_tokens,
                           reward=RewardConfig(), with_code=True, preference_seeds=(0,))

        def ours() -> None:
            run_policy(policy, tokenizer, mixed, envs, runtime, hc, seed=0)

        def one_batch() -> None:
            engine = LockedEngine(HFEngine(policy, tokenizer, hc.max_new_tokens, hc.temperature), threading.Lock())
            run_rollouts([(t, envs[t.env]) for t in mixed], runtime, engine, seed=10_007, with_code=hc.with_code)

        ours(), one_batch()  # warm: the first forward of a process is slow
        times: dict[str, list[float]] = {"per_world": [], "one_batch": []}
        for _ in range(rounds):
            for name, fn in (("per_world", ours), ("one_batch", one_batch)):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    best = {k: min(v) for k, v in times.items()}
    result = {
        "episodes": len(mixed), "worlds": sorted(envs), "rounds": rounds, "threads": threads,
        "model": str(model) if model else "random init (tiny profile shape)",
        "seconds": times, "episodes_per_s": {k: len(mixed) / v for k, v in best.items()},
        "ratio_per_world_over_one_batch": best["one_batch"] / best["per_world"],  # > 1: ours is faster
    }
    print(f"{len(mixed)} episodes over {', '.join(sorted(envs))}: per world {result['episodes_per_s']['per_world']:.1f}"
          f" episodes/s, one batch {result['episodes_per_s']['one_batch']:.1f} episodes/s, "
          f"speed-up {result['ratio_per_world_over_one_batch']:.2f}x (best of {rounds})")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    sys.exit(typer.run(main))
