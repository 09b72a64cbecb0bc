from pathlib import Path

import pytest

from toolorch.core.catalog import DEFAULT_PRICES
from toolorch.core.config import load_config, save_config

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_profile_loads(path):
    cfg = load_config(path)
    for e in cfg.experts:
        cfg.price(e.price)  # every expert has a price row


def test_overrides_and_resolved_copy(tmp_path):
    cfg = load_config(CONFIGS[0], ["seed=7", "episode.max_turns=3", "stages.passk.k=4", "prices.mini.output=3"])
    assert (cfg.seed, cfg.episode.max_turns, cfg.stages["passk"]["k"], cfg.price("mini").output) == (7, 3, 4, 3.0)
    again = load_config(save_config(cfg, tmp_path))
    assert again == cfg


def test_bad_overrides_are_named():
    with pytest.raises(ValueError, match="key=value"):
        load_config(None, ["seed"])
    with pytest.raises(ValueError, match="max_turns"):
        load_config(None, ["episode.max_turns=0"])
    with pytest.raises(ValueError, match="nonsense"):
        load_config(None, ["episode.nonsense=1"])
    with pytest.raises(FileNotFoundError):
        load_config("configs/missing.yaml")


def test_published_prices():
    assert DEFAULT_PRICES["frontier"].cost(1_000_000, 1_000_000) == pytest.approx(11.25)
    assert DEFAULT_PRICES["orchestrator"].cost(500_000, 500_000) == pytest.approx(0.2)
