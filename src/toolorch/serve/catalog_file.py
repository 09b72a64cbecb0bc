"""The serving catalog file: experts with prices and endpoints, episode limits, and the tools a team
plugs in. One strict schema; a mistake is an error naming the file, line and field.

    served = load_catalog_file(Path("catalog.yaml"))      # CatalogError on bad input
    served = from_profile(load_config("configs/tiny.yaml")) # a workstation: the profile's catalog

    # catalog.yaml (paths are relative to the file)
    prices: {frontier: {input: 1.25, output: 10.0}}        # optional: rows beside the built-in table
    orchestrator: orchestrator                              # its own price: a price row, or {input, output}
    experts:
      - {name: mini, base_url: "http://experts:9100/v1", model: mini, price: mini,
         api_key_env: MINI_API_KEY, latency_s: 6, timeout_s: 30, max_retries: 2, max_tokens: 512}
    episode: {max_turns: 8, budget_usd: 0.5}                # limits (a request may lower them)
    tools:
      max_observation_chars: 2000                           # how tools are shown (core.catalog.ToolSettings)
      code: true                                            # the sandboxed Python tool
      world: worlds/retail                                  # SQL tools (+ its documents) of a world folder
      documents: docs/                                      # or: search over a folder of .txt/.md/.jsonl
      http: [{name: weather, url: "http://fn:8000/weather", description: ..., parameters: {...},
              cost_usd: 0.0001, latency_s: 0.3, timeout_s: 5}]
      mcp: [{name: files, command: ["python", "server.py"]}, {name: web, url: "http://mcp:8000/mcp"}]
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from toolorch.core.catalog import (
    DEFAULT_PRICES,
    Catalog,
    EpisodeLimits,
    ExpertConfig,
    Price,
    SimulatedProfile,
    ToolSettings,
    build_catalog,
)
from toolorch.core.config import Config, EpisodeConfig


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExpertEntry(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    backend: Literal["openai", "simulated"] = "openai"
    base_url: str | None = None
    model: str | None = None  # the served model name (default: `name`)
    api_key_env: str | None = None  # the env var holding the key; never the key
    price: str | Price
    description: str = ""
    latency_s: float | None = Field(None, ge=0)  # the latency prior the orchestrator's prompt states
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)
    max_tokens: int = Field(512, ge=1)
    simulated: SimulatedProfile = SimulatedProfile()

    @model_validator(mode="after")
    def endpoint(self) -> ExpertEntry:
        if self.backend == "openai" and not (self.base_url or "").startswith(("http://", "https://")):
            raise ValueError("base_url: an OpenAI-compatible expert needs an http(s) base_url")
        return self


class HttpToolEntry(Strict):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    url: str = Field(pattern=r"^https?://")
    description: str
    parameters: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
    cost_usd: float = Field(0.0, ge=0)
    latency_s: float = Field(0.0, ge=0)
    timeout_s: float = Field(10.0, gt=0)
    max_retries: int = Field(1, ge=0, le=5)
    headers_env: dict[str, str] = {}  # header -> env var holding its value (e.g. Authorization)

    @model_validator(mode="after")
    def object_schema(self) -> HttpToolEntry:
        if self.parameters.get("type") != "object":
            raise ValueError("parameters: must be a JSON schema with type: object")
        return self


class McpEntry(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    command: list[str] | None = None  # stdio: the server's command line
    env: dict[str, str] = {}  # stdio: variables for the server -> env var holding each value
    url: str | None = Field(None, pattern=r"^https?://")  # streamable HTTP
    prefix: str = ""  # prepended to its tool names (to tell two servers' tools apart)
    cost_usd: float = Field(0.0, ge=0)  # per call
    latency_s: float = Field(0.0, ge=0)
    timeout_s: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def one_transport(self) -> McpEntry:
        if (self.command is None) == (self.url is None):
            raise ValueError("give exactly one of command (stdio) or url (streamable HTTP)")
        return self


_DEFAULTS = EpisodeConfig()


class EpisodeEntry(Strict):
    """What ends a request's orchestration (each request may lower them: max_turns, max_cost_usd)."""

    max_turns: int = Field(_DEFAULTS.max_turns, ge=1)
    max_tokens: int = Field(_DEFAULTS.max_tokens, ge=1)  # the orchestrator's output tokens over a task
    budget_usd: float = Field(_DEFAULTS.budget_usd, gt=0)  # a request's default max_cost_usd
    policy_tokens_per_s: float = Field(_DEFAULTS.policy_tokens_per_s, gt=0)  # models its latency, as in training

    def limits(self) -> EpisodeLimits:
        return EpisodeLimits(**self.model_dump())


class ToolSources(Strict):
    """How tools are shown and run (as `core.catalog.ToolSettings`) and which tools are plugged in."""

    max_observation_chars: int = Field(_DEFAULTS.max_observation_chars, ge=100)
    code_timeout_s: float = Field(_DEFAULTS.code_timeout_s, gt=0)
    answer_tool: bool = _DEFAULTS.answer_tool
    describe_db_tools: bool = _DEFAULTS.describe_db_tools
    code: bool = True
    world: str | None = None
    documents: str | None = None
    http: list[HttpToolEntry] = []
    mcp: list[McpEntry] = []

    @model_validator(mode="after")
    def one_corpus(self) -> ToolSources:
        if self.world and self.documents:
            raise ValueError("give world or documents, not both (a world folder carries its own docs.jsonl)")
        return self

    def settings(self) -> ToolSettings:
        return ToolSettings(**{k: getattr(self, k) for k in ToolSettings.model_fields})


class CatalogFile(Strict):
    """A superset of `core.catalog.Catalog`'s shape (what the Helm chart renders)."""

    prices: dict[str, Price] = {}
    orchestrator: str | Price = "orchestrator"  # its own tokens: a price row, or {input, output}
    experts: list[ExpertEntry] = []
    episode: EpisodeEntry = EpisodeEntry()
    tools: ToolSources = ToolSources()


class Served(BaseModel):
    """What a gateway serves: the price catalog, the default limits and the tool sources."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    catalog: Catalog
    limits: EpisodeLimits
    tools: ToolSources
    root: Path  # relative paths in `tools` are relative to this


class CatalogError(ValueError):
    """A catalog that cannot be served; the message names the file, line and field."""


def _line(tree: Any, loc: tuple) -> int | None:
    """The 1-based line of `loc` in a composed YAML node tree (the deepest node found)."""
    node, line = tree, None
    for key in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
    return node.start_mark.line + 1 if node is not None else line


def to_served(file: CatalogFile, root: Path) -> Served:
    prices = {**DEFAULT_PRICES, **file.prices}
    experts = []
    for e in file.experts:
        row = e.price if isinstance(e.price, str) else f"expert:{e.name}"
        if not isinstance(e.price, str):
            prices[row] = e.price
        experts.append(ExpertConfig(**{**e.model_dump(exclude={"price"}), "price": row,
                                       "model": e.model or e.name}))
    orch = file.orchestrator if isinstance(file.orchestrator, str) else "orchestrator:served"
    if not isinstance(file.orchestrator, str):
        prices[orch] = file.orchestrator
    catalog = build_catalog(prices, experts, orch, file.tools.settings())
    return Served(catalog=catalog, limits=file.episode.limits(), tools=file.tools, root=root)


def load_catalog_file(path: Path) -> Served:
    if not path.is_file():
        raise CatalogError(f"{path}: no such catalog file")
    text = path.read_text()
    try:
        data = yaml.safe_load(text) or {}
        file = CatalogFile.model_validate(data)
        served = to_served(file, path.parent)
    except yaml.YAMLError as e:
        raise CatalogError(f"{path}: not YAML: {e}") from None
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        line = _line(yaml.compose(text), first["loc"])
        raise CatalogError(f"{path}:{line or '?'}: {where}: {first['msg'].removeprefix('Value error, ')}") from None
    except ValueError as e:  # an unknown price row
        raise CatalogError(f"{path}: {e}") from None
    names = [e.name for e in file.experts]
    if len(set(names)) != len(names):
        raise CatalogError(f"{path}: experts: names must be unique")
    return served


def from_profile(cfg: Config) -> Served:
    """A profile's catalog (`--config`), its episode limits, the code tool, no world."""
    return Served(catalog=cfg.catalog(), limits=cfg.episode.limits(), tools=ToolSources(), root=Path.cwd())
