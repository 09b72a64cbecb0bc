"""The pipeline at several pipeline seeds, and the table that says whether a result holds at each.

    python -m toolorch.ops.seeds run --config configs/tiny.yaml --seeds 1 --seeds 2 --root runs/seeds
    python -m toolorch.ops.seeds table --root runs/seeds --seed0 . --out metrics/seeds.json

`run` runs every stage but deploy, in order, at each seed (`--set seed=N`), with every path
under `<root>/seed-<N>/` (the declared defaults: data/, models/, metrics/, reports/): the same
stage code and declarations as `dvc repro` and the KFP components. Seeds run one after another:
each stage already uses the machine's cores. A stage whose metrics file exists is skipped, so an
interrupted run resumes; `--from STAGE` re-runs that stage and every later one (GRPO, as under
dvc, goes on from the checkpoint in its folder if its config, inputs and training code are the same,
and starts over if not); `--to STAGE` stops after it. A changed profile or `--set` is not detected: use a new root.

`table` reads each seed's eval and GRPO metrics (seed 0 may be the repository's own `dvc repro`:
`--seed0 .`) and writes one row per seed: GRPO minus SFT (held-out reward and eval utility), the
trained policy minus the best single expert, the preference cost ratio, whether the eval's
preference sweep traces a curve (cost falls as the cost weight grows), the routing headroom,
with their paired 95% BCa intervals; then the mean, min and max over seeds, and which claims
hold at every seed.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer

from toolorch.core.jsonl import write_json
from toolorch.core.progress import configure_logging
from toolorch.stages import STAGES, declaration, default_paths, load_profile
from toolorch.stages.command import execute, reported
from toolorch.stages.headline import write_headline

log = logging.getLogger("toolorch.seeds")  # not __name__: run as __main__
app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])
SEEDED = [s for s in STAGES if s != "deploy"]  # deploy publishes; a seed run only measures


def seed_paths(stage_name: str, root: Path) -> dict[str, Path]:
    """The stage's declared default paths, each under `root`."""
    return {k: root / p for k, p in default_paths(declaration(stage_name)).items()}


def dvc_flags(stage: Any) -> dict[str, bool]:
    """The switches dvc.yaml's command gives the stage (`dvc_options`), as keywords: a seed runs as
    `dvc repro` would (GRPO starts over when its config, inputs or training code changed)."""
    return {option.removeprefix("--").replace("-", "_"): True for option in stage.dvc_options}


def run_seed(config: Path, overrides: list[str], seed: int, root: Path, start: str | None, last: str | None) -> None:
    """Every stage up to `last`; a finished one (its metrics file exists) is skipped unless it is
    `start` or later, or an earlier stage ran (its inputs are then new)."""
    cfg = load_profile(config, [*overrides, f"seed={seed}"])
    ran = False
    for name in SEEDED[:SEEDED.index(last) + 1] if last else SEEDED:
        paths = seed_paths(name, root)
        ran = ran or name == start or not paths["metrics_path"].exists()
        if not ran:
            log.info("seed %d: %s done (%s)", seed, name, paths["metrics_path"])
            continue
        log.info("seed %d: %s", seed, name)
        stage = declaration(name)
        result = execute(stage, cfg, {**paths, **dvc_flags(stage)})
        write_headline(name, result, paths["metrics_path"])


@app.command()
def run(config: Path = typer.Option(..., help="Profile YAML, e.g. configs/tiny.yaml."),
        seeds: list[int] = typer.Option(..., "--seeds", help="Pipeline seeds (repeatable)."),
        root: Path = typer.Option(Path("runs/seeds"), help="Each seed's outputs go to <root>/seed-<N>/."),
        set_: list[str] = typer.Option([], "--set", help="Config override key=value (repeatable)."),
        from_: Optional[str] = typer.Option(None, "--from", help="Re-run this stage and every later one."),
        to: Optional[str] = typer.Option(None, help="Stop after this stage."),
        debug: bool = typer.Option(False, help="Show the traceback of a failure.")) -> None:
    """Run the pipeline (every stage but deploy) at each seed."""
    configure_logging()
    with reported("seeds run", debug):
        for hint, name in (("--from", from_), ("--to", to)):
            if name is not None and name not in SEEDED:
                raise typer.BadParameter(f"no stage '{name}' (stages: {', '.join(SEEDED)})", param_hint=hint)
        for seed in seeds:
            run_seed(config, set_, seed, root / f"seed-{seed}", from_, to)
    typer.echo(f"seeds {', '.join(map(str, seeds))}: outputs under {root}")


def seed_row(seed: int, eval_metrics: dict[str, Any], grpo_metrics: dict[str, Any]) -> dict[str, Any]:
    """One seed's verdict on the three claims, from its eval (paired by task, n held-out tasks)
    and its GRPO held-out check (the preference block: the trained policy under two users)."""
    paired, policies = eval_metrics["paired"], eval_metrics["policies"]
    experts = {p: s["utility"] for p, s in policies.items() if p.startswith("only:")}
    best = max(experts, key=experts.get)
    by_user = {p: policies[p]["user_utility"] for p in experts}
    best_for_users = max(by_user, key=by_user.get)
    pref = grpo_metrics["heldout"]["preference"]
    ratio = pref["accuracy_first_cost_usd"] / pref["cost_averse_cost_usd"]
    headroom = eval_metrics.get("headroom")
    user_bound = (headroom or {}).get("user_utility", {})
    trained = eval_metrics["verdict"]["trained"]
    sweep = sorted((p["cost_weight"], p["cost_usd"]) for p in eval_metrics["pareto"]
                   if p["policy"] == trained and p["cost_weight"] is not None)
    costs = [c for _, c in sweep]
    return {
        "seed": seed,
        "n": paired["sft"]["n"],
        # the held-out check's reward (each task under its own user, the training reward), paired by task
        "grpo_minus_sft_reward": grpo_metrics["heldout"]["reward_margin_paired"],
        # the same per kind of held-out world: synthesized ones, and tau2's, unlike any training prompt
        "grpo_minus_sft_reward_by_world": grpo_metrics["heldout"]["reward_margin_paired"].get("by_world", {}),
        "grpo_minus_sft_utility": paired["sft"]["utility"],
        "best_single_expert": best,
        "grpo_minus_best_expert_utility": paired[best]["utility"],
        # each task at its own user's trade-off: the product's promise, against every fixed expert
        "best_single_expert_for_users": best_for_users,
        "grpo_minus_best_expert_user_utility": paired[best_for_users]["user_utility"],
        # the same per question category: where the margin comes from, and how the mix moves it
        "grpo_minus_best_expert_user_utility_by_category": {
            c: {"n": m["n"], **m["user_utility"]} for c, m in paired[best_for_users].get("by_category", {}).items()},
        "beats_every_expert_on_user_utility": all(paired[p]["user_utility"]["above_zero"] for p in experts),
        "preference_cost_ratio": ratio,
        # eval tasks where the policy wrote a call no tool takes (a wasted turn; greedy decoding)
        "malformed_share": {p: policies[p]["malformed_share"] for p in (trained, "sft")
                            if "malformed_share" in policies.get(p, {})},
        "heldout_reward_margin": grpo_metrics["heldout"]["reward_margin"],
        "router_bound_minus_best_expert_utility": headroom["margin"] if headroom else None,
        # the most a policy picking one expert per task by category and user could gain on user utility
        "router_bound_minus_best_expert_user_utility": user_bound.get("margin"),
        # that router chosen without the task it routes: what learning the route from data could expect
        "held_out_router_minus_best_expert_user_utility": user_bound.get("held_out_choice", {}).get("margin"),
        # the eval's preference sweep, cost by cost weight: a curve falls as the weight grows
        "sweep_cost_usd": {f"{w:g}": c for w, c in sweep},
        "sweep_cost_falls": len(costs) > 1 and costs[0] > costs[-1] and all(a >= b for a, b in zip(costs, costs[1:])),
    }


def spread(values: list[float]) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "min": float(min(values)), "max": float(max(values))}


def seeds_table(rows: list[dict[str, Any]]) -> dict[str, Any]:
    holds = {
        "grpo_beats_sft": all(r["grpo_minus_sft_reward"]["above_zero"] for r in rows),
        "grpo_beats_best_expert": all(r["grpo_minus_best_expert_utility"]["above_zero"] for r in rows),
        "grpo_beats_every_expert_on_user_utility": all(r["beats_every_expert_on_user_utility"] for r in rows),
        "preference_ratio_at_least_2x": all(r["preference_cost_ratio"] >= 2.0 for r in rows),
        "sweep_traces_a_curve": all(r["sweep_cost_falls"] for r in rows),
    }
    summary = {
        "grpo_minus_sft_reward": spread([r["grpo_minus_sft_reward"]["mean"] for r in rows]),
        "grpo_minus_sft_utility": spread([r["grpo_minus_sft_utility"]["mean"] for r in rows]),
        "grpo_minus_best_expert_utility": spread([r["grpo_minus_best_expert_utility"]["mean"] for r in rows]),
        "grpo_minus_best_expert_user_utility": spread([r["grpo_minus_best_expert_user_utility"]["mean"] for r in rows]),
        "preference_cost_ratio": spread([r["preference_cost_ratio"] for r in rows]),
    }
    bounds = [r["router_bound_minus_best_expert_utility"] for r in rows]
    if all(b is not None for b in bounds):
        summary["router_bound_minus_best_expert_utility"] = spread([b["mean"] for b in bounds])
    return {"seeds": [r["seed"] for r in rows], "rows": rows, "summary": summary, "holds": holds}


@app.command()
def table(root: Path = typer.Option(Path("runs/seeds"), help="Folder of seed-<N>/ runs."),
          seed0: Optional[Path] = typer.Option(None, help="Take seed 0 from this folder's metrics/ "
                                                          "(the repository's own `dvc repro`: `.`)."),
          out: Path = typer.Option(Path("metrics/seeds.json")),
          debug: bool = typer.Option(False, help="Show the traceback of a failure.")) -> None:
    """The per-seed table of the seed runs under root."""
    configure_logging()
    with reported("seeds table", debug):
        folders = {int(p.name.removeprefix("seed-")): p for p in root.glob("seed-*") if p.is_dir()}
        if seed0 is not None:
            folders[0] = seed0
        rows = []
        for seed, folder in sorted(folders.items()):
            eval_path, grpo_path = (folder / declaration(s).metrics_path for s in ("eval", "grpo"))
            if not eval_path.exists() or not grpo_path.exists():
                log.warning("seed %d: no finished run in %s; left out", seed, folder)
                continue
            rows.append(seed_row(seed, json.loads(eval_path.read_text()), json.loads(grpo_path.read_text())))
        if not rows:
            raise FileNotFoundError(f"{root}: no seed-<N>/ folder with the eval and grpo metrics")
        write_json(out, seeds_table(rows))
    typer.echo(f"{out}: seeds {', '.join(str(r['seed']) for r in rows)}")


if __name__ == "__main__":
    app()
