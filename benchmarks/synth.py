"""Throughput of the procedural synthesizer: tasks/s and verified tasks/s vs number of domains.

    python benchmarks/synth.py reports/bench_synth.json --config configs/tiny.yaml

For 1, 2, 4 and 8 domains: build the environments, synthesize tasks (answers computed by
executing gold calls, sandbox included) and re-verify every task, timing each phase.
"tasks/s" counts synthesis only; "verified tasks/s" counts synthesis plus re-verification.
Prints a table and writes the rows as JSON to the given path.
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import typer

from toolorch.core.config import load_config
from toolorch.runtime.gold import verify_tasks
from toolorch.synth.domains import DOMAIN_NAMES
from toolorch.synth.envs import ProceduralGenerator
from toolorch.synth.tasks import synthesize_tasks


def measure(n_domains: int, cfg, rows: tuple[int, int], per_template: int, workers: int) -> dict[str, Any]:
    domains = list(DOMAIN_NAMES[:n_domains])
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        t0 = time.perf_counter()
        gen = ProceduralGenerator(rows_per_table=rows)
        envs = [gen.generate(d, cfg.seed, Path(tmp)) for d in domains]
        t1 = time.perf_counter()
        tasks, _, _ = synthesize_tasks(envs, cfg.catalog(), per_template, cfg.seed, workers)
        t2 = time.perf_counter()
        failures = verify_tasks(envs, tasks, cfg.catalog(), workers)
        t3 = time.perf_counter()
    if failures:
        raise RuntimeError(f"{len(failures)} tasks failed to re-verify, e.g. {failures[0]}")
    return {
        "domains": n_domains, "tasks": len(tasks), "env_s": round(t1 - t0, 3), "synth_s": round(t2 - t1, 3),
        "verify_s": round(t3 - t2, 3), "tasks_per_s": round(len(tasks) / (t2 - t1), 2),
        "verified_tasks_per_s": round(len(tasks) / (t3 - t1), 2),
        "end_to_end_tasks_per_s": round(len(tasks) / (t3 - t0), 2),
    }


def main(
    out: Path = typer.Argument(..., help="Where to write the JSON results."),
    config: Optional[Path] = typer.Option(None, help="Profile YAML (tools, sandbox timeout, experts)."),
    domains: str = typer.Option("1,2,4,8", help="Domain counts to measure."),
    rows_min: int = typer.Option(50), rows_max: int = typer.Option(120),
    per_template: int = typer.Option(1, help="Tasks per template."),
    workers: int = typer.Option(2, help="Threads for synthesis and verification."),
) -> None:
    cfg = load_config(config)
    counts = [int(c) for c in domains.split(",")]
    rows = [measure(n, cfg, (rows_min, rows_max), per_template, workers) for n in counts]
    header = f"{'domains':>7} {'tasks':>6} {'env s':>7} {'synth s':>8} {'verify s':>9} {'tasks/s':>8} {'verified/s':>10}"
    print(header)
    for r in rows:
        print(f"{r['domains']:>7} {r['tasks']:>6} {r['env_s']:>7.2f} {r['synth_s']:>8.2f} {r['verify_s']:>9.2f} "
              f"{r['tasks_per_s']:>8.1f} {r['verified_tasks_per_s']:>10.1f}")
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "workers": workers}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    typer.run(main)
