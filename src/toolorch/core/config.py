"""Typed configuration: one YAML file per profile (configs/), `key=value` overrides.

    cfg = load_config("configs/tiny.yaml", ["passk.k=4", "seed=1"])
    save_config(cfg, out_dir)   # config.resolved.yaml beside every output

Stage sections live here so that every profile file is checked against one schema.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from toolorch.core.records import Preference


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Price(Section):
    """Dollars per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.input + tokens_out * self.output) / 1e6


# ToolOrchestra's published table ($ per M input/output tokens).
DEFAULT_PRICES: dict[str, Price] = {
    "frontier": Price(input=1.25, output=10.0),
    "mini": Price(input=0.25, output=2.0),
    "coder-32b": Price(input=0.8, output=0.8),
    "llama-70b": Price(input=0.9, output=0.9),
    "qwen-32b": Price(input=0.8, output=0.8),
    "math-72b": Price(input=0.9, output=0.9),
    "math-7b": Price(input=0.2, output=0.2),
    "orchestrator": Price(input=0.2, output=0.2),
}


class SimulatedProfile(Section):
    """Declared behaviour of a simulated expert (offline profile; labelled simulated in reports)."""

    accuracy: dict[str, float] = {}  # by task category; missing categories use `default_accuracy`
    default_accuracy: float = Field(0.5, ge=0, le=1)
    difficulty_decay: float = Field(0.05, ge=0, le=1)  # accuracy lost per hop beyond the first
    tokens_out_mean: int = Field(200, ge=1)
    latency_s_mean: float = Field(5.0, ge=0)


class ExpertConfig(Section):
    name: str
    backend: Literal["simulated", "openai", "hf", "replay"] = "simulated"
    price: str  # key into `prices`
    description: str = ""
    model: str | None = None  # served model name (openai) or HF dir (hf)
    base_url: str | None = None  # openai backend
    api_key_env: str | None = None  # name of the env var holding the key; never the key
    replay_file: str | None = None
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(3, ge=0, le=10)
    max_tokens: int = Field(512, ge=1)
    simulated: SimulatedProfile = SimulatedProfile()


class EpisodeConfig(Section):
    max_turns: int = Field(8, ge=1)
    max_tokens: int = Field(2048, ge=1)  # the policy's output tokens over the episode
    budget_usd: float = Field(1.0, gt=0)
    policy_price: str = "orchestrator"
    policy_tokens_per_s: float = Field(50.0, gt=0)  # models the policy's own latency
    max_observation_chars: int = Field(2000, ge=100)
    code_timeout_s: float = Field(5.0, gt=0)
    answer_tool: bool = True  # offer `answer(model=...)`: an expert's reply ends the episode
    # Describe db tools in the prompt (their names and arguments are always listed). Off in the
    # tiny profile: a random-init model cannot read, and prompt tokens are its training cost.
    describe_db_tools: bool = True


class Config(Section):
    profile: str = "tiny"
    seed: int = 0
    data_dir: str = "data"
    episode: EpisodeConfig = EpisodeConfig()
    prices: dict[str, Price] = DEFAULT_PRICES
    experts: list[ExpertConfig] = []
    preference: Preference = Preference()
    stages: dict[str, dict[str, Any]] = {}  # per-stage settings, validated by each stage

    def price(self, key: str) -> Price:
        if key not in self.prices:
            raise KeyError(f"no price '{key}' in config.prices (have: {sorted(self.prices)})")
        return self.prices[key]

    def expert(self, name: str) -> ExpertConfig:
        for e in self.experts:
            if e.name == name:
                return e
        raise KeyError(f"no expert '{name}' in config.experts")


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ValueError(f"override {dotted}: '{k}' is not a section")
    node[keys[-1]] = value


def apply_overrides(tree: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override '{item}' must look like key=value")
        key, raw = item.split("=", 1)
        _set_path(tree, key.strip(), yaml.safe_load(raw))
    return tree


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `top` over `base`: sections merge, scalars and lists replace."""
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults, then the profile YAML, then `key=value` overrides, each over the last."""
    tree = Config().model_dump(mode="json")
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"config file {path} does not exist")
        tree = _merge(tree, yaml.safe_load(path.read_text()) or {})
    return Config.model_validate(apply_overrides(tree, overrides or []))


def save_config(cfg: BaseModel, out_dir: str | Path, name: str = "config.resolved.yaml") -> Path:
    out = Path(out_dir) / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return out
