"""Episodes per second for a scripted policy on a tiny world, and the runner's overhead.

    python benchmarks/episode.py [out.json] [--repeats 5]

Baseline, run side by side: the same gold tool calls executed directly against the
same environment session (no prompt, no parsing, no accounting). The ratio
runner/direct is what the episode loop adds. Tasks whose plans run Python are left
out: the sandbox (~80 ms a call) would swamp both sides equally.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from toolorch.core.config import load_config
from toolorch.runtime.episode import run_episode
from toolorch.runtime.gold import substitute
from toolorch.runtime.policies import PlanPolicy
from toolorch.runtime.tools import Toolbox
from toolorch.stages.synth_envs import SynthEnvsSettings
from toolorch.synth.envs import ProceduralGenerator
from toolorch.synth.tasks import synthesize_env_tasks

ROOT = Path(__file__).resolve().parents[1]


def _time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(out: str | None = None, repeats: int = 5) -> dict:
    cfg = load_config(ROOT / "configs/tiny.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        env = ProceduralGenerator(SynthEnvsSettings().rows_per_table).generate("library", seed=0, out_dir=Path(tmp))
        made, _, _ = synthesize_env_tasks(env, cfg.catalog(), per_template=2, seed=0)
        tasks = [t for t in made if all(c.name != "run_python" for c in t.gold_calls)]
        session = env.session()
        box = Toolbox(cfg.catalog(), session)

        def direct() -> None:
            for t in tasks:
                prev = None
                for c in t.gold_calls:
                    prev = box.call(substitute(c, prev), t).content

        def runner() -> None:
            for t in tasks:
                run_episode(t, PlanPolicy(t.gold_calls), box, cfg.episode.limits())

        direct(), runner()  # warm caches
        t_direct, t_runner = _time(direct, repeats), _time(runner, repeats)
        session.close()
    result = {
        "tasks": len(tasks),
        "tool_calls": sum(len(t.gold_calls) for t in tasks),
        "episodes_per_s": len(tasks) / t_runner,
        "direct_tool_calls_s": t_direct,
        "runner_s": t_runner,
        "runner_over_direct": t_runner / t_direct,
    }
    print(f"{result['tasks']} episodes ({result['tool_calls']} tool calls), best of {repeats}")
    print(f"  direct tool calls : {t_direct * 1e3:8.1f} ms")
    print(f"  episode runner    : {t_runner * 1e3:8.1f} ms  ({result['episodes_per_s']:.0f} episodes/s)")
    print(f"  runner / direct   : {result['runner_over_direct']:.2f}x")
    if out:
        Path(out).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    args = sys.argv[1:]
    reps = int(args[args.index("--repeats") + 1]) if "--repeats" in args else 5
    paths = [a for i, a in enumerate(args) if not a.startswith("--") and (i == 0 or args[i - 1] != "--repeats")]
    main(paths[0] if paths else None, reps)
