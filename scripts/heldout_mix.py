"""How the held-out set's category mix moves GRPO's user-utility margin over the best single expert.

    python scripts/heldout_mix.py --run . --run runs/seeds/seed-1 --run runs/seeds/seed-2

The tiny profile fills each held-out template three times (`heldout_tasks_per_template: 3`); a
document question has one filling, so the three-filling set holds fewer document questions and
more reasoning ones than the one-filling set the earlier metrics scored. For each run folder
(`dvc repro`'s own, or a `toolorch.ops.seeds` one) this synthesizes the held-out tasks again with
one filling per template, from the run's own worlds and seed, and reads the eval's per-task rows
(reports/eval/results.jsonl) for GRPO minus the best single expert on user utility:
    all        every held-out task the eval scored (the committed margin)
    one        the tasks of one filling per template (the earlier held-out set)
    added      the rest
    reweighted every task, each category weighed by its share in `one` (a stratified bootstrap:
               scipy.stats.bootstrap resamples each category on its own; 95% BCa interval)
and writes metrics/heldout_mix.json.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from scipy.stats import bootstrap

from toolorch.core.jsonl import read_jsonl, write_json
from toolorch.core.records import Task
from toolorch.core.seeds import stable_seed
from toolorch.eval.metrics import margin, metric_arrays, one_per_task
from toolorch.eval.runner import EvalRow
from toolorch.stages import load_profile, synth_tasks

ROOT = Path(__file__).resolve().parents[1]


def one_filling_ids(run: Path, seed: int) -> set[str]:
    """The held-out task ids of one filling per template, synthesized from the run's worlds."""
    cfg = load_profile(ROOT / "configs" / "tiny.yaml",
                       [f"seed={seed}", "stages.synth_tasks.heldout_tasks_per_template=1"])
    with tempfile.TemporaryDirectory() as tmp:
        synth_tasks.run(cfg, run / "data/envs", Path(tmp) / "tasks", Path(tmp) / "m.json")
        return {t.id for t in read_jsonl(Path(tmp) / "tasks/heldout.jsonl", Task)}


def mix_report(run: Path) -> dict:
    needed = [run / "metrics/eval.json", run / "reports/eval/results.jsonl", run / "data/envs"]
    if missing := [str(p) for p in needed if not p.exists()]:
        raise SystemExit(f"{run}: not a finished run (missing {', '.join(missing)}): run `dvc repro` or "
                         "`python -m toolorch.ops.seeds run` first")
    ev = json.loads((run / "metrics/eval.json").read_text())
    seed, trained = ev["config"]["seed"], ev["verdict"]["trained"]
    experts = [p for p in ev["policies"] if p.startswith("only:")]
    best = max(experts, key=lambda p: ev["policies"][p]["user_utility"])
    a, unit = ev["config"]["utility_a"], ev["config"]["cost_unit_usd"]
    rows = [r for r in read_jsonl(run / "reports/eval/results.jsonl", EvalRow) if r.block == "main"]
    ours, theirs = one_per_task([r for r in rows if r.policy == trained], trained), \
        one_per_task([r for r in rows if r.policy == best], best)
    ids = sorted(ours.keys() & theirs.keys())
    diffs = metric_arrays([ours[t] for t in ids], a, unit)["user_utility"] - \
        metric_arrays([theirs[t] for t in ids], a, unit)["user_utility"]
    cats = np.array([ours[t].category for t in ids])
    one = one_filling_ids(run, seed)
    in_one = np.array([t in one for t in ids])
    unscored = one - set(ids)
    if unscored:
        raise SystemExit(f"{run}: {len(unscored)} one-filling tasks are not in the eval's rows (another profile?)")
    shares = {c: float(np.mean(cats[in_one] == c)) for c in sorted(set(cats[in_one]))}
    groups = [diffs[cats == c] for c in shares]
    resample_seed = stable_seed(seed, "paired", best, "user_utility")  # the eval's own, so `all` is its margin

    def reweighted(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        return sum(w * s.mean(axis=axis) for w, s in zip(shares.values(), samples))

    ci = bootstrap(groups, reweighted, n_resamples=4000, method="BCa", vectorized=True,
                   random_state=np.random.default_rng(resample_seed))
    return {
        "seed": seed, "best_single_expert_for_users": best,
        "all": {"n": len(ids), **margin(diffs, 1000, resample_seed)},
        "one": {"n": int(in_one.sum()), **margin(diffs[in_one], 1000, resample_seed)},
        "added": {"n": int((~in_one).sum()), **margin(diffs[~in_one], 1000, resample_seed)},
        "reweighted": {"mean": float(reweighted(*groups)),
                       "ci95": [float(ci.confidence_interval.low), float(ci.confidence_interval.high)],
                       "category_share": shares},
        "category_share_all": {c: float(np.mean(cats == c)) for c in shares},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, action="append", required=True, help="a run folder (repeatable)")
    parser.add_argument("--out", type=Path, default=ROOT / "metrics/heldout_mix.json")
    args = parser.parse_args()
    reports = [mix_report(run) for run in args.run]
    write_json(args.out, {"seeds": reports})
    for r in reports:
        cells = "; ".join(f"{k} {r[k]['mean']:+.3f} [{r[k]['ci95'][0]:+.3f}, {r[k]['ci95'][1]:+.3f}]"
                          for k in ("all", "one", "added", "reweighted"))
        print(f"seed {r['seed']} (vs {r['best_single_expert_for_users']}): {cells}")


if __name__ == "__main__":
    main()
