"""toolorch eval --config configs/tiny.yaml

Evaluate policies on held-out tasks: accuracy, cost, latency, utility, Pareto plot, report.

    python -m toolorch.stages.eval --config configs/tiny.yaml                 # CPU, the dvc stage
    toolorch eval --config configs/tiny.yaml --checkpoint path/to/hf_model    # one checkpoint, ad hoc

Writes results.jsonl, report.md, pareto.png and config.resolved.yaml in its output folder
(`--out-dir`) and its metrics (`--metrics-path`). results.jsonl holds one row per (block,
policy, task); every number in the metrics and report.md is computed from it by
`toolorch.eval.metrics.summarize`.
Blocks: `main` (every policy), `pareto` (the trained policy under a swept cost weight),
`unseen_pricing` and `unseen_tool` (shifted configs). Settings: `stages.eval` (EvalSettings).
A deployed orchestrator is scored like a checkpoint by naming its endpoint as a policy
(eval.lineup), e.g. `--set 'stages.eval.policies=[grpo, "openai:http://127.0.0.1:8000/v1#orchestrator"]'`;
a deployed gateway (`toolorch serve ... --envs-dir data/envs`) likewise as `gateway:http://127.0.0.1:8000/v1`.
"""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from toolorch.core.catalog import ExpertConfig
from toolorch.core.config import Config
from toolorch.core.jsonl import read_jsonl, write_json, write_jsonl
from toolorch.core.records import Task
from toolorch.core.splits import stratified_subsample
from toolorch.eval.adapters.suite import BenchmarkSettings, run_benchmarks
from toolorch.eval.baselines import experts_by_price
from toolorch.eval.heldout import heldout_sample
from toolorch.eval.lineup import CHECKPOINTS, SCRIPTED, Lineup, expand
from toolorch.eval.metrics import is_baseline, summarize
from toolorch.eval.oracle import oracle_rows
from toolorch.eval.report import write_report
from toolorch.eval.runner import Block, EvalRow, Seen, run_policy
from toolorch.runtime.env import load_envs
from toolorch.stages.io import finish
from toolorch.stages.shards import PART_META, PART_RECORDS, Shard, ShardError, read_parts, write_part
from toolorch.stages.stage import Input, Stage

LOG = logging.getLogger("toolorch.eval")


def known_policies(names: Optional[list[str]]) -> Optional[list[str]]:
    """Policy names of a kind toolorch.eval.lineup knows (whether `only:<expert>` names an
    expert of the profile is checked when the lineup is expanded)."""
    for name in names or []:
        known = (*SCRIPTED, *CHECKPOINTS, "prompted", "oracle")
        if not name.startswith(("only:", "hf:", "openai:", "gateway:")) and name not in known:
            raise ValueError(f"unknown policy '{name}' (grpo | sft | hf:<dir> | openai:<url>#<model> | "
                             "gateway:<url>#<model> | "
                             "only:<expert> | only:* | "
                             "random | cascade | prompted | oracle)")
    return names


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GeneralisationSettings(Settings):
    policies: Optional[list[str]] = None  # None: the main policies except `prompted`
    unseen_pricing: bool = True
    cheapest_price_factor: float = Field(4.0, gt=0)  # the cheapest expert's price is multiplied by this...
    dearest_price_factor: float = Field(0.25, gt=0)  # ...and the dearest's by this
    unseen_tool: bool = True
    withhold_experts: Optional[list[str]] = None  # None: withhold the dearest expert
    add_experts: list[ExpertConfig] = []  # experts no training run has seen

    policies_known = field_validator("policies")(known_policies)


class EvalSettings(Settings):
    policies: list[str] = ["grpo", "sft", "only:*", "random", "cascade", "prompted", "oracle"]
    utility_a: float = Field(0.5, ge=0, le=1)
    cost_unit_usd: float = Field(0.01, gt=0)  # utility counts cost in these units (cents)
    bootstrap_samples: int = Field(1000, ge=10, le=100_000)
    max_tasks: Optional[int] = Field(None, ge=1)  # main block; category shares kept
    aux_max_tasks: Optional[int] = Field(60, ge=1)  # pareto and generalisation blocks
    sweep_policies: list[str] = ["grpo"]
    cost_weights: list[float] = [0.0, 0.25, 0.5, 0.75, 1.0]  # the preference's cost share
    max_new_tokens: int = Field(48, ge=1)  # per turn: a tool call or an answer fits; bounds untrained babble
    random_max_calls: int = Field(3, ge=1)
    only_expert_search: bool = False  # simulated experts ignore context: retrieval would only add cost
    prompted_base: Optional[str] = None  # None: a random-init tiny model of the default spec
    generalisation: GeneralisationSettings = GeneralisationSettings()
    benchmarks: Optional[BenchmarkSettings] = None  # HLE / FRAMES / tau2-bench adapters; None: none run
    workers: int = Field(4, ge=1)  # tasks run at once per policy (eval.runner); rows are the same for any number

    policies_known = field_validator("policies", "sweep_policies")(known_policies)


def repriced(cfg: Config, cheap_factor: float, dear_factor: float) -> tuple[Config, str] | None:
    order = experts_by_price(cfg.catalog())
    if len(order) < 2 or cfg.expert(order[0]).price == cfg.expert(order[-1]).price:
        return None  # nothing to reorder
    cheap, dear = cfg.expert(order[0]).price, cfg.expert(order[-1]).price
    prices = dict(cfg.prices)
    parts = []
    for key, factor in ((cheap, cheap_factor), (dear, dear_factor)):
        old = cfg.price(key)
        prices[key] = old.model_copy(update={"input": old.input * factor, "output": old.output * factor})
        parts.append(f"{key} x{factor:g} (${old.input:g}/${old.output:g} -> "
                     f"${prices[key].input:g}/${prices[key].output:g} per M tokens)")
    text = "Prices changed in config and in the prompt: " + "; ".join(parts) + "."
    return cfg.model_copy(update={"prices": prices}), text


def retooled(cfg: Config, gen: GeneralisationSettings) -> tuple[Config, str] | None:
    names = [e.name for e in cfg.experts]
    withhold = gen.withhold_experts if gen.withhold_experts is not None else experts_by_price(cfg.catalog())[-1:]
    unknown = [n for n in withhold if n not in names]
    if unknown:
        raise ValueError(f"stages.eval.generalisation.withhold_experts: no expert(s) {unknown} (have {names})")
    experts = [e for e in cfg.experts if e.name not in withhold] + list(gen.add_experts)
    if not withhold and not gen.add_experts:
        return None
    for e in gen.add_experts:
        cfg.price(e.price)  # a clear KeyError now rather than mid-episode
    text = (f"Expert list changed: withheld {withhold or 'none'}, "
            f"added {[e.name for e in gen.add_experts] or 'none'}.")
    return cfg.model_copy(update={"experts": experts}), text


class Evaluation:
    """Runs blocks of (policy x task) episodes and collects their rows."""

    def __init__(self, cfg: Config, settings: EvalSettings, tasks: list[Task], lineup: Lineup, seen: Seen,
                 envs_dir: Path, shard: Shard | None = None):
        self.cfg, self.settings, self.lineup, self.seen = cfg, settings, lineup, seen
        self.tasks = tasks
        self.aux_tasks = stratified_subsample(tasks, settings.aux_max_tasks, cfg.seed)
        self.envs = load_envs(envs_dir, {t.env for t in tasks})
        self.rows: list[EvalRow] = []
        self.wall_s: dict[str, float] = {}  # run metadata (block/policy -> seconds), not a result
        self.shard = shard or Shard(0, 1)  # episodes run only on this shard's tasks
        self.positions: list[tuple[int, int]] = []  # per row: (run, task's place in its block): one process's order
        self.runs = 0

    def _timed_run(self, key: str, tasks: list[Task], *args: Any, **kwargs: Any) -> list[EvalRow]:
        start = time.monotonic()
        rows = run_policy(self._placed(tasks), *args, **kwargs, workers=self.settings.workers)
        seconds = time.monotonic() - start
        self.wall_s[key] = self.wall_s.get(key, 0.0) + seconds
        LOG.info("eval %s: %d tasks in %.1f s, accuracy %.3f", key, len(rows), seconds,
                 sum(r.correct for r in rows) / max(1, len(rows)))
        return rows

    def _placed(self, tasks: list[Task]) -> list[Task]:
        """This shard's part of `tasks`, each row's place in one process's order recorded."""
        positions = self.shard.positions(tasks, lambda t: t.id)
        self.runs += 1
        self.positions += [(self.runs, i) for i in positions]
        return [tasks[i] for i in positions]

    def block(self, name: str, cfg: Config, names: list[str], tasks: list[Task]) -> list[str]:
        """Run `names` (oracle last) in one block; returns the policies that ran."""
        block, ran, rows = Block.build(name, cfg), [], []
        for policy in names:
            make = None if policy == "oracle" else self.lineup.maker(policy, block.runtime.catalog, self.tasks, self.envs)
            if make is not None:
                rows += self._timed_run(f"{name}/{policy}", tasks, self.envs, block, self.lineup.policy_name(policy),
                                        make, self.seen)
                ran.append(self.lineup.policy_name(policy))
        if "oracle" in names:
            start = time.monotonic()
            rows += oracle_rows(self._placed(tasks), self.envs, block, rows, self.seen)
            self.wall_s[f"{name}/oracle"] = time.monotonic() - start
            ran.append("oracle")
        self.rows += rows
        return ran

    def sweep(self, policies: list[str]) -> None:
        for policy in policies:
            block = Block.build("pareto", self.cfg)
            make = self.lineup.maker(policy, block.runtime.catalog, self.tasks, self.envs)
            if make is None:
                continue
            for w in self.settings.cost_weights:
                self.rows += self._timed_run(f"pareto/{policy}", self.aux_tasks, self.envs,
                                             block, self.lineup.policy_name(policy),
                                             make, self.seen, cost_weight=w)


def run_blocks(ev: Evaluation, names: list[str], sweep: list[str]) -> dict[str, str]:
    """main, pareto sweep and generalisation blocks; returns each shifted block's description."""
    gen = ev.settings.generalisation
    ran = ev.block("main", ev.cfg, names, ev.tasks)
    ev.sweep([p for p in sweep if ev.lineup.policy_name(p) in ran])
    shifted = {}
    if gen.unseen_pricing and (r := repriced(ev.cfg, gen.cheapest_price_factor, gen.dearest_price_factor)):
        shifted["unseen_pricing"] = r
    if gen.unseen_tool and (r := retooled(ev.cfg, gen)):
        shifted["unseen_tool"] = r
    gen_names = expand(gen.policies, ev.cfg.catalog()) if gen.policies is not None else [n for n in names if n != "prompted"]
    for block_name, (block_cfg, _) in shifted.items():
        ev.block(block_name, block_cfg, gen_names, ev.aux_tasks)
    return {k: text for k, (_, text) in shifted.items()}


def run(cfg: Config, tasks_path: Path, envs_dir: Path, models_dir: Path, out_dir: Path, metrics_path: Path,
        checkpoint: Path | None = None, train_tasks_path: Path | None = None,
        shard: Shard | None = None) -> dict[str, Any]:
    """Evaluate; `checkpoint` evaluates that one HF folder instead of the configured lineup.
    `train_tasks_path` (default: train.jsonl beside the tasks) tells seen from unseen worlds.
    With `shard`, episodes run on that shard's tasks only, written as a part for `merge`
    (below)."""
    settings: EvalSettings = cfg.stages.eval
    tasks = heldout_sample(tasks_path, settings.max_tasks, cfg.seed)
    train_path = Path(train_tasks_path or Path(tasks_path).parent / "train.jsonl")
    seen = Seen.from_tasks(read_jsonl(train_path, Task) if train_path.exists() and train_path != Path(tasks_path)
                           else None)
    out_dir = Path(out_dir)
    lineup = Lineup(models_dir, out_dir, cfg.seed, settings.max_new_tokens, settings.random_max_calls,
                    settings.only_expert_search, settings.prompted_base)
    names = [f"hf:{checkpoint}"] if checkpoint else expand(settings.policies, cfg.catalog())
    sweep = names[:1] if checkpoint else settings.sweep_policies
    ev = Evaluation(cfg, settings, tasks, lineup, seen, envs_dir, shard)
    descriptions = run_blocks(ev, names, sweep)
    context = {"tasks": str(tasks_path), "n_tasks": len(tasks), "n_aux_tasks": len(ev.aux_tasks),
               "seen_from": str(train_path) if seen.envs is not None else None, "block_descriptions": descriptions,
               "notes": lineup.notes}
    if settings.benchmarks is not None and ev.shard.index == 0:  # once, beside the first shard's part
        context["benchmarks"] = run_benchmarks(cfg, settings.benchmarks, lineup, names, out_dir)
    if shard is not None:
        return write_shard(ev, context, out_dir, metrics_path)
    return write_outputs(cfg, settings, ev.rows, context, ev.wall_s, out_dir, metrics_path)


def write_outputs(cfg: Config, settings: EvalSettings, rows: list[EvalRow], context: dict[str, Any],
                  wall_s: dict[str, float], out_dir: Path, metrics_path: Path) -> dict[str, Any]:
    """results.jsonl, the metrics and report.md from every row of the run (what the merge calls too)."""
    write_jsonl(out_dir / "results.jsonl", rows)
    metrics = summarize(rows, settings.utility_a, settings.cost_unit_usd, settings.bootstrap_samples, cfg.seed)
    simulated = sorted({e.name for e in cfg.experts if e.backend == "simulated"}
                       | {e.name for e in settings.generalisation.add_experts if e.backend == "simulated"})
    metrics.update(
        config={**settings.model_dump(mode="json", exclude={"benchmarks"}), "seed": cfg.seed, "profile": cfg.profile,
                "tasks": context["tasks"], "n_tasks": context["n_tasks"], "n_aux_tasks": context["n_aux_tasks"],
                "seen_from": context["seen_from"],
                "simulated_expert_names": simulated, "block_descriptions": context["block_descriptions"]},
        simulated_experts=bool(simulated),
        notes=context["notes"] + _trained_note(metrics["policies"]),
        wall_s={k: round(v, 2) for k, v in wall_s.items()},
    )
    if "benchmarks" in context:
        metrics["benchmarks"] = context["benchmarks"]
    write_report(metrics, out_dir)
    return finish(cfg, out_dir, metrics, metrics_path)



def write_shard(ev: Evaluation, context: dict[str, Any], out_dir: Path, metrics_path: Path) -> dict[str, Any]:
    if len(ev.positions) != len(ev.rows):
        raise ShardError(f"eval: {len(ev.rows)} rows but {len(ev.positions)} places recorded")
    records = ((list(place), row.model_dump(mode="json")) for place, row in zip(ev.positions, ev.rows))
    meta = write_part(Path(out_dir), ev.shard, "eval", records, total=ev.runs, seconds=sum(ev.wall_s.values()),
                      context=context, wall_s=ev.wall_s)
    write_json(metrics_path, {k: v for k, v in meta.items() if k not in ("context", "wall_s")})
    return meta


def merge(cfg: Config, part_dirs: list[Path], out_dir: Path, metrics_path: Path) -> dict[str, Any]:
    """One run's eval outputs from the shards' parts.

        eval.run(cfg, ..., shard=Shard(1, 3))    # rows of the tasks shard 1 owns, in every block -> part
        merge(cfg, [part0, part1, part2], out_dir, metrics_path)   # results.jsonl, report, metrics

    Each row carries its place in one process's order: (the run_policy call it came from, the
    task's place in that call's task list). Every shard makes the same calls in the same order (the
    lineup sees every task, whatever the shard), so sorting by that place gives one process's
    results.jsonl, and the metrics, bootstrap and report computed from it, byte for byte. Wall times
    per block/policy are the slowest shard's (the shards run side by side). Benchmarks run once,
    in shard 0, whose files the merge copies.
    """
    records, metas = read_parts(part_dirs, "eval")
    first = metas[0]
    # notes name each shard's own scratch folder; benchmarks ran in shard 0 only
    contexts = [{k: v for k, v in m["context"].items() if k not in ("notes", "benchmarks")} for m in metas]
    if any(c != contexts[0] for c in contexts):
        raise ShardError("eval: the shards ran with different tasks, lineups or blocks")
    wall_s: dict[str, float] = {}
    for m in metas:
        for key, seconds in m["wall_s"].items():
            wall_s[key] = max(wall_s.get(key, 0.0), seconds)
    out_dir = Path(out_dir)
    _copy_extras(Path(first["dir"]), out_dir)
    rows = [EvalRow.model_validate(r) for r in records]
    return write_outputs(cfg, cfg.stages.eval, rows, first["context"], wall_s, out_dir, metrics_path)


def _copy_extras(part_dir: Path, out_dir: Path) -> None:
    """What shard 0 wrote besides its part (the benchmarks' files)."""
    for path in part_dir.iterdir():
        if path.name in (PART_META, PART_RECORDS):
            continue
        target = out_dir / path.name
        if path.is_dir():
            shutil.copytree(path, target, dirs_exist_ok=True)
        else:
            out_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def _trained_note(policies: dict[str, Any]) -> list[str]:
    if any(not is_baseline(p) for p in policies):
        return []
    return ["no trained checkpoint ran: only baselines are compared"]


def summary(m: dict[str, Any]) -> str:
    lines = [m["verdict"]["sentence"]]
    for name, s in m["policies"].items():
        lines.append(f"{name:>20}  n={s['n']:<4} acc={s['accuracy']:.3f}  cost=${s['cost_usd']:.5f}  "
                     f"latency={s['latency_s']:.1f}s  u={s['utility']:.3f}")
    return "\n".join(lines)


STAGE = Stage(
    "eval", EvalSettings, run, summary,
    inputs={"tasks_path": Input("synth_tasks", "heldout.jsonl"), "envs_dir": Input("synth_envs"),
            "models_dir": Input(("sft", "grpo"))},
    outputs={"out_dir": "reports/eval"},
    reads=("episode", "experts"),
    options={"checkpoint": "Evaluate only this HF checkpoint folder (instead of the configured policies)."},
    merge=merge,
)

if __name__ == "__main__":
    from toolorch.stages.command import main

    main("eval")
