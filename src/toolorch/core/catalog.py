"""The price catalog: every expert model and tool the orchestrator may call, with its price and
latency prior. Built once — from a profile (`Config.catalog()`) or from the serving catalog file —
and handed to the runtime: the toolbox, the system prompt's price table and the cost accounting all
read this one object, so training, eval and serving price a call identically.

    catalog = load_config("configs/tiny.yaml").catalog()
    catalog.expert("mini").price.cost(tokens_in=1000, tokens_out=200)   # dollars
    seen, names = disguise(catalog, Randomisation(), seed=7)   # one training example's view
"""
from __future__ import annotations

import math
import random
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator


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
    """One expert as a profile declares it: `price` names a row of the price table."""

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
    # openai backend, per process (one KFP shard): calls in flight and started per second (None: unlimited)
    max_concurrency: int = Field(8, ge=1, le=1024)
    requests_per_s: int | None = Field(None, ge=1)
    # The latency the orchestrator is told to expect (seconds per call); None: a simulated expert's
    # declared mean, else no figure
    latency_s: float | None = Field(None, ge=0)
    simulated: SimulatedProfile = SimulatedProfile()

    @model_serializer(mode="wrap")
    def _without_unset_prior(self, handler):
        # an unset prior is not written, so resolved configs saved before it existed stay byte-identical
        data = handler(self)
        if isinstance(data, dict) and data.get("latency_s") is None:
            data.pop("latency_s", None)
        return data


class ToolSettings(Section):
    """How the toolbox presents and runs tools (defaults: `core.config.EpisodeConfig`)."""

    max_observation_chars: int = Field(ge=100)
    code_timeout_s: float = Field(gt=0)
    answer_tool: bool  # offer `answer(model=...)`: an expert's reply ends the episode
    describe_db_tools: bool  # describe db tools in the prompt, not only name them


class EpisodeLimits(Section):
    """What ends an episode early, as a failure with the reason recorded (defaults: `EpisodeConfig`)."""

    max_turns: int = Field(ge=1)
    max_tokens: int = Field(ge=1)  # the policy's output tokens over the episode
    budget_usd: float = Field(gt=0)
    policy_tokens_per_s: float = Field(gt=0)  # models the policy's own latency


class CatalogExpert(ExpertConfig):
    """An expert with its price row resolved."""

    price: Price  # type: ignore[assignment]

    @property
    def latency_prior_s(self) -> float:
        """The latency the orchestrator is told to expect."""
        if self.latency_s is not None:
            return self.latency_s
        return self.simulated.latency_s_mean if self.backend == "simulated" else 0.0


class Catalog(Section):
    orchestrator: Price  # the orchestrator's own tokens
    experts: list[CatalogExpert] = []
    tools: ToolSettings

    def expert(self, name: str) -> CatalogExpert:
        for e in self.experts:
            if e.name == name:
                return e
        raise KeyError(f"no expert '{name}' in the catalog (have: {', '.join(self.names()) or 'none'})")

    def names(self) -> list[str]:
        return [e.name for e in self.experts]

    def by_price(self) -> list[CatalogExpert]:
        """Experts, cheapest first (output price, then input price, then name)."""
        return sorted(self.experts, key=lambda e: (e.price.output, e.price.input, e.name))


def build_catalog(prices: dict[str, Price], experts: list[ExpertConfig], orchestrator_price: str,
                  tools: ToolSettings) -> Catalog:
    """Resolve each expert's price row; an unknown row is a ValueError naming it."""
    def price(key: str, who: str) -> Price:
        if key not in prices:
            raise ValueError(f"{who}: no price '{key}' in prices (have: {', '.join(sorted(prices))})")
        return prices[key]

    resolved = [CatalogExpert(**{**e.model_dump(), "price": price(e.price, f"experts.{e.name}.price")})
                for e in experts]
    return Catalog(orchestrator=price(orchestrator_price, "episode.policy_price"), experts=resolved,
                   tools=tools)


class Randomisation(Section):
    """Per-example expert aliases and prices, as ToolOrchestra trains: the policy must read each
    expert's description and price instead of memorising names."""

    aliases: bool = True  # experts become `<alias_prefix>-1..N` in a shuffled order
    alias_prefix: str = Field("model", pattern=r"^[a-z][a-z0-9_]*$")
    price_range: tuple[float, float] = (0.5, 2.0)  # each price row times a log-uniform draw from this

    @model_validator(mode="after")
    def _ordered_range(self) -> Randomisation:
        low, high = self.price_range
        if not 0 < low <= high:
            raise ValueError(f"price_range {list(self.price_range)}: need 0 < low <= high")
        return self


def _short(dollars: float) -> float:
    """Three significant digits: the prompt's price table stays readable."""
    return float(f"{dollars:.3g}")


def disguise(catalog: Catalog, how: Randomisation, seed: int) -> tuple[Catalog, dict[str, str]]:
    """The catalog one example sees (seeded: the same seed gives the same view) and each shown
    expert name -> its real name."""
    rng = random.Random(seed)
    order = list(range(1, len(catalog.experts) + 1))
    rng.shuffle(order)
    low, high = (math.log(x) for x in how.price_range)
    shown, real = [], {}
    for expert, number in zip(catalog.experts, order):
        name = f"{how.alias_prefix}-{number}" if how.aliases else expert.name
        scale = math.exp(rng.uniform(low, high))
        price = Price(input=_short(expert.price.input * scale), output=_short(expert.price.output * scale))
        shown.append(expert.model_copy(update={"name": name, "price": price}))
        real[name] = expert.name
    shown.sort(key=lambda e: e.name)  # the listing order says nothing about who is who
    return catalog.model_copy(update={"experts": shown}), real
