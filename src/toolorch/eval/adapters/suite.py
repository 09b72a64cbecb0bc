"""The eval stage's `benchmarks` block: HLE / FRAMES files and tau2-bench, run for a lineup of policies.

    stages:
      eval:
        benchmarks:
          policies: [grpo, "only:frontier"]    # default: the main block's policies except the oracle
          hle: data/bench/hle.jsonl            # optional
          frames: data/bench/frames.jsonl      # optional
          documents: data/bench/wiki.jsonl     # optional corpus for `search` in the open world
          judge: {base_url: http://127.0.0.1:8001/v1, model: judge}   # absent: exact match
          tau2: {domain: airline, split: test, max_steps: 50}          # needs user_simulator
          user_simulator: {base_url: http://127.0.0.1:8002/v1, model: user}

Writes `bench_qa.jsonl` and `bench_tau2.jsonl` (one row per policy x task) beside the
report; every number of the returned block is computed from them (`summarize_qa`,
`summarize_tau2`). Without the block the eval stage is unchanged.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from toolorch.core.config import Config
from toolorch.core.jsonl import write_jsonl
from toolorch.eval.adapters.endpoint import Endpoint
from toolorch.eval.adapters.judge import build_judge
from toolorch.eval.adapters.qa_bench import (
    QACase,
    QAFile,
    QARow,
    build_open_env,
    load_frames,
    load_hle,
    run_qa,
    summarize_qa,
)
from toolorch.eval.adapters.tau2_bench import (
    Tau2Result,
    llm_users,
    load_cases,
    run_tau2,
    summarize_tau2,
)
from toolorch.eval.lineup import Lineup
from toolorch.eval.runner import Block


class Tau2Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    domain: Literal["airline"] = "airline"
    split: Literal["test", "train", "all"] = "test"
    task_ids: Optional[list[str]] = None  # tau2 ids; overrides `split`
    max_tasks: Optional[int] = Field(None, ge=1)
    max_steps: int = Field(50, ge=1)  # agent steps (tool calls and messages) per conversation
    policy_in_prompt: bool = True  # tau2 gives the agent the whole domain policy


class BenchmarkSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policies: Optional[list[str]] = None
    hle: Optional[str] = None
    hle_text_only: bool = True
    frames: Optional[str] = None
    documents: Optional[str] = None
    max_tasks: Optional[int] = Field(None, ge=1)  # per QA file, first rows first
    judge: Optional[Endpoint] = None
    tau2: Optional[Tau2Settings] = None
    user_simulator: Optional[Endpoint] = None

    @model_validator(mode="after")
    def _tau2_needs_a_user(self) -> BenchmarkSettings:
        if self.tau2 is not None and self.user_simulator is None:
            raise ValueError("benchmarks.tau2 needs benchmarks.user_simulator (an OpenAI-compatible endpoint)")
        return self


def _qa_files(s: BenchmarkSettings) -> list[QAFile]:
    files = []
    if s.hle:
        files.append(load_hle(Path(s.hle), s.hle_text_only, s.max_tasks))
    if s.frames:
        files.append(load_frames(Path(s.frames), s.max_tasks))
    return files


def run_benchmarks(cfg: Config, settings: BenchmarkSettings, lineup: Lineup, names: list[str],
                   out_dir: Path) -> dict[str, Any]:
    """Runs every configured benchmark for each policy; returns eval.json's `benchmarks` block."""
    out_dir = Path(out_dir)
    policies = settings.policies if settings.policies is not None else [n for n in names if n != "oracle"]
    block = Block.build("benchmarks", cfg)
    envs_dir = out_dir / "bench_envs"
    result: dict[str, Any] = {"config": {**settings.model_dump(mode="json"), "policies": policies}, "notes": []}
    files = _qa_files(settings)
    if files:
        cases: list[QACase] = [c for f in files for c in f.cases]
        env = build_open_env(envs_dir / "open", Path(settings.documents) if settings.documents else None)
        judge = build_judge(settings.judge)
        rows: list[QARow] = []
        for name in policies:
            make = lineup.maker(name, block.runtime.catalog, [c.task for c in cases], {env.name: env})
            if make is not None:
                rows += run_qa(cases, env, make, lineup.policy_name(name), block.runtime, judge)
        write_jsonl(out_dir / "bench_qa.jsonl", rows)
        result.update(summarize_qa(rows))
        result["judge"] = judge.name
        result["skipped"] = {f.path.name: f.skipped for f in files if f.skipped}
    if settings.tau2 is not None:
        t = settings.tau2
        env, tau_cases, unconverted = load_cases(t.domain, envs_dir, t.split, t.task_ids, t.max_tasks)
        assert settings.user_simulator is not None  # checked by the settings
        tau_rows: list[Tau2Result] = []
        for name in policies:
            make = lineup.maker(name, block.runtime.catalog, [c.task for c in tau_cases], {env.name: env})
            if make is not None:
                tau_rows += run_tau2(tau_cases, env, make, lineup.policy_name(name), block.runtime,
                                     llm_users(settings.user_simulator), t.max_steps, t.policy_in_prompt)
        write_jsonl(out_dir / "bench_tau2.jsonl", tau_rows)
        result[f"tau2_{t.domain}"] = summarize_tau2(tau_rows)
        if unconverted:
            result["notes"].append(f"tau2 {t.domain}: {len(unconverted)} task(s) not converted: {unconverted}")
    if any(e.backend == "simulated" for e in cfg.experts):
        result["notes"].append("experts are simulated: benchmark numbers check the plumbing, not real models")
    return result
