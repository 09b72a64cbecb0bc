"""Synthesized environments shared by the synth tests (small row counts keep them fast)."""
from __future__ import annotations

from pathlib import Path

import pytest

from toolorch.core.config import load_config
from toolorch.runtime.env import Environment
from toolorch.synth.domains import DOMAIN_NAMES
from toolorch.synth.envs import ProceduralGenerator

ROOT = Path(__file__).resolve().parents[3]
SMALL_ROWS = (50, 70)


@pytest.fixture(scope="session")
def tiny_cfg():
    return load_config(ROOT / "configs" / "tiny.yaml")


@pytest.fixture(scope="session")
def all_envs(tmp_path_factory) -> list[Environment]:
    out = tmp_path_factory.mktemp("envs")
    gen = ProceduralGenerator(rows_per_table=SMALL_ROWS)
    return [gen.generate(d, 0, out) for d in DOMAIN_NAMES]
