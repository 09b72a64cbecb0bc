"""The procedural generator's domains: one module per domain, each declaring `DOMAIN`."""
from __future__ import annotations

import importlib

from toolorch.synth.domain import Domain

DOMAIN_NAMES: tuple[str, ...] = (
    "library", "bank", "clinic", "airline", "retail", "school", "railway", "restaurant",
)


def get_domain(name: str) -> Domain:
    if name not in DOMAIN_NAMES:
        raise ValueError(f"unknown domain '{name}' (known: {', '.join(DOMAIN_NAMES)})")
    return importlib.import_module(f"toolorch.synth.domains.{name}").DOMAIN
