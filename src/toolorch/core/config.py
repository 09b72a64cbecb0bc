"""Typed configuration: one YAML file per profile (configs/), `key=value` overrides.

    cfg = load_config("configs/tiny.yaml", ["passk.k=4", "seed=1"])
    save_config(cfg, out_dir)   # config.resolved.yaml beside every output

Stage sections live here so that every profile file is checked against one schema.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field

from toolorch.core.catalog import (
    DEFAULT_PRICES,
    Catalog,
    EpisodeLimits,
    ExpertConfig,
    Price,
    Section,
    ToolSettings,
    build_catalog,
)
from toolorch.core.records import Preference


class EpisodeConfig(Section):
    """`episode` in a profile: the limits (`limits()`), the tool settings (`tools()`) and the
    orchestrator's price row. Defaults live here only."""

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

    def limits(self) -> EpisodeLimits:
        return EpisodeLimits(**{k: getattr(self, k) for k in EpisodeLimits.model_fields})

    def tools(self) -> ToolSettings:
        return ToolSettings(**{k: getattr(self, k) for k in ToolSettings.model_fields})


class Config(Section):
    profile: str = "tiny"
    seed: int = 0
    data_dir: str = "data"
    episode: EpisodeConfig = EpisodeConfig()
    prices: dict[str, Price] = DEFAULT_PRICES
    experts: list[ExpertConfig] = []
    preference: Preference = Preference()
    stages: dict[str, dict[str, Any]] = {}  # per-stage settings, validated by each stage

    def catalog(self) -> Catalog:
        """The price catalog this profile declares (experts with their prices, tool settings)."""
        return build_catalog(self.prices, self.experts, self.episode.policy_price, self.episode.tools())

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
